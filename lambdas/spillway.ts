/**
 * The engine as a library: what handlers, the local runner and tests call.
 * Pass connected clients in; this module opens no connection of its own.
 *
 * STATUS: interface fixed; implementation lands with the engine (issue 2).
 */
import type { Redis } from 'ioredis';
import type { Pool } from 'pg';
import type { SchemaRegistry } from './core/schema.js';

export interface SpillwayOptions {
  readonly redis: Redis;
  /** A pool reaching PostgreSQL through RDS Proxy (locally: PgBouncer). */
  readonly pool: Pool;
  readonly registry: SchemaRegistry;
  /** Prefix of every Redis key. @default 'spillway' */
  readonly prefix?: string;
  /** PostgreSQL schema of the user tables. @default 'public' */
  readonly dbSchema?: string;
  /** @default 1_000_000 pending changes */
  readonly backlogLimit?: number;
  /** @default 1_000 */
  readonly maxChangesPerChangeset?: number;
  /** @default 1 MiB */
  readonly maxChangesetBytes?: number;
  /** Changesets per drain transaction. @default 500 */
  readonly batchSize?: number;
}

export interface WriteResult {
  readonly accepted: number;
  readonly changesetId: string;
}

export interface ReadResult {
  readonly record: Record<string, unknown> | null;
  readonly pending: boolean;
}

export interface DrainResult {
  readonly applied: number;
  readonly coalesced: number;
  readonly deadLettered: number;
  readonly batches: number;
  readonly transientErrors: number;
  /** Why the drain ended. */
  readonly stoppedBy: 'empty' | 'deadline' | 'breaker-open' | 'lease-held' | 'fenced';
}

export interface BacklogStats {
  readonly backlog: number;
  readonly oldestPendingMs: number;
  readonly deadLetters: number;
  readonly breaker: { readonly state: 'closed' | 'open' | 'half-open'; readonly failures: number };
}

export interface DeadLetter {
  readonly id: string;
  readonly changesetId: string;
  readonly changes: readonly unknown[];
  readonly reason: string;
  readonly sqlState: string | null;
  readonly deadAt: string;
}
