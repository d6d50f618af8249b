/**
 * What one `sync` invocation does: drain, and while time is left, wait a little for new work and
 * drain again, so that the database lags the buffer by seconds although the schedule fires once a
 * minute.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { type DrainResult, noDrainCounts } from './drainer.js';

/** What the loop needs of the engine (`Spillway` and its buffer and drain control). */
export interface DrainTarget {
  drain(deadline: number): Promise<DrainResult>;
  /** Changesets in the backlog; polled while waiting, so it must be cheap. */
  pendingChangesets(): Promise<number>;
  /** Time until the circuit breaker allows a trial again; 0 when it is not open. */
  breakerRetryInMs(): Promise<number>;
}

export interface DrainLoopOptions {
  /**
   * Milliseconds left in the invocation: the Lambda context's `getRemainingTimeInMillis`. Asked
   * again before every step, so a caller may shorten it (the local runner does on shutdown).
   */
  readonly remainingMs: () => number;
  /** Stop this long before the time runs out (`SYNC_DEADLINE_MARGIN_MS`). */
  readonly marginMs: number;
  /**
   * Return once this long passed without a drain doing any work (`SYNC_IDLE_WAIT_MS`); 0 returns
   * after the first drain that finds nothing to do.
   */
  readonly idleWaitMs: number;
  /** How often the backlog is polled while waiting. @default 250 */
  readonly pollMs?: number;
}

export type DrainTotals = Pick<
  DrainResult,
  | 'applied'
  | 'coalesced'
  | 'deadLettered'
  | 'batches'
  | 'transientErrors'
  | 'cacheLost'
  | 'failover'
>;

export interface DrainLoopResult extends DrainTotals {
  /** Calls of `drain`. */
  readonly drains: number;
  /** Why the last drain stopped; `deadline` also when the time ran out between drains. */
  readonly stoppedBy: DrainResult['stoppedBy'];
  /** The systemic fault the last drain stopped by, with the database's message. */
  readonly fault?: DrainResult['fault'];
}

/**
 * Drains until the time is spent (less the margin), another drainer holds the lease or fenced
 * this one out, or `idleWaitMs` passed without work: the backlog stayed empty, or the circuit
 * breaker kept the database closed off. While waiting it polls the backlog, and after the
 * breaker opened it waits for the breaker's cooldown before trying again.
 */
export async function drainUntilIdle(
  target: DrainTarget,
  options: DrainLoopOptions,
): Promise<DrainLoopResult> {
  const pollMs = options.pollMs ?? 250;
  const totals = noDrainCounts();
  let drains = 0;
  let lastWorkAt = Date.now();
  const timeLeft = () => options.remainingMs() - options.marginMs;
  const finish = (stoppedBy: DrainResult['stoppedBy']): DrainLoopResult => ({
    ...totals,
    drains,
    stoppedBy,
  });

  for (;;) {
    const left = timeLeft();
    if (left <= 0) return finish('deadline');
    const result = await target.drain(Date.now() + left);
    drains += 1;
    totals.applied += result.applied;
    totals.coalesced += result.coalesced;
    totals.deadLettered += result.deadLettered;
    totals.batches += result.batches;
    totals.transientErrors += result.transientErrors;
    totals.cacheLost ||= result.cacheLost;
    totals.failover ||= result.failover;
    if (result.batches > 0 || result.deadLettered > 0) lastWorkAt = Date.now();
    if (result.stoppedBy !== 'empty' && result.stoppedBy !== 'breaker-open') {
      return result.fault
        ? { ...finish(result.stoppedBy), fault: result.fault }
        : finish(result.stoppedBy);
    }

    // Wait for new work (or the breaker's cooldown), within the idle wait and the time left.
    // Sleeping before each check keeps a drain that finds nothing to do from spinning.
    let resume = false;
    while (!resume) {
      const wait = Math.min(lastWorkAt + options.idleWaitMs - Date.now(), timeLeft());
      if (wait <= 0) return finish(timeLeft() <= 0 ? 'deadline' : result.stoppedBy);
      await sleep(Math.min(pollMs, wait));
      resume =
        result.stoppedBy === 'breaker-open'
          ? (await target.breakerRetryInMs()) <= 0
          : (await target.pendingChangesets()) > 0;
    }
  }
}
