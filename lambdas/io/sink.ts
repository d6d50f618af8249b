/**
 * What the engine needs of the database: the drainer, `read`, `health` and tombstone pruning
 * reach it only through this interface. Two implementations: `PostgresSink` (pg through RDS
 * Proxy, the default) and `DataApiSink` (Aurora PostgreSQL through the RDS Data API).
 */
import type { JsonValue } from '../core/changeset.js';
import type { CoalescedBatch } from '../core/coalesce.js';
import type { StoredRow } from '../core/overlay.js';
import type { SchemaRegistry } from '../core/schema.js';
import type { CacheIdentity, EpochAgreement, PreparedBatch } from './postgres-sink.js';

export type { CacheIdentity, EpochAgreement, PreparedBatch };

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
  pruneTombstones(belowVersion: string, limit?: number, timeoutMs?: number): Promise<number>;
  /** A bounded round trip on the drainer's path (`health`). */
  ping(timeoutMs?: number): Promise<void>;
}
