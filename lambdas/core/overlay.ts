/**
 * The read overlay (G4): what `read` adds to the database row while changes to it are pending.
 * Pure: the buffer stores and fetches the layers (`io/redis-codec.ts` encodes them), this module
 * resolves a row.
 *
 * A row's overlay holds one layer per pending changeset that touched it. Layers are resolved in
 * stream order by the rule the drain follows, so that `read` returns what the database will hold
 * once the backlog is drained:
 * - a layer whose version is not newer than the row's is skipped (a replayed dead letter older
 *   than what the row already holds, G2);
 * - an upsert replaces the whole row: a column it leaves out becomes NULL, except a column with a
 *   SQL default, which keeps the row's value, or takes its default when the row is new;
 * - a patch of a row that does not exist is skipped (the drain dead-letters it, G7);
 * - a delete makes the row absent.
 * A dead-lettered or settled changeset's layers are removed, so they leave no trace.
 */
import type { JsonValue } from './changeset.js';
import type { RowWrite } from './coalesce.js';
import type { TableDef } from './schema.js';
import { versionOf } from './version.js';

/** One pending changeset's net effect on one row. */
export interface OverlayLayer {
  /** Stream id of the changeset (its place in acknowledgement order). */
  readonly streamId: string;
  /** The version its changes carry (stream-space): its own stream id, or a replay's original. */
  readonly version: string;
  readonly op: RowWrite['op'];
  readonly values: Readonly<Record<string, JsonValue>>;
}

/** The database's row with the version its version table holds for it (null: never written). */
export interface StoredRow {
  readonly record: Record<string, JsonValue> | null;
  readonly version: string | null;
}

/**
 * The row the database will hold once these layers are drained.
 * @param offset the epoch's version offset (database version = stream-space version + offset),
 *   or null when the drainer has not yet agreed one with the database: then the cache began a
 *   new epoch, and every layer in it is newer than anything the database holds.
 */
export function resolveRow(
  def: TableDef,
  stored: StoredRow,
  layers: readonly OverlayLayer[],
  offset: bigint | null,
): Record<string, JsonValue> | null {
  let record = stored.record;
  let version = stored.version === null ? null : BigInt(stored.version);
  for (const layer of layers) {
    const effective = offset === null ? null : BigInt(layer.version) + offset;
    if (version !== null && (effective === null ? false : effective <= version)) continue;
    if (layer.op === 'delete') {
      record = null;
    } else if (layer.op === 'upsert') {
      record = upserted(def, layer.values, record);
    } else if (record === null) {
      continue;
    } else {
      record = { ...record, ...layer.values };
    }
    if (effective !== null) version = effective;
  }
  return record;
}

/**
 * Whether the layers decide the row without the database (during an outage): some layer
 * replaces or deletes the whole row, and no layer is a replay (which may be older than the
 * database's row). A column with a default that the deciding upsert leaves out reads as its
 * `defaultValue` (null for a computed one such as now()), since the database's row is unknown.
 */
export function resolvesWithoutDatabase(layers: readonly OverlayLayer[]): boolean {
  let decisive: OverlayLayer | undefined;
  for (const layer of layers) {
    if (layer.version !== versionOf(layer.streamId)) return false;
    if (layer.op !== 'patch') decisive = layer;
  }
  return decisive !== undefined;
}

function upserted(
  def: TableDef,
  values: Readonly<Record<string, JsonValue>>,
  before: Readonly<Record<string, JsonValue>> | null,
): Record<string, JsonValue> {
  const row: Record<string, JsonValue> = {};
  for (const [column, c] of Object.entries(def.columns)) {
    if (Object.hasOwn(values, column)) row[column] = values[column] ?? null;
    else if (c.hasDefault && before !== null) row[column] = before[column] ?? null;
    else if (c.hasDefault) row[column] = c.defaultValue ?? null;
    else row[column] = null;
  }
  return row;
}
