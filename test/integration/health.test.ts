/**
 * `health` tells the truth (G8): `ok` only while the backlog drains; otherwise `degraded` or
 * `down` with the reason an operator acts on.
 */
import { describe, expect, it } from 'vitest';
import { document, drainAll, useTestEngines, uuid } from '../support/engine.js';

const { engine, services } = useTestEngines();

describe('health', () => {
  it('is ok with an empty backlog, and reports how full the buffer is against both limits', async () => {
    const { spillway } = await engine('health-ok', {
      backlogLimit: 10,
      backlogBytesLimit: 1_000_000,
    });
    await spillway.write({ changes: [document(), document()] });
    await drainAll(spillway);
    await spillway.write({ changes: [document(), document()] });
    const health = await spillway.health();
    expect(health).toMatchObject({
      status: 'ok',
      reasons: [],
      buffer: { changes: 2, changesLimit: 10, bytesLimit: 1_000_000, percentFull: 20 },
    });
    expect(health.buffer.bytes).toBeGreaterThan(200);
  });

  it('says degraded, with the percentage, when the buffer is past 80% of a limit, and down when it refuses writes', async () => {
    const { spillway } = await engine('health-full', { backlogLimit: 10 });
    await spillway.write({ changes: Array.from({ length: 9 }, () => document()) });
    expect(await spillway.health()).toMatchObject({
      status: 'degraded',
      reasons: [expect.stringMatching(/^buffer 90% full/)],
    });
    await spillway.write({ changes: [document()] });
    expect(await spillway.health()).toMatchObject({
      status: 'down',
      reasons: [expect.stringMatching(/^buffer 100% full: writes are refused/)],
    });
  });

  it('says degraded with the time the breaker opened while the breaker is open', async () => {
    const { spillway } = await engine('health-breaker', {
      breaker: { threshold: 1, cooldownMs: 60_000, maxCooldownMs: 60_000 },
    });
    await spillway.write({ changes: [document()] });
    await services().postgres.kill();
    try {
      const drained = await spillway.drain(Date.now() + 15_000);
      expect(drained.stoppedBy).toBe('breaker-open');
    } finally {
      await services().postgres.restart();
    }
    // The database is back, but nothing drains until the breaker's cool-down has passed.
    const health = await spillway.health();
    expect(health.checks.database).toEqual({ ok: true });
    expect(health.status).toBe('degraded');
    expect(health.breakerOpenSince).toEqual(expect.any(String));
    expect(health.reasons).toEqual([
      expect.stringMatching(/^breaker open since \d{4}-\d\d-\d\dT.*: the drain waits/),
    ]);
  });

  it('says degraded when changes wait and no drain made progress for the stall time, with what the last drain said', async () => {
    const { spillway, another } = await engine('health-stall', { stallAfterMs: 300 });
    await spillway.write({ changes: [document(uuid())] });
    // A drainer that is fenced out: another one holds the lease and never drains.
    const holder = another();
    await holder.control.acquireLease(60_000);
    const blocked = await spillway.drain(Date.now() + 5_000);
    expect(blocked.stoppedBy).toBe('lease-held');
    await new Promise((resolve) => setTimeout(resolve, 400));
    const health = await spillway.health();
    expect(health.status).toBe('degraded');
    expect(health.checks).toEqual({ redis: { ok: true }, database: { ok: true } });
    expect(health.reasons).toContainEqual(
      expect.stringMatching(
        /^backlog not draining for \d+ s \(last drain at .* stopped: lease-held\)/,
      ),
    );
  });
});
