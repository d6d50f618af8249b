/**
 * The failures a pipeline must handle, as @aws-sdk/client-lambda sees them through the local
 * runner: BackpressureError past the backlog limit, UnavailableError while Redis is gone, and a
 * degraded but writable Spillway while PostgreSQL is gone.
 */
import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  call,
  eventually,
  invoke,
  lambdaClient,
  startRunnerProcess,
  useLocalRunner,
} from '../support/local-runner.js';
import { freePort } from '../support/ports.js';
import { startServices, uniquePrefix } from '../support/services.js';

const BACKLOG_LIMIT = 10;
const local = useLocalRunner({
  label: 'e2e-errors',
  // Append-only Redis: what the runner acknowledged survives the kill -9 below.
  services: { redis: { appendOnly: true } },
  env: {
    BACKLOG_LIMIT: String(BACKLOG_LIMIT),
    // Draining only when a test invokes sync keeps the backlog where the tests put it.
    SYNC_INTERVAL_MS: '3600000',
    SYNC_IDLE_WAIT_MS: '0',
    // Every read asks the database: only an outage makes the read cache answer (stale).
    READ_CACHE_TTL_MS: '0',
  },
});

const documents = (count: number) => ({
  changes: Array.from({ length: count }, () => {
    const id = randomUUID();
    return {
      op: 'upsert',
      table: 'source_documents',
      record: { document_uuid: id, filename: `${id}.pdf`, status: 'pending' },
    };
  }),
});

describe('errors as the SDK sees them', () => {
  it('past the backlog limit a write fails fast with BackpressureError, and succeeds again once drained', async () => {
    await call(local.lambda, 'write', documents(BACKLOG_LIMIT - 2));
    const refused = await invoke(local.lambda, 'write', documents(3));
    expect(refused.functionError).toBe('Unhandled');
    expect(refused.payload).toEqual({
      errorType: 'BackpressureError',
      errorMessage: expect.stringMatching(/limit is 10/),
    });
    const health = await call<{ backlog: number }>(local.lambda, 'health', {});
    expect(health.backlog).toBe(BACKLOG_LIMIT - 2);

    await call(local.lambda, 'sync', {});
    expect(await call(local.lambda, 'write', documents(3))).toMatchObject({ accepted: 3 });
    await call(local.lambda, 'sync', {});
  });

  it('while Redis is gone, write and sync fail with UnavailableError and health says down', async () => {
    const redis = local.services.redis;
    await redis.kill();
    try {
      const failed = await invoke(local.lambda, 'write', documents(1));
      expect(failed.functionError).toBe('Unhandled');
      expect(failed.payload).toEqual({
        errorType: 'UnavailableError',
        errorMessage: expect.stringMatching(/^redis unavailable: /),
      });
      // The drainer's own Redis calls fail untyped inside the engine; the handler types them.
      const drain = await invoke(local.lambda, 'sync', {});
      expect(drain.payload).toMatchObject({ errorType: 'UnavailableError' });

      const health = await call<Record<string, unknown>>(local.lambda, 'health', {});
      expect(health).toMatchObject({
        status: 'down',
        checks: { redis: { ok: false }, database: { ok: true } },
      });
    } finally {
      await redis.restart();
    }
    await eventually('writes to be accepted again', async () => {
      const retried = await invoke(local.lambda, 'write', documents(1));
      return retried.functionError === undefined;
    });
    await call(local.lambda, 'sync', {});
  });

  it('while PostgreSQL is gone, writes are accepted, health says degraded, a row read before answers stale, and the backlog drains after', async () => {
    const postgres = local.services.postgres;
    const synced = documents(2);
    const [readBefore, neverRead] = synced.changes.map((c) => c.record.document_uuid);
    await call(local.lambda, 'write', synced);
    await call(local.lambda, 'sync', {});
    const before = Date.now();
    await call(local.lambda, 'read', {
      table: 'source_documents',
      key: { document_uuid: readBefore },
    });
    await postgres.kill();
    let written: { changesetId: string };
    const id = randomUUID();
    try {
      written = await call<{ changesetId: string }>(local.lambda, 'write', {
        changes: [
          {
            op: 'upsert',
            table: 'source_documents',
            record: { document_uuid: id, filename: 'while-down.pdf', status: 'pending' },
          },
        ],
      });
      expect(written.changesetId).toBeDefined();
      const health = await call<Record<string, unknown>>(local.lambda, 'health', {});
      expect(health).toMatchObject({
        status: 'degraded',
        checks: { redis: { ok: true }, database: { ok: false } },
      });
      // read still answers a pending full row without the database (G4).
      expect(
        await call(local.lambda, 'read', { table: 'source_documents', key: { document_uuid: id } }),
      ).toMatchObject({ pending: true, record: { filename: 'while-down.pdf' } });
      // A synced row read before the outage answers from the read cache, marked stale...
      const stale = await call<{ cachedAt: string }>(local.lambda, 'read', {
        table: 'source_documents',
        key: { document_uuid: readBefore },
      });
      expect(stale).toMatchObject({
        record: { document_uuid: readBefore, status: 'pending' },
        pending: false,
        stale: true,
      });
      expect(Date.parse(stale.cachedAt)).toBeGreaterThanOrEqual(before);
      // ...a synced row never read fails, retryable.
      const unavailable = await invoke(local.lambda, 'read', {
        table: 'source_documents',
        key: { document_uuid: neverRead },
      });
      expect(unavailable.functionError).toBe('Unhandled');
      expect(unavailable.payload).toMatchObject({
        errorType: 'UnavailableError',
        errorMessage: expect.stringMatching(/^database unavailable/),
      });
    } finally {
      await postgres.restart();
    }
    await eventually(
      'the backlog to drain once PostgreSQL is back',
      async () => {
        await invoke(local.lambda, 'sync', {});
        const { rows } = await local.direct.query(
          'SELECT filename FROM source_documents WHERE document_uuid = $1',
          [id],
        );
        return rows.length === 1;
      },
      30_000,
    );
  });

  it('a cold start without Redis answers UnavailableError and a down health, then recovers', async () => {
    // Nothing listens there yet: the container's first connection fails.
    const port = await freePort();
    const cold = await startRunnerProcess({
      REDIS_URL: `redis://127.0.0.1:${port}`,
      DATABASE_URL: local.database.url,
      SPILLWAY_PREFIX: uniquePrefix('e2e-cold'),
      SYNC_INTERVAL_MS: '3600000',
    });
    const client = lambdaClient(cold.url);
    try {
      const failed = await invoke(client, 'write', documents(1));
      expect(failed.payload).toMatchObject({
        errorType: 'UnavailableError',
        errorMessage: expect.stringMatching(/^redis unavailable: .*ECONNREFUSED/),
      });
      expect(await call(client, 'health', {})).toMatchObject({
        status: 'down',
        backlog: -1,
        checks: { redis: { ok: false }, database: { ok: true } },
      });
      // A failed start is not remembered: once Redis is there, the next invocation connects.
      const redis = await startServices({ postgres: false, ports: { redis: port } });
      try {
        expect(await call(client, 'write', documents(1))).toMatchObject({ accepted: 1 });
        expect(await call(client, 'health', {})).toMatchObject({ status: 'ok', backlog: 1 });
      } finally {
        await redis.stop();
      }
    } finally {
      client.destroy();
      await cold.stop();
    }
  });
});
