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
import { parentColumns, parentEntriesOf } from '../core/parent-read.js';
import type { SchemaRegistry, TableDef } from '../core/schema.js';
import { LuaScript } from './lua-script.js';
import { redisCall } from './redis.js';
import { decodeLayers, type StoredLayer } from './redis-codec.js';
import type { BufferKeys } from './redis-keys.js';

const settleRowsScript = new LuaScript('settle-rows');
const overlayReadScript = new LuaScript('overlay-read');
const parentReadScript = new LuaScript('parent-read');

/**
 * Rows, or changesets, per settling script call: no call holds Redis for long (G5).
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
  /** Per table, the columns its rows are indexed under as children (`parentColumns`). */
  private readonly parentColumns: ReadonlyMap<string, readonly string[]>;

  constructor(
    private readonly redis: Redis,
    private readonly keys: BufferKeys,
    private readonly registry: SchemaRegistry,
  ) {
    this.parentColumns = new Map(
      registry.names().map((name) => [name, parentColumns(registry.get(name) as TableDef)]),
    );
  }

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

  /** The overlay key and layer (its stream id) of each row a changeset touched, each once. */
  layersOf(changeset: PendingChangeset): [key: string, streamId: string][] {
    const keys = new Set<string>();
    for (const change of changeset.changes)
      keys.add(this.keys.overlay(change.table, change.rowKey));
    return [...keys].map((key) => [key, changeset.streamId]);
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

  /**
   * Settle the rows of these changesets, each whole and in bounded script calls
   * (`lua/settle-rows.lua`): out of the read cache (`cache`: its keys and a row's field in it),
   * their layers out of the overlay, and the rows out of the parent indexes their changes named
   * once nothing is pending for them (G4). A row's keys are built and sent once, however many
   * changesets touched it.
   */
  async settle(
    changesets: readonly PendingChangeset[],
    cache: { readonly keys: readonly string[]; field(table: string, rowKey: string): string },
  ): Promise<void> {
    const rows = new Map<string, SettledRow>();
    for (const changeset of changesets) {
      for (const change of changeset.changes) {
        const id = `${change.table}\u0000${change.rowKey}`;
        let row = rows.get(id);
        if (row === undefined) {
          row = { table: change.table, rowKey: change.rowKey, streamIds: [], parents: [] };
          rows.set(id, row);
        }
        if (row.streamIds.at(-1) !== changeset.streamId) row.streamIds.push(changeset.streamId);
        if (change.op === 'delete') continue;
        const values = change.op === 'upsert' ? change.record : change.set;
        for (const column of this.parentColumns.get(change.table) ?? []) {
          const value = values[column];
          if (value === undefined || value === null) continue;
          const index = this.keys.parentIndex(change.table, column, JSON.stringify(value));
          if (!row.parents.includes(index)) row.parents.push(index);
        }
      }
    }
    // Calls of at most SETTLE_CHUNK rows and 3 x SETTLE_CHUNK keys and arguments in all.
    let chunk: SettledRow[] = [];
    let strings = 0;
    const send = async (): Promise<void> => {
      // Grouped by how many parent indexes they name, as the script takes them.
      const groups = new Map<number, SettledRow[]>();
      for (const row of chunk) {
        const group = groups.get(row.parents.length);
        if (group === undefined) groups.set(row.parents.length, [row]);
        else group.push(row);
      }
      const keys = [...cache.keys];
      const args: (string | number)[] = [];
      for (const [parents, group] of groups) {
        args.push(parents, group.length);
        for (const row of group) {
          keys.push(this.keys.overlay(row.table, row.rowKey), ...row.parents);
          args.push(cache.field(row.table, row.rowKey), row.streamIds.join(','));
          if (parents > 0) args.push(row.rowKey);
        }
      }
      chunk = [];
      strings = 0;
      await redisCall('settle rows', () => settleRowsScript.run(this.redis, keys, args));
    };
    for (const row of rows.values()) {
      const cost = 3 + 2 * row.parents.length;
      if (chunk.length === SETTLE_CHUNK || strings + cost > 3 * SETTLE_CHUNK) await send();
      chunk.push(row);
      strings += cost;
    }
    if (chunk.length > 0) await send();
  }
}

/** A row of changesets being settled: the layers that go, and the parent indexes it names. */
interface SettledRow {
  readonly table: string;
  readonly rowKey: string;
  readonly streamIds: string[];
  /** Parent index keys, each once (a row names a few parents at most). */
  readonly parents: string[];
}
