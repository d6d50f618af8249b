import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { BatchPlan, type PlannedChangeset, planBatch } from '../../lambdas/core/batch-plan.js';
import { validateChangeset } from '../../lambdas/core/changeset.js';
import { SchemaRegistry, type TableDef } from '../../lambdas/core/schema.js';
import { pipelineRegistry } from '../../lambdas/schema/tables.js';

const id = (n: number): string => `00000000-0000-4000-8000-${String(n).padStart(12, '0')}`;
const [D1, D2, C1, C2, E1, E2, R1, T1] = [1, 2, 11, 12, 21, 22, 31, 41].map(id) as [
  string,
  string,
  string,
  string,
  string,
  string,
  string,
  string,
];

type Input = Record<string, unknown>;
const cs = (...changes: Input[]): PlannedChangeset => ({
  changes: validateChangeset({ changes }, pipelineRegistry),
});
const doc = (d: string, status = 'pending'): Input => ({
  op: 'upsert',
  table: 'source_documents',
  record: { document_uuid: d, filename: 'a.pdf', status },
});
const patchDoc = (d: string, set: Input): Input => ({
  op: 'patch',
  table: 'source_documents',
  key: { document_uuid: d },
  set,
});
const deleteOf = (table: string, column: string, key: string): Input => ({
  op: 'delete',
  table,
  key: { [column]: key },
});
const chunk = (c: string, d: string): Input => ({
  op: 'upsert',
  table: 'document_chunks',
  record: { chunk_uuid: c, document_uuid: d, chunk_index: 0, text: 'x' },
});
const patchChunk = (c: string, set: Input): Input => ({
  op: 'patch',
  table: 'document_chunks',
  key: { chunk_uuid: c },
  set,
});
const entity = (e: string, d: string, c: string | null): Input => ({
  op: 'upsert',
  table: 'entity_mentions',
  record: { entity_uuid: e, document_uuid: d, chunk_uuid: c, entity_type: 'email', text: 'x' },
});
const relationship = (r: string, d: string, from: string, to: string): Input => ({
  op: 'upsert',
  table: 'relationships',
  record: {
    relationship_uuid: r,
    document_uuid: d,
    source_entity_uuid: from,
    target_entity_uuid: to,
    relationship_type: 'co_occurs_with',
  },
});
const task = (t: string, d: string, status: string): Input => ({
  op: 'upsert',
  table: 'processing_tasks',
  record: { task_id: t, document_uuid: d, task_type: 'extract', status },
});

/** How many of the changesets, from the first, the plan puts in one batch. */
function admitted(changesets: readonly PlannedChangeset[], registry = pipelineRegistry): number {
  return planBatch(registry, changesets).batch.length;
}

describe('batch plan', () => {
  it('keeps the whole pipeline pattern of two documents in one batch', () => {
    const pipeline = (d: string, c: string, e: string, f: string, r: string, t: string) => [
      cs(doc(d, 'processing')),
      cs(chunk(c, d)),
      cs(patchDoc(d, { status: 'completed' })),
      cs(entity(e, d, c), entity(f, d, c), relationship(r, d, e, f), task(t, d, 'succeeded')),
    ];
    const changesets = [
      ...pipeline(D1, C1, E1, E2, R1, T1),
      // A retried step writes its task again, with the same document.
      cs(task(T1, D1, 'failed')),
      ...pipeline(D2, C2, id(23), id(24), id(32), id(42)),
    ];
    expect(admitted(changesets)).toBe(changesets.length);
  });

  it('admits a document with its chunks in the same changeset before the same document again', () => {
    const changesets = [cs(doc(D1), chunk(C1, D1)), cs(doc(D1), chunk(C1, D1))];
    expect(admitted(changesets)).toBe(2);
  });

  it('always admits the first changeset of a batch', () => {
    const plan = new BatchPlan(pipelineRegistry);
    const first = cs(deleteOf('source_documents', 'document_uuid', D1));
    expect(plan.admits(first)).toBe(true);
    plan.add(first);
    expect(plan.changesets).toBe(1);
  });

  it('ends the batch before the delete of a chunk that follows the delete of a document', () => {
    const changesets = [
      cs(deleteOf('source_documents', 'document_uuid', D1)),
      cs(deleteOf('document_chunks', 'chunk_uuid', C1)),
    ];
    const { batch, rest } = planBatch(pipelineRegistry, changesets);
    expect(batch).toEqual([changesets[0]]);
    expect(rest).toEqual([changesets[1]]);
  });

  it('ends the batch before a document upserted after a chunk that referenced it from another changeset', () => {
    expect(admitted([cs(chunk(C1, D1)), cs(doc(D1))])).toBe(1);
    // A patch cannot create the document, so it cannot rescue the chunk.
    expect(admitted([cs(chunk(C1, D1)), cs(patchDoc(D1, { status: 'failed' }))])).toBe(2);
    // Another document is no concern of the chunk.
    expect(admitted([cs(chunk(C1, D1)), cs(doc(D2))])).toBe(2);
  });

  it('ends the batch before any chunk written after a document was deleted, whatever document it names', () => {
    const deleted = cs(deleteOf('source_documents', 'document_uuid', D1));
    expect(admitted([deleted, cs(chunk(C1, D1))])).toBe(1);
    // The chunk may have belonged to the deleted document before: its old reference is unknown.
    expect(admitted([deleted, cs(chunk(C1, D2))])).toBe(1);
    expect(admitted([deleted, cs(patchChunk(C1, { document_uuid: D2 }))])).toBe(1);
    expect(admitted([deleted, cs(patchChunk(C1, { text: 'y' }))])).toBe(2);
    expect(admitted([deleted, cs(doc(D2))])).toBe(2);
  });

  it('ends the batch before a referenced row is upserted again after its delete, but not an unreferenced one', () => {
    expect(admitted([cs(deleteOf('source_documents', 'document_uuid', D1)), cs(doc(D1))])).toBe(1);
    expect(
      admitted([cs(deleteOf('processing_tasks', 'task_id', T1)), cs(task(T1, D1, 'queued'))]),
    ).toBe(2);
  });

  it('ends the batch before a change that drops the reference of an earlier change to a parent it did not write', () => {
    const first = cs(chunk(C1, D1));
    expect(admitted([first, cs(deleteOf('document_chunks', 'chunk_uuid', C1))])).toBe(1);
    expect(admitted([first, cs(chunk(C1, D2))])).toBe(1);
    expect(admitted([first, cs(patchChunk(C1, { document_uuid: D2 }))])).toBe(1);
    expect(admitted([first, cs(chunk(C1, D1))])).toBe(2);
    expect(admitted([first, cs(patchChunk(C1, { text: 'y' }))])).toBe(2);
    // With its document in the same changeset, the chunk's reference holds in any order.
    const resolved = cs(doc(D1), chunk(C1, D1));
    expect(admitted([resolved, cs(chunk(C1, D2))])).toBe(2);
  });

  it('decides each foreign key of a multi-level chain on its own', () => {
    // relationships -> entity_mentions -> document_chunks -> source_documents
    expect(
      admitted([
        cs(deleteOf('document_chunks', 'chunk_uuid', C1)),
        cs(deleteOf('entity_mentions', 'entity_uuid', E1)),
      ]),
    ).toBe(1);
    expect(
      admitted([
        cs(deleteOf('entity_mentions', 'entity_uuid', E1)),
        cs(relationship(R1, D1, E2, E2)),
      ]),
    ).toBe(1);
    expect(admitted([cs(relationship(R1, D1, E1, E2)), cs(entity(E2, D1, null))])).toBe(1);
    // Children deleted before their parents is the order a batch keeps.
    expect(
      admitted([
        cs(deleteOf('relationships', 'relationship_uuid', R1)),
        cs(deleteOf('entity_mentions', 'entity_uuid', E1)),
        cs(deleteOf('document_chunks', 'chunk_uuid', C1)),
        cs(deleteOf('source_documents', 'document_uuid', D1)),
      ]),
    ).toBe(4);
    // A NULL reference refers to nothing.
    expect(admitted([cs(entity(E1, D1, null), doc(D1)), cs(chunk(C1, D1), doc(D1))])).toBe(2);
  });

  it('never lets two changesets of one batch write a self-referencing table', () => {
    const folders: TableDef = {
      name: 'folders',
      primaryKey: ['id'],
      columns: { id: { type: 'integer', nullable: false }, parent: { type: 'integer' } },
      foreignKeys: [{ columns: ['parent'], references: 'folders' }],
    };
    const notes: TableDef = {
      name: 'notes',
      primaryKey: ['id'],
      columns: { id: { type: 'integer', nullable: false } },
    };
    const registry = new SchemaRegistry([folders, notes]);
    const write = (...changes: Input[]): PlannedChangeset => ({
      changes: validateChangeset({ changes }, registry),
    });
    const folder = (n: number, parent: number | null): Input => ({
      op: 'upsert',
      table: 'folders',
      record: { id: n, parent },
    });
    const note = (n: number): Input => ({ op: 'upsert', table: 'notes', record: { id: n } });
    expect(admitted([write(folder(1, null), folder(2, 1)), write(folder(3, 1))], registry)).toBe(1);
    expect(admitted([write(folder(1, null)), write(note(1)), write(note(2))], registry)).toBe(3);
  });

  it('admits every contiguous part of a batch it admitted, so a bisected batch keeps the rule', () => {
    const keys = { d: [D1, D2], c: [C1, C2], e: [E1, E2] };
    const changeArb = fc.oneof(
      fc.constantFrom(...keys.d).map((d) => doc(d)),
      fc.constantFrom(...keys.d).map((d) => patchDoc(d, { status: 'failed' })),
      fc.constantFrom(...keys.d).map((d) => deleteOf('source_documents', 'document_uuid', d)),
      fc.tuple(fc.constantFrom(...keys.c), fc.constantFrom(...keys.d)).map(([c, d]) => chunk(c, d)),
      fc
        .tuple(fc.constantFrom(...keys.c), fc.constantFrom(...keys.d))
        .map(([c, d]) => patchChunk(c, { document_uuid: d })),
      fc.constantFrom(...keys.c).map((c) => deleteOf('document_chunks', 'chunk_uuid', c)),
      fc
        .tuple(fc.constantFrom(...keys.e), fc.constantFrom(...keys.d), fc.constantFrom(...keys.c))
        .map(([e, d, c]) => entity(e, d, c)),
      fc.constantFrom(...keys.e).map((e) => deleteOf('entity_mentions', 'entity_uuid', e)),
    );
    fc.assert(
      fc.property(
        fc.array(fc.array(changeArb, { minLength: 1, maxLength: 3 }), { maxLength: 12 }),
        fc.nat(),
        fc.nat(),
        (inputs, a, b) => {
          const changesets = inputs.map((changes) => cs(...changes));
          const { batch } = planBatch(pipelineRegistry, changesets);
          if (batch.length === 0) return;
          const from = a % batch.length;
          const to = from + 1 + (b % (batch.length - from));
          expect(admitted(batch.slice(from, to))).toBe(to - from);
        },
      ),
      { numRuns: 2_000 },
    );
  });

  it('splits a run into a batch and the rest without losing or reordering a changeset', () => {
    const changesets = [
      cs(doc(D1)),
      cs(deleteOf('source_documents', 'document_uuid', D2)),
      cs(chunk(C1, D1)),
      cs(doc(D2)),
    ];
    const first = planBatch(pipelineRegistry, changesets);
    expect(first.batch).toEqual(changesets.slice(0, 2));
    const second = planBatch(pipelineRegistry, first.rest);
    expect([...first.batch, ...second.batch, ...second.rest]).toEqual(changesets);
    expect(planBatch(pipelineRegistry, [])).toEqual({ batch: [], rest: [] });
  });
});
