/**
 * Configuration of every Spillway function, read once from the environment and validated.
 * Each problem is a `ConfigError` naming the variable, so a misdeployed function says what to fix
 * on its first invocation instead of failing later with a connection error.
 */
import { ConfigError } from '../core/errors.js';
import {
  ENGINE_SETTINGS,
  type EngineSettingName,
  type EngineSettings,
  type LocationSetting,
  parseSetting,
  SINK_SETTINGS,
} from '../core/settings.js';
import type { DataApiTarget } from './data-api-connection.js';

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

/**
 * Where PostgreSQL is for the `postgres` sink: a URL (local runner, tests) or RDS Proxy with IAM
 * authentication (AWS).
 */
export type PostgresTarget =
  | { readonly kind: 'url'; readonly url: string }
  | {
      readonly kind: 'iam';
      readonly host: string;
      readonly port: number;
      readonly database: string;
      readonly user: string;
    };

/**
 * Where Aurora is for the `data-api` sink (`SINK=data-api`): the cluster, its secret and the
 * database, and, locally, the stand-in's endpoint.
 */
export interface DataApiLocation extends DataApiTarget {
  readonly kind: 'data-api';
  /** `DATA_API_ENDPOINT`: the local stand-in; absent in AWS. */
  readonly endpoint: string | undefined;
}

/** How the functions that reach the database reach it, by sink (`SINK`). */
export type DatabaseTarget = PostgresTarget | DataApiLocation;

/**
 * The configuration of a function: where Redis and PostgreSQL are, and every engine setting
 * (`../core/settings.ts` declares each one's variable, default, bounds and meaning).
 */
export interface SpillwayConfig extends EngineSettings {
  readonly redis: RedisTarget;
  readonly database: DatabaseTarget;
  /** `AWS_REGION`; required when IAM tokens or the Data API are used. */
  readonly region: string | undefined;
}

/** Four minutes: generous for a migration, and within `migrate`'s five-minute Lambda timeout. */
export const DEFAULT_MIGRATION_TIMEOUT_MS = ENGINE_SETTINGS.migrationTimeoutMs.default;

type Env = Readonly<Record<string, string | undefined>>;

const SECRET_ARN_PATTERN = SINK_SETTINGS.dataApiSecretArn.pattern;

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
  if (database?.kind === 'data-api' && region === undefined) {
    throw new ConfigError(
      'AWS_REGION',
      'missing: needed by the RDS Data API client (SINK=data-api)',
    );
  }
  if (database?.kind === 'iam' && region === undefined) {
    throw new ConfigError('AWS_REGION', 'missing: needed to sign database IAM tokens');
  }

  return Object.freeze({
    redis: Object.freeze(redis),
    database: database === undefined ? database : Object.freeze(database),
    region,
    ...readEngineSettings(env),
  });
}

/**
 * Every engine setting from its variable, or its default when unset or blank.
 * @throws ConfigError naming the first malformed or out-of-range variable.
 */
export function readEngineSettings(env: Env): EngineSettings {
  const values: Record<string, number | string> = {};
  for (const [name, setting] of Object.entries(ENGINE_SETTINGS) as [
    EngineSettingName,
    (typeof ENGINE_SETTINGS)[EngineSettingName],
  ][]) {
    const raw = optional(env, setting.env);
    if (raw === undefined) {
      values[name] = setting.default;
      continue;
    }
    const parsed = parseSetting(setting, raw);
    if (!parsed.ok) throw new ConfigError(setting.env, parsed.problem);
    values[name] = parsed.value;
  }
  return values as EngineSettings;
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
  const sink = location(env, SINK_SETTINGS.sink) ?? 'postgres';
  if (sink === 'data-api') return dataApiLocation(env);
  const stray = [
    SINK_SETTINGS.dataApiResourceArn,
    SINK_SETTINGS.dataApiSecretArn,
    SINK_SETTINGS.dataApiDatabase,
    SINK_SETTINGS.dataApiEndpoint,
  ].find((setting) => optional(env, setting.env) !== undefined);
  if (stray !== undefined) {
    throw new ConfigError(
      stray.env,
      'is set but SINK is not "data-api": set SINK=data-api to drain through the Data API, or unset it',
    );
  }
  return postgresTarget(env);
}

/** The Data API's settings; `DATABASE_URL` and the RDS Proxy settings are not read. */
function dataApiLocation(env: Env): DataApiLocation {
  const need = (setting: LocationSetting, what: string): string => {
    const value = location(env, setting);
    if (value === undefined) {
      throw new ConfigError(setting.env, `missing: SINK=data-api needs ${what}`);
    }
    return value;
  };
  return {
    kind: 'data-api',
    resourceArn: need(SINK_SETTINGS.dataApiResourceArn, 'the Aurora cluster ARN'),
    secretArn: need(SINK_SETTINGS.dataApiSecretArn, "the ARN of the database user's secret"),
    database: need(SINK_SETTINGS.dataApiDatabase, 'the name of the database in the cluster'),
    endpoint: location(env, SINK_SETTINGS.dataApiEndpoint),
  };
}

/** A location setting's value, checked against its pattern; undefined when unset or blank. */
function location(env: Env, setting: LocationSetting): string | undefined {
  const value = optional(env, setting.env);
  if (value !== undefined && !setting.pattern.test(value)) {
    throw new ConfigError(setting.env, `must ${setting.what}, got '${value}'`);
  }
  return value;
}

function postgresTarget(env: Env): PostgresTarget {
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
