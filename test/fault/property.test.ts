/**
 * Random sequences of upserts, patches and deletes over a few rows, drained with crashes and
 * redeliveries injected at random points, must leave the database equal to an in-memory model
 * that applies every acknowledged changeset in acknowledgement order (G1, G2, G3, G7).
 */
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pipelineRegistry } from '../../lambdas/schema/tables.js';
import { Spillway } from '../../lambdas/spillway.js';
import {
  createTestEngine,
  drainAll,
  type TestEngine,
  tableRows,
  testSink,
} from '../support/engine.js';
import { uniquePrefix, useServices } from '../support/services.js';

const services = useServices();
/** The Data API path costs more per run: a fifth of the runs there (the 10-minute budget). */
const runs = (n: number): number => (testSink === 'data-api' ? Math.ceil(n / 5) : n);

let engine: TestEngine;
beforeAll(async () => {
  engine = await createTestEngine(services(), 'property');
});
afterAll(async () => {
  await engine.close();
});

const KEYS = [
  '00000000-0000-4000-8000-000000000001',
  '00000000-0000-4000-8000-000000000002',
  '00000000-0000-4000-8000-000000000003',
  '00000000-0000-4000-8000-000000000004',
];
const STATUSES = ['pending', 'processing', 'completed', 'failed'] as const;

type Row = {
  filename: string;
  status: string;
  page_count: number | null;
  metadata: Record<string, number> | null;
};
type Op =
  | { op: 'upsert'; key: string; row: Row }
  | { op: 'patch'; key: string; set: Partial<Row> }
  | { op: 'delete'; key: string };

const rowArb: fc.Arbitrary<Row> = fc.record({
  filename: fc.constantFrom('a.pdf', 'b.pdf', "o'brien.pdf"),
  status: fc.constantFrom(...STATUSES),
  page_count: fc.option(fc.integer({ min: 0, max: 50 }), { nil: null }),
  metadata: fc.option(fc.dictionary(fc.constantFrom('x', 'y'), fc.integer({ min: 0, max: 9 })), {
    nil: null,
  }),
});
const opArb: fc.Arbitrary<Op> = fc.oneof(
  fc.record({ op: fc.constant('upsert' as const), key: fc.constantFrom(...KEYS), row: rowArb }),
  fc.record({
    op: fc.constant('patch' as const),
    key: fc.constantFrom(...KEYS),
    set: fc
      .record(
        {
          status: fc.constantFrom(...STATUSES),
          page_count: fc.option(fc.integer({ min: 0, max: 50 }), { nil: null }),
        },
        { requiredKeys: [] },
      )
      .filter((set) => Object.keys(set).length > 0),
  }),
  fc.record({ op: fc.constant('delete' as const), key: fc.constantFrom(...KEYS) }),
);
const changesetArb = fc.array(opArb, { minLength: 1, maxLength: 3 });

/** What applying each changeset atomically, in order, gives; a changeset that patches a missing row has no effect. */
function model(changesets: readonly Op[][]): { rows: Map<string, Row>; rejected: number } {
  const rows = new Map<string, Row>();
  let rejected = 0;
  for (const changeset of changesets) {
    const next = new Map(rows);
    let ok = true;
    for (const change of changeset) {
      if (change.op === 'upsert') next.set(change.key, { ...change.row });
      else if (change.op === 'delete') next.delete(change.key);
      else {
        const current = next.get(change.key);
        if (current === undefined) {
          ok = false;
          break;
        }
        next.set(change.key, { ...current, ...change.set });
      }
    }
    if (ok) {
      rows.clear();
      for (const [k, v] of next) rows.set(k, v);
    } else {
      rejected += 1;
    }
  }
  return { rows, rejected };
}

function toWrite(changeset: readonly Op[]) {
  return {
    changes: changeset.map((c) =>
      c.op === 'upsert'
        ? { op: 'upsert', table: 'source_documents', record: { document_uuid: c.key, ...c.row } }
        : c.op === 'patch'
          ? { op: 'patch', table: 'source_documents', key: { document_uuid: c.key }, set: c.set }
          : { op: 'delete', table: 'source_documents', key: { document_uuid: c.key } },
    ),
  };
}

class Crash extends Error {}

describe('random histories with crashes and redeliveries', () => {
  it('converge to the model after draining', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(changesetArb, { minLength: 1, maxLength: 25 }),
        fc.integer({ min: 1, max: 6 }),
        fc.array(fc.integer({ min: 0, max: 3 }), { minLength: 30, maxLength: 30 }),
        fc.integer({ min: 1, max: 24 }),
        async (changesets, batchSize, crashPlan, drainEvery) => {
          await engine.direct.query(
            'TRUNCATE source_documents, spillway."public.source_documents", spillway.drain_fence CASCADE',
          );
          let step = 0;
          // 0: no crash; 1: crash after commit, before settling; 2: crash before applying.
          const crashAt = (): number => crashPlan[step++ % crashPlan.length] ?? 0;
          const spillway = new Spillway({
            redis: engine.redis,
            ...engine.sinkOptions,
            registry: pipelineRegistry,
            prefix: uniquePrefix('prop'),
            batchSize,
            drainHooks: {
              afterCommit: () => {
                if (crashAt() === 1) throw new Crash('after commit');
              },
            },
          });
          const drainWithCrashes = async (): Promise<void> => {
            for (let i = 0; i < 3; i++) {
              if (crashAt() === 2) continue;
              await spillway.drain(Date.now() + 10_000).catch((error: unknown) => {
                if (!(error instanceof Crash)) throw error;
              });
            }
          };
          for (const [i, changeset] of changesets.entries()) {
            await spillway.write(toWrite(changeset));
            // Drains interleave with writes, so some batches see rows the database already has.
            if (i % drainEvery === drainEvery - 1) await drainWithCrashes();
          }
          await drainWithCrashes();
          await drainAll(
            new Spillway({
              redis: engine.redis,
              ...engine.sinkOptions,
              registry: pipelineRegistry,
              prefix: spillwayPrefix(spillway),
            }),
          );

          const expected = model(changesets);
          const actual = await tableRows(engine.direct, 'source_documents');
          const summary = (rows: Map<string, unknown>) => [...rows.keys()].sort();
          expect(summary(actual)).toEqual(
            summary(new Map([...expected.rows.keys()].map((k) => [JSON.stringify([k]), 1]))),
          );
          for (const [key, row] of expected.rows) {
            const got = actual.get(JSON.stringify([key]));
            expect({
              filename: got?.filename,
              status: got?.status,
              page_count: got?.page_count,
              metadata: got?.metadata,
            }).toEqual(row);
          }
          expect((await spillway.health()).deadLetters).toBe(expected.rejected);
          expect((await spillway.buffer.stats()).backlog).toBe(0);
        },
      ),
      { numRuns: runs(200) },
    );
  }, 240_000);
});

function spillwayPrefix(spillway: Spillway): string {
  return spillway.buffer.keys.backlog.slice(1, spillway.buffer.keys.backlog.indexOf('}'));
}

const DOCS = KEYS.slice(0, 2);
const CHUNKS = [
  '00000000-0000-4000-8000-000000000011',
  '00000000-0000-4000-8000-000000000012',
  '00000000-0000-4000-8000-000000000013',
];

type Doc = { filename: string; status: string };
type Chunk = { document_uuid: string; chunk_index: number; text: string };
type FkOp =
  | { op: 'upsert'; table: 'source_documents'; key: string; row: Doc }
  | { op: 'patch'; table: 'source_documents'; key: string; set: Partial<Doc> }
  | { op: 'delete'; table: 'source_documents' | 'document_chunks'; key: string }
  | { op: 'upsert'; table: 'document_chunks'; key: string; row: Chunk }
  | { op: 'patch'; table: 'document_chunks'; key: string; set: Partial<Chunk> };

const docArb: fc.Arbitrary<Doc> = fc.record({
  filename: fc.constantFrom('a.pdf', 'b.pdf'),
  status: fc.constantFrom(...STATUSES),
});
const chunkArb: fc.Arbitrary<Chunk> = fc.record({
  document_uuid: fc.constantFrom(...DOCS),
  chunk_index: fc.integer({ min: 0, max: 3 }),
  text: fc.constantFrom('x', 'y'),
});
const fkOpArb: fc.Arbitrary<FkOp> = fc.oneof(
  fc.record({
    op: fc.constant('upsert' as const),
    table: fc.constant('source_documents' as const),
    key: fc.constantFrom(...DOCS),
    row: docArb,
  }),
  fc.record({
    op: fc.constant('patch' as const),
    table: fc.constant('source_documents' as const),
    key: fc.constantFrom(...DOCS),
    set: fc.record({ status: fc.constantFrom(...STATUSES) }),
  }),
  fc.record({
    op: fc.constant('delete' as const),
    table: fc.constant('source_documents' as const),
    key: fc.constantFrom(...DOCS),
  }),
  fc.record({
    op: fc.constant('upsert' as const),
    table: fc.constant('document_chunks' as const),
    key: fc.constantFrom(...CHUNKS),
    row: chunkArb,
  }),
  fc.record({
    op: fc.constant('patch' as const),
    table: fc.constant('document_chunks' as const),
    key: fc.constantFrom(...CHUNKS),
    // Moves the chunk to another document, or changes its text only.
    set: fc.oneof(
      fc.record({ document_uuid: fc.constantFrom(...DOCS) }),
      fc.record({ text: fc.constantFrom('x', 'y') }),
    ),
  }),
  fc.record({
    op: fc.constant('delete' as const),
    table: fc.constant('document_chunks' as const),
    key: fc.constantFrom(...CHUNKS),
  }),
);

/**
 * Each changeset applied alone, in acknowledgement order: its changes in order, then refused as
 * a whole when it patches a missing row or leaves a chunk whose document does not exist (which
 * is what foreign-key order inside one transaction gives when the tables are consistent before).
 */
function fkModel(changesets: readonly FkOp[][]): {
  docs: Map<string, Doc>;
  chunks: Map<string, Chunk>;
  refused: number[];
} {
  let docs = new Map<string, Doc>();
  let chunks = new Map<string, Chunk>();
  const refused: number[] = [];
  for (const [index, changeset] of changesets.entries()) {
    const nextDocs = new Map(docs);
    const nextChunks = new Map(chunks);
    let ok = true;
    for (const change of changeset) {
      const rows: Map<string, Doc | Chunk> =
        change.table === 'source_documents' ? nextDocs : nextChunks;
      if (change.op === 'upsert') rows.set(change.key, { ...change.row });
      else if (change.op === 'delete') rows.delete(change.key);
      else {
        const current = rows.get(change.key);
        if (current === undefined) {
          ok = false;
          break;
        }
        rows.set(change.key, { ...current, ...change.set });
      }
    }
    if (ok) ok = [...nextChunks.values()].every((c) => nextDocs.has(c.document_uuid));
    if (ok) {
      docs = nextDocs;
      chunks = nextChunks;
    } else {
      refused.push(index);
    }
  }
  return { docs, chunks, refused };
}

function toFkWrite(changeset: readonly FkOp[]) {
  const keyColumn = (table: FkOp['table']) =>
    table === 'source_documents' ? 'document_uuid' : 'chunk_uuid';
  return {
    changes: changeset.map((c) =>
      c.op === 'upsert'
        ? { op: 'upsert', table: c.table, record: { [keyColumn(c.table)]: c.key, ...c.row } }
        : c.op === 'patch'
          ? { op: 'patch', table: c.table, key: { [keyColumn(c.table)]: c.key }, set: c.set }
          : { op: 'delete', table: c.table, key: { [keyColumn(c.table)]: c.key } },
    ),
  };
}

describe('random histories of documents and chunks drained in random batches', () => {
  it('converge to applying each changeset alone in order, with the same dead letters', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(
          fc.record({
            changes: fc.array(fkOpArb, { minLength: 1, maxLength: 3 }),
            // Drain after this changeset, in batches of this many changesets (0: no drain here).
            drainBatchSize: fc.oneof(
              { arbitrary: fc.constant(0), weight: 3 },
              { arbitrary: fc.integer({ min: 1, max: 8 }), weight: 1 },
            ),
          }),
          { minLength: 1, maxLength: 20 },
        ),
        fc.integer({ min: 1, max: 8 }),
        fc.array(fc.boolean(), { minLength: 10, maxLength: 10 }),
        async (steps, finalBatchSize, crashPlan) => {
          await engine.direct.query(
            'TRUNCATE document_chunks, source_documents, spillway."public.document_chunks", spillway."public.source_documents", spillway.drain_fence CASCADE',
          );
          const prefix = uniquePrefix('prop-fk');
          let crashes = 0;
          // Each drain is a fresh drainer with its own batch size; some die after a commit,
          // before settling, so that the next one gets the same changesets again.
          const drain = async (batchSize: number): Promise<void> => {
            const crash = crashPlan[crashes++ % crashPlan.length] ?? false;
            const spillway = new Spillway({
              redis: engine.redis,
              ...engine.sinkOptions,
              registry: pipelineRegistry,
              prefix,
              batchSize,
              drainHooks: {
                afterCommit: () => {
                  if (crash) throw new Crash('after commit');
                },
              },
            });
            await spillway.drain(Date.now() + 10_000).catch((error: unknown) => {
              if (!(error instanceof Crash)) throw error;
            });
          };
          const writer = new Spillway({
            redis: engine.redis,
            ...engine.sinkOptions,
            registry: pipelineRegistry,
            prefix,
          });
          const ids: string[] = [];
          for (const step of steps) {
            ids.push((await writer.write(toFkWrite(step.changes))).changesetId);
            if (step.drainBatchSize > 0) await drain(step.drainBatchSize);
          }
          await drainAll(
            new Spillway({
              redis: engine.redis,
              ...engine.sinkOptions,
              registry: pipelineRegistry,
              prefix,
              batchSize: finalBatchSize,
            }),
          );

          const expected = fkModel(steps.map((s) => s.changes));
          const docs = await tableRows(engine.direct, 'source_documents');
          const chunks = await tableRows(engine.direct, 'document_chunks');
          expect(
            Object.fromEntries(
              [...docs.values()].map((r) => [
                r.document_uuid,
                { filename: r.filename, status: r.status },
              ]),
            ),
          ).toEqual(Object.fromEntries(expected.docs));
          expect(
            Object.fromEntries(
              [...chunks.values()].map((r) => [
                r.chunk_uuid,
                { document_uuid: r.document_uuid, chunk_index: r.chunk_index, text: r.text },
              ]),
            ),
          ).toEqual(Object.fromEntries(expected.chunks));
          const deadLetters = await writer.listDeadLetters({ limit: 1_000 });
          expect(deadLetters.map((d) => ids.indexOf(d.changesetId)).sort((a, b) => a - b)).toEqual(
            expected.refused,
          );
          expect((await writer.buffer.stats()).backlog).toBe(0);
        },
      ),
      { numRuns: runs(150) },
    );
  }, 240_000);
});
