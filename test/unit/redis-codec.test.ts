import { describe, expect, it } from 'vitest';
import type { Change } from '../../lambdas/core/changeset.js';
import { SchemaRegistry } from '../../lambdas/core/schema.js';
import { versionOf } from '../../lambdas/core/version.js';
import {
  type DeadLetter,
  decodeCacheEntry,
  decodeDeadLetter,
  decodeEntry,
  decodeIndexMember,
  decodeLayers,
  encodeCachedRow,
  encodeChangeset,
  encodeDeadLetter,
  encodeIndexMember,
} from '../../lambdas/io/redis-codec.js';
import { pipelineRegistry } from '../../lambdas/schema/tables.js';

const doc = 'b3c4a1f0-0000-4000-8000-000000000001';
const rowKey = JSON.stringify([doc]);
const changes: Change[] = [
  {
    op: 'upsert',
    table: 'source_documents',
    key: { document_uuid: doc },
    rowKey,
    record: { document_uuid: doc, filename: 'a.pdf', status: 'pending' },
  },
  {
    op: 'patch',
    table: 'source_documents',
    key: { document_uuid: doc },
    rowKey,
    set: { status: 'completed' },
  },
  { op: 'delete', table: 'source_documents', key: { document_uuid: doc }, rowKey },
];

/** A stream entry's fields as XRANGE returns them. */
const fields = (record: Record<string, string>) => Object.entries(record).flat();

describe('backlog entries', () => {
  it('decode to the changeset that was encoded, with its version, charge and stored bytes', () => {
    const { payload } = encodeChangeset('cs-1', changes);
    const entry = decodeEntry(
      '1700000000000-3',
      fields({ cs: payload, b: '812' }),
      pipelineRegistry,
    );
    expect(entry).toEqual({
      streamId: '1700000000000-3',
      version: versionOf('1700000000000-3'),
      replayed: false,
      charge: 812,
      bytes: Buffer.byteLength(payload),
      changesetId: 'cs-1',
      changes,
    });
  });

  it('take a replayed dead letter original version from the field v', () => {
    const entry = decodeEntry(
      '1700000000500-0',
      fields({ cs: encodeChangeset('cs-2', changes).payload, b: '10', v: '1699999999000000002' }),
      pipelineRegistry,
    );
    expect(entry).toMatchObject({ version: '1699999999000000002', replayed: true });
  });

  it('store no key or row key, and read them back from the table definition', () => {
    expect(JSON.parse(encodeChangeset('cs-3', changes).payload)).toEqual({
      id: 'cs-3',
      changes: [
        ['upsert', 'source_documents', changes[0]?.op === 'upsert' ? changes[0].record : null],
        ['patch', 'source_documents', { document_uuid: doc }, { status: 'completed' }],
        ['delete', 'source_documents', { document_uuid: doc }],
      ],
    });
  });

  it('of a table no longer defined still decode, as written, for the drainer to dead-letter', () => {
    const [patch] = decodeEntry(
      '1-0',
      fields({ cs: encodeChangeset('cs-4', [changes[1] as Change]).payload }),
      new SchemaRegistry([]),
    ).changes;
    expect(patch).toEqual({ ...changes[1], rowKey });
  });
});

describe('overlay layers', () => {
  /** What `overlay-read.lua` cuts out of a payload for a reference, byte for byte. */
  const cut = (payload: string, ref: string) => {
    const [offset, length] = ref.split(':').map(Number) as [number, number];
    return Buffer.from(payload)
      .subarray(offset, offset + length)
      .toString('utf8');
  };

  it('refer to each change by its place in the payload, in bytes, whatever the characters', () => {
    const text: Change = {
      ...(changes[0] as Change & { op: 'upsert' }),
      record: { document_uuid: doc, filename: 'Zürich – €.pdf', status: 'pending' },
    };
    const { payload, refs } = encodeChangeset('cs-6 "quoted"', [text, ...changes]);
    expect(payload).toBe(JSON.stringify(JSON.parse(payload) as unknown));
    const stored = (JSON.parse(payload) as { changes: unknown[] }).changes;
    expect(refs.map((ref) => JSON.parse(cut(payload, ref)) as unknown)).toEqual(stored);
  });

  it('resolve the referred changes of a row to its net effect, in stream order, with a replay as the version', () => {
    const { payload, refs } = encodeChangeset('cs-7', changes.slice(0, 2));
    const patched = refs.map((ref) => cut(payload, ref));
    const layers = decodeLayers(
      [
        ['1700000000010-0', 'changes', '', cut(payload, refs[1] as string)],
        ['1700000000002-5', 'changes', '42', ...patched],
      ],
      pipelineRegistry,
    );
    expect(layers).toEqual([
      {
        streamId: '1700000000002-5',
        version: '42',
        op: 'upsert',
        values: { document_uuid: doc, filename: 'a.pdf', status: 'completed' },
      },
      {
        streamId: '1700000000010-0',
        version: versionOf('1700000000010-0'),
        op: 'patch',
        values: { status: 'completed' },
      },
    ]);
  });

  it('written before overlays held references (`<replayed version>|<layer>`) decode as they did', () => {
    const layers = decodeLayers(
      [
        ['1700000000010-0', 'layer', '|["delete"]'],
        ['1700000000002-5', 'layer', '42|["patch",{"status":"failed"}]'],
        ['1700000000002-10', 'layer', '|["upsert",{"filename":"b"}]'],
      ],
      pipelineRegistry,
    );
    expect(layers).toEqual([
      { streamId: '1700000000002-5', version: '42', op: 'patch', values: { status: 'failed' } },
      {
        streamId: '1700000000002-10',
        version: versionOf('1700000000002-10'),
        op: 'upsert',
        values: { filename: 'b' },
      },
      {
        streamId: '1700000000010-0',
        version: versionOf('1700000000010-0'),
        op: 'delete',
        values: {},
      },
    ]);
  });
});

describe('dead letters', () => {
  const letter: DeadLetter = {
    changesetId: 'cs-5',
    version: '1700000000000000007',
    changes,
    reason: 'violates check constraint',
    sqlState: '23514',
    deadAt: '2026-01-01T00:00:00.000Z',
    writtenAt: '2025-12-31T23:59:59.000Z',
  };

  it('decode to the letter that was encoded', () => {
    expect(decodeDeadLetter(encodeDeadLetter(letter))).toEqual(letter);
  });

  it('have index members that sort in version order as text and decode to version and id', () => {
    const older = encodeIndexMember({ version: '99', changesetId: 'z' });
    const newer = encodeIndexMember(letter);
    expect([newer, older].sort()).toEqual([older, newer]);
    expect(decodeIndexMember(newer)).toEqual({ version: letter.version, changesetId: 'cs-5' });
    expect(decodeIndexMember(older)).toEqual({ version: '99', changesetId: 'z' });
  });
});

describe('read cache entries', () => {
  it('decode to the row that was cached, with its version, generation and time, whatever bars the row holds', () => {
    const row = {
      record: { document_uuid: doc, filename: 'a|b||c.pdf' },
      version: '1796409471045000',
    };
    // As lua/read-cache-place.lua fill composes it.
    const value = `gen-1|1796409471045|${encodeCachedRow(row)}`;
    expect(decodeCacheEntry(value)).toEqual({
      generation: 'gen-1',
      cached: { row, cachedAt: 1796409471045 },
    });
  });

  it('of a deleted or never written row keep its absence and version', () => {
    const row = { record: null, version: null };
    expect(decodeCacheEntry(`g|5|${encodeCachedRow(row)}`).cached?.row).toEqual(row);
  });

  it('reserved but not filled decode to their generation alone', () => {
    expect(decodeCacheEntry('gen-2||')).toEqual({ generation: 'gen-2', cached: null });
  });
});
