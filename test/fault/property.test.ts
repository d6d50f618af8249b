/**
 * Random sequences of upserts, patches and deletes over a few rows, drained with crashes and
 * redeliveries injected at random points, must leave the database equal to an in-memory model
 * that applies every acknowledged changeset in acknowledgement order (G1, G2, G3, G7).
 */
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pipelineRegistry } from '../../lambdas/schema/tables.js';
import { Spillway } from '../../lambdas/spillway.js';
import { createTestEngine, drainAll, type TestEngine, tableRows } from '../support/engine.js';
import { uniquePrefix, useServices } from '../support/services.js';

const services = useServices();
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
            'TRUNCATE source_documents, spillway.row_versions, spillway.drain_fence CASCADE',
          );
          let step = 0;
          // 0: no crash; 1: crash after commit, before settling; 2: crash before applying.
          const crashAt = (): number => crashPlan[step++ % crashPlan.length] ?? 0;
          const spillway = new Spillway({
            redis: engine.redis,
            pool: engine.pool,
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
              pool: engine.pool,
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
      { numRuns: 200 },
    );
  }, 240_000);
});

function spillwayPrefix(spillway: Spillway): string {
  return spillway.buffer.keys.log.slice(1, spillway.buffer.keys.log.indexOf('}'));
}
