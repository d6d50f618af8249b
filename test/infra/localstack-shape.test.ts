/**
 * The LocalStack shape (`-c shape=localstack`): only what LocalStack's free plan runs. Its
 * ElastiCache and RDS are paid, its Scheduler does not trigger targets, KMS is not on the list
 * docs/deploy.md ("LocalStack") lists (Lambda, IAM, Secrets Manager, CloudFormation, SNS, CloudWatch with Logs);
 * custom resources are CloudFormation's, run by a Lambda function.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { App } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { addSpillwayLocalStack } from '../../lib/app.js';
import type { SpillwayLocalStackStack } from '../../lib/localstack-stack.js';
import { DATABASE_FUNCTIONS, FUNCTION_NAMES } from '../../lib/spillway-stack.js';
import { cdkJsonContext, logicalIdOf, resourcesOfType, synthesize } from './support.js';

/** Resource types LocalStack runs without a paid plan, as prefixes. */
const FREE_PLAN = [
  'AWS::Lambda::',
  'AWS::IAM::',
  'AWS::SecretsManager::',
  'AWS::CloudFormation::',
  'AWS::SNS::',
  'AWS::CloudWatch::',
  'AWS::Logs::',
  'Custom::',
];

function outsideFreePlan(template: Template): string[] {
  const types = Object.values(template.toJSON().Resources as Record<string, { Type: string }>).map(
    (r) => r.Type,
  );
  return [...new Set(types.filter((t) => !FREE_PLAN.some((p) => t.startsWith(p))))].sort();
}

const outdir = mkdtempSync(join(tmpdir(), 'spillway-cdk-localstack-'));
afterAll(() => rmSync(outdir, { recursive: true, force: true }));

let stack: SpillwayLocalStackStack;
let template: Template;
beforeAll(() => {
  const app = new App({
    outdir,
    context: { ...cdkJsonContext(), shape: 'localstack', 'aws:cdk:bundling-stacks': [] },
  });
  stack = addSpillwayLocalStack(app);
  // Synthesizing runs the cdk-nag pack: an unacknowledged finding would throw here.
  template = Template.fromStack(stack);
}, 60_000);

const functionProps = (name: (typeof FUNCTION_NAMES)[number]) =>
  resourcesOfType(template, 'AWS::Lambda::Function')[logicalIdOf(stack, stack.functions[name])]
    ?.Properties as {
    FunctionName: string;
    VpcConfig?: unknown;
    Environment: { Variables: Record<string, string> };
  };

describe('localstack shape', () => {
  it("contains no resource type outside LocalStack's free plan", () => {
    expect(outsideFreePlan(template)).toEqual([]);
  });

  it('the same check finds what the AWS shape needs a paid plan (or a VPC) for', () => {
    const aws = synthesize({ bundle: false });
    expect(outsideFreePlan(aws.template)).toEqual(
      expect.arrayContaining([
        'AWS::EC2::VPC',
        'AWS::ElastiCache::ReplicationGroup',
        'AWS::KMS::Key',
        'AWS::RDS::DBInstance',
        'AWS::RDS::DBProxy',
        'AWS::Scheduler::Schedule',
      ]),
    );
  }, 60_000);

  it('deploys every function outside a VPC, named by its logical name', () => {
    for (const name of FUNCTION_NAMES) {
      const props = functionProps(name);
      expect(props.FunctionName, name).toBe(name);
      expect(props.VpcConfig, name).toBeUndefined();
    }
  });

  it('points the functions at the Valkey and the PgBouncer of the compose file, the database only for those that use it', () => {
    for (const name of FUNCTION_NAMES) {
      const env = functionProps(name).Environment.Variables;
      expect(env.REDIS_URL, name).toBe('redis://valkey:6379');
      expect(env.REDIS_HOST, name).toBeUndefined();
      expect(env.DATABASE_URL, name).toBe(
        DATABASE_FUNCTIONS.includes(name)
          ? 'postgres://spillway:spillway@pgbouncer:6432/spillway'
          : undefined,
      );
      // Nothing invokes sync on a schedule here: it drains and returns.
      expect(env.SYNC_IDLE_WAIT_MS, name).toBe('0');
    }
    expect(functionProps('migrate').Environment.Variables.MIGRATIONS_DIR).toBe(
      '/var/task/migrations',
    );
  });

  it('runs the migrations as a custom resource through migrate, and keeps the alarms', () => {
    template.resourceCountIs('Custom::SpillwayMigrations', 1);
    template.hasResourceProperties('AWS::Lambda::Function', {
      Environment: {
        Variables: {
          USER_ON_EVENT_FUNCTION_ARN: {
            'Fn::GetAtt': [logicalIdOf(stack, stack.functions.migrate), 'Arn'],
          },
        },
      },
    });
    template.hasResourceProperties('AWS::CloudWatch::Alarm', { MetricName: 'OldestPendingAgeMs' });
    template.resourceCountIs('AWS::SNS::Topic', 1);
  });
});
