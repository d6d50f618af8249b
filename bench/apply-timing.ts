/**
 * Bench-only: PostgresSink.apply wrapped with a timer, to report the database's share of a drain.
 */
import { PostgresSink } from '../lambdas/io/postgres-sink.js';

type Apply = PostgresSink['apply'];

/**
 * Runs `work` with PostgresSink.apply timed: returns its result and the milliseconds spent
 * inside apply (the database's part of a drain, round trips included).
 */
export async function timingApply<T>(
  work: () => Promise<T>,
): Promise<{ result: T; applyMs: number }> {
  const inner: Apply = PostgresSink.prototype.apply;
  let applyMs = 0;
  PostgresSink.prototype.apply = async function (this: PostgresSink, ...args: Parameters<Apply>) {
    const t = performance.now();
    try {
      return await inner.apply(this, args);
    } finally {
      applyMs += performance.now() - t;
    }
  };
  try {
    return { result: await work(), applyMs };
  } finally {
    PostgresSink.prototype.apply = inner;
  }
}
