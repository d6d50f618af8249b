/**
 * `migrate`: applies the SQL migrations not yet applied and returns `{ applied, skipped }`.
 *
 * Also serves as the `onEvent` function of a CloudFormation custom resource provider: on Create
 * and Update it migrates and returns `{ PhysicalResourceId, Data }`; on Delete it does nothing,
 * because deleting a stack must leave the data and its schema alone. During a deployment the
 * proxy may still be bringing up its target, so there it retries while the database is not
 * reachable yet, for most of its timeout; invoked directly, it fails at once.
 */

import { messageOf } from '../core/errors.js';
import { getConfig } from '../io/config.js';
import { type MigrationResult, runMigrations } from '../io/migrator.js';
import { retryWhileStarting } from '../io/startup-retry.js';
import { logger } from '../io/telemetry.js';
import { getDatabase } from '../runtime/container.js';
import { lambdaHandler } from '../runtime/invocation.js';
import { deployedTables } from '../runtime/tables.js';

/** Where the bundle keeps the SQL files (`/var/task/migrations`); unset: the source folder. */
const directory = process.env.MIGRATIONS_DIR?.trim() || undefined;

const PHYSICAL_RESOURCE_ID = 'spillway-migrations';
/** CloudFormation caps a custom resource's response at 4 KB. */
const MAX_DATA_CHARS = 1_000;
/** Time kept back from the timeout to report the last error before Lambda stops the function. */
const RETRY_MARGIN_MS = 30_000;

interface CustomResourceEvent {
  readonly RequestType: 'Create' | 'Update' | 'Delete';
  readonly PhysicalResourceId?: string;
}

export const handler = lambdaHandler(async (event, context) => {
  if (isCustomResourceEvent(event)) {
    if (event.RequestType === 'Delete') {
      return { PhysicalResourceId: event.PhysicalResourceId ?? PHYSICAL_RESOURCE_ID };
    }
    const result = await retryWhileStarting(migrate, {
      deadline: Date.now() + context.getRemainingTimeInMillis() - RETRY_MARGIN_MS,
      onRetry: (error, attempt, waitMs) =>
        logger.warn('database not reachable yet; migrating again', {
          attempt,
          waitMs,
          error: messageOf(error),
        }),
    });
    return {
      PhysicalResourceId: PHYSICAL_RESOURCE_ID,
      Data: {
        Applied: result.applied.join(' ').slice(0, MAX_DATA_CHARS),
        Skipped: String(result.skipped.length),
      },
    };
  }
  return await migrate();
});

async function migrate(): Promise<MigrationResult> {
  const config = getConfig();
  const { pool } = await getDatabase();
  const result = await runMigrations(pool, {
    registry: deployedTables,
    schema: config.dbSchema,
    directory,
    timeoutMs: config.migrationTimeoutMs,
  });
  logger.info('migrations done', { ...result });
  return result;
}

function isCustomResourceEvent(event: unknown): event is CustomResourceEvent {
  if (typeof event !== 'object' || event === null) return false;
  const type = (event as { RequestType?: unknown }).RequestType;
  return type === 'Create' || type === 'Update' || type === 'Delete';
}
