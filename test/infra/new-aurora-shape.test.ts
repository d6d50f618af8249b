import { beforeAll, describe, expect, it } from 'vitest';
import { DATA_API_ACTIONS } from '../../lib/aurora-database.js';
import { SpillwayFunction } from '../../lib/function.js';
import { DATABASE_FUNCTIONS, FUNCTION_NAMES } from '../../lib/spillway-stack.js';
import {
  actionsOf,
  auroraDatabaseOf,
  groupIdOf,
  ingressRulesOf,
  logicalIdOf,
  resourcesOfType,
  type Synthesized,
  statementsOfRoleIn,
  synthesize,
} from './support.js';

/**
 * The new-aurora shape, synthesized once. Bundling is skipped: it does not depend on the shape,
 * and new-shape.test.ts checks the bundles.
 */
let s: Synthesized;
beforeAll(() => {
  s = synthesize({ context: { shape: 'new-aurora' }, bundle: false });
}, 60_000);

const database = () => auroraDatabaseOf(s.stack);
const clusterId = () => {
  const cluster = database().cluster;
  if (!cluster) throw new Error('expected a new cluster');
  return logicalIdOf(s.stack, cluster);
};
const roleOf = (name: (typeof FUNCTION_NAMES)[number]) =>
  logicalIdOf(s.stack, s.stack.functions[name].executionRole);
const environmentOf = (name: (typeof FUNCTION_NAMES)[number]): Record<string, unknown> => {
  const fn = resourcesOfType(s.template, 'AWS::Lambda::Function')[
    logicalIdOf(s.stack, s.stack.functions[name])
  ];
  const environment = fn?.Properties?.Environment as
    | { Variables: Record<string, unknown> }
    | undefined;
  if (!environment) throw new Error(`no environment for ${name}`);
  return environment.Variables;
};

describe('new-aurora shape: the cluster', () => {
  it('is Aurora PostgreSQL Serverless v2 with the Data API on, one serverless writer, and no RDS Proxy', () => {
    s.template.resourceCountIs('AWS::RDS::DBCluster', 1);
    s.template.hasResourceProperties('AWS::RDS::DBCluster', {
      Engine: 'aurora-postgresql',
      EngineVersion: '16.6',
      EnableHttpEndpoint: true,
      ServerlessV2ScalingConfiguration: { MinCapacity: 0.5, MaxCapacity: 4 },
      DatabaseName: 'spillway',
    });
    s.template.resourceCountIs('AWS::RDS::DBInstance', 1);
    s.template.hasResourceProperties('AWS::RDS::DBInstance', {
      DBClusterIdentifier: { Ref: clusterId() },
      DBInstanceClass: 'db.serverless',
      PubliclyAccessible: false,
    });
    for (const type of [
      'AWS::RDS::DBProxy',
      'AWS::RDS::DBProxyTargetGroup',
      'Custom::SpillwayDatabaseUser',
    ]) {
      s.template.resourceCountIs(type, 0);
    }
  });

  it('encrypts storage, keeps deletion protection, backups and a final snapshot, like the new RDS shape', () => {
    s.template.hasResource('AWS::RDS::DBCluster', {
      DeletionPolicy: 'Snapshot',
      UpdateReplacePolicy: 'Snapshot',
      Properties: {
        StorageEncrypted: true,
        DeletionProtection: true,
        BackupRetentionPeriod: 7,
        CopyTagsToSnapshot: true,
        Port: 5433,
      },
    });
  });

  it('keeps its master password in a secret RDS generates and rotates, and creates no other database secret', () => {
    s.template.hasResourceProperties('AWS::RDS::DBCluster', {
      ManageMasterUserPassword: true,
      MasterUsername: 'spillway_admin',
    });
    const props = resourcesOfType(s.template, 'AWS::RDS::DBCluster')[clusterId()]?.Properties;
    expect(props?.MasterUserPassword).toBeUndefined();
    // The one secret Spillway creates is the cache's AUTH token.
    s.template.resourceCountIs('AWS::SecretsManager::Secret', 1);
  });

  it('admits no one to the database port: the functions reach it through the Data API only', () => {
    const clusterGroup = database().clusterSecurityGroup;
    if (!clusterGroup) throw new Error('expected the cluster security group');
    const group = groupIdOf(logicalIdOf(s.stack, clusterGroup));
    expect(
      ingressRulesOf(s.template).filter(([g]) => JSON.stringify(g) === JSON.stringify(group)),
    ).toEqual([]);
    for (const [, rule] of ingressRulesOf(s.template)) {
      expect([rule.FromPort, rule.ToPort]).not.toContain(5433);
    }
  });
});

describe('new-aurora shape: the Data API endpoint', () => {
  it('is an interface endpoint with private DNS in the functions subnets', () => {
    s.template.hasResourceProperties('AWS::EC2::VPCEndpoint', {
      VpcEndpointType: 'Interface',
      ServiceName: { 'Fn::Join': ['', ['com.amazonaws.', { Ref: 'AWS::Region' }, '.rds-data']] },
      PrivateDnsEnabled: true,
    });
  });

  it('admits only the database clients, on 443', () => {
    const endpoint = database().dataApiEndpoint;
    if (!endpoint) throw new Error('expected the Data API endpoint');
    const endpointGroups = endpoint.connections.securityGroups.map((g) =>
      JSON.stringify(groupIdOf(logicalIdOf(s.stack, g))),
    );
    const rules = ingressRulesOf(s.template).filter(([g]) =>
      endpointGroups.includes(JSON.stringify(g)),
    );
    expect(
      rules.map(([, r]) => [r.SourceSecurityGroupId, r.IpProtocol, r.FromPort, r.ToPort]),
    ).toEqual([
      [
        groupIdOf(logicalIdOf(s.stack, s.stack.network.databaseClientsSecurityGroup)),
        'tcp',
        443,
        443,
      ],
    ]);
  });
});

describe('new-aurora shape: the functions', () => {
  it('grants the Data API on this cluster and reading this secret only, with exactly those actions, to the functions that use the database', () => {
    const clusterArn = s.stack.resolve(database().clusterArn);
    const secretArn = { 'Fn::GetAtt': [clusterId(), 'MasterUserSecret.SecretArn'] };
    expect(s.stack.resolve(database().secretArn)).toEqual(secretArn);
    for (const name of FUNCTION_NAMES) {
      const statements = statementsOfRoleIn(s.template, roleOf(name));
      const dataApi = statements.filter((st) =>
        actionsOf(st).some((a) => a.startsWith('rds-data:')),
      );
      const secretReads = statements.filter(
        (st) => JSON.stringify(st.Resource) === JSON.stringify(secretArn),
      );
      if (DATABASE_FUNCTIONS.includes(name)) {
        expect(dataApi, name).toHaveLength(1);
        expect(actionsOf(dataApi[0] ?? {}).sort()).toEqual([...DATA_API_ACTIONS].sort());
        expect(dataApi[0]?.Resource).toEqual(clusterArn);
        expect(secretReads, name).toHaveLength(1);
        expect(actionsOf(secretReads[0] ?? {})).toEqual(['secretsmanager:GetSecretValue']);
      } else {
        expect(dataApi, name).toEqual([]);
        expect(secretReads, name).toEqual([]);
      }
    }
  });

  it('tells the database functions SINK=data-api and where the cluster, the secret and the database are, instead of DB_*', () => {
    for (const name of FUNCTION_NAMES) {
      const env = environmentOf(name);
      if (DATABASE_FUNCTIONS.includes(name)) {
        expect(env).toMatchObject({
          SINK: 'data-api',
          DATA_API_RESOURCE_ARN: s.stack.resolve(database().clusterArn),
          DATA_API_SECRET_ARN: { 'Fn::GetAtt': [clusterId(), 'MasterUserSecret.SecretArn'] },
          DATA_API_DATABASE: 'spillway',
        });
      } else {
        expect(env.SINK).toBeUndefined();
        expect(env.DATA_API_RESOURCE_ARN).toBeUndefined();
      }
      for (const key of [
        'DB_HOST',
        'DB_PORT',
        'DB_NAME',
        'DB_USER',
        'DB_IAM_AUTH',
        'DATA_API_ENDPOINT',
      ]) {
        expect(env[key], `${name} ${key}`).toBeUndefined();
      }
    }
  });

  it('grants rds-db:connect to no one', () => {
    expect(JSON.stringify(s.template.toJSON())).not.toContain('rds-db:connect');
  });

  it('refuses cache access to a function without the Parameters and Secrets extension, which it needs to read the AUTH token', () => {
    const bare = new SpillwayFunction(s.stack, 'WithoutExtension', {
      entry: 'lambdas/handlers/write.ts',
      serviceName: 'spillway',
      logRetention: 30,
      placement: {
        vpc: s.stack.network.vpc,
        subnets: s.stack.network.functionSubnets,
        securityGroups: [s.stack.network.functionsSecurityGroup],
      },
    });
    expect(() => s.stack.cache.grantAccess(bare)).toThrow(
      "WithoutExtension cannot read the cache's AUTH token: it must carry the Parameters and Secrets extension (SpillwayFunctionProps.paramsAndSecrets: SpillwayCache.secretsExtension)",
    );
  });

  it('keeps every function in the VPC (for the cache)', () => {
    for (const name of FUNCTION_NAMES) expect(s.stack.functions[name].inVpc, name).toBe(true);
  });
});

describe('new-aurora shape: migrations and outputs', () => {
  it('migrates through migrate once the cluster, its writer and the Data API endpoint are there', () => {
    const resources = s.template.toJSON().Resources as Record<string, { DependsOn?: string[] }>;
    const migrationsId = logicalIdOf(s.stack, s.stack.migrations.resource);
    const dependsOn = resources[migrationsId]?.DependsOn ?? [];
    const writer = Object.keys(resourcesOfType(s.template, 'AWS::RDS::DBInstance'));
    const endpoint = database().dataApiEndpoint;
    if (!endpoint) throw new Error('expected the Data API endpoint');
    expect(dependsOn).toEqual(
      expect.arrayContaining([clusterId(), ...writer, logicalIdOf(s.stack, endpoint)]),
    );
  });

  it('outputs the cluster ARN and the secret ARN, and no proxy endpoint', () => {
    const outputs = s.template.toJSON().Outputs as Record<string, { Value: unknown }>;
    expect(outputs.DatabaseClusterArn?.Value).toEqual(s.stack.resolve(database().clusterArn));
    expect(outputs.DatabaseSecretArn?.Value).toEqual({
      'Fn::GetAtt': [clusterId(), 'MasterUserSecret.SecretArn'],
    });
    expect(outputs.ProxyEndpoint).toBeUndefined();
    expect(outputs.DatabaseMasterSecretArn).toBeUndefined();
  });
});

describe('new-aurora shape: settings that change the template', () => {
  it('scales between the configured capacities on the configured engine version', () => {
    const variant = synthesize({
      context: {
        shape: 'new-aurora',
        auroraMinCapacity: '0',
        auroraMaxCapacity: '8.5',
        auroraVersion: '15.8',
      },
      bundle: false,
    });
    variant.template.hasResourceProperties('AWS::RDS::DBCluster', {
      EngineVersion: '15.8',
      ServerlessV2ScalingConfiguration: { MinCapacity: 0, MaxCapacity: 8.5 },
    });
  }, 60_000);
});
