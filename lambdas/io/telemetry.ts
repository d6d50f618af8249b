/**
 * Structured logs and CloudWatch metrics (embedded metric format on stdout) for every function.
 * The metric names (`core/metric-names.ts`) are shared with the CDK app's alarms and dashboard.
 */
import { Logger } from '@aws-lambda-powertools/logger';
import { Metrics, MetricUnit } from '@aws-lambda-powertools/metrics';
import { METRICS_NAMESPACE, MetricName } from '../core/metric-names.js';
import { boundText } from '../core/reasons.js';

export { METRICS_NAMESPACE, MetricName };

/** `POWERTOOLS_SERVICE_NAME`, or 'spillway'. */
export const serviceName = process.env.POWERTOOLS_SERVICE_NAME?.trim() || 'spillway';

/** The logger of this container; `POWERTOOLS_LOG_LEVEL` sets its level. */
export const logger = new Logger({ serviceName });

/** The metrics of this container, in the `Spillway` namespace with a `service` dimension. */
export const metrics = new Metrics({ namespace: METRICS_NAMESPACE, serviceName });

/**
 * An error as Spillway logs it: its name, its message cut short, and what classifies it (SQLSTATE,
 * a system error code), but none of the properties that carry row data or command arguments
 * (pg's `detail` "Failing row contains ...", ioredis's `command.args`), nor its `cause`, which
 * Powertools would log whole. The stack stays, for unexpected errors.
 */
export function loggableError(error: unknown): Record<string, string> {
  if (!(error instanceof Error)) return { name: 'Error', message: boundText(String(error)) };
  const code =
    (error as { code?: unknown; sqlState?: unknown }).sqlState ??
    (error as { code?: unknown }).code;
  return {
    name: error.name,
    message: boundText(error.message),
    ...(typeof code === 'string' ? { code } : {}),
    ...(error.stack ? { stack: boundText(error.stack, 2_000) } : {}),
  };
}

/** A logger whose every line carries the changeset id, for everything said about one changeset. */
export function changesetLogger(changesetId: string, parent: Logger = logger): Logger {
  return parent.createChild({ persistentKeys: { changesetId } });
}

/**
 * What one drain did (a `DrainResult` fits); zeros are published too, so that alarms never see
 * missing data. Declared here, not imported: telemetry is a leaf every layer above logs through.
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
