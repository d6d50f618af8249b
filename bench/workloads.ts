/**
 * The benchmarks' workloads: changesets a document pipeline writes, in the shipped tables.
 */
import { randomUUID } from 'node:crypto';

export type Row = Record<string, unknown>;
export type Change =
  | { op: 'upsert'; table: string; record: Row }
  | { op: 'patch'; table: string; key: Row; set: Row }
  | { op: 'delete'; table: string; key: Row };

/**
 * One document's pipeline run, as two changesets: the document with its chunks, then the
 * entities, relationships and task, a status patch and a few deletes (mixed ops).
 */
export function documentRun(d: number): Change[][] {
  const doc = randomUUID();
  const first: Change[] = [
    {
      op: 'upsert',
      table: 'source_documents',
      record: {
        document_uuid: doc,
        filename: `case-${d}.pdf`,
        status: 'processing',
        content_type: 'application/pdf',
        page_count: 12,
        metadata: { court: 'SDNY', n: d },
      },
    },
  ];
  const chunks: string[] = [];
  for (let c = 0; c < 16; c++) {
    const id = randomUUID();
    chunks.push(id);
    first.push({
      op: 'upsert',
      table: 'document_chunks',
      record: {
        chunk_uuid: id,
        document_uuid: doc,
        chunk_index: c,
        text: `Acme Holdings LLC agreed on March ${c + 1}, 2024 to pay $${(c + 1) * 1000}.00 under Case No. 1:23-cv-0${c}567.`,
        char_start: c * 120,
        char_end: c * 120 + 110,
        metadata: null,
      },
    });
  }
  const second: Change[] = [];
  const entities: string[] = [];
  for (let e = 0; e < 12; e++) {
    const id = randomUUID();
    entities.push(id);
    second.push({
      op: 'upsert',
      table: 'entity_mentions',
      record: {
        entity_uuid: id,
        document_uuid: doc,
        chunk_uuid: chunks[e % chunks.length],
        entity_type: e % 2 ? 'ORG' : 'MONEY',
        text: `entity ${e}`,
        confidence: 0.9,
        start_offset: e,
        end_offset: e + 5,
        attributes: { rule: 'suffix' },
      },
    });
  }
  const relationships: string[] = [];
  for (let r = 0; r < 8; r++) {
    const id = randomUUID();
    relationships.push(id);
    second.push({
      op: 'upsert',
      table: 'relationships',
      record: {
        relationship_uuid: id,
        document_uuid: doc,
        source_entity_uuid: entities[r],
        target_entity_uuid: entities[r + 1],
        relationship_type: 'co_occurs_with',
        confidence: 0.5,
        attributes: null,
      },
    });
  }
  second.push({
    op: 'upsert',
    table: 'processing_tasks',
    record: {
      task_id: randomUUID(),
      document_uuid: doc,
      task_type: 'extract-entities',
      status: 'succeeded',
      attempts: 1,
      started_at: '2026-11-30T00:00:00.000Z',
      completed_at: '2026-11-30T00:00:01.000Z',
    },
  });
  second.push({
    op: 'delete',
    table: 'relationships',
    key: { relationship_uuid: relationships[7] },
  });
  second.push({
    op: 'patch',
    table: 'source_documents',
    key: { document_uuid: doc },
    set: { status: 'completed', updated_at: '2026-11-30T00:00:02.000Z' },
  });
  return [first, second];
}

/**
 * The single-table workload: as many changes as `documents` mixed runs make (40 each), all
 * upserts of source_documents, 20 to a changeset.
 */
export function singleTable(documents: number): Change[][] {
  const changesets: Change[][] = [];
  for (let c = 0; c < documents * 2; c++) {
    const changeset: Change[] = [];
    for (let i = 0; i < 20; i++) {
      const n = c * 20 + i;
      changeset.push(documentUpsert(n));
    }
    changesets.push(changeset);
  }
  return changesets;
}

/** An upsert of a new source_documents row: the single-table workload's change. */
export function documentUpsert(n: number): Change {
  return {
    op: 'upsert',
    table: 'source_documents',
    record: {
      document_uuid: randomUUID(),
      filename: `case-${n}.pdf`,
      status: 'completed',
      content_type: 'application/pdf',
      page_count: 12,
      metadata: { court: 'SDNY', n },
    },
  };
}

/**
 * Changesets of 1,000-character chunks, for the memory a pending change costs Redis:
 * `perChangeset` chunks of one new document each, with the document itself when `withDocument`.
 */
export function longChunks(
  changesets: number,
  perChangeset: number,
  withDocument: boolean,
): Change[][] {
  const sentence =
    'The parties agree that Acme Holdings LLC shall pay the sum stated in Exhibit B. ';
  return Array.from({ length: changesets }, (_, c) => {
    const document = documentUpsert(c);
    const doc = document.op === 'upsert' ? document.record.document_uuid : undefined;
    const chunks: Change[] = Array.from({ length: perChangeset }, (_, i) => ({
      op: 'upsert',
      table: 'document_chunks',
      record: {
        chunk_uuid: randomUUID(),
        document_uuid: doc,
        chunk_index: i,
        text: `${c}-${i} ${sentence.repeat(13)}`.slice(0, 1_000),
        char_start: i * 1_000,
        char_end: i * 1_000 + 1_000,
      },
    }));
    return withDocument ? [document, ...chunks] : chunks;
  });
}

/** The changesets of a workload: `single`, or `mixed` (a document run per document). */
export function workloadChangesets(workload: string, documents: number): Change[][] {
  return workload === 'single'
    ? singleTable(documents)
    : Array.from({ length: documents }, (_, d) => documentRun(d)).flat();
}
