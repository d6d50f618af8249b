/**
 * The engine as a library: what handlers, the local runner and tests call.
 * Pass connected clients in; this module opens no connection of its own.
 */
import type { Redis } from 'ioredis';
import { type JsonValue, rowKeyOf, validateRowKey } from './core/changeset.js';
import { messageOf, NotFoundError, UnavailableError, ValidationError } from './core/errors.js';
import { resolveRow, resolvesWithoutDatabase } from './core/overlay.js';
import { compareKeys, cursorAfter, parseParentRead } from './core/parent-read.js';
import type { SchemaRegistry, TableDef } from './core/schema.js';
import { ENGINE_DEFAULTS as D } from './core/settings.js';
import { type BreakerPolicy, type BreakerStatus, DrainControl } from './io/drain-control.js';
import { Drainer, type DrainHooks, type DrainResult } from './io/drainer.js';
import { PostgresSink, type SinkOptions } from './io/postgres-sink.js';
import type { TransactionPool } from './io/postgres-transaction.js';
import {
  type BufferStats,
  type ChangesetStatus,
  type DeadLetter,
  RedisBuffer,
} from './io/redis-buffer.js';
import type { ReadCacheStats } from './io/redis-read-cache.js';
import type { Sink } from './io/sink.js';

export type { BreakerStatus, BufferStats, ChangesetStatus, DeadLetter, DrainResult, RedisBuffer };

/**
 * What the engine is given. Every tuning option defaults to its setting in `settings.ts` (named
 * beside it), where its bounds and meaning are declared.
 */
export interface SpillwayOptions {
  readonly redis: Redis;
  /** A pool reaching PostgreSQL through RDS Proxy (locally: PgBouncer), or the Data API's. */
  readonly pool: TransactionPool;
  /** Builds the sink. @default a PostgresSink over `pool` */
  readonly sink?: (options: SinkOptions) => Sink;
  readonly registry: SchemaRegistry;
  /** Prefix of every Redis key; also names the buffer in the database's fencing table. @default `SPILLWAY_PREFIX`'s */
  readonly prefix?: string;
  /** PostgreSQL schema of the user tables. @default `SPILLWAY_DB_SCHEMA`'s */
  readonly dbSchema?: string;
  /** Pending changes past which writes fail with BackpressureError (G5). @default `BACKLOG_LIMIT`'s */
  readonly backlogLimit?: number;
  /**
   * What pending changesets may cost Redis in bytes (estimated) before writes fail with
   * BackpressureError (G5); below the cache's memory, so backpressure comes before Redis is full.
   * @default `BACKLOG_LIMIT_BYTES`'s
   */
  readonly backlogBytesLimit?: number;
  /** @default `CHANGESET_MAX_CHANGES`'s */
  readonly maxChangesPerChangeset?: number;
  /** @default `CHANGESET_MAX_BYTES`'s */
  readonly maxChangesetBytes?: number;
  /** Replicas that must confirm each changeset before `write` succeeds (G1). @default `REDIS_REPLICA_ACKS`'s */
  readonly replicaAcks?: number;
  /** @default `REDIS_REPLICA_ACK_TIMEOUT_MS`'s */
  readonly replicaAckTimeoutMs?: number;
  /** Changesets per drain transaction. @default `SYNC_BATCH_SIZE`'s */
  readonly batchSize?: number;
  /** Changes per drain transaction. @default `SYNC_BATCH_CHANGES`'s */
  readonly batchChanges?: number;
  /** Bytes of stored changes (JSON) one drain transaction may take (bounds its memory). @default `SYNC_BATCH_BYTES`'s */
  readonly batchBytes?: number;
  /**
   * `health` reports the backlog as not draining when no drain made progress for this long
   * while changes wait. @default `HEALTH_STALL_MS`'s
   */
  readonly stallAfterMs?: number;
  /** How long a drainer's lease lasts between renewals. @default `SYNC_LEASE_MS`'s */
  readonly leaseMs?: number;
  /** Longest one batch transaction may take (the drain's deadline may cut it shorter). @default 30_000 */
  readonly transactionTimeoutMs?: number;
  /** @default `SYNC_BACKOFF_BASE_MS`'s and `SYNC_BACKOFF_MAX_MS`'s */
  readonly backoff?: { readonly baseMs: number; readonly maxMs: number };
  /** @default `BREAKER_THRESHOLD`'s, `BREAKER_COOLDOWN_MS`'s and `BREAKER_MAX_COOLDOWN_MS`'s */
  readonly breaker?: BreakerPolicy;
  /** How long a row read from the database answers later reads from Redis. @default `READ_CACHE_TTL_MS`'s */
  readonly readCacheTtlMs?: number;
  /** How long a cached row answers during a database outage (`stale`). @default `READ_CACHE_STALE_MS`'s */
  readonly readCacheStaleMs?: number;
  /** What the read cache may cost Redis, in bytes; 0 turns it off. @default `READ_CACHE_MAX_BYTES`'s */
  readonly readCacheMaxBytes?: number;
  /** Test and logging hooks around drain steps. */
  readonly drainHooks?: DrainHooks;
}

export interface WriteResult {
  readonly accepted: number;
  readonly changesetId: string;
  /** The changeset's version (its stream id): ask `changesetStatus` where it stands. */
  readonly version: string;
}

/** One page of a read by parent. */
export interface ChildrenResult {
  readonly records: readonly Record<string, JsonValue>[];
  /** Whether any record shown includes pending changes. */
  readonly pending: boolean;
  readonly nextCursor: string | null;
}

export interface ReadResult {
  readonly record: Record<string, JsonValue> | null;
  /** True when changes to this row wait in the backlog (the record includes them, G4). */
  readonly pending: boolean;
  /**
   * Present (true) only when the database was out of reach and the row came from the read
   * cache: what the database held at `cachedAt` (ISO-8601), pending changes resolved on it.
   */
  readonly stale?: true;
  readonly cachedAt?: string;
}

export interface Health {
  /** `ok` only while the backlog drains (G8); otherwise `reasons` says why not. */
  readonly status: 'ok' | 'degraded' | 'down';
  /** What an operator acts on, one sentence each; empty when `ok`. */
  readonly reasons: readonly string[];
  readonly backlog: number;
  readonly pendingChangesets: number;
  readonly oldestPendingMs: number;
  readonly deadLetters: number;
  /** How full the buffer is, against both of its limits (G5). */
  readonly buffer: {
    readonly changes: number;
    readonly bytes: number;
    readonly changesLimit: number;
    readonly bytesLimit: number;
    /** The larger of the two fractions, in percent. */
    readonly percentFull: number;
  };
  readonly breaker: BreakerStatus['state'];
  /** When the breaker first opened in this run of failures (ISO-8601), while it is not closed. */
  readonly breakerOpenSince?: string;
  /** What the last drain did. */
  readonly lastDrain: {
    readonly at?: string;
    readonly stoppedBy?: string;
    /** When a drain last committed a batch or found the backlog empty. */
    readonly progressAt?: string;
    readonly error?: string;
  };
  /** The read cache: rows cached or reserved, what they cost Redis (estimated), its limit. */
  readonly readCache: ReadCacheStats;
  /** What the drainer detected about the cache (ISO-8601), until an operator acknowledges it. */
  readonly cache: {
    readonly dataLostAt?: string;
    readonly failoverAt?: string;
  };
  readonly checks: {
    readonly redis: { readonly ok: boolean; readonly error?: string };
    readonly database: { readonly ok: boolean; readonly error?: string };
  };
}

/** Which dead letters an operator action applies to: some by changeset id, or all. */
export type DeadLetterSelection =
  | { readonly changesetIds: readonly string[] }
  | { readonly all: true };

/** What the buffer alone needs: a function that only writes gets no database (nor a pool). */
export type BufferOptions = Pick<
  SpillwayOptions,
  | 'redis'
  | 'registry'
  | 'prefix'
  | 'backlogLimit'
  | 'backlogBytesLimit'
  | 'maxChangesPerChangeset'
  | 'maxChangesetBytes'
  | 'replicaAcks'
  | 'replicaAckTimeoutMs'
  | 'readCacheTtlMs'
  | 'readCacheStaleMs'
  | 'readCacheMaxBytes'
>;

/**
 * The buffer as `Spillway` builds it, for functions that only write (`write`, pipeline steps):
 * its `write` is `Spillway.write`.
 */
export function createBuffer(options: BufferOptions): RedisBuffer {
  return new RedisBuffer(options.redis, {
    prefix: options.prefix ?? D.prefix,
    registry: options.registry,
    backlogLimit: options.backlogLimit ?? D.backlogLimit,
    backlogBytesLimit: options.backlogBytesLimit ?? D.backlogBytesLimit,
    replicaAcks: options.replicaAcks ?? D.redisReplicaAcks,
    replicaAckTimeoutMs: options.replicaAckTimeoutMs ?? D.redisReplicaAckTimeoutMs,
    readCache: {
      ttlMs: options.readCacheTtlMs ?? D.readCacheTtlMs,
      staleMs: options.readCacheStaleMs ?? D.readCacheStaleMs,
      maxBytes: options.readCacheMaxBytes ?? D.readCacheMaxBytes,
    },
    limits: {
      maxChanges: options.maxChangesPerChangeset ?? D.changesetMaxChanges,
      maxBytes: options.maxChangesetBytes ?? D.changesetMaxBytes,
    },
  });
}

export class Spillway {
  readonly buffer: RedisBuffer;
  readonly sink: Sink;
  readonly control: DrainControl;
  private readonly drainer: Drainer;
  private readonly stallAfterMs: number;

  constructor(private readonly options: SpillwayOptions) {
    const prefix = options.prefix ?? D.prefix;
    this.buffer = createBuffer(options);
    const sinkOptions: SinkOptions = {
      registry: options.registry,
      schema: options.dbSchema ?? D.dbSchema,
      buffer: prefix,
    };
    this.sink = options.sink?.(sinkOptions) ?? new PostgresSink(options.pool, sinkOptions);
    this.control = new DrainControl(
      options.redis,
      this.buffer.keys,
      options.breaker ?? {
        threshold: D.breakerThreshold,
        cooldownMs: D.breakerCooldownMs,
        maxCooldownMs: D.breakerMaxCooldownMs,
      },
    );
    this.stallAfterMs = options.stallAfterMs ?? D.healthStallMs;
    this.drainer = new Drainer(this.buffer, this.sink, this.control, {
      batchSize: options.batchSize ?? D.syncBatchSize,
      batchChanges: options.batchChanges ?? D.syncBatchChanges,
      batchBytes: options.batchBytes ?? D.syncBatchBytes,
      leaseMs: options.leaseMs ?? D.syncLeaseMs,
      transactionTimeoutMs: options.transactionTimeoutMs ?? 30_000,
      backoff: options.backoff ?? { baseMs: D.syncBackoffBaseMs, maxMs: D.syncBackoffMaxMs },
      ...(options.drainHooks ? { hooks: options.drainHooks } : {}),
    });
  }

  /** The oldest changesets waiting in the backlog, without taking them (the `admin` peek). */
  peekPending(limit: number): ReturnType<RedisBuffer['peek']> {
    return this.buffer.peek(limit);
  }

  /** How many changesets wait in the backlog. */
  pendingChangesets(): Promise<number> {
    return this.buffer.pendingChangesets();
  }

  /** The backlog's counts (changes, bytes, dead letters, ...). */
  stats(): Promise<BufferStats> {
    return this.buffer.stats();
  }

  /** How long until the breaker lets a drain try the database again (0 when it is closed). */
  async breakerRetryInMs(): Promise<number> {
    return (await this.control.breakerStatus()).retryInMs;
  }

  /** The systemic fault that stops the drain (G7), or null. */
  systemicFault(): ReturnType<DrainControl['fault']> {
    return this.control.fault();
  }

  /** Buffer one changeset (G1, G5, G6). */
  write(input: unknown): Promise<WriteResult> {
    return this.buffer.write(input);
  }

  /**
   * The latest acknowledged state of a row, synced or not (G4): the database's row, from the
   * read cache while it is fresh, with the pending layers resolved on it by the drain's own rule
   * (`core/overlay.ts`). During a database outage a row whose pending changes replace or delete
   * it whole still answers, and so does a row cached within the stale window (`stale: true`).
   */
  async read(input: unknown): Promise<ReadResult> {
    const { def, key } = parseReadRequest(input, this.options.registry);
    const rowKey = rowKeyOf(def, key);
    // The overlay first, then the cache: a cached row is removed before the layers of a change
    // settled over it go, so read in this order the two never miss that change (G4).
    const { layers, offset } = await this.buffer.overlay(def.name, rowKey);
    const pending = layers.length > 0;
    const cache = this.buffer.readCache;
    const cached = await cache.lookup(def.name, rowKey);
    if (cached.kind === 'fresh') {
      return { record: resolveRow(def, cached.cached.row, layers, offset), pending };
    }
    const fetchedAt = Date.now();
    let stored: Awaited<ReturnType<Sink['fetchRow']>>;
    try {
      stored = await this.sink.fetchRow(def.name, key, rowKey);
    } catch (error) {
      if (!(error instanceof UnavailableError)) throw error;
      if (resolvesWithoutDatabase(layers)) {
        return { record: resolveRow(def, { record: null, version: null }, layers, null), pending };
      }
      if (cached.stale !== null) {
        return {
          record: resolveRow(def, cached.stale.row, layers, offset),
          pending,
          stale: true,
          cachedAt: new Date(cached.stale.cachedAt).toISOString(),
        };
      }
      throw error;
    }
    if (cached.generation !== null) {
      await cache.fill(def.name, rowKey, cached.generation, stored, fetchedAt);
    }
    return { record: resolveRow(def, stored, layers, offset), pending };
  }

  /**
   * The children of a parent (`{ table, where: { <foreign-key column>: value }, limit?, cursor? }`)
   * as the database will hold them once the backlog is drained (G4), in primary-key order, one
   * page at a time: the database's rows with that parent and the pending rows that name it
   * (found through the buffer's parent index, not by scanning the overlay), each resolved with
   * its pending layers as `read` resolves one row; a row a pending change moved to another
   * parent or deleted is left out. `nextCursor` asks for the next page (null after the last).
   */
  async readChildren(input: {
    readonly where: unknown;
    readonly [field: string]: unknown;
  }): Promise<ChildrenResult> {
    const { def, column, value, limit, after } = parseParentRead(input, this.options.registry);
    const pending = (
      await this.buffer.pendingChildren(def.name, column, JSON.stringify(value))
    ).filter(
      (rowKey) => after === null || compareKeys(JSON.parse(rowKey) as JsonValue[], after) > 0,
    );
    const { page, rows } = await this.sink.fetchChildren({
      table: def.name,
      column,
      value,
      after,
      limit,
      rowKeys: pending,
    });
    const databaseHasMore = page.length > limit;
    const lastOfPage = databaseHasMore
      ? (JSON.parse(page[limit - 1] as string) as JsonValue[])
      : null;
    const candidates = [
      ...new Set([
        ...page.slice(0, limit),
        ...pending.filter(
          (rowKey) =>
            lastOfPage === null || compareKeys(JSON.parse(rowKey) as JsonValue[], lastOfPage) <= 0,
        ),
      ]),
    ];
    const { layers, offset } = await this.buffer.overlays(def.name, candidates);
    const resolved: { key: JsonValue[]; record: Record<string, JsonValue>; pending: boolean }[] =
      [];
    for (const rowKey of candidates) {
      const rowLayers = layers.get(rowKey) ?? [];
      const record = resolveRow(
        def,
        rows.get(rowKey) ?? { record: null, version: null },
        rowLayers,
        offset,
      );
      if (record === null || JSON.stringify(record[column]) !== JSON.stringify(value)) continue;
      resolved.push({
        key: JSON.parse(rowKey) as JsonValue[],
        record,
        pending: rowLayers.length > 0,
      });
    }
    resolved.sort((a, b) => compareKeys(a.key, b.key));
    const shown = resolved.slice(0, limit);
    const more = databaseHasMore || resolved.length > limit;
    const last = shown.at(-1);
    // A page emptied by rows that moved away still leads on, after the database's last row.
    const nextCursor = !more
      ? null
      : last !== undefined
        ? cursorAfter(def, last.record)
        : Buffer.from(JSON.stringify(lastOfPage), 'utf8').toString('base64url');
    return {
      records: shown.map((r) => r.record),
      pending: shown.some((r) => r.pending),
      nextCursor,
    };
  }

  /** Where changesets stand, by the versions `write` returned (see `RedisBuffer.changesetStatus`). */
  changesetStatus(versions: readonly string[]): Promise<ChangesetStatus[]> {
    return this.buffer.changesetStatus(versions);
  }

  /** Drain until the backlog is empty or `deadline` (epoch ms) passes. */
  drain(deadline: number): Promise<DrainResult> {
    return this.drainer.drain(deadline);
  }

  /**
   * Delete tombstones of deleted rows that no change still waiting (in the backlog or among the
   * dead letters) can be older than, so that `spillway.row_versions` does not grow with every
   * row ever deleted. Runs only when the backlog is empty. G2 holds: a change older than a
   * pruned tombstone no longer exists anywhere. Returns how many went.
   */
  async pruneTombstones(limit?: number): Promise<number> {
    const floor = await this.buffer.tombstoneFloor();
    return floor === null ? 0 : await this.sink.pruneTombstones(floor, limit);
  }

  /**
   * The truth about the buffer and the drain (the `health` function, G8): `ok` only while the
   * backlog drains; `degraded` with the reasons when it does not, or the database is out of
   * reach, or the buffer fills, or the cache lost its data; `down` when writes are impossible.
   */
  async health(): Promise<Health> {
    const [stats, breaker, control, database, fault, readCache] = await Promise.allSettled([
      this.buffer.stats(),
      this.control.breakerStatus(),
      this.control.status(),
      this.sink.ping(),
      this.control.fault(),
      this.buffer.readCache.stats(),
    ]);
    const now = Date.now();
    const iso = (ms: number | undefined) =>
      ms === undefined ? undefined : new Date(ms).toISOString();
    const redisFailure = [stats, breaker, control, fault, readCache].find(
      (r) => r.status === 'rejected',
    );
    // A systemic fault (G7): the database answers, but refuses every drain until fixed (G8).
    const systemic = fault.status === 'fulfilled' ? fault.value : null;
    const s = stats.status === 'fulfilled' ? stats.value : undefined;
    const b = breaker.status === 'fulfilled' ? breaker.value : undefined;
    const { drain, meta } =
      control.status === 'fulfilled' ? control.value : { drain: {}, meta: {} };
    const { backlogLimit, backlogBytesLimit } = this.buffer.limits;
    const percentFull = s
      ? Math.floor(100 * Math.max(s.backlog / backlogLimit, s.backlogBytes / backlogBytesLimit))
      : -1;

    const down: string[] = [];
    const degraded: string[] = [];
    if (redisFailure !== undefined) down.push(`Redis is unreachable: ${reasonOf(redisFailure)}`);
    if (percentFull >= 100)
      down.push(`buffer ${percentFull}% full: writes are refused until the backlog drains`);
    else if (percentFull >= 80) degraded.push(`buffer ${percentFull}% full`);
    if (database.status === 'rejected')
      degraded.push(`database unreachable: ${reasonOf(database)}`);
    if (systemic !== null) {
      degraded.push(
        `systemic error: ${systemic.message}${systemic.table ? ` (table ${systemic.table})` : ''}; the drain is stopped until it is fixed`,
      );
    }
    if (b?.state === 'open') {
      degraded.push(
        `breaker open since ${iso(b.openSince ?? now)}: the drain waits for the database`,
      );
    }
    if (meta.lostAt !== undefined) {
      degraded.push(
        `cache data lost at ${iso(meta.lostAt)}: changes not yet drained and dead letters held by the lost cache are gone (acknowledge with the admin action acknowledge-cache-loss)`,
      );
    }
    const stalledFor = now - (drain.progressAt ?? now - (s?.oldestPendingMs ?? 0));
    if (s !== undefined && s.backlog > 0 && stalledFor > this.stallAfterMs) {
      const last = drain.stoppedBy
        ? ` (last drain at ${iso(drain.at)} stopped: ${drain.stoppedBy}${drain.error ? `: ${drain.error}` : ''})`
        : ' (no drain has run)';
      degraded.push(
        `backlog not draining for ${Math.round(stalledFor / 1000)} s${last}${drain.stoppedBy === 'fenced' ? ': the drainer is fenced' : ''}`,
      );
    }
    const reasons = [...down, ...degraded];
    return {
      status: down.length > 0 ? 'down' : degraded.length > 0 ? 'degraded' : 'ok',
      reasons,
      backlog: s?.backlog ?? -1,
      pendingChangesets: s?.pendingChangesets ?? -1,
      oldestPendingMs: s?.oldestPendingMs ?? -1,
      deadLetters: s?.deadLetters ?? -1,
      buffer: {
        changes: s?.backlog ?? -1,
        bytes: s?.backlogBytes ?? -1,
        changesLimit: backlogLimit,
        bytesLimit: backlogBytesLimit,
        percentFull,
      },
      breaker: b?.state ?? 'closed',
      ...(b?.openSince !== undefined ? { breakerOpenSince: iso(b.openSince) } : {}),
      lastDrain: {
        ...(drain.at !== undefined ? { at: iso(drain.at) } : {}),
        ...(drain.stoppedBy !== undefined ? { stoppedBy: drain.stoppedBy } : {}),
        ...(drain.progressAt !== undefined ? { progressAt: iso(drain.progressAt) } : {}),
        ...(drain.error !== undefined ? { error: drain.error } : {}),
      },
      readCache:
        readCache.status === 'fulfilled'
          ? readCache.value
          : { entries: -1, bytes: -1, bytesLimit: this.buffer.readCache.settings.maxBytes },
      cache: {
        ...(meta.lostAt !== undefined ? { dataLostAt: iso(meta.lostAt) } : {}),
        ...(meta.failoverAt !== undefined ? { failoverAt: iso(meta.failoverAt) } : {}),
      },
      checks: {
        redis:
          redisFailure === undefined ? { ok: true } : { ok: false, error: reasonOf(redisFailure) },
        database:
          database.status === 'rejected'
            ? { ok: false, error: reasonOf(database) }
            : systemic !== null
              ? { ok: false, error: `systemic error: ${systemic.message}` }
              : { ok: true },
      },
    };
  }

  /**
   * An operator has seen that the cache lost its data (health stops reporting it; the database
   * keeps the time in `spillway.drain_fence`).
   */
  async acknowledgeCacheLoss(): Promise<void> {
    await this.control.recordMeta({ lostAt: '', failoverAt: '' });
  }

  /** Dead letters in original order. */
  listDeadLetters(options: { limit?: number } = {}): Promise<DeadLetter[]> {
    return this.buffer.listDeadLetters(options);
  }

  /**
   * One page of dead letters in original order, bounded by `limit` and by `maxBytes` of JSON
   * (so an `admin` answer fits Lambda's response limit); pass `nextCursor` to get the next page.
   */
  pageDeadLetters(options: {
    limit: number;
    cursor?: string;
    maxBytes: number;
  }): Promise<{ deadLetters: DeadLetter[]; nextCursor: string | null }> {
    return this.buffer.pageDeadLetters(options);
  }

  /**
   * Put dead letters back into the backlog in their original order, with their original
   * versions, so that nothing written after them is overwritten (G2). Each is validated again
   * against today's table definitions first; if one fails, none is replayed (ValidationError
   * naming it). Returns the replayed ids.
   */
  async replayDeadLetters(selection: DeadLetterSelection): Promise<string[]> {
    const letters = await this.select(selection);
    // Every letter must still be valid under today's table definitions before any is replayed.
    const replays = letters.map((letter) => {
      try {
        return { letter, changes: this.buffer.revalidate(letter.changes) };
      } catch (error) {
        if (!(error instanceof ValidationError)) throw error;
        throw new ValidationError(
          `deadLetters[${letter.changesetId}].${error.path}`,
          `no longer valid under the current table definitions, nothing was replayed: ${error.message}`,
        );
      }
    });
    for (const { letter, changes } of replays) {
      await this.buffer.append(changes, {
        changesetId: letter.changesetId,
        version: letter.version,
      });
      // A crash between the two steps leaves a dead letter that was also replayed: replaying it
      // again is harmless, because its version is already applied.
      await this.buffer.removeDeadLetters([letter]);
    }
    return letters.map((l) => l.changesetId);
  }

  /** Delete dead letters for good. Returns the purged ids. */
  async purgeDeadLetters(selection: DeadLetterSelection): Promise<string[]> {
    const letters = await this.select(selection);
    await this.buffer.removeDeadLetters(letters);
    return letters.map((l) => l.changesetId);
  }

  private async select(selection: DeadLetterSelection): Promise<DeadLetter[]> {
    if ('all' in selection)
      return await this.buffer.listDeadLetters({ limit: Number.MAX_SAFE_INTEGER });
    const letters = await this.buffer.listDeadLetters({ changesetIds: selection.changesetIds });
    const found = new Set(letters.map((l) => l.changesetId));
    const missing = selection.changesetIds.filter((id) => !found.has(id));
    if (missing.length > 0)
      throw new NotFoundError(`no dead letter with changeset id ${missing.join(', ')}`);
    return letters;
  }
}

function parseReadRequest(
  input: unknown,
  registry: SchemaRegistry,
): { def: TableDef; key: Record<string, JsonValue> } {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) {
    throw new ValidationError('', 'expected an object { table, key }');
  }
  const { table } = input as { table?: unknown };
  if (typeof table !== 'string') throw new ValidationError('table', 'expected a table name');
  const def = registry.get(table);
  if (def === undefined)
    throw new ValidationError('table', `unknown table '${table.slice(0, 64)}'`);
  return { def, key: validateRowKey(def, (input as { key?: unknown }).key) };
}

function reasonOf(result: PromiseSettledResult<unknown>): string {
  if (result.status === 'fulfilled') return '';
  return messageOf(result.reason);
}
