/**
 * The engine's read side (G4): one row as the database will hold it once the backlog is drained,
 * the children of a parent, and where changesets stand, over the buffer and the sink. `Spillway`
 * answers these through one; the `read` function builds one alone (`createReader`, through
 * `getReader` in `runtime/container.ts`), so that its bundle leaves out the drainer, drain
 * control and the operator actions it never runs.
 */
import { type JsonValue, rowKeyOf, validateRowKey } from './core/changeset.js';
import { UnavailableError, ValidationError } from './core/errors.js';
import { resolveRow, resolvesWithoutDatabase } from './core/overlay.js';
import { compareKeys, cursorAfter, parseParentRead } from './core/parent-read.js';
import type { SchemaRegistry, TableDef } from './core/schema.js';
import type { ChangesetStatus, RedisBuffer } from './io/redis-buffer.js';
import type { Sink } from './io/sink.js';

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

export class SpillwayReader {
  constructor(
    private readonly buffer: RedisBuffer,
    private readonly sink: Sink,
    private readonly registry: SchemaRegistry,
  ) {}

  /**
   * The latest acknowledged state of a row, synced or not (G4): the database's row, from the
   * read cache while it is fresh, with the pending layers resolved on it by the drain's own rule
   * (`core/overlay.ts`). During a database outage a row whose pending changes replace or delete
   * it whole still answers, and so does a row cached within the stale window (`stale: true`).
   */
  async read(input: unknown): Promise<ReadResult> {
    const { def, key } = parseReadRequest(input, this.registry);
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
    const { def, column, value, limit, after } = parseParentRead(input, this.registry);
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
