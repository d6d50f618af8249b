/**
 * What the engine needs of the database: the drainer, `read`, `health` and tombstone pruning
 * reach it only through this interface. Two implementations: `PostgresSink` (pg through RDS
 * Proxy, the default) and `DataApiSink` (Aurora PostgreSQL through the RDS Data API).
 */
import type { JsonValue } from '../core/changeset.js';
import type { CoalescedBatch } from '../core/coalesce.js';
import type { StoredRow } from '../core/overlay.js';
import type { SchemaRegistry } from '../core/schema.js';
import type { Statement } from '../core/sql.js';

/** A coalesced batch with the statements that apply it. */
export interface PreparedBatch {
  readonly batch: CoalescedBatch;
  readonly statements: readonly Statement[];
  /** The largest version the batch applies, in the database's terms. */
  readonly maxVersion: string;
}

/** What the cache says of itself at the start of a drain (`DrainControl.meta` and `INFO`). */
export interface CacheIdentity {
  readonly epoch: string;
  /** The stream id the epoch began at. */
  readonly since: string;
  /** The primary's replication id; null where INFO does not tell. */
  readonly replid: string | null;
}

/** What a drain agreed with the database before its first batch. */
export type EpochAgreement =
  | {
      readonly kind: 'agreed';
      /** Database version = cache version + offset, for this epoch. */
      readonly offset: bigint;
      /** The cache lost its data since the last drain: its epoch is not the one the database saw. */
      readonly cacheLost: boolean;
      /** The cache's primary changed since the last drain (a failover, or a restart). */
      readonly failover: boolean;
    }
  /** The database holds this token or a larger one: the cache lost its token counter. */
  | { readonly kind: 'token-behind'; readonly seen: string };

/** Which children of a parent a read by parent asks the database for (`Sink.fetchChildren`). */
export interface ChildrenRequest {
  readonly table: string;
  readonly column: string;
  readonly value: JsonValue;
  /** The primary key after which the page starts, or null for the first page. */
  readonly after: readonly JsonValue[] | null;
  readonly limit: number;
  /** Rows to fetch as well, wherever they stand (pending children). */
  readonly rowKeys: readonly string[];
  readonly timeoutMs?: number;
}

export interface Sink {
  /** The table definitions the sink writes by. */
  readonly registry: SchemaRegistry;
  /** The statements of a batch, CPU only. `apply` takes only what this sink's `prepare` made. */
  prepare(batch: CoalescedBatch, offset: bigint): PreparedBatch;
  /** Agree the cache's epoch with the database and take the fence (G1, G2). */
  agreeEpoch(cache: CacheIdentity, token: string, timeoutMs: number): Promise<EpochAgreement>;
  /** One batch in one fenced transaction (G3), errors classified by `core/db-errors.ts` (G7). */
  apply(prepared: PreparedBatch, fenceToken: string, timeoutMs: number): Promise<void>;
  /** The row as stored, with its version (G4). */
  fetchRow(
    table: string,
    key: Readonly<Record<string, JsonValue>>,
    rowKey: string,
    timeoutMs?: number,
  ): Promise<StoredRow>;
  /** One page of a parent's children as stored, with the given rows too (reads by parent). */
  fetchChildren(
    request: ChildrenRequest,
  ): Promise<{ page: string[]; rows: Map<string, StoredRow> }>;
  pruneTombstones(belowVersion: string, limit?: number, timeoutMs?: number): Promise<number>;
  /** A bounded round trip on the drainer's path (`health`). */
  ping(timeoutMs?: number): Promise<void>;
}
