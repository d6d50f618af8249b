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
  /** How full the buffer is against the larger of its two limits (changes, bytes), in percent. */
  BufferPercentFull: 'BufferPercentFull',
  /** 1 while `health` is not `ok` (its reasons are in the sync log), else 0. */
  Unhealthy: 'Unhealthy',
  /** 1 in the sync that found the cache had lost its data (a new epoch), else 0. */
  CacheDataLost: 'CacheDataLost',
  /** 1 in the sync that found the cache's primary had changed (a failover, or a restart), else 0. */
  CacheFailover: 'CacheFailover',
  /** 1 while a systemic database fault (missing column, table, privilege) stops the drain, else 0. */
  SystemicFault: 'SystemicFault',
} as const;
