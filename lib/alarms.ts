import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import type { Construct } from 'constructs';
import { CACHE_MEMORY_PERIOD, SpillwayMetrics } from './monitoring-metrics.js';

/** Spillway's alarms, one per thing an operator acts on (G8). */
export interface SpillwayAlarms {
  readonly oldestPendingAge: cloudwatch.Alarm;
  readonly deadLetters: cloudwatch.Alarm;
  readonly syncErrors: cloudwatch.Alarm;
  readonly breakerOpen: cloudwatch.Alarm;
  readonly systemicFault: cloudwatch.Alarm;
  readonly bufferNearFull: cloudwatch.Alarm;
  readonly unhealthy: cloudwatch.Alarm;
  readonly cacheDataLost: cloudwatch.Alarm;
  readonly syncStalled: cloudwatch.Alarm;
  /** @default - undefined without cache nodes (LocalStack shape) */
  readonly cacheMemory: cloudwatch.Alarm | undefined;
}

export interface SpillwayAlarmsProps {
  readonly metrics: SpillwayMetrics;
  readonly syncFunction: lambda.IFunction;
  /**
   * The functions that buffer changesets (`write` and the pipeline steps): writes arriving while
   * `sync` is not invoked at all means the drain has stopped.
   */
  readonly writerFunctions: readonly lambda.IFunction[];
  /** The cache's node ids, for the memory alarm. None: no such alarm. */
  readonly cacheClusterIds: readonly string[];
  readonly backlogLimit: number;
  readonly oldestPendingMinutes: number;
}

/** Adds Spillway's alarms to `scope` (without actions: the caller routes them). */
export function addAlarms(scope: Construct, props: SpillwayAlarmsProps): SpillwayAlarms {
  const { metrics } = props;
  const window = metrics.window;

  const oldestPendingAge = new cloudwatch.Alarm(scope, 'OldestPendingAge', {
    alarmDescription: `The oldest pending change has waited more than ${props.oldestPendingMinutes} minutes for the database.`,
    metric: metrics.metric('OldestPendingAgeMs', 'Maximum', window),
    threshold: props.oldestPendingMinutes * 60_000,
    comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
    evaluationPeriods: 2,
    datapointsToAlarm: 2,
    // Only sync publishes this gauge, so silence says nothing about the lag: it is silent before
    // the first drain (during the first deployment) and whenever the schedule is off on purpose.
    // Counting silence as breaching alarmed on both; counting it as not breaching would turn a
    // lag alarm OK just because sync stopped. Missing data keeps the alarm's state, and a
    // stopped drain is the SyncStalled alarm's to report.
    treatMissingData: cloudwatch.TreatMissingData.MISSING,
  });

  const writerInvocations = Object.fromEntries(
    props.writerFunctions.map((fn, i) => [
      `writes${i}`,
      fn.metricInvocations({ period: window, statistic: 'Sum' }),
    ]),
  );
  const syncStalled = new cloudwatch.Alarm(scope, 'SyncStalled', {
    alarmDescription: `Changesets were written but sync was not invoked in ${metrics.windows(2)}: the backlog grows and nothing drains it. Is the schedule enabled, is sync throttled or failing to start?`,
    metric: new cloudwatch.MathExpression({
      label: 'writes without a sync invocation',
      // Quiet (no writes, e.g. the first deployment or a schedule turned off while nothing is
      // written) is 0, not an alarm; writes with no sync invocation in the window are 1.
      expression: `IF((${Object.keys(writerInvocations)
        .map((id) => `FILL(${id}, 0)`)
        .join(' + ')}) > 0 AND FILL(syncInvocations, 0) == 0, 1, 0)`,
      usingMetrics: {
        ...writerInvocations,
        syncInvocations: props.syncFunction.metricInvocations({
          period: window,
          statistic: 'Sum',
        }),
      },
      period: window,
    }),
    threshold: 1,
    comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
    evaluationPeriods: 2,
    datapointsToAlarm: 2,
    treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
  });

  const deadLetters = new cloudwatch.Alarm(scope, 'DeadLetters', {
    alarmDescription:
      'A change was dead-lettered: the database rejected it permanently. List and replay with the admin function.',
    metric: metrics.metric('ChangesDeadLettered', 'Sum'),
    threshold: 1,
    comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
    evaluationPeriods: 1,
    treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
  });

  const syncErrors = new cloudwatch.Alarm(scope, 'SyncErrors', {
    alarmDescription: `sync failed, or met transient database errors, in 2 of the last 3 ${metrics.windows(1)} windows (invocation errors + DrainErrors).`,
    metric: new cloudwatch.MathExpression({
      label: 'sync errors + drain errors',
      expression: 'FILL(invocationErrors, 0) + FILL(drainErrors, 0)',
      usingMetrics: {
        invocationErrors: props.syncFunction.metricErrors({ period: window, statistic: 'Sum' }),
        drainErrors: metrics.metric('DrainErrors', 'Sum', window),
      },
      period: window,
    }),
    threshold: 1,
    comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
    evaluationPeriods: 3,
    datapointsToAlarm: 2,
    treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
  });

  const breakerOpen = new cloudwatch.Alarm(scope, 'BreakerOpen', {
    alarmDescription: `sync found the circuit breaker in front of the database open in two ${metrics.windows(1)} windows running: writes are buffered, nothing reaches the database.`,
    metric: metrics.metric('BreakerOpen', 'Maximum', window),
    threshold: 1,
    comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
    evaluationPeriods: 2,
    datapointsToAlarm: 2,
    treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
  });

  const systemicFault = new cloudwatch.Alarm(scope, 'SystemicFault', {
    alarmDescription:
      'A systemic database fault (a missing column, table or privilege) stops the drain; nothing is dead-lettered. The health function names it; the drain resumes by itself once it is fixed.',
    metric: metrics.metric('SystemicFault', 'Maximum', window),
    threshold: 1,
    comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
    evaluationPeriods: 1,
    treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
  });

  const bufferNearFull = new cloudwatch.Alarm(scope, 'BufferNearFull', {
    alarmDescription: `The buffer passed 80% of its limit (BACKLOG_LIMIT ${props.backlogLimit} changes, or BACKLOG_LIMIT_BYTES); at the limit, write fails with BackpressureError.`,
    metric: metrics.metric('BufferPercentFull', 'Maximum', window),
    threshold: 80,
    comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
    evaluationPeriods: 1,
    treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
  });

  const unhealthy = new cloudwatch.Alarm(scope, 'Unhealthy', {
    alarmDescription: `health was not ok in two ${metrics.windows(1)} windows running: the backlog is not draining, the drainer is fenced, the breaker is open, the buffer is filling, the cache lost its data, or a systemic fault stops the drain. The health function and the sync log say which.`,
    metric: metrics.metric('Unhealthy', 'Maximum', window),
    threshold: 1,
    comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
    evaluationPeriods: 2,
    datapointsToAlarm: 2,
    treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
  });

  const cacheDataLost = new cloudwatch.Alarm(scope, 'CacheDataLost', {
    alarmDescription:
      'The cache lost its data (a node replaced, a failover to an empty replica, a restore, FLUSHALL): changes it held that were not yet drained, and its dead letters, are gone. New writes drain normally. Acknowledge with the admin action acknowledge-cache-loss.',
    metric: metrics.metric('CacheDataLost', 'Maximum', window),
    threshold: 1,
    comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
    evaluationPeriods: 1,
    treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
  });

  const memoryMetrics = SpillwayMetrics.cacheMemory(props.cacheClusterIds);
  const cacheMemory =
    props.cacheClusterIds.length === 0
      ? undefined
      : new cloudwatch.Alarm(scope, 'CacheMemory', {
          alarmDescription:
            'Cache memory above 80% on a node. With noeviction a full cache refuses writes: drain, or choose a larger cacheNodeType.',
          metric: new cloudwatch.MathExpression({
            label: 'highest node memory %',
            expression: `MAX([${Object.keys(memoryMetrics).join(', ')}])`,
            usingMetrics: memoryMetrics,
            period: CACHE_MEMORY_PERIOD,
          }),
          threshold: 80,
          comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
          evaluationPeriods: 1,
          treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
        });

  return {
    oldestPendingAge,
    deadLetters,
    syncErrors,
    breakerOpen,
    systemicFault,
    bufferNearFull,
    unhealthy,
    cacheDataLost,
    syncStalled,
    cacheMemory,
  };
}
