import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { createPool } from '../../lambdas/io/postgres.js';
import { useServices } from '../support/services.js';

const services = useServices({ redis: false });
const pools: pg.Pool[] = [];
afterAll(async () => {
  await Promise.all(pools.map((pool) => pool.end()));
});

function poolFor(url: string, logger = { warn: vi.fn() }) {
  const pool = createPool({ database: { kind: 'url', url }, region: undefined }, { logger });
  pools.push(pool);
  return { pool, logger };
}

/** Ends, from the server side, every other client connection to the current database. */
async function terminateOthers(directUrl: string): Promise<number> {
  const admin = new pg.Client({ connectionString: directUrl });
  await admin.connect();
  try {
    const result = await admin.query(
      `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
        WHERE pid <> pg_backend_pid() AND datname = current_database() AND backend_type = 'client backend'`,
    );
    return result.rowCount ?? 0;
  } finally {
    await admin.end();
  }
}

describe('createPool against PostgreSQL', () => {
  it('queries through PgBouncer in transaction mode with a single connection', async () => {
    const { url } = await services().createDatabase();
    const { pool } = poolFor(url);
    const results = await Promise.all([1, 2, 3].map((n) => pool.query('SELECT $1::int AS n', [n])));
    expect(results.map((r) => r.rows[0]?.n)).toEqual([1, 2, 3]);
    expect(pool.totalCount).toBe(1);
  });

  it('survives the server ending an idle connection, logs it, and reconnects', async () => {
    const { directUrl } = await services().createDatabase();
    const { pool, logger } = poolFor(directUrl);
    await pool.query('SELECT 1');
    expect(await terminateOthers(directUrl)).toBe(1);

    await vi.waitFor(() => expect(logger.warn).toHaveBeenCalled(), { timeout: 5_000 });
    expect(logger.warn.mock.calls[0]?.[0]).toMatch(/idle PostgreSQL connection failed/);
    expect((await pool.query('SELECT 2 AS n')).rows[0]?.n).toBe(2);
  });

  it('survives the server ending a checked-out connection between two queries', async () => {
    const { directUrl } = await services().createDatabase();
    const { pool, logger } = poolFor(directUrl);
    const client = await pool.connect();
    await client.query('SELECT 1');
    expect(await terminateOthers(directUrl)).toBe(1);

    // Without a listener of its own, the client's 'error' event would crash this worker here.
    await vi.waitFor(() => expect(logger.warn).toHaveBeenCalled(), { timeout: 5_000 });
    expect(logger.warn.mock.calls[0]?.[0]).toMatch(/PostgreSQL connection in use failed/);
    await expect(client.query('SELECT 1')).rejects.toThrow();
    client.release(true);

    await sleep(10);
    expect((await pool.query('SELECT 3 AS n')).rows[0]?.n).toBe(3);
  });
});
