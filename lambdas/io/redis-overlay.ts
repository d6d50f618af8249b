/**
 * The read overlay (G4): one hash per row with a layer per pending changeset that touched it,
 * and the parent indexes that let a read by parent find pending children. A layer refers to
 * the row's changes inside the changeset's backlog entry rather than copying them, so a pending
 * change is stored once. Layers are written with their changeset (`RedisBacklog.append`) and
 * removed when it is settled or dead-lettered (`RedisBacklog.ack`); this part says which keys
 * and layers those are, and reads them, with the entries they refer to, in one script.
 */
import type { Redis } from 'ioredis';
import type { Change } from '../core/changeset.js';
import { coalesce, type PendingChangeset } from '../core/coalesce.js';
import type { OverlayLayer } from '../core/overlay.js';
import { parentEntriesOf } from '../core/parent-read.js';
import type { SchemaRegistry } from '../core/schema.js';
import { LuaScript } from './lua-script.js';
import { redisCall } from './redis.js';
import { decodeLayers, type StoredLayer } from './redis-codec.js';
import type { BufferKeys } from './redis-keys.js';

const pruneParentsScript = new LuaScript('prune-parents');
const overlayReadScript = new LuaScript('overlay-read');
const parentReadScript = new LuaScript('parent-read');

/**
 * Overlay layers, parent-index entries and changesets per settling script call: no call holds
 * Redis for long (G5).
 */
export const SETTLE_CHUNK = 1_000;

/** What appending a changeset writes beside its backlog entry. */
export interface LayerWrites {
  /**
   * One overlay hash per row the changeset touches, and that row's layer in the same order:
   * where the row's changes sit in the backlog entry's payload (`<offset>:<length>` each,
   * joined by `,`).
   */
  readonly overlayKeys: readonly string[];
  readonly layers: readonly string[];
  /** Parent indexes the rows belong in, and the row key added to each, in the same order. */
  readonly parentKeys: readonly string[];
  readonly parentMembers: readonly string[];
}

/** A row's pending layers, with the epoch's version offset (null until the drainer agreed one). */
export interface RowOverlay {
  readonly layers: readonly OverlayLayer[];
  readonly offset: bigint | null;
}

export class RedisOverlay {
  constructor(
    private readonly redis: Redis,
    private readonly keys: BufferKeys,
    private readonly registry: SchemaRegistry,
  ) {}

  /**
   * One layer per row: the places of the row's changes in the payload (`refs`, one per change,
   * from `encodeChangeset`), and the parents each row names once the changeset applied.
   */
  writesOf(changes: readonly Change[], refs: readonly string[]): LayerWrites {
    const rowRefs = new Map<string, string[]>();
    changes.forEach((change, i) => {
      const id = `${change.table}\u0000${change.rowKey}`;
      const list = rowRefs.get(id) ?? [];
      list.push(refs[i] as string);
      rowRefs.set(id, list);
    });
    const overlayKeys: string[] = [];
    const layers: string[] = [];
    const parentKeys: string[] = [];
    const parentMembers: string[] = [];
    for (const row of coalesce([{ streamId: '0-0', version: '0', changesetId: '', changes }])
      .rows) {
      overlayKeys.push(this.keys.overlay(row.table, row.rowKey));
      layers.push((rowRefs.get(`${row.table}\u0000${row.rowKey}`) ?? []).join(','));
      const def = this.registry.get(row.table);
      for (const { column, value } of def === undefined ? [] : parentEntriesOf(def, row)) {
        parentKeys.push(this.keys.parentIndex(row.table, column, value));
        parentMembers.push(row.rowKey);
      }
    }
    return { overlayKeys, layers, parentKeys, parentMembers };
  }

  /** The overlay keys of the rows a changeset touched, each once. */
  keysOf(changeset: PendingChangeset): string[] {
    const keys = new Set<string>();
    for (const change of changeset.changes)
      keys.add(this.keys.overlay(change.table, change.rowKey));
    return [...keys];
  }

  /**
   * The pending layers of several rows of one table, with the epoch's version offset, in one
   * script (`lua/overlay-read.lua`): atomic, and answering at maxmemory (G4).
   */
  async overlays(
    table: string,
    rowKeys: readonly string[],
  ): Promise<{ layers: Map<string, OverlayLayer[]>; offset: bigint | null }> {
    const reply = (await redisCall('read the overlay', () =>
      overlayReadScript.run(
        this.redis,
        [
          this.keys.backlog,
          this.keys.meta,
          ...rowKeys.map((rowKey) => this.keys.overlay(table, rowKey)),
        ],
        [],
      ),
    )) as [string, ...StoredLayer[][]];
    const [offset, ...rows] = reply;
    const layers = new Map<string, OverlayLayer[]>();
    rowKeys.forEach((rowKey, i) => {
      layers.set(rowKey, decodeLayers(rows[i] ?? [], this.registry));
    });
    return { layers, offset: offset === '' ? null : BigInt(offset) };
  }

  /** The pending layers of one row, in stream order, with the epoch's version offset (G4). */
  async overlay(table: string, rowKey: string): Promise<RowOverlay> {
    const { layers, offset } = await this.overlays(table, [rowKey]);
    return { layers: layers.get(rowKey) ?? [], offset };
  }

  /** Row keys of `table` with pending changes naming `value` (JSON) in `column`. */
  async pendingChildren(table: string, column: string, value: string): Promise<string[]> {
    return (await redisCall('read a parent index', () =>
      parentReadScript.run(this.redis, [this.keys.parentIndex(table, column, value)], []),
    )) as string[];
  }

  /** Take the rows of these changesets out of the parent indexes where nothing is pending. */
  async pruneParents(changesets: readonly PendingChangeset[]): Promise<void> {
    const pairs: [string, string, string][] = [];
    for (const changeset of changesets) {
      for (const change of changeset.changes) {
        const def = this.registry.get(change.table);
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
      await redisCall('prune parent indexes', () =>
        pruneParentsScript.run(
          this.redis,
          chunk.flatMap(([index, overlay]) => [index, overlay]),
          chunk.map(([, , member]) => member),
        ),
      );
    }
  }
}
