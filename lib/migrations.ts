import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { CustomResource, Duration, RemovalPolicy } from 'aws-cdk-lib';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as cr from 'aws-cdk-lib/custom-resources';
import { Construct } from 'constructs';
import { PROJECT_ROOT, SpillwayFunction } from './function.js';

/** Where the SQL migrations live, relative to the project root. */
export const MIGRATIONS_SOURCE = 'lambdas/schema/migrations';
/** Where the `migrate` function finds them in its bundle. */
export const MIGRATIONS_DIR = '/var/task/migrations';

export interface SpillwayMigrationsProps {
  /** The `migrate` function; it returns `{ applied, skipped }` or fails with the error. */
  readonly migrateFunction: lambda.IFunction;
  readonly serviceName: string;
  readonly logRetention: logs.RetentionDays;
  /** How long one migration run may take (the `migrate` function's timeout). */
  readonly migrateTimeout: Duration;
}

/**
 * Runs `migrate` on every deployment that creates the stack or changes a migration, and fails
 * the deployment with the migration's error message when it fails.
 *
 * The resource carries a hash of the SQL files, so CloudFormation updates it (and so migrates)
 * exactly when a migration is added or edited; the migrations themselves are idempotent.
 */
export class SpillwayMigrations extends Construct {
  readonly resource: CustomResource;
  /** The Provider framework (a CDK-made Lambda function that calls `function`). */
  readonly provider: cr.Provider;
  readonly function: SpillwayFunction;

  constructor(scope: Construct, id: string, props: SpillwayMigrationsProps) {
    super(scope, id);

    this.function = new SpillwayFunction(this, 'Function', {
      entry: 'lib/handlers/run-migrations.ts',
      description: 'Spillway: runs migrate during deployments',
      serviceName: props.serviceName,
      logRetention: props.logRetention,
      // It only calls the Lambda API, which the isolated VPC has no route to.
      placement: 'outside-vpc',
      timeout: props.migrateTimeout.plus(Duration.minutes(1)),
      memorySize: 256,
    });
    props.migrateFunction.grantInvokeLatestVersion(this.function);

    this.provider = new cr.Provider(this, 'Provider', {
      onEventHandler: this.function,
      logGroup: new logs.LogGroup(this, 'ProviderLogs', {
        retention: props.logRetention,
        removalPolicy: RemovalPolicy.DESTROY,
      }),
    });
    this.resource = new CustomResource(this, 'Resource', {
      serviceToken: this.provider.serviceToken,
      resourceType: 'Custom::SpillwayMigrations',
      properties: {
        MigrateFunctionName: props.migrateFunction.functionName,
        MigrationsHash: hashMigrations(join(PROJECT_ROOT, MIGRATIONS_SOURCE)),
      },
    });
  }
}

/** sha256 over the names and contents of the `.sql` files, in name order. */
export function hashMigrations(directory: string): string {
  const hash = createHash('sha256');
  const files = readdirSync(directory)
    .filter((f) => f.endsWith('.sql'))
    .sort();
  if (files.length === 0) throw new Error(`no .sql migrations in ${directory}`);
  for (const file of files) {
    hash
      .update(file)
      .update('\0')
      .update(readFileSync(join(directory, file)))
      .update('\0');
  }
  return hash.digest('hex');
}
