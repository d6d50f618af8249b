/**
 * `sync`, invoked by the schedule: drains the backlog into the database until it is empty and
 * stayed empty for `SYNC_IDLE_WAIT_MS`, or until the invocation's time (less
 * `SYNC_DEADLINE_MARGIN_MS`) is spent. Returns its counts and publishes them, with the backlog
 * that is left, as metrics.
 */
import { getConfig } from '../io/config.js';
import { drainUntilIdle } from '../io/drain-loop.js';
import { publishBacklogMetrics, publishDrainMetrics, publishSystemicFault } from '../io/metrics.js';
import { loggableError, logger } from '../io/telemetry.js';
import { getSpillway } from '../runtime/container.js';
import { lambdaHandler } from '../runtime/invocation.js';

export const handler = lambdaHandler(async (_event, context) => {
  const config = getConfig();
  const spillway = await getSpillway();
  const result = await drainUntilIdle(
    {
      drain: (deadline) => spillway.drain(deadline),
      pendingChangesets: () => spillway.pendingChangesets(),
      breakerRetryInMs: () => spillway.breakerRetryInMs(),
    },
    {
      remainingMs: () => context.getRemainingTimeInMillis(),
      marginMs: config.syncDeadlineMarginMs,
      idleWaitMs: config.syncIdleWaitMs,
    },
  );
  // With the backlog empty, tombstones nothing can reach any more go (bounded per invocation).
  const tombstonesPruned =
    result.stoppedBy === 'empty'
      ? await spillway.pruneTombstones().catch((error: unknown) => {
          logger.warn('could not prune tombstones; the next sync tries again', {
            error: loggableError(error),
          });
          return 0;
        })
      : 0;
  const [health, fault] = await Promise.all([spillway.health(), spillway.systemicFault()]);
  if (result.stoppedBy === 'systemic') {
    logger.error('systemic database fault: the drain is stopped until it is fixed', { fault });
  }
  publishDrainMetrics(result);
  publishSystemicFault(fault !== null);
  publishBacklogMetrics(health);
  const summary = {
    ...result,
    backlog: health.backlog,
    oldestPendingMs: health.oldestPendingMs,
    deadLetters: health.deadLetters,
    breaker: health.breaker,
    tombstonesPruned,
    health: health.status,
    reasons: health.reasons,
  };
  // Said loudly once, where an operator's log search and the CacheDataLost alarm meet (G1).
  if (result.cacheLost) {
    logger.error(
      'the cache lost its data: changes not yet drained and dead letters it held are gone; new writes drain normally',
      { cacheDataLostAt: health.cache.dataLostAt },
    );
  }
  if (result.failover) logger.warn('the cache primary changed (failover or restart)');
  if (health.status !== 'ok')
    logger.warn('not healthy', { status: health.status, reasons: health.reasons });
  if (result.batches > 0 || result.deadLettered > 0 || result.transientErrors > 0) {
    logger.info('drained', summary);
  }
  return summary;
});
