import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { CustomResource } from 'aws-cdk-lib';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import type * as logs from 'aws-cdk-lib/aws-logs';
import type * as cr from 'aws-cdk-lib/custom-resources';
import { Construct } from 'constructs';
import type { TableDef } from '../lambdas/core/schema.js';
import { BOOKKEEPING_LAYOUT } from '../lambdas/core/sql.js';
import { pipelineTables } from '../lambdas/schema/tables.js';
import { MIGRATIONS_SOURCE, PROJECT_ROOT } from './bundle.js';
import { addFunctionCustomResource } from './function-custom-resource.js';

export { MIGRATIONS_SOURCE };
/** Where the `migrate` function finds them in its bundle (`MIGRATION_FILES`). */
export const MIGRATIONS_DIR = '/var/task/migrations';

export interface SpillwayMigrationsProps {
  /**
   * The `migrate` function. Given a CloudFormation custom resource event it migrates on Create
   * and Update, does nothing on Delete, and fails with the migration's error when one fails.
   */
  readonly migrateFunction: lambda.IFunction;
  readonly logRetention: logs.RetentionDays;
}

/**
 * Runs `migrate` on every deployment that creates the stack or changes a migration. When a
 * migration fails, the Provider framework reports `migrate`'s error message as the resource's
 * failure reason, so the deployment fails (and rolls back) with that message.
 *
 * The resource carries a hash of the SQL files and of the table definitions, and the layout of
 * the bookkeeping `migrate` creates beyond them (`BOOKKEEPING_LAYOUT`: version tables), so
 * CloudFormation updates it, and so migrates and checks the tables, exactly when one of them
 * changes; the migrations themselves are idempotent.
 */
export class SpillwayMigrations extends Construct {
  readonly resource: CustomResource;
  /** The Provider framework (a CDK-made Lambda function outside the VPC that invokes `migrate`). */
  readonly provider: cr.Provider;

  constructor(scope: Construct, id: string, props: SpillwayMigrationsProps) {
    super(scope, id);
    ({ resource: this.resource, provider: this.provider } = addFunctionCustomResource(this, {
      onEventHandler: props.migrateFunction,
      logRetention: props.logRetention,
      resourceType: 'Custom::SpillwayMigrations',
      properties: {
        MigrationsHash: hashMigrations(join(PROJECT_ROOT, MIGRATIONS_SOURCE)),
        // `migrate` also checks the tables against their definitions: a changed definition re-runs it.
        TableDefinitionsHash: hashTableDefinitions(pipelineTables),
        // What migrate keeps beyond the SQL files (version tables): a new layout re-runs it too.
        BookkeepingLayout: BOOKKEEPING_LAYOUT,
      },
    }));
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

/** sha256 over the table definitions that `migrate` checks the database against. */
export function hashTableDefinitions(tables: readonly TableDef[]): string {
  return createHash('sha256').update(JSON.stringify(tables)).digest('hex');
}
