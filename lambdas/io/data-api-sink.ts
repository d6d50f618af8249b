/**
 * The sink for Aurora PostgreSQL through the RDS Data API (no connections, no driver, no RDS
 * Proxy: the Data API never goes through one). The same SQL as `PostgresSink`, carried by
 * `DataApiPool`: one transaction per batch (BeginTransaction, the statements, CommitTransaction;
 * G3), fenced, version-guarded, in foreign-key order, errors classified by `core/db-errors.ts`.
 *
 * The Data API's limits are kept, not hit: a statement whose request would pass
 * `maxRequestBytes` (4 MiB) is split into several over parts of its rows, in the same place of
 * the same transaction; nothing the drain runs returns more than a few keys (1 MiB a response,
 * 64 KB a row); each call is bounded by the batch's timeout (below 45 s).
 */
import type { JsonValue } from '../core/changeset.js';
import type { CoalescedBatch } from '../core/coalesce.js';
import type { StoredRow } from '../core/overlay.js';
import type { SchemaRegistry } from '../core/schema.js';
import type { Statement } from '../core/sql.js';
import type { DataApiPool } from './data-api-connection.js';
import { PostgresSink, pingDatabase, type SinkOptions } from './postgres-sink.js';
import type {
  CacheIdentity,
  ChildrenRequest,
  EpochAgreement,
  PreparedBatch,
  Sink,
} from './sink.js';

/** The Data API's limit on one request. */
export const DATA_API_MAX_REQUEST_BYTES = 4 * 1024 * 1024;
/** Room left for the request's envelope (ARNs, SQL text of the call, the JSON around them). */
const ENVELOPE_BYTES = 64 * 1024;

export interface DataApiSinkOptions extends SinkOptions {
  /** @default DATA_API_MAX_REQUEST_BYTES */
  readonly maxRequestBytes?: number;
}

export class DataApiSink implements Sink {
  /** The statements and queries that are not the batch path, run as PostgresSink runs them. */
  private readonly statements: PostgresSink;
  private readonly budget: number;

  constructor(
    private readonly pool: DataApiPool,
    private readonly options: DataApiSinkOptions,
  ) {
    this.statements = new PostgresSink(pool, options);
    this.budget = (options.maxRequestBytes ?? DATA_API_MAX_REQUEST_BYTES) - ENVELOPE_BYTES;
  }

  get registry(): SchemaRegistry {
    return this.options.registry;
  }

  prepare(batch: CoalescedBatch, offset: bigint): PreparedBatch {
    const prepared = this.statements.prepare(batch, offset);
    const statements: Statement[] = [];
    for (const statement of prepared.statements) {
      const parts = splitStatement(statement, this.budget);
      if (parts === null) {
        // One row alone passes the request limit: it can never apply, so bisection dead-letters it.
        const rejection = `a row of ${statement.table} is larger than the Data API's request limit (${this.budget} bytes)`;
        return { batch: { ...batch, rejection }, statements: [], maxVersion: '0' };
      }
      statements.push(...parts);
    }
    return { ...prepared, statements };
  }

  agreeEpoch(cache: CacheIdentity, token: string, timeoutMs: number): Promise<EpochAgreement> {
    return this.statements.agreeEpoch(cache, token, timeoutMs);
  }

  /**
   * As PostgresSink.apply, over the Data API; see there for what it throws. The batch's
   * statements are already split under the request limit (`prepare`).
   */
  apply(prepared: PreparedBatch, fenceToken: string, timeoutMs: number): Promise<void> {
    return this.statements.apply(prepared, fenceToken, timeoutMs);
  }

  /** The row as stored, with the values pg gives (see `pgValues`). */
  async fetchRow(
    table: string,
    key: Readonly<Record<string, JsonValue>>,
    rowKey: string,
    timeoutMs?: number,
  ): Promise<StoredRow> {
    const stored = await this.statements.fetchRow(table, key, rowKey, timeoutMs);
    return { ...stored, record: this.pgValues(table, stored.record) };
  }

  /** As PostgresSink's, over the Data API, with the values pg gives (see `pgValues`). */
  async fetchChildren(
    request: ChildrenRequest,
  ): Promise<{ page: string[]; rows: Map<string, StoredRow> }> {
    const { page, rows } = await this.statements.fetchChildren(request);
    for (const [rowKey, stored] of rows) {
      rows.set(rowKey, { ...stored, record: this.pgValues(request.table, stored.record) });
    }
    return { page, rows };
  }

  /**
   * A row as pg gives it, so that `read` answers alike on both sinks (G4): the Data API returns
   * timestamps as text without a zone, JSON columns as JSON text and bigint as a JSON number,
   * where pg gives ISO-8601, parsed JSON and bigint as text.
   */
  private pgValues(
    table: string,
    record: Record<string, JsonValue> | null,
  ): Record<string, JsonValue> | null {
    const def = this.options.registry.get(table);
    if (record === null || def === undefined) return record;
    const out: Record<string, JsonValue> = { ...record };
    for (const [column, value] of Object.entries(record)) {
      const type = def.columns[column]?.type ?? '';
      if (typeof value === 'string' && type.startsWith('timestamp'))
        out[column] = isoTimestamp(value);
      else if (typeof value === 'string' && type === 'jsonb')
        out[column] = JSON.parse(value) as JsonValue;
      else if (typeof value === 'number' && type === 'bigint') out[column] = String(value);
    }
    return out;
  }

  pruneTombstones(belowVersion: string, limit?: number, timeoutMs?: number): Promise<number> {
    return this.statements.pruneTombstones(belowVersion, limit, timeoutMs);
  }

  ping(timeoutMs?: number): Promise<void> {
    return pingDatabase(this.pool, timeoutMs);
  }
}

/** What a value costs in the request: a string parameter is JSON-escaped once more. */
function requestBytes(value: unknown): number {
  return Buffer.byteLength(JSON.stringify(typeof value === 'string' ? value : String(value)));
}

/**
 * The statement as parts within `budget` bytes each, over parts of its rows (the JSON array in
 * `$1`, as every statement of `core/sql.ts` carries them); null when one row alone is larger.
 */
export function splitStatement(statement: Statement, budget: number): Statement[] | null {
  const [payload, ...rest] = statement.values;
  const fixed =
    Buffer.byteLength(statement.text) + rest.reduce<number>((n, v) => n + requestBytes(v), 0);
  if (fixed + requestBytes(payload) <= budget) return [statement];
  if (typeof payload !== 'string') return null;
  const rows = JSON.parse(payload) as unknown[];
  const parts: Statement[] = [];
  let current: unknown[] = [];
  let size = fixed + 2;
  const flush = (): void => {
    if (current.length === 0) return;
    parts.push({ ...statement, values: [JSON.stringify(current), ...rest], rows: current.length });
    current = [];
    size = fixed + 2;
  };
  for (const row of rows) {
    const bytes = requestBytes(JSON.stringify(row)) + 1;
    if (fixed + 2 + bytes > budget) return null;
    if (size + bytes > budget) flush();
    current.push(row);
    size += bytes;
  }
  flush();
  return parts;
}

/** A timestamp as the Data API gives it ("2024-12-04 17:47:00.123", UTC) as ISO-8601. */
function isoTimestamp(text: string): string {
  const withZone = /([zZ]|[+-]\d\d(:?\d\d)?)$/.test(text) ? text : `${text}Z`;
  const date = new Date(withZone.replace(' ', 'T'));
  return Number.isNaN(date.getTime()) ? text : date.toISOString();
}
