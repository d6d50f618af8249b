/**
 * The engine as a library: what handlers, the local runner and tests call.
 * Pass connected clients in; this module opens no connection of its own.
 */
import type { Redis } from 'ioredis';
import type { Pool } from 'pg';
import { DEFAULT_LIMITS, type JsonValue, rowKeyOf, validateRowKey } from './core/changeset.js';
import { NotFoundError, UnavailableError, ValidationError } from './core/errors.js';
import type { SchemaRegistry, TableDef } from './core/schema.js';
import { type BreakerPolicy, type BreakerStatus, DrainControl } from './io/drain-control.js';
import { Drainer, type DrainHooks, type DrainResult } from './io/drainer.js';
import { PostgresSink } from './io/postgres-sink.js';
import { type BufferStats, type DeadLetter, RedisBuffer } from './io/redis-buffer.js';

export type { BreakerStatus, BufferStats, DeadLetter, DrainResult, RedisBuffer };

export interface SpillwayOptions {
  readonly redis: Redis;
  /** A pool reaching PostgreSQL through RDS Proxy (locally: PgBouncer). */
  readonly pool: Pool;
  readonly registry: SchemaRegistry;
  /** Prefix of every Redis key; also names the buffer in the database's fencing table. @default 'spillway' */
  readonly prefix?: string;
  /** PostgreSQL schema of the user tables. @default 'public' */
  readonly dbSchema?: string;
  /** Pending changes past which writes fail with BackpressureError (G5). @default 1_000_000 */
  readonly backlogLimit?: number;
  /** @default 1_000 */
  readonly maxChangesPerChangeset?: number;
  /** @default 1 MiB */
  readonly maxChangesetBytes?: number;
  /** Replicas that must confirm each changeset before `write` succeeds (G1). @default 0 */
  readonly replicaAcks?: number;
  /** @default 1_000 */
  readonly replicaAckTimeoutMs?: number;
  /** Changesets per drain transaction. @default 500 */
  readonly batchSize?: number;
  /** How long a drainer's lease lasts between renewals. @default 30_000 */
  readonly leaseMs?: number;
  /** Longest one batch transaction may take (the drain's deadline may cut it shorter). @default 30_000 */
  readonly transactionTimeoutMs?: number;
  /** @default { baseMs: 100, maxMs: 5_000 } */
  readonly backoff?: { readonly baseMs: number; readonly maxMs: number };
  /** @default { threshold: 5, cooldownMs: 5_000, maxCooldownMs: 60_000 } */
  readonly breaker?: BreakerPolicy;
  /** Test and logging hooks around drain steps. */
  readonly drainHooks?: DrainHooks;
}

export interface WriteResult {
  readonly accepted: number;
  readonly changesetId: string;
}

export interface ReadResult {
  readonly record: Record<string, JsonValue> | null;
  /** True when changes to this row wait in the backlog (the record includes them, G4). */
  readonly pending: boolean;
}

export interface Health {
  readonly status: 'ok' | 'degraded' | 'down';
  readonly backlog: number;
  readonly pendingChangesets: number;
  readonly oldestPendingMs: number;
  readonly deadLetters: number;
  readonly breaker: BreakerStatus['state'];
  readonly checks: {
    readonly redis: { readonly ok: boolean; readonly error?: string };
    readonly database: { readonly ok: boolean; readonly error?: string };
  };
}

/** Which dead letters an operator action applies to: some by changeset id, or all. */
export type DeadLetterSelection =
  | { readonly changesetIds: readonly string[] }
  | { readonly all: true };

/** What the buffer alone needs: a function that only writes gets no database (nor a pool). */
export type BufferOnlyOptions = Pick<
  SpillwayOptions,
  | 'redis'
  | 'registry'
  | 'prefix'
  | 'backlogLimit'
  | 'maxChangesPerChangeset'
  | 'maxChangesetBytes'
  | 'replicaAcks'
  | 'replicaAckTimeoutMs'
>;

/**
 * The buffer as `Spillway` builds it, for functions that only write (`write`, pipeline steps):
 * its `write` is `Spillway.write`.
 */
export function createBuffer(options: BufferOnlyOptions): RedisBuffer {
  return new RedisBuffer(options.redis, {
    prefix: options.prefix ?? 'spillway',
    registry: options.registry,
    backlogLimit: options.backlogLimit ?? 1_000_000,
    replicaAcks: options.replicaAcks ?? 0,
    replicaAckTimeoutMs: options.replicaAckTimeoutMs ?? 1_000,
    limits: {
      maxChanges: options.maxChangesPerChangeset ?? DEFAULT_LIMITS.maxChanges,
      maxBytes: options.maxChangesetBytes ?? DEFAULT_LIMITS.maxBytes,
    },
  });
}

export class Spillway {
  readonly buffer: RedisBuffer;
  readonly sink: PostgresSink;
  readonly control: DrainControl;
  private readonly drainer: Drainer;

  constructor(private readonly options: SpillwayOptions) {
    const prefix = options.prefix ?? 'spillway';
    this.buffer = createBuffer(options);
    this.sink = new PostgresSink(options.pool, {
      registry: options.registry,
      schema: options.dbSchema ?? 'public',
      buffer: prefix,
    });
    this.control = new DrainControl(
      options.redis,
      this.buffer.keys,
      options.breaker ?? { threshold: 5, cooldownMs: 5_000, maxCooldownMs: 60_000 },
    );
    this.drainer = new Drainer(this.buffer, this.sink, this.control, {
      batchSize: options.batchSize ?? 500,
      leaseMs: options.leaseMs ?? 30_000,
      transactionTimeoutMs: options.transactionTimeoutMs ?? 30_000,
      backoff: options.backoff ?? { baseMs: 100, maxMs: 5_000 },
      ...(options.drainHooks ? { hooks: options.drainHooks } : {}),
    });
  }

  /** Buffer one changeset (G1, G5, G6). */
  write(input: unknown): Promise<WriteResult> {
    return this.buffer.write(input);
  }

  /** The latest acknowledged state of a row, synced or not (G4). */
  async read(input: unknown): Promise<ReadResult> {
    const { def, key } = parseReadRequest(input, this.options.registry);
    const table = def.name;
    const overlay = await this.buffer.overlay(table, rowKeyOf(def, key));
    if (overlay?.op === 'delete') return { record: null, pending: true };
    let stored: Record<string, JsonValue> | null;
    try {
      stored = await this.sink.fetchRow(table, key);
    } catch (error) {
      // A pending full row answers without the database, except for columns left to defaults.
      if (overlay?.op === 'upsert' && error instanceof UnavailableError) {
        return { record: fullRow(def.columns, overlay.values, null), pending: true };
      }
      throw error;
    }
    if (overlay === null) return { record: stored, pending: false };
    if (overlay.op === 'upsert')
      return { record: fullRow(def.columns, overlay.values, stored), pending: true };
    // A pending patch of a row the database does not hold will be dead-lettered: the row is absent.
    return { record: stored === null ? null : { ...stored, ...overlay.values }, pending: true };
  }

  /** Drain until the backlog is empty or `deadline` (epoch ms) passes. */
  drain(deadline: number): Promise<DrainResult> {
    return this.drainer.drain(deadline);
  }

  /**
   * Delete tombstones of deleted rows that no change still waiting (in the backlog or among the
   * dead letters) can be older than, so that `spillway.row_versions` does not grow with every
   * row ever deleted. Runs only when the backlog is empty. G2 holds: a change older than a
   * pruned tombstone no longer exists anywhere. Returns how many went.
   */
  async pruneTombstones(limit?: number): Promise<number> {
    const floor = await this.buffer.tombstoneFloor();
    return floor === null ? 0 : await this.sink.pruneTombstones(floor, limit);
  }

  /** Backlog figures and per-dependency checks (the `health` function). */
  async health(): Promise<Health> {
    const [stats, breaker, database, fault] = await Promise.allSettled([
      this.buffer.stats(),
      this.control.breakerStatus(),
      this.sink.ping(),
      this.control.fault(),
    ]);
    const redisOk = stats.status === 'fulfilled' && breaker.status === 'fulfilled';
    // A systemic fault (G7): the database answers, but refuses every drain until fixed (G8).
    const systemic = fault.status === 'fulfilled' ? fault.value : null;
    const databaseOk = database.status === 'fulfilled' && systemic === null;
    const s = stats.status === 'fulfilled' ? stats.value : undefined;
    return {
      status: !redisOk ? 'down' : databaseOk ? 'ok' : 'degraded',
      backlog: s?.backlog ?? -1,
      pendingChangesets: s?.pendingChangesets ?? -1,
      oldestPendingMs: s?.oldestPendingMs ?? -1,
      deadLetters: s?.deadLetters ?? -1,
      breaker: breaker.status === 'fulfilled' ? breaker.value.state : 'closed',
      checks: {
        redis: redisOk
          ? { ok: true }
          : { ok: false, error: reasonOf(stats.status === 'rejected' ? stats : breaker) },
        database: databaseOk
          ? { ok: true }
          : {
              ok: false,
              error: systemic ? `systemic error: ${systemic.message}` : reasonOf(database),
            },
      },
    };
  }

  /** Dead letters in original order. */
  listDeadLetters(options: { limit?: number } = {}): Promise<DeadLetter[]> {
    return this.buffer.listDeadLetters(options);
  }

  /**
   * Put dead letters back into the backlog in their original order, with their original
   * versions, so that nothing written after them is overwritten (G2). Each is validated again
   * against today's table definitions first; if one fails, none is replayed (ValidationError
   * naming it). Returns the replayed ids.
   */
  async replayDeadLetters(selection: DeadLetterSelection): Promise<string[]> {
    const letters = await this.select(selection);
    // Every letter must still be valid under today's table definitions before any is replayed.
    const replays = letters.map((letter) => {
      try {
        return { letter, changes: this.buffer.revalidate(letter.changes) };
      } catch (error) {
        if (!(error instanceof ValidationError)) throw error;
        throw new ValidationError(
          `deadLetters[${letter.changesetId}].${error.path}`,
          `no longer valid under the current table definitions, nothing was replayed: ${error.message}`,
        );
      }
    });
    for (const { letter, changes } of replays) {
      await this.buffer.append(changes, {
        changesetId: letter.changesetId,
        version: letter.version,
      });
      // A crash between the two steps leaves a dead letter that was also replayed: replaying it
      // again is harmless, because its version is already applied.
      await this.buffer.removeDeadLetters([letter]);
    }
    return letters.map((l) => l.changesetId);
  }

  /** Delete dead letters for good. Returns the purged ids. */
  async purgeDeadLetters(selection: DeadLetterSelection): Promise<string[]> {
    const letters = await this.select(selection);
    await this.buffer.removeDeadLetters(letters);
    return letters.map((l) => l.changesetId);
  }

  private async select(selection: DeadLetterSelection): Promise<DeadLetter[]> {
    if ('all' in selection)
      return await this.buffer.listDeadLetters({ limit: Number.MAX_SAFE_INTEGER });
    const letters = await this.buffer.listDeadLetters({ changesetIds: selection.changesetIds });
    const found = new Set(letters.map((l) => l.changesetId));
    const missing = selection.changesetIds.filter((id) => !found.has(id));
    if (missing.length > 0)
      throw new NotFoundError(`no dead letter with changeset id ${missing.join(', ')}`);
    return letters;
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

function fullRow(
  columns: Readonly<Record<string, unknown>>,
  pending: Record<string, JsonValue>,
  stored: Record<string, JsonValue> | null,
): Record<string, JsonValue> {
  const row: Record<string, JsonValue> = {};
  for (const column of Object.keys(columns)) {
    row[column] = Object.hasOwn(pending, column)
      ? (pending[column] ?? null)
      : (stored?.[column] ?? null);
  }
  return row;
}

function reasonOf(result: PromiseSettledResult<unknown>): string {
  if (result.status === 'fulfilled') return '';
  return result.reason instanceof Error ? result.reason.message : String(result.reason);
}
