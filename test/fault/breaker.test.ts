import { afterAll, describe, expect, it } from 'vitest';
import { UnavailableError } from '../../lambdas/core/errors.js';
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

describe('circuit breaker across drains', () => {
  it('a committed batch resets the failures an earlier drain left, so failures that are not consecutive never open the breaker', async () => {
    const engine = await createTestEngine(services(), 'breaker-reset', {
      breaker: { threshold: 3, cooldownMs: 60_000, maxCooldownMs: 60_000 },
    });
    try {
      const { spillway } = engine;
      // Two drains each met one transient failure and then ran out of time: two failures stand.
      await spillway.control.breaker('failure');
      await spillway.control.breaker('failure');
      expect(await spillway.control.breakerStatus()).toMatchObject({
        state: 'closed',
        failures: 2,
      });

      // This drain commits a batch on its first try: the run of failures is over.
      await spillway.write({ changes: [document(uuid())] });
      expect(await spillway.drain(Date.now() + 10_000)).toMatchObject({
        stoppedBy: 'empty',
        applied: 1,
        transientErrors: 0,
      });
      expect(await spillway.control.breakerStatus()).toMatchObject({
        state: 'closed',
        failures: 0,
      });

      // So one later failure is the first of a new run, not the third.
      expect(await spillway.control.breaker('failure')).toMatchObject({
        state: 'closed',
        failures: 1,
      });
    } finally {
      await engine.close();
    }
  });
});

describe('read while PostgreSQL is down behind the proxy', () => {
  it('answers a row with a pending full write from the overlay, and fails fast with UnavailableError otherwise', async () => {
    const reader = await createTestEngine(services(), 'read-outage');
    try {
      const { spillway } = reader;
      const synced = uuid();
      const pending = uuid();
      await spillway.write({ changes: [document(synced)] });
      await drainAll(spillway);
      await spillway.write({ changes: [document(pending, { status: 'processing' })] });

      await services().postgres.kill();
      try {
        const fromOverlay = await spillway.read({
          table: 'source_documents',
          key: { document_uuid: pending },
        });
        expect(fromOverlay).toMatchObject({
          record: { document_uuid: pending, status: 'processing' },
          pending: true,
        });
        const started = Date.now();
        const error = await spillway
          .read({ table: 'source_documents', key: { document_uuid: synced } })
          .catch((e: unknown) => e);
        expect(error).toBeInstanceOf(UnavailableError);
        expect((error as UnavailableError).dependency).toBe('database');
        // The proxy would hold the query; the read's own timeout (3 s) ends it.
        expect(Date.now() - started).toBeLessThan(4_500);
      } finally {
        await services().postgres.restart();
      }
      expect(
        await spillway.read({ table: 'source_documents', key: { document_uuid: synced } }),
      ).toMatchObject({
        pending: false,
      });
    } finally {
      await reader.close();
    }
  });
});
