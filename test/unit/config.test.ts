import { afterEach, describe, expect, it } from 'vitest';
import { ConfigError } from '../../lambdas/core/errors.js';
import { loadPipelineConfig } from '../../lambdas/example/settings.js';
import {
  getBufferConfig,
  getConfig,
  loadBufferConfig,
  loadConfig,
  resetConfig,
} from '../../lambdas/io/config.js';

const local = {
  REDIS_URL: 'redis://127.0.0.1:6379',
  DATABASE_URL: 'postgres://spillway@127.0.0.1:5432/spillway',
};

const aws = {
  AWS_REGION: 'eu-west-1',
  REDIS_HOST: 'master.spillway.abc123.euw1.cache.amazonaws.com',
  REDIS_PORT: '6380',
  REDIS_TLS: 'true',
  REDIS_AUTH_SECRET_ARN:
    'arn:aws:secretsmanager:eu-west-1:123456789012:secret:spillway/redis-AbCdEf',
  DB_HOST: 'spillway.proxy-abc123.eu-west-1.rds.amazonaws.com',
  DB_PORT: '5432',
  DB_NAME: 'spillway',
  DB_USER: 'spillway_sync',
  DB_IAM_AUTH: 'true',
};

/** The ConfigError `loadConfig` throws for `env`, or a failure if it throws none. */
function configError(env: Record<string, string | undefined>): ConfigError {
  try {
    loadConfig(env);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return err as ConfigError;
  }
  throw new Error('loadConfig accepted the environment');
}

describe('loadConfig', () => {
  it('reads the local URLs and fills every default', () => {
    expect(loadConfig(local)).toEqual({
      redis: { kind: 'url', url: local.REDIS_URL },
      database: { kind: 'url', url: local.DATABASE_URL },
      region: undefined,
      prefix: 'spillway',
      dbSchema: 'public',
      backlogLimit: 1_000_000,
      backlogBytesLimit: 209_715_200,
      redisReplicaAcks: 0,
      changesetMaxChanges: 1_000,
      changesetMaxBytes: 1_048_576,
      syncBatchSize: 500,
      syncBatchChanges: 10_000,
      syncBatchBytes: 4_194_304,
      healthStallMs: 180_000,
      syncIdleWaitMs: 10_000,
      syncDeadlineMarginMs: 5_000,
      syncLeaseMs: 30_000,
      migrationTimeoutMs: 240_000,
      redisReplicaAckTimeoutMs: 1_000,
      syncBackoffBaseMs: 100,
      syncBackoffMaxMs: 5_000,
      breakerThreshold: 5,
      breakerCooldownMs: 5_000,
      breakerMaxCooldownMs: 60_000,
      readCacheTtlMs: 30_000,
      readCacheStaleMs: 3_600_000,
      readCacheMaxBytes: 16_777_216,
    });
  });

  it('reads the AWS endpoints the CDK app sets', () => {
    const config = loadConfig(aws);
    expect(config.redis).toEqual({
      kind: 'elasticache',
      host: aws.REDIS_HOST,
      port: 6380,
      tls: true,
      authSecretArn: aws.REDIS_AUTH_SECRET_ARN,
    });
    expect(config.database).toEqual({
      kind: 'iam',
      host: aws.DB_HOST,
      port: 5432,
      database: 'spillway',
      user: 'spillway_sync',
    });
    expect(config.region).toBe('eu-west-1');
  });

  it('defaults the ElastiCache port to 6379 and TLS to on, and allows AUTH to be off', () => {
    const config = loadConfig({
      ...aws,
      REDIS_PORT: undefined,
      REDIS_TLS: undefined,
      REDIS_AUTH_SECRET_ARN: undefined,
    });
    expect(config.redis).toEqual({
      kind: 'elasticache',
      host: aws.REDIS_HOST,
      port: 6379,
      tls: true,
      authSecretArn: undefined,
    });
  });

  it('reads every tuning variable', () => {
    const config = loadConfig({
      ...local,
      SPILLWAY_PREFIX: 'team-a:spillway',
      SPILLWAY_DB_SCHEMA: 'pipeline_v2',
      BACKLOG_LIMIT: '5000',
      REDIS_REPLICA_ACKS: '1',
      CHANGESET_MAX_CHANGES: '10',
      CHANGESET_MAX_BYTES: '2048',
      SYNC_BATCH_SIZE: '50',
      SYNC_IDLE_WAIT_MS: '0',
      SYNC_DEADLINE_MARGIN_MS: '2500',
      SYNC_LEASE_MS: '3000',
      REDIS_REPLICA_ACK_TIMEOUT_MS: '250',
      SYNC_BACKOFF_BASE_MS: '10',
      SYNC_BACKOFF_MAX_MS: '20',
      BREAKER_THRESHOLD: '2',
      BREAKER_COOLDOWN_MS: '30',
      BREAKER_MAX_COOLDOWN_MS: '40',
    });
    expect(config).toMatchObject({
      prefix: 'team-a:spillway',
      dbSchema: 'pipeline_v2',
      backlogLimit: 5000,
      redisReplicaAcks: 1,
      changesetMaxChanges: 10,
      changesetMaxBytes: 2048,
      syncBatchSize: 50,
      syncIdleWaitMs: 0,
      syncDeadlineMarginMs: 2500,
      syncLeaseMs: 3000,
      redisReplicaAckTimeoutMs: 250,
      syncBackoffBaseMs: 10,
      syncBackoffMaxMs: 20,
      breakerThreshold: 2,
      breakerCooldownMs: 30,
      breakerMaxCooldownMs: 40,
    });
  });

  it('treats a blank variable as unset', () => {
    expect(loadConfig({ ...local, SPILLWAY_PREFIX: '  ', BACKLOG_LIMIT: '' })).toMatchObject({
      prefix: 'spillway',
      backlogLimit: 1_000_000,
    });
  });

  it('returns a frozen object', () => {
    const config = loadConfig(local);
    expect(Object.isFrozen(config)).toBe(true);
    expect(Object.isFrozen(config.redis)).toBe(true);
  });

  describe('names the variable of each problem', () => {
    const cases: [string, Record<string, string | undefined>, string, RegExp][] = [
      ['no Redis at all', { DATABASE_URL: local.DATABASE_URL }, 'REDIS_URL', /missing/],
      ['both Redis forms', { ...local, REDIS_HOST: 'h' }, 'REDIS_URL', /not both/],
      ['a Redis URL of another scheme', { ...local, REDIS_URL: 'http://x' }, 'REDIS_URL', /redis/],
      ['a Redis URL that is no URL', { ...local, REDIS_URL: 'localhost:6379' }, 'REDIS_URL', /URL/],
      ['a bad Redis port', { ...aws, REDIS_PORT: '70000' }, 'REDIS_PORT', /port/],
      ['a TLS flag that is not a boolean', { ...aws, REDIS_TLS: 'yes' }, 'REDIS_TLS', /"true"/],
      [
        'a secret name instead of an ARN',
        { ...aws, REDIS_AUTH_SECRET_ARN: 'spillway/redis' },
        'REDIS_AUTH_SECRET_ARN',
        /ARN/,
      ],
      ['no database at all', { REDIS_URL: local.REDIS_URL }, 'DATABASE_URL', /missing/],
      ['both database forms', { ...local, DB_HOST: 'h' }, 'DATABASE_URL', /not both/],
      [
        'a database URL of another scheme',
        { ...local, DATABASE_URL: 'mysql://x/y' },
        'DATABASE_URL',
        /postgres/,
      ],
      ['a proxy without IAM auth', { ...aws, DB_IAM_AUTH: undefined }, 'DB_IAM_AUTH', /"true"/],
      ['a proxy with IAM auth off', { ...aws, DB_IAM_AUTH: 'false' }, 'DB_IAM_AUTH', /IAM/],
      ['a proxy without a database name', { ...aws, DB_NAME: undefined }, 'DB_NAME', /missing/],
      ['a proxy without a user', { ...aws, DB_USER: '' }, 'DB_USER', /missing/],
      ['a bad database port', { ...aws, DB_PORT: '54x' }, 'DB_PORT', /port/],
      ['IAM without a region', { ...aws, AWS_REGION: undefined }, 'AWS_REGION', /missing/],
      [
        'a prefix with a space',
        { ...local, SPILLWAY_PREFIX: 'my prefix' },
        'SPILLWAY_PREFIX',
        /'my prefix'/,
      ],
      [
        'a schema that is not an identifier',
        { ...local, SPILLWAY_DB_SCHEMA: 'public; drop' },
        'SPILLWAY_DB_SCHEMA',
        /identifier/,
      ],
      [
        'a schema starting with a digit',
        { ...local, SPILLWAY_DB_SCHEMA: '1st' },
        'SPILLWAY_DB_SCHEMA',
        /identifier/,
      ],
      [
        'a word for a number',
        { ...local, BACKLOG_LIMIT: 'abc' },
        'BACKLOG_LIMIT',
        /^BACKLOG_LIMIT: must be a positive integer, got 'abc'$/,
      ],
      [
        'zero changes per changeset',
        { ...local, CHANGESET_MAX_CHANGES: '0' },
        'CHANGESET_MAX_CHANGES',
        /positive integer, got '0'/,
      ],
      [
        'a negative byte limit',
        { ...local, CHANGESET_MAX_BYTES: '-1' },
        'CHANGESET_MAX_BYTES',
        /positive integer/,
      ],
      [
        'a fractional batch size',
        { ...local, SYNC_BATCH_SIZE: '2.5' },
        'SYNC_BATCH_SIZE',
        /positive integer, got '2.5'/,
      ],
      [
        'a negative idle wait',
        { ...local, SYNC_IDLE_WAIT_MS: '-5' },
        'SYNC_IDLE_WAIT_MS',
        /non-negative integer/,
      ],
      [
        'a zero deadline margin',
        { ...local, SYNC_DEADLINE_MARGIN_MS: '0' },
        'SYNC_DEADLINE_MARGIN_MS',
        /positive integer/,
      ],
      [
        'an unsafe integer',
        { ...local, BACKLOG_LIMIT: '99999999999999999999' },
        'BACKLOG_LIMIT',
        /positive integer/,
      ],
      [
        'a batch size above its bound',
        { ...local, SYNC_BATCH_SIZE: '10001' },
        'SYNC_BATCH_SIZE',
        /^SYNC_BATCH_SIZE: must be at most 10000, got '10001'$/,
      ],
    ];
    it.each(cases)('%s', (_label, env, variable, message) => {
      const error = configError(env);
      expect(error.variable).toBe(variable);
      expect(error.message).toMatch(message);
      expect(error.message.startsWith(`${variable}: `)).toBe(true);
      expect(error.retryable).toBe(false);
    });
  });

  it('does not need a region for ElastiCache without AUTH and a local database', () => {
    const config = loadConfig({
      DATABASE_URL: local.DATABASE_URL,
      REDIS_HOST: 'h',
      REDIS_TLS: 'false',
    });
    expect(config.redis).toMatchObject({ kind: 'elasticache', tls: false });
    expect(config.region).toBeUndefined();
  });
});

describe('loadConfig with SINK=data-api', () => {
  const dataApi = {
    REDIS_URL: local.REDIS_URL,
    AWS_REGION: 'eu-west-1',
    SINK: 'data-api',
    DATA_API_RESOURCE_ARN: 'arn:aws:rds:eu-west-1:123456789012:cluster:spillway',
    DATA_API_SECRET_ARN: 'arn:aws:secretsmanager:eu-west-1:123456789012:secret:spillway/db-AbCdEf',
    DATA_API_DATABASE: 'spillway',
  };

  it('reads the cluster, its secret and the database, and needs no DB_HOST or DATABASE_URL', () => {
    expect(loadConfig(dataApi).database).toEqual({
      kind: 'data-api',
      resourceArn: dataApi.DATA_API_RESOURCE_ARN,
      secretArn: dataApi.DATA_API_SECRET_ARN,
      database: 'spillway',
      endpoint: undefined,
    });
  });

  it('does not read the RDS Proxy settings, even malformed ones', () => {
    const config = loadConfig({ ...dataApi, DB_HOST: 'h', DB_PORT: 'x', DATABASE_URL: 'nope' });
    expect(config.database.kind).toBe('data-api');
  });

  it('takes the local stand-in as DATA_API_ENDPOINT', () => {
    const config = loadConfig({ ...dataApi, DATA_API_ENDPOINT: 'http://127.0.0.1:4567' });
    expect(config.database).toMatchObject({ endpoint: 'http://127.0.0.1:4567' });
  });

  it('defaults to the postgres sink', () => {
    expect(loadConfig(local).database.kind).toBe('url');
    expect(loadConfig({ ...local, SINK: 'postgres' }).database.kind).toBe('url');
  });

  const cases: [string, Record<string, string | undefined>, string, RegExp][] = [
    ['an unknown sink', { ...dataApi, SINK: 'aurora' }, 'SINK', /"postgres" or "data-api"/],
    [
      'no resource ARN',
      { ...dataApi, DATA_API_RESOURCE_ARN: undefined },
      'DATA_API_RESOURCE_ARN',
      /missing: SINK=data-api needs the Aurora cluster ARN/,
    ],
    [
      'an instance ARN instead of a cluster ARN',
      { ...dataApi, DATA_API_RESOURCE_ARN: 'arn:aws:rds:eu-west-1:123456789012:db:spillway' },
      'DATA_API_RESOURCE_ARN',
      /Aurora cluster ARN/,
    ],
    [
      'no secret ARN',
      { ...dataApi, DATA_API_SECRET_ARN: ' ' },
      'DATA_API_SECRET_ARN',
      /missing: SINK=data-api needs the ARN of the database user's secret/,
    ],
    [
      'a secret name instead of an ARN',
      { ...dataApi, DATA_API_SECRET_ARN: 'spillway/db' },
      'DATA_API_SECRET_ARN',
      /Secrets Manager secret ARN/,
    ],
    [
      'no database name',
      { ...dataApi, DATA_API_DATABASE: undefined },
      'DATA_API_DATABASE',
      /missing/,
    ],
    [
      'an endpoint that is no URL',
      { ...dataApi, DATA_API_ENDPOINT: '127.0.0.1:4567' },
      'DATA_API_ENDPOINT',
      /http\(s\):\/\/host:port/,
    ],
    ['no region', { ...dataApi, AWS_REGION: undefined }, 'AWS_REGION', /RDS Data API client/],
    [
      'Data API settings without SINK=data-api',
      { ...local, DATA_API_RESOURCE_ARN: dataApi.DATA_API_RESOURCE_ARN },
      'DATA_API_RESOURCE_ARN',
      /SINK is not "data-api"/,
    ],
  ];
  it.each(cases)('names the variable of %s', (_label, env, variable, message) => {
    const error = configError(env);
    expect(error.variable).toBe(variable);
    expect(error.message).toMatch(message);
  });
});

describe('loadBufferConfig', () => {
  const writer = {
    AWS_REGION: aws.AWS_REGION,
    REDIS_HOST: aws.REDIS_HOST,
    REDIS_AUTH_SECRET_ARN: aws.REDIS_AUTH_SECRET_ARN,
  };

  it('needs no database settings (write-only functions are deployed without them)', () => {
    const config = loadBufferConfig(writer);
    expect(config.redis).toMatchObject({ kind: 'elasticache', host: aws.REDIS_HOST });
    expect(config).toMatchObject({ prefix: 'spillway', backlogLimit: 1_000_000 });
    expect(config).not.toHaveProperty('database.kind');
  });

  it('needs no region: the AUTH token comes through the Parameters and Secrets extension', () => {
    expect(loadBufferConfig({ ...writer, AWS_REGION: undefined }).redis).toMatchObject({
      authSecretArn: aws.REDIS_AUTH_SECRET_ARN,
    });
  });

  it('ignores database variables, even malformed ones', () => {
    expect(() => loadBufferConfig({ ...writer, DB_HOST: 'h', DB_IAM_AUTH: 'no' })).not.toThrow();
  });

  it('still names the variable of each buffer problem', () => {
    const cases: [Record<string, string | undefined>, string][] = [
      [{ ...writer, REDIS_HOST: undefined }, 'REDIS_URL'],
      [{ ...writer, BACKLOG_LIMIT: 'abc' }, 'BACKLOG_LIMIT'],
    ];
    for (const [env, variable] of cases) {
      expect(() => loadBufferConfig(env)).toThrow(expect.objectContaining({ variable }));
    }
  });
});

describe('getConfig', () => {
  const saved = { ...process.env };
  afterEach(() => {
    process.env = { ...saved };
    resetConfig();
  });

  it('reads process.env once per container', () => {
    process.env = { ...saved, ...local, SYNC_BATCH_SIZE: '7' };
    resetConfig();
    const first = getConfig();
    process.env.SYNC_BATCH_SIZE = '8';
    expect(getConfig()).toBe(first);
    expect(getConfig().syncBatchSize).toBe(7);
  });

  it('reads the buffer configuration once per container too', () => {
    process.env = {
      ...saved,
      REDIS_URL: local.REDIS_URL,
      DATABASE_URL: undefined,
      BACKLOG_LIMIT: '9',
    };
    resetConfig();
    const first = getBufferConfig();
    process.env.BACKLOG_LIMIT = '10';
    expect(getBufferConfig()).toBe(first);
    expect(first.backlogLimit).toBe(9);
    expect(() => getConfig()).toThrow(ConfigError);
  });

  it('does not remember a failed read', () => {
    process.env = { ...saved, ...local, BACKLOG_LIMIT: 'lots' };
    resetConfig();
    expect(() => getConfig()).toThrow(ConfigError);
    process.env.BACKLOG_LIMIT = '10';
    expect(getConfig().backlogLimit).toBe(10);
  });
});

describe("the example pipeline's settings", () => {
  it('default to 1,000-character chunks sharing 100', () => {
    expect(loadPipelineConfig({})).toEqual({ chunkSize: 1_000, chunkOverlap: 100 });
    expect(loadPipelineConfig({ CHUNK_SIZE: '200', CHUNK_OVERLAP: '0' })).toEqual({
      chunkSize: 200,
      chunkOverlap: 0,
    });
  });

  it.each([
    [{ CHUNK_SIZE: '99999999999999999999' }, 'CHUNK_SIZE', /positive integer/],
    [{ CHUNK_SIZE: '100', CHUNK_OVERLAP: '100' }, 'CHUNK_OVERLAP', /less than CHUNK_SIZE \(100\)/],
    [{ CHUNK_OVERLAP: '5000' }, 'CHUNK_OVERLAP', /less than CHUNK_SIZE/],
  ])('name the variable of each problem (%o)', (env, variable, message) => {
    expect(() => loadPipelineConfig(env)).toThrow(
      expect.objectContaining({ variable, message: expect.stringMatching(message) }),
    );
  });
});
