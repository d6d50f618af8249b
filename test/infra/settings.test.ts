import { describe, expect, it } from 'vitest';
import { readSettings, SETTING_NAMES, SettingsError } from '../../lib/config.js';
import { cdkJsonContext, EXISTING_AURORA_SHAPE, EXISTING_SHAPE } from './support.js';

function settingsFrom(context: Record<string, unknown>) {
  return readSettings((name) => context[name]);
}

function problemsOf(context: Record<string, unknown>): readonly string[] {
  try {
    settingsFrom(context);
  } catch (error) {
    if (error instanceof SettingsError) return error.problems;
    throw error;
  }
  throw new Error('expected a SettingsError');
}

describe('settings from CDK context', () => {
  it("cdk.json's defaults describe the new shape and pass validation", () => {
    const settings = settingsFrom(cdkJsonContext());
    expect(settings.shape).toBe('new');
    expect(settings.network).toEqual({ kind: 'new', vpcCidr: '10.40.0.0/16' });
    expect(settings.database).toMatchObject({
      kind: 'new',
      port: 5433,
      multiAz: false,
      deletionProtection: true,
      backupRetentionDays: 7,
    });
    expect(settings.cache).toMatchObject({
      engine: 'valkey',
      engineVersion: '8.0',
      port: 6380,
      replicas: 1,
    });
    expect(settings.functions.engine.redisReplicaAcks).toBe(1);
  });

  it('limits the backlog in bytes to half the memory of the cache node type it creates, and asks for the limit for a node type it does not know', () => {
    expect(settingsFrom(cdkJsonContext()).functions.engine.backlogBytesLimit).toBe(268_435_456);
    expect(
      settingsFrom({ ...cdkJsonContext(), cacheNodeType: 'cache.m7g.large' }).functions.engine
        .backlogBytesLimit,
    ).toBe(Math.floor((6.38 * 1024 ** 3) / 2));
    expect(
      settingsFrom({
        ...cdkJsonContext(),
        cacheNodeType: 'cache.x9.huge',
        backlogLimitBytes: 1_000,
      }).functions.engine.backlogBytesLimit,
    ).toBe(1_000);
    expect(problemsOf({ ...cdkJsonContext(), cacheNodeType: 'cache.x9.huge' })).toContainEqual(
      expect.stringMatching(/^backlogLimitBytes: is required for cache node type cache\.x9\.huge/),
    );
  });

  it('every key in cdk.json is a setting Spillway reads, a CDK feature flag or a CLI switch', () => {
    const unknown = Object.keys(cdkJsonContext()).filter(
      (key) =>
        !key.startsWith('@aws-cdk') &&
        key !== 'cli-telemetry' &&
        !(SETTING_NAMES as readonly string[]).includes(key),
    );
    expect(unknown).toEqual([]);
  });

  it('cdk.json holds only settings that differ from their declared defaults', () => {
    const context = cdkJsonContext();
    const deployed = settingsFrom(context);
    const repeated = Object.keys(context)
      .filter((key) => (SETTING_NAMES as readonly string[]).includes(key))
      .filter((key) => {
        const { [key]: _, ...withoutIt } = context;
        return JSON.stringify(settingsFrom(withoutIt)) === JSON.stringify(deployed);
      });
    expect(repeated, 'cdk.json repeats these defaults: remove them').toEqual([]);
  });

  it('reads values given with -c as strings: numbers, booleans and comma-separated lists', () => {
    const settings = settingsFrom({
      ...EXISTING_SHAPE,
      dbPort: '6543',
      cacheReplicas: '2',
      createSecretsManagerEndpoint: 'false',
      subnetIds: ' subnet-0a1b2c3d4e5f60718 , subnet-18f7e6d5c4b3a2910,subnet-29a8b7c6d5e4f3021 ',
    });
    expect(settings.database).toMatchObject({ kind: 'existing', port: 6543 });
    expect(settings.cache.replicas).toBe(2);
    expect(settings.network).toEqual({
      kind: 'existing',
      vpcId: 'vpc-0a1b2c3d4e5f60718',
      subnetIds: [
        'subnet-0a1b2c3d4e5f60718',
        'subnet-18f7e6d5c4b3a2910',
        'subnet-29a8b7c6d5e4f3021',
      ],
      createSecretsManagerEndpoint: false,
    });
  });

  it('the existing shape names every missing attribute at once', () => {
    const problems = problemsOf({ shape: 'existing' });
    for (const name of [
      'vpcId',
      'subnetIds',
      'dbInstanceIdentifier',
      'dbEndpoint',
      'dbSecurityGroupId',
      'dbSecretArn',
      'dbResourceId',
      'dbName',
    ]) {
      expect(problems.some((p) => p.startsWith(`${name}: is required`))).toBe(true);
    }
  });

  it('a malformed value is reported with the setting name and the value', () => {
    const problems = problemsOf({
      ...EXISTING_SHAPE,
      vpcId: 'my-vpc',
      subnetIds: 'subnet-0a1b2c3d4e5f60718',
      dbResourceId: 'pipeline-db',
      cacheEngine: 'memcached',
      bootstrapDbUser: 'yes',
    });
    expect(problems).toEqual(
      expect.arrayContaining([
        'vpcId: must be a VPC id (vpc-...), got "my-vpc"',
        expect.stringMatching(/^subnetIds: needs at least two subnets/),
        expect.stringMatching(/^dbResourceId: must be the instance's DbiResourceId/),
        'cacheEngine: must be one of "valkey", "redis", got "memcached"',
        'bootstrapDbUser: must be true or false, got "yes"',
      ]),
    );
  });

  it('refuses the default ports, which cdk-nag flags and scanners probe', () => {
    expect(problemsOf({ cachePort: 6379 })).toEqual([
      'cachePort: must not be the default 6379 (cdk-nag AEC5)',
    ]);
    expect(problemsOf({ dbPort: '5432' })).toEqual([
      'dbPort: must not be the PostgreSQL default 5432 (cdk-nag RDS11)',
    ]);
  });

  it('an existing-shape setting without shape=existing is reported, not ignored', () => {
    expect(problemsOf({ vpcId: EXISTING_SHAPE.vpcId })).toEqual([
      'vpcId: does not apply when shape is "new"; remove it or set shape',
    ]);
  });

  it('the LocalStack shape reads where its services are; other shapes refuse those settings', () => {
    expect(
      settingsFrom({ shape: 'localstack', localRedisUrl: 'redis://cache.local:6380' }).localstack,
    ).toEqual({
      redisUrl: 'redis://cache.local:6380',
      databaseUrl: 'postgres://spillway:spillway@pgbouncer:6432/spillway',
    });
    expect(problemsOf({ localDatabaseUrl: 'postgres://x@y/z' })).toEqual([
      'localDatabaseUrl: does not apply when shape is "new"; remove it or set shape',
    ]);
    expect(problemsOf({ shape: 'localstack', localRedisUrl: 'valkey:6379' })).toEqual([
      'localRedisUrl: must be a redis:// URL, got "valkey:6379"',
    ]);
  });

  it('cannot ask more replicas to confirm a write than there are', () => {
    expect(problemsOf({ cacheReplicas: 1, redisReplicaAcks: 2 })).toEqual([
      'redisReplicaAcks: must not exceed cacheReplicas (1): WAIT could never be satisfied',
    ]);
  });

  it('derives the cache parameter-group family as ElastiCache names it, per engine and version', () => {
    const family = (cacheEngine: string, cacheEngineVersion: string) =>
      settingsFrom({ cacheEngine, cacheEngineVersion }).cache.parameterGroupFamily;
    expect(family('redis', '5.0.6')).toBe('redis5.0');
    expect(family('redis', '6.0')).toBe('redis6.x');
    expect(family('redis', '6.2')).toBe('redis6.x');
    expect(family('redis', '7.1')).toBe('redis7');
    expect(family('valkey', '7.2')).toBe('valkey7');
    expect(family('valkey', '8.0')).toBe('valkey8');
    expect(family('valkey', '8.1')).toBe('valkey8');
  });

  it('refuses a cache version whose parameter-group family it does not know', () => {
    expect(problemsOf({ cacheEngine: 'redis', cacheEngineVersion: '4.0' })).toEqual([
      'cacheEngineVersion: redis 4.0 has no parameter group family Spillway knows; use one of 5.0, 6.0, 6.2, 7.0, 7.1',
    ]);
    expect(problemsOf({ cacheEngine: 'valkey', cacheEngineVersion: '9.0' })).toEqual([
      'cacheEngineVersion: valkey 9.0 has no parameter group family Spillway knows; use one of 7.2, 8.0, 8.1',
    ]);
  });

  it('sync must stop idling before its own timeout', () => {
    expect(problemsOf({ syncTimeoutSeconds: 60, syncIdleWaitMs: 60_000 })).toEqual([
      'syncIdleWaitMs: must be less than syncTimeoutSeconds (60 s)',
    ]);
  });

  it('the new-aurora shape reads its capacity, engine version and database, with defaults', () => {
    expect(settingsFrom({ shape: 'new-aurora' }).database).toEqual({
      kind: 'new-aurora',
      auroraVersion: '16.6',
      minCapacity: 0.5,
      maxCapacity: 4,
      port: 5433,
      deletionProtection: true,
      backupRetentionDays: 7,
      databaseName: 'spillway',
    });
    expect(
      settingsFrom({ shape: 'new-aurora', auroraMinCapacity: '0', auroraMaxCapacity: 16.5 })
        .database,
    ).toMatchObject({ minCapacity: 0, maxCapacity: 16.5 });
    expect(settingsFrom({ shape: 'new-aurora' }).network).toEqual({
      kind: 'new',
      vpcCidr: '10.40.0.0/16',
    });
  });

  it('the new-aurora shape refuses capacities Serverless v2 does not have, and settings of other shapes', () => {
    expect(
      problemsOf({
        shape: 'new-aurora',
        auroraMinCapacity: '0.3',
        auroraMaxCapacity: '300',
        auroraVersion: '12.4',
      }),
    ).toEqual([
      'auroraMinCapacity: must be a number of ACUs from 0 to 256 in steps of 0.5, got "0.3"',
      'auroraMaxCapacity: must be a number of ACUs from 0 to 256 in steps of 0.5, got "300"',
      'auroraVersion: must be an Aurora PostgreSQL engine version (major.minor, 16.6), got "12.4"',
    ]);
    expect(problemsOf({ shape: 'new-aurora', auroraMinCapacity: 8, auroraMaxCapacity: 4 })).toEqual(
      ['auroraMaxCapacity: must be at least 1 and at least auroraMinCapacity (8), got 4'],
    );
    expect(
      problemsOf({
        shape: 'new-aurora',
        dbClusterArn: EXISTING_AURORA_SHAPE.dbClusterArn,
        dbResourceId: EXISTING_SHAPE.dbResourceId,
        bootstrapDbUser: false,
      }),
    ).toEqual([
      'dbResourceId: does not apply when shape is "new-aurora"; remove it or set shape',
      'bootstrapDbUser: does not apply when shape is "new-aurora"; remove it or set shape',
      'dbClusterArn: does not apply when shape is "new-aurora"; remove it or set shape',
    ]);
    expect(problemsOf({ auroraMaxCapacity: 8 })).toEqual([
      'auroraMaxCapacity: does not apply when shape is "new"; remove it or set shape',
    ]);
  });

  it('the existing-aurora shape reads the cluster, its secret, the database and the network', () => {
    const settings = settingsFrom({ ...EXISTING_AURORA_SHAPE, createDataApiEndpoint: 'false' });
    expect(settings.database).toEqual({
      kind: 'existing-aurora',
      clusterArn: EXISTING_AURORA_SHAPE.dbClusterArn,
      secretArn: EXISTING_AURORA_SHAPE.dbSecretArn,
      databaseName: 'pipeline',
      createDataApiEndpoint: false,
    });
    expect(settings.network).toMatchObject({
      kind: 'existing',
      vpcId: EXISTING_AURORA_SHAPE.vpcId,
    });
  });

  it('the existing-aurora shape names every missing attribute at once, for its shape', () => {
    const problems = problemsOf({ shape: 'existing-aurora' });
    for (const name of ['vpcId', 'subnetIds', 'dbClusterArn', 'dbSecretArn', 'dbName']) {
      expect(problems).toContainEqual(
        expect.stringMatching(new RegExp(`^${name}: is required when shape is "existing-aurora"`)),
      );
    }
    expect(problems).toHaveLength(5);
  });

  it('the existing-aurora shape reports a malformed ARN, a secret in another region or account, and settings of the RDS shapes', () => {
    expect(
      problemsOf({ ...EXISTING_AURORA_SHAPE, dbClusterArn: 'arn:aws:rds:eu-west-1:123:db:x' }),
    ).toEqual([
      'dbClusterArn: must be the Aurora cluster\'s ARN (arn:aws:rds:<region>:<account>:cluster:<name>), got "arn:aws:rds:eu-west-1:123:db:x"',
    ]);
    expect(
      problemsOf({
        ...EXISTING_AURORA_SHAPE,
        dbSecretArn: 'arn:aws:secretsmanager:us-east-1:123456789012:secret:db-AbCdEf',
      }),
    ).toEqual([
      "dbSecretArn: must be in the cluster's region and account (eu-west-1, 123456789012), got us-east-1, 123456789012",
    ]);
    expect(
      problemsOf({
        ...EXISTING_AURORA_SHAPE,
        dbEndpoint: EXISTING_SHAPE.dbEndpoint,
        dbUser: 'pipeline_writer',
      }),
    ).toEqual([
      'dbEndpoint: does not apply when shape is "existing-aurora"; remove it or set shape',
      'dbUser: does not apply when shape is "existing-aurora"; remove it or set shape',
    ]);
  });

  it('the error message tells where settings come from', () => {
    expect(() => settingsFrom({ shape: 'old' })).toThrow(
      /Invalid Spillway settings \(CDK context; set them in cdk.json or with -c name=value\):\n {2}- shape: must be one of "new", "existing", "new-aurora", "existing-aurora", "localstack", got "old"/,
    );
  });
});
