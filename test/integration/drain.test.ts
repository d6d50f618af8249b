import { describe, expect, it } from 'vitest';
import { coalesce } from '../../lambdas/core/coalesce.js';
import { BackpressureError, ValidationError } from '../../lambdas/core/errors.js';
import { SchemaRegistry, type TableDef } from '../../lambdas/core/schema.js';
import { versionOf } from '../../lambdas/core/version.js';
import { runMigrations } from '../../lambdas/io/migrator.js';
import { pipelineTables } from '../../lambdas/schema/tables.js';
import type { Spillway } from '../../lambdas/spillway.js';
import {
  chunk,
  countRows,
  deleteDocument,
  document,
  drainAll,
  patchDocument,
  tableRows,
  useTestEngines,
  uuid,
} from '../support/engine.js';

const { engine } = useTestEngines();

class SimulatedCrash extends Error {}

/**
 * Applies and settles the second of the two changesets in the buffer ahead of the first, as a
 * newer drainer would, so that the first is delivered after a newer one. Returns the first.
 */
async function applyNewerFirst(spillway: Spillway) {
  const [first, newer] = await spillway.buffer.peek(10);
  if (first === undefined || newer === undefined) throw new Error('expected two changesets');
  const token = (await spillway.control.acquireLease(5_000)) as string;
  await spillway.sink.apply(spillway.sink.prepare(coalesce([newer]), 0n), token, 5_000);
  await spillway.buffer.settle([newer]);
  await spillway.control.releaseLease(token);
  return first;
}
describe('drain', () => {
  it('applies changes in acknowledgement order and coalesces many changes to one row', async () => {
    const { spillway, direct } = await engine('order');
    const doc = uuid();
    await spillway.write({ changes: [document(doc)] });
    await spillway.write({
      changes: [patchDocument(doc, { status: 'processing' })],
    });
    await spillway.write({
      changes: [patchDocument(doc, { status: 'completed', page_count: 7 })],
    });
    const result = await spillway.drain(Date.now() + 10_000);
    expect(result).toMatchObject({ applied: 3, coalesced: 2, deadLettered: 0, stoppedBy: 'empty' });
    const row = (
      await direct.query(
        'SELECT status, page_count FROM source_documents WHERE document_uuid = $1',
        [doc],
      )
    ).rows[0];
    expect(row).toEqual({ status: 'completed', page_count: 7 });
    expect(await spillway.buffer.stats()).toMatchObject({ backlog: 0, pendingChangesets: 0 });
  });

  it('a redelivered batch after a newer delete leaves the deleted key deleted and every other row right', async () => {
    const { spillway, direct, another } = await engine('redelivery');
    const [a, b, c] = [uuid(), uuid(), uuid()];
    await spillway.write({
      changes: [document(a, { status: 'pending' }), document(b), document(c)],
    });

    // The drainer commits the first batch, then dies before settling it in Redis.
    const crashing = another({
      drainHooks: {
        afterCommit: () => {
          throw new SimulatedCrash('died after commit');
        },
      },
    });
    await expect(crashing.drain(Date.now() + 10_000)).rejects.toBeInstanceOf(SimulatedCrash);
    expect(await countRows(direct, 'source_documents')).toBe(3);
    expect((await spillway.buffer.stats()).backlog).toBe(3);

    // Later a newer batch deletes b and changes a, and a newer drainer applies it first...
    await spillway.write({
      changes: [deleteDocument(b), patchDocument(a, { status: 'completed' })],
    });
    const first = await applyNewerFirst(spillway);
    expect((await spillway.buffer.stats()).backlog).toBe(3);
    expect(await countRows(direct, 'source_documents')).toBe(2);

    // ...then the first batch is redelivered, and everything drains.
    expect(first.changes).toHaveLength(3);
    await drainAll(spillway);
    const rows = await tableRows(direct, 'source_documents');
    expect([...rows.keys()].sort()).toEqual([JSON.stringify([a]), JSON.stringify([c])].sort());
    expect(rows.get(JSON.stringify([a]))?.status).toBe('completed');
    expect(await spillway.read({ table: 'source_documents', key: { document_uuid: b } })).toEqual({
      record: null,
      pending: false,
    });
  });

  it('a changeset of a document with its chunks, entities and relationships lands all or nothing', async () => {
    const { spillway, direct } = await engine('atomic');
    const doc = uuid();
    const [c1, c2] = [uuid(), uuid()];
    const [e1, e2] = [uuid(), uuid()];
    const whole = (relationshipTarget: string) => ({
      changes: [
        // Children listed before their parents: the drainer orders by foreign key (G3).
        {
          op: 'upsert',
          table: 'relationships',
          record: {
            relationship_uuid: uuid(),
            document_uuid: doc,
            source_entity_uuid: e1,
            target_entity_uuid: relationshipTarget,
            relationship_type: 'co_occurs_with',
            confidence: 0.5,
          },
        },
        {
          op: 'upsert',
          table: 'entity_mentions',
          record: {
            entity_uuid: e1,
            document_uuid: doc,
            chunk_uuid: c1,
            entity_type: 'ORG',
            text: 'Acme Inc.',
          },
        },
        {
          op: 'upsert',
          table: 'entity_mentions',
          record: {
            entity_uuid: e2,
            document_uuid: doc,
            chunk_uuid: c2,
            entity_type: 'EMAIL',
            text: 'a@b.c',
          },
        },
        chunk(doc, 0, c1),
        chunk(doc, 1, c2),
        document(doc),
      ],
    });
    // A relationship to an entity that exists nowhere: the database refuses the whole changeset.
    await spillway.write(whole(uuid()));
    const refused = await spillway.drain(Date.now() + 10_000);
    expect(refused.deadLettered).toBe(6);
    for (const table of [
      'source_documents',
      'document_chunks',
      'entity_mentions',
      'relationships',
    ]) {
      expect(await countRows(direct, table)).toBe(0);
    }
    const [letter] = await spillway.listDeadLetters();
    expect(letter?.sqlState).toBe('23503');
    expect(letter?.reason).toMatch(/foreign key/);

    await spillway.write(whole(e2));
    expect(await spillway.drain(Date.now() + 10_000)).toMatchObject({
      applied: 6,
      deadLettered: 0,
    });
    expect(await countRows(direct, 'source_documents')).toBe(1);
    expect(await countRows(direct, 'document_chunks')).toBe(2);
    expect(await countRows(direct, 'entity_mentions')).toBe(2);
    expect(await countRows(direct, 'relationships')).toBe(1);

    // Deletes go children first.
    await spillway.write({
      changes: [
        deleteDocument(doc),
        { op: 'delete', table: 'document_chunks', key: { chunk_uuid: c1 } },
        { op: 'delete', table: 'document_chunks', key: { chunk_uuid: c2 } },
        { op: 'delete', table: 'entity_mentions', key: { entity_uuid: e1 } },
        { op: 'delete', table: 'entity_mentions', key: { entity_uuid: e2 } },
        ...(await direct.query('SELECT relationship_uuid FROM relationships')).rows.map((r) => ({
          op: 'delete',
          table: 'relationships',
          key: { relationship_uuid: r.relationship_uuid },
        })),
      ],
    });
    expect(await spillway.drain(Date.now() + 10_000)).toMatchObject({
      applied: 6,
      deadLettered: 0,
    });
    expect(await countRows(direct, 'source_documents')).toBe(0);
  });

  it('one poison change among 1,000 good ones: 999 land, the poison waits in the dead-letter store, and a replay lands it once fixed', async () => {
    const { spillway, direct } = await engine('poison');
    const parent = uuid();
    const missingParent = uuid();
    await spillway.write({ changes: [document(parent)] });
    await spillway.drain(Date.now() + 10_000);
    const poisonAt = 617;
    for (let i = 0; i < 1000; i++) {
      await spillway.write({ changes: [chunk(i === poisonAt ? missingParent : parent, i)] });
    }
    const result = await spillway.drain(Date.now() + 30_000);
    expect(result).toMatchObject({ applied: 999, deadLettered: 1, stoppedBy: 'empty' });
    expect(await countRows(direct, 'document_chunks')).toBe(999);
    const letters = await spillway.listDeadLetters();
    expect(letters).toHaveLength(1);
    const [letter] = letters;
    expect(letter?.sqlState).toBe('23503');
    expect(letter?.reason).toContain('violates foreign key constraint');
    expect(letter?.changes[0]).toMatchObject({ op: 'upsert', record: { chunk_index: poisonAt } });
    expect((await spillway.health()).deadLetters).toBe(1);

    // Fix the cause (the missing parent), then replay.
    await spillway.write({ changes: [document(missingParent)] });
    expect(await spillway.replayDeadLetters({ all: true })).toEqual([letter?.changesetId]);
    await drainAll(spillway);
    expect(await countRows(direct, 'document_chunks')).toBe(1000);
    expect(await spillway.listDeadLetters()).toEqual([]);
  });

  it('a patch of a row that exists neither in the database nor in the backlog is dead-lettered with that reason', async () => {
    const { spillway } = await engine('patch-missing');
    const ghost = uuid();
    await spillway.write({
      changes: [patchDocument(ghost, { status: 'failed' })],
    });
    expect(
      await spillway.read({ table: 'source_documents', key: { document_uuid: ghost } }),
    ).toEqual({
      record: null,
      pending: true,
    });
    expect(await spillway.drain(Date.now() + 10_000)).toMatchObject({ deadLettered: 1 });
    const [letter] = await spillway.listDeadLetters();
    expect(letter?.reason).toContain('patch of a row that does not exist');
    expect(letter?.reason).toContain(ghost);
    // The dead-lettered change no longer shows in reads.
    expect(
      await spillway.read({ table: 'source_documents', key: { document_uuid: ghost } }),
    ).toEqual({
      record: null,
      pending: false,
    });
  });

  it('a document deleted while it still has a chunk is dead-lettered even when the chunk delete that follows drains in the same batch', async () => {
    const { spillway, direct } = await engine('delete-parent-first');
    const doc = uuid();
    const child = chunk(doc, 0);
    await spillway.write({ changes: [document(doc), child] });
    await drainAll(spillway);
    const parentDelete = await spillway.write({ changes: [deleteDocument(doc)] });
    await spillway.write({
      changes: [
        { op: 'delete', table: 'document_chunks', key: { chunk_uuid: child.record.chunk_uuid } },
      ],
    });
    const result = await spillway.drain(Date.now() + 10_000);
    expect(result).toMatchObject({ deadLettered: 1, stoppedBy: 'empty' });
    const [letter] = await spillway.listDeadLetters();
    expect(letter).toMatchObject({ changesetId: parentDelete.changesetId, sqlState: '23503' });
    expect(await countRows(direct, 'source_documents')).toBe(1);
    expect(await countRows(direct, 'document_chunks')).toBe(0);
  });

  it('a chunk written before its document exists is dead-lettered even when the document follows in the same batch', async () => {
    const { spillway, direct } = await engine('child-before-parent');
    const doc = uuid();
    const early = await spillway.write({ changes: [chunk(doc, 0)] });
    await spillway.write({ changes: [document(doc)] });
    await spillway.write({ changes: [chunk(doc, 1)] });
    const result = await spillway.drain(Date.now() + 10_000);
    expect(result).toMatchObject({ deadLettered: 1, stoppedBy: 'empty' });
    const [letter] = await spillway.listDeadLetters();
    expect(letter).toMatchObject({ changesetId: early.changesetId, sqlState: '23503' });
    const chunks = await tableRows(direct, 'document_chunks');
    expect([...chunks.values()].map((row) => row.chunk_index)).toEqual([1]);
  });

  it('the pipeline pattern of document, chunks, entities and status patch drains in one batch per drain', async () => {
    const { spillway, direct } = await engine('pipeline-one-batch');
    for (let n = 0; n < 3; n++) {
      const doc = uuid();
      const chunks = [chunk(doc, 0), chunk(doc, 1)];
      await spillway.write({ changes: [document(doc, { status: 'processing' })] });
      await spillway.write({ changes: chunks });
      await spillway.write({ changes: [patchDocument(doc, { status: 'completed' })] });
      await spillway.write({
        changes: chunks.map((c, i) => ({
          op: 'upsert',
          table: 'entity_mentions',
          record: {
            entity_uuid: uuid(),
            document_uuid: doc,
            chunk_uuid: c.record.chunk_uuid,
            entity_type: 'email',
            text: `e${i}`,
          },
        })),
      });
    }
    const result = await spillway.drain(Date.now() + 10_000);
    expect(result).toMatchObject({ batches: 1, applied: 18, deadLettered: 0, stoppedBy: 'empty' });
    expect(await countRows(direct, 'entity_mentions')).toBe(6);
  });

  it('dead letters are listed, replayed one at a time, and purged, in original order', async () => {
    const { spillway } = await engine('dead-letters');
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) {
      const { changesetId } = await spillway.write({ changes: [chunk(uuid(), i)] });
      ids.push(changesetId);
    }
    await spillway.drain(Date.now() + 10_000);
    expect((await spillway.listDeadLetters()).map((l) => l.changesetId)).toEqual(ids);
    // Replaying one without fixing anything sends it back to the dead-letter store, still in order.
    await spillway.replayDeadLetters({ changesetIds: [ids[1] as string] });
    expect((await spillway.buffer.stats()).backlog).toBe(1);
    await spillway.drain(Date.now() + 10_000);
    expect((await spillway.listDeadLetters()).map((l) => l.changesetId)).toEqual(ids);
    await expect(spillway.purgeDeadLetters({ changesetIds: ['nope'] })).rejects.toThrow(
      /no dead letter/,
    );
    expect(await spillway.purgeDeadLetters({ changesetIds: [ids[0] as string] })).toEqual([ids[0]]);
    expect(await spillway.purgeDeadLetters({ all: true })).toEqual(ids.slice(1));
    expect((await spillway.health()).deadLetters).toBe(0);
  });

  it('refuses writes with BackpressureError past the backlog limit and accepts again once drained', async () => {
    const { spillway } = await engine('backpressure', { backlogLimit: 50 });
    const doc = uuid();
    await spillway.write({ changes: [document(doc)] });
    for (let i = 0; i < 49; i++) await spillway.write({ changes: [chunk(doc, i)] });
    const refused = await spillway.write({ changes: [chunk(doc, 99)] }).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(BackpressureError);
    expect((refused as BackpressureError).retryable).toBe(true);
    expect((refused as BackpressureError).backlog).toBe(50);
    expect((await spillway.buffer.stats()).backlog).toBe(50);
    await drainAll(spillway);
    await expect(spillway.write({ changes: [chunk(doc, 99)] })).resolves.toMatchObject({
      accepted: 1,
    });
  });

  it('read returns pending state overlaid on the database row, and a pending delete reads as absent', async () => {
    const { spillway } = await engine('read');
    const doc = uuid();
    const key = { table: 'source_documents', key: { document_uuid: doc } };
    expect(await spillway.read(key)).toEqual({ record: null, pending: false });
    await spillway.write({ changes: [document(doc, { metadata: { pages: [1, 2] } })] });
    expect(await spillway.read(key)).toMatchObject({
      record: {
        document_uuid: doc,
        status: 'pending',
        metadata: { pages: [1, 2] },
        created_at: null,
      },
      pending: true,
    });
    await spillway.drain(Date.now() + 10_000);
    const synced = await spillway.read(key);
    expect(synced.pending).toBe(false);
    expect(synced.record?.created_at).toMatch(/^\d{4}-\d\d-\d\dT/);
    await spillway.write({
      changes: [patchDocument(doc, { status: 'failed' })],
    });
    expect(await spillway.read(key)).toMatchObject({
      record: { status: 'failed', created_at: synced.record?.created_at },
      pending: true,
    });
    await spillway.write({
      changes: [deleteDocument(doc)],
    });
    expect(await spillway.read(key)).toEqual({ record: null, pending: true });
    await spillway.drain(Date.now() + 10_000);
    expect(await spillway.read(key)).toEqual({ record: null, pending: false });
  });

  it('an overlay entry survives the drain of an older change when a newer one arrived meanwhile', async () => {
    const { spillway, another } = await engine('overlay-race');
    const doc = uuid();
    const key = { table: 'source_documents', key: { document_uuid: doc } };
    const seen: unknown[] = [];
    let commits = 0;
    const drainer = another({
      batchSize: 1,
      drainHooks: {
        afterCommit: async () => {
          commits += 1;
          if (commits === 1) {
            // A newer patch arrives between the first batch's commit and its settling.
            await spillway.write({
              changes: [patchDocument(doc, { status: 'completed' })],
            });
          } else {
            // The first batch is settled; the patch is committed but not settled yet.
            seen.push(await spillway.read(key));
          }
        },
      },
    });
    await spillway.write({ changes: [document(doc)] });
    expect(await drainer.drain(Date.now() + 10_000)).toMatchObject({ applied: 2, batches: 2 });
    expect(seen).toEqual([
      { record: expect.objectContaining({ status: 'completed' }), pending: true },
    ]);
    expect(await spillway.read(key)).toMatchObject({
      record: { status: 'completed' },
      pending: false,
    });
  });

  it('two drainers started at the same moment on the same backlog apply everything exactly once', async () => {
    const { spillway, direct, another } = await engine('two-drainers', { batchSize: 20 });
    const docs = Array.from({ length: 200 }, () => uuid());
    for (const doc of docs) await spillway.write({ changes: [document(doc), chunk(doc, 0)] });
    for (const doc of docs.slice(0, 50)) {
      await spillway.write({
        changes: [patchDocument(doc, { status: 'completed' })],
      });
    }
    const second = another();
    const results = await Promise.all([
      spillway.drain(Date.now() + 30_000),
      second.drain(Date.now() + 30_000),
    ]);
    for (const r of results) expect(['empty', 'lease-held']).toContain(r.stoppedBy);
    await drainAll(second);
    expect(results.reduce((n, r) => n + r.applied, 0)).toBe(450);
    expect(await countRows(direct, 'source_documents')).toBe(200);
    expect(await countRows(direct, 'document_chunks')).toBe(200);
    const completed = await direct.query(
      `SELECT count(*)::int AS n FROM source_documents WHERE status = 'completed'`,
    );
    expect(completed.rows[0].n).toBe(50);
  });

  it('a drainer that lost its lease cannot commit: the fencing token stops it', async () => {
    const { spillway, direct, another } = await engine('fencing', { leaseMs: 200 });
    const doc = uuid();
    await spillway.write({ changes: [document(doc)] });
    // A stale drainer read its batch, then stalled (GC pause, frozen container) past its lease.
    const stale = another();
    const staleToken = (await stale.control.acquireLease(200)) as string;
    const batch = await stale.buffer.readNew(10);
    await new Promise((r) => setTimeout(r, 300));
    // Meanwhile a newer drainer took over and applied more recent work.
    await spillway.write({
      changes: [patchDocument(doc, { status: 'failed' })],
    });
    await drainAll(spillway);
    await expect(
      stale.sink.apply(stale.sink.prepare(coalesce(batch), 0n), staleToken, 5_000),
    ).rejects.toThrow(/superseded/);
    const row = await direct.query('SELECT status FROM source_documents WHERE document_uuid = $1', [
      doc,
    ]);
    expect(row.rows[0].status).toBe('failed');
  });
  it('prunes tombstones only when nothing older can arrive: a dead letter waiting for replay keeps the row it deleted deleted', async () => {
    const { spillway, direct } = await engine('tombstones');
    const tombstones = async () =>
      (
        await direct.query(
          'SELECT count(*)::int AS n FROM spillway."public.source_documents" WHERE deleted',
        )
      ).rows[0].n;
    const [a, missingParent] = [uuid(), uuid()];
    // An old changeset upserts a and is dead-lettered (its chunk's parent does not exist yet).
    await spillway.write({ changes: [document(a), chunk(missingParent, 0)] });
    await spillway.drain(Date.now() + 10_000);
    expect(await spillway.listDeadLetters()).toHaveLength(1);
    // Later a is written again, then deleted: a tombstone newer than the dead letter.
    await spillway.write({ changes: [document(a)] });
    await spillway.write({ changes: [deleteDocument(a)] });
    expect(await spillway.pruneTombstones()).toBe(0); // the backlog is not empty
    await drainAll(spillway);
    expect(await tombstones()).toBe(1);
    // The dead letter is older than the tombstone: pruning must keep it.
    expect(await spillway.pruneTombstones()).toBe(0);
    // Fix the cause and replay: the old upsert of a must not bring a back (G2).
    await spillway.write({ changes: [document(missingParent)] });
    await spillway.replayDeadLetters({ all: true });
    await drainAll(spillway);
    expect(await countRows(direct, 'document_chunks')).toBe(1);
    expect(await spillway.read({ table: 'source_documents', key: { document_uuid: a } })).toEqual({
      record: null,
      pending: false,
    });
    // Nothing older can arrive any more: the tombstone goes.
    expect(await spillway.pruneTombstones()).toBe(1);
    expect(await tombstones()).toBe(0);
  });
  /**
   * An engine that drained `a` as kept.pdf and then buffered a stale change of `a` and a change
   * of `b`, over a database whose spillway.row_versions (where releases before version tables
   * kept versions, keyed by JSON text) holds versions of both newer than those changes, `b`'s a
   * tombstone. `beforeVersionTables` empties the version table too, as such a release left it.
   */
  async function staleBehindOldVersions(name: string, beforeVersionTables: boolean) {
    const { spillway, direct } = await engine(name);
    const [a, b] = [uuid(), uuid()];
    // The first drain agrees the epoch, before any version is planted below.
    await spillway.write({ changes: [document(a, { filename: 'kept.pdf' })] });
    await drainAll(spillway);
    const stale = await spillway.write({ changes: [document(a, { filename: 'stale.pdf' })] });
    const revived = await spillway.write({ changes: [document(b)] });
    if (beforeVersionTables) await direct.query('DELETE FROM spillway."public.source_documents"');
    await direct.query(
      `INSERT INTO spillway.row_versions (table_name, row_key, version, deleted) VALUES
         ('public.source_documents', $1, $2::bigint + 1, false),
         ('public.source_documents', $3, $4::bigint + 1, true)`,
      [
        JSON.stringify([a]),
        versionOf(stale.version),
        JSON.stringify([b]),
        versionOf(revived.version),
      ],
    );
    const oldVersionsLeft = async () =>
      (await direct.query('SELECT count(*)::int AS n FROM spillway.row_versions')).rows[0].n;
    return { spillway, direct, b, oldVersionsLeft };
  }

  it('after migrating a database whose versions are in spillway.row_versions, an older change of a key stays refused and a deleted row stays deleted (G2)', async () => {
    const { spillway, direct, b, oldVersionsLeft } = await staleBehindOldVersions(
      'moved-versions',
      true,
    );
    await runMigrations(direct);
    expect(await oldVersionsLeft()).toBe(0);

    await drainAll(spillway);
    const rows = await tableRows(direct, 'source_documents');
    expect([...rows.values()].map((row) => row.filename)).toEqual(['kept.pdf']);
    expect(await spillway.read({ table: 'source_documents', key: { document_uuid: b } })).toEqual({
      record: null,
      pending: false,
    });
  });

  it('versions a drain of the release before version tables wrote to spillway.row_versions after migrate still guard their keys (G2)', async () => {
    // Migrated already (version tables in place); then a sync of the earlier release, still
    // running through the deploy, recorded newer versions where that release kept them.
    const { spillway, direct, oldVersionsLeft } = await staleBehindOldVersions(
      'late-old-versions',
      false,
    );

    await drainAll(spillway);
    const rows = await tableRows(direct, 'source_documents');
    expect([...rows.values()].map((row) => row.filename)).toEqual(['kept.pdf']);
    expect(await oldVersionsLeft()).toBe(0);
  });

  it('a table keyed by text and a column named version keeps G2 in its version table: stale changes refused, a deleted row stays deleted, reads agree', async () => {
    const revisions: TableDef = {
      name: 'revisions',
      primaryKey: ['name', 'version'],
      columns: {
        name: { type: 'text', nullable: false },
        version: { type: 'integer', nullable: false },
        document_uuid: { type: 'uuid' },
        body: { type: 'text' },
      },
      foreignKeys: [{ columns: ['document_uuid'], references: 'source_documents' }],
    };
    const registry = new SchemaRegistry([...pipelineTables, revisions]);
    const { spillway, direct } = await engine('text-keys', { registry });
    await direct.query(
      `CREATE TABLE public.revisions (name text, version integer, document_uuid uuid REFERENCES public.source_documents (document_uuid) ON DELETE RESTRICT, body text, PRIMARY KEY (name, version));
       CREATE INDEX ON public.revisions (document_uuid)`,
    );
    await runMigrations(direct, { registry });
    const doc = uuid();
    const rev = (name: string, version: number, body: string) => ({
      op: 'upsert' as const,
      table: 'revisions',
      record: { name, version, document_uuid: doc, body },
    });
    const key = (name: string, version: number) => ({ name, version });
    await spillway.write({ changes: [document(doc)] });
    await drainAll(spillway);
    await spillway.write({ changes: [rev('Ä "b"', 1, 'one'), rev('a', 2, 'two')] });
    await spillway.write({
      changes: [rev('a', 2, 'newer'), { op: 'delete', table: 'revisions', key: key('Ä "b"', 1) }],
    });
    // The newer changeset lands first; the older one is delivered after it and must change nothing.
    await applyNewerFirst(spillway);
    await drainAll(spillway);
    const stored = async () =>
      (await direct.query('SELECT name, version, body FROM revisions ORDER BY name')).rows;
    expect(await stored()).toEqual([{ name: 'a', version: 2, body: 'newer' }]);
    const versions = await direct.query(
      'SELECT name, version, deleted FROM spillway."public.revisions" ORDER BY name',
    );
    expect(versions.rows.map((r) => [r.name, r.version, r.deleted])).toEqual([
      ['a', 2, false],
      ['Ä "b"', 1, true],
    ]);
    // A patch and a new row pending: the read by parent merges them with the stored rows.
    await spillway.write({
      changes: [
        { op: 'patch', table: 'revisions', key: key('a', 2), set: { body: 'patched' } },
        rev('b', 3, 'three'),
      ],
    });
    const pending = await spillway.readChildren({
      table: 'revisions',
      where: { document_uuid: doc },
    });
    expect(pending.records.map((r) => r.body)).toEqual(['patched', 'three']);
    await drainAll(spillway);
    expect(await stored()).toEqual([
      { name: 'a', version: 2, body: 'patched' },
      { name: 'b', version: 3, body: 'three' },
    ]);
    expect(await spillway.read({ table: 'revisions', key: key('a', 2) })).toMatchObject({
      record: { body: 'patched' },
      pending: false,
    });
    expect(await spillway.read({ table: 'revisions', key: key('Ä "b"', 1) })).toEqual({
      record: null,
      pending: false,
    });
    const children = await spillway.readChildren({
      table: 'revisions',
      where: { document_uuid: doc },
    });
    expect(children.records.map((r) => r.name)).toEqual(['a', 'b']);
  });

  it("prunes tombstones from every table's version table, at most the limit in all", async () => {
    const { spillway, direct } = await engine('prune-limit');
    const [a, b] = [uuid(), uuid()];
    await spillway.write({ changes: [document(a), document(b), chunk(a, 0)] });
    await drainAll(spillway);
    const [c] = (
      await direct.query<{ chunk_uuid: string }>('SELECT chunk_uuid FROM document_chunks')
    ).rows;
    await spillway.write({
      changes: [
        { op: 'delete', table: 'document_chunks', key: { chunk_uuid: c?.chunk_uuid } },
        deleteDocument(a),
        deleteDocument(b),
      ],
    });
    await drainAll(spillway);
    const everything = '9000000000000000000';
    expect(await spillway.sink.pruneTombstones(everything, 2)).toBe(2);
    expect(await spillway.sink.pruneTombstones(everything, 2)).toBe(1);
    expect(await spillway.sink.pruneTombstones(everything, 2)).toBe(0);
    const left = await direct.query(
      `SELECT (SELECT count(*) FROM spillway."public.source_documents")::int AS docs,
              (SELECT count(*) FROM spillway."public.document_chunks")::int AS chunks`,
    );
    expect(left.rows[0]).toEqual({ docs: 0, chunks: 0 });
  });

  it('a buffer new to the database starts its versions above every version its version tables hold', async () => {
    const { spillway, direct } = await engine('new-buffer-versions');
    const a = uuid();
    // Versions another buffer left, from a clock a day ahead: a's tombstone, and one of a chunk.
    const ahead = (BigInt(Date.now() + 86_400_000) * 1_000_000n).toString();
    await direct.query(
      'INSERT INTO spillway."public.source_documents" (document_uuid, version, deleted) VALUES ($1, $2::bigint - 5, true)',
      [a, ahead],
    );
    await direct.query(
      'INSERT INTO spillway."public.document_chunks" (chunk_uuid, version, deleted) VALUES ($1, $2::bigint, false)',
      [uuid(), ahead],
    );
    await spillway.write({ changes: [document(a)] });
    await drainAll(spillway);
    expect(await countRows(direct, 'source_documents')).toBe(1);
    const fence = await direct.query<{ v: string }>(
      'SELECT max_version::text AS v FROM spillway.drain_fence',
    );
    expect(BigInt(fence.rows[0]?.v ?? '0')).toBeGreaterThan(BigInt(ahead));
  });

  it('a dead letter the current table definitions no longer accept is not replayed, and the error says which and why', async () => {
    const { spillway, another } = await engine('replay-revalidate');
    await spillway.write({ changes: [chunk(uuid(), 0)] });
    await spillway.drain(Date.now() + 10_000);
    const [letter] = await spillway.listDeadLetters();
    if (letter === undefined) throw new Error('expected a dead letter');
    // Since then, chunks gained a required column.
    const changed = new SchemaRegistry(
      pipelineTables.map((t) =>
        t.name === 'document_chunks'
          ? {
              ...t,
              columns: { ...t.columns, language: { type: 'text' as const, nullable: false } },
            }
          : t,
      ),
    );
    const error = await another({ registry: changed })
      .replayDeadLetters({ all: true })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ValidationError);
    expect((error as ValidationError).path).toBe(
      `deadLetters[${letter.changesetId}].changes[0].record.language`,
    );
    expect(await spillway.listDeadLetters()).toHaveLength(1);
    expect((await spillway.buffer.stats()).backlog).toBe(0);
  });

  it('jsonb and text values with quotes, backslashes, unicode and nested arrays land exactly as written, and read alike before and after', async () => {
    const { spillway, direct } = await engine('escaping');
    const tricky = [
      'double " quote',
      "single ' quote",
      'back\\slash \\" and \\\\ two',
      'a literal \\u0041 escape, \\n not a newline',
      'line\nbreak\ttab\rreturn\b\f',
      '\u0001\u001f controls',
      'é ß 中文 עברית 🚀 👩‍👩‍👧 e\u0301',
      '\u2028\u2029 separators, \ud7ff\ue000\uffff',
      '$1 ::json $$ -- /* */ ;',
      '',
    ];
    const metadata = {
      tricky,
      nested: [[tricky[0], [tricky[2], [tricky[6], null, true, false]]], [], [[]]],
      numbers: [0, -42, 1.5, 1e-7, 123456789012, 0.1],
      [tricky[0] as string]: { [tricky[2] as string]: tricky[6], [tricky[6] as string]: {} },
    };
    const records = tricky.map((text, i) => ({
      document_uuid: uuid(),
      filename: text === '' ? 'empty' : text,
      status: 'pending',
      error_message: text,
      metadata: { i, ...metadata },
    }));
    await spillway.write({
      changes: records.map((record) => ({ op: 'upsert', table: 'source_documents', record })),
    });
    const read = () =>
      Promise.all(
        records.map(async (record) => {
          const { record: row } = await spillway.read({
            table: 'source_documents',
            key: { document_uuid: record.document_uuid },
          });
          return [row?.filename, row?.error_message, row?.metadata];
        }),
      );
    const before = await read();
    await drainAll(spillway);
    const stored = await tableRows(direct, 'source_documents');
    for (const record of records) {
      const row = stored.get(JSON.stringify([record.document_uuid]));
      expect(row?.filename).toBe(record.filename);
      expect(row?.error_message).toBe(record.error_message);
      expect(row?.metadata).toEqual(record.metadata);
    }
    // Compared inside the database too: the stored jsonb equals the JSON written, as PostgreSQL
    // parses it, whatever node-postgres makes of either.
    const { rows } = await direct.query<{ same: boolean }>(
      "SELECT bool_and(metadata - 'i' = $1::jsonb) AS same FROM source_documents",
      [JSON.stringify(metadata)],
    );
    expect(rows[0]?.same).toBe(true);
    expect(await read()).toEqual(before);
    expect(before).toEqual(
      records.map((record) => [record.filename, record.error_message, record.metadata]),
    );
  });

  it('a self-referencing table of 600 rows, each child before its parent, lands and goes in one changeset each', async () => {
    const nodes: TableDef = {
      name: 'nodes',
      primaryKey: ['id'],
      columns: { id: { type: 'uuid', nullable: false }, parent: { type: 'uuid' } },
      foreignKeys: [{ columns: ['parent'], references: 'nodes' }],
    };
    const registry = new SchemaRegistry([...pipelineTables, nodes]);
    const { spillway, direct } = await engine('self-reference', { registry });
    await direct.query(
      'CREATE TABLE public.nodes (id uuid PRIMARY KEY, parent uuid REFERENCES public.nodes (id) ON DELETE RESTRICT)',
    );
    // As a user adds a table: its migration (here the statement above), then migrate with the
    // definitions that include it, which also creates its version table.
    await runMigrations(direct, { registry });
    // Each node's parent is the next one: split over statements, a child would miss its parent
    // (and a parent deleted first would keep a child); one statement checks at its end.
    const ids = Array.from({ length: 600 }, () => uuid());
    await spillway.write({
      changes: ids.map((id, i) => ({
        op: 'upsert',
        table: 'nodes',
        record: { id, parent: ids[i + 1] ?? null },
      })),
    });
    expect(await spillway.drain(Date.now() + 20_000)).toMatchObject({
      applied: ids.length,
      deadLettered: 0,
      stoppedBy: 'empty',
    });
    expect(await countRows(direct, 'nodes')).toBe(ids.length);
    await spillway.write({
      changes: [...ids].reverse().map((id) => ({ op: 'delete', table: 'nodes', key: { id } })),
    });
    expect(await spillway.drain(Date.now() + 20_000)).toMatchObject({
      applied: ids.length,
      deadLettered: 0,
      stoppedBy: 'empty',
    });
    expect(await countRows(direct, 'nodes')).toBe(0);
  });
});
