/**
 * The buffer: the backlog of changesets in Redis, the read overlay, and the dead-letter store.
 * Writers append (G1, G5, G6); the drainer reads in order and settles after commit.
 */

import { randomUUID } from 'node:crypto';
import { setImmediate } from 'node:timers/promises';
import type { Redis } from 'ioredis';
import {
  type Change,
  type ChangesetLimits,
  type JsonValue,
  rowKeyOf,
  toWriteInput,
  validateChangeset,
} from '../core/changeset.js';
import { coalesce, type PendingChangeset } from '../core/coalesce.js';
import { BackpressureError, UnavailableError } from '../core/errors.js';
import { decodeLayers, encodeLayer, type OverlayLayer } from '../core/overlay.js';
import { parentEntriesOf } from '../core/parent-read.js';
import type { SchemaRegistry } from '../core/schema.js';
import { sortableVersion, timeOf, versionOf } from '../core/version.js';
import { LuaScript } from './lua-script.js';
import { toUnavailable } from './redis.js';
import { type BufferKeys, bufferKeys, DRAIN_CONSUMER, DRAIN_GROUP } from './redis-keys.js';

const writeScript = new LuaScript('write');
const ackScript = new LuaScript('ack');
const groupScript = new LuaScript('group');
const pruneParentsScript = new LuaScript('prune-parents');

export interface BufferOptions {
  readonly prefix: string;
  readonly registry: SchemaRegistry;
  readonly limits: ChangesetLimits;
  /** Pending changes past which writes are refused (G5). */
  readonly backlogLimit: number;
  /**
   * What pending changesets may cost Redis, in bytes (estimated by `chargeOf`), past which writes
   * are refused (G5): set below the cache's memory, so that backpressure comes before Redis runs
   * out of memory.
   */
  readonly backlogBytesLimit: number;
  /**
   * Replicas that must confirm a changeset before it is acknowledged (Redis `WAIT`), so that a
   * failover of the primary cannot lose an acknowledged write (G1). 0 where there are none.
   */
  readonly replicaAcks: number;
  /** How long to wait for those confirmations. */
  readonly replicaAckTimeoutMs: number;
}

/** A row's pending layers, with the epoch's version offset (null until the drainer agreed one). */
export interface RowOverlay {
  readonly layers: readonly OverlayLayer[];
  readonly offset: bigint | null;
}

/**
 * What Redis spends on a stream entry or an overlay layer beyond its bytes: a key, a hash
 * table entry, and the allocator's size classes (up to a quarter more than asked). Measured,
 * rounded up (see `chargeOf`).
 */
const OVERHEAD_BYTES = 256;
const ALLOCATION_FACTOR = 1.25;
/** Overlay layers and changesets per settling script call: no call holds Redis for long (G5). */
const SETTLE_CHUNK = 1_000;

/** A changeset the database refused, with its reason (G7). */
export interface DeadLetter {
  readonly changesetId: string;
  readonly version: string;
  readonly changes: readonly Change[];
  readonly reason: string;
  readonly sqlState: string | null;
  /** When it was dead-lettered (ISO-8601). */
  readonly deadAt: string;
  /** When it was first acknowledged to its writer (ISO-8601). */
  readonly writtenAt: string;
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

  constructor(
    private readonly redis: Redis,
    private readonly options: BufferOptions,
  ) {
    this.keys = bufferKeys(options.prefix);
    this.limits = {
      backlogLimit: options.backlogLimit,
      backlogBytesLimit: options.backlogBytesLimit,
    };
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
    let replies: [unknown, unknown][];
    try {
      const batch = this.redis
        .multi()
        .hget(this.keys.meta, 'since')
        .xinfo('STREAM', this.keys.backlog);
      for (const version of versions) {
        const member = sortableVersion(versionOf(version));
        batch
          .xrange(this.keys.backlog, version, version, 'COUNT', 1)
          .zrangebylex(this.keys.deadLetterIndex, `[${member}:`, `[${member};`, 'LIMIT', 0, 1);
      }
      replies = ((await batch.exec()) ?? []) as [unknown, unknown][];
    } catch (error) {
      throw toUnavailable(error);
    }
    const [[, since], [infoError, info]] = replies as [
      [unknown, string | null],
      [unknown, unknown[]],
    ];
    const lastIndex = Array.isArray(info) ? info.indexOf('last-generated-id') : -1;
    const lastId = infoError === null && lastIndex >= 0 ? String(info[lastIndex + 1]) : '0-0';
    const deadIds: (string | undefined)[] = [];
    const statuses: ChangesetStatus[] = versions.map((version, i) => {
      const [, entries] = replies[2 + 2 * i] as [unknown, unknown[]];
      const [, dead] = replies[3 + 2 * i] as [unknown, string[]];
      const member = dead[0];
      deadIds.push(member === undefined ? undefined : member.slice(member.indexOf(':') + 1));
      if (entries.length > 0) return { version, status: 'pending' };
      if (member !== undefined) return { version, status: 'dead-lettered' };
      const v = BigInt(versionOf(version));
      if (since === null || v < BigInt(versionOf(since)) || v > BigInt(versionOf(lastId))) {
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
   * Append validated changes. A replayed dead letter keeps its original `version`, so that it
   * cannot overwrite anything written after it (G2).
   */
  async append(
    changes: readonly Change[],
    meta: { changesetId: string; version?: string },
  ): Promise<string> {
    const payload = JSON.stringify({ id: meta.changesetId, changes: changes.map(encodeChange) });
    const keys = [
      this.keys.backlog,
      this.keys.backlogChanges,
      this.keys.backlogBytes,
      this.keys.meta,
    ];
    const layers: string[] = [];
    const parentKeys: string[] = [];
    const parentMembers: string[] = [];
    // One layer per row: the changeset's net effect on it; and the parents it names.
    for (const row of coalesce([{ streamId: '0-0', version: '0', changesetId: '', changes }])
      .rows) {
      keys.push(this.keys.overlay(row.table, row.rowKey));
      layers.push(encodeLayer(row));
      const def = this.options.registry.get(row.table);
      for (const { column, value } of def === undefined ? [] : parentEntriesOf(def, row)) {
        parentKeys.push(this.keys.parentIndex(row.table, column, value));
        parentMembers.push(row.rowKey);
      }
    }
    keys.push(...parentKeys);
    const args: (string | number)[] = [
      this.options.backlogLimit,
      this.options.backlogBytesLimit,
      changes.length,
      chargeOf(payload, [...layers, ...parentMembers]),
      payload,
      meta.version ?? '',
      randomUUID(),
      layers.length,
      ...layers,
      ...parentMembers,
    ];
    let id: string;
    try {
      id = String(await writeScript.run(this.redis, keys, args));
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      if (message.startsWith('BACKPRESSURE')) {
        const [, backlog, bytes] = message.split(' ').map(Number);
        const { backlogLimit, backlogBytesLimit } = this.options;
        throw new BackpressureError(
          backlog ?? -1,
          backlogLimit,
          (bytes ?? 0) + chargeOf(payload, [...layers, ...parentMembers]) > backlogBytesLimit
            ? `the backlog costs ${bytes} bytes of Redis; the limit is ${backlogBytesLimit}`
            : undefined,
        );
      }
      // Redis runs with noeviction: a full memory refuses writes, which is backpressure too (G5).
      if (message.startsWith('OOM')) {
        const backlog = Number(
          (await this.redis.get(this.keys.backlogChanges).catch(() => null)) ?? -1,
        );
        throw new BackpressureError(backlog, this.options.backlogLimit, 'Redis is out of memory');
      }
      throw toUnavailable(error);
    }
    const { replicaAcks, replicaAckTimeoutMs } = this.options;
    if (replicaAcks > 0) {
      const confirmed = await this.redis
        .wait(replicaAcks, replicaAckTimeoutMs)
        .catch(toUnavailable);
      if (typeof confirmed !== 'number' || confirmed < replicaAcks) {
        throw new UnavailableError(
          'redis',
          `changeset ${meta.changesetId} reached the primary, but ${typeof confirmed === 'number' ? confirmed : 0} of ${replicaAcks} replicas confirmed it within ${replicaAckTimeoutMs} ms, so it is not acknowledged; writing it again is safe, because changes carry whole values`,
        );
      }
    }
    return id;
  }

  /** Changesets delivered to the drainer but never settled, oldest first, after `afterId`. */
  readPending(count: number, afterId: string): Promise<PendingChangeset[]> {
    return this.readGroup(count, afterId);
  }

  /** Changesets never delivered yet, oldest first. */
  readNew(count: number): Promise<PendingChangeset[]> {
    return this.readGroup(count, '>');
  }

  private async readGroup(count: number, from: string): Promise<PendingChangeset[]> {
    let reply: unknown;
    try {
      reply = await this.redis.xreadgroup(
        'GROUP',
        DRAIN_GROUP,
        DRAIN_CONSUMER,
        'COUNT',
        count,
        'STREAMS',
        this.keys.backlog,
        from,
      );
    } catch (error) {
      if (!(error instanceof Error) || !error.message.startsWith('NOGROUP'))
        throw toUnavailable(error);
      await this.createGroup();
      return await this.readGroup(count, from);
    }
    const streams = reply as [string, [string, string[] | null][]][] | null;
    const entries = streams?.[0]?.[1] ?? [];
    const batch: PendingChangeset[] = [];
    const orphans: string[] = [];
    for (const [i, [streamId, fields]] of entries.entries()) {
      if (fields === null) orphans.push(streamId);
      else batch.push(parseEntry(streamId, fields, this.options.registry));
      // Parsing a large batch would hold the event loop while the drainer's transaction waits
      // for its next statement: let I/O through now and then.
      if (i % 64 === 63) await setImmediate();
    }
    // An entry deleted but still listed as delivered: already settled, only its ack was lost.
    if (orphans.length > 0) await this.redis.xack(this.keys.backlog, DRAIN_GROUP, ...orphans);
    return batch;
  }

  /** The oldest changesets still in the backlog, delivered to a drainer or not. */
  async peek(count: number): Promise<PendingChangeset[]> {
    try {
      const entries = await this.redis.xrange(this.keys.backlog, '-', '+', 'COUNT', count);
      return entries.map(([streamId, fields]) =>
        parseEntry(streamId, fields, this.options.registry),
      );
    } catch (error) {
      throw toUnavailable(error);
    }
  }

  private async createGroup(): Promise<void> {
    try {
      await groupScript.run(this.redis, [this.keys.backlog], [DRAIN_GROUP]);
    } catch (error) {
      throw toUnavailable(error);
    }
  }

  /**
   * After commit: remove the changesets' overlay layers, then take them off the backlog (G4).
   * Done in bounded script calls, so that settling a large batch never holds Redis for long.
   */
  async settle(changesets: readonly PendingChangeset[]): Promise<void> {
    const layers: [string, string][] = [];
    for (const changeset of changesets) {
      for (const key of this.overlayKeysOf(changeset)) layers.push([key, changeset.streamId]);
    }
    for (let at = 0; at < layers.length; at += SETTLE_CHUNK) {
      await this.runSettle([], [], layers.slice(at, at + SETTLE_CHUNK));
    }
    for (let at = 0; at < changesets.length; at += SETTLE_CHUNK) {
      await this.runSettle(changesets.slice(at, at + SETTLE_CHUNK), [], []);
    }
    await this.pruneParents(changesets);
  }

  /** Take the rows of these changesets out of the parent indexes where nothing is pending. */
  private async pruneParents(changesets: readonly PendingChangeset[]): Promise<void> {
    const pairs: [string, string, string][] = [];
    for (const changeset of changesets) {
      for (const change of changeset.changes) {
        const def = this.options.registry.get(change.table);
        if (def === undefined || change.op === 'delete') continue;
        const values = change.op === 'upsert' ? change.record : change.set;
        for (const { column, value } of parentEntriesOf(def, { op: change.op, values })) {
          pairs.push([
            this.keys.parentIndex(change.table, column, value),
            this.keys.overlay(change.table, change.rowKey),
            change.rowKey,
          ]);
        }
      }
    }
    for (let at = 0; at < pairs.length; at += SETTLE_CHUNK) {
      const chunk = pairs.slice(at, at + SETTLE_CHUNK);
      try {
        await pruneParentsScript.run(
          this.redis,
          chunk.flatMap(([index, overlay]) => [index, overlay]),
          chunk.map(([, , member]) => member),
        );
      } catch (error) {
        throw toUnavailable(error);
      }
    }
  }

  /** Row keys of `table` with pending changes naming `value` (JSON) in `column`. */
  async pendingChildren(table: string, column: string, value: string): Promise<string[]> {
    try {
      return await this.redis.smembers(this.keys.parentIndex(table, column, value));
    } catch (error) {
      throw toUnavailable(error);
    }
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
    await this.runSettle(
      [changeset],
      [letter],
      this.overlayKeysOf(changeset).map((key) => [key, changeset.streamId]),
    );
    await this.pruneParents([changeset]);
  }

  private overlayKeysOf(changeset: PendingChangeset): string[] {
    const keys = new Set<string>();
    for (const change of changeset.changes)
      keys.add(this.keys.overlay(change.table, change.rowKey));
    return [...keys];
  }

  private async runSettle(
    changesets: readonly PendingChangeset[],
    deadLetters: readonly DeadLetter[],
    layers: readonly (readonly [string, string])[],
  ): Promise<void> {
    const keys = [
      this.keys.backlog,
      this.keys.backlogChanges,
      this.keys.backlogBytes,
      this.keys.deadLetters,
      this.keys.deadLetterIndex,
    ];
    const args: (string | number)[] = [DRAIN_GROUP, changesets.length];
    for (const c of changesets) args.push(c.streamId, c.changes.length, c.charge ?? 0);
    args.push(deadLetters.length);
    for (const letter of deadLetters) {
      args.push(letter.changesetId, indexMember(letter), JSON.stringify(letter));
    }
    for (const [key, streamId] of layers) {
      keys.push(key);
      args.push(streamId);
    }
    try {
      await ackScript.run(this.redis, keys, args);
    } catch (error) {
      throw toUnavailable(error);
    }
  }

  /** The pending layers of several rows of one table, with the epoch's version offset (G4). */
  async overlays(
    table: string,
    rowKeys: readonly string[],
  ): Promise<{ layers: Map<string, OverlayLayer[]>; offset: bigint | null }> {
    let reply: [unknown, unknown][] | null;
    try {
      const batch = this.redis.multi().hget(this.keys.meta, 'offset');
      for (const rowKey of rowKeys) batch.hgetall(this.keys.overlay(table, rowKey));
      reply = (await batch.exec()) as [unknown, unknown][] | null;
    } catch (error) {
      throw toUnavailable(error);
    }
    const [[, offset], ...hashes] = reply as [
      [unknown, string | null],
      ...[unknown, Record<string, string>][],
    ];
    const layers = new Map<string, OverlayLayer[]>();
    rowKeys.forEach((rowKey, i) => {
      layers.set(rowKey, decodeLayers(hashes[i]?.[1] ?? {}));
    });
    return { layers, offset: offset === null ? null : BigInt(offset) };
  }

  /** The pending layers of one row, in stream order, with the epoch's version offset (G4). */
  async overlay(table: string, rowKey: string): Promise<RowOverlay> {
    let reply: [unknown, unknown][] | null;
    try {
      reply = (await this.redis
        .multi()
        .hgetall(this.keys.overlay(table, rowKey))
        .hget(this.keys.meta, 'offset')
        .exec()) as [unknown, unknown][] | null;
    } catch (error) {
      throw toUnavailable(error);
    }
    const [[, hash], [, offset]] = reply as [
      [unknown, Record<string, string>],
      [unknown, string | null],
    ];
    return { layers: decodeLayers(hash), offset: offset === null ? null : BigInt(offset) };
  }

  /**
   * Below which version no change can ever arrive again, or null while the backlog holds
   * changesets (a replayed dead letter among them carries an older version than its place in
   * the log). With an empty backlog that is the oldest dead letter (a replay keeps its version)
   * or, without any, now; in the database's versions (shifted by the epoch's offset), and null
   * too while the drainer has not agreed an offset. Read in one MULTI, so that a replay cannot
   * slip between the looks.
   */
  async tombstoneFloor(): Promise<string | null> {
    let reply: [unknown, unknown][] | null;
    try {
      reply = (await this.redis
        .multi()
        .xlen(this.keys.backlog)
        .zrangebylex(this.keys.deadLetterIndex, '-', '+', 'LIMIT', 0, 1)
        .time()
        .hget(this.keys.meta, 'offset')
        .exec()) as [unknown, unknown][] | null;
    } catch (error) {
      throw toUnavailable(error);
    }
    const [[, length], [, firstDead], [, time], [, offset]] = reply as [
      [unknown, number],
      [unknown, string[]],
      [unknown, [string, string]],
      [unknown, string | null],
    ];
    if (length > 0 || offset === null) return null;
    const member = firstDead[0];
    const now = Number(time[0]) * 1000 + Math.floor(Number(time[1]) / 1000);
    const floor =
      member !== undefined ? member.slice(0, member.indexOf(':')) : versionOf(`${now}-0`);
    return (BigInt(floor) + BigInt(offset)).toString();
  }

  /** Changesets in the backlog: one cheap command, for polling while waiting for work. */
  async pendingChangesets(): Promise<number> {
    try {
      return await this.redis.xlen(this.keys.backlog);
    } catch (error) {
      throw toUnavailable(error);
    }
  }

  async stats(): Promise<BufferStats> {
    try {
      const [backlog, bytes, length, oldest, dead] = await Promise.all([
        this.redis.get(this.keys.backlogChanges),
        this.redis.get(this.keys.backlogBytes),
        this.redis.xlen(this.keys.backlog),
        this.redis.xrange(this.keys.backlog, '-', '+', 'COUNT', 1),
        this.redis.zcard(this.keys.deadLetterIndex),
      ]);
      const first = oldest[0]?.[0];
      return {
        backlog: Number(backlog ?? 0),
        backlogBytes: Number(bytes ?? 0),
        pendingChangesets: length,
        oldestPendingMs: first === undefined ? 0 : Math.max(0, Date.now() - timeOf(first)),
        deadLetters: dead,
      };
    } catch (error) {
      throw toUnavailable(error);
    }
  }

  // --- dead-letter store ---

  /** Dead letters in original order, from the oldest. */
  async listDeadLetters(
    options: { limit?: number; changesetIds?: readonly string[] } = {},
  ): Promise<DeadLetter[]> {
    try {
      let ids: string[];
      if (options.changesetIds) {
        ids = [...options.changesetIds];
      } else {
        const members = await this.redis.zrangebylex(
          this.keys.deadLetterIndex,
          '-',
          '+',
          'LIMIT',
          0,
          options.limit ?? 100,
        );
        ids = members.map((m) => m.slice(m.indexOf(':') + 1));
      }
      if (ids.length === 0) return [];
      const values = await this.redis.hmget(this.keys.deadLetters, ...ids);
      const letters = values.flatMap((v) => (v === null ? [] : [JSON.parse(v) as DeadLetter]));
      return letters.sort((a, b) => indexMember(a).localeCompare(indexMember(b)));
    } catch (error) {
      throw toUnavailable(error);
    }
  }

  /**
   * One page of dead letters in original order, after `cursor` (from the oldest without one):
   * at most `limit`, and no more than `maxBytes` of JSON (but always one, when any is left), so
   * that an answer stays within Lambda's 6 MB response limit whatever the letters' size. The
   * next page starts at `nextCursor`, null after the last.
   */
  async pageDeadLetters(options: {
    readonly limit: number;
    readonly cursor?: string;
    readonly maxBytes: number;
  }): Promise<{ deadLetters: DeadLetter[]; nextCursor: string | null }> {
    const start =
      options.cursor === undefined
        ? '-'
        : `(${Buffer.from(options.cursor, 'base64url').toString('utf8')}`;
    let members: string[];
    let values: (string | null)[];
    try {
      members = await this.redis.zrangebylex(
        this.keys.deadLetterIndex,
        start,
        '+',
        'LIMIT',
        0,
        options.limit + 1,
      );
      const page = members.slice(0, options.limit);
      values =
        page.length === 0
          ? []
          : await this.redis.hmget(
              this.keys.deadLetters,
              ...page.map((m) => m.slice(m.indexOf(':') + 1)),
            );
    } catch (error) {
      throw toUnavailable(error);
    }
    const deadLetters: DeadLetter[] = [];
    let bytes = 0;
    let last: string | undefined;
    for (const [i, value] of values.entries()) {
      const member = members[i] as string;
      if (value !== null) {
        bytes += Buffer.byteLength(value);
        if (deadLetters.length > 0 && bytes > options.maxBytes) break;
        deadLetters.push(JSON.parse(value) as DeadLetter);
      }
      last = member;
    }
    const more = last !== undefined && last !== members.at(-1);
    return {
      deadLetters,
      nextCursor: more ? Buffer.from(last as string, 'utf8').toString('base64url') : null,
    };
  }

  /** Remove dead letters (after replay, or on an operator's purge). Returns how many existed. */
  async removeDeadLetters(letters: readonly DeadLetter[]): Promise<number> {
    if (letters.length === 0) return 0;
    try {
      const [[, removed]] = (await this.redis
        .multi()
        .hdel(this.keys.deadLetters, ...letters.map((l) => l.changesetId))
        .zrem(this.keys.deadLetterIndex, ...letters.map(indexMember))
        .exec()) as [[unknown, number]];
      return removed;
    } catch (error) {
      throw toUnavailable(error);
    }
  }
}

/**
 * A change as the log stores it: without its key and row key, which follow from the record or
 * key and the table definition (a third less to store, send and parse).
 */
type StoredChange =
  | readonly ['upsert', string, Record<string, JsonValue>]
  | readonly ['patch', string, Record<string, JsonValue>, Record<string, JsonValue>]
  | readonly ['delete', string, Record<string, JsonValue>];

function encodeChange(change: Change): StoredChange {
  if (change.op === 'upsert') return ['upsert', change.table, change.record];
  if (change.op === 'patch') return ['patch', change.table, change.key, change.set];
  return ['delete', change.table, change.key];
}

function decodeChange(stored: StoredChange, registry: SchemaRegistry): Change {
  const [op, table, values] = stored;
  const def = registry.get(table);
  if (def === undefined) {
    // A table whose definition was removed since: read the change as it was written, so that
    // the drainer dead-letters it (the sink refuses unknown tables) instead of wedging on it.
    // The key of an upsert is unknown without the definition; patch and delete keys were
    // stored in primary-key order, as rowKeyOf lists them.
    const key = op === 'upsert' ? {} : values;
    const rowKey = JSON.stringify(Object.values(key));
    if (op === 'upsert') return { op, table, key, rowKey, record: values };
    if (op === 'patch') return { op, table, key, rowKey, set: stored[3] };
    return { op, table, key, rowKey };
  }
  if (op === 'upsert') {
    const key: Record<string, JsonValue> = {};
    for (const column of def.primaryKey) key[column] = values[column] ?? null;
    return { op, table, key, rowKey: rowKeyOf(def, key), record: values };
  }
  if (op === 'patch')
    return { op, table, key: values, rowKey: rowKeyOf(def, values), set: stored[3] };
  return { op, table, key: values, rowKey: rowKeyOf(def, values) };
}

function parseEntry(
  streamId: string,
  fields: readonly string[],
  registry: SchemaRegistry,
): PendingChangeset {
  const field = (name: string): string | undefined => {
    const at = fields.indexOf(name);
    return at >= 0 && at % 2 === 0 ? fields[at + 1] : undefined;
  };
  const payload = JSON.parse(field('cs') ?? '{}') as { id: string; changes: StoredChange[] };
  const replayed = field('v');
  return {
    streamId,
    version: replayed ?? versionOf(streamId),
    replayed: replayed !== undefined,
    charge: Number(field('b') ?? 0),
    changesetId: payload.id,
    changes: payload.changes.map((c) => decodeChange(c, registry)),
  };
}

function indexMember(letter: Pick<DeadLetter, 'version' | 'changesetId'>): string {
  return `${sortableVersion(letter.version)}:${letter.changesetId}`;
}

/**
 * What a changeset costs Redis, in bytes: its stream entry, its overlay layers and its entries
 * in the parent indexes (passed with the layers) (G5). An
 * estimate from measurement (`test/integration/backpressure.test.ts` holds it against Redis's
 * own accounting), charged when written and refunded when settled.
 */
export function chargeOf(payload: string, layers: readonly string[]): number {
  const cost = (text: string) =>
    Math.ceil(Buffer.byteLength(text) * ALLOCATION_FACTOR) + OVERHEAD_BYTES;
  let bytes = cost(payload);
  for (const layer of layers) bytes += cost(layer);
  return bytes;
}
