/**
 * Every Redis key of one buffer, and what each holds (docs/design.md, "The Redis layout", draws
 * the whole). The prefix sits in a hash tag so that all keys of a buffer live in one cluster slot
 * and the Lua scripts may touch them together.
 *
 * Words: *the backlog* is what waits to be drained: the stream `backlog` (whose key string is
 * `{p}:log`); `backlogChanges` and `backlogBytes` are its two counters. The key strings are the
 * ones deployed caches hold data under: a TypeScript name may change, a key string may not.
 */
export interface BufferKeys {
  /**
   * `{p}:log`, the backlog: a stream of changesets in acknowledgement order, read by the consumer
   * group `DRAIN_GROUP`. Entry id: the changeset's version. Fields (`lua/write.lua`): `cs` the
   * changeset (JSON `{id, changes}`, each change stored without its key and row key:
   * `redis-codec.ts`), `b` what it costs Redis in bytes (refunded when settled), and `v` only for
   * a replayed dead letter: its original version.
   */
  readonly backlog: string;
  /** `{p}:backlog`, counter: changes in the backlog, for backpressure (G5). */
  readonly backlogChanges: string;
  /** `{p}:backlog:bytes`, counter: what the backlog costs Redis in bytes (estimated), for G5. */
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
  /**
   * Hash: changeset id -> the dead letter (JSON `DeadLetter`: `changesetId`, `version`, `changes`,
   * `reason`, `sqlState`, `deadAt`, `writtenAt`; `redis-codec.ts`).
   */
  readonly deadLetters: string;
  /**
   * Dead letters in original order: a sorted set, all scores 0, members `<version>:<changesetId>`
   * with the version zero-padded to 20 digits, ordered lexicographically (`redis-codec.ts` encodes
   * and decodes them; `lua/ack.lua` adds them; `redis-dead-letters.ts` reads them).
   */
  readonly deadLetterIndex: string;
  /** String with a TTL: the fencing token of the one drainer that may drain (`lua/lease.lua`). */
  readonly lease: string;
  /** Counter: the source of fencing tokens, moved past the database's after a lost cache. */
  readonly leaseToken: string;
  /**
   * Hash: the circuit breaker all drainers share (`lua/breaker.lua`): `state`
   * (closed/open/half-open), `failures`, `opens`, `openUntil` (ms), `since` (ms, first opening).
   */
  readonly breaker: string;
  /**
   * Hash, absent when none: the systemic database fault the drain is stopped by (G7, G8)
   * (`lua/fault.lua`): `message`, `sqlState`, `table`, `since` (ms).
   */
  readonly fault: string;
  /** Exists (with a TTL) while the drain waits before trying the faulty batch again. */
  readonly faultHold: string;
  /**
   * Read overlay of one row (G4): a hash with one layer per pending changeset that touched the
   * row. Field: the changeset's stream id; value: where the row's changes sit in that backlog
   * entry's `cs` payload, `<byte offset>:<byte length>` per change joined by `,` (`lua/write.lua`
   * writes it, `lua/overlay-read.lua` cuts the changes out of the entry, `redis-codec.ts`
   * resolves them to the layer; a replay's version is the entry's `v`). The change itself is
   * stored once, in the backlog. A cache written before references may still hold values
   * `<replayed version>|<layer>` (a copy of the layer), which are read as they were. Settling or
   * dead-lettering a changeset removes its fields.
   */
  overlay(table: string, rowKey: string): string;
  /**
   * Hash whose fields are the row keys of `table` with pending changes that name `value`
   * (JSON) in the foreign-key column `column` (values unused, empty), so that a read by parent
   * finds pending rows without scanning the overlay; small, it stays a compact listpack. A row
   * key goes once its row's overlay is empty (`lua/settle-rows.lua`). One written before
   * parent indexes were hashes is a set of the row keys, kept (and read) as such until it empties.
   */
  parentIndex(table: string, column: string, value: string): string;
  /**
   * `{p}:rc`, the read cache (`redis-read-cache.ts`): a hash, field `<table>:<rowKey>`, value
   * `<generation>|<cachedAt ms>|<row>` (the database's row and its version, JSON `{r, v}`:
   * `redis-codec.ts`), or `<generation>||` while a read reserved the place and has not filled it.
   * Bounded by `READ_CACHE_MAX_BYTES`; the one structure Spillway evicts from (G5).
   */
  readonly readCache: string;
  /** `{p}:rc:age`, sorted set: the read cache's fields by when they were cached (eviction order). */
  readonly readCacheAge: string;
  /** `{p}:rc:bytes`, counter: what the read cache costs Redis in bytes (estimated). */
  readonly readCacheBytes: string;
}

/** Consumer group and consumer name: one drainer at a time holds the lease, so one name suffices. */
export const DRAIN_GROUP = 'drainers';
export const DRAIN_CONSUMER = 'drainer';

export function bufferKeys(prefix: string): BufferKeys {
  const p = `{${prefix}}`;
  return {
    backlog: `${p}:log`,
    backlogChanges: `${p}:backlog`,
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
    parentIndex: (table, column, value) => `${p}:px:${table}:${column}:${value}`,
    readCache: `${p}:rc`,
    readCacheAge: `${p}:rc:age`,
    readCacheBytes: `${p}:rc:bytes`,
  };
}
