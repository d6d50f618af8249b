/**
 * The example pipeline end to end through the local runner: process-document, then
 * extract-entities with its result, drained by the runner's own schedule into PostgreSQL, waited
 * for by the versions the steps return (`read` `{ changesets }`), as a pipeline waits; a
 * downstream step reads a document's chunks by their parent key; and a retried pipeline (both
 * steps again with the same input) creates no duplicates.
 */
import { describe, expect, it } from 'vitest';
import { call, eventually, invoke, useLocalRunner } from '../support/local-runner.js';

const local = useLocalRunner({
  label: 'e2e-pipeline',
  env: {
    SYNC_INTERVAL_MS: '100',
    SYNC_IDLE_WAIT_MS: '500',
    CHUNK_SIZE: '200',
    CHUNK_OVERLAP: '40',
  },
});

const TEXT = [
  'This Settlement Agreement is made on March 3, 2024 between Acme Holdings Inc. and Blue River LLC.',
  'Acme Holdings Inc. shall pay $2,500,000 to Blue River LLC within thirty days.',
  'Notices go to counsel@acme-legal.com or +1 (212) 555-0147.',
  'The parties dismiss Case No. 23-cv-1042 with prejudice.',
  'Northwind Traders Ltd. guarantees the payment of USD 250,000 due on 2024-06-30.',
].join(' ');

interface Chunk {
  chunk_uuid: string;
  chunk_index: number;
  text: string;
}

async function count(table: string, documentUuid: string): Promise<number> {
  const { rows } = await local.direct.query<{ n: number }>(
    `SELECT count(*)::int AS n FROM ${table} WHERE document_uuid = $1`,
    [documentUuid],
  );
  return rows[0]?.n ?? 0;
}

/** Whether every changeset of these versions is applied; a dead letter fails the test. */
async function applied(versions: readonly string[]): Promise<boolean> {
  const { changesets } = await call<{ changesets: { status: string; reason?: string }[] }>(
    local.lambda,
    'read',
    { changesets: versions },
  );
  const dead = changesets.find((c) => c.status === 'dead-lettered');
  if (dead !== undefined) throw new Error(`a changeset was dead-lettered: ${dead.reason}`);
  return changesets.every((c) => c.status === 'applied');
}

describe('the example pipeline', () => {
  it('lands documents, chunks, entities, relationships and the task in PostgreSQL, once, however often it runs', async () => {
    const input = { filename: 'settlement.pdf', content_type: 'application/pdf', text: TEXT };
    const processed = await call<{ document_uuid: string; chunks: Chunk[]; versions: string[] }>(
      local.lambda,
      'process-document',
      input,
    );
    expect(processed.chunks.length).toBeGreaterThan(2);
    expect(processed.chunks.map((c) => c.chunk_index)).toEqual(processed.chunks.map((_, i) => i));
    expect(processed.versions.length).toBeGreaterThanOrEqual(2);
    const id = processed.document_uuid;

    // A downstream step reads the document's chunks by their parent key, pending ones included.
    const byParent = await call<{ records: Chunk[]; pending: boolean; nextCursor: null }>(
      local.lambda,
      'read',
      { table: 'document_chunks', where: { document_uuid: id }, limit: 500 },
    );
    expect(byParent.nextCursor).toBeNull();
    expect(
      byParent.records.map(({ chunk_uuid, chunk_index, text }) => ({
        chunk_uuid,
        chunk_index,
        text,
      })),
    ).toEqual([...processed.chunks].sort((a, b) => a.chunk_uuid.localeCompare(b.chunk_uuid)));

    const extracted = await call<{
      entities: number;
      relationships: number;
      task_id: string;
      version: string;
    }>(local.lambda, 'extract-entities', processed);
    expect(extracted.entities).toBeGreaterThan(8);
    expect(extracted.relationships).toBeGreaterThan(0);

    await eventually('the pipeline to reach PostgreSQL', () =>
      applied([...processed.versions, extracted.version]),
    );
    const { rows: documents } = await local.direct.query(
      'SELECT filename, content_type, status, error_message FROM source_documents WHERE document_uuid = $1',
      [id],
    );
    expect(documents).toEqual([
      {
        filename: 'settlement.pdf',
        content_type: 'application/pdf',
        status: 'completed',
        error_message: null,
      },
    ]);
    const { rows: chunks } = await local.direct.query(
      'SELECT chunk_uuid, chunk_index, text FROM document_chunks WHERE document_uuid = $1 ORDER BY chunk_index',
      [id],
    );
    expect(chunks).toEqual(processed.chunks);
    const { rows: mentions } = await local.direct.query<{
      chunk_uuid: string;
      entity_type: string;
      text: string;
      start_offset: number;
      end_offset: number;
    }>(
      'SELECT chunk_uuid, entity_type, text, start_offset, end_offset FROM entity_mentions WHERE document_uuid = $1',
      [id],
    );
    expect(mentions).toHaveLength(extracted.entities);
    const chunkText = new Map(processed.chunks.map((c) => [c.chunk_uuid, c.text]));
    for (const mention of mentions) {
      expect(
        chunkText.get(mention.chunk_uuid)?.slice(mention.start_offset, mention.end_offset),
      ).toBe(mention.text);
    }
    expect(new Set(mentions.map((m) => m.entity_type))).toEqual(
      new Set(['date', 'organization', 'money', 'email', 'phone', 'case_number']),
    );
    expect(await count('relationships', id)).toBe(extracted.relationships);
    const { rows: tasks } = await local.direct.query(
      'SELECT task_id, task_type, status, started_at IS NOT NULL AS started, completed_at IS NOT NULL AS completed FROM processing_tasks WHERE document_uuid = $1',
      [id],
    );
    expect(tasks).toEqual([
      {
        task_id: extracted.task_id,
        task_type: 'extract-entities',
        status: 'succeeded',
        started: true,
        completed: true,
      },
    ]);

    // A retry (Celery, Step Functions) runs both steps again with the same input.
    const again = await call<{ document_uuid: string; chunks: Chunk[]; versions: string[] }>(
      local.lambda,
      'process-document',
      input,
    );
    expect({ ...again, versions: [] }).toEqual({ ...processed, versions: [] });
    const retried = await call<{ version: string }>(local.lambda, 'extract-entities', again);
    await eventually('the retry to drain', () => applied([...again.versions, retried.version]));
    expect(await count('source_documents', id)).toBe(1);
    expect(await count('document_chunks', id)).toBe(processed.chunks.length);
    expect(await count('entity_mentions', id)).toBe(extracted.entities);
    expect(await count('relationships', id)).toBe(extracted.relationships);
    expect(await count('processing_tasks', id)).toBe(1);
    const health = await call<{ deadLetters: number }>(local.lambda, 'health', {});
    expect(health.deadLetters).toBe(0);
  });

  it('a pipeline step invoked as an Event lands too', async () => {
    const accepted = await invoke(
      local.lambda,
      'process-document',
      { filename: 'brief.txt', text: 'Filed on January 5, 2025 by Contoso Ltd.' },
      'Event',
    );
    expect(accepted.statusCode).toBe(202);
    await eventually('the document to land', async () => {
      const { rows } = await local.direct.query(
        "SELECT status FROM source_documents WHERE filename = 'brief.txt'",
      );
      return rows[0]?.status === 'completed';
    });
  });
});
