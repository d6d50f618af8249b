/**
 * Every Redis key of one buffer. The prefix sits in a hash tag so that all keys of a buffer
 * live in one cluster slot and the Lua scripts may touch them together.
 */
export interface BufferKeys {
  /** Stream of changesets in acknowledgement order. */
  readonly log: string;
  /** Pending changes, for backpressure (G5). */
  readonly backlog: string;
  /** What the pending changesets cost Redis in bytes (estimated), for backpressure (G5). */
  readonly backlogBytes: string;
  /**
   * Hash: `epoch` (names the cache's data; a cache that lost it gets a new one), `since` (the
   * stream id the epoch began at), `offset` (the epoch's version offset, as the drainer agreed it
   * with the database), `replid` (the primary's replication id at the last drain), `lostAt` and
   * `failoverAt` (ms, what the drainer detected, for health).
   */
  readonly meta: string;
  /** Hash: what the last drain did (`at`, `stoppedBy`, `progressAt`, `error`), for health (G8). */
  readonly drainStatus: string;
  /** Dead letters: id -> JSON. */
  readonly deadLetters: string;
  /** Dead letters in original order (sorted set, lexicographic members). */
  readonly deadLetterIndex: string;
  /** Holds the fencing token of the one drainer that may drain. */
  readonly lease: string;
  /** Source of fencing tokens. */
  readonly leaseToken: string;
  /** Circuit breaker state shared by all drainers. */
  readonly breaker: string;
  /** The systemic database fault the drain is stopped by (G7, G8): hash, absent when none. */
  readonly fault: string;
  /** Exists (with a TTL) while the drain waits before trying the faulty batch again. */
  readonly faultHold: string;
  /**
   * Read overlay of one row (G4): a hash with one layer per pending changeset that touched the
   * row (field: the changeset's stream id; value: see `lua/write.lua`).
   */
  overlay(table: string, rowKey: string): string;
}

/** Consumer group and consumer name: one drainer at a time holds the lease, so one name suffices. */
export const DRAIN_GROUP = 'drainers';
export const DRAIN_CONSUMER = 'drainer';

export function bufferKeys(prefix: string): BufferKeys {
  const p = `{${prefix}}`;
  return {
    log: `${p}:log`,
    backlog: `${p}:backlog`,
    backlogBytes: `${p}:backlog:bytes`,
    meta: `${p}:meta`,
    drainStatus: `${p}:drain`,
    deadLetters: `${p}:dead`,
    deadLetterIndex: `${p}:dead:index`,
    lease: `${p}:lease`,
    leaseToken: `${p}:lease:token`,
    breaker: `${p}:breaker`,
    fault: `${p}:fault`,
    faultHold: `${p}:fault:hold`,
    overlay: (table, rowKey) => `${p}:ov:${table}:${rowKey}`,
  };
}
