/**
 * `SINK=data-api spillway local`: the functions reach PostgreSQL only through the local Data API
 * stand-in, which the runner starts itself. Written, synced and read back with
 * @aws-sdk/client-lambda, the rows checked in PostgreSQL. No AWS: the stand-in is not Aurora.
 */
import { randomUUID } from 'node:crypto';
import type { LambdaClient } from '@aws-sdk/client-lambda';
import { beforeAll, describe, expect, it } from 'vitest';
import { DATA_API_APPLICATION_NAME } from '../../local/data-api/server.js';
import { call, lambdaClient, useLocalRunner } from '../support/local-runner.js';

const local = useLocalRunner({
  label: 'e2e-data-api',
  env: { SINK: 'data-api', SYNC_INTERVAL_MS: '3600000', SYNC_IDLE_WAIT_MS: '0' },
  start: false,
});

let lambda: LambdaClient;
beforeAll(async () => {
  // The stand-in straight onto PostgreSQL, as in `npm run local`, rather than through PgBouncer.
  const runner = await local.startRunner({ DATABASE_URL: local.database.directUrl });
  lambda = lambdaClient(runner.url);
  return () => lambda.destroy();
});

describe('SINK=data-api: the local runner drains through the Data API stand-in', () => {
  it('migrates, writes, syncs and reads back through the Data API, and the rows are in PostgreSQL', async () => {
    const documentId = randomUUID();
    const chunkId = randomUUID();
    const written = await call<{ accepted: number }>(lambda, 'write', {
      changes: [
        {
          op: 'upsert',
          table: 'source_documents',
          record: {
            document_uuid: documentId,
            filename: 'a.pdf',
            status: 'pending',
            metadata: { pages: 3, title: "it's; here" },
          },
        },
        {
          op: 'upsert',
          table: 'document_chunks',
          record: {
            chunk_uuid: chunkId,
            document_uuid: documentId,
            chunk_index: 0,
            text: 'first chunk',
          },
        },
      ],
    });
    expect(written.accepted).toBe(2);

    const synced = await call<Record<string, unknown>>(lambda, 'sync', {});
    expect(synced).toMatchObject({ stoppedBy: 'empty', backlog: 0, deadLettered: 0, applied: 2 });

    const { rows: documents } = await local.direct.query(
      'SELECT filename, status, metadata FROM source_documents WHERE document_uuid = $1',
      [documentId],
    );
    expect(documents).toEqual([
      { filename: 'a.pdf', status: 'pending', metadata: { pages: 3, title: "it's; here" } },
    ]);
    const { rows: chunks } = await local.direct.query(
      'SELECT document_uuid, text FROM document_chunks WHERE chunk_uuid = $1',
      [chunkId],
    );
    expect(chunks).toEqual([{ document_uuid: documentId, text: 'first chunk' }]);

    const read = await call(lambda, 'read', {
      table: 'source_documents',
      key: { document_uuid: documentId },
    });
    expect(read).toMatchObject({
      pending: false,
      record: { document_uuid: documentId, metadata: { pages: 3, title: "it's; here" } },
    });

    const health = await call<Record<string, unknown>>(lambda, 'health', {});
    expect(health).toMatchObject({ status: 'ok', checks: { database: { ok: true } } });

    // The way there was the stand-in: its connections are the runner's only ones to the database.
    const { rows: clients } = await local.direct.query<{ application_name: string }>(
      `SELECT DISTINCT application_name FROM pg_stat_activity
        WHERE datname = current_database() AND pid <> pg_backend_pid() AND application_name <> ''`,
    );
    expect(clients).toEqual([{ application_name: DATA_API_APPLICATION_NAME }]);
    const { rows: migrations } = await local.direct.query(
      'SELECT count(*)::int AS n FROM spillway.schema_migrations',
    );
    expect(migrations[0]).toEqual({ n: expect.any(Number) });
    expect((migrations[0] as { n: number }).n).toBeGreaterThan(0);
  });
});
