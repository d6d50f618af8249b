import { afterAll, describe, expect, it } from 'vitest';
import { createTestEngine, document, drainAll, type TestEngine, uuid } from '../support/engine.js';
import { useServices } from '../support/services.js';

const services = useServices();
let engine: TestEngine | undefined;
afterAll(async () => {
  await engine?.close();
});

describe('circuit breaker', () => {
  it('opens after consecutive transient failures, is shared by all drainers, lets one trial through after the cool-down, and closes on success; nothing is dead-lettered', async () => {
    engine = await createTestEngine(services(), 'breaker', {
      breaker: { threshold: 3, cooldownMs: 300, maxCooldownMs: 1_000 },
      backoff: { baseMs: 1, maxMs: 5 },
    });
    const { spillway, another } = engine;
    await spillway.write({ changes: [document(uuid())] });

    // The proxy is gone: connections are refused.
    await services().pgbouncer.kill();
    const first = await spillway.drain(Date.now() + 10_000);
    expect(first).toMatchObject({
      stoppedBy: 'breaker-open',
      transientErrors: 3,
      applied: 0,
      deadLettered: 0,
    });
    expect((await spillway.health()).breaker).toBe('open');

    // Another drainer (another Lambda container) sees the same open breaker and does not try.
    const other = await another().drain(Date.now() + 10_000);
    expect(other).toMatchObject({ stoppedBy: 'breaker-open', transientErrors: 0 });

    // After the cool-down one trial batch is let through; it fails, and the breaker re-opens longer.
    await new Promise((r) => setTimeout(r, 350));
    const trial = await spillway.drain(Date.now() + 10_000);
    expect(trial).toMatchObject({ stoppedBy: 'breaker-open', transientErrors: 1 });
    const reopened = await spillway.control.breakerStatus();
    expect(reopened.state).toBe('open');
    expect(reopened.retryInMs).toBeGreaterThan(300);

    await services().pgbouncer.restart();
    await new Promise((r) => setTimeout(r, reopened.retryInMs + 50));
    await drainAll(spillway);
    expect(await spillway.health()).toMatchObject({
      status: 'ok',
      breaker: 'closed',
      backlog: 0,
      deadLetters: 0,
    });
  });
});
