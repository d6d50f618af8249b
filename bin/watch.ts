/**
 * `spillway watch`: an operator's live view of the buffer and the drain, refreshed in place on a
 * terminal (log-update), one line per refresh otherwise (a log file, a pipe).
 */
import logUpdate from 'log-update';
import type { Health } from '../lambdas/spillway.js';

/** One look at `health`, with when it was taken. */
export interface Sample {
  readonly at: number;
  readonly health: Health;
}

const BAR_WIDTH = 30;

/**
 * The view of the latest sample, against the first (for progress) and the previous one (for
 * the rate). The rate is the backlog's net change: the drain less new writes.
 */
export function renderWatch(first: Sample, previous: Sample, latest: Sample): string[] {
  const h = latest.health;
  const seconds = (latest.at - previous.at) / 1000;
  const rate = seconds > 0 ? (previous.health.backlog - h.backlog) / seconds : 0;
  const eta =
    h.backlog === 0
      ? 'empty'
      : rate > 0
        ? `${formatDuration(h.backlog / rate)} to empty`
        : 'not shrinking';
  const start = first.health.backlog;
  const done = start > 0 ? Math.min(1, Math.max(0, (start - h.backlog) / start)) : 1;
  const filled = Math.round(done * BAR_WIDTH);
  const lines = [
    `${h.status.toUpperCase()}  backlog ${h.backlog.toLocaleString('en')} changes, ${formatBytes(h.buffer.bytes)} (${h.buffer.percentFull}% of the limit)`,
    `drain   ${rate >= 0 ? '' : '+'}${Math.abs(Math.round(rate)).toLocaleString('en')} changes/s net ${rate >= 0 ? 'out' : 'in'}, ${eta}`,
    `        [${'#'.repeat(filled)}${'.'.repeat(BAR_WIDTH - filled)}] ${Math.round(done * 100)}% of the backlog at start drained`,
    `oldest  ${h.oldestPendingMs > 0 ? `${formatDuration(h.oldestPendingMs / 1000)} pending` : 'nothing pending'}; breaker ${h.breaker}${h.breakerOpenSince ? ` since ${h.breakerOpenSince}` : ''}; dead letters ${h.deadLetters}`,
  ];
  if (h.lastDrain.error) lines.push(`error   ${h.lastDrain.error}`);
  for (const reason of h.reasons) lines.push(`reason  ${reason}`);
  return lines;
}

/** Polls `health` every `intervalMs` until `signal` aborts, drawing each sample. */
export async function watch(
  health: () => Promise<Health>,
  options: { readonly intervalMs: number; readonly signal: AbortSignal; readonly tty: boolean },
): Promise<void> {
  const take = async (): Promise<Sample> => ({ at: Date.now(), health: await health() });
  const first = await take();
  let previous = first;
  while (!options.signal.aborted) {
    await new Promise((resolve) => setTimeout(resolve, options.intervalMs));
    const latest = await take();
    const lines = renderWatch(first, previous, latest);
    if (options.tty) logUpdate(lines.join('\n'));
    else console.log(`${new Date(latest.at).toISOString()} ${lines.join(' | ')}`);
    previous = latest;
  }
  if (options.tty) logUpdate.done();
}

function formatBytes(bytes: number): string {
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KiB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
}

function formatDuration(seconds: number): string {
  if (seconds < 90) return `${Math.round(seconds)} s`;
  if (seconds < 5_400) return `${Math.round(seconds / 60)} min`;
  return `${(seconds / 3_600).toFixed(1)} h`;
}
