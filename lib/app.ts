import { type App, Validations } from 'aws-cdk-lib';
import { AwsSolutionsChecks } from 'cdk-nag';
import { readSettings } from './config.js';
import { acknowledgeNagFindings } from './nag-acknowledgements.js';
import { SpillwayStack, type SpillwayStackProps } from './spillway-stack.js';

/**
 * Adds the Spillway stack to an app, configured from the app's CDK context and checked with the
 * cdk-nag AwsSolutions pack (violations fail synthesis). `bin/app.ts` and the infra tests share it.
 */
export function addSpillway(
  app: App,
  options: Pick<SpillwayStackProps, 'handlersDirectory'> = {},
): SpillwayStack {
  const settings = readSettings((name) => app.node.tryGetContext(name));
  const stack = new SpillwayStack(app, settings.stackName, {
    ...options,
    settings,
    description: `Spillway write-behind buffer (${settings.shape} shape): ElastiCache in front, PostgreSQL through RDS Proxy behind`,
  });
  acknowledgeNagFindings(stack);
  Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
  return stack;
}
