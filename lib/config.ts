/**
 * The settings of a Spillway deployment, read from CDK context (`-c name=value`, or cdk.json,
 * which holds only what differs from the defaults) and validated at synth time. The deployment's
 * own settings have their defaults here; the engine's (`BACKLOG_LIMIT`, ...) are declared in
 * `lambdas/core/settings.ts`. Every problem names the setting, and all of
 * them are reported at once so that one `cdk synth` says everything that needs fixing.
 */

import {
  ENGINE_SETTINGS,
  type EngineSettingName,
  type EngineSettings,
  type Setting,
  SINK_SETTINGS,
} from '../lambdas/core/settings.js';
import { DEFAULT_MEMORY_MB } from '../lambdas/functions.js';

/**
 * The shapes a deployment can take: `new` and `existing` in AWS (RDS PostgreSQL behind RDS
 * Proxy); `new-aurora` and `existing-aurora` in AWS (Aurora PostgreSQL through the RDS Data
 * API, no proxy); `localstack`, the functions alone (no VPC, cache, database or schedule) for
 * LocalStack, against a Valkey and a PostgreSQL behind PgBouncer that run beside it
 * (`localstack/compose.yaml`).
 */
export type Shape = 'new' | 'existing' | 'new-aurora' | 'existing-aurora' | 'localstack';

const SHAPES = ['new', 'existing', 'new-aurora', 'existing-aurora', 'localstack'] as const;

/** Where the LocalStack shape's functions find the services running beside LocalStack. */
export interface LocalStackSettings {
  /** `REDIS_URL`. @default 'redis://valkey:6379' (the compose file's Valkey) */
  readonly redisUrl: string;
  /**
   * `DATABASE_URL`, through PgBouncer in transaction mode (standing in for RDS Proxy).
   * @default 'postgres://spillway:spillway@pgbouncer:6432/spillway'
   */
  readonly databaseUrl: string;
}

/** A new VPC over two Availability Zones, isolated subnets only, no NAT gateway. */
export interface NewNetworkSettings {
  readonly kind: 'new';
  /** @default '10.40.0.0/16' */
  readonly vpcCidr: string;
}

/** An existing VPC, imported by id without a lookup. */
export interface ExistingNetworkSettings {
  readonly kind: 'existing';
  readonly vpcId: string;
  /** Subnets (two Availability Zones or more) for the functions, the proxy and the cache. */
  readonly subnetIds: readonly string[];
  /**
   * Create a Secrets Manager interface endpoint in the VPC. Turn it off when the VPC already has
   * one with private DNS, or a NAT gateway. @default true
   */
  readonly createSecretsManagerEndpoint: boolean;
}

/** A new RDS PostgreSQL instance. */
export interface NewDatabaseSettings {
  readonly kind: 'new';
  /** @default '17' */
  readonly postgresVersion: string;
  /** Instance class without the `db.` prefix. @default 't4g.micro' */
  readonly instanceType: string;
  /** @default false */
  readonly multiAz: boolean;
  /** @default 20 */
  readonly allocatedStorageGiB: number;
  /** A non-default port. @default 5433 */
  readonly port: number;
  /** @default true */
  readonly deletionProtection: boolean;
  /** @default 7 */
  readonly backupRetentionDays: number;
  /** @default 'spillway' */
  readonly databaseName: string;
}

/** An existing RDS PostgreSQL instance, imported by attributes without a lookup. */
export interface ExistingDatabaseSettings {
  readonly kind: 'existing';
  readonly instanceIdentifier: string;
  readonly endpoint: string;
  readonly port: number;
  /** The instance's security group; Spillway adds one ingress rule to it, from the proxy. */
  readonly securityGroupId: string;
  /** The master user's secret (JSON with `username` and `password`), used only by the user bootstrap. */
  readonly secretArn: string;
  /** `DbiResourceId` (`db-...`): the proxy's IAM policy names the database user through it. */
  readonly resourceId: string;
  readonly databaseName: string;
}

/**
 * A new Aurora PostgreSQL Serverless v2 cluster with the Data API on, reached through it only.
 */
export interface NewAuroraDatabaseSettings {
  readonly kind: 'new-aurora';
  /** An Aurora PostgreSQL engine version with the Data API (13.11+, 14.8+, 15.3+, 16.1+). @default '16.6' */
  readonly auroraVersion: string;
  /** Serverless v2 capacity in ACUs, in steps of 0.5. @default 0.5 */
  readonly minCapacity: number;
  /** @default 4 */
  readonly maxCapacity: number;
  /** A non-default port (no client connects to it: the Data API does). @default 5433 */
  readonly port: number;
  /** @default true */
  readonly deletionProtection: boolean;
  /** @default 7 */
  readonly backupRetentionDays: number;
  /** @default 'spillway' */
  readonly databaseName: string;
}

/** An existing Aurora PostgreSQL cluster with the Data API on, named by ARN (no lookup). */
export interface ExistingAuroraDatabaseSettings {
  readonly kind: 'existing-aurora';
  /** `arn:aws:rds:<region>:<account>:cluster:<name>`. */
  readonly clusterArn: string;
  /** The complete ARN of the secret the Data API signs in with (`username`, `password`). */
  readonly secretArn: string;
  readonly databaseName: string;
  /**
   * Create an RDS Data API interface endpoint in the VPC. Turn it off when the VPC already has
   * one with private DNS, or a NAT gateway. @default true
   */
  readonly createDataApiEndpoint: boolean;
}

/** The databases behind RDS Proxy (`SINK=postgres`). */
export type ProxyDatabaseSettings = NewDatabaseSettings | ExistingDatabaseSettings;
/** The databases reached through the RDS Data API (`SINK=data-api`). */
export type AuroraDatabaseSettings = NewAuroraDatabaseSettings | ExistingAuroraDatabaseSettings;

export interface CacheSettings {
  /** @default 'valkey' */
  readonly engine: 'valkey' | 'redis';
  /** @default '8.0' for Valkey, '7.1' for Redis OSS */
  readonly engineVersion: string;
  /** The parameter-group family of `engine` and `engineVersion` (`valkey8`, `redis6.x`, ...). */
  readonly parameterGroupFamily: string;
  /** @default 'cache.t4g.micro' */
  readonly nodeType: string;
  /** Replicas next to the primary; at least one for Multi-AZ failover. @default 1 */
  readonly replicas: number;
  /** A non-default port. @default 6380 */
  readonly port: number;
}

/**
 * Memory of ElastiCache node types (AWS's "Supported node types" table), for the default
 * `backlogLimitBytes`: half of it leaves room for ElastiCache's reserved memory (25% by default)
 * and for the replication and client buffers.
 */
const GIB = 1024 ** 3;
export const CACHE_NODE_MEMORY_BYTES: Readonly<Record<string, number>> = {
  'cache.t4g.micro': 0.5 * GIB,
  'cache.t4g.small': 1.37 * GIB,
  'cache.t4g.medium': 3.09 * GIB,
  'cache.m7g.large': 6.38 * GIB,
  'cache.m7g.xlarge': 12.93 * GIB,
  'cache.r7g.large': 13.07 * GIB,
  'cache.r7g.xlarge': 26.32 * GIB,
};

export interface FunctionSettings {
  /** @default 30 */
  readonly logRetentionDays: number;
  /** Timeout of `sync`. @default 240 */
  readonly syncTimeoutSeconds: number;
  /** @default 512 */
  readonly syncMemoryMb: number;
  /**
   * Every engine setting as deployed (`lambdas/core/settings.ts` declares each one): what the functions
   * find in their environment.
   */
  readonly engine: EngineSettings;
}

export interface AlarmSettings {
  /** E-mail address subscribed to the alarm topic. @default - no subscription */
  readonly email: string | undefined;
  /** The oldest pending change is older than this. @default 10 */
  readonly oldestPendingMinutes: number;
}

export interface SpillwaySettings {
  readonly shape: Shape;
  /** @default 'Spillway' */
  readonly stackName: string;
  /** `POWERTOOLS_SERVICE_NAME`: the `service` dimension of every metric. @default 'spillway' */
  readonly serviceName: string;
  /** `SPILLWAY_PREFIX` (`functions.engine.prefix`). */
  readonly keyPrefix: string;
  /** `SPILLWAY_DB_SCHEMA` (`functions.engine.dbSchema`). */
  readonly dbSchema: string;
  /** The one database user the functions connect as (IAM authentication). @default 'spillway' */
  readonly dbUser: string;
  /** Create the database user with a one-time custom resource. @default true */
  readonly bootstrapDbUser: boolean;
  readonly network: NewNetworkSettings | ExistingNetworkSettings;
  readonly database: ProxyDatabaseSettings | AuroraDatabaseSettings;
  readonly cache: CacheSettings;
  readonly functions: FunctionSettings;
  readonly alarms: AlarmSettings;
  /** @default - undefined unless shape is `localstack` */
  readonly localstack: LocalStackSettings | undefined;
}

/** The context keys of the deployment itself; the engine's are in `lambdas/core/settings.ts`. */
const DEPLOYMENT_SETTING_NAMES = [
  'shape',
  'stackName',
  'serviceName',
  'dbUser',
  'bootstrapDbUser',
  'vpcCidr',
  'vpcId',
  'subnetIds',
  'createSecretsManagerEndpoint',
  'postgresVersion',
  'dbInstanceType',
  'dbMultiAz',
  'dbAllocatedStorageGiB',
  'dbPort',
  'dbDeletionProtection',
  'dbBackupRetentionDays',
  'dbName',
  'dbInstanceIdentifier',
  'dbEndpoint',
  'dbSecurityGroupId',
  'dbSecretArn',
  'dbResourceId',
  'auroraVersion',
  'auroraMinCapacity',
  'auroraMaxCapacity',
  'dbClusterArn',
  'createDataApiEndpoint',
  'cacheEngine',
  'cacheEngineVersion',
  'cacheNodeType',
  'cacheReplicas',
  'cachePort',
  'logRetentionDays',
  'syncTimeoutSeconds',
  'syncMemoryMb',
  'alarmEmail',
  'alarmOldestPendingMinutes',
  'localRedisUrl',
  'localDatabaseUrl',
] as const;

type EngineContextName = (typeof ENGINE_SETTINGS)[EngineSettingName]['context'];

/** Every context key Spillway reads, for documentation and for rejecting typos. */
export const SETTING_NAMES: readonly SettingName[] = [
  ...DEPLOYMENT_SETTING_NAMES,
  ...Object.values(ENGINE_SETTINGS).map((s) => s.context),
];

export type SettingName = (typeof DEPLOYMENT_SETTING_NAMES)[number] | EngineContextName;

/** Reads one context value; `undefined` when unset. */
export type ContextReader = (name: SettingName) => unknown;

/** Thrown by {@link readSettings}: lists every invalid setting. */
export class SettingsError extends Error {
  override readonly name = 'SettingsError';
  constructor(readonly problems: readonly string[]) {
    super(
      `Invalid Spillway settings (CDK context; set them in cdk.json or with -c name=value):\n${problems
        .map((p) => `  - ${p}`)
        .join('\n')}`,
    );
  }
}

const IDENTIFIER = /^[a-z_][a-z0-9_]{0,62}$/;
const CIDR = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})\/(\d{1,2})$/;
const VPC_ID = /^vpc-[0-9a-f]{8,17}$/;
const SUBNET_ID = /^subnet-[0-9a-f]{8,17}$/;
const SG_ID = /^sg-[0-9a-f]{8,17}$/;
const CLUSTER_ARN = SINK_SETTINGS.dataApiResourceArn.pattern;
const SECRET_ARN = /^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:\d{12}:secret:[A-Za-z0-9/_+=.@!-]+$/;
const DB_RESOURCE_ID = /^db-[A-Z0-9]{10,}$/;
const DB_INSTANCE_ID = /^[a-zA-Z][a-zA-Z0-9-]{0,62}$/;
const HOSTNAME = /^[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?$/;
const EMAIL = /^[^\s@]+@[^\s@]+\.[^\s@]+$/;
const STACK_NAME = /^[A-Za-z][A-Za-z0-9-]{0,127}$/;

/**
 * ElastiCache's parameter-group families by engine and major.minor version. The family is not
 * derivable from the version by one rule (`redis5.0`, `redis6.x`, `redis7`, `valkey7`), so only
 * versions listed here are accepted. Every one has streams with consumer groups (Redis 5.0+),
 * which the buffer needs.
 */
export const CACHE_FAMILIES: Readonly<
  Record<CacheSettings['engine'], Readonly<Record<string, string>>>
> = {
  redis: {
    '5.0': 'redis5.0',
    '6.0': 'redis6.x',
    '6.2': 'redis6.x',
    '7.0': 'redis7',
    '7.1': 'redis7',
  },
  valkey: { '7.2': 'valkey7', '8.0': 'valkey8', '8.1': 'valkey8' },
};

/** The parameter-group family of an engine version (`6.2` → `redis6.x`); undefined when unknown. */
export function cacheParameterGroupFamily(
  engine: CacheSettings['engine'],
  engineVersion: string,
): string | undefined {
  const majorMinor = engineVersion.split('.').slice(0, 2).join('.');
  return CACHE_FAMILIES[engine][majorMinor];
}

/** CloudWatch Logs retention values accepted by CloudFormation. */
const LOG_RETENTION_DAYS = [
  1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288,
  3653,
];

/**
 * Reads and validates every setting.
 * @throws SettingsError naming each missing or malformed setting.
 */
export function readSettings(read: ContextReader): SpillwaySettings {
  const p = new Parser(read);

  const shape = p.oneOf('shape', SHAPES, 'new');
  p.shape = shape;
  const stackName = p.matching('stackName', STACK_NAME, 'a CloudFormation stack name', 'Spillway');
  const serviceName = p.matching(
    'serviceName',
    /^[A-Za-z0-9_-]{1,64}$/,
    'letters, digits, "_" or "-"',
    'spillway',
  );
  const dbUser = p.matching('dbUser', IDENTIFIER, 'a lower-case PostgreSQL identifier', 'spillway');
  const bootstrapDbUser = p.boolean('bootstrapDbUser', true);

  const existingNetwork = shape === 'existing' || shape === 'existing-aurora';
  const network: NewNetworkSettings | ExistingNetworkSettings = existingNetwork
    ? {
        kind: 'existing',
        vpcId: p.requiredMatching('vpcId', VPC_ID, 'a VPC id (vpc-...)'),
        subnetIds: p.subnetIds('subnetIds'),
        createSecretsManagerEndpoint: p.boolean('createSecretsManagerEndpoint', true),
      }
    : { kind: 'new', vpcCidr: p.cidr('vpcCidr', '10.40.0.0/16') };
  if (!existingNetwork) p.rejectForShape(shape, ['vpcId', 'subnetIds']);

  let database: ProxyDatabaseSettings | AuroraDatabaseSettings;
  if (shape === 'new-aurora' || shape === 'existing-aurora') {
    database = auroraDatabase(p, shape);
  } else if (shape === 'existing') {
    database = {
      kind: 'existing',
      instanceIdentifier: p.requiredMatching(
        'dbInstanceIdentifier',
        DB_INSTANCE_ID,
        'an RDS instance identifier',
      ),
      endpoint: p.requiredMatching(
        'dbEndpoint',
        HOSTNAME,
        "the instance's endpoint host name (without port)",
      ),
      port: p.integer('dbPort', 5432, 1150, 65535),
      securityGroupId: p.requiredMatching(
        'dbSecurityGroupId',
        SG_ID,
        "the instance's security group id (sg-...)",
      ),
      secretArn: p.requiredMatching(
        'dbSecretArn',
        SECRET_ARN,
        "the master user's Secrets Manager secret ARN",
      ),
      resourceId: p.requiredMatching(
        'dbResourceId',
        DB_RESOURCE_ID,
        "the instance's DbiResourceId (db-..., from `aws rds describe-db-instances`)",
      ),
      databaseName: p.requiredMatching('dbName', IDENTIFIER, 'the database name'),
    };
    p.rejectForShape(shape, AURORA_SETTING_NAMES);
  } else {
    const port = newDatabasePort(p);
    database = {
      kind: 'new',
      postgresVersion: p.matching(
        'postgresVersion',
        /^1[4-9]$/,
        'a PostgreSQL major version',
        '17',
      ),
      instanceType: p.matching(
        'dbInstanceType',
        /^[a-z0-9]+\.[a-z0-9]+$/,
        'an instance class without "db." (t4g.micro)',
        't4g.micro',
      ),
      multiAz: p.boolean('dbMultiAz', false),
      allocatedStorageGiB: p.integer('dbAllocatedStorageGiB', 20, 20, 65536),
      port,
      deletionProtection: p.boolean('dbDeletionProtection', true),
      backupRetentionDays: p.integer('dbBackupRetentionDays', 7, 1, 35),
      databaseName: p.matching(
        'dbName',
        IDENTIFIER,
        'a lower-case PostgreSQL identifier',
        'spillway',
      ),
    };
    p.rejectForShape(shape, [...EXISTING_INSTANCE_SETTING_NAMES, 'dbSecretArn']);
    p.rejectForShape(shape, AURORA_SETTING_NAMES);
  }

  const engine = p.oneOf('cacheEngine', ['valkey', 'redis'] as const, 'valkey');
  const cachePort = p.integer('cachePort', 6380, 1024, 65535);
  if (cachePort === 6379) p.problem('cachePort', 'must not be the default 6379 (cdk-nag AEC5)');
  const engineVersion = p.matching(
    'cacheEngineVersion',
    /^\d+\.\d+(\.\d+)?$/,
    'a major.minor version (5.0.6 for Redis OSS 5.0)',
    engine === 'valkey' ? '8.0' : '7.1',
  );
  const parameterGroupFamily = cacheParameterGroupFamily(engine, engineVersion);
  if (parameterGroupFamily === undefined) {
    p.problem(
      'cacheEngineVersion',
      `${engine} ${engineVersion} has no parameter group family Spillway knows; use one of ${Object.keys(
        CACHE_FAMILIES[engine],
      ).join(', ')}`,
    );
  }
  const cache: CacheSettings = {
    engine,
    engineVersion,
    parameterGroupFamily: parameterGroupFamily ?? '',
    nodeType: p.matching(
      'cacheNodeType',
      /^cache\.[a-z0-9]+\.[a-z0-9]+$/,
      'a cache node type',
      'cache.t4g.micro',
    ),
    replicas: p.integer('cacheReplicas', 1, 1, 5),
    port: cachePort,
  };

  const logRetentionDays = p.integer('logRetentionDays', 30, 1, 3653);
  if (!LOG_RETENTION_DAYS.includes(logRetentionDays)) {
    p.problem('logRetentionDays', `must be one of ${LOG_RETENTION_DAYS.join(', ')}`);
  }
  const syncTimeoutSeconds = p.integer('syncTimeoutSeconds', 240, 60, 900);
  const tuning = p.engineSettings({
    // Half the node's memory leaves room for ElastiCache's reserved memory and its buffers.
    backlogBytesLimit:
      CACHE_NODE_MEMORY_BYTES[cache.nodeType] === undefined
        ? undefined
        : Math.floor((CACHE_NODE_MEMORY_BYTES[cache.nodeType] as number) / 2),
  });
  if (tuning.backlogBytesLimit === 0) {
    p.problem(
      'backlogLimitBytes',
      `is required for cache node type ${cache.nodeType}, whose memory Spillway does not know: set it to about half the node's memory in bytes (known types: ${Object.keys(CACHE_NODE_MEMORY_BYTES).join(', ')})`,
    );
  }
  if (tuning.redisReplicaAcks > cache.replicas) {
    p.problem(
      'redisReplicaAcks',
      `must not exceed cacheReplicas (${cache.replicas}): WAIT could never be satisfied`,
    );
  }
  if (tuning.syncIdleWaitMs >= syncTimeoutSeconds * 1000) {
    p.problem('syncIdleWaitMs', `must be less than syncTimeoutSeconds (${syncTimeoutSeconds} s)`);
  }
  if (!/^[a-z_][a-z0-9_]*$/.test(tuning.dbSchema)) {
    p.problem('dbSchema', `must be a lower-case PostgreSQL identifier, got "${tuning.dbSchema}"`);
  }
  const keyPrefix = tuning.prefix;
  const dbSchema = tuning.dbSchema;
  const functions: FunctionSettings = {
    logRetentionDays,
    syncTimeoutSeconds,
    syncMemoryMb: p.integer('syncMemoryMb', DEFAULT_MEMORY_MB, 128, 10_240),
    engine: tuning,
  };

  const alarms: AlarmSettings = {
    email: p.optionalMatching('alarmEmail', EMAIL, 'an e-mail address'),
    oldestPendingMinutes: p.integer('alarmOldestPendingMinutes', 10, 1, 1440),
  };

  let localstack: LocalStackSettings | undefined;
  if (shape === 'localstack') {
    localstack = {
      redisUrl: p.matching(
        'localRedisUrl',
        /^rediss?:\/\/\S+$/,
        'a redis:// URL',
        'redis://valkey:6379',
      ),
      databaseUrl: p.matching(
        'localDatabaseUrl',
        /^postgres(ql)?:\/\/\S+$/,
        'a postgres:// URL',
        'postgres://spillway:spillway@pgbouncer:6432/spillway',
      ),
    };
  } else {
    p.rejectForShape(shape, ['localRedisUrl', 'localDatabaseUrl']);
  }

  p.finish();
  return {
    shape,
    stackName,
    serviceName,
    keyPrefix,
    dbSchema,
    dbUser,
    bootstrapDbUser,
    network,
    database,
    cache,
    functions,
    alarms,
    localstack,
  };
}

/** The settings that name an existing RDS instance (shape `existing`). */
const EXISTING_INSTANCE_SETTING_NAMES = [
  'dbInstanceIdentifier',
  'dbEndpoint',
  'dbSecurityGroupId',
  'dbResourceId',
] as const satisfies readonly SettingName[];

/** The settings of the Aurora shapes alone. */
const AURORA_SETTING_NAMES = [
  'auroraVersion',
  'auroraMinCapacity',
  'auroraMaxCapacity',
  'dbClusterArn',
  'createDataApiEndpoint',
] as const satisfies readonly SettingName[];

/** The port of a database Spillway creates: anything but PostgreSQL's default. */
function newDatabasePort(p: Parser): number {
  const port = p.integer('dbPort', 5433, 1150, 65535);
  if (port === 5432) p.problem('dbPort', 'must not be the PostgreSQL default 5432 (cdk-nag RDS11)');
  return port;
}

/** The database of the `new-aurora` and `existing-aurora` shapes. */
function auroraDatabase(
  p: Parser,
  shape: 'new-aurora' | 'existing-aurora',
): AuroraDatabaseSettings {
  // RDS Proxy and the IAM user bootstrap are not part of these shapes: the Data API signs in
  // with the cluster's secret.
  p.rejectForShape(shape, [...EXISTING_INSTANCE_SETTING_NAMES, 'dbUser', 'bootstrapDbUser']);
  if (shape === 'existing-aurora') {
    const clusterArn = p.requiredMatching(
      'dbClusterArn',
      CLUSTER_ARN,
      "the Aurora cluster's ARN (arn:aws:rds:<region>:<account>:cluster:<name>)",
    );
    const secretArn = p.requiredMatching(
      'dbSecretArn',
      SECRET_ARN,
      'the complete ARN of the secret the Data API signs in with (arn:aws:secretsmanager:<region>:<account>:secret:<name>-<6 characters>)',
    );
    const [, , , clusterRegion, clusterAccount] = clusterArn.split(':');
    const [, , , secretRegion, secretAccount] = secretArn.split(':');
    if (clusterArn !== '' && secretArn !== '') {
      if (clusterRegion !== secretRegion || clusterAccount !== secretAccount) {
        p.problem(
          'dbSecretArn',
          `must be in the cluster's region and account (${clusterRegion}, ${clusterAccount}), got ${secretRegion}, ${secretAccount}`,
        );
      }
    }
    return {
      kind: 'existing-aurora',
      clusterArn,
      secretArn,
      databaseName: p.requiredMatching('dbName', IDENTIFIER, 'the database name'),
      createDataApiEndpoint: p.boolean('createDataApiEndpoint', true),
    };
  }
  p.rejectForShape(shape, ['dbClusterArn', 'dbSecretArn', 'createDataApiEndpoint']);
  const minCapacity = p.capacity('auroraMinCapacity', 0.5);
  const maxCapacity = p.capacity('auroraMaxCapacity', 4);
  if (maxCapacity < minCapacity || maxCapacity < 1) {
    p.problem(
      'auroraMaxCapacity',
      `must be at least 1 and at least auroraMinCapacity (${minCapacity}), got ${maxCapacity}`,
    );
  }
  return {
    kind: 'new-aurora',
    auroraVersion: p.matching(
      'auroraVersion',
      /^1[3-7]\.\d{1,2}$/,
      'an Aurora PostgreSQL engine version (major.minor, 16.6)',
      '16.6',
    ),
    minCapacity,
    maxCapacity,
    port: newDatabasePort(p),
    deletionProtection: p.boolean('dbDeletionProtection', true),
    backupRetentionDays: p.integer('dbBackupRetentionDays', 7, 1, 35),
    databaseName: p.matching(
      'dbName',
      IDENTIFIER,
      'a lower-case PostgreSQL identifier',
      'spillway',
    ),
  };
}

/** Collects problems instead of throwing at the first, so one synth reports them all. */
class Parser {
  private readonly problems: string[] = [];
  /** The shape being read, for the messages of required settings. */
  shape: Shape = 'new';

  constructor(private readonly read: ContextReader) {}

  problem(name: SettingName, message: string): void {
    this.problems.push(`${name}: ${message}`);
  }

  finish(): void {
    if (this.problems.length > 0) throw new SettingsError(this.problems);
  }

  /**
   * Every engine setting from its context name: what was given, else what the CDK app deploys
   * (`deployed` in `lambdas/core/settings.ts`, with `computed` values passed in), else the default.
   */
  engineSettings(computed: { readonly backlogBytesLimit: number | undefined }): EngineSettings {
    const values: Record<string, number | string> = {};
    for (const [name, setting] of Object.entries(ENGINE_SETTINGS) as [
      EngineSettingName,
      Setting,
    ][]) {
      const context = setting.context as SettingName;
      if (setting.kind === 'string') {
        values[name] = this.matching(context, setting.pattern, setting.what, setting.default);
        continue;
      }
      const deployed = setting.deployed?.value;
      const fallback =
        deployed === 'computed'
          ? (computed[name as keyof typeof computed] ?? 0)
          : (deployed ?? setting.default);
      values[name] = this.integer(context, fallback, setting.min, setting.max);
    }
    return values as EngineSettings;
  }

  /** Context from `-c` is always a string; from cdk.json it keeps its JSON type. */
  private raw(name: SettingName): string | undefined {
    const value = this.read(name);
    if (value === undefined || value === null) return undefined;
    if (typeof value === 'string') return value.trim() === '' ? undefined : value.trim();
    if (typeof value === 'number' || typeof value === 'boolean') return String(value);
    if (Array.isArray(value)) return value.map(String).join(',');
    this.problem(name, `must be a string, number or boolean, got ${JSON.stringify(value)}`);
    return undefined;
  }

  oneOf<T extends string>(name: SettingName, values: readonly T[], fallback: T): T {
    const raw = this.raw(name);
    if (raw === undefined) return fallback;
    if ((values as readonly string[]).includes(raw)) return raw as T;
    this.problem(name, `must be one of ${values.map((v) => `"${v}"`).join(', ')}, got "${raw}"`);
    return fallback;
  }

  matching(name: SettingName, pattern: RegExp, what: string, fallback: string): string {
    const raw = this.raw(name);
    if (raw === undefined) return fallback;
    if (pattern.test(raw)) return raw;
    this.problem(name, `must be ${what}, got "${raw}"`);
    return fallback;
  }

  optionalMatching(name: SettingName, pattern: RegExp, what: string): string | undefined {
    const raw = this.raw(name);
    if (raw === undefined) return undefined;
    if (pattern.test(raw)) return raw;
    this.problem(name, `must be ${what}, got "${raw}"`);
    return undefined;
  }

  requiredMatching(name: SettingName, pattern: RegExp, what: string): string {
    const raw = this.raw(name);
    if (raw === undefined) {
      this.problem(name, `is required when shape is "${this.shape}": ${what}`);
      return '';
    }
    if (pattern.test(raw)) return raw;
    this.problem(name, `must be ${what}, got "${raw}"`);
    return '';
  }

  integer(name: SettingName, fallback: number, min: number, max: number): number {
    const raw = this.raw(name);
    if (raw === undefined) return fallback;
    const value = /^\d+$/.test(raw) ? Number(raw) : Number.NaN;
    if (Number.isSafeInteger(value) && value >= min && value <= max) return value;
    this.problem(name, `must be an integer from ${min} to ${max}, got "${raw}"`);
    return fallback;
  }

  boolean(name: SettingName, fallback: boolean): boolean {
    const raw = this.raw(name);
    if (raw === undefined) return fallback;
    if (raw === 'true') return true;
    if (raw === 'false') return false;
    this.problem(name, `must be true or false, got "${raw}"`);
    return fallback;
  }

  cidr(name: SettingName, fallback: string): string {
    const raw = this.raw(name);
    if (raw === undefined) return fallback;
    const m = CIDR.exec(raw);
    const octetsOk = m?.slice(1, 5).every((o) => Number(o) <= 255) ?? false;
    const mask = Number(m?.[5]);
    if (m && octetsOk && mask >= 16 && mask <= 24) return raw;
    this.problem(name, `must be an IPv4 CIDR block from /16 to /24, got "${raw}"`);
    return fallback;
  }

  /** Aurora Serverless v2 capacity: ACUs from 0 to 256 in steps of 0.5. */
  capacity(name: SettingName, fallback: number): number {
    const raw = this.raw(name);
    if (raw === undefined) return fallback;
    const value = /^\d+(\.\d+)?$/.test(raw) ? Number(raw) : Number.NaN;
    if (value >= 0 && value <= 256 && Number.isInteger(value * 2)) return value;
    this.problem(name, `must be a number of ACUs from 0 to 256 in steps of 0.5, got "${raw}"`);
    return fallback;
  }

  /** A comma-separated string (`-c subnetIds=subnet-a,subnet-b`) or a JSON array in cdk.json. */
  subnetIds(name: SettingName): string[] {
    const raw = this.raw(name);
    if (raw === undefined) {
      this.problem(
        name,
        `is required when shape is "${this.shape}": two or more subnet ids in different Availability Zones, comma-separated`,
      );
      return [];
    }
    const ids = raw
      .split(',')
      .map((s) => s.trim())
      .filter((s) => s !== '');
    const bad = ids.filter((id) => !SUBNET_ID.test(id));
    if (bad.length > 0) {
      this.problem(
        name,
        `must be subnet ids (subnet-...), got ${bad.map((b) => `"${b}"`).join(', ')}`,
      );
    } else if (ids.length < 2) {
      this.problem(
        name,
        'needs at least two subnets in different Availability Zones (RDS Proxy and Multi-AZ ElastiCache require them)',
      );
    } else if (new Set(ids).size !== ids.length) {
      this.problem(name, 'lists a subnet twice');
    }
    return ids;
  }

  /**
   * A setting of the existing shape given to the new shape is almost always a forgotten
   * `-c shape=existing`. (The reverse is harmless: the existing shape ignores the new shape's
   * settings.)
   */
  rejectForShape(shape: Shape, names: readonly SettingName[]): void {
    for (const name of names) {
      if (this.raw(name) !== undefined) {
        this.problem(name, `does not apply when shape is "${shape}"; remove it or set shape`);
      }
    }
  }
}
