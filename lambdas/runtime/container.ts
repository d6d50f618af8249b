/**
 * What one Lambda container shares across its invocations: the configuration (read once), one
 * Redis client, one `pg` pool and one `Spillway`, each created on first use and reused while the
 * container stays warm. The local runner is one such container serving every function.
 *
 * A failed creation is not remembered: a cold start against an unreachable Redis fails with
 * UnavailableError, and the next invocation tries again.
 */
import type { Redis } from 'ioredis';
import type pg from 'pg';
import { type BufferConfig, getBufferConfig, getConfig } from '../io/config.js';
import { createPool } from '../io/postgres.js';
import { createRedis } from '../io/redis.js';
import { changesetLogger, loggableError, logger } from '../io/telemetry.js';
import {
  type ChangesetStatus,
  createBuffer,
  type RedisBuffer,
  Spillway,
  type WriteResult,
} from '../spillway.js';
import { deployedTables } from './tables.js';

/** All a function that only writes needs: `write` and the pipeline steps have no database. */
export interface Writer {
  /** Buffers one changeset; resolves once Redis holds it (G1, G5, G6). */
  write(input: unknown): Promise<WriteResult>;
  /** Where changesets stand, by the versions `write` returned. */
  changesetStatus(versions: readonly string[]): Promise<ChangesetStatus[]>;
}

export interface ContainerOptions {
  /**
   * Connections of the pool. A Lambda container runs one invocation at a time, and RDS Proxy
   * pools behind it; the local runner serves concurrent invocations from one container.
   * @default 1
   */
  readonly poolSize?: number;
}

let options: ContainerOptions = {};
let redis: Promise<Redis> | undefined;
let pool: pg.Pool | undefined;
let spillway: Spillway | undefined;
let buffer: RedisBuffer | undefined;

/** Sets options for the clients created later; call before the first invocation. */
export function configureContainer(next: ContainerOptions): void {
  if (redis !== undefined || pool !== undefined) {
    throw new Error('configureContainer: the container already created its clients');
  }
  options = next;
}

/** The Redis client of this container, connected. @throws UnavailableError('redis') */
function sharedRedis(config: Pick<BufferConfig, 'redis' | 'region'>): Promise<Redis> {
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
 * The pool of this container (through RDS Proxy; locally PgBouncer). Connects lazily: `migrate`
 * uses it without Redis.
 * @throws ConfigError when the database settings are missing or malformed.
 */
export function getPool(): pg.Pool {
  pool ??= createPool(getConfig(), { max: options.poolSize ?? 1 });
  return pool;
}

/**
 * The engine of this container, for the functions that reach the database (`read`, `sync`,
 * `health`, `admin`).
 * @throws ConfigError on bad configuration, UnavailableError('redis') when Redis is unreachable.
 */
export async function getSpillway(): Promise<Spillway> {
  const config = getConfig();
  const client = await sharedRedis(config);
  spillway ??= new Spillway({
    redis: client,
    pool: getPool(),
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
 * The buffer of this container, for functions that only write. Needs no database settings.
 * @throws ConfigError on bad configuration, UnavailableError('redis') when Redis is unreachable.
 */
export async function getWriter(): Promise<Writer> {
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
    maxChangesPerChangeset: config.changesetMaxChanges,
    maxChangesetBytes: config.changesetMaxBytes,
  };
}

/**
 * Closes the clients (the local runner's shutdown; a Lambda container is frozen instead). The
 * next `get*` call creates new ones.
 */
export async function closeContainer(): Promise<void> {
  const [closingRedis, closingPool] = [redis, pool];
  redis = undefined;
  pool = undefined;
  spillway = undefined;
  buffer = undefined;
  const client = await closingRedis?.catch(() => undefined);
  await Promise.allSettled([client?.quit(), closingPool?.end()]);
}
