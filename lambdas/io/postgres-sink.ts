/**
 * The sink: applies coalesced batches to PostgreSQL through RDS Proxy (locally PgBouncer in
 * transaction mode), one transaction per batch (G3), fenced against stale drainers.
 */
import { type JsonValue, rowKeyOf } from '../core/changeset.js';
import type { CoalescedBatch, RowWrite } from '../core/coalesce.js';
import { toDatabaseError } from '../core/db-errors.js';
import { FencedError, RejectedChangeError } from '../core/errors.js';
import type { StoredRow } from '../core/overlay.js';
import { boundText } from '../core/reasons.js';
import type { SchemaRegistry, TableDef } from '../core/schema.js';
import {
  buildExistenceChecks,
  buildStatements,
  FENCE_SQL,
  ident,
  keyColumnFromJson,
  moveOldVersions,
  qualifiedName,
  type VersionTable,
  versionTableOf,
} from '../core/sql.js';
import { versionOf } from '../core/version.js';
import {
  inTransaction,
  type TransactionBounds,
  type TransactionPool,
  type TransactionQuery,
} from './postgres-transaction.js';
import type {
  CacheIdentity,
  ChildrenRequest,
  EpochAgreement,
  PreparedBatch,
  Sink,
} from './sink.js';

export type { CacheIdentity, EpochAgreement, PreparedBatch };

export interface SinkOptions {
  readonly registry: SchemaRegistry;
  /** PostgreSQL schema of the user tables. */
  readonly schema: string;
  /** Name of the buffer, for the fencing row. */
  readonly buffer: string;
}

export class PostgresSink implements Sink {
  /**
   * Where versions are kept: the version table of every table of the registry, then the
   * `spillway.row_versions` of releases before them (what a later drain moves out of it).
   */
  private readonly versionTables: readonly Pick<VersionTable, 'name' | 'version' | 'deleted'>[];

  constructor(
    private readonly pool: TransactionPool,
    private readonly options: SinkOptions,
  ) {
    this.versionTables = [
      ...options.registry
        .names()
        .map((name) => versionTableOf(options.registry.get(name) as TableDef, options.schema)),
      { name: 'spillway.row_versions', version: 'version', deleted: 'deleted' },
    ];
  }

  /** The table definitions the sink writes by. */
  get registry(): SchemaRegistry {
    return this.options.registry;
  }

  /**
   * Build the statements of a batch (CPU only: the drainer does it while the database works),
   * with its versions shifted by the epoch's `offset`.
   */
  prepare(batch: CoalescedBatch, offset: bigint): PreparedBatch {
    const { registry, schema } = this.options;
    if (batch.rejection !== undefined) return { batch, statements: [], maxVersion: '0' };
    // The backlog may hold changes to a table whose definition was removed since (G7): such a
    // change can never apply, so the batch is refused and bisection dead-letters it.
    const unknown = batch.rows.find((row) => registry.get(row.table) === undefined);
    if (unknown !== undefined) {
      const rejection = `change to table ${unknown.table}, which the table definitions no longer include`;
      return { batch: { ...batch, rejection }, statements: [], maxVersion: '0' };
    }
    const rows = offset === 0n ? batch.rows : batch.rows.map((row) => shifted(row, offset));
    let maxVersion = 0n;
    for (const row of rows) {
      const version = BigInt(row.version);
      if (version > maxVersion) maxVersion = version;
    }
    // Existence checks read the database as it was before this batch, so they run first.
    return {
      batch,
      statements: [
        ...buildExistenceChecks(rows, registry, schema),
        ...buildStatements(rows, registry, schema),
      ],
      maxVersion: maxVersion.toString(),
    };
  }

  /**
   * Agree the epoch with the database before a drain's first batch, and take the fence with
   * `token` so that no drainer of an earlier epoch commits after this point (G1, G2).
   *
   * - The database saw no epoch yet: this one is adopted as it is (offset 0).
   * - It saw this epoch: its offset stands; a new replication id is reported as a failover.
   * - It saw another: the cache lost its data (a new node, a failover to an empty replica,
   *   FLUSHALL). The new epoch's versions start at `since`, whatever the new node's clock says;
   *   the offset puts them above every version the database holds, so new writes are never
   *   taken for older ones.
   * Returns 'token-behind' when the database holds `token` or a larger one (the cache lost its
   * token counter too): the caller advances the counter and agrees again.
   */
  async agreeEpoch(
    cache: CacheIdentity,
    token: string,
    timeoutMs: number,
  ): Promise<EpochAgreement> {
    let agreement: EpochAgreement | undefined;
    await this.transaction({ timeoutMs }, async (query) => {
      const found = await query(
        `SELECT token::text, epoch, version_offset::text AS offset, max_version::text, replid
FROM spillway.drain_fence WHERE buffer = $1 FOR UPDATE`,
        [this.options.buffer],
      );
      const row = found.rows[0] as
        | {
            token: string;
            epoch: string | null;
            offset: string;
            max_version: string;
            replid: string | null;
          }
        | undefined;
      if (row !== undefined && BigInt(row.token) >= BigInt(token)) {
        agreement = { kind: 'token-behind', seen: row.token };
        return;
      }
      let maxVersion = row?.max_version;
      if (row === undefined) {
        // A buffer the database never saw: its rows may still carry versions of another one,
        // in the version tables, or in spillway.row_versions from before them.
        const maxima = this.versionTables.map((vt) => `SELECT max(${vt.version}) FROM ${vt.name}`);
        const max = await query(
          `SELECT coalesce(greatest(${maxima.map((m) => `(${m})`).join(', ')}), 0)::text AS v`,
        );
        maxVersion = (max.rows[0] as { v: string }).v;
      }
      const cacheLost = row?.epoch != null && row.epoch !== cache.epoch;
      const adopt = row === undefined || cacheLost;
      const floor = BigInt(versionOf(cache.since));
      const offset = adopt
        ? bigMax(0n, BigInt(maxVersion ?? '0') - floor + 1n)
        : BigInt(row?.offset ?? '0');
      const failover =
        !cacheLost && row?.replid != null && cache.replid !== null && row.replid !== cache.replid;
      await query(
        `INSERT INTO spillway.drain_fence AS f (buffer, token, epoch, version_offset, max_version, replid, cache_lost_at, failover_at)
VALUES ($1, $2::bigint, $3, $4::bigint, $5::bigint, $6, CASE WHEN $7 THEN now() END, CASE WHEN $8 THEN now() END)
ON CONFLICT (buffer) DO UPDATE SET token = EXCLUDED.token, epoch = EXCLUDED.epoch,
  version_offset = EXCLUDED.version_offset, replid = EXCLUDED.replid,
  cache_lost_at = coalesce(EXCLUDED.cache_lost_at, f.cache_lost_at),
  failover_at = coalesce(EXCLUDED.failover_at, f.failover_at)`,
        [
          this.options.buffer,
          token,
          cache.epoch,
          offset.toString(),
          maxVersion ?? '0',
          cache.replid,
          cacheLost,
          failover,
        ],
      );
      await this.moveOldVersions(query);
      agreement = { kind: 'agreed', offset, cacheLost, failover };
    });
    if (agreement === undefined) throw new Error('epoch agreement ended without an answer');
    return agreement;
  }

  /**
   * Apply one prepared batch in one transaction. Throws, as `core/db-errors.ts` classifies the
   * failure: RejectedChangeError when the database refuses a change (the caller isolates it),
   * SystemicDatabaseError for a fault of the whole system (a missing column, table or
   * privilege), UnavailableError for anything that may pass (connection, timeout, proxy); and
   * FencedError when a newer drainer has taken over.
   */
  async apply(prepared: PreparedBatch, fenceToken: string, timeoutMs: number): Promise<void> {
    const { batch, statements } = prepared;
    if (batch.rejection !== undefined) throw new RejectedChangeError(batch.rejection, undefined);
    await this.transaction({ timeoutMs }, async (query) => {
      const fence = await query(FENCE_SQL, [this.options.buffer, fenceToken, prepared.maxVersion]);
      if (fence.rowCount === 0) {
        throw new FencedError(`drainer with token ${fenceToken} was superseded by a newer one`);
      }
      for (const statement of statements) {
        const result = await query<{ row_key: string }>(statement.text, statement.values);
        if (statement.op === 'patch' && result.rows.length > 0) {
          const missing = result.rows.map((r) => r.row_key).join(', ');
          throw new RejectedChangeError(
            boundText(`patch of a row that does not exist: ${statement.table} ${missing}`),
            undefined,
          );
        }
      }
    });
  }

  /**
   * The row as the database holds it, with values as JSON (timestamps as ISO-8601), and the
   * version its version table holds for it, within `timeoutMs`.
   */
  async fetchRow(
    table: string,
    key: Readonly<Record<string, JsonValue>>,
    // The version table is keyed by `key`'s typed columns; the JSON text is not needed here.
    _rowKey: string,
    timeoutMs = 3_000,
  ): Promise<StoredRow> {
    const def = this.options.registry.get(table);
    if (def === undefined) throw new Error(`no table definition for ${table}`);
    const vt = versionTableOf(def, this.options.schema);
    const on = (alias: string) =>
      def.primaryKey
        .map((c, i) => `${alias}.${ident(c)} = $${i + 1}::${def.columns[c]?.type ?? 'text'}`)
        .join(' AND ');
    // Bounded like ping(): during an outage `read` answers from the overlay or fails fast, and
    // behind a lock the server gives up too, instead of leaving a backend waiting (G7).
    const found = await this.transaction({ timeoutMs }, async (query) => {
      const result = await query(
        `SELECT rv.${vt.version}::text AS "${VERSION_COLUMN}", t.* FROM (SELECT 1) AS one
LEFT JOIN ${qualifiedName(this.options.schema, table)} AS t ON ${on('t')}
LEFT JOIN ${vt.name} AS rv ON ${on('rv')}`,
        def.primaryKey.map((c) => key[c]),
      );
      return result.rows[0] as Record<string, unknown>;
    });
    const { [VERSION_COLUMN]: version, ...row } = found;
    const exists = def.primaryKey.every((c) => row[c] !== null && row[c] !== undefined);
    return {
      record: exists ? toJsonRow(row) : null,
      version: (version as string | null) ?? null,
    };
  }

  /**
   * One page of the children of a parent as the database holds them: the rows of `table` whose
   * `column` is `value`, after the primary key `after`, in primary-key order (at most
   * `limit + 1`, so the caller sees whether more follow), plus the rows with these `rowKeys`
   * (pending children the database may hold under another parent, or not at all), each with its
   * version from its version table, bounded like `fetchRow`.
   */
  async fetchChildren(
    request: ChildrenRequest,
  ): Promise<{ page: string[]; rows: Map<string, StoredRow> }> {
    const def = this.options.registry.get(request.table);
    if (def === undefined) throw new Error(`no table definition for ${request.table}`);
    const target = qualifiedName(this.options.schema, def.name);
    const typeOf = (c: string) => def.columns[c]?.type ?? 'text';
    const collated = (c: string, expr: string) =>
      typeOf(c) === 'text' ? `${expr} COLLATE "C"` : expr;
    const pk = def.primaryKey;
    const order = pk.map((c) => collated(c, `t.${ident(c)}`)).join(', ');
    return await this.transaction({ timeoutMs: request.timeoutMs ?? 3_000 }, async (query) => {
      const values: unknown[] = [request.value];
      // Cast: the Data API binds a string as varchar, which has no operator with uuid (42883).
      let where = `t.${ident(request.column)} = $1::${typeOf(request.column)}`;
      if (request.after !== null) {
        const after = pk.map((c, i) => collated(c, `$${i + 2}::${typeOf(c)}`)).join(', ');
        where += ` AND (${order}) > (${after})`;
        values.push(...request.after);
      }
      const found = await query(
        `SELECT t.* FROM ${target} AS t WHERE ${where} ORDER BY ${order} LIMIT ${request.limit + 1}`,
        values,
      );
      const rows = found.rows as Record<string, unknown>[];
      if (request.rowKeys.length > 0) {
        const keys = request.rowKeys.map((k) => JSON.parse(k) as JsonValue[]);
        const arrays = pk.map((_, i) => keys.map((key) => key[i] ?? null));
        const extra = await query(
          `SELECT t.* FROM ${target} AS t WHERE (${pk.map((c) => `t.${ident(c)}`).join(', ')}) IN (SELECT * FROM unnest(${pk.map((c, i) => `$${i + 1}::${typeOf(c)}[]`).join(', ')}))`,
          arrays,
        );
        rows.push(...(extra.rows as Record<string, unknown>[]));
      }
      const stored = new Map<string, StoredRow>();
      for (const row of rows) {
        const record = toJsonRow(row);
        stored.set(rowKeyOf(def, record), { record, version: null });
      }
      const page = (found.rows as Record<string, unknown>[])
        .slice(0)
        .map((row) => rowKeyOf(def, toJsonRow(row)));
      const allKeys = [...new Set([...stored.keys(), ...request.rowKeys])];
      // The keys as JSON text (`rowKeyOf`) typed in SQL, the way the drain's statements type
      // them; each version comes back under the caller's own key text.
      const vt = versionTableOf(def, this.options.schema);
      const typed = pk
        .map((c, i) => `${vt.key[i]} = ${keyColumnFromJson(def, c, 'k.row_key::jsonb')}`)
        .join(' AND ');
      const versions = await query<{ row_key: string; v: string }>(
        `SELECT k.row_key, rv.${vt.version}::text AS v FROM unnest($1::text[]) AS k (row_key)
JOIN ${vt.name} AS rv ON ${typed}`,
        [allKeys],
      );
      for (const { row_key, v } of versions.rows) {
        const before = stored.get(row_key);
        stored.set(row_key, { record: before?.record ?? null, version: v });
      }
      return { page, rows: stored };
    });
  }

  /**
   * Delete up to `limit` tombstones (in all) older than `belowVersion` (which must be the
   * buffer's oldest live version: nothing older can arrive any more, so they guard nothing) from
   * the version tables of the registry's tables, table by table, then from the old
   * `spillway.row_versions`. Returns how many went.
   */
  async pruneTombstones(belowVersion: string, limit = 10_000, timeoutMs = 10_000): Promise<number> {
    return await this.transaction({ timeoutMs }, async (query) => {
      let pruned = 0;
      for (const vt of this.versionTables) {
        if (pruned >= limit) break;
        const result = await query(
          `DELETE FROM ${vt.name} WHERE ctid IN (
  SELECT ctid FROM ${vt.name} WHERE ${vt.deleted} AND ${vt.version} < $1::bigint LIMIT $2)`,
          [belowVersion, limit - pruned],
        );
        pruned += result.rowCount ?? 0;
      }
      return pruned;
    });
  }

  /** A round trip through the same path the drainer uses (see pingDatabase). */
  ping(timeoutMs?: number): Promise<void> {
    return pingDatabase(this.pool, timeoutMs);
  }

  /**
   * Versions that a drain of the release before version tables wrote to spillway.row_versions
   * after `migrate` had moved them (a sync still running while a deploy replaced it), moved into
   * the version tables (`moveOldVersions`) before this drain applies anything, so that they keep
   * guarding their keys (G2). The token written before it in the same transaction fences that
   * drain out, so nothing lands there afterwards. Costs one index probe when there is nothing.
   */
  private async moveOldVersions(query: TransactionQuery): Promise<void> {
    const names = this.options.registry.names();
    const found = await query(
      `SELECT EXISTS (SELECT 1 FROM spillway.row_versions WHERE table_name IN (${names.map((_, i) => `$${i + 1}`).join(', ')})) AS found`,
      names.map((name) => `${this.options.schema}.${name}`),
    );
    if ((found.rows[0] as { found: boolean }).found !== true) return;
    for (const name of names) {
      const def = this.options.registry.get(name) as TableDef;
      await query(moveOldVersions(def, this.options.schema), [
        `${this.options.schema}.${name}`,
        null,
      ]);
    }
  }

  /** inTransaction with the sink's error classification. */
  private async transaction<T>(
    bounds: TransactionBounds,
    work: (query: TransactionQuery) => Promise<T>,
  ): Promise<T> {
    try {
      return await inTransaction(this.pool, bounds, work);
    } catch (error) {
      throw toDatabaseError(error);
    }
  }
}

/**
 * `SELECT 1` through `pool` within `timeoutMs`, bounded on the server too: a proxy that lost its
 * database holds the query (RDS Proxy up to its borrow timeout, 30 s), and `health` must answer
 * `degraded` well within its own timeout. @throws UnavailableError('database'), or
 * SystemicDatabaseError (authentication)
 */
export async function pingDatabase(pool: TransactionPool, timeoutMs = 3_000): Promise<void> {
  try {
    await inTransaction(pool, { timeoutMs }, (query) => query('SELECT 1'));
  } catch (error) {
    throw toDatabaseError(error);
  }
}

/** The column `fetchRow` reads the row's version into; no table of a user's can have it. */
const VERSION_COLUMN = 'spillway.version';

function shifted(row: RowWrite, offset: bigint): RowWrite {
  const version = (BigInt(row.version) + offset).toString();
  if (row.patchedFrom === undefined) return { ...row, version };
  return { ...row, version, patchedFrom: (BigInt(row.patchedFrom) + offset).toString() };
}

function bigMax(a: bigint, b: bigint): bigint {
  return a > b ? a : b;
}

function toJsonRow(row: Record<string, unknown>): Record<string, JsonValue> {
  const out: Record<string, JsonValue> = {};
  for (const [column, value] of Object.entries(row)) {
    out[column] = value instanceof Date ? value.toISOString() : (value as JsonValue);
  }
  return out;
}
