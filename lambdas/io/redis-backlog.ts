/**
 * The backlog: the stream of changesets in acknowledgement order and its two counters (changes
 * and bytes). Appending checks the limits (G5) and confirms with replicas (G1); the drainer reads
 * in order through one consumer group and acknowledges after commit (G4).
 */
import { randomUUID } from 'node:crypto';
import { setImmediate } from 'node:timers/promises';
import type { Redis } from 'ioredis';
import type { PendingChangeset } from '../core/coalesce.js';
import { BackpressureError, messageOf, UnavailableError } from '../core/errors.js';
import type { SchemaRegistry } from '../core/schema.js';
import { LuaScript } from './lua-script.js';
import { isOutOfMemory, redisCall } from './redis.js';
import { decodeEntry } from './redis-codec.js';
import { type BufferKeys, DRAIN_CONSUMER, DRAIN_GROUP } from './redis-keys.js';
import type { LayerWrites } from './redis-overlay.js';

const writeScript = new LuaScript('write');
const ackScript = new LuaScript('ack');
const groupScript = new LuaScript('group');

/**
 * What Redis spends beyond the bytes it stores, measured with `INFO memory` and rounded up (see
 * `chargeOf`): per stream entry (its share of a stream node), per overlay layer (a hash of its
 * own holding one small field, or a field in one), per parent index (a small hash) and per row
 * in it; and the allocator's size classes on top of the bytes themselves.
 */
const ENTRY_OVERHEAD_BYTES = 192;
const LAYER_OVERHEAD_BYTES = 128;
const PARENT_INDEX_OVERHEAD_BYTES = 128;
const PARENT_ENTRY_OVERHEAD_BYTES = 64;
const ALLOCATION_FACTOR = 1.1;

export interface BacklogSettings {
  readonly registry: SchemaRegistry;
  /** Pending changes past which appends are refused (G5). */
  readonly backlogLimit: number;
  /** What pending changesets may cost Redis, in bytes, past which appends are refused (G5). */
  readonly backlogBytesLimit: number;
  /** Replicas that must confirm a changeset before it is acknowledged (G1). */
  readonly replicaAcks: number;
  readonly replicaAckTimeoutMs: number;
}

/** A dead letter as `ack` files it: its changeset id, its index member and its JSON. */
export interface EncodedDeadLetter {
  readonly changesetId: string;
  readonly member: string;
  readonly json: string;
}

export class RedisBacklog {
  constructor(
    private readonly redis: Redis,
    private readonly keys: BufferKeys,
    private readonly options: BacklogSettings,
    /**
     * Frees what Redis may give up for writes (the read cache); resolves with whether anything
     * went. Called when Redis refuses an append for lack of memory, before the one retry.
     */
    private readonly freeMemory: () => Promise<boolean>,
  ) {}

  /**
   * Append a changeset with its overlay layers and parent-index entries, atomically; resolves
   * with its stream id once Redis (and the replicas asked for) hold it. When Redis is out of
   * memory, the read cache is dropped and the append tried once more, so that cached reads never
   * cause backpressure.
   * @throws BackpressureError past a limit or when Redis is out of memory (G5)
   */
  async append(
    changeset: { readonly payload: string; readonly changes: number },
    meta: { changesetId: string; version?: string },
    rows: LayerWrites,
  ): Promise<string> {
    const { payload } = changeset;
    const charge = chargeOf(payload, rows);
    const keys = [
      this.keys.backlog,
      this.keys.backlogChanges,
      this.keys.backlogBytes,
      this.keys.meta,
      ...rows.overlayKeys,
      ...rows.parentKeys,
    ];
    const args: (string | number)[] = [
      this.options.backlogLimit,
      this.options.backlogBytesLimit,
      changeset.changes,
      charge,
      payload,
      meta.version ?? '',
      randomUUID(),
      rows.layers.length,
      ...rows.layers,
      ...rows.parentMembers,
    ];
    const run = async () =>
      String(await redisCall('append a changeset', () => writeScript.run(this.redis, keys, args)));
    let id: string;
    try {
      id = await run().catch(async (error: unknown) => {
        if (!isOutOfMemory(error) || !(await this.freeMemory())) throw error;
        return await run();
      });
    } catch (error) {
      throw await this.refusal(error, charge);
    }
    const { replicaAcks, replicaAckTimeoutMs } = this.options;
    if (replicaAcks > 0) {
      // A WAIT that fails confirms nothing: the changeset is not acknowledged either way.
      const confirmed = await this.redis.wait(replicaAcks, replicaAckTimeoutMs).catch(() => 0);
      if (confirmed < replicaAcks) {
        throw new UnavailableError(
          'redis',
          `changeset ${meta.changesetId} reached the primary, but ${confirmed} of ${replicaAcks} replicas confirmed it within ${replicaAckTimeoutMs} ms, so it is not acknowledged; writing it again is safe, because changes carry whole values`,
        );
      }
    }
    return id;
  }

  /** The write script's refusals as BackpressureError; any other error as it is. */
  private async refusal(error: unknown, charge: number): Promise<unknown> {
    const message = messageOf(error);
    const { backlogLimit, backlogBytesLimit } = this.options;
    if (message.startsWith('BACKPRESSURE')) {
      const [, changes, bytes] = message.split(' ').map(Number);
      return new BackpressureError(
        changes ?? -1,
        backlogLimit,
        (bytes ?? 0) + charge > backlogBytesLimit
          ? `the backlog costs ${bytes} bytes of Redis; the limit is ${backlogBytesLimit}`
          : undefined,
      );
    }
    // Redis runs with noeviction: a full memory refuses writes, which is backpressure too (G5).
    if (isOutOfMemory(error)) {
      const changes = Number(
        (await this.redis.get(this.keys.backlogChanges).catch(() => null)) ?? -1,
      );
      return new BackpressureError(changes, backlogLimit, 'Redis is out of memory');
    }
    return error;
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
      reply = await redisCall('read the backlog', () =>
        this.redis.xreadgroup(
          'GROUP',
          DRAIN_GROUP,
          DRAIN_CONSUMER,
          'COUNT',
          count,
          'STREAMS',
          this.keys.backlog,
          from,
        ),
      );
    } catch (error) {
      if (!(error instanceof Error) || !error.message.startsWith('NOGROUP')) throw error;
      await redisCall('create the consumer group', () =>
        groupScript.run(this.redis, [this.keys.backlog], [DRAIN_GROUP]),
      );
      return await this.readGroup(count, from);
    }
    const streams = reply as [string, [string, string[] | null][]][] | null;
    const entries = streams?.[0]?.[1] ?? [];
    const batch: PendingChangeset[] = [];
    const orphans: string[] = [];
    for (const [i, [streamId, fields]] of entries.entries()) {
      if (fields === null) orphans.push(streamId);
      else batch.push(decodeEntry(streamId, fields, this.options.registry));
      // Parsing a large batch would hold the event loop while the drainer's transaction waits
      // for its next statement: let I/O through now and then.
      if (i % 64 === 63) await setImmediate();
    }
    // An entry deleted but still listed as delivered: already settled, only its ack was lost.
    if (orphans.length > 0) {
      await redisCall('acknowledge settled entries', () =>
        this.redis.xack(this.keys.backlog, DRAIN_GROUP, ...orphans),
      );
    }
    return batch;
  }

  /** The oldest changesets still in the backlog, delivered to a drainer or not. */
  async peek(count: number): Promise<PendingChangeset[]> {
    const entries = await redisCall('peek at the backlog', () =>
      this.redis.xrange(this.keys.backlog, '-', '+', 'COUNT', count),
    );
    return entries.map(([streamId, fields]) =>
      decodeEntry(streamId, fields, this.options.registry),
    );
  }

  /**
   * One atomic settling call (`lua/ack.lua`): take `changesets` off the backlog, file
   * `deadLetters`, and remove overlay layers (key, stream id).
   */
  async ack(
    changesets: readonly PendingChangeset[],
    deadLetters: readonly EncodedDeadLetter[],
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
    for (const letter of deadLetters) args.push(letter.changesetId, letter.member, letter.json);
    for (const [key, streamId] of layers) {
      keys.push(key);
      args.push(streamId);
    }
    await redisCall('settle changesets', () => ackScript.run(this.redis, keys, args));
  }

  /** Changesets in the backlog: one cheap command, for polling while waiting for work. */
  length(): Promise<number> {
    return redisCall('count the backlog', () => this.redis.xlen(this.keys.backlog));
  }

  /** The counters, the length and the oldest entry's stream id (undefined when empty). */
  async counts(): Promise<{ changes: number; bytes: number; length: number; oldest?: string }> {
    const [changes, bytes, length, oldest] = await redisCall('read the backlog counters', () =>
      Promise.all([
        this.redis.get(this.keys.backlogChanges),
        this.redis.get(this.keys.backlogBytes),
        this.redis.xlen(this.keys.backlog),
        this.redis.xrange(this.keys.backlog, '-', '+', 'COUNT', 1),
      ]),
    );
    const first = oldest[0]?.[0];
    return {
      changes: Number(changes ?? 0),
      bytes: Number(bytes ?? 0),
      length,
      ...(first === undefined ? {} : { oldest: first }),
    };
  }
}

/**
 * What a changeset costs Redis, in bytes: its stream entry, its overlay layers (each a reference
 * into the entry, under the row's key), the parent indexes it names (each counted once, although
 * an earlier changeset may have made it) and its rows in them (G5). An estimate from measurement
 * (`test/integration/large-backlog.test.ts` holds it against Redis's own accounting: never below
 * what Redis uses, and less than 1.5 times it), charged when written and refunded when settled.
 */
function chargeOf(payload: string, rows: LayerWrites): number {
  const bytes = (text: string) => Buffer.byteLength(text) * ALLOCATION_FACTOR;
  let charge = bytes(payload) + ENTRY_OVERHEAD_BYTES;
  rows.overlayKeys.forEach((key, i) => {
    charge += bytes(key) + bytes(rows.layers[i] ?? '') + LAYER_OVERHEAD_BYTES;
  });
  for (const key of new Set(rows.parentKeys)) charge += bytes(key) + PARENT_INDEX_OVERHEAD_BYTES;
  for (const member of rows.parentMembers) charge += bytes(member) + PARENT_ENTRY_OVERHEAD_BYTES;
  return Math.ceil(charge);
}
