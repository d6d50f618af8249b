/**
 * What one Lambda container shares across its invocations: the configuration (read once), one
 * Redis client, one way to the database (the configured sink's: a `pg` pool, or a Data API
 * client) and one `Spillway` (for `read`, its read side alone), each created on first use and
 * reused while the container stays warm. The local runner is one such container serving every
 * function.
 *
 * The database's code is imported when first needed (`getDatabase`), so a bundle of a function
 * that only writes never loads `pg`, the IAM token signer or the Data API client. A bundle built
 * for one sink (`SPILLWAY_BUNDLED_SINK`, below) does not even carry the other sink's client.
 *
 * A failed creation is not remembered: a cold start against an unreachable Redis fails with
 * UnavailableError, and the next invocation tries again.
 */
import type { Redis } from 'ioredis';
import { ConfigError } from '../core/errors.js';
import {
  type BufferConfig,
  type DataApiLocation,
  getBufferConfig,
  getConfig,
  type PostgresTarget,
  type SpillwayConfig,
} from '../io/config.js';
import type { SinkOptions } from '../io/postgres-sink.js';
import type { TransactionPool } from '../io/postgres-transaction.js';
import { createRedis } from '../io/redis.js';
import type { Sink } from '../io/sink.js';
import { changesetLogger, loggableError, logger } from '../io/telemetry.js';
import {
  createBuffer,
  createReader,
  type RedisBuffer,
  Spillway,
  type SpillwayReader,
} from '../spillway.js';
import { deployedTables } from './tables.js';

export interface ContainerOptions {
  /**
   * Connections of the pool (the `postgres` sink). A Lambda container runs one invocation at a
   * time, and RDS Proxy pools behind it; the local runner serves concurrent invocations from one
   * container.
   * @default 1
   */
  readonly poolSize?: number;
}

/** How this container reaches the database, through the configured sink (`SINK`). */
export interface Database {
  /** Transactions on the database: the migrator's, and `health`'s ping without Redis. */
  readonly pool: TransactionPool;
  /** Builds the engine's sink over `pool`. */
  readonly sink: (options: SinkOptions) => Sink;
  /** Closes the pool or the client. */
  close(): Promise<void>;
}

let options: ContainerOptions = {};
let redis: Promise<Redis> | undefined;
let database: Promise<Database> | undefined;
let spillway: Spillway | undefined;
let reader: SpillwayReader | undefined;
let buffer: RedisBuffer | undefined;

/** Sets options for the clients created later; call before the first invocation. */
export function configureContainer(next: ContainerOptions): void {
  if (redis !== undefined || database !== undefined) {
    throw new Error('configureContainer: the container already created its clients');
  }
  options = next;
}

/** The Redis client of this container, connected. @throws UnavailableError('redis') */
function sharedRedis(config: Pick<BufferConfig, 'redis'>): Promise<Redis> {
  if (redis === undefined) {
    const connecting = createRedis(config);
    redis = connecting;
    connecting.catch(() => {
      if (redis === connecting) redis = undefined;
    });
  }
  return redis;
}

/**
 * The database of this container, through the configured sink: `postgres` (a `pg` pool through
 * RDS Proxy; locally PgBouncer) or `data-api` (an RDS Data API client; locally the stand-in).
 * Connects lazily: `migrate` uses it without Redis.
 * @throws ConfigError when the database settings are missing or malformed.
 */
export function getDatabase(): Promise<Database> {
  if (database === undefined) {
    const opening = openDatabase(getConfig());
    database = opening;
    opening.catch(() => {
      if (database === opening) database = undefined;
    });
  }
  return database;
}

/**
 * Opens the configured sink's way to the database.
 *
 * `process.env.SPILLWAY_BUNDLED_SINK` is no variable of the function: esbuild replaces it with
 * the sink a bundle is built for (`sinkDefine` in `lib/bundle-options.ts`), and leaves out the
 * branch of the other sink with its `import()`, so that a bundle carries one database client (the
 * Data API client is the AWS SDK, some 300 KB). Run from source (tests, the local runner) it is
 * unset, and either sink opens. The `import()`s sit in the branches themselves: esbuild drops an
 * import only from a branch it sees is dead.
 */
function openDatabase(config: SpillwayConfig): Promise<Database> {
  const target = config.database;
  if (target.kind === 'data-api') {
    if (process.env.SPILLWAY_BUNDLED_SINK !== 'postgres') {
      const modules = Promise.all([
        import('@aws-sdk/client-rds-data'),
        import('../io/data-api-connection.js'),
        import('../io/data-api-sink.js'),
      ]);
      return openDataApi(target, config.region, modules);
    }
  } else if (process.env.SPILLWAY_BUNDLED_SINK !== 'data-api') {
    const modules = Promise.all([import('../io/postgres.js'), import('../io/postgres-sink.js')]);
    return openPostgres(target, config.region, modules);
  }
  const sink = target.kind === 'data-api' ? 'data-api' : 'postgres';
  return Promise.reject(
    new ConfigError(
      'SINK',
      `${sink}, but this function was bundled for the ${process.env.SPILLWAY_BUNDLED_SINK} sink: deploy it with the stack shape of its sink instead of changing SINK`,
    ),
  );
}

async function openPostgres(
  target: PostgresTarget,
  region: string | undefined,
  modules: Promise<[typeof import('../io/postgres.js'), typeof import('../io/postgres-sink.js')]>,
): Promise<Database> {
  const [{ createPool }, { PostgresSink }] = await modules;
  const pool = createPool({ database: target, region }, { max: options.poolSize ?? 1 });
  return {
    pool,
    sink: (sinkOptions) => new PostgresSink(pool, sinkOptions),
    close: () => pool.end(),
  };
}

/** The stand-in checks no signature: it is never sent the function's own credentials. */
const STAND_IN_CREDENTIALS = { accessKeyId: 'local-stand-in', secretAccessKey: 'local-stand-in' };

async function openDataApi(
  target: DataApiLocation,
  region: string | undefined,
  modules: Promise<
    [
      typeof import('@aws-sdk/client-rds-data'),
      typeof import('../io/data-api-connection.js'),
      typeof import('../io/data-api-sink.js'),
    ]
  >,
): Promise<Database> {
  const [{ RDSDataClient }, { DataApiPool }, { DataApiSink }] = await modules;
  const client = new RDSDataClient({
    region,
    // One attempt: the drainer retries transient failures itself, with backoff behind the
    // breaker (G7), and classifies them once.
    maxAttempts: 1,
    ...(target.endpoint === undefined
      ? {}
      : { endpoint: target.endpoint, credentials: STAND_IN_CREDENTIALS }),
  });
  const pool = new DataApiPool(client, target);
  return {
    pool,
    sink: (sinkOptions) => new DataApiSink(pool, sinkOptions),
    close: async () => client.destroy(),
  };
}

/**
 * The engine of this container, for the functions that reach the database (`read`, `sync`,
 * `health`, `admin`).
 * @throws ConfigError on bad configuration, UnavailableError('redis') when Redis is unreachable.
 */
export async function getSpillway(): Promise<Spillway> {
  const config = getConfig();
  const [client, db] = await Promise.all([sharedRedis(config), getDatabase()]);
  spillway ??= new Spillway({
    redis: client,
    pool: db.pool,
    sink: db.sink,
    ...bufferOptions(config),
    dbSchema: config.dbSchema,
    batchSize: config.syncBatchSize,
    batchChanges: config.syncBatchChanges,
    batchBytes: config.syncBatchBytes,
    stallAfterMs: config.healthStallMs,
    leaseMs: config.syncLeaseMs,
    backoff: { baseMs: config.syncBackoffBaseMs, maxMs: config.syncBackoffMaxMs },
    breaker: {
      threshold: config.breakerThreshold,
      cooldownMs: config.breakerCooldownMs,
      maxCooldownMs: config.breakerMaxCooldownMs,
    },
    drainHooks: {
      onTransientError: (error, attempt) =>
        logger.warn('transient error while draining; retrying', {
          attempt,
          error: loggableError(error),
        }),
      onDeadLetter: (changeset, reason) =>
        changesetLogger(changeset.changesetId).error('changeset dead-lettered', {
          reason,
          version: changeset.version,
          changes: changeset.changes.length,
        }),
    },
  });
  return spillway;
}

/**
 * The read side of the engine in this container, for `read`: `Spillway`'s reads without what
 * only draining and operating need, so that `read`'s bundle leaves that code out. Built over the
 * same clients as `getSpillway`'s engine; both keep no state of their own.
 * @throws ConfigError on bad configuration, UnavailableError('redis') when Redis is unreachable.
 */
export async function getReader(): Promise<SpillwayReader> {
  const config = getConfig();
  const [client, db] = await Promise.all([sharedRedis(config), getDatabase()]);
  reader ??= createReader({
    redis: client,
    pool: db.pool,
    sink: db.sink,
    ...bufferOptions(config),
    dbSchema: config.dbSchema,
  });
  return reader;
}

/**
 * The buffer of this container, for functions that only write. Needs no database settings.
 * @throws ConfigError on bad configuration, UnavailableError('redis') when Redis is unreachable.
 */
export async function getBuffer(): Promise<RedisBuffer> {
  const config = getBufferConfig();
  const client = await sharedRedis(config);
  buffer ??= createBuffer({ redis: client, ...bufferOptions(config) });
  return buffer;
}

/** What the buffer is built with, the same for functions that only write and the others. */
function bufferOptions(config: BufferConfig) {
  return {
    registry: deployedTables,
    prefix: config.prefix,
    backlogLimit: config.backlogLimit,
    backlogBytesLimit: config.backlogBytesLimit,
    replicaAcks: config.redisReplicaAcks,
    replicaAckTimeoutMs: config.redisReplicaAckTimeoutMs,
    readCacheTtlMs: config.readCacheTtlMs,
    readCacheStaleMs: config.readCacheStaleMs,
    readCacheMaxBytes: config.readCacheMaxBytes,
    maxChangesPerChangeset: config.changesetMaxChanges,
    maxChangesetBytes: config.changesetMaxBytes,
  };
}

/**
 * Closes the clients (the local runner's shutdown; a Lambda container is frozen instead). The
 * next `get*` call creates new ones.
 */
export async function closeContainer(): Promise<void> {
  const [closingRedis, closingDatabase] = [redis, database];
  redis = undefined;
  database = undefined;
  spillway = undefined;
  reader = undefined;
  buffer = undefined;
  const [client, db] = await Promise.all([
    closingRedis?.catch(() => undefined),
    closingDatabase?.catch(() => undefined),
  ]);
  await Promise.allSettled([client?.quit(), db?.close()]);
}
