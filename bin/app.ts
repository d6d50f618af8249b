#!/usr/bin/env node
/**
 * The CDK app: one Spillway stack, configured from CDK context (cdk.json, `-c name=value`),
 * checked with the cdk-nag AwsSolutions pack. Synthesis needs no AWS credentials in either shape.
 */
import { App, Validations } from 'aws-cdk-lib';
import { AwsSolutionsChecks } from 'cdk-nag';
import { readSettings } from '../lib/config.js';
import { acknowledgeNagFindings } from '../lib/nag-acknowledgements.js';
import { SpillwayStack } from '../lib/spillway-stack.js';

const app = new App();
const settings = readSettings((name) => app.node.tryGetContext(name));
const stack = new SpillwayStack(app, settings.stackName, {
  settings,
  description: `Spillway write-behind buffer (${settings.shape} shape): ElastiCache in front, PostgreSQL through RDS Proxy behind`,
});
acknowledgeNagFindings(stack);
Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
