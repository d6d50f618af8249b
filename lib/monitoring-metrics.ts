import { Duration } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import { METRICS_NAMESPACE, MetricName } from '../lambdas/core/metric-names.js';

/** A metric the functions emit (namespace `Spillway`, dimension `service`), by its code name. */
export type SpillwayMetricName = keyof typeof MetricName;

/** The period of the cache nodes' memory metric, in the alarm and on the dashboard. */
export const CACHE_MEMORY_PERIOD = Duration.minutes(5);

/** Builds the metrics of one deployment: the functions' own, and the alarm window they need. */
export class SpillwayMetrics {
  /**
   * The period alarms on sync's metrics look at. sync publishes its gauges and counts once per
   * invocation, when it ends: a window must be longer than one invocation, or a long drain would
   * read as missing data.
   */
  readonly window: Duration;

  constructor(
    private readonly serviceName: string,
    syncTimeout: Duration,
  ) {
    this.window = Duration.minutes(5 * Math.ceil((syncTimeout.toSeconds() + 60) / 300));
  }

  /** One of the functions' metrics. @default period - one minute */
  metric(
    name: SpillwayMetricName,
    statistic: string,
    period: Duration = Duration.minutes(1),
  ): cloudwatch.Metric {
    return new cloudwatch.Metric({
      namespace: METRICS_NAMESPACE,
      metricName: MetricName[name],
      dimensionsMap: { service: this.serviceName },
      statistic,
      period,
    });
  }

  /** `n` alarm windows in words ("10 minutes"), for alarm descriptions. */
  windows(n: number): string {
    return `${n * this.window.toMinutes()} minutes`;
  }

  /** ElastiCache's memory use of each cache node, keyed `node0`, `node1`, ... for math expressions. */
  static cacheMemory(cacheClusterIds: readonly string[]): Record<string, cloudwatch.Metric> {
    return Object.fromEntries(
      cacheClusterIds.map((id, i) => [
        `node${i}`,
        new cloudwatch.Metric({
          namespace: 'AWS/ElastiCache',
          metricName: 'DatabaseMemoryUsagePercentage',
          dimensionsMap: { CacheClusterId: id },
          statistic: 'Maximum',
          period: CACHE_MEMORY_PERIOD,
        }),
      ]),
    );
  }
}
