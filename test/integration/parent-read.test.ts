/**
 * Reads by parent key: a parent's children as the database will hold them once the backlog is
 * drained (G4), pending inserts, patches, moves and deletes merged with the database's rows,
 * in pages (issue 12).
 */
import { describe, expect, it } from 'vitest';
import { ValidationError } from '../../lambdas/core/errors.js';
import type { Spillway } from '../../lambdas/spillway.js';
import { chunk, document, drainAll, useTestEngines, uuid } from '../support/engine.js';

const { engine } = useTestEngines();

/** Ids that sort in the order given, so that primary-key order is known. */
const ids = (n: number) =>
  Array.from({ length: n }, (_, i) => `00000000-0000-4000-8000-${String(i + 1).padStart(12, '0')}`);

async function allChildren(spillway: Spillway, parent: string, limit: number) {
  const records: Record<string, unknown>[] = [];
  let cursor: string | undefined;
  for (let pages = 0; pages < 50; pages += 1) {
    const page = await spillway.readChildren({
      table: 'document_chunks',
      where: { document_uuid: parent },
      limit,
      ...(cursor === undefined ? {} : { cursor }),
    });
    expect(page.records.length).toBeLessThanOrEqual(limit);
    records.push(...page.records);
    if (page.nextCursor === null) return records;
    cursor = page.nextCursor;
  }
  throw new Error('too many pages');
}

describe('read by parent key', () => {
  it('merges pending inserts, patches, moves and deletes with the stored children, before and after the drain', async () => {
    const { spillway, redis } = await engine('children');
    const [doc, other] = [uuid(), uuid()];
    const [c0, c1, c2, c3] = ids(4);
    await spillway.write({
      changes: [
        document(doc),
        document(other),
        chunk(doc, 0, c0),
        chunk(doc, 1, c1),
        chunk(doc, 2, c2),
      ],
    });
    await drainAll(spillway);
    await spillway.write({
      changes: [
        chunk(doc, 3, c3),
        { op: 'patch', table: 'document_chunks', key: { chunk_uuid: c1 }, set: { text: 'edited' } },
        { op: 'delete', table: 'document_chunks', key: { chunk_uuid: c2 } },
        {
          op: 'patch',
          table: 'document_chunks',
          key: { chunk_uuid: c0 },
          set: { document_uuid: other },
        },
      ],
    });
    const before = await spillway.readChildren({
      table: 'document_chunks',
      where: { document_uuid: doc },
    });
    expect(before.records.map((r) => [r.chunk_uuid, r.text])).toEqual([
      [c1, 'edited'],
      [c3, 'chunk 3'],
    ]);
    expect(before.pending).toBe(true);
    expect(before.nextCursor).toBeNull();
    const moved = await spillway.readChildren({
      table: 'document_chunks',
      where: { document_uuid: other },
    });
    expect(moved.records.map((r) => r.chunk_uuid)).toEqual([c0]);

    await drainAll(spillway);
    const after = await spillway.readChildren({
      table: 'document_chunks',
      where: { document_uuid: doc },
    });
    expect(after).toEqual({ records: before.records, pending: false, nextCursor: null });
    // Nothing pending is left in the parent indexes once drained.
    expect(
      await redis.keys(
        `{${spillway.buffer.keys.backlog.slice(1, spillway.buffer.keys.backlog.indexOf('}'))}}:px:*`,
      ),
    ).toEqual([]);
  });

  it('pages through stored and pending children in primary-key order, each exactly once', async () => {
    const { spillway } = await engine('children-pages');
    const doc = uuid();
    const chunks = ids(9);
    await spillway.write({
      changes: [
        document(doc),
        ...chunks.filter((_, i) => i % 2 === 0).map((id, i) => chunk(doc, i, id)),
      ],
    });
    await drainAll(spillway);
    await spillway.write({
      changes: chunks.filter((_, i) => i % 2 === 1).map((id, i) => chunk(doc, 10 + i, id)),
    });
    for (const limit of [1, 2, 4, 100]) {
      expect((await allChildren(spillway, doc, limit)).map((r) => r.chunk_uuid)).toEqual(chunks);
    }
  });

  it('gives stored children the values a read by key gives: timestamps, JSON and numbers as pg returns them', async () => {
    const { spillway } = await engine('children-values');
    const doc = uuid();
    const [chunkId, taskId, mentionId] = [uuid(), uuid(), uuid()];
    const stored = {
      document_chunks: {
        chunk_uuid: chunkId,
        document_uuid: doc,
        chunk_index: 7,
        text: 'x',
        char_start: 0,
        char_end: 1,
        metadata: { page: 2, tags: ['a'] },
      },
      processing_tasks: {
        task_id: taskId,
        document_uuid: doc,
        task_type: 'ocr',
        status: 'running',
        attempts: 2,
        error_message: null,
        started_at: '2024-12-04T17:47:00.123Z',
        completed_at: null,
      },
      entity_mentions: {
        entity_uuid: mentionId,
        document_uuid: doc,
        chunk_uuid: chunkId,
        entity_type: 'person',
        text: 'Ada',
        confidence: 0.5,
        start_offset: 3,
        end_offset: 6,
        attributes: { source: 'rule' },
      },
    };
    await spillway.write({
      changes: [
        document(doc),
        ...Object.entries(stored).map(([table, record]) => ({
          op: 'upsert' as const,
          table,
          record,
        })),
      ],
    });
    await drainAll(spillway);
    for (const [table, record] of Object.entries(stored)) {
      const page = await spillway.readChildren({ table, where: { document_uuid: doc } });
      expect(page.records, table).toEqual([record]);
    }
  });

  it('refuses a filter on a column that is not a foreign key, naming the ones allowed', async () => {
    const { spillway } = await engine('children-invalid');
    const error = await spillway
      .readChildren({ table: 'document_chunks', where: { text: 'x' } })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ValidationError);
    expect((error as Error).message).toBe(
      'where.text: not a foreign-key column of document_chunks; a read by parent may filter on document_uuid',
    );
  });
});
