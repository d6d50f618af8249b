/**
 * The drainer: moves the backlog into PostgreSQL in acknowledgement order.
 *
 * - One drainer at a time holds the lease; its fencing token is checked inside every
 *   transaction, so a drainer that lost its lease while paused cannot commit (G2).
 * - A batch is coalesced per row and applied in one transaction, then settled in Redis. A crash
 *   between the two redelivers the batch, which the row versions make harmless (G1, G2).
 * - A refused batch is bisected until the refused changesets stand alone; those go to the
 *   dead-letter store with the database's reason and the rest is applied (G7).
 * - Transient failures are retried with jittered exponential backoff behind the shared
 *   circuit breaker, and never dead-lettered (G7).
 */
import { coalesce, type PendingChangeset, type RowWrite } from '../core/coalesce.js';
import { FencedError, RejectedChangeError, UnavailableError } from '../core/errors.js';
import { type BackoffPolicy, backoffDelay } from '../core/policies.js';
import type { DrainControl } from './drain-control.js';
import type { PostgresSink } from './postgres-sink.js';
import type { RedisBuffer } from './redis-buffer.js';

export interface DrainerOptions {
  /** Changesets per transaction. */
  readonly batchSize: number;
  /** How long the lease lasts without renewal (a crashed drainer blocks others this long). */
  readonly leaseMs: number;
  /** Longest a batch transaction may take, within the drain's deadline. */
  readonly transactionTimeoutMs: number;
  readonly backoff: BackoffPolicy;
  /** Called around each step, for crash injection in tests and for logging. */
  readonly hooks?: DrainHooks;
}

export interface DrainHooks {
  afterCommit?(batch: readonly PendingChangeset[]): void | Promise<void>;
  onTransientError?(error: Error, attempt: number): void;
  onDeadLetter?(changeset: PendingChangeset, reason: string): void;
}

export interface DrainResult {
  /** Changes committed to the database. */
  readonly applied: number;
  /** Changes folded into another change of the same row before writing. */
  readonly coalesced: number;
  readonly deadLettered: number;
  readonly batches: number;
  readonly transientErrors: number;
  readonly stoppedBy: 'empty' | 'deadline' | 'breaker-open' | 'lease-held' | 'fenced';
}

export class Drainer {
  constructor(
    private readonly buffer: RedisBuffer,
    private readonly sink: PostgresSink,
    private readonly control: DrainControl,
    private readonly options: DrainerOptions,
  ) {}

  /** Drain until the backlog is empty or `deadline` (epoch ms) is reached. */
  async drain(deadline: number): Promise<DrainResult> {
    const counts = { applied: 0, coalesced: 0, deadLettered: 0, batches: 0, transientErrors: 0 };
    const token = await this.control.acquireLease(this.options.leaseMs);
    if (token === null) return { ...counts, stoppedBy: 'lease-held' };

    const finish = (stoppedBy: DrainResult['stoppedBy']): DrainResult => ({ ...counts, stoppedBy });
    let attempt = 0;
    try {
      for (;;) {
        if (Date.now() >= deadline) return finish('deadline');
        const breaker = await this.control.breaker('check');
        if (breaker.state === 'open') return finish('breaker-open');
        if (!(await this.control.renewLease(token, this.options.leaseMs))) return finish('fenced');

        const batch = await this.buffer.readBatch(this.options.batchSize);
        if (batch.length === 0) return finish('empty');
        try {
          await this.applyIsolating(batch, token, deadline, counts);
          counts.batches += 1;
          if (attempt > 0 || breaker.state === 'half-open') await this.control.breaker('success');
          attempt = 0;
        } catch (error) {
          if (error instanceof FencedError) return finish('fenced');
          // Only an unreachable dependency is worth retrying; anything else is a bug and surfaces.
          if (!(error instanceof UnavailableError)) throw error;
          counts.transientErrors += 1;
          this.options.hooks?.onTransientError?.(error, attempt);
          const after = await this.control.breaker('failure');
          if (after.state === 'open') return finish('breaker-open');
          const delay = backoffDelay(attempt, this.options.backoff);
          attempt += 1;
          if (Date.now() + delay >= deadline) return finish('deadline');
          await sleep(delay);
        }
      }
    } finally {
      await this.control.releaseLease(token).catch(() => {
        // Redis is unreachable: the lease expires by itself after leaseMs.
      });
    }
  }

  /**
   * Apply a run of changesets; when the database refuses it, split it in halves (left first, to
   * keep order) until each refused changeset stands alone, and dead-letter those (G7).
   */
  private async applyIsolating(
    changesets: readonly PendingChangeset[],
    token: string,
    deadline: number,
    counts: { applied: number; coalesced: number; deadLettered: number },
  ): Promise<void> {
    const batch = coalesce(changesets);
    const timeout = Math.min(this.options.transactionTimeoutMs, Math.max(1, deadline - Date.now()));
    try {
      await this.sink.apply(batch, token, timeout);
    } catch (error) {
      if (!(error instanceof RejectedChangeError)) throw error;
      const only = changesets[0];
      if (changesets.length === 1 && only !== undefined) {
        await this.buffer.settle(
          changesets,
          [],
          [{ changeset: only, reason: error.message, sqlState: error.sqlState ?? null }],
        );
        counts.deadLettered += only.changes.length;
        this.options.hooks?.onDeadLetter?.(only, error.message);
        return;
      }
      const middle = Math.ceil(changesets.length / 2);
      await this.applyIsolating(changesets.slice(0, middle), token, deadline, counts);
      await this.applyIsolating(changesets.slice(middle), token, deadline, counts);
      return;
    }
    await this.options.hooks?.afterCommit?.(changesets);
    await this.buffer.settle(changesets, batch.rows as RowWrite[]);
    counts.applied += batch.changes;
    counts.coalesced += batch.changes - batch.rows.length;
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
