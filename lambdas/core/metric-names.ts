/**
 * The metrics Spillway emits (CloudWatch embedded metric format, dimension `service`): named once
 * for the functions that publish them and the alarms and dashboard that read them.
 */
export const METRICS_NAMESPACE = 'Spillway';

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
  /** 1 while a systemic database fault (missing column, table, privilege) stops the drain, else 0. */
  SystemicFault: 'SystemicFault',
} as const;
