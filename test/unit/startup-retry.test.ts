import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { ConfigError, MigrationError, UnavailableError } from '../../lambdas/core/errors.js';
import { isStartupFailure, retryWhileStarting } from '../../lambdas/io/startup-retry.js';

/** An error as pg reports one from the server, with its SQLSTATE. */
function serverError(code: string): pg.DatabaseError {
  const error = new pg.DatabaseError(`server says ${code}`, 0, 'error');
  error.code = code;
  return error;
}

function socketError(code: string): Error {
  return Object.assign(new Error(`connect ${code} 127.0.0.1:5432`), { code });
}

describe('which failures mean the database is not reachable yet', () => {
  it('connection exceptions (08*), invalid authorization (28000) and cannot-connect-now (57P03)', () => {
    for (const code of ['08000', '08001', '08006', '08P01', '28000', '57P03']) {
      expect(isStartupFailure(serverError(code)), code).toBe(true);
    }
  });

  it('refused, reset and timed-out sockets, and unresolvable host names', () => {
    for (const code of ['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'ENOTFOUND', 'EAI_AGAIN']) {
      expect(isStartupFailure(socketError(code)), code).toBe(true);
    }
  });

  it('UnavailableError for the database, and any of the above as the cause of another error', () => {
    expect(isStartupFailure(new UnavailableError('database', 'applying 0001: refused'))).toBe(true);
    expect(isStartupFailure(new Error('wrapped', { cause: serverError('57P03') }))).toBe(true);
  });

  it('not what retrying cannot fix: a refused migration, bad settings, a wrong password, a syntax error', () => {
    expect(
      isStartupFailure(new MigrationError('migration 0001 failed', { sqlState: '42601' })),
    ).toBe(false);
    expect(isStartupFailure(new ConfigError('DB_HOST', 'missing'))).toBe(false);
    expect(isStartupFailure(new UnavailableError('redis', 'down'))).toBe(false);
    expect(isStartupFailure(serverError('28P01'))).toBe(false);
    expect(isStartupFailure(serverError('42601'))).toBe(false);
    expect(isStartupFailure(new Error('a bug'))).toBe(false);
  });
});

describe('retrying until the deadline', () => {
  /** A clock that moves only when the retry sleeps. */
  function fakeTime() {
    let t = 1_000_000;
    const waits: number[] = [];
    return {
      now: () => t,
      sleep: async (ms: number) => {
        waits.push(ms);
        t += ms;
      },
      waits,
    };
  }

  it('retries startup failures with growing, capped waits and returns the first success', async () => {
    const time = fakeTime();
    let calls = 0;
    const result = await retryWhileStarting(
      async () => {
        calls++;
        if (calls < 5) throw serverError('08006');
        return 'migrated';
      },
      {
        deadline: time.now() + 60_000,
        backoff: { baseMs: 1_000, maxMs: 4_000 },
        now: time.now,
        sleep: time.sleep,
        random: () => 0.999,
      },
    );
    expect(result).toBe('migrated');
    expect(calls).toBe(5);
    expect(time.waits).toEqual([999, 1_998, 3_996, 3_996]);
  });

  it('fails with the last error once the next attempt could not start before the deadline', async () => {
    const time = fakeTime();
    let calls = 0;
    const attempt = retryWhileStarting(
      async () => {
        calls++;
        throw new UnavailableError('database', `attempt ${calls}: connection refused`);
      },
      {
        deadline: time.now() + 10_000,
        backoff: { baseMs: 1_000, maxMs: 4_000 },
        now: time.now,
        sleep: time.sleep,
        random: () => 0.999,
      },
    );
    await expect(attempt).rejects.toThrow('attempt 4: connection refused');
    // 999 + 1,998 + 3,996 = 6,993 ms waited; a fourth wait of 3,996 would pass the deadline.
    expect(time.waits).toEqual([999, 1_998, 3_996]);
    expect(calls).toBe(4);
  });

  it('does not retry a failure retrying cannot fix', async () => {
    const time = fakeTime();
    let calls = 0;
    const attempt = retryWhileStarting(
      async () => {
        calls++;
        throw new MigrationError('migration 0001_pipeline_tables.sql failed: syntax error', {});
      },
      { deadline: time.now() + 60_000, now: time.now, sleep: time.sleep },
    );
    await expect(attempt).rejects.toBeInstanceOf(MigrationError);
    expect(calls).toBe(1);
    expect(time.waits).toEqual([]);
  });

  it('never spins: a random 0 still waits a tenth of the base', async () => {
    const time = fakeTime();
    let calls = 0;
    await retryWhileStarting(
      async () => {
        if (++calls < 3) throw socketError('ECONNREFUSED');
      },
      {
        deadline: time.now() + 60_000,
        backoff: { baseMs: 1_000, maxMs: 4_000 },
        now: time.now,
        sleep: time.sleep,
        random: () => 0,
      },
    );
    expect(time.waits).toEqual([100, 100]);
  });
});
