import { Match } from 'aws-cdk-lib/assertions';
import { beforeAll, describe, expect, it } from 'vitest';
import { DATA_API_ACTIONS } from '../../lib/aurora-database.js';
import { DATABASE_FUNCTIONS, FUNCTION_NAMES } from '../../lib/spillway-stack.js';
import {
  actionsOf,
  auroraDatabaseOf,
  EXISTING_AURORA_SHAPE,
  groupIdOf,
  ingressRulesOf,
  logicalIdOf,
  resourcesOfType,
  type Synthesized,
  statementsOfRoleIn,
  synthesize,
} from './support.js';

/**
 * The existing-aurora shape, synthesized once. Bundling is skipped: it does not depend on the
 * shape, and new-shape.test.ts checks the bundles.
 */
let s: Synthesized;
beforeAll(() => {
  s = synthesize({ context: EXISTING_AURORA_SHAPE, bundle: false });
}, 60_000);

const CLUSTER_ARN = EXISTING_AURORA_SHAPE.dbClusterArn;
const SECRET_ARN = EXISTING_AURORA_SHAPE.dbSecretArn;
const SUBNETS = EXISTING_AURORA_SHAPE.subnetIds.split(',');
const roleOf = (stack: Synthesized['stack'], name: (typeof FUNCTION_NAMES)[number]) =>
  logicalIdOf(stack, stack.functions[name].executionRole);

describe('existing-aurora shape: imports without lookups', () => {
  it('creates no VPC, database, proxy or database user', () => {
    for (const type of [
      'AWS::EC2::VPC',
      'AWS::EC2::Subnet',
      'AWS::RDS::DBCluster',
      'AWS::RDS::DBInstance',
      'AWS::RDS::DBProxy',
      'Custom::SpillwayDatabaseUser',
    ]) {
      s.template.resourceCountIs(type, 0);
    }
  });

  it('puts a Data API interface endpoint with private DNS in the given VPC and subnets, admitting only the database clients on 443', () => {
    s.template.hasResourceProperties('AWS::EC2::VPCEndpoint', {
      VpcId: EXISTING_AURORA_SHAPE.vpcId,
      SubnetIds: SUBNETS,
      ServiceName: { 'Fn::Join': ['', ['com.amazonaws.', { Ref: 'AWS::Region' }, '.rds-data']] },
      PrivateDnsEnabled: true,
    });
    const endpoint = auroraDatabaseOf(s.stack).dataApiEndpoint;
    if (!endpoint) throw new Error('expected the Data API endpoint');
    const groups = endpoint.connections.securityGroups.map((g) =>
      JSON.stringify(groupIdOf(logicalIdOf(s.stack, g))),
    );
    const rules = ingressRulesOf(s.template).filter(([g]) => groups.includes(JSON.stringify(g)));
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

  it('opens no database port anywhere', () => {
    for (const [, rule] of ingressRulesOf(s.template)) {
      expect([443, 6380], JSON.stringify(rule)).toContain(rule.FromPort);
    }
  });
});

describe('existing-aurora shape: the functions', () => {
  it('grants the Data API on the given cluster and reading the given secret only, to the functions that use the database', () => {
    for (const name of FUNCTION_NAMES) {
      const statements = statementsOfRoleIn(s.template, roleOf(s.stack, name));
      const dataApi = statements.filter((st) =>
        actionsOf(st).some((a) => a.startsWith('rds-data:')),
      );
      const secretReads = statements.filter((st) => st.Resource === SECRET_ARN);
      if (DATABASE_FUNCTIONS.includes(name)) {
        expect(dataApi, name).toEqual([
          expect.objectContaining({ Effect: 'Allow', Resource: CLUSTER_ARN }),
        ]);
        expect(actionsOf(dataApi[0] ?? {}).sort()).toEqual([...DATA_API_ACTIONS].sort());
        expect(secretReads, name).toEqual([
          expect.objectContaining({ Action: 'secretsmanager:GetSecretValue' }),
        ]);
      } else {
        expect(dataApi, name).toEqual([]);
        expect(secretReads, name).toEqual([]);
      }
    }
    expect(JSON.stringify(s.template.toJSON())).not.toContain('rds-db:connect');
  });

  it('tells the database functions SINK=data-api, the cluster, the secret and the database', () => {
    s.template.hasResourceProperties('AWS::Lambda::Function', {
      Role: { 'Fn::GetAtt': [roleOf(s.stack, 'sync'), 'Arn'] },
      Environment: {
        Variables: Match.objectLike({
          SINK: 'data-api',
          DATA_API_RESOURCE_ARN: CLUSTER_ARN,
          DATA_API_SECRET_ARN: SECRET_ARN,
          DATA_API_DATABASE: 'pipeline',
          DB_HOST: Match.absent(),
          DB_USER: Match.absent(),
        }),
      },
      VpcConfig: { SubnetIds: SUBNETS },
    });
  });

  it('migrates once the Data API endpoint is there', () => {
    const resources = s.template.toJSON().Resources as Record<string, { DependsOn?: string[] }>;
    const endpoint = auroraDatabaseOf(s.stack).dataApiEndpoint;
    if (!endpoint) throw new Error('expected the Data API endpoint');
    expect(resources[logicalIdOf(s.stack, s.stack.migrations.resource)]?.DependsOn).toContain(
      logicalIdOf(s.stack, endpoint),
    );
  });

  it('outputs the given cluster and secret', () => {
    const outputs = s.template.toJSON().Outputs as Record<string, { Value: unknown }>;
    expect(outputs.DatabaseClusterArn?.Value).toBe(CLUSTER_ARN);
    expect(outputs.DatabaseSecretArn?.Value).toBe(SECRET_ARN);
  });
});

describe('existing-aurora shape: settings that change the template', () => {
  it('without a Data API endpoint, lets the database clients reach it over HTTPS instead', () => {
    const variant = synthesize({
      context: { ...EXISTING_AURORA_SHAPE, createDataApiEndpoint: false },
      bundle: false,
    });
    const endpoints = Object.values(resourcesOfType(variant.template, 'AWS::EC2::VPCEndpoint'));
    expect(JSON.stringify(endpoints)).not.toContain('rds-data');
    expect(endpoints).toHaveLength(1); // Secrets Manager's
    const clients = logicalIdOf(variant.stack, variant.stack.network.databaseClientsSecurityGroup);
    expect(
      (
        variant.template.toJSON().Resources[clients] as {
          Properties: { SecurityGroupEgress: unknown[] };
        }
      ).Properties.SecurityGroupEgress,
    ).toEqual([
      expect.objectContaining({
        CidrIp: '0.0.0.0/0',
        IpProtocol: 'tcp',
        FromPort: 443,
        ToPort: 443,
      }),
    ]);
  }, 60_000);
});
