import { Match } from 'aws-cdk-lib/assertions';
import { beforeAll, describe, expect, it } from 'vitest';
import { FUNCTION_NAMES } from '../../lib/spillway-stack.js';
import {
  EXISTING_SHAPE,
  groupIdOf,
  ingressRulesOf,
  logicalIdOf,
  proxyDatabaseOf,
  resourcesOfType,
  type Synthesized,
  statementsOfRoleIn,
  synthesize,
} from './support.js';

/**
 * The existing shape, synthesized once. Bundling is skipped: it does not depend on the shape,
 * and new-shape.test.ts checks the bundles.
 */
let s: Synthesized;
beforeAll(() => {
  s = synthesize({
    context: { ...EXISTING_SHAPE, cacheEngine: 'redis', alarmEmail: 'oncall@example.com' },
    bundle: false,
  });
}, 60_000);

const DB_GROUP = EXISTING_SHAPE.dbSecurityGroupId;

describe('existing shape: imports without lookups', () => {
  it('creates no VPC, subnet or database instance', () => {
    for (const type of [
      'AWS::EC2::VPC',
      'AWS::EC2::Subnet',
      'AWS::EC2::NatGateway',
      'AWS::RDS::DBInstance',
    ]) {
      s.template.resourceCountIs(type, 0);
    }
  });

  it('puts its security groups, endpoint and functions in the given VPC and subnets', () => {
    for (const sg of Object.values(resourcesOfType(s.template, 'AWS::EC2::SecurityGroup'))) {
      expect(sg.Properties?.VpcId).toBe(EXISTING_SHAPE.vpcId);
    }
    const subnets = EXISTING_SHAPE.subnetIds.split(',');
    s.template.hasResourceProperties('AWS::EC2::VPCEndpoint', {
      VpcId: EXISTING_SHAPE.vpcId,
      SubnetIds: subnets,
      PrivateDnsEnabled: true,
    });
    for (const name of FUNCTION_NAMES) {
      s.template.hasResourceProperties('AWS::Lambda::Function', {
        Role: {
          'Fn::GetAtt': [logicalIdOf(s.stack, s.stack.functions[name].executionRole), 'Arn'],
        },
        VpcConfig: { SubnetIds: subnets },
      });
    }
    s.template.hasResourceProperties('AWS::ElastiCache::SubnetGroup', { SubnetIds: subnets });
    s.template.hasResourceProperties('AWS::RDS::DBProxy', { VpcSubnetIds: subnets });
  });

  it('puts RDS Proxy in front of the given instance, with TLS and IAM authentication required', () => {
    s.template.hasResourceProperties('AWS::RDS::DBProxy', {
      RequireTLS: true,
      DefaultAuthScheme: 'IAM_AUTH',
      Auth: Match.absent(),
    });
    s.template.hasResourceProperties('AWS::RDS::DBProxyTargetGroup', {
      DBInstanceIdentifiers: [EXISTING_SHAPE.dbInstanceIdentifier],
    });
  });

  it('admits nothing from 0.0.0.0/0 or ::/0 anywhere', () => {
    const rules = ingressRulesOf(s.template);
    expect(rules.length).toBeGreaterThan(0);
    for (const [, rule] of rules) {
      expect(rule.CidrIp).not.toBe('0.0.0.0/0');
      expect(rule.CidrIpv6).not.toBe('::/0');
    }
  });

  it("adds to the instance's security group only the proxy and the user bootstrap, on its port", () => {
    const user = s.stack.databaseUser;
    if (!user) throw new Error('expected the database user bootstrap');
    const rules = ingressRulesOf(s.template).filter(([group]) => group === DB_GROUP);
    const proxy = groupIdOf(logicalIdOf(s.stack, proxyDatabaseOf(s.stack).proxySecurityGroup));
    const bootstrap = groupIdOf(logicalIdOf(s.stack, user.securityGroup));
    expect(rules.map(([, r]) => [r.SourceSecurityGroupId, r.FromPort, r.ToPort])).toEqual(
      expect.arrayContaining([
        [proxy, 5432, 5432],
        [bootstrap, 5432, 5432],
      ]),
    );
    expect(rules).toHaveLength(2);
  });

  it("lets the proxy sign in as the Spillway user through the instance's resource id", () => {
    const statements = statementsOfRoleIn(
      s.template,
      logicalIdOf(s.stack, proxyDatabaseOf(s.stack).proxyRole),
    );
    expect(statements).toHaveLength(1);
    expect(statements[0]?.Action).toBe('rds-db:connect');
    expect(JSON.stringify(statements[0]?.Resource)).toContain(
      `:dbuser:${EXISTING_SHAPE.dbResourceId}/spillway"`,
    );
  });

  it('tells the database functions the configured database name', () => {
    s.template.hasResourceProperties('AWS::Lambda::Function', {
      Role: { 'Fn::GetAtt': [logicalIdOf(s.stack, s.stack.functions.sync.executionRole), 'Arn'] },
      Environment: { Variables: Match.objectLike({ DB_NAME: 'pipeline', DB_USER: 'spillway' }) },
    });
  });

  it("bounds V8's old generation at three quarters of each function's memory, sync's following syncMemoryMb", () => {
    const variant = synthesize({
      context: { ...EXISTING_SHAPE, syncMemoryMb: 1024 },
      bundle: false,
    });
    const role = (name: 'sync' | 'write') => ({
      'Fn::GetAtt': [
        logicalIdOf(variant.stack, variant.stack.functions[name].executionRole),
        'Arn',
      ],
    });
    variant.template.hasResourceProperties('AWS::Lambda::Function', {
      Role: role('sync'),
      MemorySize: 1024,
      Environment: {
        Variables: Match.objectLike({
          NODE_OPTIONS: '--enable-source-maps --max-old-space-size=768',
        }),
      },
    });
    variant.template.hasResourceProperties('AWS::Lambda::Function', {
      Role: role('write'),
      MemorySize: 512,
      Environment: {
        Variables: Match.objectLike({
          NODE_OPTIONS: '--enable-source-maps --max-old-space-size=384',
        }),
      },
    });
  }, 60_000);

  it('bootstraps the database user with the given master secret, reading that secret only', () => {
    s.template.hasResourceProperties('Custom::SpillwayDatabaseUser', {
      Host: EXISTING_SHAPE.dbEndpoint,
      Port: '5432',
      DatabaseName: 'pipeline',
      MasterSecretArn: EXISTING_SHAPE.dbSecretArn,
    });
    const user = s.stack.databaseUser;
    if (!user) throw new Error('expected the database user bootstrap');
    const reads = statementsOfRoleIn(
      s.template,
      logicalIdOf(s.stack, user.function.executionRole),
    ).filter((st) => JSON.stringify(st.Action).includes('secretsmanager:GetSecretValue'));
    expect(reads.map((st) => st.Resource)).toEqual([EXISTING_SHAPE.dbSecretArn]);
  });
});

describe('existing shape: settings that change the template', () => {
  it('selects Redis OSS with its own parameter group family, still noeviction', () => {
    s.template.hasResourceProperties('AWS::ElastiCache::ReplicationGroup', {
      Engine: 'redis',
      EngineVersion: '7.1',
      TransitEncryptionEnabled: true,
    });
    s.template.hasResourceProperties('AWS::ElastiCache::ParameterGroup', {
      CacheParameterGroupFamily: 'redis7',
      Properties: { 'maxmemory-policy': 'noeviction' },
    });
  });

  it('subscribes the configured e-mail address to the alarms', () => {
    s.template.hasResourceProperties('AWS::SNS::Subscription', {
      Protocol: 'email',
      Endpoint: 'oncall@example.com',
    });
  });

  it('without a Secrets Manager endpoint, lets the functions reach it over HTTPS instead', () => {
    const variant = synthesize({
      context: { ...EXISTING_SHAPE, createSecretsManagerEndpoint: false },
      bundle: false,
    });
    variant.template.resourceCountIs('AWS::EC2::VPCEndpoint', 0);
    const functionsGroup = logicalIdOf(variant.stack, variant.stack.network.functionsSecurityGroup);
    variant.template.hasResourceProperties('AWS::EC2::SecurityGroup', {
      SecurityGroupEgress: [
        {
          CidrIp: '0.0.0.0/0',
          IpProtocol: 'tcp',
          FromPort: 443,
          ToPort: 443,
          Description: Match.anyValue(),
        },
      ],
    });
    expect(
      (
        variant.template.toJSON().Resources[functionsGroup] as {
          Properties: { SecurityGroupEgress: unknown[] };
        }
      ).Properties.SecurityGroupEgress,
    ).toEqual([expect.objectContaining({ CidrIp: '0.0.0.0/0', FromPort: 443 })]);
  }, 60_000);

  it('without the user bootstrap, only the proxy reaches the database port', () => {
    const variant = synthesize({
      context: { ...EXISTING_SHAPE, bootstrapDbUser: false },
      bundle: false,
    });
    variant.template.resourceCountIs('Custom::SpillwayDatabaseUser', 0);
    const rules = ingressRulesOf(variant.template).filter(([group]) => group === DB_GROUP);
    expect(rules.map(([, r]) => r.SourceSecurityGroupId)).toEqual([
      groupIdOf(logicalIdOf(variant.stack, proxyDatabaseOf(variant.stack).proxySecurityGroup)),
    ]);
  }, 60_000);
});
