/**
 * What the benchmark scripts share: the process's memory over time, Redis's memory, medians,
 * rates, timed calls and their percentiles, and the load average they print beside every figure.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import type { Redis } from 'ioredis';

/** Peak RSS and heap of this process while it runs, and the RSS over time (for the chart). */
export class PeakMemory {
  rss = 0;
  heap = 0;
  timeline: { ms: number; rssMiB: number }[] = [];
  private started = 0;
  private timer: NodeJS.Timeout | undefined;
  start(): void {
    this.rss = 0;
    this.heap = 0;
    this.timeline = [];
    this.started = performance.now();
    this.sample();
    this.timer = setInterval(() => this.sample(), 20);
  }
  stop(): { rssMiB: number; heapMiB: number } {
    clearInterval(this.timer);
    this.sample();
    return { rssMiB: Math.round(this.rss / 2 ** 20), heapMiB: Math.round(this.heap / 2 ** 20) };
  }
  private sample(): void {
    const m = process.memoryUsage();
    this.rss = Math.max(this.rss, m.rss);
    this.heap = Math.max(this.heap, m.heapUsed);
    const ms = Math.round(performance.now() - this.started);
    const last = this.timeline.at(-1);
    if (last === undefined || ms - last.ms >= 100) {
      this.timeline.push({ ms, rssMiB: Math.round(m.rss / 2 ** 20) });
    }
  }
}

/** Redis's `used_memory`, in bytes. */
export async function usedMemory(redis: Redis): Promise<number> {
  const info = await redis.info('memory');
  return Number(/used_memory:(\d+)/.exec(info)?.[1] ?? Number.NaN);
}

export const median = (values: readonly number[]): number => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? Number.NaN;
};
/** Per second, from a count and milliseconds. */
export const rate = (n: number, ms: number) => Math.round(n / (ms / 1000));
/** The load average, as `uptime` prints it. */
export const load = () =>
  loadavg()
    .map((l) => l.toFixed(1))
    .join(' ');

/**
 * Writes a benchmark's figures to bench/results/<name>-<time>.json and its chart beside them
 * (.svg); returns the path without extension.
 */
export function writeResults(name: string, figures: { measuredAt: string }, svg: string): string {
  mkdirSync('bench/results', { recursive: true });
  const base = `bench/results/${name}-${figures.measuredAt.replace(/[:.]/g, '-')}`;
  writeFileSync(`${base}.json`, `${JSON.stringify(figures, null, 2)}\n`);
  writeFileSync(`${base}.svg`, svg);
  return base;
}

/** Runs `call` `count` times over `callers` concurrent callers; each call's time in ms. */
export async function timed(
  call: () => Promise<void>,
  count: number,
  callers: number,
): Promise<number[]> {
  const times: number[] = [];
  let started = 0;
  const caller = async () => {
    while (started < count) {
      started++;
      const t = performance.now();
      await call();
      times.push(performance.now() - t);
    }
  };
  await Promise.all(Array.from({ length: callers }, caller));
  return times;
}

/** The nearest-rank percentile, in ms to two decimals. */
export function percentile(values: readonly number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  const value = sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
  return Math.round((value ?? Number.NaN) * 100) / 100;
}
