import { Validations } from 'aws-cdk-lib';
import { Annotations, Match } from 'aws-cdk-lib/assertions';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as iam from 'aws-cdk-lib/aws-iam';
import { AwsSolutionsChecks } from 'cdk-nag';
import type { IConstruct } from 'constructs';
import { describe, expect, it } from 'vitest';
import { EXISTING_AURORA_SHAPE, EXISTING_SHAPE, logicalIdOf, synthesize } from './support.js';

/** Unacknowledged AwsSolutions findings, as `rule at path` lines (empty when clean). */
function findings(scope: IConstruct): string[] {
  return new AwsSolutionsChecks()
    .validateScope(scope)
    .violations.flatMap((v) =>
      v.violatingResources.map((r) => `${v.severity} ${v.ruleName} at ${r.constructPath ?? '?'}`),
    );
}

/** CDK's own errors and warnings, acknowledged ones excluded. */
function annotations(s: ReturnType<typeof synthesize>): string[] {
  const a = Annotations.fromStack(s.stack);
  return [...a.findError('*', Match.anyValue()), ...a.findWarning('*', Match.anyValue())].map(
    (m) => `${m.id}: ${String(m.entry.data)}`,
  );
}

const SHAPES = {
  new: {},
  'new with Multi-AZ and no user bootstrap': { dbMultiAz: true, bootstrapDbUser: false },
  existing: EXISTING_SHAPE,
  'existing without a Secrets Manager endpoint': {
    ...EXISTING_SHAPE,
    createSecretsManagerEndpoint: false,
  },
  'new-aurora': { shape: 'new-aurora' },
  'existing-aurora': EXISTING_AURORA_SHAPE,
  'existing-aurora without the Data API and Secrets Manager endpoints': {
    ...EXISTING_AURORA_SHAPE,
    createDataApiEndpoint: false,
    createSecretsManagerEndpoint: false,
  },
};

describe('cdk-nag AwsSolutions', () => {
  for (const [shape, context] of Object.entries(SHAPES)) {
    it(`finds nothing unacknowledged in the ${shape} shape, and CDK warns of nothing`, () => {
      // synthesize() runs the plugin that bin/app.ts registers: a violation would throw here.
      const s = synthesize({ context, bundle: false });
      expect(findings(s.app)).toEqual([]);
      expect(annotations(s)).toEqual([]);
    }, 60_000);
  }

  it('fails synthesis on a finding nobody acknowledged', () => {
    const s = synthesize({ bundle: false });
    const open = new ec2.SecurityGroup(s.stack, 'OpenToTheWorld', {
      vpc: s.stack.network.vpc,
      description: 'a mistake',
    });
    open.addIngressRule(ec2.Peer.anyIpv4(), ec2.Port.tcp(22));
    expect(findings(s.app)).toEqual([
      'error AwsSolutions-EC23 at Spillway/OpenToTheWorld/Resource',
    ]);
    // The plugin bin/app.ts registers turns the finding into a failed synthesis.
    expect(() => s.app.synth({ force: true })).toThrow(/AwsSolutions-EC23/);
  }, 60_000);

  it('acknowledges the wildcard of the VPC network-interface statement only: a wildcard granted to the role later fails', () => {
    const s = synthesize({ bundle: false });
    expect(findings(s.app)).toEqual([]);
    s.stack.functions.write.addToRolePolicy(
      new iam.PolicyStatement({ actions: ['s3:GetObject'], resources: ['*'] }),
    );
    expect(findings(s.app)).toEqual([
      'error AwsSolutions-IAM5[Resource::*] at Spillway/WriteRole/DefaultPolicy/Resource',
    ]);
  }, 60_000);

  it('a VPC function waits for the policy that lets Lambda create its network interfaces', () => {
    const s = synthesize({ bundle: false });
    const resources = s.template.toJSON().Resources as Record<string, { DependsOn?: string[] }>;
    for (const fn of Object.values(s.stack.functions)) {
      if (!fn.vpcAccessPolicy) throw new Error(`${fn.node.path} has no VPC access policy`);
      const policyId = logicalIdOf(s.stack, fn.vpcAccessPolicy);
      expect(resources[logicalIdOf(s.stack, fn)]?.DependsOn, fn.node.path).toContain(policyId);
    }
  }, 60_000);

  it('acknowledges each finding on the construct it concerns, with a reason, never stack-wide', () => {
    const s = synthesize({ bundle: false });
    const acknowledged: [string, string, string][] = [];
    for (const construct of s.app.node.findAll()) {
      for (const entry of construct.node.metadata) {
        if (entry.type !== Validations.ACKNOWLEDGED_RULES_METADATA_KEY) continue;
        for (const [rule, reason] of Object.entries(entry.data as Record<string, string>)) {
          acknowledged.push([construct.node.path, rule, reason]);
        }
      }
    }
    const ours = acknowledged.filter(([, rule]) => rule.includes('AwsSolutions-'));
    expect(ours.length).toBeGreaterThan(0);
    for (const [path, rule, reason] of ours) {
      expect(path, rule).not.toBe(s.stack.node.path);
      expect(reason.length, `${rule} at ${path}`).toBeGreaterThan(60);
    }
  }, 60_000);
});
