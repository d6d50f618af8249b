import { describe, expect, it } from 'vitest';
import { type DrainTarget, drainUntilIdle } from '../../lambdas/io/drain-loop.js';
import { noDrainCounts } from '../../lambdas/io/drainer.js';
import type { DrainResult } from '../../lambdas/spillway.js';

const nothing = noDrainCounts();

/** A target whose drains answer from a script; `pending` says whether new work waits. */
function scripted(results: Partial<DrainResult>[], pending: () => number = () => 0) {
  const calls: number[] = [];
  const target: DrainTarget = {
    drain: async (deadline) => {
      calls.push(deadline);
      const next = results.shift() ?? {};
      return { ...nothing, stoppedBy: 'empty', ...next };
    },
    pendingChangesets: async () => pending(),
    breakerRetryInMs: async () => 0,
  };
  return { target, calls };
}

describe('drainUntilIdle', () => {
  it('returns after the first empty drain when the idle wait is 0, with its counts', async () => {
    const { target, calls } = scripted([{ applied: 7, batches: 2 }]);
    const result = await drainUntilIdle(target, {
      remainingMs: () => 60_000,
      marginMs: 5_000,
      idleWaitMs: 0,
    });
    expect(result).toMatchObject({ applied: 7, batches: 2, drains: 1, stoppedBy: 'empty' });
    expect(calls).toHaveLength(1);
    // The drain's deadline leaves the margin.
    expect(calls[0]).toBeLessThanOrEqual(Date.now() + 55_000);
  });

  it('drains again when new work arrives while it waits, then returns once idle', async () => {
    let waiting = 0;
    const { target, calls } = scripted(
      [
        { applied: 1, batches: 1 },
        { applied: 3, batches: 1 },
      ],
      () => waiting,
    );
    setTimeout(() => {
      waiting = 3;
    }, 60);
    const started = Date.now();
    const result = await drainUntilIdle(target, {
      remainingMs: () => 60_000,
      marginMs: 1_000,
      idleWaitMs: 300,
      pollMs: 20,
    });
    waiting = 0;
    expect(calls.length).toBeGreaterThanOrEqual(2);
    expect(result.applied).toBe(4);
    expect(result.stoppedBy).toBe('empty');
    expect(Date.now() - started).toBeGreaterThanOrEqual(300);
  });

  it('stops at once when another drainer holds the lease', async () => {
    const { target, calls } = scripted([{ stoppedBy: 'lease-held' }]);
    const result = await drainUntilIdle(target, {
      remainingMs: () => 60_000,
      marginMs: 1_000,
      idleWaitMs: 10_000,
    });
    expect(result.stoppedBy).toBe('lease-held');
    expect(calls).toHaveLength(1);
  });

  it('does not drain when the remaining time is within the margin', async () => {
    const { target, calls } = scripted([]);
    const result = await drainUntilIdle(target, {
      remainingMs: () => 4_000,
      marginMs: 5_000,
      idleWaitMs: 10_000,
    });
    expect(result).toMatchObject({ drains: 0, stoppedBy: 'deadline' });
    expect(calls).toHaveLength(0);
  });

  it('ends its idle wait as soon as the remaining time is taken away', async () => {
    let remaining = 60_000;
    const { target } = scripted([]);
    setTimeout(() => {
      remaining = 0;
    }, 50);
    const started = Date.now();
    const result = await drainUntilIdle(target, {
      remainingMs: () => remaining,
      marginMs: 1_000,
      idleWaitMs: 30_000,
      pollMs: 20,
    });
    expect(result.stoppedBy).toBe('deadline');
    expect(Date.now() - started).toBeLessThan(1_000);
  });

  it('waits for the breaker to allow a trial before draining again, and gives up when idle', async () => {
    let retryIn = 100;
    const { target, calls } = scripted([
      { stoppedBy: 'breaker-open', transientErrors: 5 },
      ...Array.from({ length: 50 }, () => ({ stoppedBy: 'breaker-open' as const })),
    ]);
    target.breakerRetryInMs = async () => {
      retryIn -= 20;
      return Math.max(0, retryIn);
    };
    const result = await drainUntilIdle(target, {
      remainingMs: () => 60_000,
      marginMs: 1_000,
      idleWaitMs: 400,
      pollMs: 20,
    });
    // Drained again once the cooldown passed, without spinning on an open breaker.
    expect(calls.length).toBeGreaterThanOrEqual(2);
    expect(calls.length).toBeLessThan(25);
    expect(result.transientErrors).toBe(5);
    expect(result.stoppedBy).toBe('breaker-open');
  });
});
