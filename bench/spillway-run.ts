/**
 * What the drain benchmarks do with Spillway: fill the buffer with a workload's changesets
 * (acknowledged writes, untimed by the callers) and drain it to empty.
 */
import type { Spillway } from '../lambdas/spillway.js';
import type { Change } from './workloads.js';

/** Writes every changeset, 64 at a time, in order of the blocks. */
export async function fillBacklog(spillway: Spillway, changesets: readonly Change[][]) {
  for (let i = 0; i < changesets.length; i += 64) {
    await Promise.all(changesets.slice(i, i + 64).map((c) => spillway.write({ changes: c })));
  }
}

/** Drains until the backlog is empty; throws unless exactly `changes` changes were applied. */
export async function drainToEmpty(
  spillway: Spillway,
  changes: number,
): Promise<{ batches: number }> {
  let applied = 0;
  let batches = 0;
  for (;;) {
    const result = await spillway.drain(Date.now() + 600_000);
    applied += result.applied;
    batches += result.batches;
    if (result.stoppedBy === 'empty') break;
    if (result.stoppedBy !== 'deadline') throw new Error(`drain stopped by ${result.stoppedBy}`);
  }
  if (applied !== changes) throw new Error(`drain applied ${applied} of ${changes} changes`);
  return { batches };
}
