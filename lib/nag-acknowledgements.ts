import { type CfnElement, Stack, Validations } from 'aws-cdk-lib';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import type * as cr from 'aws-cdk-lib/custom-resources';
import type { IConstruct } from 'constructs';
import { SpillwayDatabase } from './database.js';
import { SpillwayFunction } from './function.js';
import type { SpillwayLocalStackStack } from './localstack-stack.js';
import type { SpillwayStack } from './spillway-stack.js';

/**
 * Every cdk-nag (AwsSolutions) finding and CDK warning this stack acknowledges, each on the
 * construct it concerns and with the reason it holds here. Nothing is acknowledged stack-wide, so a new
 * resource with the same finding still fails `cdk synth` until someone writes its reason here.
 */
export function acknowledgeNagFindings(stack: SpillwayStack): void {
  acknowledge(
    stack.cache.authTokenSecret,
    'AwsSolutions-SMG4',
    'The cache AUTH token cannot rotate through a Secrets Manager rotation function: ElastiCache takes a new token only through ModifyReplicationGroup (AuthTokenUpdateStrategy ROTATE, then SET). The functions re-read the secret when authentication fails, so the operator rotation described in the README runs without downtime.',
  );

  if (
    stack.settings.database.kind === 'new' &&
    !stack.settings.database.multiAz &&
    stack.database instanceof SpillwayDatabase &&
    stack.database.instance
  ) {
    acknowledge(
      stack.database.instance,
      'AwsSolutions-RDS3',
      'Multi-AZ is a setting (dbMultiAz=true), off by default to halve the instance cost: Spillway keeps accepting writes while the database is down (they wait in the Multi-AZ cache, G1), so a single-AZ instance costs drain lag, not lost work.',
    );
  }

  for (const fn of stack.node.findAll().filter(isSpillwayFunction)) {
    if (fn.vpcAccessPolicy) {
      // On the policy that holds the EC2 statement only: a wildcard granted to the role later
      // lands in its default policy and still fails synthesis.
      acknowledge(
        fn.vpcAccessPolicy,
        'AwsSolutions-IAM5[Resource::*]',
        'Lambda creates and removes the network interfaces of a VPC function with its execution role; ec2:DescribeNetworkInterfaces and ec2:DescribeSubnets accept no resource narrower than *. These are exactly the EC2 actions of AWSLambdaVPCAccessExecutionRole, which this role replaces.',
      );
    }
  }

  const providers: [cr.Provider, lambda.IFunction][] = [
    [stack.migrations.provider, stack.functions.migrate],
  ];
  if (stack.databaseUser)
    providers.push([stack.databaseUser.provider, stack.databaseUser.function]);
  for (const [provider, onEvent] of providers) acknowledgeProvider(provider, onEvent);

  if (stack.settings.network.kind === 'existing') {
    // CDK's own synth-time warnings about the imported VPC (not cdk-nag findings).
    acknowledge(
      stack.network,
      'Annotation::@aws-cdk/aws-ec2:vpcAttributeIsListTokenavailabilityZones',
      "The existing VPC's zones are left to deploy time so that synth needs no lookup; nothing reads them, because every subnet selection names the configured subnetIds.",
    );
    acknowledge(
      stack.network,
      'Annotation::@aws-cdk/aws-ec2:noSubnetRouteTableId',
      'Spillway adds no routes to the existing subnets, so their route tables are never read.',
    );
  }

  acknowledge(
    stack.schedule.role,
    `AwsSolutions-IAM5[Resource::<${logicalId(stack.functions.sync)}.Arn>:*]`,
    'EventBridge Scheduler may invoke any version of sync and nothing else (the :* suffix covers versions and aliases of that function only).',
  );
}

/** The LocalStack shape's findings: the migrations provider's, and the alarm topic without KMS. */
export function acknowledgeLocalStackNagFindings(stack: SpillwayLocalStackStack): void {
  acknowledgeProvider(stack.migrations.provider, stack.functions.migrate);
  acknowledge(
    stack.monitoring.topic,
    'AwsSolutions-SNS2',
    'LocalStack shape only: KMS is not among LocalStack free services, so the alarm topic there is not encrypted with a key. It carries alarm notices of a local test stack, nothing else; the AWS shapes encrypt it.',
  );
}

function acknowledgeProvider(provider: cr.Provider, onEvent: lambda.IFunction): void {
  acknowledge(
    provider,
    'AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]',
    'The CDK custom resource Provider framework creates this role for its own deploy-time function; the managed policy only lets it write its logs.',
  );
  acknowledge(
    provider,
    `AwsSolutions-IAM5[Resource::<${logicalId(onEvent)}.Arn>:*]`,
    'The Provider framework may invoke any version of the one function it fronts (the :* suffix covers versions and aliases of that function only).',
  );
}

function acknowledge(scope: IConstruct, id: string, reason: string): void {
  Validations.of(scope).acknowledge({ id, reason });
}

function isSpillwayFunction(c: IConstruct): c is SpillwayFunction {
  return c instanceof SpillwayFunction;
}

/** How cdk-nag names a function in a finding: its CloudFormation logical id. */
function logicalId(fn: lambda.IFunction): string {
  const resource = fn.node.defaultChild;
  if (!resource) throw new Error(`${fn.node.path} has no CloudFormation resource`);
  return Stack.of(fn).getLogicalId(resource as CfnElement);
}
