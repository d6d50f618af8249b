/**
 * The buffer: the backlog of changesets in Redis (`redis-backlog.ts`), the read overlay
 * (`redis-overlay.ts`), the dead-letter store (`redis-dead-letters.ts`) and the read cache
 * (`redis-read-cache.ts`), stored as `redis-codec.ts` encodes them under the keys of
 * `redis-keys.ts`. Writers append (G1, G5, G6); the drainer reads in order and settles after
 * commit (G4). This facade composes the parts and holds what spans them: a write, settling,
 * dead-lettering, and the looks across them.
 */
import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import {
  type Change,
  type ChangesetLimits,
  toWriteInput,
  validateChangeset,
} from '../core/changeset.js';
import type { PendingChangeset } from '../core/coalesce.js';
import type { OverlayLayer } from '../core/overlay.js';
import type { SchemaRegistry } from '../core/schema.js';
import { sortableVersion, timeOf, versionOf } from '../core/version.js';
import { LuaScript } from './lua-script.js';
import { redisCall } from './redis.js';
import { RedisBacklog } from './redis-backlog.js';
import {
  type DeadLetter,
  decodeIndexMember,
  encodeChangeset,
  encodeDeadLetter,
  encodeIndexMember,
} from './redis-codec.js';
import { RedisDeadLetters } from './redis-dead-letters.js';
import { type BufferKeys, bufferKeys } from './redis-keys.js';
import { RedisOverlay, type RowOverlay, SETTLE_CHUNK } from './redis-overlay.js';
import { type ReadCacheSettings, RedisReadCache } from './redis-read-cache.js';

export type { DeadLetter } from './redis-codec.js';
export type { RowOverlay } from './redis-overlay.js';

const changesetStatusScript = new LuaScript('changeset-status');
const tombstoneFloorScript = new LuaScript('tombstone-floor');

/** What a buffer is built with, defaults resolved (`createBuffer` in `spillway.ts` resolves them). */
export interface BufferSettings {
  readonly prefix: string;
  readonly registry: SchemaRegistry;
  readonly limits: ChangesetLimits;
  /** Pending changes past which writes are refused (G5). */
  readonly backlogLimit: number;
  /**
   * What pending changesets may cost Redis, in bytes (estimated), past which writes are refused
   * (G5): set below the cache's memory, so that backpressure comes before Redis runs out of
   * memory.
   */
  readonly backlogBytesLimit: number;
  /**
   * Replicas that must confirm a changeset before it is acknowledged (Redis `WAIT`), so that a
   * failover of the primary cannot lose an acknowledged write (G1). 0 where there are none.
   */
  readonly replicaAcks: number;
  /** How long to wait for those confirmations. */
  readonly replicaAckTimeoutMs: number;
  readonly readCache: ReadCacheSettings;
}

/** Where one changeset stands (see `RedisBuffer.changesetStatus`). */
export interface ChangesetStatus {
  readonly version: string;
  readonly status: 'pending' | 'applied' | 'dead-lettered' | 'unknown';
  /** With `dead-lettered`: the changeset and the database's reason. */
  readonly changesetId?: string;
  readonly reason?: string;
  readonly sqlState?: string | null;
}

export interface BufferStats {
  readonly backlog: number;
  /** What the pending changesets cost Redis, in bytes (estimated). */
  readonly backlogBytes: number;
  readonly pendingChangesets: number;
  readonly oldestPendingMs: number;
  readonly deadLetters: number;
}

export class RedisBuffer {
  readonly keys: BufferKeys;
  /** The backlog limits (G5), for health. */
  readonly limits: { readonly backlogLimit: number; readonly backlogBytesLimit: number };
  private readonly backlog: RedisBacklog;
  private readonly readOverlay: RedisOverlay;
  private readonly deadLetters: RedisDeadLetters;
  /** Recently read database rows (`Spillway.read`); settling invalidates, writes drop it at OOM. */
  readonly readCache: RedisReadCache;

  constructor(
    private readonly redis: Redis,
    private readonly options: BufferSettings,
  ) {
    this.keys = bufferKeys(options.prefix);
    this.limits = {
      backlogLimit: options.backlogLimit,
      backlogBytesLimit: options.backlogBytesLimit,
    };
    this.readCache = new RedisReadCache(redis, this.keys, options.readCache);
    this.backlog = new RedisBacklog(
      redis,
      this.keys,
      options,
      async () => (await this.readCache.drop()) > 0,
    );
    this.readOverlay = new RedisOverlay(redis, this.keys, options.registry);
    this.deadLetters = new RedisDeadLetters(redis, this.keys);
  }

  /** Validate and append one changeset; resolves once Redis holds it (the acknowledgement). */
  async write(input: unknown): Promise<{ accepted: number; changesetId: string; version: string }> {
    const changes = validateChangeset(input, this.options.registry, this.options.limits);
    const changesetId = randomUUID();
    const version = await this.append(changes, { changesetId });
    return { accepted: changes.length, changesetId, version };
  }

  /**
   * Where each changeset stands, by the version `write` returned (its stream id), in O(log n)
   * per version and without keeping anything per changeset beyond the backlog and the dead
   * letters: `pending` while the backlog holds it, `dead-lettered` (with the reason) while the
   * dead-letter store does, `applied` once neither does, and `unknown` for a version older than
   * the cache's epoch (the cache lost its data since: whether it was drained before cannot be
   * told) or newer than anything written. A replayed dead letter is pending again under a new
   * version, which `replay` does not return: its old version reads `applied`.
   */
  async changesetStatus(versions: readonly string[]): Promise<ChangesetStatus[]> {
    const reply = (await redisCall('read changeset statuses', () =>
      changesetStatusScript.run(
        this.redis,
        [this.keys.backlog, this.keys.meta, this.keys.deadLetterIndex],
        versions.flatMap((version) => [version, sortableVersion(versionOf(version))]),
      ),
    )) as [string, string, ...(number | string)[]];
    const [since, lastId, ...looks] = reply;
    const deadIds: (string | undefined)[] = [];
    const statuses: ChangesetStatus[] = versions.map((version, i) => {
      const pending = looks[2 * i] === 1;
      const member = looks[2 * i + 1] as string;
      deadIds.push(member === '' ? undefined : decodeIndexMember(member).changesetId);
      if (pending) return { version, status: 'pending' };
      if (member !== '') return { version, status: 'dead-lettered' };
      const v = BigInt(versionOf(version));
      if (since === '' || v < BigInt(versionOf(since)) || v > BigInt(versionOf(lastId))) {
        return { version, status: 'unknown' };
      }
      return { version, status: 'applied' };
    });
    const dead = deadIds.filter((id): id is string => id !== undefined);
    if (dead.length === 0) return statuses;
    const letters = await this.listDeadLetters({ changesetIds: dead });
    const reasons = new Map(letters.map((l) => [l.changesetId, l]));
    return statuses.map((status, i) => {
      const letter = reasons.get(deadIds[i] ?? '');
      return status.status === 'dead-lettered' && letter !== undefined
        ? {
            ...status,
            changesetId: letter.changesetId,
            reason: letter.reason,
            sqlState: letter.sqlState,
          }
        : status;
    });
  }

  /**
   * Validate changes again against the current table definitions and limits (a dead letter may
   * predate a change of them). @throws ValidationError
   */
  revalidate(changes: readonly Change[]): Change[] {
    return validateChangeset(
      { changes: changes.map(toWriteInput) },
      this.options.registry,
      this.options.limits,
    );
  }

  /**
   * Append validated changes with their overlay layers. A replayed dead letter keeps its
   * original `version`, so that it cannot overwrite anything written after it (G2).
   */
  append(
    changes: readonly Change[],
    meta: { changesetId: string; version?: string },
  ): Promise<string> {
    const { payload, refs } = encodeChangeset(meta.changesetId, changes);
    return this.backlog.append(
      { payload, changes: changes.length },
      meta,
      this.readOverlay.writesOf(changes, refs),
    );
  }

  /** Changesets delivered to the drainer but never settled, oldest first, after `afterId`. */
  readPending(count: number, afterId: string): Promise<PendingChangeset[]> {
    return this.backlog.readPending(count, afterId);
  }

  /** Changesets never delivered yet, oldest first. */
  readNew(count: number): Promise<PendingChangeset[]> {
    return this.backlog.readNew(count);
  }

  /** The oldest changesets still in the backlog, delivered to a drainer or not. */
  peek(count: number): Promise<PendingChangeset[]> {
    return this.backlog.peek(count);
  }

  /**
   * After commit: settle the changesets' rows (out of the read cache, then their overlay layers,
   * then out of the parent indexes once nothing is pending for them; see `RedisOverlay.settle`),
   * then take the changesets off the backlog (G4). Done in bounded script calls, so that
   * settling a large batch never holds Redis for long.
   */
  async settle(changesets: readonly PendingChangeset[]): Promise<void> {
    await this.readOverlay.settle(changesets, this.readCache);
    for (let at = 0; at < changesets.length; at += SETTLE_CHUNK) {
      await this.backlog.ack(changesets.slice(at, at + SETTLE_CHUNK), [], []);
    }
  }

  /** Row keys of `table` with pending changes naming `value` (JSON) in `column`. */
  pendingChildren(table: string, column: string, value: string): Promise<string[]> {
    return this.readOverlay.pendingChildren(table, column, value);
  }

  /**
   * Move one changeset the database refused to the dead-letter store with its reason (G7), and
   * remove its overlay layers, so that it leaves no trace in `read` (G4). One atomic call.
   */
  async deadLetter(
    changeset: PendingChangeset,
    reason: { readonly reason: string; readonly sqlState: string | null },
  ): Promise<void> {
    const letter: DeadLetter = {
      changesetId: changeset.changesetId,
      version: changeset.version,
      changes: changeset.changes,
      reason: reason.reason,
      sqlState: reason.sqlState,
      deadAt: new Date().toISOString(),
      writtenAt: new Date(timeOf(changeset.streamId)).toISOString(),
    };
    await this.backlog.ack(
      [changeset],
      [
        {
          changesetId: letter.changesetId,
          member: encodeIndexMember(letter),
          json: encodeDeadLetter(letter),
        },
      ],
      this.readOverlay.layersOf(changeset),
    );
    // The layers went with the letter; this takes the rows out of the parent indexes (and out
    // of the read cache, which holds nothing of theirs: the database did not change).
    await this.readOverlay.settle([changeset], this.readCache);
  }

  /** The pending layers of several rows of one table, with the epoch's version offset (G4). */
  overlays(
    table: string,
    rowKeys: readonly string[],
  ): Promise<{ layers: Map<string, OverlayLayer[]>; offset: bigint | null }> {
    return this.readOverlay.overlays(table, rowKeys);
  }

  /** The pending layers of one row, in stream order, with the epoch's version offset (G4). */
  overlay(table: string, rowKey: string): Promise<RowOverlay> {
    return this.readOverlay.overlay(table, rowKey);
  }

  /**
   * Below which version no change can ever arrive again, or null while the backlog holds
   * changesets (a replayed dead letter among them carries an older version than its place in
   * the backlog). With an empty backlog that is the oldest dead letter (a replay keeps its
   * version) or, without any, now; in the database's versions (shifted by the epoch's offset),
   * and null too while the drainer has not agreed an offset. Read in one script, so that a
   * replay cannot slip between the looks (and it answers at maxmemory).
   */
  async tombstoneFloor(): Promise<string | null> {
    const reply = (await redisCall('read the tombstone floor', () =>
      tombstoneFloorScript.run(
        this.redis,
        [this.keys.backlog, this.keys.deadLetterIndex, this.keys.meta],
        [],
      ),
    )) as [number, string, string, string, string];
    const [length, member, seconds, micros, offset] = reply;
    if (length > 0 || offset === '') return null;
    const now = Number(seconds) * 1000 + Math.floor(Number(micros) / 1000);
    const floor = member !== '' ? decodeIndexMember(member).version : versionOf(`${now}-0`);
    return (BigInt(floor) + BigInt(offset)).toString();
  }

  /** Changesets in the backlog: one cheap command, for polling while waiting for work. */
  pendingChangesets(): Promise<number> {
    return this.backlog.length();
  }

  async stats(): Promise<BufferStats> {
    const [counts, deadLetters] = await Promise.all([
      this.backlog.counts(),
      this.deadLetters.count(),
    ]);
    return {
      backlog: counts.changes,
      backlogBytes: counts.bytes,
      pendingChangesets: counts.length,
      oldestPendingMs:
        counts.oldest === undefined ? 0 : Math.max(0, Date.now() - timeOf(counts.oldest)),
      deadLetters,
    };
  }

  /** Dead letters in original order, from the oldest. */
  listDeadLetters(
    options: { limit?: number; changesetIds?: readonly string[] } = {},
  ): Promise<DeadLetter[]> {
    return this.deadLetters.list(options);
  }

  /** One page of dead letters in original order (see `RedisDeadLetters.page`). */
  pageDeadLetters(options: {
    readonly limit: number;
    readonly cursor?: string;
    readonly maxBytes: number;
  }): Promise<{ deadLetters: DeadLetter[]; nextCursor: string | null }> {
    return this.deadLetters.page(options);
  }

  /** Remove dead letters (after replay, or on an operator's purge). Returns how many existed. */
  removeDeadLetters(letters: readonly DeadLetter[]): Promise<number> {
    return this.deadLetters.remove(letters);
  }
}
