/**
 * Builds the CDK app the way `bin/app.ts` does, with cdk.json's context plus overrides, so the
 * infra tests check what `cdk synth` produces. No AWS credentials are used or needed.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { App, CfnElement, type Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import type { IConstruct } from 'constructs';
import { afterAll } from 'vitest';
import { addSpillway } from '../../lib/app.js';
import { SpillwayAuroraDatabase } from '../../lib/aurora-database.js';
import { SpillwayDatabase } from '../../lib/database.js';
import { PROJECT_ROOT } from '../../lib/function.js';
import type { SpillwayStack } from '../../lib/spillway-stack.js';

/** The existing shape with made-up ids (the same ones `npm run synth` uses). */
export const EXISTING_SHAPE = {
  shape: 'existing',
  vpcId: 'vpc-0a1b2c3d4e5f60718',
  subnetIds: 'subnet-0a1b2c3d4e5f60718,subnet-18f7e6d5c4b3a2910',
  dbInstanceIdentifier: 'pipeline-db',
  dbEndpoint: 'pipeline-db.abcdefghijkl.eu-west-1.rds.amazonaws.com',
  dbSecurityGroupId: 'sg-0a1b2c3d4e5f60718',
  dbSecretArn: 'arn:aws:secretsmanager:eu-west-1:123456789012:secret:rds!db-1a2b3c4d-AbCdEf',
  dbResourceId: 'db-ABCDEFGHIJKLMNOPQRSTUVWXY0',
  dbName: 'pipeline',
} as const;

/** The existing-aurora shape with made-up ARNs (the same ones `npm run synth` uses). */
export const EXISTING_AURORA_SHAPE = {
  shape: 'existing-aurora',
  vpcId: EXISTING_SHAPE.vpcId,
  subnetIds: EXISTING_SHAPE.subnetIds,
  dbClusterArn: 'arn:aws:rds:eu-west-1:123456789012:cluster:pipeline-aurora',
  dbSecretArn:
    'arn:aws:secretsmanager:eu-west-1:123456789012:secret:rds!cluster-1a2b3c4d-5e6f-AbCdEf',
  dbName: 'pipeline',
} as const;

/** The database of a proxy shape (`new`, `existing`); throws in the Aurora shapes. */
export function proxyDatabaseOf(stack: SpillwayStack): SpillwayDatabase {
  if (!(stack.database instanceof SpillwayDatabase)) {
    throw new Error(`${stack.node.path} has no RDS Proxy: it is an Aurora shape`);
  }
  return stack.database;
}

/** The database of an Aurora shape (`new-aurora`, `existing-aurora`); throws in the others. */
export function auroraDatabaseOf(stack: SpillwayStack): SpillwayAuroraDatabase {
  if (!(stack.database instanceof SpillwayAuroraDatabase)) {
    throw new Error(`${stack.node.path} is not an Aurora shape`);
  }
  return stack.database;
}

export interface Synthesized {
  readonly app: App;
  readonly stack: SpillwayStack;
  readonly template: Template;
}

export interface SynthesizeOptions {
  /** Context on top of cdk.json's. */
  readonly context?: Readonly<Record<string, unknown>>;
  /**
   * Run esbuild. Off, CDK skips bundling (the assets are placeholders): for tests that look
   * only at the template, it saves most of the synthesis time. @default true
   */
  readonly bundle?: boolean;
}

/** cdk.json's context: the defaults `cdk synth` starts from. */
export function cdkJsonContext(): Record<string, unknown> {
  const cdkJson = JSON.parse(readFileSync(join(PROJECT_ROOT, 'cdk.json'), 'utf8')) as {
    context: Record<string, unknown>;
  };
  return cdkJson.context;
}

/** Cloud assemblies of this test file, removed after its tests (the bundles run from them). */
const outdirs: string[] = [];
afterAll(() => {
  for (const outdir of outdirs.splice(0)) rmSync(outdir, { recursive: true, force: true });
});

export function synthesize(options: SynthesizeOptions = {}): Synthesized {
  const outdir = mkdtempSync(join(tmpdir(), 'spillway-cdk-'));
  outdirs.push(outdir);
  const app = new App({
    outdir,
    context: {
      ...cdkJsonContext(),
      ...options.context,
      ...(options.bundle === false ? { 'aws:cdk:bundling-stacks': [] } : {}),
    },
  });
  const stack = addSpillway(app);
  // Template.fromStack synthesizes the app, which runs the cdk-nag plugin: a violation throws here.
  const template = Template.fromStack(stack);
  return { app, stack, template };
}

type Resources = Record<string, Resource>;

/** The template's resources of one type, by logical id. */
export function resourcesOfType(template: Template, type: string): Resources {
  return template.findResources(type) as Resources;
}

/** The logical id of a construct's CloudFormation resource. */
export function logicalIdOf(stack: Stack, construct: IConstruct): string {
  const element = CfnElement.isCfnElement(construct) ? construct : construct.node.defaultChild;
  if (!element || !CfnElement.isCfnElement(element)) {
    throw new Error(`${construct.node.path} has no CloudFormation resource`);
  }
  return stack.getLogicalId(element);
}

/** `{ "Fn::GetAtt": [id, "GroupId"] }`, how a template names a security group it creates. */
export function groupIdOf(logicalId: string): unknown {
  return { 'Fn::GetAtt': [logicalId, 'GroupId'] };
}

type Resource = { Type: string; Properties?: Record<string, unknown> };

/** Every ingress rule of a template, inline or standalone, as [groupId, rule]. */
export function ingressRulesOf(template: Template): [unknown, Record<string, unknown>][] {
  const rules: [unknown, Record<string, unknown>][] = [];
  for (const [id, sg] of Object.entries(resourcesOfType(template, 'AWS::EC2::SecurityGroup'))) {
    for (const rule of (sg.Properties?.SecurityGroupIngress as Record<string, unknown>[]) ?? []) {
      rules.push([groupIdOf(id), rule]);
    }
  }
  for (const rule of Object.values(resourcesOfType(template, 'AWS::EC2::SecurityGroupIngress'))) {
    rules.push([rule.Properties?.GroupId, rule.Properties ?? {}]);
  }
  return rules;
}

/** The statements of a policy resource (inline or managed). */
export function statementsOf(policy: Resource | undefined): Record<string, unknown>[] {
  const document = policy?.Properties?.PolicyDocument as
    | { Statement: Record<string, unknown>[] }
    | undefined;
  return document?.Statement ?? [];
}

/** A statement's actions, as a list whether the template holds one or several. */
export const actionsOf = (st: Record<string, unknown>): string[] =>
  ([] as string[]).concat(st.Action as string | string[]);

/** The statements of every inline policy attached to a role. */
export function statementsOfRoleIn(
  template: Template,
  roleLogicalId: string,
): Record<string, unknown>[] {
  const ref = JSON.stringify({ Ref: roleLogicalId });
  return Object.values(resourcesOfType(template, 'AWS::IAM::Policy'))
    .filter((p) =>
      ((p.Properties?.Roles as unknown[]) ?? []).some((r) => JSON.stringify(r) === ref),
    )
    .flatMap(statementsOf);
}
