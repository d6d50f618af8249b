/**
 * The read cache (G4, G5): recently read database rows in Redis, so that `read` of a synced row
 * is answered without the database while it is fresh, and, during a database outage, still
 * answered (marked stale) while it is within the stale window. The rows are the database's
 * (`StoredRow`, with their row versions); `read` resolves the row's pending overlay layers on
 * them as on a row fetched from the database, so writes overlay the cache and never need to
 * touch it.
 *
 * Why a cached row is never older than the database's (G4): a miss first *reserves* the row's
 * place (`lua/read-cache-place.lua` reserve), which carries a generation, and fetches the row only
 * after; the fill (`lua/read-cache-place.lua` fill) stores it only if the place still carries that
 * generation. Settling a changeset invalidates its rows' places (`lua/settle-rows.lua`)
 * after its commit and before its overlay layers go. So a row fetched before a commit is either
 * refused (the place went) or stored while the commit's layers are still pending, and the
 * invalidation removes it before they go. `read` takes the overlay before the cache, so it
 * never pairs a cached row with an overlay that lost layers since.
 *
 * Bounded, and never at the expense of writes (G5): entries charge an estimated byte counter,
 * the oldest go past `maxBytes`, everything past the stale window goes, the keys expire when
 * nobody fills them, reserving and filling are refused at maxmemory (the read goes on without
 * the cache), and a write that Redis refuses for lack of memory drops the whole cache
 * (`lua/read-cache-drop.lua`) and is tried once more (`RedisBacklog.append`).
 */
import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { StoredRow } from '../core/overlay.js';
import { LuaScript } from './lua-script.js';
import { isOutOfMemory, isRedisUnavailable, redisCall } from './redis.js';
import { decodeCacheEntry, encodeCachedRow } from './redis-codec.js';
import type { BufferKeys } from './redis-keys.js';

const placeScript = new LuaScript('read-cache-place');
const dropScript = new LuaScript('read-cache-drop');

export interface ReadCacheSettings {
  /** How long a cached row answers `read` without the database, in ms. 0: always ask it. */
  readonly ttlMs: number;
  /** How long after it was cached a row still answers during a database outage, in ms. */
  readonly staleMs: number;
  /** What the cache may cost Redis, in bytes (estimated); 0 turns the cache off. */
  readonly maxBytes: number;
}

/** A row as the cache holds it: the database's, and when it was fetched (ms). */
export interface CachedRow {
  readonly row: StoredRow;
  readonly cachedAt: number;
}

/** What the cache knows of a row before the database is asked. */
export type CacheLookup =
  /** Fresh: answer with it, without the database. */
  | { readonly kind: 'fresh'; readonly cached: CachedRow }
  /**
   * Not fresh: ask the database, then `fill` with `generation` (null: do not fill). `stale` is
   * a row still within the stale window, for when the database is out of reach.
   */
  | {
      readonly kind: 'miss';
      readonly generation: string | null;
      readonly stale: CachedRow | null;
    };

/** What `health` reports of the cache. */
export interface ReadCacheStats {
  /** Rows cached or reserved. */
  readonly entries: number;
  readonly bytes: number;
  readonly bytesLimit: number;
}

export class RedisReadCache {
  private readonly cacheKeys: readonly [string, string, string];

  constructor(
    private readonly redis: Redis,
    keys: BufferKeys,
    readonly settings: ReadCacheSettings,
  ) {
    this.cacheKeys = [keys.readCache, keys.readCacheAge, keys.readCacheBytes];
  }

  /**
   * The row's place in the cache: fresh, or a miss with the generation to fill with (its place
   * reserved first when it had none) and the stale row, if any. Never fails the read: at
   * maxmemory, or when Redis refuses, it is a miss without generation.
   */
  async lookup(table: string, rowKey: string): Promise<CacheLookup> {
    const none: CacheLookup = { kind: 'miss', generation: null, stale: null };
    if (this.settings.maxBytes === 0) return none;
    const field = fieldOf(table, rowKey);
    const value = await redisCall('read the read cache', () =>
      this.redis.hget(this.cacheKeys[0], field),
    );
    const now = Date.now();
    if (value !== null) {
      const { generation, cached } = decodeCacheEntry(value);
      const age = cached === null ? Number.POSITIVE_INFINITY : now - cached.cachedAt;
      if (cached !== null && age < this.settings.ttlMs) return { kind: 'fresh', cached };
      // The place exists, so no change to the row was settled since its generation was made.
      return { kind: 'miss', generation, stale: age < this.settings.staleMs ? cached : null };
    }
    const generation = await this.tolerated(() =>
      placeScript.run(this.redis, this.cacheKeys, [
        'reserve',
        field,
        randomUUID(),
        now,
        this.settings.maxBytes,
        this.keepMs(),
      ]),
    );
    return {
      kind: 'miss',
      generation: generation === null ? null : String(generation),
      stale: null,
    };
  }

  /**
   * Store a row fetched from the database after `lookup` gave `generation`; `fetchedAt` is when
   * the query began. Refused (false) when a change to the row was settled since, or at
   * maxmemory.
   */
  async fill(
    table: string,
    rowKey: string,
    generation: string,
    row: StoredRow,
    fetchedAt: number,
  ): Promise<boolean> {
    const stored = await this.tolerated(() =>
      placeScript.run(this.redis, this.cacheKeys, [
        'fill',
        fieldOf(table, rowKey),
        generation,
        fetchedAt,
        this.settings.maxBytes,
        this.keepMs(),
        encodeCachedRow(row),
      ]),
    );
    return stored === 1;
  }

  /** The cache's keys, in the order its scripts take them (`lua/settle-rows.lua` too). */
  get keys(): readonly string[] {
    return this.cacheKeys;
  }

  /** A row's field in the cache. */
  field(table: string, rowKey: string): string {
    return fieldOf(table, rowKey);
  }

  /** Drop the whole cache to free memory for writes. Returns the number of places dropped. */
  async drop(): Promise<number> {
    return Number(
      await redisCall('drop the read cache', () => dropScript.run(this.redis, this.cacheKeys, [])),
    );
  }

  async stats(): Promise<ReadCacheStats> {
    const [entries, bytes] = await redisCall('read the read cache counters', () =>
      Promise.all([this.redis.hlen(this.cacheKeys[0]), this.redis.get(this.cacheKeys[2])]),
    );
    return {
      entries,
      bytes: Math.max(0, Number(bytes ?? 0)),
      bytesLimit: this.settings.maxBytes,
    };
  }

  /** Entries, and the keys when nobody fills them, go after the longer of the two windows. */
  private keepMs(): number {
    return Math.max(this.settings.ttlMs, this.settings.staleMs, 1);
  }

  /**
   * A reservation or a fill, which the read does without when Redis refuses it for lack of
   * memory or cannot be reached: the cache never fails a read. Any other failure is a defect.
   */
  private async tolerated(script: () => Promise<unknown>): Promise<unknown> {
    try {
      return await script();
    } catch (error) {
      if (isRedisUnavailable(error) || isOutOfMemory(error)) return null;
      throw error;
    }
  }
}

/** A row's field in the cache's hash and age index. */
function fieldOf(table: string, rowKey: string): string {
  return `${table}:${rowKey}`;
}
