/**
 * How the buffer's structures are stored in Redis, one encoder and one decoder each: a backlog
 * entry's changeset (`cs`, with where each change sits in it, which the overlay refers to), a
 * row's overlay layers, a dead letter and its index member, a read cache entry.
 * `redis-keys.ts` says which key holds which; the Lua scripts store these strings as they are.
 */
import { type Change, type JsonValue, rowKeyOf } from '../core/changeset.js';
import { coalesce, type PendingChangeset, type RowWrite } from '../core/coalesce.js';
import type { OverlayLayer, StoredRow } from '../core/overlay.js';
import type { SchemaRegistry } from '../core/schema.js';
import { sortableVersion, versionOf } from '../core/version.js';

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

/**
 * A change as the backlog stores it: without its key and row key, which follow from the record
 * or key and the table definition (a third less to store, send and parse).
 */
type StoredChange =
  | readonly ['upsert', string, Record<string, JsonValue>]
  | readonly ['patch', string, Record<string, JsonValue>, Record<string, JsonValue>]
  | readonly ['delete', string, Record<string, JsonValue>];

/**
 * A changeset as the backlog stores it: the `cs` field (JSON `{id, changes}`), and where each
 * change sits in it, as the overlay refers to it: `<byte offset>:<byte length>` (`write.lua`).
 */
export interface EncodedChangeset {
  readonly payload: string;
  readonly refs: readonly string[];
}

/**
 * The `cs` field of a backlog entry: the changeset id and its changes (JSON, byte for byte what
 * `JSON.stringify({ id, changes })` makes), with each change's place in it.
 */
export function encodeChangeset(changesetId: string, changes: readonly Change[]): EncodedChangeset {
  const head = `{"id":${JSON.stringify(changesetId)},"changes":[`;
  const parts: string[] = [];
  const refs: string[] = [];
  let at = Buffer.byteLength(head);
  for (const change of changes) {
    const part = JSON.stringify(encodeChange(change));
    const length = Buffer.byteLength(part);
    refs.push(`${at}:${length}`);
    parts.push(part);
    at += length + 1;
  }
  return { payload: `${head}${parts.join(',')}]}`, refs };
}

/**
 * A backlog entry (fields `cs`, `b`, `v`; see `redis-keys.ts`) as the changeset it holds. The
 * entry's version is its stream id, or `v` for a replayed dead letter.
 */
export function decodeEntry(
  streamId: string,
  fields: readonly string[],
  registry: SchemaRegistry,
): PendingChangeset {
  const field = (name: string): string | undefined => {
    const at = fields.indexOf(name);
    return at >= 0 && at % 2 === 0 ? fields[at + 1] : undefined;
  };
  const json = field('cs') ?? '{}';
  const payload = JSON.parse(json) as { id: string; changes: StoredChange[] };
  const replayed = field('v');
  return {
    streamId,
    version: replayed ?? versionOf(streamId),
    replayed: replayed !== undefined,
    charge: Number(field('b') ?? 0),
    bytes: Buffer.byteLength(json),
    changesetId: payload.id,
    changes: payload.changes.map((c) => decodeChange(c, registry)),
  };
}

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

/**
 * One layer of a row's overlay as `lua/overlay-read.lua` returns it: `[streamId, 'changes',
 * replayed version or '', ...the row's changes as stored in the changeset]` for an overlay value
 * that refers to its changes in the backlog entry, or `[streamId, 'layer', value]` for a value
 * written before overlays held references: `<replayed version>|<layer>`, the layer being
 * `["delete"]` or `[op, values]` (caches upgraded with pending changes still hold them).
 */
export type StoredLayer =
  | readonly [streamId: string, kind: 'changes', replayed: string, ...changes: string[]]
  | readonly [streamId: string, kind: 'layer', value: string];

/** A row's layers (see `StoredLayer`) in stream order, each the net effect of its changeset. */
export function decodeLayers(
  stored: readonly StoredLayer[],
  registry: SchemaRegistry,
): OverlayLayer[] {
  const layers: { order: bigint; layer: OverlayLayer }[] = [];
  for (const entry of stored) {
    const [streamId, kind] = entry;
    const order = versionOf(streamId);
    let replayed: string;
    let op: RowWrite['op'];
    let values: Record<string, JsonValue>;
    if (kind === 'layer') {
      const value = entry[2];
      const bar = value.indexOf('|');
      replayed = value.slice(0, bar);
      const layer = JSON.parse(value.slice(bar + 1)) as [
        RowWrite['op'],
        Record<string, JsonValue>?,
      ];
      op = layer[0];
      values = layer[1] ?? {};
    } else {
      replayed = entry[2];
      const changes = entry
        .slice(3)
        .map((change) => decodeChange(JSON.parse(change) as StoredChange, registry));
      const [row] = coalesce([{ streamId, version: order, changesetId: '', changes }]).rows;
      if (row === undefined) continue;
      op = row.op;
      values = { ...row.values };
    }
    layers.push({
      order: BigInt(order),
      layer: { streamId, version: replayed === '' ? order : replayed, op, values },
    });
  }
  return layers
    .sort((a, b) => (a.order < b.order ? -1 : a.order > b.order ? 1 : 0))
    .map((l) => l.layer);
}

/** A dead letter as the dead-letter hash holds it (JSON). */
export function encodeDeadLetter(letter: DeadLetter): string {
  return JSON.stringify(letter);
}

export function decodeDeadLetter(value: string): DeadLetter {
  return JSON.parse(value) as DeadLetter;
}

/**
 * A dead letter's member in the dead-letter index: `<version, zero-padded>:<changesetId>`, so
 * that the members sort lexicographically in original order.
 */
export function encodeIndexMember(letter: Pick<DeadLetter, 'version' | 'changesetId'>): string {
  return `${sortableVersion(letter.version)}:${letter.changesetId}`;
}

/** The version (unpadded) and changeset id an index member names. */
export function decodeIndexMember(member: string): { version: string; changesetId: string } {
  const colon = member.indexOf(':');
  return {
    version: BigInt(member.slice(0, colon)).toString(),
    changesetId: member.slice(colon + 1),
  };
}

/** A row as the read cache holds it (the part after `<generation>|<cachedAt>|`): JSON `{r, v}`. */
export function encodeCachedRow(row: StoredRow): string {
  return JSON.stringify({ r: row.record, v: row.version });
}

/**
 * One place of the read cache, `<generation>|<cachedAt ms>|<row>` once filled, or
 * `<generation>||` while reserved and not yet filled (both written by `lua/read-cache-place.lua`).
 */
export function decodeCacheEntry(value: string): {
  generation: string;
  cached: { row: StoredRow; cachedAt: number } | null;
} {
  const first = value.indexOf('|');
  const second = value.indexOf('|', first + 1);
  const generation = value.slice(0, first);
  if (second === first + 1) return { generation, cached: null };
  const { r, v } = JSON.parse(value.slice(second + 1)) as {
    r: Record<string, JsonValue> | null;
    v: string | null;
  };
  return {
    generation,
    cached: { row: { record: r, version: v }, cachedAt: Number(value.slice(first + 1, second)) },
  };
}
