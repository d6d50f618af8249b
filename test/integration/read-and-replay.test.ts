/**
 * `read` returns what the database will hold once the backlog is drained (G4), and a replayed
 * dead letter never wins over a newer change, in the database or in `read` (G2).
 */
import { describe, expect, it } from 'vitest';
import type { Spillway } from '../../lambdas/spillway.js';
import {
  chunk,
  document,
  drainAll,
  patchDocument,
  useTestEngines,
  uuid,
} from '../support/engine.js';

const { engine } = useTestEngines();

const readChunk = async (spillway: Spillway, id: string) =>
  (await spillway.read({ table: 'document_chunks', key: { chunk_uuid: id } })).record;

/** A chunk upsert the database refuses (its document does not exist): dead-lettered. */
async function deadLetteredChunk(spillway: Spillway, doc: string, chunkId: string) {
  await spillway.write({ changes: [chunkWithText(doc, chunkId, 'A')] });
  await drainAll(spillway);
  const [letter] = await spillway.listDeadLetters();
  expect(letter?.sqlState).toBe('23503');
  return letter?.changesetId as string;
}

function chunkWithText(doc: string, chunkId: string, text: string) {
  const change = chunk(doc, 0, chunkId);
  return { ...change, record: { ...change.record, text } };
}

describe('replaying a dead letter', () => {
  it('never overwrites a newer pending write, when the newer write was acknowledged before the replay', async () => {
    const { spillway, direct } = await engine('replay-after-write');
    const doc = uuid();
    const chunkId = uuid();
    const letter = await deadLetteredChunk(spillway, doc, chunkId);
    await spillway.write({ changes: [document(doc), chunkWithText(doc, chunkId, 'B')] });
    await spillway.replayDeadLetters({ changesetIds: [letter] });

    expect(await readChunk(spillway, chunkId)).toMatchObject({ text: 'B' });
    await drainAll(spillway);
    const row = await direct.query('SELECT text FROM document_chunks WHERE chunk_uuid = $1', [
      chunkId,
    ]);
    expect(row.rows[0].text).toBe('B');
    expect(await readChunk(spillway, chunkId)).toMatchObject({ text: 'B' });
  });

  it('never overwrites a newer write, when the replay was acknowledged first', async () => {
    const { spillway, direct } = await engine('replay-before-write');
    const doc = uuid();
    const chunkId = uuid();
    const letter = await deadLetteredChunk(spillway, doc, chunkId);
    await spillway.write({ changes: [document(doc)] });
    await spillway.replayDeadLetters({ changesetIds: [letter] });
    await spillway.write({ changes: [chunkWithText(doc, chunkId, 'B')] });

    expect(await readChunk(spillway, chunkId)).toMatchObject({ text: 'B' });
    await drainAll(spillway);
    const row = await direct.query('SELECT text FROM document_chunks WHERE chunk_uuid = $1', [
      chunkId,
    ]);
    expect(row.rows[0].text).toBe('B');
  });

  it('does not show in read when the database already holds a newer change of the row', async () => {
    const { spillway } = await engine('replay-after-drain');
    const doc = uuid();
    const chunkId = uuid();
    const letter = await deadLetteredChunk(spillway, doc, chunkId);
    await spillway.write({ changes: [document(doc), chunkWithText(doc, chunkId, 'B')] });
    await drainAll(spillway);
    await spillway.replayDeadLetters({ changesetIds: [letter] });

    expect(await spillway.read({ table: 'document_chunks', key: { chunk_uuid: chunkId } })).toEqual(
      {
        record: expect.objectContaining({ text: 'B' }),
        pending: true,
      },
    );
    await drainAll(spillway);
    expect(await readChunk(spillway, chunkId)).toMatchObject({ text: 'B' });
  });
});

describe('read of a pending change', () => {
  it('shows a column an upsert leaves out as NULL, as the database will store it, not the old value', async () => {
    const { spillway, direct } = await engine('upsert-nulls');
    const doc = uuid();
    await spillway.write({
      changes: [document(doc, { page_count: 5, content_type: 'application/pdf' })],
    });
    await drainAll(spillway);
    await spillway.write({ changes: [document(doc, { status: 'processing' })] });

    const pending = await spillway.read({ table: 'source_documents', key: { document_uuid: doc } });
    expect(pending.record).toMatchObject({
      status: 'processing',
      page_count: null,
      content_type: null,
    });
    // A column with a default keeps its value on update, as the database does.
    const createdAt = (
      await direct.query('SELECT created_at FROM source_documents WHERE document_uuid = $1', [doc])
    ).rows[0].created_at as Date;
    expect(pending.record?.created_at).toBe(createdAt.toISOString());
    await drainAll(spillway);
    const after = await spillway.read({ table: 'source_documents', key: { document_uuid: doc } });
    expect(after).toEqual({ record: pending.record, pending: false });
  });

  it('shows a constant column default for a new row before the drain, as the database will', async () => {
    const { spillway } = await engine('defaults');
    const doc = uuid();
    const taskId = uuid();
    const task = {
      op: 'upsert' as const,
      table: 'processing_tasks',
      record: { task_id: taskId, document_uuid: doc, task_type: 'extract', status: 'queued' },
    };
    await spillway.write({ changes: [document(doc), task] });
    const before = await spillway.read({ table: 'processing_tasks', key: { task_id: taskId } });
    await drainAll(spillway);
    const after = await spillway.read({ table: 'processing_tasks', key: { task_id: taskId } });
    expect(before.record).toMatchObject({ attempts: 0 });
    expect(after.record).toEqual(before.record);
  });

  it('leaves no trace of a dead-lettered changeset, even after a later write touched the same row', async () => {
    class Stop extends Error {}
    const { spillway, another } = await engine('dead-trace');
    const doc = uuid();
    await spillway.write({ changes: [document(doc)] });
    await drainAll(spillway);
    // D sets a status and adds a chunk of a document that does not exist: refused whole.
    await spillway.write({ changes: [patchDocument(doc, { status: 'failed' }), chunk(uuid(), 0)] });
    // E, acknowledged later, touches the same row.
    await spillway.write({ changes: [patchDocument(doc, { page_count: 7 })] });
    const stopping = another({
      batchSize: 1,
      drainHooks: {
        onDeadLetter: () => {
          throw new Stop('stop after the dead letter, before E drains');
        },
      },
    });
    await expect(stopping.drain(Date.now() + 10_000)).rejects.toBeInstanceOf(Stop);
    expect(
      await spillway.read({ table: 'source_documents', key: { document_uuid: doc } }),
    ).toMatchObject({
      record: { status: 'pending', page_count: 7 },
      pending: true,
    });
    await drainAll(spillway);
    expect(
      await spillway.read({ table: 'source_documents', key: { document_uuid: doc } }),
    ).toMatchObject({
      record: { status: 'pending', page_count: 7 },
      pending: false,
    });
  });
});
