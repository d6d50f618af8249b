import { type App, Validations } from 'aws-cdk-lib';
import { AwsSolutionsChecks } from 'cdk-nag';
import { readSettings } from './config.js';
import { SpillwayLocalStackStack } from './localstack-stack.js';
import {
  acknowledgeLocalStackNagFindings,
  acknowledgeNagFindings,
} from './nag-acknowledgements.js';
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
  if (settings.shape === 'localstack') {
    throw new Error(
      'addSpillway builds the AWS shapes; use addSpillwayLocalStack for shape=localstack',
    );
  }
  const stack = new SpillwayStack(app, settings.stackName, {
    ...options,
    settings,
    description: `Spillway write-behind buffer (${settings.shape} shape): ElastiCache in front, ${
      settings.database.kind === 'new-aurora' || settings.database.kind === 'existing-aurora'
        ? 'Aurora PostgreSQL through the RDS Data API'
        : 'PostgreSQL through RDS Proxy'
    } behind`,
  });
  acknowledgeNagFindings(stack);
  Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
  return stack;
}

/**
 * Adds the LocalStack shape (`-c shape=localstack`): the functions, the migrations custom resource
 * and the alarms, against services that run beside LocalStack. Checked with the same pack.
 */
export function addSpillwayLocalStack(app: App): SpillwayLocalStackStack {
  const settings = readSettings((name) => app.node.tryGetContext(name));
  const stack = new SpillwayLocalStackStack(app, settings.stackName, {
    settings,
    // No AWS::CDK::Metadata: the template holds only the free-plan types the tests check.
    analyticsReporting: false,
    description:
      'Spillway write-behind buffer (localstack shape): the functions against Valkey and PostgreSQL behind PgBouncer running beside LocalStack',
  });
  acknowledgeLocalStackNagFindings(stack);
  Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
  return stack;
}

/** What `bin/app.ts` runs: the shape the context asks for. */
export function addSpillwayApp(app: App): SpillwayStack | SpillwayLocalStackStack {
  return app.node.tryGetContext('shape') === 'localstack'
    ? addSpillwayLocalStack(app)
    : addSpillway(app);
}
