/**
 * Structured logs and CloudWatch metrics (embedded metric format on stdout) for every function.
 * The metric names are a contract with the dashboards and alarms of the CDK app: change them there too.
 */
import { Logger } from '@aws-lambda-powertools/logger';
import { Metrics, MetricUnit } from '@aws-lambda-powertools/metrics';
import type { BreakerStatus, DrainResult } from '../spillway.js';

/** The CloudWatch namespace of every Spillway metric. */
export const METRICS_NAMESPACE = 'Spillway';

/** Every metric Spillway emits, by name. */
export const MetricName = {
  /** Pending changes in the buffer. */
  BacklogSize: 'BacklogSize',
  /** Age of the oldest pending change: how far the database lags behind acknowledged writes. */
  OldestPendingAgeMs: 'OldestPendingAgeMs',
  ChangesApplied: 'ChangesApplied',
  /** Changes folded into a later change of the same key before they reached the database. */
  ChangesCoalesced: 'ChangesCoalesced',
  ChangesDeadLettered: 'ChangesDeadLettered',
  /** Transient failures (connection, timeout, proxy) met while draining; retried, never dead-lettered. */
  DrainErrors: 'DrainErrors',
  /** 1 while the circuit breaker in front of the database is open, else 0. */
  BreakerOpen: 'BreakerOpen',
} as const;

/** `POWERTOOLS_SERVICE_NAME`, or 'spillway'. */
export const serviceName = process.env.POWERTOOLS_SERVICE_NAME?.trim() || 'spillway';

/** The logger of this container; `POWERTOOLS_LOG_LEVEL` sets its level. */
export const logger = new Logger({ serviceName });

/** The metrics of this container, in the `Spillway` namespace with a `service` dimension. */
export const metrics = new Metrics({ namespace: METRICS_NAMESPACE, serviceName });

/** A logger whose every line carries the changeset id, for everything said about one changeset. */
export function changesetLogger(changesetId: string, parent: Logger = logger): Logger {
  return parent.createChild({ persistentKeys: { changesetId } });
}

/** What one drain did; zeros are published too, so that alarms never see missing data. */
export type DrainCounts = Pick<
  DrainResult,
  'applied' | 'coalesced' | 'deadLettered' | 'transientErrors'
>;

/** Emits one EMF line with the counts of a drain. */
export function publishDrainMetrics(counts: DrainCounts, target: Metrics = metrics): void {
  target.addMetric(MetricName.ChangesApplied, MetricUnit.Count, counts.applied);
  target.addMetric(MetricName.ChangesCoalesced, MetricUnit.Count, counts.coalesced);
  target.addMetric(MetricName.ChangesDeadLettered, MetricUnit.Count, counts.deadLettered);
  target.addMetric(MetricName.DrainErrors, MetricUnit.Count, counts.transientErrors);
  target.publishStoredMetrics();
}

/** The state of the backlog, as `Spillway.health()` reports it (a `Health` fits). */
export interface BacklogGauges {
  readonly backlog: number;
  readonly oldestPendingMs: number;
  readonly breaker: BreakerStatus['state'];
}

/**
 * Emits one EMF line with the backlog size, the age of its oldest change and whether the breaker
 * is open. A half-open breaker (a trial call is allowed) counts as not open.
 */
export function publishBacklogMetrics(stats: BacklogGauges, target: Metrics = metrics): void {
  target.addMetric(MetricName.BacklogSize, MetricUnit.Count, stats.backlog);
  target.addMetric(MetricName.OldestPendingAgeMs, MetricUnit.Milliseconds, stats.oldestPendingMs);
  target.addMetric(MetricName.BreakerOpen, MetricUnit.Count, stats.breaker === 'open' ? 1 : 0);
  target.publishStoredMetrics();
}
