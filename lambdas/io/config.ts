/**
 * Configuration of every Spillway function, read once from the environment and validated.
 * Each problem is a `ConfigError` naming the variable, so a misdeployed function says what to fix
 * on its first invocation instead of failing later with a connection error.
 */
import { ConfigError } from '../core/errors.js';

/** Where Redis is: a URL (local runner, tests) or an ElastiCache endpoint (AWS). */
export type RedisTarget =
  | { readonly kind: 'url'; readonly url: string }
  | {
      readonly kind: 'elasticache';
      readonly host: string;
      readonly port: number;
      readonly tls: boolean;
      /** Secrets Manager secret holding the AUTH token; absent when AUTH is off. */
      readonly authSecretArn: string | undefined;
    };

/** Where PostgreSQL is: a URL (local runner, tests) or RDS Proxy with IAM authentication (AWS). */
export type DatabaseTarget =
  | { readonly kind: 'url'; readonly url: string }
  | {
      readonly kind: 'iam';
      readonly host: string;
      readonly port: number;
      readonly database: string;
      readonly user: string;
    };

export interface SpillwayConfig {
  readonly redis: RedisTarget;
  readonly database: DatabaseTarget;
  /** `AWS_REGION`; required when Secrets Manager or IAM tokens are used. */
  readonly region: string | undefined;
  /** Prefix of every Redis key (`SPILLWAY_PREFIX`). @default 'spillway' */
  readonly prefix: string;
  /** PostgreSQL schema of the user tables (`SPILLWAY_DB_SCHEMA`). @default 'public' */
  readonly dbSchema: string;
  /** Pending changes above which `write` fails with BackpressureError (`BACKLOG_LIMIT`). @default 1_000_000 */
  readonly backlogLimit: number;
  /**
   * What pending changesets may cost Redis in bytes (estimated), above which `write` fails with
   * BackpressureError (`BACKLOG_LIMIT_BYTES`); keep it well below the cache's memory.
   * @default 209_715_200 (200 MiB, for a 0.5 GiB node)
   */
  readonly backlogBytesLimit: number;
  /**
   * Replicas that must confirm a changeset before `write` acknowledges it (`REDIS_REPLICA_ACKS`),
   * so that an ElastiCache failover cannot lose it. @default 0
   */
  readonly redisReplicaAcks: number;
  /** `CHANGESET_MAX_CHANGES`. @default 1_000 */
  readonly changesetMaxChanges: number;
  /** `CHANGESET_MAX_BYTES`. @default 1_048_576 */
  readonly changesetMaxBytes: number;
  /** Changesets per drain transaction (`SYNC_BATCH_SIZE`). @default 500 */
  readonly syncBatchSize: number;
  /** Changes per drain transaction (`SYNC_BATCH_CHANGES`). @default 10_000 */
  readonly syncBatchChanges: number;
  /** What one drain transaction's changesets may cost Redis, in bytes (`SYNC_BATCH_BYTES`). @default 8_388_608 */
  readonly syncBatchBytes: number;
  /**
   * `health` reports the backlog as not draining after this long without progress while changes
   * wait (`HEALTH_STALL_MS`). @default 180_000
   */
  readonly healthStallMs: number;
  /** How long `sync` waits for new work when the backlog is empty (`SYNC_IDLE_WAIT_MS`); 0 returns at once. @default 10_000 */
  readonly syncIdleWaitMs: number;
  /** `sync` stops this long before the Lambda timeout (`SYNC_DEADLINE_MARGIN_MS`). @default 5_000 */
  readonly syncDeadlineMarginMs: number;
  /**
   * How long a drainer's lease lasts between renewals (`SYNC_LEASE_MS`): a drainer that died
   * mid-drain keeps the next one waiting this long. @default 30_000
   */
  readonly syncLeaseMs: number;
  /**
   * Longest one migration may take, lock waits included (`MIGRATION_TIMEOUT_MS`): PostgreSQL
   * cancels it past this. Keep it below the `migrate` function's timeout. @default 240_000
   */
  readonly migrationTimeoutMs: number;
  /** Characters per chunk in the example pipeline (`CHUNK_SIZE`). @default 1_000 */
  readonly chunkSize: number;
  /** Characters shared by neighbouring chunks (`CHUNK_OVERLAP`), less than CHUNK_SIZE. @default 100 */
  readonly chunkOverlap: number;
}

/** Four minutes: generous for a migration, and within `migrate`'s five-minute Lambda timeout. */
export const DEFAULT_MIGRATION_TIMEOUT_MS = 240_000;

type Env = Readonly<Record<string, string | undefined>>;

const PREFIX_PATTERN = /^[A-Za-z0-9:_-]+$/;
/** An unquoted PostgreSQL identifier (at most 63 bytes, NAMEDATALEN - 1). */
const IDENTIFIER_PATTERN = /^[A-Za-z_][A-Za-z0-9_]{0,62}$/;
const SECRET_ARN_PATTERN = /^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:\d{12}:secret:.+$/;

/**
 * The configuration of a function that only writes to the buffer (`write` and pipeline steps):
 * everything but the database, which such functions are given no settings for.
 */
export type BufferConfig = Omit<SpillwayConfig, 'database'>;

/**
 * Reads and validates the configuration.
 * @throws ConfigError naming the first missing, malformed or conflicting variable.
 */
export function loadConfig(env: Env = process.env): SpillwayConfig {
  return load(env, databaseTarget);
}

/**
 * Reads and validates the configuration of a function that only writes to the buffer; database
 * variables are ignored.
 * @throws ConfigError naming the first missing, malformed or conflicting variable.
 */
export function loadBufferConfig(env: Env = process.env): BufferConfig {
  return load(env, () => undefined);
}

function load<D extends DatabaseTarget | undefined>(
  env: Env,
  readDatabase: (env: Env) => D,
): BufferConfig & { readonly database: D } {
  const redis = redisTarget(env);
  const database = readDatabase(env);
  const region = optional(env, 'AWS_REGION');
  const needsRegion =
    database?.kind === 'iam' || (redis.kind === 'elasticache' && redis.authSecretArn !== undefined);
  if (needsRegion && region === undefined) {
    throw new ConfigError(
      'AWS_REGION',
      'missing: needed to sign database IAM tokens and to read the Redis AUTH secret',
    );
  }

  const prefix = optional(env, 'SPILLWAY_PREFIX') ?? 'spillway';
  if (!PREFIX_PATTERN.test(prefix)) {
    throw new ConfigError(
      'SPILLWAY_PREFIX',
      `must contain only letters, digits, ':', '_' and '-', got '${prefix}'`,
    );
  }
  const dbSchema = optional(env, 'SPILLWAY_DB_SCHEMA') ?? 'public';
  if (!IDENTIFIER_PATTERN.test(dbSchema)) {
    throw new ConfigError(
      'SPILLWAY_DB_SCHEMA',
      `must be a PostgreSQL identifier (a letter or '_', then letters, digits or '_', at most 63), got '${dbSchema}'`,
    );
  }

  const chunkSize = positiveInteger(env, 'CHUNK_SIZE', 1_000);
  const chunkOverlap = nonNegativeInteger(env, 'CHUNK_OVERLAP', 100);
  if (chunkOverlap >= chunkSize) {
    throw new ConfigError(
      'CHUNK_OVERLAP',
      `must be less than CHUNK_SIZE (${chunkSize}), got ${chunkOverlap}`,
    );
  }

  return Object.freeze({
    redis: Object.freeze(redis),
    database: database === undefined ? database : Object.freeze(database),
    region,
    prefix,
    dbSchema,
    backlogLimit: positiveInteger(env, 'BACKLOG_LIMIT', 1_000_000),
    backlogBytesLimit: positiveInteger(env, 'BACKLOG_LIMIT_BYTES', 200 * 1024 * 1024),
    redisReplicaAcks: nonNegativeInteger(env, 'REDIS_REPLICA_ACKS', 0),
    changesetMaxChanges: positiveInteger(env, 'CHANGESET_MAX_CHANGES', 1_000),
    changesetMaxBytes: positiveInteger(env, 'CHANGESET_MAX_BYTES', 1_048_576),
    syncBatchSize: positiveInteger(env, 'SYNC_BATCH_SIZE', 500),
    syncBatchChanges: positiveInteger(env, 'SYNC_BATCH_CHANGES', 10_000),
    syncBatchBytes: positiveInteger(env, 'SYNC_BATCH_BYTES', 8 * 1024 * 1024),
    healthStallMs: positiveInteger(env, 'HEALTH_STALL_MS', 180_000),
    syncIdleWaitMs: nonNegativeInteger(env, 'SYNC_IDLE_WAIT_MS', 10_000),
    syncDeadlineMarginMs: positiveInteger(env, 'SYNC_DEADLINE_MARGIN_MS', 5_000),
    syncLeaseMs: positiveInteger(env, 'SYNC_LEASE_MS', 30_000),
    migrationTimeoutMs: positiveInteger(env, 'MIGRATION_TIMEOUT_MS', DEFAULT_MIGRATION_TIMEOUT_MS),
    chunkSize,
    chunkOverlap,
  });
}

let cached: SpillwayConfig | undefined;
let cachedBuffer: BufferConfig | undefined;

/**
 * The configuration of this container, read from `process.env` on first use.
 * A failed read is not remembered: the next call reports the problem again.
 */
export function getConfig(): SpillwayConfig {
  cached ??= loadConfig();
  return cached;
}

/** Like `getConfig`, for a function that only writes to the buffer (see `loadBufferConfig`). */
export function getBufferConfig(): BufferConfig {
  cachedBuffer ??= loadBufferConfig();
  return cachedBuffer;
}

/** Forgets the memoised configuration (tests that change `process.env`). */
export function resetConfig(): void {
  cached = undefined;
  cachedBuffer = undefined;
}

function redisTarget(env: Env): RedisTarget {
  const url = optional(env, 'REDIS_URL');
  const host = optional(env, 'REDIS_HOST');
  if (url !== undefined && host !== undefined) {
    throw new ConfigError(
      'REDIS_URL',
      'set either REDIS_URL (local) or REDIS_HOST (ElastiCache), not both',
    );
  }
  if (url !== undefined) {
    return { kind: 'url', url: checkedUrl('REDIS_URL', url, ['redis:', 'rediss:']) };
  }
  if (host === undefined) {
    throw new ConfigError(
      'REDIS_URL',
      'missing: set REDIS_URL, or REDIS_HOST (with REDIS_PORT, REDIS_TLS and REDIS_AUTH_SECRET_ARN) for ElastiCache',
    );
  }
  const authSecretArn = optional(env, 'REDIS_AUTH_SECRET_ARN');
  if (authSecretArn !== undefined && !SECRET_ARN_PATTERN.test(authSecretArn)) {
    throw new ConfigError(
      'REDIS_AUTH_SECRET_ARN',
      `must be a Secrets Manager secret ARN (arn:aws:secretsmanager:<region>:<account>:secret:<name>), got '${authSecretArn}'`,
    );
  }
  return {
    kind: 'elasticache',
    host,
    port: port(env, 'REDIS_PORT', 6379),
    // Secure by default: ElastiCache with AUTH requires in-transit encryption.
    tls: boolean(env, 'REDIS_TLS', true),
    authSecretArn,
  };
}

function databaseTarget(env: Env): DatabaseTarget {
  const url = optional(env, 'DATABASE_URL');
  const host = optional(env, 'DB_HOST');
  if (url !== undefined && host !== undefined) {
    throw new ConfigError(
      'DATABASE_URL',
      'set either DATABASE_URL (local) or DB_HOST (RDS Proxy), not both',
    );
  }
  if (url !== undefined) {
    return { kind: 'url', url: checkedUrl('DATABASE_URL', url, ['postgres:', 'postgresql:']) };
  }
  if (host === undefined) {
    throw new ConfigError(
      'DATABASE_URL',
      'missing: set DATABASE_URL, or DB_HOST (with DB_PORT, DB_NAME, DB_USER and DB_IAM_AUTH=true) for RDS Proxy',
    );
  }
  // Without a URL there is no password anywhere: the only way in is an IAM token.
  if (!boolean(env, 'DB_IAM_AUTH', false)) {
    throw new ConfigError(
      'DB_IAM_AUTH',
      'must be "true" when DB_HOST is set: Spillway reaches RDS Proxy with IAM authentication only',
    );
  }
  return {
    kind: 'iam',
    host,
    port: port(env, 'DB_PORT', 5432),
    database: required(env, 'DB_NAME', 'the database name behind the proxy'),
    user: required(env, 'DB_USER', 'the database user the IAM token is signed for'),
  };
}

/** An unset or blank variable counts as absent. */
function optional(env: Env, name: string): string | undefined {
  const value = env[name]?.trim();
  return value === undefined || value === '' ? undefined : value;
}

function required(env: Env, name: string, what: string): string {
  const value = optional(env, name);
  if (value === undefined) throw new ConfigError(name, `missing: ${what}`);
  return value;
}

function checkedUrl(name: string, value: string, protocols: readonly string[]): string {
  let parsed: URL;
  try {
    parsed = new URL(value);
  } catch {
    throw new ConfigError(name, 'must be a URL');
  }
  if (!protocols.includes(parsed.protocol)) {
    throw new ConfigError(
      name,
      `must start with ${protocols.map((p) => `${p}//`).join(' or ')}, got ${parsed.protocol}//`,
    );
  }
  return value;
}

function integer(env: Env, name: string, fallback: number, min: number, what: string): number {
  const raw = optional(env, name);
  if (raw === undefined) return fallback;
  const value = /^\d+$/.test(raw) ? Number(raw) : Number.NaN;
  if (!Number.isSafeInteger(value) || value < min) {
    throw new ConfigError(name, `must be ${what}, got '${raw}'`);
  }
  return value;
}

function positiveInteger(env: Env, name: string, fallback: number): number {
  return integer(env, name, fallback, 1, 'a positive integer');
}

function nonNegativeInteger(env: Env, name: string, fallback: number): number {
  return integer(env, name, fallback, 0, 'a non-negative integer');
}

function port(env: Env, name: string, fallback: number): number {
  const value = integer(env, name, fallback, 1, 'a port number (1-65535)');
  if (value > 65_535)
    throw new ConfigError(name, `must be a port number (1-65535), got '${value}'`);
  return value;
}

function boolean(env: Env, name: string, fallback: boolean): boolean {
  const raw = optional(env, name);
  if (raw === undefined) return fallback;
  if (raw === 'true') return true;
  if (raw === 'false') return false;
  throw new ConfigError(name, `must be "true" or "false", got '${raw}'`);
}
