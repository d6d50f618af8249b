/**
 * Every query Spillway sends is bounded on the server as well as on the client (G7): work the
 * client gave up on is cancelled by PostgreSQL, so that callers retrying behind a lock do not
 * pile up backends until the database refuses connections.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type pg from 'pg';
import { describe, expect, it } from 'vitest';
import { UnavailableError } from '../../lambdas/core/errors.js';
import { MIGRATION_LOCK_KEY, runMigrations } from '../../lambdas/io/migrator.js';
import { document, useTestEngines, uuid } from '../support/engine.js';

const { engine } = useTestEngines();

/** Opens a transaction on a connection of `direct` that holds `lock` until `release()`. */
async function holdLock(direct: pg.Pool, lock: string) {
  const client = await direct.connect();
  await client.query('BEGIN');
  await client.query(lock);
  const pid = (await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]?.pid;
  return {
    pid,
    release: async () => {
      await client.query('ROLLBACK');
      client.release();
    },
  };
}

/** Backends of this database, other than `except`, waiting for a lock. */
async function waitingBackends(direct: pg.Pool, except: number | undefined): Promise<string[]> {
  const result = await direct.query<{ query: string }>(
    `SELECT query FROM pg_stat_activity
      WHERE datname = current_database() AND wait_event_type = 'Lock' AND pid <> $1`,
    [except ?? 0],
  );
  return result.rows.map((row) => row.query);
}

/** Waiting backends once the server had `graceMs` to act on its own timeouts. */
async function waitingAfter(direct: pg.Pool, except: number | undefined, graceMs = 1_000) {
  const until = Date.now() + graceMs;
  for (;;) {
    const waiting = await waitingBackends(direct, except);
    if (waiting.length === 0 || Date.now() > until) return waiting;
    await sleep(50);
  }
}

/** Settles `work` or fails after `ms`: the way a hang shows up as a failure, not a test timeout. */
function within<T>(ms: number, work: Promise<T>): Promise<PromiseSettledResult<T>> {
  return Promise.race([
    work.then(
      (value) => ({ status: 'fulfilled', value }) as const,
      (reason: unknown) => ({ status: 'rejected', reason }) as const,
    ),
    sleep(ms).then(() => {
      throw new Error(`still waiting after ${ms} ms`);
    }),
  ]);
}

describe('queries bounded on the server', () => {
  it('reads behind an ACCESS EXCLUSIVE lock are cancelled by the server, leaving no backend waiting', async () => {
    const { spillway, direct } = await engine('bounded-reads');
    const lock = await holdLock(direct, 'LOCK TABLE source_documents IN ACCESS EXCLUSIVE MODE');
    try {
      const started = Date.now();
      const reads = await Promise.allSettled(
        Array.from({ length: 20 }, () =>
          spillway.read({ table: 'source_documents', key: { document_uuid: uuid() } }),
        ),
      );
      const health = await spillway.health();
      expect(Date.now() - started).toBeLessThan(10_000);
      expect(await waitingAfter(direct, lock.pid)).toEqual([]);
      for (const read of reads) {
        expect(read.status).toBe('rejected');
        if (read.status === 'rejected') expect(read.reason).toBeInstanceOf(UnavailableError);
      }
      // At least the reads that reached the server were cancelled there, for the lock.
      const messages = reads.map((r) => (r.status === 'rejected' ? String(r.reason) : ''));
      expect(
        messages.some((m) => /canceling statement due to (lock|statement) timeout/.test(m)),
      ).toBe(true);
      // A ping does not touch the table: it answers.
      expect(health.checks.database).toEqual({ ok: true });
    } finally {
      await lock.release();
    }
    const doc = uuid();
    await spillway.write({ changes: [document(doc)] });
    expect(
      await spillway.read({ table: 'source_documents', key: { document_uuid: doc } }),
    ).toMatchObject({ pending: true });
  });

  it('a drain behind a lock gives up at its transaction timeout and leaves no backend waiting', async () => {
    const { another, direct } = await engine('bounded-drain');
    const spillway = another({ transactionTimeoutMs: 1_000 });
    await spillway.write({ changes: [document(uuid())] });
    const lock = await holdLock(direct, 'LOCK TABLE source_documents IN ACCESS EXCLUSIVE MODE');
    try {
      const result = await within(10_000, spillway.drain(Date.now() + 2_500));
      expect(result.status).toBe('fulfilled');
      if (result.status === 'fulfilled') {
        expect(result.value).toMatchObject({ applied: 0, deadLettered: 0 });
        expect(result.value.transientErrors).toBeGreaterThan(0);
      }
      expect(await waitingAfter(direct, lock.pid)).toEqual([]);
    } finally {
      await lock.release();
    }
    expect(await spillway.drain(Date.now() + 10_000)).toMatchObject({
      applied: 1,
      deadLettered: 0,
    });
  });

  it('a migration waiting for another runner past its timeout is cancelled by the server and says why', async () => {
    const { pool, direct } = await engine('bounded-migration');
    const lock = await holdLock(direct, `SELECT pg_advisory_xact_lock(${MIGRATION_LOCK_KEY})`);
    try {
      const result = await within(10_000, runMigrations(pool, { timeoutMs: 500 }));
      expect(result.status).toBe('rejected');
      if (result.status === 'rejected')
        expect(String(result.reason)).toMatch(
          /canceling statement due to (lock|statement) timeout/,
        );
      expect(await waitingAfter(direct, lock.pid)).toEqual([]);
    } finally {
      await lock.release();
    }
    expect((await runMigrations(pool, { timeoutMs: 5_000 })).applied).toEqual([]);
  });
});
