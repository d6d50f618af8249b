/**
 * The drainer: moves the backlog into PostgreSQL in acknowledgement order.
 *
 * - One drainer at a time holds the lease; its fencing token is checked inside every
 *   transaction, so a drainer that lost its lease while paused cannot commit (G2).
 * - A batch is coalesced per row and applied in one transaction, then settled in Redis. A crash
 *   between the two redelivers the batch, which the row versions make harmless (G1, G2).
 * - A refused batch is bisected until the refused changesets stand alone; those go to the
 *   dead-letter store with the database's reason and the rest is applied (G7).
 * - A systemic fault (core/db-errors.ts, or a refusal every changeset of a batch meets alike)
 *   stops the drain before the changeset that meets it, dead-letters nothing, is recorded in
 *   Redis for `health`, and is tried again with backoff until it is fixed (G7, G8).
 * - Transient failures are retried with jittered exponential backoff behind the shared
 *   circuit breaker, and never dead-lettered (G7).
 */
import { setImmediate, setTimeout as sleep } from 'node:timers/promises';
import { BatchPlan } from '../core/batch-plan.js';
import { coalesce, type PendingChangeset } from '../core/coalesce.js';
import {
  FencedError,
  messageOf,
  RejectedChangeError,
  SystemicDatabaseError,
  UnavailableError,
} from '../core/errors.js';
import { type BackoffPolicy, backoffDelay } from '../core/policies.js';
import type { DrainControl, SystemicFault } from './drain-control.js';
import type { RedisBuffer } from './redis-buffer.js';
import type { PreparedBatch, Sink } from './sink.js';

export interface DrainerOptions {
  /** Changesets per transaction. */
  readonly batchSize: number;
  /** Changes per transaction: a batch of large changesets stays bounded (G5). */
  readonly batchChanges: number;
  /**
   * Bytes of stored changes (their JSON) per transaction: bounds the drainer's memory, which
   * holds them decoded, a few times over. A larger changeset forms a batch alone.
   */
  readonly batchBytes: number;
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
  onSystemicFault?(fault: SystemicFault): void;
}

export interface DrainResult {
  /** Changes committed to the database. */
  readonly applied: number;
  /** Changes folded into another change of the same row before writing. */
  readonly coalesced: number;
  readonly deadLettered: number;
  readonly batches: number;
  readonly transientErrors: number;
  readonly stoppedBy: 'empty' | 'deadline' | 'breaker-open' | 'lease-held' | 'fenced' | 'systemic';
  /** With `stoppedBy: 'systemic'`: the fault, with the database's message. */
  readonly fault?: SystemicFault;
  /** This drain found that the cache had lost its data (a new epoch). */
  readonly cacheLost: boolean;
  /** This drain found that the cache's primary had changed (a failover, or a restart). */
  readonly failover: boolean;
}

/** What a drain counts as it goes. */
type Counts = {
  -readonly [K in Exclude<keyof DrainResult, 'stoppedBy' | 'fault'>]: DrainResult[K];
};

/** Counts of a drain that has done nothing yet. */
export function noDrainCounts(): Counts {
  return {
    applied: 0,
    coalesced: 0,
    deadLettered: 0,
    batches: 0,
    transientErrors: 0,
    cacheLost: false,
    failover: false,
  };
}

export class Drainer {
  constructor(
    private readonly buffer: RedisBuffer,
    private readonly sink: Sink,
    private readonly control: DrainControl,
    private readonly options: DrainerOptions,
  ) {}

  /**
   * Drain until the backlog is empty or `deadline` (epoch ms) is reached, and record what the
   * drain did for `health` (G8).
   */
  async drain(deadline: number): Promise<DrainResult> {
    let result: DrainResult;
    try {
      result = await this.drainUnrecorded(deadline);
    } catch (error) {
      await this.control
        .recordDrain({ at: Date.now(), stoppedBy: 'error', error: boundedMessage(error) })
        .catch(() => {});
      throw error;
    }
    const progressed =
      result.batches > 0 || result.deadLettered > 0 || result.stoppedBy === 'empty';
    await this.control
      .recordDrain({
        at: Date.now(),
        stoppedBy: result.stoppedBy,
        error: '',
        ...(progressed ? { progressAt: Date.now() } : {}),
      })
      .catch(() => {
        // Redis is unreachable: health reports that on its own.
      });
    return result;
  }

  /**
   * While the database applies one batch, the next is read from Redis and prepared, and the
   * previous one is settled.
   */
  private async drainUnrecorded(deadline: number): Promise<DrainResult> {
    const counts = noDrainCounts();
    // A systemic fault holds every drain back until its backoff has passed (G7).
    let fault = await this.control.fault();
    if (fault !== null && fault.retryInMs > 0) return { ...counts, stoppedBy: 'systemic', fault };
    let token = await this.control.acquireLease(this.options.leaseMs);
    if (token === null) return { ...counts, stoppedBy: 'lease-held' };

    const finish = (stoppedBy: DrainResult['stoppedBy']): DrainResult => ({ ...counts, stoppedBy });
    let reader: BatchReader | undefined;
    let next: Promise<PreparedRun> | undefined;
    let settling: Promise<void> = Promise.resolve();
    let attempt = 0;
    try {
      for (;;) {
        if (Date.now() >= deadline) return finish('deadline');
        const breaker = await this.control.breaker('check');
        if (breaker.state === 'open') return finish('breaker-open');
        if (!(await this.control.renewLease(token, this.options.leaseMs))) return finish('fenced');

        try {
          if (reader === undefined) {
            const agreed = await this.agreeEpoch(token, deadline, counts);
            if (agreed === null) return finish('fenced');
            token = agreed.token;
            reader = new BatchReader(this.buffer, this.sink, this.options, agreed.offset);
          }
          let current = await (next ?? reader.read());
          // A prefetch may have looked before the last changesets arrived: look once more.
          if (current.changesets.length === 0 && next !== undefined) current = await reader.read();
          next = undefined;
          if (current.changesets.length === 0) return finish('empty');
          next = reader.read();
          // Awaited on the next turn; until then a failure must not count as unhandled.
          next.catch(() => {});
          await this.applyIsolating(current, token, deadline, counts, reader.offset, (settle) => {
            settling = settling.then(() => settle);
          });
          counts.batches += 1;
          if (fault !== null) {
            await this.control.clearFault();
            fault = null;
          }
          // A commit ends the run of failures, also those an earlier drain left (the breaker
          // counts consecutive failures across drains, G7); `breaker` was read after this drain's
          // own last failure, so it counts those too.
          if (breaker.failures > 0 || breaker.state === 'half-open') {
            await this.control.breaker('success');
          }
          attempt = 0;
        } catch (error) {
          // Start again from the oldest unsettled changeset, after any settling in flight.
          await next?.catch(() => {});
          next = undefined;
          await settling;
          reader?.rewind();
          if (error instanceof FencedError) return finish('fenced');
          if (error instanceof SystemicDatabaseError) {
            const recorded = await this.control.recordFault(error);
            this.options.hooks?.onSystemicFault?.(recorded);
            return { ...finish('systemic'), fault: recorded };
          }
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
      await next?.catch(() => {});
      try {
        await settling;
      } finally {
        await this.control.releaseLease(token).catch(() => {
          // Redis is unreachable: the lease expires by itself after leaseMs.
        });
      }
    }
  }

  /**
   * Agree the cache's epoch with the database before the first batch (see
   * `PostgresSink.agreeEpoch`). When the cache lost its token counter, the database holds a
   * larger token than this drainer's: the counter is advanced past it and the lease re-taken, so
   * the drain resumes within this sync instead of being fenced until the counter catches up.
   * Null when this drainer lost the lease meanwhile.
   */
  private async agreeEpoch(
    token: string,
    deadline: number,
    counts: Counts,
  ): Promise<{ token: string; offset: bigint } | null> {
    const timeout = Math.min(this.options.transactionTimeoutMs, Math.max(1, deadline - Date.now()));
    for (;;) {
      const [meta, replid] = await Promise.all([this.control.meta(), this.control.replicationId()]);
      const agreement = await this.sink.agreeEpoch(
        { epoch: meta.epoch, since: meta.since, replid },
        token,
        timeout,
      );
      if (agreement.kind === 'token-behind') {
        const advanced = await this.control.advanceLease(
          token,
          agreement.seen,
          this.options.leaseMs,
        );
        if (advanced === null) return null;
        token = advanced;
        continue;
      }
      const now = Date.now();
      counts.cacheLost = agreement.cacheLost;
      counts.failover = agreement.failover;
      const offset = agreement.offset.toString();
      if (
        meta.offset !== offset ||
        meta.replid !== (replid ?? undefined) ||
        agreement.cacheLost ||
        agreement.failover
      ) {
        await this.control.recordMeta({
          offset,
          replid: replid ?? '',
          ...(agreement.cacheLost ? { lostAt: now } : {}),
          ...(agreement.failover ? { failoverAt: now } : {}),
        });
      }
      return { token, offset: agreement.offset };
    }
  }

  /**
   * Apply a run of changesets; when the database refuses it, split it in halves (left first, to
   * keep order) until each refused changeset stands alone, and dead-letter those (G7).
   * A systemic fault is bisected the same way, so that the changesets before the first one that
   * meets it land; then it stops the drain (SystemicDatabaseError) and nothing is dead-lettered.
   * A refusal that every changeset of the run meets alike (two or more, same SQLSTATE, message
   * and detail: a trigger refusing all writes, say) is a fault of the system, not of the
   * changes, and stops the drain too.
   * Every contiguous part of a planned batch is one the plan admits, so the halves keep G2 as well.
   * A committed run is settled through `defer`, so that settling overlaps the next batch.
   */
  private async applyIsolating(
    run: PreparedRun,
    token: string,
    deadline: number,
    counts: { applied: number; coalesced: number; deadLettered: number },
    offset: bigint,
    defer: (settle: Promise<void>) => void,
  ): Promise<void> {
    // Refused changesets wait here until a later neighbour commits (then each refusal was its
    // own) or the run ends (then every changeset may have met the same fault).
    const refused: Refusal[] = [];
    const deadLetterRefused = async (): Promise<void> => {
      const letters = refused.splice(0).map(({ changeset, error }) => ({
        changeset,
        reason: error.message,
        sqlState: error.sqlState ?? null,
      }));
      if (letters.length === 0) return;
      for (const { changeset, reason, sqlState } of letters) {
        await this.buffer.deadLetter(changeset, { reason, sqlState });
        counts.deadLettered += changeset.changes.length;
        this.options.hooks?.onDeadLetter?.(changeset, reason);
      }
    };
    const isolate = async ({ changesets, prepared }: PreparedRun): Promise<void> => {
      const timeout = Math.min(
        this.options.transactionTimeoutMs,
        Math.max(1, deadline - Date.now()),
      );
      try {
        await this.sink.apply(prepared, token, timeout);
      } catch (error) {
        if (!(error instanceof RejectedChangeError || error instanceof SystemicDatabaseError)) {
          throw error;
        }
        const only = changesets[0];
        if (changesets.length === 1 && only !== undefined) {
          if (error instanceof SystemicDatabaseError) throw naming(error, only);
          refused.push({ changeset: only, error });
          return;
        }
        const middle = Math.ceil(changesets.length / 2);
        for (const half of [changesets.slice(0, middle), changesets.slice(middle)]) {
          await isolate(prepareRun(this.sink, half, offset));
        }
        return;
      }
      await deadLetterRefused();
      await this.options.hooks?.afterCommit?.(changesets);
      const settle = this.buffer.settle(changesets);
      // Settling must finish before the drain reports success; a failure surfaces there.
      settle.catch(() => {});
      defer(settle);
      counts.applied += prepared.batch.changes;
      counts.coalesced += prepared.batch.changes - prepared.batch.rows.length;
    };
    await isolate(run);
    const shared = sharedRefusal(refused, run.changesets.length);
    if (shared !== undefined) throw shared;
    await deadLetterRefused();
  }
}

/** A changeset the database refused, not yet dead-lettered. */
interface Refusal {
  readonly changeset: PendingChangeset;
  readonly error: RejectedChangeError;
}

/**
 * The refusal every changeset of a run of `runLength` (two or more) met alike, as a systemic
 * fault; undefined when any changeset passed or met something else. Only a refusal of the
 * database's (with a SQLSTATE) counts: Spillway's own, such as a change to a table the
 * definitions no longer include, are the changes' own. Data and integrity errors (classes 22
 * and 23) never count: they are about the values, and two changes that name the same missing
 * parent or break the same constraint alike are each refused, not a fault of the system
 * (applying them one at a time would dead-letter both, G2). What counts is a routine refusing
 * everything (a trigger's RAISE, P0001, and the other routine classes).
 */
function sharedRefusal(
  refused: readonly Refusal[],
  runLength: number,
): SystemicDatabaseError | undefined {
  const first = refused[0]?.error;
  if (runLength < 2 || refused.length !== runLength || first?.sqlState === undefined) {
    return undefined;
  }
  if (first.sqlState.startsWith('22') || first.sqlState.startsWith('23')) return undefined;
  const alike = refused.every(
    ({ error }) => error.sqlState === first.sqlState && error.message === first.message,
  );
  if (!alike) return undefined;
  return new SystemicDatabaseError(
    `${first.message} (every changeset of a batch of ${runLength} met it)`,
    first.sqlState,
    onlyTable(refused.map((r) => r.changeset)),
    { cause: first },
  );
}

/** `error`, naming the table when the one changeset that met it writes to one table only. */
function naming(error: SystemicDatabaseError, changeset: PendingChangeset): SystemicDatabaseError {
  const table = error.table ?? onlyTable([changeset]);
  if (table === error.table) return error;
  return new SystemicDatabaseError(error.message, error.sqlState, table, { cause: error.cause });
}

function onlyTable(changesets: readonly PendingChangeset[]): string | undefined {
  const tables = new Set(changesets.flatMap((c) => c.changes.map((change) => change.table)));
  return tables.size === 1 ? [...tables][0] : undefined;
}

/** Changesets with their coalesced batch and SQL, ready for one transaction. */
interface PreparedRun {
  readonly changesets: readonly PendingChangeset[];
  readonly prepared: PreparedBatch;
}

function prepareRun(
  sink: Sink,
  changesets: readonly PendingChangeset[],
  offset: bigint,
): PreparedRun {
  return { changesets, prepared: sink.prepare(coalesce(changesets), offset) };
}

/** The first line of an error's message, bounded, for the drain status. */
function boundedMessage(error: unknown): string {
  return messageOf(error).split('\n')[0]?.slice(0, 300) ?? '';
}

/**
 * Changesets read by a reader's first call, before it knows their size: one, so that a backlog
 * of large changesets never has the drainer decode more than a batch holds (the next read is
 * sized by what this one showed).
 */
const FIRST_READ = 1;

/**
 * Reads batches in acknowledgement order: first the changesets delivered before but never
 * settled (a crashed drainer's, or this one's after a failure), then new ones.
 *
 * A batch is bounded by changesets, changes and the bytes of its changes as stored (G5: a backlog
 * of large changesets drains in flat memory; a changeset larger than a bound forms a batch alone,
 * G3). Reads from Redis are sized by the changesets seen so far to fit what the batch has room
 * for, in changesets, changes and bytes alike, so that little is read beyond the batch;
 * changesets read but left out of a batch are carried into the next, in order. A replayed dead
 * letter forms a batch of its own: its version is older than its place in the log, and
 * coalescing it with newer changes of the same row would let it win over them (G2); alone, the
 * version guard skips it wherever a newer change was applied, the rule `read` follows too.
 */
class BatchReader {
  /** Last pending id read, or null once the pending ones are exhausted. */
  private cursor: string | null = '0';
  /** Read, not yet in a batch, in order. */
  private carried: PendingChangeset[] = [];
  /** Average changes and bytes of the changesets read so far (0: none read yet), to size reads. */
  private averageChanges = 0;
  private averageBytes = 0;

  constructor(
    private readonly buffer: RedisBuffer,
    private readonly sink: Sink,
    private readonly limits: Pick<DrainerOptions, 'batchSize' | 'batchChanges' | 'batchBytes'>,
    readonly offset: bigint,
  ) {}

  async read(): Promise<PreparedRun> {
    const batch: PendingChangeset[] = [];
    const plan = new BatchPlan(this.sink.registry);
    let changes = 0;
    let bytes = 0;
    for (;;) {
      if (this.carried.length === 0) {
        if (batch.at(-1)?.replayed) break;
        const room = this.room(batch.length, changes, bytes);
        if (room === 0) break;
        this.carried = await this.fetch(room);
        if (this.carried.length === 0) break;
      }
      const candidate = this.carried[0] as PendingChangeset;
      if (batch.length > 0) {
        const full =
          batch.length >= this.limits.batchSize ||
          changes + candidate.changes.length > this.limits.batchChanges ||
          bytes + (candidate.bytes ?? 0) > this.limits.batchBytes;
        if (full || candidate.replayed || batch.at(-1)?.replayed) break;
        // The batch ends where its FK order would change the outcome of applying one at a time (G2).
        if (!plan.admits(candidate)) break;
      }
      this.carried.shift();
      plan.add(candidate);
      batch.push(candidate);
      changes += candidate.changes.length;
      bytes += candidate.bytes ?? 0;
    }
    await setImmediate();
    return prepareRun(this.sink, batch, this.offset);
  }

  /**
   * How many changesets to read for a batch holding `length` changesets, `changes` changes and
   * `bytes` bytes so far: as many as fit by the averages seen; none when a batch is already
   * full by them, at least one for an empty batch.
   */
  private room(length: number, changes: number, bytes: number): number {
    if (this.averageChanges === 0) return FIRST_READ;
    const fits = Math.min(
      this.limits.batchSize - length,
      Math.floor((this.limits.batchChanges - changes) / this.averageChanges),
      Math.floor((this.limits.batchBytes - bytes) / this.averageBytes),
    );
    return Math.max(length === 0 ? 1 : 0, fits);
  }

  private async fetch(count: number): Promise<PendingChangeset[]> {
    let changesets: PendingChangeset[] = [];
    if (this.cursor !== null) {
      changesets = await this.buffer.readPending(count, this.cursor);
      this.cursor = changesets.at(-1)?.streamId ?? null;
    }
    if (changesets.length === 0) changesets = await this.buffer.readNew(count);
    if (changesets.length > 0) {
      let changes = 0;
      let bytes = 0;
      for (const c of changesets) {
        changes += c.changes.length;
        bytes += c.bytes ?? 0;
      }
      const averageChanges = Math.max(1, changes / changesets.length);
      const averageBytes = Math.max(1, bytes / changesets.length);
      const first = this.averageChanges === 0;
      this.averageChanges = first ? averageChanges : (this.averageChanges + averageChanges) / 2;
      this.averageBytes = first ? averageBytes : (this.averageBytes + averageBytes) / 2;
    }
    return changesets;
  }

  /** After a failure: everything not settled is pending again, from the oldest. */
  rewind(): void {
    this.cursor = '0';
    this.carried = [];
  }
}
