/**
 * A migrated database and a Spillway on its own Redis key prefix, for integration tests.
 * The engine reaches PostgreSQL through PgBouncer in transaction mode, as it reaches RDS Proxy.
 */
import { randomUUID } from 'node:crypto';
import { RDSDataClient } from '@aws-sdk/client-rds-data';
import { Redis } from 'ioredis';
import pg from 'pg';
import { afterAll } from 'vitest';
import { DataApiPool } from '../../lambdas/io/data-api-connection.js';
import { DataApiSink } from '../../lambdas/io/data-api-sink.js';
import { runMigrations } from '../../lambdas/io/migrator.js';
import { pipelineRegistry } from '../../lambdas/schema/tables.js';
import { Spillway, type SpillwayOptions } from '../../lambdas/spillway.js';
import { startLocalDataApi } from '../../local/data-api/server.js';
import { type Services, type TestServicesOptions, uniquePrefix, useServices } from './services.js';

/**
 * Which sink the engine drains through: `pg` (PgBouncer standing in for RDS Proxy) or
 * `data-api` (the local Data API standing in for Aurora's), from `SINK`. The suites that run on
 * both are listed in the README and in vitest.config.ts.
 */
export const testSink: 'pg' | 'data-api' = process.env.SINK === 'data-api' ? 'data-api' : 'pg';

/** The Data API's client as the engine uses it, through the local stand-in. */
async function dataApiOptions(
  directUrl: string,
): Promise<{ options: Pick<SpillwayOptions, 'pool' | 'sink'>; close: () => Promise<void> }> {
  const api = await startLocalDataApi({ postgresUrl: directUrl });
  const client = new RDSDataClient({
    endpoint: api.url,
    region: 'us-east-1',
    credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
    maxAttempts: 1,
  });
  const dataApi = new DataApiPool(client, {
    resourceArn: 'arn:aws:rds:us-east-1:123456789012:cluster:spillway-local',
    secretArn: 'arn:aws:secretsmanager:us-east-1:123456789012:secret:spillway-local',
    database: new URL(directUrl).pathname.slice(1),
  });
  return {
    options: { pool: dataApi, sink: (o) => new DataApiSink(dataApi, o) },
    close: async () => {
      client.destroy();
      await api.close();
    },
  };
}

export interface TestEngine {
  readonly spillway: Spillway;
  readonly redis: Redis;
  /** Through PgBouncer, like the engine. */
  readonly pool: pg.Pool;
  /** Straight to PostgreSQL, for assertions. */
  readonly direct: pg.Pool;
  readonly prefix: string;
  /**
   * How a Spillway reaches the database on this run's sink (`testSink`): `pool` and `sink`, for
   * tests that build their own Spillway.
   */
  readonly sinkOptions: Pick<SpillwayOptions, 'pool' | 'sink'>;
  /** Another Spillway on the same buffer and database (a second drainer, say). */
  another(options?: Partial<SpillwayOptions>): Spillway;
  /**
   * The same buffer (key prefix) and database through another Redis, on a client of its own:
   * the promoted replica after a failover, as ElastiCache's primary endpoint moves to the new
   * node. With this engine's options, overridden by `options`; its client is closed with this
   * engine.
   */
  onRedis(url: string, options?: Partial<SpillwayOptions>): TestEngine;
  close(): Promise<void>;
}

/** A client as the engine's tests use: a killed Redis turns into errors quickly. */
function testRedis(url: string): Redis {
  const redis = new Redis(url, { maxRetriesPerRequest: 1, lazyConnect: false });
  redis.on('error', () => {});
  return redis;
}

export async function createTestEngine(
  services: Services,
  label: string,
  options: Partial<SpillwayOptions> = {},
): Promise<TestEngine> {
  const database = await services.createDatabase();
  // Short timeouts so that a killed service turns into errors quickly instead of hangs.
  const pool = new pg.Pool({
    connectionString: database.url,
    max: 4,
    connectionTimeoutMillis: 2_000,
    query_timeout: 10_000,
  });
  pool.on('error', () => {
    // An idle client lost its server (a fault test killed it); the pool replaces it.
  });
  const direct = new pg.Pool({ connectionString: database.directUrl, max: 2 });
  direct.on('error', () => {});
  await runMigrations(pool);
  const prefix = uniquePrefix(label);
  const clients: Redis[] = [];
  const viaDataApi = testSink === 'data-api' ? await dataApiOptions(database.directUrl) : undefined;
  const on = (url: string, more: Partial<SpillwayOptions>): TestEngine => {
    const redis = testRedis(url);
    clients.push(redis);
    const base: SpillwayOptions = {
      redis,
      pool,
      registry: pipelineRegistry,
      prefix,
      backoff: { baseMs: 5, maxMs: 50 },
      ...viaDataApi?.options,
      ...more,
    };
    return {
      spillway: new Spillway(base),
      redis,
      pool,
      direct,
      prefix,
      sinkOptions: { pool, ...viaDataApi?.options },
      another: (again = {}) => new Spillway({ ...base, ...again }),
      onRedis: (otherUrl, again = {}) => on(otherUrl, { ...more, ...again }),
      close,
    };
  };
  const close = async () => {
    for (const redis of clients) redis.disconnect();
    await Promise.allSettled([pool.end(), direct.end(), viaDataApi?.close()]);
  };
  return on(services.redis.url, options);
}

/**
 * For vitest files: services for the file, and a factory of engines (each on its own database
 * and key prefix) that are closed after the file's tests.
 */
export function useTestEngines(servicesOptions: TestServicesOptions = {}): {
  services: () => Services;
  engine: (label: string, options?: Partial<SpillwayOptions>) => Promise<TestEngine>;
} {
  const services = useServices(servicesOptions);
  const engines: TestEngine[] = [];
  afterAll(async () => {
    await Promise.all(engines.map((e) => e.close()));
  });
  return {
    services,
    engine: async (label, options = {}) => {
      const engine = await createTestEngine(services(), label, options);
      engines.push(engine);
      return engine;
    },
  };
}

/** Every row of a table, keyed by its primary key, values as the engine reads them. */
export async function tableRows(
  direct: pg.Pool,
  table: string,
): Promise<Map<string, Record<string, unknown>>> {
  const def = pipelineRegistry.get(table);
  if (def === undefined) throw new Error(`unknown table ${table}`);
  const result = await direct.query(`SELECT * FROM public.${table}`);
  const rows = new Map<string, Record<string, unknown>>();
  for (const row of result.rows as Record<string, unknown>[]) {
    const normalised: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(row))
      normalised[k] = v instanceof Date ? v.toISOString() : v;
    rows.set(JSON.stringify(def.primaryKey.map((c) => row[c])), normalised);
  }
  return rows;
}

export async function countRows(direct: pg.Pool, table: string): Promise<number> {
  const result = await direct.query(`SELECT count(*)::int AS n FROM public.${table}`);
  return (result.rows[0] as { n: number }).n;
}

/** Drain until the backlog is empty, as the schedule would, up to `timeoutMs`. */
export async function drainAll(spillway: Spillway, timeoutMs = 30_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const result = await spillway.drain(Math.min(until, Date.now() + 5_000));
    const stats = await spillway.buffer.stats();
    if (result.stoppedBy === 'empty' && stats.backlog === 0) return;
    if (Date.now() > until) {
      throw new Error(
        `backlog not drained in ${timeoutMs} ms: ${JSON.stringify({ result, stats })}`,
      );
    }
    if (result.stoppedBy !== 'empty') await new Promise((r) => setTimeout(r, 50));
  }
}

export const uuid = (): string => randomUUID();

export function document(id = uuid(), extra: Record<string, unknown> = {}) {
  return {
    op: 'upsert' as const,
    table: 'source_documents',
    record: { document_uuid: id, filename: `${id}.pdf`, status: 'pending', ...extra },
  };
}

export function chunk(documentId: string, index: number, id = uuid()) {
  return {
    op: 'upsert' as const,
    table: 'document_chunks',
    record: {
      chunk_uuid: id,
      document_uuid: documentId,
      chunk_index: index,
      text: `chunk ${index}`,
    },
  };
}

/** A patch of one source document: `set` changes only the columns it names. */
export function patchDocument(id: string, set: Record<string, unknown>) {
  return {
    op: 'patch' as const,
    table: 'source_documents',
    key: { document_uuid: id },
    set,
  };
}

/** A delete of one source document. */
export function deleteDocument(id: string) {
  return { op: 'delete' as const, table: 'source_documents', key: { document_uuid: id } };
}
