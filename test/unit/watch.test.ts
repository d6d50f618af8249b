import { describe, expect, it, vi } from 'vitest';
import { renderWatch, type Sample, watch } from '../../bin/watch.js';
import type { Health } from '../../lambdas/spillway.js';

function health(backlog: number, extra: Partial<Health> = {}): Health {
  return {
    status: 'ok',
    reasons: [],
    backlog,
    pendingChangesets: backlog,
    oldestPendingMs: backlog > 0 ? 42_000 : 0,
    deadLetters: 0,
    buffer: {
      changes: backlog,
      bytes: backlog * 300,
      changesLimit: 1_000_000,
      bytesLimit: 1e9,
      percentFull: 0,
    },
    breaker: 'closed',
    lastDrain: {},
    readCache: { entries: 0, bytes: 0, bytesLimit: 16 * 1024 * 1024 },
    cache: {},
    checks: { redis: { ok: true }, database: { ok: true } },
    ...extra,
  };
}

const at = (seconds: number, h: Health): Sample => ({ at: seconds * 1000, health: h });

describe('spillway watch', () => {
  it('shows the net drain rate, the time to empty and the progress since it started', () => {
    const lines = renderWatch(at(0, health(10_000)), at(10, health(6_000)), at(11, health(5_000)));
    expect(lines[0]).toBe('OK  backlog 5,000 changes, 1.4 MiB (0% of the limit)');
    expect(lines[1]).toBe('drain   1,000 changes/s net out, 5 s to empty');
    expect(lines[2]).toContain('] 50% of the backlog at start drained');
    expect(lines[3]).toMatch(/^oldest {2}42 s pending; breaker closed; dead letters 0$/);
  });

  it('says when the backlog grows, and shows the last error and every reason', () => {
    const stalled = health(2_000, {
      status: 'degraded',
      reasons: ['breaker open since 2026-12-04T10:00:00.000Z: the drain waits for the database'],
      breaker: 'open',
      lastDrain: { error: 'database unavailable: timeout' },
    });
    const lines = renderWatch(at(0, health(1_000)), at(0, health(1_000)), at(2, stalled));
    expect(lines[1]).toBe('drain   +500 changes/s net in, not shrinking');
    expect(lines).toContain('error   database unavailable: timeout');
    expect(lines.at(-1)).toMatch(/^reason {2}breaker open since/);
  });

  it('prints one line per refresh when its output is not a terminal, and stops when told', async () => {
    const log = vi.spyOn(console, 'log').mockImplementation(() => {});
    const stop = new AbortController();
    let backlog = 300;
    await watch(
      async () => {
        backlog -= 100;
        if (backlog <= 0) stop.abort();
        return health(Math.max(0, backlog));
      },
      { intervalMs: 5, signal: stop.signal, tty: false },
    );
    const lines = log.mock.calls.map(([line]) => String(line));
    log.mockRestore();
    expect(lines).toHaveLength(2);
    expect(lines[1]).toMatch(/^\d{4}-.*Z OK {2}backlog 0 changes.* \| drain .* empty/);
  });
});
