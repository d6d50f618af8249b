/**
 * The sink: applies coalesced batches to PostgreSQL through RDS Proxy (locally PgBouncer in
 * transaction mode), one transaction per batch (G3), fenced against stale drainers.
 */
import type { Pool } from 'pg';
import type { JsonValue } from '../core/changeset.js';
import type { CoalescedBatch } from '../core/coalesce.js';
import { FencedError, RejectedChangeError, UnavailableError } from '../core/errors.js';
import { isRejection } from '../core/policies.js';
import { boundText, databaseReason } from '../core/reasons.js';
import type { SchemaRegistry } from '../core/schema.js';
import {
  buildExistenceChecks,
  buildStatements,
  FENCE_SQL,
  ident,
  qualifiedName,
  type Statement,
} from '../core/sql.js';
import {
  inTransaction,
  type TransactionBounds,
  type TransactionQuery,
} from './postgres-transaction.js';

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
   * Apply one prepared batch in one transaction. Throws RejectedChangeError when the database
   * refuses a change (the caller isolates it), FencedError when a newer drainer has taken over,
   * and UnavailableError for anything that may pass (connection, timeout, proxy).
   */
  async apply(prepared: PreparedBatch, fenceToken: string, timeoutMs: number): Promise<void> {
    const { batch, statements } = prepared;
    if (batch.rejection !== undefined) throw new RejectedChangeError(batch.rejection, undefined);
    await this.transaction({ timeoutMs }, async (query) => {
      const fence = await query(FENCE_SQL, [this.options.buffer, fenceToken]);
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

  /** The row as the database holds it, with values as JSON (timestamps as ISO-8601), within `timeoutMs`. */
  async fetchRow(
    table: string,
    key: Readonly<Record<string, JsonValue>>,
    timeoutMs = 3_000,
  ): Promise<Record<string, JsonValue> | null> {
    const def = this.options.registry.get(table);
    if (def === undefined) throw new Error(`no table definition for ${table}`);
    const where = def.primaryKey.map((c, i) => `${ident(c)} = $${i + 1}`).join(' AND ');
    // Bounded like ping(): during an outage `read` answers from the overlay or fails fast, and
    // behind a lock the server gives up too, instead of leaving a backend waiting (G7).
    const row = await this.transaction({ timeoutMs }, async (query) => {
      const result = await query(
        `SELECT * FROM ${qualifiedName(this.options.schema, table)} WHERE ${where}`,
        def.primaryKey.map((c) => key[c]),
      );
      return result.rows[0] as Record<string, unknown> | undefined;
    });
    return row === undefined ? null : toJsonRow(row);
  }

  /**
   * Delete up to `limit` tombstones older than `belowVersion` (which must be the buffer's
   * oldest live version: nothing older can arrive any more, so they guard nothing). Returns how
   * many went.
   */
  async pruneTombstones(belowVersion: string, limit = 10_000, timeoutMs = 10_000): Promise<number> {
    return await this.transaction({ timeoutMs }, async (query) => {
      const result = await query(
        `DELETE FROM spillway.row_versions WHERE ctid IN (
  SELECT ctid FROM spillway.row_versions WHERE deleted AND version < $1 LIMIT $2)`,
        [belowVersion, limit],
      );
      return result.rowCount ?? 0;
    });
  }

  /** A round trip through the same path the drainer uses (see pingDatabase). */
  ping(timeoutMs?: number): Promise<void> {
    return pingDatabase(this.pool, timeoutMs);
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
 * `degraded` well within its own timeout. @throws UnavailableError('database')
 */
export async function pingDatabase(pool: Pool, timeoutMs = 3_000): Promise<void> {
  try {
    await inTransaction(pool, { timeoutMs }, (query) => query('SELECT 1'));
  } catch (error) {
    throw toDatabaseError(error);
  }
}

/** Database errors: refusals become RejectedChangeError, the rest UnavailableError. */
function toDatabaseError(error: unknown): Error {
  if (error instanceof RejectedChangeError || error instanceof FencedError) return error;
  if (error instanceof UnavailableError) return error;
  // Bounded, and without the rows PostgreSQL quotes: the reason is stored and logged.
  const reason = databaseReason(error);
  if (isRejection(error)) {
    return new RejectedChangeError(reason, error.code, { cause: error });
  }
  return new UnavailableError('database', reason, { cause: error });
}

function toJsonRow(row: Record<string, unknown>): Record<string, JsonValue> {
  const out: Record<string, JsonValue> = {};
  for (const [column, value] of Object.entries(row)) {
    out[column] = value instanceof Date ? value.toISOString() : (value as JsonValue);
  }
  return out;
}
