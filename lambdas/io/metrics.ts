/**
 * CloudWatch metrics (embedded metric format on stdout), published by `sync` only. The metric
 * names (`core/metric-names.ts`) are shared with the CDK app's alarms and dashboard. Apart from
 * `telemetry.ts` (the logs), so that the bundles of the functions that publish none (`write`,
 * `read`, ...) leave the Powertools metrics out.
 */
import { Metrics, MetricUnit } from '@aws-lambda-powertools/metrics';
import { METRICS_NAMESPACE, MetricName } from '../core/metric-names.js';
import { serviceName } from './telemetry.js';

export { METRICS_NAMESPACE, MetricName };

/** The metrics of this container, in the `Spillway` namespace with a `service` dimension. */
export const metrics = new Metrics({ namespace: METRICS_NAMESPACE, serviceName });

/**
 * What one drain did (a `DrainResult` fits); zeros are published too, so that alarms never see
 * missing data. Declared here, not imported: this module is a leaf the layers above publish
 * through.
 */
export interface DrainCounts {
  readonly applied: number;
  readonly coalesced: number;
  readonly deadLettered: number;
  readonly transientErrors: number;
  readonly cacheLost: boolean;
  readonly failover: boolean;
}

/** Emits one EMF line with the counts of a drain. */
export function publishDrainMetrics(counts: DrainCounts, target: Metrics = metrics): void {
  target.addMetric(MetricName.ChangesApplied, MetricUnit.Count, counts.applied);
  target.addMetric(MetricName.ChangesCoalesced, MetricUnit.Count, counts.coalesced);
  target.addMetric(MetricName.ChangesDeadLettered, MetricUnit.Count, counts.deadLettered);
  target.addMetric(MetricName.DrainErrors, MetricUnit.Count, counts.transientErrors);
  target.addMetric(MetricName.CacheDataLost, MetricUnit.Count, counts.cacheLost ? 1 : 0);
  target.addMetric(MetricName.CacheFailover, MetricUnit.Count, counts.failover ? 1 : 0);
  target.publishStoredMetrics();
}

/** The state of the backlog, as `Spillway.health()` reports it (a `Health` fits). */
export interface BacklogGauges {
  readonly backlog: number;
  readonly oldestPendingMs: number;
  readonly breaker: 'closed' | 'open' | 'half-open';
  readonly status: 'ok' | 'degraded' | 'down';
  readonly buffer: { readonly percentFull: number };
}

/**
 * Emits one EMF line with the backlog size, the age of its oldest change, whether the breaker is
 * open, how full the buffer is and whether health is not ok. A half-open breaker (a trial call is
 * allowed) counts as not open.
 */
export function publishBacklogMetrics(stats: BacklogGauges, target: Metrics = metrics): void {
  target.addMetric(MetricName.BacklogSize, MetricUnit.Count, stats.backlog);
  target.addMetric(MetricName.OldestPendingAgeMs, MetricUnit.Milliseconds, stats.oldestPendingMs);
  target.addMetric(MetricName.BreakerOpen, MetricUnit.Count, stats.breaker === 'open' ? 1 : 0);
  target.addMetric(
    MetricName.BufferPercentFull,
    MetricUnit.Percent,
    Math.max(0, stats.buffer.percentFull),
  );
  target.addMetric(MetricName.Unhealthy, MetricUnit.Count, stats.status === 'ok' ? 0 : 1);
  target.publishStoredMetrics();
}

/**
 * Emits one EMF line saying whether a systemic database fault stops the drain (G7, G8): 1 while
 * one is recorded, else 0, so that its alarm sees data every `sync`.
 */
export function publishSystemicFault(active: boolean, target: Metrics = metrics): void {
  target.addMetric(MetricName.SystemicFault, MetricUnit.Count, active ? 1 : 0);
  target.publishStoredMetrics();
}
