/**
 * The engine as a library: what handlers, the local runner and tests call.
 * Pass connected clients in; this module opens no connection of its own.
 */
import type { Redis } from 'ioredis';
import { messageOf, NotFoundError, ValidationError } from './core/errors.js';
import type { SchemaRegistry } from './core/schema.js';
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
import { type ChildrenResult, type ReadResult, SpillwayReader } from './spillway-read.js';

export type {
  BreakerStatus,
  BufferStats,
  ChangesetStatus,
  ChildrenResult,
  DeadLetter,
  DrainResult,
  ReadResult,
  RedisBuffer,
  SpillwayReader,
};

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

/** What the read side needs: the buffer's, and the way to the database. */
export type ReaderOptions = BufferOptions & Pick<SpillwayOptions, 'pool' | 'sink' | 'dbSchema'>;

/**
 * The read side as `Spillway` builds it, for the `read` function: its `read`, `readChildren` and
 * `changesetStatus` are `Spillway`'s, without the drainer, drain control or operator actions.
 */
export function createReader(options: ReaderOptions): SpillwayReader {
  return new SpillwayReader(createBuffer(options), sinkOf(options), options.registry);
}

/** The sink over `options.pool`: the one `options.sink` builds, or a PostgresSink. */
function sinkOf(options: ReaderOptions): Sink {
  const sinkOptions: SinkOptions = {
    registry: options.registry,
    schema: options.dbSchema ?? D.dbSchema,
    buffer: options.prefix ?? D.prefix,
  };
  return options.sink?.(sinkOptions) ?? new PostgresSink(options.pool, sinkOptions);
}

export class Spillway {
  readonly buffer: RedisBuffer;
  readonly sink: Sink;
  readonly control: DrainControl;
  /** `read`, `readChildren` and `changesetStatus`. */
  readonly reader: SpillwayReader;
  private readonly drainer: Drainer;
  private readonly stallAfterMs: number;

  constructor(options: SpillwayOptions) {
    this.buffer = createBuffer(options);
    this.sink = sinkOf(options);
    this.reader = new SpillwayReader(this.buffer, this.sink, options.registry);
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

  /** The latest acknowledged state of a row, synced or not (G4): `SpillwayReader.read`. */
  read(input: unknown): Promise<ReadResult> {
    return this.reader.read(input);
  }

  /** The children of a parent, pending changes included (G4): `SpillwayReader.readChildren`. */
  readChildren(input: {
    readonly where: unknown;
    readonly [field: string]: unknown;
  }): Promise<ChildrenResult> {
    return this.reader.readChildren(input);
  }

  /** Where changesets stand, by the versions `write` returned (see `RedisBuffer.changesetStatus`). */
  changesetStatus(versions: readonly string[]): Promise<ChangesetStatus[]> {
    return this.reader.changesetStatus(versions);
  }

  /** Drain until the backlog is empty or `deadline` (epoch ms) passes. */
  drain(deadline: number): Promise<DrainResult> {
    return this.drainer.drain(deadline);
  }

  /**
   * Delete tombstones of deleted rows that no change still waiting (in the backlog or among the
   * dead letters) can be older than, so that the version tables do not grow with every
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

function reasonOf(result: PromiseSettledResult<unknown>): string {
  if (result.status === 'fulfilled') return '';
  return messageOf(result.reason);
}
