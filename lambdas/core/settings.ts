/**
 * Every setting of the engine, declared once: its environment variable, its CDK context name,
 * type, default, bounds and meaning. The functions read them from the environment
 * (`io/config.ts`), the CDK app from its context (`lib/config.ts`) and passes them on as the
 * environment, and the settings table of docs/deploy.md is generated from here (a test fails when
 * it is not: `npx tsx scripts/settings-doc.ts --write` regenerates it).
 *
 * This module imports nothing, so the CDK app reads it without pulling anything into the bundles
 * and the bundles read it without pulling in CDK.
 */

/** A whole number read from the environment, within `[min, max]`. */
export interface IntegerSetting {
  readonly kind: 'integer';
  /** The environment variable the functions read. */
  readonly env: string;
  /** The CDK context name (`-c name=value`). */
  readonly context: string;
  /** What the engine uses when the variable is unset (the local runner, tests, a library user). */
  readonly default: number;
  /**
   * What the CDK app deploys when it differs from `default`, and why; `'computed'` when the app
   * derives it from other settings (the reason says how).
   */
  readonly deployed?: { readonly value: number | 'computed'; readonly why: string };
  readonly min: number;
  readonly max: number;
  readonly description: string;
}

/** A string read from the environment, matching `pattern`. */
export interface StringSetting {
  readonly kind: 'string';
  readonly env: string;
  readonly context: string;
  readonly default: string;
  readonly pattern: RegExp;
  /** What `pattern` accepts, after "must" in error messages. */
  readonly what: string;
  readonly description: string;
}

export type Setting = IntegerSetting | StringSetting;

const MAX = Number.MAX_SAFE_INTEGER;
const MIB = 1024 * 1024;

/** The engine's settings, by the name the code uses. */
export const ENGINE_SETTINGS = {
  prefix: {
    kind: 'string',
    env: 'SPILLWAY_PREFIX',
    context: 'keyPrefix',
    default: 'spillway',
    pattern: /^[A-Za-z0-9:_-]+$/,
    what: "contain only letters, digits, ':', '_' and '-'",
    description:
      "Prefix of every Redis key; also names the buffer in the database's fencing table.",
  },
  dbSchema: {
    kind: 'string',
    env: 'SPILLWAY_DB_SCHEMA',
    context: 'dbSchema',
    default: 'public',
    // An unquoted PostgreSQL identifier (at most 63 bytes, NAMEDATALEN - 1).
    pattern: /^[A-Za-z_][A-Za-z0-9_]{0,62}$/,
    what: "be a PostgreSQL identifier (a letter or '_', then letters, digits or '_', at most 63)",
    description: 'PostgreSQL schema of the pipeline tables.',
  },
  backlogLimit: {
    kind: 'integer',
    env: 'BACKLOG_LIMIT',
    context: 'backlogLimit',
    default: 1_000_000,
    min: 1,
    max: MAX,
    description: 'Pending changes past which `write` fails with BackpressureError (G5).',
  },
  backlogBytesLimit: {
    kind: 'integer',
    env: 'BACKLOG_LIMIT_BYTES',
    context: 'backlogLimitBytes',
    default: 200 * MIB,
    deployed: {
      value: 'computed',
      why: 'half the memory of `cacheNodeType` (268435456 for `cache.t4g.micro`); required for a node type Spillway does not know',
    },
    min: 1,
    max: MAX,
    description:
      "What pending changesets may cost Redis in bytes (estimated per changeset: its payload, its read-overlay references and parent-index entries, with Redis's overhead), past which `write` fails with BackpressureError (G5): backpressure comes before the cache is full.",
  },
  redisReplicaAcks: {
    kind: 'integer',
    env: 'REDIS_REPLICA_ACKS',
    context: 'redisReplicaAcks',
    default: 0,
    deployed: { value: 1, why: 'the deployed cache has a replica; at most `cacheReplicas`' },
    min: 0,
    max: 5,
    description:
      'Replicas that must confirm a changeset (Redis `WAIT`) before `write` acknowledges it, so that a failover cannot lose it (G1); `0` trades that for a little latency.',
  },
  redisReplicaAckTimeoutMs: {
    kind: 'integer',
    env: 'REDIS_REPLICA_ACK_TIMEOUT_MS',
    context: 'redisReplicaAckTimeoutMs',
    default: 1_000,
    min: 1,
    max: 60_000,
    description:
      'How long `write` waits for the replicas of `REDIS_REPLICA_ACKS`; past it, UnavailableError (the changeset may still land).',
  },
  changesetMaxChanges: {
    kind: 'integer',
    env: 'CHANGESET_MAX_CHANGES',
    context: 'changesetMaxChanges',
    default: 1_000,
    min: 1,
    max: 100_000,
    description: 'Changes one changeset may hold.',
  },
  changesetMaxBytes: {
    kind: 'integer',
    env: 'CHANGESET_MAX_BYTES',
    context: 'changesetMaxBytes',
    default: MIB,
    min: 1,
    // A Lambda request payload is at most 6 MB; a larger changeset could never arrive.
    max: 6_291_456,
    description: 'Bytes one changeset may take (its JSON).',
  },
  syncBatchSize: {
    kind: 'integer',
    env: 'SYNC_BATCH_SIZE',
    context: 'syncBatchSize',
    default: 500,
    min: 1,
    max: 10_000,
    description: 'Changesets per drain transaction.',
  },
  syncBatchChanges: {
    kind: 'integer',
    env: 'SYNC_BATCH_CHANGES',
    context: 'syncBatchChanges',
    default: 10_000,
    min: 1,
    max: MAX,
    description: 'Changes per drain transaction.',
  },
  syncBatchBytes: {
    kind: 'integer',
    env: 'SYNC_BATCH_BYTES',
    context: 'syncBatchBytes',
    default: 4 * MIB,
    min: 1,
    max: MAX,
    description:
      "Bytes of stored changes (their JSON) one drain transaction may take; decoded, they take a few times that in the drainer's memory, which this bounds. A larger changeset drains alone.",
  },
  syncIdleWaitMs: {
    kind: 'integer',
    env: 'SYNC_IDLE_WAIT_MS',
    context: 'syncIdleWaitMs',
    default: 10_000,
    deployed: {
      value: 50_000,
      why: 'the schedule starts `sync` every minute: it idles through most of it, so lag stays in seconds; must be less than `syncTimeoutSeconds`',
    },
    min: 0,
    max: 900_000,
    description:
      'How long `sync` waits for new work on an empty backlog; `0` returns at once. Lower it to pay less for `sync`, at the price of lag.',
  },
  syncDeadlineMarginMs: {
    kind: 'integer',
    env: 'SYNC_DEADLINE_MARGIN_MS',
    context: 'syncDeadlineMarginMs',
    default: 5_000,
    min: 1,
    max: MAX,
    description: '`sync` stops this long before its Lambda timeout.',
  },
  syncLeaseMs: {
    kind: 'integer',
    env: 'SYNC_LEASE_MS',
    context: 'syncLeaseMs',
    default: 30_000,
    min: 1,
    max: MAX,
    description:
      "How long a drainer's lease lasts between renewals: a drainer that died mid-drain keeps the next one waiting this long.",
  },
  syncBackoffBaseMs: {
    kind: 'integer',
    env: 'SYNC_BACKOFF_BASE_MS',
    context: 'syncBackoffBaseMs',
    default: 100,
    min: 1,
    max: MAX,
    description: 'First wait before a drain retries a transient failure; doubles, with jitter.',
  },
  syncBackoffMaxMs: {
    kind: 'integer',
    env: 'SYNC_BACKOFF_MAX_MS',
    context: 'syncBackoffMaxMs',
    default: 5_000,
    min: 1,
    max: MAX,
    description: 'Longest wait between retries of a transient failure.',
  },
  breakerThreshold: {
    kind: 'integer',
    env: 'BREAKER_THRESHOLD',
    context: 'breakerThreshold',
    default: 5,
    min: 1,
    max: MAX,
    description:
      'Consecutive transient failures that open the circuit breaker all drainers share (G7).',
  },
  breakerCooldownMs: {
    kind: 'integer',
    env: 'BREAKER_COOLDOWN_MS',
    context: 'breakerCooldownMs',
    default: 5_000,
    min: 1,
    max: MAX,
    description:
      'How long an open breaker waits before a trial; doubles after each failed trial, as does the wait between retries of a systemic fault.',
  },
  breakerMaxCooldownMs: {
    kind: 'integer',
    env: 'BREAKER_MAX_COOLDOWN_MS',
    context: 'breakerMaxCooldownMs',
    default: 60_000,
    min: 1,
    max: MAX,
    description: "The breaker's longest cool-down.",
  },
  healthStallMs: {
    kind: 'integer',
    env: 'HEALTH_STALL_MS',
    context: 'healthStallMs',
    default: 180_000,
    min: 1,
    max: MAX,
    description:
      '`health` reports the backlog as not draining after this long without progress while changes wait (three runs of the one-minute schedule).',
  },
  readCacheTtlMs: {
    kind: 'integer',
    env: 'READ_CACHE_TTL_MS',
    context: 'readCacheTtlMs',
    default: 30_000,
    min: 0,
    max: MAX,
    description:
      'How long a row `read` fetched from the database answers later reads from the read cache in Redis, without the database. Writes through Spillway never make it stale (pending changes overlay it; settling them removes it); this bounds only changes made to the database by others. `0` always asks the database (the cache still answers during an outage).',
  },
  readCacheStaleMs: {
    kind: 'integer',
    env: 'READ_CACHE_STALE_MS',
    context: 'readCacheStaleMs',
    default: 3_600_000,
    min: 0,
    max: MAX,
    description:
      'How long after it was cached a row still answers `read` while the database is out of reach, marked `stale: true` with `cachedAt`.',
  },
  readCacheMaxBytes: {
    kind: 'integer',
    env: 'READ_CACHE_MAX_BYTES',
    context: 'readCacheMaxBytes',
    default: 16 * MIB,
    min: 0,
    max: MAX,
    description:
      'What the read cache may cost Redis in bytes (estimated); the oldest rows go past it. Never at the expense of writes: a write Redis refuses for lack of memory drops the whole cache first. `0` turns the cache off.',
  },
  migrationTimeoutMs: {
    kind: 'integer',
    env: 'MIGRATION_TIMEOUT_MS',
    context: 'migrationTimeoutMs',
    default: 240_000,
    min: 1,
    max: MAX,
    description:
      "Longest one migration may take, lock waits included: PostgreSQL cancels it past this. Keep it below the `migrate` function's five-minute timeout.",
  },
} as const satisfies Record<string, Setting>;

export type EngineSettingName = keyof typeof ENGINE_SETTINGS;

/** The value of every engine setting. */
export type EngineSettings = {
  readonly [K in EngineSettingName]: (typeof ENGINE_SETTINGS)[K]['default'] extends number
    ? number
    : string;
};

/** Every engine setting at its default. */
export const ENGINE_DEFAULTS: EngineSettings = Object.freeze(
  Object.fromEntries(Object.entries(ENGINE_SETTINGS).map(([name, s]) => [name, s.default])),
) as EngineSettings;

/**
 * Parses one setting's raw text (trimmed, non-empty): its value, or the problem with it in words
 * (`must be ..., got ...`), for the caller to wrap in its own error type.
 */
export function parseSetting(
  setting: Setting,
  raw: string,
): { ok: true; value: number | string } | { ok: false; problem: string } {
  if (setting.kind === 'string') {
    return setting.pattern.test(raw)
      ? { ok: true, value: raw }
      : { ok: false, problem: `must ${setting.what}, got '${raw}'` };
  }
  const value = /^\d+$/.test(raw) ? Number(raw) : Number.NaN;
  if (!Number.isSafeInteger(value) || value < setting.min) {
    const what =
      setting.min === 0
        ? 'a non-negative integer'
        : setting.min === 1
          ? 'a positive integer'
          : `an integer of at least ${setting.min}`;
    return { ok: false, problem: `must be ${what}, got '${raw}'` };
  }
  if (value > setting.max)
    return { ok: false, problem: `must be at most ${setting.max}, got '${raw}'` };
  return { ok: true, value };
}

/** The environment variables that give a function `values` (what the CDK app sets). */
export function settingsEnvironment(values: EngineSettings): Record<string, string> {
  return Object.fromEntries(
    (Object.keys(ENGINE_SETTINGS) as EngineSettingName[]).map((name) => [
      ENGINE_SETTINGS[name].env,
      String(values[name]),
    ]),
  );
}

/** The sinks a function can drain through (`SINK`). */
export const SINK_KINDS = ['postgres', 'data-api'] as const;
export type SinkKind = (typeof SINK_KINDS)[number];

/** A setting that says where something is: no default, no CDK context of its own. */
export interface LocationSetting {
  readonly env: string;
  /** Values it accepts, and `what` says which after "must" in error messages. */
  readonly pattern: RegExp;
  readonly what: string;
  readonly description: string;
}

/**
 * Which sink the functions that reach the database use, and where the Data API sink finds
 * Aurora. The CDK app sets them from the database shape it deploys (so they have no context
 * names); `io/config.ts` reads and validates them. With `SINK=data-api` the RDS Proxy settings
 * (`DB_HOST`, `DB_PORT`, `DB_NAME`, `DB_USER`, `DB_IAM_AUTH`) and `DATABASE_URL` are not read.
 */
export const SINK_SETTINGS = {
  sink: {
    env: 'SINK',
    pattern: /^(postgres|data-api)$/,
    what: 'be "postgres" or "data-api"',
    description:
      'How the functions reach the database: `postgres` (the default; pg through RDS Proxy, or `DATABASE_URL`) or `data-api` (Aurora PostgreSQL through the RDS Data API).',
  },
  dataApiResourceArn: {
    env: 'DATA_API_RESOURCE_ARN',
    pattern: /^arn:aws[a-z-]*:rds:[a-z0-9-]+:\d{12}:cluster:[A-Za-z0-9-]+$/,
    what: 'be an Aurora cluster ARN (arn:aws:rds:<region>:<account>:cluster:<name>)',
    description: 'With `SINK=data-api`: the Aurora cluster the Data API reaches.',
  },
  dataApiSecretArn: {
    env: 'DATA_API_SECRET_ARN',
    pattern: /^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:\d{12}:secret:.+$/,
    what: 'be a Secrets Manager secret ARN (arn:aws:secretsmanager:<region>:<account>:secret:<name>)',
    description:
      "With `SINK=data-api`: the secret holding the database user's credentials, which the Data API signs in with.",
  },
  dataApiDatabase: {
    env: 'DATA_API_DATABASE',
    pattern: /^[A-Za-z_][A-Za-z0-9_$-]{0,62}$/,
    what: "be a database name (a letter or '_', then letters, digits, '_', '$' or '-', at most 63)",
    description: 'With `SINK=data-api`: the database in the cluster.',
  },
  dataApiEndpoint: {
    env: 'DATA_API_ENDPOINT',
    pattern: /^https?:\/\/[^\s/]+\/?$/,
    what: 'be a URL of the form http(s)://host:port',
    description:
      "With `SINK=data-api`, local and tests only: the local Data API stand-in (`local/data-api/server.ts`) instead of AWS's endpoint. Requests to it are signed with placeholder credentials, never the function's.",
  },
} as const satisfies Record<string, LocationSetting>;
