import { describe, expect, it } from 'vitest';
import type { Change } from '../../lambdas/core/changeset.js';
import { coalesce, type PendingChangeset } from '../../lambdas/core/coalesce.js';
import { backoffDelay } from '../../lambdas/core/policies.js';
import { sortableVersion, timeOf, versionOf } from '../../lambdas/core/version.js';

const key = { document_uuid: 'a' };
const rowKey = '["a"]';
const upsert = (status: string): Change => ({
  op: 'upsert',
  table: 'source_documents',
  rowKey,
  key,
  record: { document_uuid: 'a', filename: 'f', status },
});
const patch = (set: Record<string, string | number>): Change => ({
  op: 'patch',
  table: 'source_documents',
  rowKey,
  key,
  set,
});
const del: Change = { op: 'delete', table: 'source_documents', rowKey, key };
let seq = 0;
const changeset = (...changes: Change[]): PendingChangeset => {
  seq += 1;
  return {
    streamId: `1000-${seq}`,
    version: versionOf(`1000-${seq}`),
    changesetId: `cs${seq}`,
    changes,
  };
};

describe('coalesce', () => {
  it('folds patches into an earlier upsert of the same row and keeps the last version', () => {
    const batch = [
      changeset(upsert('pending')),
      changeset(patch({ status: 'completed' }), patch({ page_count: 2 })),
    ];
    const result = coalesce(batch);
    expect(result.changes).toBe(3);
    expect(result.rows).toEqual([
      expect.objectContaining({
        op: 'upsert',
        values: { document_uuid: 'a', filename: 'f', status: 'completed', page_count: 2 },
        version: batch[1]?.version,
        lastStreamId: batch[1]?.streamId,
      }),
    ]);
    expect(result.rows[0]?.patchedFrom).toBeUndefined();
  });

  it('merges patches of a row the batch did not create and remembers that the row must exist', () => {
    const batch = [changeset(patch({ status: 'failed' })), changeset(patch({ page_count: 1 }))];
    const [row] = coalesce(batch).rows;
    expect(row).toMatchObject({
      op: 'patch',
      values: { status: 'failed', page_count: 1 },
      patchedFrom: batch[0]?.version,
    });
  });

  it('a delete after a patch still requires the patched row to have existed', () => {
    const batch = [changeset(patch({ status: 'failed' })), changeset(del)];
    expect(coalesce(batch).rows[0]).toMatchObject({ op: 'delete', patchedFrom: batch[0]?.version });
  });

  it('an upsert after a delete writes the full new row', () => {
    const [row] = coalesce([changeset(del), changeset(upsert('processing'))]).rows;
    expect(row).toMatchObject({ op: 'upsert', values: { status: 'processing' } });
  });

  it('a patch after a delete in the same batch rejects the batch', () => {
    const result = coalesce([
      changeset(upsert('pending')),
      changeset(del),
      changeset(patch({ status: 'failed' })),
    ]);
    expect(result.rejection).toMatch(/patch of a row deleted earlier/);
  });

  it('keeps different rows apart', () => {
    const other: Change = { ...del, rowKey: '["b"]', key: { document_uuid: 'b' } };
    expect(coalesce([changeset(upsert('pending'), other)]).rows.map((r) => r.rowKey)).toEqual([
      rowKey,
      '["b"]',
    ]);
  });
});

describe('versions', () => {
  it('turn stream ids into bigints that order like the stream', () => {
    expect(versionOf('1700000000000-0')).toBe('1700000000000000000');
    expect(versionOf('1700000000000-12')).toBe('1700000000000000012');
    expect(BigInt(versionOf('1700000000001-0')) > BigInt(versionOf('1700000000000-999999'))).toBe(
      true,
    );
    expect(() => versionOf('nonsense')).toThrow(/not a stream id/);
    expect(timeOf('1700000000000-3')).toBe(1_700_000_000_000);
    expect(sortableVersion('12') < sortableVersion('100')).toBe(true);
  });
});

describe('policies', () => {
  it('back off with full jitter, growing exponentially up to the cap', () => {
    const policy = { baseMs: 100, maxMs: 1_000 };
    expect(backoffDelay(0, policy, () => 0.999)).toBe(99);
    expect(backoffDelay(3, policy, () => 0.999)).toBe(799);
    expect(backoffDelay(10, policy, () => 0.999)).toBe(999);
    expect(backoffDelay(10, policy, () => 0)).toBe(0);
  });
});
