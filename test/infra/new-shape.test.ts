import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Match } from 'aws-cdk-lib/assertions';
import type { IConstruct } from 'constructs';
import { beforeAll, describe, expect, it } from 'vitest';
import { BOOKKEEPING_LAYOUT } from '../../lambdas/core/sql.js';
import { pipelineTables } from '../../lambdas/schema/tables.js';
import { LUA_SOURCE, PROJECT_ROOT } from '../../lib/function.js';
import { RDS_CA_BUNDLE_FILE } from '../../lib/handlers/rds-ca-bundle.js';
import { hashMigrations, hashTableDefinitions, MIGRATIONS_SOURCE } from '../../lib/migrations.js';
import { DATABASE_FUNCTIONS, FUNCTION_NAMES } from '../../lib/spillway-stack.js';
import {
  actionsOf,
  groupIdOf,
  ingressRulesOf,
  logicalIdOf,
  proxyDatabaseOf,
  resourcesOfType,
  type Synthesized,
  statementsOf,
  statementsOfRoleIn,
  synthesize,
} from './support.js';

/** Synthesized once, with bundling: esbuild runs for every function, as in `cdk synth`. */
let s: Synthesized;
beforeAll(() => {
  s = synthesize();
}, 120_000);

const fn = (name: (typeof FUNCTION_NAMES)[number]) => s.stack.functions[name];
const fnProps = (name: (typeof FUNCTION_NAMES)[number]) => {
  const resource = resourcesOfType(s.template, 'AWS::Lambda::Function')[
    logicalIdOf(s.stack, fn(name))
  ];
  if (!resource?.Properties) throw new Error(`no function ${name}`);
  return resource.Properties as {
    Environment: { Variables: Record<string, unknown> };
    VpcConfig?: { SecurityGroupIds: unknown[]; SubnetIds: unknown[] };
    Role: unknown;
    Runtime: string;
    Architectures: string[];
    Timeout: number;
    ReservedConcurrentExecutions?: number;
    LoggingConfig?: { LogGroup: { Ref: string } };
    Layers?: unknown[];
    Handler: string;
    Code: { S3Key: string };
  };
};

const ingressRules = () => ingressRulesOf(s.template);
const statementsOfRole = (roleLogicalId: string) => statementsOfRoleIn(s.template, roleLogicalId);

function roleOf(name: (typeof FUNCTION_NAMES)[number]): string {
  return logicalIdOf(s.stack, fn(name).executionRole);
}

describe('new shape: network', () => {
  it('spans two Availability Zones with isolated subnets only and no NAT gateway', () => {
    s.template.resourceCountIs('AWS::EC2::VPC', 1);
    s.template.resourceCountIs('AWS::EC2::NatGateway', 0);
    s.template.resourceCountIs('AWS::EC2::InternetGateway', 0);
    const subnets = Object.values(resourcesOfType(s.template, 'AWS::EC2::Subnet'));
    expect(subnets).toHaveLength(4);
    for (const subnet of subnets) expect(subnet.Properties?.MapPublicIpOnLaunch).toBe(false);
  });

  it('reaches Secrets Manager through an interface endpoint with private DNS', () => {
    s.template.hasResourceProperties('AWS::EC2::VPCEndpoint', {
      ServiceName: {
        'Fn::Join': ['', ['com.amazonaws.', { Ref: 'AWS::Region' }, '.secretsmanager']],
      },
      VpcEndpointType: 'Interface',
      PrivateDnsEnabled: true,
    });
  });

  it('admits nothing from 0.0.0.0/0 or ::/0 anywhere', () => {
    for (const [, rule] of ingressRules()) {
      expect(rule.CidrIp).not.toBe('0.0.0.0/0');
      expect(rule.CidrIpv6).not.toBe('::/0');
    }
  });

  it('logs rejected traffic', () => {
    s.template.hasResourceProperties('AWS::EC2::FlowLog', { TrafficType: 'REJECT' });
  });
});

describe('new shape: cache', () => {
  it('is a Multi-AZ Valkey replication group with failover and a replica', () => {
    s.template.hasResourceProperties('AWS::ElastiCache::ReplicationGroup', {
      Engine: 'valkey',
      MultiAZEnabled: true,
      AutomaticFailoverEnabled: true,
      NumCacheClusters: Match.anyValue(),
    });
    const [group] = Object.values(
      resourcesOfType(s.template, 'AWS::ElastiCache::ReplicationGroup'),
    );
    expect(group?.Properties?.NumCacheClusters).toBeGreaterThanOrEqual(2);
  });

  it('requires TLS, encrypts at rest and authenticates with a token from Secrets Manager', () => {
    s.template.hasResourceProperties('AWS::ElastiCache::ReplicationGroup', {
      TransitEncryptionEnabled: true,
      // What creation accepts; `required` is documented as a second step for a running group.
      TransitEncryptionMode: Match.absent(),
      AtRestEncryptionEnabled: true,
      AuthToken: {
        'Fn::Join': [
          '',
          Match.arrayWith([
            '{{resolve:secretsmanager:',
            { Ref: logicalIdOf(s.stack, s.stack.cache.authTokenSecret) },
          ]),
        ],
      },
    });
  });

  it('listens on a non-default port', () => {
    s.template.hasResourceProperties('AWS::ElastiCache::ReplicationGroup', { Port: 6380 });
  });

  it('never evicts: its parameter group sets maxmemory-policy noeviction', () => {
    const groups = resourcesOfType(s.template, 'AWS::ElastiCache::ParameterGroup');
    const [id, group] = Object.entries(groups)[0] ?? [];
    expect(group?.Properties).toMatchObject({
      CacheParameterGroupFamily: 'valkey8',
      Properties: { 'maxmemory-policy': 'noeviction' },
    });
    s.template.hasResourceProperties('AWS::ElastiCache::ReplicationGroup', {
      CacheParameterGroupName: { Ref: id },
    });
  });

  it("admits only the functions' security group, on its port", () => {
    const cacheGroup = groupIdOf(logicalIdOf(s.stack, s.stack.cache.securityGroup));
    const rules = ingressRules().filter(([g]) => JSON.stringify(g) === JSON.stringify(cacheGroup));
    expect(rules.map(([, r]) => [r.SourceSecurityGroupId, r.FromPort, r.ToPort])).toEqual([
      [groupIdOf(logicalIdOf(s.stack, s.stack.network.functionsSecurityGroup)), 6380, 6380],
    ]);
  });

  it('keeps a snapshot when the group is deleted or replaced', () => {
    s.template.hasResource('AWS::ElastiCache::ReplicationGroup', {
      DeletionPolicy: 'Snapshot',
      UpdateReplacePolicy: 'Snapshot',
    });
  });
});

describe('new shape: database and proxy', () => {
  it('is an encrypted PostgreSQL instance with IAM authentication on a non-default port', () => {
    s.template.hasResourceProperties('AWS::RDS::DBInstance', {
      Engine: 'postgres',
      StorageEncrypted: true,
      EnableIAMDatabaseAuthentication: true,
      Port: '5433',
      PubliclyAccessible: false,
      ManageMasterUserPassword: true,
    });
  });

  it('has deletion protection and backups on by default, Multi-AZ off until switched on', () => {
    s.template.hasResourceProperties('AWS::RDS::DBInstance', {
      DeletionProtection: true,
      BackupRetentionPeriod: 7,
      MultiAZ: false,
    });
    s.template.hasResource('AWS::RDS::DBInstance', { DeletionPolicy: 'Snapshot' });
  });

  it('admits only the proxy (and the one-time user bootstrap) to the database port', () => {
    const dbGroup = groupIdOf(logicalIdOf(s.stack, proxyDatabaseOf(s.stack).instanceSecurityGroup));
    const sources = ingressRules()
      .filter(([g]) => JSON.stringify(g) === JSON.stringify(dbGroup))
      .map(([, r]) => JSON.stringify(r.SourceSecurityGroupId));
    const proxy = JSON.stringify(
      groupIdOf(logicalIdOf(s.stack, proxyDatabaseOf(s.stack).proxySecurityGroup)),
    );
    const bootstrap = s.stack.databaseUser
      ? JSON.stringify(groupIdOf(logicalIdOf(s.stack, s.stack.databaseUser.securityGroup)))
      : undefined;
    expect(new Set(sources)).toEqual(new Set([proxy, bootstrap]));
  });

  it('puts RDS Proxy in front, requiring TLS and IAM authentication end to end (no secrets)', () => {
    s.template.hasResourceProperties('AWS::RDS::DBProxy', {
      EngineFamily: 'POSTGRESQL',
      RequireTLS: true,
      DefaultAuthScheme: 'IAM_AUTH',
      Auth: Match.absent(),
    });
  });

  it("admits only the database clients' security group to the proxy, on 5432", () => {
    const proxyGroup = groupIdOf(logicalIdOf(s.stack, proxyDatabaseOf(s.stack).proxySecurityGroup));
    const rules = ingressRules().filter(([g]) => JSON.stringify(g) === JSON.stringify(proxyGroup));
    expect(rules.map(([, r]) => [r.SourceSecurityGroupId, r.FromPort])).toEqual([
      [groupIdOf(logicalIdOf(s.stack, s.stack.network.databaseClientsSecurityGroup)), 5432],
    ]);
  });

  it('lets the proxy sign in as the one Spillway user only', () => {
    const proxyRole = s.template.findResources('AWS::IAM::Role', {
      Properties: {
        AssumeRolePolicyDocument: {
          Statement: [Match.objectLike({ Principal: { Service: 'rds.amazonaws.com' } })],
        },
      },
    });
    const [roleId] = Object.keys(proxyRole);
    const statements = statementsOfRole(roleId ?? '');
    expect(statements).toHaveLength(1);
    expect(statements[0]).toMatchObject({ Action: 'rds-db:connect', Effect: 'Allow' });
    expect(JSON.stringify(statements[0]?.Resource)).toMatch(
      /dbuser:",\{"Fn::GetAtt":\["DatabaseInstance[A-F0-9]+","DbiResourceId"\]\},"\/spillway"/,
    );
  });
});

describe('new shape: functions', () => {
  it('runs every function on the newest Node.js runtime, on ARM64', () => {
    for (const f of Object.values(resourcesOfType(s.template, 'AWS::Lambda::Function'))) {
      expect(f.Properties?.Runtime).toBe('nodejs24.x');
    }
    for (const name of FUNCTION_NAMES) expect(fnProps(name).Architectures).toEqual(['arm64']);
  });

  it('runs every Spillway function in the VPC', () => {
    for (const name of FUNCTION_NAMES) expect(fnProps(name).VpcConfig?.SubnetIds).toHaveLength(2);
  });

  it('bounds the log retention of every function', () => {
    const groups = resourcesOfType(s.template, 'AWS::Logs::LogGroup');
    for (const name of FUNCTION_NAMES) {
      const ref = fnProps(name).LoggingConfig?.LogGroup.Ref ?? '';
      expect(groups[ref]?.Properties?.RetentionInDays).toBe(30);
    }
  });

  it('gives every function Redis: its endpoint, TLS, and read access to the AUTH token', () => {
    const secret = { Ref: logicalIdOf(s.stack, s.stack.cache.authTokenSecret) };
    for (const name of FUNCTION_NAMES) {
      expect(fnProps(name).Environment.Variables).toMatchObject({
        REDIS_HOST: {
          'Fn::GetAtt': [
            logicalIdOf(s.stack, s.stack.cache.replicationGroup),
            'PrimaryEndPoint.Address',
          ],
        },
        REDIS_PORT: '6380',
        REDIS_TLS: 'true',
        REDIS_AUTH_SECRET_ARN: secret,
        // A write is acknowledged once the replica has it too: a failover cannot lose it (G1).
        REDIS_REPLICA_ACKS: '1',
        SPILLWAY_PREFIX: 'spillway',
        POWERTOOLS_METRICS_NAMESPACE: 'Spillway',
        POWERTOOLS_SERVICE_NAME: 'spillway',
        NODE_OPTIONS: '--enable-source-maps --max-old-space-size=384',
      });
      const reads = statementsOfRole(roleOf(name)).filter((st) =>
        actionsOf(st).includes('secretsmanager:GetSecretValue'),
      );
      expect(reads.map((st) => st.Resource)).toEqual([secret]);
    }
  });

  it('reads the AUTH token through the Parameters and Secrets extension (ARM64 layer), with its cache off so that a re-read after a rotation gets the new token', () => {
    const layerMap = s.template.toJSON().Mappings as Record<
      string,
      Record<string, Record<string, string>>
    >;
    for (const name of FUNCTION_NAMES) {
      const [layer, ...others] = fnProps(name).Layers ?? [];
      expect(others).toEqual([]);
      const [mapName, region, key] = (layer as { 'Fn::FindInMap': [string, unknown, string] })[
        'Fn::FindInMap'
      ];
      expect(region).toEqual({ Ref: 'AWS::Region' });
      expect(layerMap[mapName]?.['eu-west-1']?.[key]).toMatch(
        /^arn:aws:lambda:eu-west-1:\d{12}:layer:AWS-Parameters-and-Secrets-Lambda-Extension-Arm64:\d+$/,
      );
      expect(fnProps(name).Environment.Variables).toMatchObject({
        PARAMETERS_SECRETS_EXTENSION_CACHE_ENABLED: 'false',
        SECRETS_MANAGER_TTL: '0',
        // Shorter than the function's own wait (SECRET_READ_TIMEOUT_MS), so the extension reports it.
        SECRETS_MANAGER_TIMEOUT_MILLIS: '2000',
        PARAMETERS_SECRETS_EXTENSION_HTTP_PORT: '2773',
      });
    }
    // The database user bootstrap reads its secret with the SDK, at deploy time only.
    const user = s.stack.databaseUser;
    if (!user) throw new Error('expected the database user bootstrap');
    const bootstrap = resourcesOfType(s.template, 'AWS::Lambda::Function')[
      logicalIdOf(s.stack, user.function)
    ];
    expect(bootstrap?.Properties?.Layers).toBeUndefined();
  });

  it('grants rds-db:connect, the DB_* settings and the proxy path only to the functions that use the database', () => {
    const clients = logicalIdOf(s.stack, s.stack.network.databaseClientsSecurityGroup);
    for (const name of FUNCTION_NAMES) {
      const connects = statementsOfRole(roleOf(name)).filter((st) =>
        actionsOf(st).includes('rds-db:connect'),
      );
      const env = fnProps(name).Environment.Variables;
      const groups = JSON.stringify(fnProps(name).VpcConfig?.SecurityGroupIds);
      if (DATABASE_FUNCTIONS.includes(name)) {
        expect(connects).toHaveLength(1);
        expect(JSON.stringify(connects[0]?.Resource)).toMatch(/dbuser:.*\/spillway"/);
        expect(env).toMatchObject({
          DB_HOST: {
            'Fn::GetAtt': [logicalIdOf(s.stack, proxyDatabaseOf(s.stack).proxy), 'Endpoint'],
          },
          DB_PORT: '5432',
          DB_NAME: 'spillway',
          DB_USER: 'spillway',
          DB_IAM_AUTH: 'true',
        });
        expect(groups).toContain(clients);
      } else {
        expect(connects).toEqual([]);
        expect(env.DB_HOST).toBeUndefined();
        expect(groups).not.toContain(clients);
      }
    }
    expect([...DATABASE_FUNCTIONS].sort()).toEqual(['admin', 'health', 'migrate', 'read', 'sync']);
  });

  it('writes logs to its own log group only, not to every log group', () => {
    for (const name of FUNCTION_NAMES) {
      const logStatements = statementsOfRole(roleOf(name)).filter((st) =>
        actionsOf(st).some((a) => a.startsWith('logs:')),
      );
      expect(logStatements.map((st) => st.Resource)).toEqual([
        { 'Fn::GetAtt': [fnProps(name).LoggingConfig?.LogGroup.Ref, 'Arn'] },
      ]);
    }
    s.template.resourcePropertiesCountIs(
      'AWS::IAM::Role',
      {
        ManagedPolicyArns: Match.arrayWith([
          {
            'Fn::Join': [
              '',
              Match.arrayWith([':iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole']),
            ],
          },
        ]),
      },
      0,
    );
  });

  it('runs sync alone (reserved concurrency 1) for up to 4 minutes, dropping ticks it cannot start within a minute', () => {
    expect(fnProps('sync').ReservedConcurrentExecutions).toBe(1);
    expect(fnProps('sync').Timeout).toBe(240);
    expect(fnProps('sync').Environment.Variables).toMatchObject({ SYNC_IDLE_WAIT_MS: '50000' });
    s.template.hasResourceProperties('AWS::Lambda::EventInvokeConfig', {
      FunctionName: { Ref: logicalIdOf(s.stack, fn('sync')) },
      MaximumEventAgeInSeconds: 60,
      MaximumRetryAttempts: 0,
    });
  });

  it('bundles every function as minified ESM with a require shim and a source map', () => {
    for (const name of FUNCTION_NAMES) {
      const dir = assetDirectory(logicalIdOf(s.stack, fn(name)));
      const code = readFileSync(join(dir, 'index.mjs'), 'utf8');
      expect(
        code.startsWith("import { createRequire as __spillwayCreateRequire } from 'node:module';"),
      ).toBe(true);
      expect(existsSync(join(dir, 'index.mjs.map'))).toBe(true);
      // Minified: thousands of characters per line, not tens.
      expect(code.length / code.split('\n').length).toBeGreaterThan(1_000);
    }
  });

  it('gives every function a bundle of its own as `index.handler`, without what ioredis has but Spillway never runs', () => {
    const assets = new Set<string>();
    for (const name of FUNCTION_NAMES) {
      expect(fnProps(name).Handler, name).toBe('index.handler');
      assets.add(fnProps(name).Code.S3Key);
      const code = readFileSync(
        join(assetDirectory(logicalIdOf(s.stack, fn(name))), 'index.mjs'),
        'utf8',
      );
      // The stub's message, where ioredis's Cluster was (lib/bundle-stubs/ioredis-cluster.cjs).
      expect(code.includes("ioredis Cluster is left out of Spillway's bundles"), name).toBe(true);
    }
    expect(assets.size).toBe(FUNCTION_NAMES.length);
  });

  it('bundles no AWS SDK client: the AUTH token comes through the extension, IAM tokens are signed with node:crypto, and the Data API client is left out of the proxy shape', () => {
    for (const name of FUNCTION_NAMES) {
      const code = readFileSync(
        join(assetDirectory(logicalIdOf(s.stack, fn(name))), 'index.mjs'),
        'utf8',
      );
      // Class names survive minification (keepNames).
      for (const sdkClass of ['RDSDataClient', 'SecretsManagerClient', 'SignatureV4']) {
        expect(code, `${name} bundles ${sdkClass}`).not.toContain(`"${sdkClass}"`);
      }
    }
  });

  it("puts the buffer's Lua scripts beside every handler, where the buffer reads them", () => {
    const scripts = readdirSync(join(PROJECT_ROOT, LUA_SOURCE)).filter((f) => f.endsWith('.lua'));
    expect(scripts.length).toBeGreaterThan(0);
    for (const name of FUNCTION_NAMES) {
      const dir = assetDirectory(logicalIdOf(s.stack, fn(name)));
      expect(readdirSync(join(dir, 'lua')).sort(), name).toEqual(scripts.sort());
    }
  });

  it("copies the SQL migrations into migrate's bundle and tells it where", () => {
    const dir = assetDirectory(logicalIdOf(s.stack, fn('migrate')));
    const expected = readdirSync(join(PROJECT_ROOT, MIGRATIONS_SOURCE)).filter((f) =>
      f.endsWith('.sql'),
    );
    expect(expected.length).toBeGreaterThan(0);
    expect(readdirSync(join(dir, 'migrations')).sort()).toEqual(expected.sort());
    expect(fnProps('migrate').Environment.Variables.MIGRATIONS_DIR).toBe('/var/task/migrations');
  });
});

describe('new shape: schedule, migrations and the database user', () => {
  it('invokes sync every minute with EventBridge Scheduler, without retrying a missed tick', () => {
    s.template.hasResourceProperties('AWS::Scheduler::Schedule', {
      ScheduleExpression: 'rate(1 minute)',
      State: 'ENABLED',
      Target: {
        Arn: { 'Fn::GetAtt': [logicalIdOf(s.stack, fn('sync')), 'Arn'] },
        RetryPolicy: { MaximumRetryAttempts: 0, MaximumEventAgeInSeconds: 60 },
      },
    });
  });

  it('lets the scheduler invoke sync and nothing else', () => {
    const sync = { 'Fn::GetAtt': [logicalIdOf(s.stack, fn('sync')), 'Arn'] };
    expect(statementsOfRole(logicalIdOf(s.stack, s.stack.schedule.role))).toEqual([
      {
        Effect: 'Allow',
        Action: 'lambda:InvokeFunction',
        Resource: [sync, { 'Fn::Join': ['', [sync, ':*']] }],
      },
    ]);
  });

  it('runs migrate through a custom resource whose properties change exactly when a migration, a table definition or the bookkeeping layout does', () => {
    s.template.hasResourceProperties('Custom::SpillwayMigrations', {
      MigrationsHash: hashMigrations(join(PROJECT_ROOT, MIGRATIONS_SOURCE)),
      TableDefinitionsHash: hashTableDefinitions(pipelineTables),
      BookkeepingLayout: BOOKKEEPING_LAYOUT,
    });
    const [first, ...rest] = pipelineTables;
    if (first === undefined) throw new Error('no tables');
    const widened = { ...first, columns: { ...first.columns, note: { type: 'text' as const } } };
    expect(hashTableDefinitions([widened, ...rest])).not.toBe(hashTableDefinitions(pipelineTables));
    // The provider's onEvent function invokes migrate itself: its errors fail the deployment.
    s.template.hasResourceProperties('AWS::Lambda::Function', {
      Environment: {
        Variables: Match.objectLike({
          USER_ON_EVENT_FUNCTION_ARN: {
            'Fn::GetAtt': [logicalIdOf(s.stack, fn('migrate')), 'Arn'],
          },
        }),
      },
    });
  });

  it('migrates only after the database user exists, and schedules sync only after migrating', () => {
    const migrations = s.template.findResources('Custom::SpillwayMigrations');
    const [migrationsId, migrationsResource] = Object.entries(migrations)[0] ?? [];
    const users = s.template.findResources('Custom::SpillwayDatabaseUser');
    const [userId] = Object.keys(users);
    expect((migrationsResource as { DependsOn?: string[] }).DependsOn).toContain(userId);
    const [schedule] = Object.values(s.template.findResources('AWS::Scheduler::Schedule'));
    expect((schedule as { DependsOn?: string[] }).DependsOn).toContain(migrationsId);
  });

  it('bootstraps the user after the instance and its rules, and registers the proxy target only after the user exists', () => {
    const user = s.stack.databaseUser;
    if (!user) throw new Error('expected the database user bootstrap');
    const dependsOn = (id: string) =>
      ((s.template.toJSON().Resources[id] as { DependsOn?: string[] }).DependsOn ?? []).sort();
    const userId = logicalIdOf(s.stack, user.resource);
    const userDeps = dependsOn(userId);
    expect(userDeps).toContain(
      logicalIdOf(s.stack, proxyDatabaseOf(s.stack).instance as IConstruct),
    );
    expect(userDeps).toContain(
      logicalIdOf(s.stack, proxyDatabaseOf(s.stack).instanceSecurityGroup as IConstruct),
    );
    // The rule that admits the bootstrap to the instance is under the instance's group.
    const admitting = Object.entries(resourcesOfType(s.template, 'AWS::EC2::SecurityGroupIngress'))
      .filter(([, r]) =>
        JSON.stringify(r.Properties?.SourceSecurityGroupId).includes(
          logicalIdOf(s.stack, user.securityGroup),
        ),
      )
      .map(([id]) => id);
    expect(admitting.length).toBeGreaterThan(0);
    for (const rule of admitting) expect(userDeps).toContain(rule);
    // Not the proxy: that would register the target before the role exists.
    const proxyIds = Object.keys(resourcesOfType(s.template, 'AWS::RDS::DBProxy'));
    const targetGroupIds = Object.keys(resourcesOfType(s.template, 'AWS::RDS::DBProxyTargetGroup'));
    expect(targetGroupIds).toHaveLength(1);
    for (const id of [...proxyIds, ...targetGroupIds]) expect(userDeps).not.toContain(id);
    expect(dependsOn(targetGroupIds[0] as string)).toContain(userId);
  });

  it('reaches Secrets Manager through the endpoint only once it exists: the bootstrap and every function that reads a secret wait for it', () => {
    const user = s.stack.databaseUser;
    if (!user) throw new Error('expected the database user bootstrap');
    const endpoint = s.stack.network.secretsManagerEndpoint;
    if (!endpoint) throw new Error('expected a Secrets Manager endpoint');
    const endpointId = logicalIdOf(s.stack, endpoint);
    const resources = s.template.toJSON().Resources as Record<string, { DependsOn?: string[] }>;
    const dependsOnEndpoint = (construct: IConstruct) =>
      resources[logicalIdOf(s.stack, construct)]?.DependsOn?.includes(endpointId) ?? false;
    expect(dependsOnEndpoint(user.resource)).toBe(true);
    expect(dependsOnEndpoint(user.function)).toBe(true);
    for (const name of FUNCTION_NAMES) expect(dependsOnEndpoint(fn(name)), name).toBe(true);
  });

  it('creates the database user with the master secret, straight to the instance', () => {
    s.template.hasResourceProperties('Custom::SpillwayDatabaseUser', {
      DbUser: 'spillway',
      DatabaseName: 'spillway',
      Schema: 'public',
      Port: '5433',
      Host: { 'Fn::GetAtt': [Match.stringLikeRegexp('^DatabaseInstance'), 'Endpoint.Address'] },
      MasterSecretArn: {
        'Fn::GetAtt': [Match.stringLikeRegexp('^DatabaseInstance'), 'MasterUserSecret.SecretArn'],
      },
    });
  });
});

describe('new shape: the database user bootstrap bundle', () => {
  it('carries the Amazon RDS CA bundle beside the handler', () => {
    const user = s.stack.databaseUser;
    if (!user) throw new Error('expected the database user bootstrap');
    const shipped = readFileSync(
      join(assetDirectory(logicalIdOf(s.stack, user.function)), RDS_CA_BUNDLE_FILE),
      'utf8',
    );
    expect(shipped).toBe(
      readFileSync(join(PROJECT_ROOT, 'lib/handlers', RDS_CA_BUNDLE_FILE), 'utf8'),
    );
  });
});

describe('new shape: monitoring and outputs', () => {
  const alarmOn = (metricName: string) =>
    Object.values(resourcesOfType(s.template, 'AWS::CloudWatch::Alarm')).filter((a) =>
      JSON.stringify(a.Properties).includes(`"MetricName":"${metricName}"`),
    );

  it('alarms when changesets are written but sync is not invoked for two windows, and stays quiet when nothing is written', () => {
    const [alarm] = Object.values(resourcesOfType(s.template, 'AWS::CloudWatch::Alarm')).filter(
      (a) => JSON.stringify(a.Properties?.AlarmDescription).includes('nothing drains it'),
    );
    const props = alarm?.Properties as {
      Metrics: { Id: string; Expression?: string; MetricStat?: { Metric: unknown } }[];
      EvaluationPeriods: number;
      DatapointsToAlarm: number;
      TreatMissingData: string;
    };
    const expression = props.Metrics.find((m) => m.Expression)?.Expression;
    expect(expression).toBe(
      'IF((FILL(writes0, 0) + FILL(writes1, 0) + FILL(writes2, 0)) > 0 AND FILL(syncInvocations, 0) == 0, 1, 0)',
    );
    const invoked = (id: string) =>
      JSON.stringify(props.Metrics.find((m) => m.Id === id)?.MetricStat?.Metric);
    expect(invoked('syncInvocations')).toContain(logicalIdOf(s.stack, fn('sync')));
    expect(invoked('writes0')).toContain(logicalIdOf(s.stack, fn('write')));
    expect(invoked('writes1')).toContain(logicalIdOf(s.stack, fn('process-document')));
    expect(invoked('writes2')).toContain(logicalIdOf(s.stack, fn('extract-entities')));
    expect(props).toMatchObject({
      EvaluationPeriods: 2,
      DatapointsToAlarm: 2,
      TreatMissingData: 'notBreaching',
    });
  });

  it('alarms on lag, dead letters, sync errors, an open breaker, a systemic fault, a filling buffer, ill health and a loss of the cache data, in the Spillway namespace', () => {
    for (const metric of [
      'OldestPendingAgeMs',
      'ChangesDeadLettered',
      'DrainErrors',
      'BreakerOpen',
      'SystemicFault',
      'BufferPercentFull',
      'Unhealthy',
      'CacheDataLost',
    ]) {
      const alarms = alarmOn(metric);
      expect(alarms, metric).toHaveLength(1);
      const text = JSON.stringify(alarms[0]?.Properties);
      expect(text).toContain('"Namespace":"Spillway"');
      expect(text).toContain('"Dimensions":[{"Name":"service","Value":"spillway"}]');
    }
    // Only sync publishes the lag: before the first drain and with the schedule off there is no
    // data, which must neither alarm nor clear an alarm.
    s.template.hasResourceProperties('AWS::CloudWatch::Alarm', {
      MetricName: 'OldestPendingAgeMs',
      Statistic: 'Maximum',
      Period: 300,
      EvaluationPeriods: 2,
      Threshold: 600_000,
      TreatMissingData: 'missing',
    });
    s.template.hasResourceProperties('AWS::CloudWatch::Alarm', {
      MetricName: 'BreakerOpen',
      Period: 300,
      Threshold: 1,
      ComparisonOperator: 'GreaterThanOrEqualToThreshold',
    });
    s.template.hasResourceProperties('AWS::CloudWatch::Alarm', {
      MetricName: 'ChangesDeadLettered',
      Threshold: 1,
      ComparisonOperator: 'GreaterThanOrEqualToThreshold',
    });
    // sync errors: the Lambda Errors metric of sync plus DrainErrors, in one expression.
    expect(JSON.stringify(alarmOn('DrainErrors')[0]?.Properties)).toContain(
      '"MetricName":"Errors"',
    );
  });

  it('sends every alarm to an encrypted SNS topic', () => {
    const topic = { Ref: logicalIdOf(s.stack, s.stack.monitoring.topic) };
    for (const alarm of Object.values(resourcesOfType(s.template, 'AWS::CloudWatch::Alarm'))) {
      expect(alarm.Properties?.AlarmActions).toEqual([topic]);
    }
    s.template.hasResourceProperties('AWS::SNS::Topic', {
      KmsMasterKeyId: Match.anyValue(),
    });
    s.template.resourceCountIs('AWS::SNS::Subscription', 0);
  });

  it('has a dashboard with backlog, lag, throughput, errors, health and how full the buffer is', () => {
    const [dashboard] = Object.values(resourcesOfType(s.template, 'AWS::CloudWatch::Dashboard'));
    const body = JSON.stringify(dashboard?.Properties?.DashboardBody);
    for (const metric of [
      'BacklogSize',
      'OldestPendingAgeMs',
      'ChangesApplied',
      'DrainErrors',
      'BufferPercentFull',
      'Unhealthy',
      'SystemicFault',
      'CacheDataLost',
    ]) {
      expect(body).toContain(metric);
    }
  });

  it('outputs every function name and ARN, the endpoints and the pipeline policy', () => {
    const outputs = Object.keys(s.template.findOutputs('*'));
    for (const name of [
      'Write',
      'Read',
      'Sync',
      'Health',
      'Migrate',
      'Admin',
      'ProcessDocument',
      'ExtractEntities',
    ]) {
      expect(outputs).toContain(`${name}FunctionName`);
      expect(outputs).toContain(`${name}FunctionArn`);
    }
    expect(outputs).toEqual(
      expect.arrayContaining(['RedisEndpoint', 'ProxyEndpoint', 'PipelineClientPolicyArn']),
    );
  });

  it('the pipeline policy allows invoking write, read and health, and nothing more', () => {
    const [policy] = Object.values(resourcesOfType(s.template, 'AWS::IAM::ManagedPolicy'));
    const statements = statementsOf(policy);
    expect(statements).toEqual([
      {
        Effect: 'Allow',
        Action: 'lambda:InvokeFunction',
        Resource: expect.arrayContaining(
          (['write', 'read', 'health'] as const).map((n) => ({
            'Fn::GetAtt': [logicalIdOf(s.stack, fn(n)), 'Arn'],
          })),
        ),
      },
    ]);
    expect(statements[0]?.Resource).toHaveLength(3);
  });
});

/** The bundle directory of a function: the cloud assembly names it after the asset hash. */
function assetDirectory(functionLogicalId: string): string {
  const resource = s.template.toJSON().Resources[functionLogicalId] as {
    Properties: { Code: { S3Key: string } };
  };
  const hash = resource.Properties.Code.S3Key.replace(/\.zip$/, '');
  return join(s.app.outdir, `asset.${hash}`);
}
