/**
 * The sink: applies coalesced batches to PostgreSQL through RDS Proxy (locally PgBouncer in
 * transaction mode), one transaction per batch (G3), fenced against stale drainers.
 */
import type { Pool, PoolClient, QueryConfig, QueryResult } from 'pg';
import type { JsonValue } from '../core/changeset.js';
import type { CoalescedBatch } from '../core/coalesce.js';
import { toDatabaseError } from '../core/db-errors.js';
import { FencedError, RejectedChangeError } from '../core/errors.js';
import type { SchemaRegistry } from '../core/schema.js';
import {
  buildExistenceChecks,
  buildStatements,
  FENCE_SQL,
  ident,
  qualifiedName,
  type Statement,
} from '../core/sql.js';

export interface SinkOptions {
  readonly registry: SchemaRegistry;
  /** PostgreSQL schema of the user tables. */
  readonly schema: string;
  /** Name of the buffer, for the fencing row. */
  readonly buffer: string;
}

/** A coalesced batch with the statements that apply it. */
export interface PreparedBatch {
  readonly batch: CoalescedBatch;
  readonly statements: readonly Statement[];
}

export class PostgresSink {
  constructor(
    private readonly pool: Pool,
    private readonly options: SinkOptions,
  ) {}

  /** Build the statements of a batch (CPU only: the drainer does it while the database works). */
  prepare(batch: CoalescedBatch): PreparedBatch {
    const { registry, schema } = this.options;
    if (batch.rejection !== undefined) return { batch, statements: [] };
    // The backlog may hold changes to a table whose definition was removed since (G7): such a
    // change can never apply, so the batch is refused and bisection dead-letters it.
    const unknown = batch.rows.find((row) => registry.get(row.table) === undefined);
    if (unknown !== undefined) {
      const rejection = `change to table ${unknown.table}, which the table definitions no longer include`;
      return { batch: { ...batch, rejection }, statements: [] };
    }
    // Existence checks read the database as it was before this batch, so they run first.
    return {
      batch,
      statements: [
        ...buildExistenceChecks(batch.rows, registry, schema),
        ...buildStatements(batch.rows, registry, schema),
      ],
    };
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
    await this.transaction(timeoutMs, async (query) => {
      const fence = await query(FENCE_SQL, [this.options.buffer, fenceToken]);
      if (fence.rowCount === 0) {
        throw new FencedError(`drainer with token ${fenceToken} was superseded by a newer one`);
      }
      for (const statement of statements) {
        const result = await query(statement.text, statement.values);
        if (statement.op === 'patch' && result.rows.length > 0) {
          const missing = result.rows.map((r: { row_key: string }) => r.row_key).join(', ');
          throw new RejectedChangeError(
            `patch of a row that does not exist: ${statement.table} ${missing}`,
            undefined,
          );
        }
      }
    });
  }

  /** The row as the database holds it, with values as JSON (timestamps as ISO-8601), within `timeoutMs`. */
  async fetchRow(
    table: string,
    key: Readonly<Record<string, JsonValue>>,
    timeoutMs = 3_000,
  ): Promise<Record<string, JsonValue> | null> {
    const def = this.options.registry.get(table);
    if (def === undefined) throw new Error(`no table definition for ${table}`);
    const where = def.primaryKey.map((c, i) => `${ident(c)} = $${i + 1}`).join(' AND ');
    try {
      // Bounded like ping(): during an outage `read` answers from the overlay or fails fast.
      const result = await this.pool.query({
        text: `SELECT * FROM ${qualifiedName(this.options.schema, table)} WHERE ${where}`,
        values: def.primaryKey.map((c) => key[c]),
        query_timeout: timeoutMs,
      } as QueryConfig);
      const row = result.rows[0] as Record<string, unknown> | undefined;
      return row === undefined ? null : toJsonRow(row);
    } catch (error) {
      throw toDatabaseError(error);
    }
  }

  /**
   * Delete up to `limit` tombstones older than `belowVersion` (which must be the buffer's
   * oldest live version: nothing older can arrive any more, so they guard nothing). Returns how
   * many went.
   */
  async pruneTombstones(belowVersion: string, limit = 10_000, timeoutMs = 10_000): Promise<number> {
    try {
      const result = await this.pool.query({
        text: `DELETE FROM spillway.row_versions WHERE ctid IN (
  SELECT ctid FROM spillway.row_versions WHERE deleted AND version < $1 LIMIT $2)`,
        values: [belowVersion, limit],
        query_timeout: timeoutMs,
      } as QueryConfig);
      return result.rowCount ?? 0;
    } catch (error) {
      throw toDatabaseError(error);
    }
  }

  /** A round trip through the same path the drainer uses (see pingDatabase). */
  ping(timeoutMs?: number): Promise<void> {
    return pingDatabase(this.pool, timeoutMs);
  }

  /**
   * Run `work` in one transaction that must finish within `timeoutMs`. A proxy that has lost its
   * database holds queries instead of failing them (RDS Proxy and PgBouncer both wait for a
   * server connection), so every query carries a client-side timeout.
   */
  private async transaction(
    timeoutMs: number,
    work: (
      query: (text: string, values?: readonly unknown[]) => Promise<QueryResult>,
    ) => Promise<void>,
  ): Promise<void> {
    const until = Date.now() + timeoutMs;
    let client: PoolClient;
    try {
      client = await this.pool.connect();
    } catch (error) {
      throw toDatabaseError(error);
    }
    const query = (text: string, values: readonly unknown[] = []): Promise<QueryResult> =>
      // pg honours query_timeout per query; its types only know it per client.
      client.query({
        text,
        values: [...values],
        query_timeout: Math.max(1, until - Date.now()),
      } as QueryConfig);
    let broken = false;
    // A connection that dies mid-transaction also emits 'error' on the client: the failing query
    // reports it, so the event only marks the client as not reusable.
    const onError = (): void => {
      broken = true;
    };
    client.on('error', onError);
    try {
      await query('BEGIN');
      await work(query);
      await query('COMMIT');
    } catch (error) {
      broken = true;
      try {
        await query('ROLLBACK');
        broken = false;
      } catch {
        // The connection is gone or timed out; release(true) below discards it.
      }
      throw toDatabaseError(error);
    } finally {
      client.off('error', onError);
      client.release(broken);
    }
  }
}

/**
 * `SELECT 1` through `pool` within `timeoutMs`: a proxy that lost its database holds the query
 * (RDS Proxy up to its borrow timeout, 30 s), and `health` must answer `degraded` well within its
 * own timeout. @throws UnavailableError('database'), or SystemicDatabaseError (authentication)
 */
export async function pingDatabase(pool: Pool, timeoutMs = 3_000): Promise<void> {
  try {
    // pg honours query_timeout per query; its types only know it per client.
    await pool.query({ text: 'SELECT 1', query_timeout: timeoutMs } as QueryConfig);
  } catch (error) {
    throw toDatabaseError(error);
  }
}

function toJsonRow(row: Record<string, unknown>): Record<string, JsonValue> {
  const out: Record<string, JsonValue> = {};
  for (const [column, value] of Object.entries(row)) {
    out[column] = value instanceof Date ? value.toISOString() : (value as JsonValue);
  }
  return out;
}
