import { Duration } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import type { Construct } from 'constructs';
import { type SpillwayMetricName, SpillwayMetrics } from './monitoring-metrics.js';

export interface SpillwayDashboardProps {
  readonly metrics: SpillwayMetrics;
  /** Shown in the top row. */
  readonly alarms: readonly cloudwatch.IAlarm[];
  readonly syncFunction: lambda.IFunction;
  readonly writeFunction: lambda.IFunction;
  readonly readFunction: lambda.IFunction;
  /** Every function, for the error graph. */
  readonly functions: Readonly<Record<string, lambda.IFunction>>;
  readonly cacheClusterIds: readonly string[];
  readonly backlogLimit: number;
  /** Drawn on the lag graph. */
  readonly oldestPendingAlarmMs: number;
}

/**
 * Adds the dashboard to `scope`: the alarms; backlog, lag and throughput; errors and latency;
 * cache memory, how full the buffer is, and sync's throttles.
 */
export function addDashboard(
  scope: Construct,
  props: SpillwayDashboardProps,
): cloudwatch.Dashboard {
  const { metrics } = props;
  const minutely = (name: SpillwayMetricName, label: string) =>
    metrics.metric(name, 'Sum').with({ label });
  const memoryMetrics = SpillwayMetrics.cacheMemory(props.cacheClusterIds);

  const dashboard = new cloudwatch.Dashboard(scope, 'Dashboard', {
    defaultInterval: Duration.hours(3),
  });
  dashboard.addWidgets(
    new cloudwatch.AlarmStatusWidget({
      title: 'Alarms',
      alarms: [...props.alarms],
      width: 24,
      height: 3,
    }),
  );
  dashboard.addWidgets(
    new cloudwatch.GraphWidget({
      title: 'Backlog (pending changes)',
      left: [metrics.metric('BacklogSize', 'Maximum').with({ label: 'backlog' })],
      leftAnnotations: [{ value: props.backlogLimit, label: 'BACKLOG_LIMIT' }],
      width: 8,
    }),
    new cloudwatch.GraphWidget({
      title: 'Lag: age of the oldest pending change (ms)',
      left: [metrics.metric('OldestPendingAgeMs', 'Maximum').with({ label: 'oldest pending' })],
      leftAnnotations: [{ value: props.oldestPendingAlarmMs, label: 'alarm' }],
      width: 8,
    }),
    new cloudwatch.GraphWidget({
      title: 'Throughput (changes per minute)',
      left: [
        minutely('ChangesApplied', 'applied'),
        minutely('ChangesCoalesced', 'coalesced'),
        props.writeFunction.metricInvocations({
          period: Duration.minutes(1),
          label: 'write calls',
        }),
      ],
      width: 8,
    }),
  );
  dashboard.addWidgets(
    new cloudwatch.GraphWidget({
      title: 'Drain errors, dead letters, breaker',
      left: [
        minutely('DrainErrors', 'drain errors'),
        minutely('ChangesDeadLettered', 'dead-lettered'),
      ],
      right: [
        metrics.metric('BreakerOpen', 'Maximum').with({ label: 'breaker open' }),
        metrics.metric('Unhealthy', 'Maximum').with({ label: 'health not ok' }),
        metrics.metric('SystemicFault', 'Maximum').with({ label: 'systemic fault' }),
      ],
      width: 8,
    }),
    new cloudwatch.GraphWidget({
      title: 'Function errors',
      left: Object.entries(props.functions).map(([name, fn]) =>
        fn.metricErrors({ period: Duration.minutes(1), label: name }),
      ),
      width: 8,
    }),
    new cloudwatch.GraphWidget({
      title: 'Latency p99 (ms)',
      left: [
        props.writeFunction.metricDuration({ statistic: 'p99', label: 'write' }),
        props.readFunction.metricDuration({ statistic: 'p99', label: 'read' }),
      ],
      right: [props.syncFunction.metricDuration({ statistic: 'Maximum', label: 'sync (max)' })],
      width: 8,
    }),
  );
  dashboard.addWidgets(
    new cloudwatch.GraphWidget({
      title: 'Cache memory % (noeviction: full means writes fail)',
      left: Object.values(memoryMetrics).map((m, i) =>
        m.with({ label: props.cacheClusterIds[i] ?? `node ${i}` }),
      ),
      leftAnnotations: [{ value: 80, label: 'alarm' }],
      width: 12,
    }),
    new cloudwatch.GraphWidget({
      title: 'Buffer % full (the larger of changes and bytes; writes refused at 100)',
      left: [metrics.metric('BufferPercentFull', 'Maximum').with({ label: 'buffer full %' })],
      leftAnnotations: [{ value: 80, label: 'alarm' }],
      right: [metrics.metric('CacheDataLost', 'Maximum').with({ label: 'cache data lost' })],
      width: 6,
    }),
    new cloudwatch.GraphWidget({
      title: 'sync throttles (overlapping ticks, expected)',
      left: [props.syncFunction.metricThrottles({ period: Duration.minutes(1) })],
      width: 6,
    }),
  );
  return dashboard;
}
