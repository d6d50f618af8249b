/**
 * The Data API's limits and failures, met through the local stand-in (not AWS): a batch whose
 * request would pass 4 MiB, a row that alone passes the limit, a transaction left idle past the
 * service's timeout, and an Aurora Serverless v2 database resuming from auto-pause.
 */
import { randomUUID } from 'node:crypto';
import { ExecuteStatementCommand, RDSDataClient } from '@aws-sdk/client-rds-data';
import { Redis } from 'ioredis';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { SchemaRegistry, type TableDef } from '../../lambdas/core/schema.js';
import { type DataApiClient, DataApiPool } from '../../lambdas/io/data-api-connection.js';
import { DATA_API_MAX_REQUEST_BYTES, DataApiSink } from '../../lambdas/io/data-api-sink.js';
import { runMigrations } from '../../lambdas/io/migrator.js';
import { pipelineRegistry, pipelineTables } from '../../lambdas/schema/tables.js';
import { Spillway } from '../../lambdas/spillway.js';
import {
  DATA_API_APPLICATION_NAME,
  type DataApiLimits,
  type LocalDataApi,
  startLocalDataApi,
} from '../../local/data-api/server.js';
import { uniquePrefix, useServices } from '../support/services.js';

const services = useServices();
const closers: (() => Promise<void> | void)[] = [];
afterAll(async () => {
  for (const close of closers.reverse()) await close();
});

interface Setup {
  readonly spillway: Spillway;
  readonly api: LocalDataApi;
  readonly direct: pg.Pool;
  /** Every ExecuteStatement sent, with the size of its input as JSON. */
  readonly executed: { sql: string; bytes: number; transactionId: string | undefined }[];
  /** Holds the next INSERT in a transaction back for `ms` before sending it. */
  holdNextInsert(ms: number): void;
}

/** A Spillway draining through the Data API sink into a fresh database, via the stand-in. */
async function setup(
  label: string,
  options: {
    limits?: Partial<DataApiLimits>;
    maxRequestBytes?: number;
    batchBytes?: number;
    registry?: SchemaRegistry;
  } = {},
): Promise<Setup> {
  const { directUrl } = await services().createDatabase();
  const direct = new pg.Pool({ connectionString: directUrl, max: 2 });
  closers.push(() => direct.end());
  await runMigrations(direct);
  const api = await startLocalDataApi({ postgresUrl: directUrl, limits: options.limits });
  closers.push(() => api.close());
  const real = new RDSDataClient({
    endpoint: api.url,
    region: 'us-east-1',
    credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
    maxAttempts: 1,
  });
  closers.push(() => real.destroy());
  const executed: Setup['executed'] = [];
  let holdMs = 0;
  const send = async (command: unknown, sendOptions?: unknown) => {
    if (command instanceof ExecuteStatementCommand) {
      const { sql = '', transactionId } = command.input;
      executed.push({
        sql,
        bytes: Buffer.byteLength(JSON.stringify(command.input)),
        transactionId,
      });
      if (holdMs > 0 && transactionId !== undefined && sql.startsWith('INSERT')) {
        const ms = holdMs;
        holdMs = 0;
        await new Promise((resolve) => setTimeout(resolve, ms));
      }
    }
    return real.send(command as never, sendOptions as never);
  };
  const pool = new DataApiPool({ send } as unknown as DataApiClient, {
    resourceArn: 'arn:aws:rds:us-east-1:123456789012:cluster:spillway-local',
    secretArn: 'arn:aws:secretsmanager:us-east-1:123456789012:secret:spillway-local',
    database: new URL(directUrl).pathname.slice(1),
  });
  const redis = new Redis(services().redis.url, { maxRetriesPerRequest: 1 });
  closers.push(() => redis.disconnect());
  const spillway = new Spillway({
    redis,
    pool,
    sink: (o) => new DataApiSink(pool, { ...o, maxRequestBytes: options.maxRequestBytes }),
    registry: options.registry ?? pipelineRegistry,
    prefix: uniquePrefix(label),
    backoff: { baseMs: 5, maxMs: 50 },
    ...(options.batchBytes === undefined ? {} : { batchBytes: options.batchBytes }),
  });
  return {
    spillway,
    api,
    direct,
    executed,
    holdNextInsert: (ms) => {
      holdMs = ms;
    },
  };
}

function document(id: string, notesBytes = 10) {
  return {
    op: 'upsert' as const,
    table: 'source_documents',
    record: {
      document_uuid: id,
      filename: `${id}.pdf`,
      status: 'pending',
      metadata: { notes: 'n'.repeat(notesBytes) },
    },
  };
}

async function countDocuments(direct: pg.Pool, ids: readonly string[]): Promise<number> {
  const { rows } = await direct.query<{ n: number }>(
    'SELECT count(*)::int AS n FROM source_documents WHERE document_uuid = ANY($1::uuid[])',
    [ids],
  );
  return rows[0]?.n ?? -1;
}

describe('the Data API sink within the Data API limits (local stand-in)', () => {
  it('a batch whose request would pass 4 MiB is split over several statements of one transaction, and lands', async () => {
    // Room in one drain transaction for all of it: the Data API's limit is met, not the drain's.
    const { spillway, direct, executed } = await setup('data-api-split', {
      batchBytes: 64 * 1024 * 1024,
    });
    const ids: string[] = [];
    // Six changesets of 20 rows of 40 KB: about 4.8 MB in one batch, under the changeset limit.
    for (let c = 0; c < 6; c++) {
      const changes = Array.from({ length: 20 }, () => {
        const id = randomUUID();
        ids.push(id);
        return document(id, 40_000);
      });
      await spillway.write({ changes });
    }

    const result = await spillway.drain(Date.now() + 30_000);

    expect(result).toMatchObject({ stoppedBy: 'empty', applied: 120, deadLettered: 0, batches: 1 });
    expect(await countDocuments(direct, ids)).toBe(120);
    const inserts = executed.filter(
      (e) => e.transactionId !== undefined && /INSERT INTO \S*source_documents/.test(e.sql),
    );
    expect(inserts.length).toBeGreaterThanOrEqual(2);
    expect(new Set(inserts.map((e) => e.transactionId)).size).toBe(1);
    for (const insert of inserts) expect(insert.bytes).toBeLessThan(DATA_API_MAX_REQUEST_BYTES);
  });

  it('a row that alone passes the request limit is dead-lettered with the reason, and the rest of its batch lands', async () => {
    const limit = 256 * 1024;
    const { spillway, direct } = await setup('data-api-row-limit', {
      limits: { requestBytes: limit },
      maxRequestBytes: limit,
    });
    const small = [randomUUID(), randomUUID()];
    const large = randomUUID();
    await spillway.write({ changes: [document(small[0] as string)] });
    const { changesetId } = await spillway.write({ changes: [document(large, 300_000)] });
    await spillway.write({ changes: [document(small[1] as string)] });

    const result = await spillway.drain(Date.now() + 30_000);

    expect(result).toMatchObject({ stoppedBy: 'empty', deadLettered: 1, applied: 2 });
    expect(await countDocuments(direct, small)).toBe(2);
    expect(await countDocuments(direct, [large])).toBe(0);
    const letters = await spillway.listDeadLetters();
    expect(letters.map((l) => l.changesetId)).toEqual([changesetId]);
    expect(letters[0]?.reason).toMatch(
      /a row of source_documents is larger than the Data API's request limit/,
    );
  });

  it("a self-referencing table split over several statements lands: upserts go parents first, deletes in the changeset's order", async () => {
    // 64 KiB of the request are kept for its envelope: 48 KiB for the rows.
    const limit = 112 * 1024;
    const nodes: TableDef = {
      name: 'nodes',
      primaryKey: ['id'],
      columns: {
        id: { type: 'uuid', nullable: false },
        parent: { type: 'uuid' },
        note: { type: 'text' },
      },
      foreignKeys: [{ columns: ['parent'], references: 'nodes' }],
    };
    const registry = new SchemaRegistry([...pipelineTables, nodes]);
    const { spillway, direct, executed } = await setup('data-api-self-reference', {
      limits: { requestBytes: limit },
      maxRequestBytes: limit,
      registry,
    });
    await direct.query(
      'CREATE TABLE public.nodes (id uuid PRIMARY KEY, parent uuid REFERENCES public.nodes (id) ON DELETE RESTRICT, note text)',
    );
    // Migrate with the definitions that include it: that creates its version table too.
    await runMigrations(direct, { registry });
    const count = async () =>
      (await direct.query<{ n: number }>('SELECT count(*)::int AS n FROM nodes')).rows[0]?.n;
    // One changeset, each node's parent the next one: children come before their parents.
    const ids = Array.from({ length: 1_000 }, () => randomUUID());
    await spillway.write({
      changes: ids.map((id, i) => ({
        op: 'upsert',
        table: 'nodes',
        record: { id, parent: ids[i + 1] ?? null, note: 'n'.repeat(100) },
      })),
    });
    expect(await spillway.drain(Date.now() + 30_000)).toMatchObject({
      applied: ids.length,
      deadLettered: 0,
      stoppedBy: 'empty',
    });
    const inserts = executed.filter((e) => /INSERT INTO \S*nodes/.test(e.sql));
    expect(inserts.length).toBeGreaterThan(2);
    expect(await count()).toBe(ids.length);

    // Deletes carry only keys, so their parts keep the changeset's order: children first here.
    const deletes = executed.length;
    await spillway.write({
      changes: ids.map((id) => ({ op: 'delete', table: 'nodes', key: { id } })),
    });
    expect(await spillway.drain(Date.now() + 30_000)).toMatchObject({
      applied: ids.length,
      deadLettered: 0,
      stoppedBy: 'empty',
    });
    const parts = executed.slice(deletes).filter((e) => /DELETE FROM \S*nodes/.test(e.sql));
    expect(parts.length).toBeGreaterThan(1);
    expect(await count()).toBe(0);
  });

  it('a transaction idle past the service timeout is rolled back there, counted as transient, and retried', async () => {
    const { spillway, direct, holdNextInsert } = await setup('data-api-idle', {
      limits: { idleTransactionMs: 1_000 },
    });
    const id = randomUUID();
    await spillway.write({ changes: [document(id)] });
    // The stand-in sweeps every second: held 3 s, the transaction is gone when the INSERT arrives.
    holdNextInsert(3_000);

    const result = await spillway.drain(Date.now() + 30_000);

    expect(result).toMatchObject({ stoppedBy: 'empty', applied: 1, deadLettered: 0 });
    expect(result.transientErrors).toBeGreaterThanOrEqual(1);
    expect(await countDocuments(direct, [id])).toBe(1);
  });

  it('a transaction whose connection the database dropped between two requests fails its next statement, counted as transient, and is retried', async () => {
    const { spillway, direct, holdNextInsert } = await setup('data-api-dropped');
    const id = randomUUID();
    await spillway.write({ changes: [document(id)] });
    holdNextInsert(1_500);

    const drained = spillway.drain(Date.now() + 30_000);
    // While the INSERT is held, the transaction's connection sits idle in the stand-in: drop it.
    await new Promise((resolve) => setTimeout(resolve, 500));
    const { rows } = await direct.query<{ dropped: boolean }>(
      'SELECT pg_terminate_backend(pid) AS dropped FROM pg_stat_activity WHERE application_name = $1',
      [DATA_API_APPLICATION_NAME],
    );
    expect(rows.some((row) => row.dropped)).toBe(true);
    const result = await drained;

    expect(result).toMatchObject({ stoppedBy: 'empty', applied: 1, deadLettered: 0 });
    expect(result.transientErrors).toBeGreaterThanOrEqual(1);
    expect(await countDocuments(direct, [id])).toBe(1);
  });

  it('DatabaseResumingException is transient: health says the database is resuming, and the drain retries until it lands', async () => {
    const { spillway, direct, api } = await setup('data-api-resuming');
    const id = randomUUID();
    await spillway.write({ changes: [document(id)] });
    api.simulateResuming(3);

    const health = await spillway.health();
    expect(health.checks.database.ok).toBe(false);
    expect(health.checks.database.error).toMatch(/resuming/);
    expect(health.reasons.join(' ')).toMatch(/resuming/);

    const result = await spillway.drain(Date.now() + 30_000);

    expect(result).toMatchObject({ stoppedBy: 'empty', applied: 1, deadLettered: 0 });
    expect(result.transientErrors).toBeGreaterThanOrEqual(1);
    expect(await countDocuments(direct, [id])).toBe(1);
    expect((await spillway.health()).checks.database).toEqual({ ok: true });
  });
});
