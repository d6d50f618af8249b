/**
 * `migrate` during a deployment: the proxy's port refuses connections for a while, then the
 * database answers. Here the port is a local one where nothing listens at first; after a short
 * time a forwarder to PgBouncer (standing in for RDS Proxy) starts listening on it.
 */
import net from 'node:net';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { messageOf, UnavailableError } from '../../lambdas/core/errors.js';
import { runMigrations } from '../../lambdas/io/migrator.js';
import { retryWhileStarting } from '../../lambdas/io/startup-retry.js';
import { freePort } from '../support/ports.js';
import { useServices } from '../support/services.js';

const services = useServices({ redis: false });
const closers: (() => Promise<unknown>)[] = [];
afterAll(async () => {
  for (const close of closers.splice(0).reverse()) await close();
});

/** Listens on `port` and pipes every connection to `target`. */
async function forward(port: number, target: URL): Promise<net.Server> {
  const server = net.createServer((client) => {
    const upstream = net.connect(Number(target.port), target.hostname);
    client.pipe(upstream).pipe(client);
    client.on('error', () => upstream.destroy());
    upstream.on('error', () => client.destroy());
  });
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  closers.push(() => new Promise((resolve) => server.close(resolve)));
  return server;
}

function poolThrough(port: number, url: URL): pg.Pool {
  const through = new URL(url);
  through.hostname = '127.0.0.1';
  through.port = String(port);
  const pool = new pg.Pool({ connectionString: through.toString(), max: 1 });
  closers.push(() => pool.end());
  return pool;
}

describe('migrate while the database comes up', () => {
  it('retries a refused connection and migrates once the port answers', async () => {
    const { url } = await services().createDatabase();
    const port = await freePort();
    const pool = poolThrough(port, new URL(url));
    const retries: string[] = [];
    const started = Date.now();
    setTimeout(() => void forward(port, new URL(url)), 1_500);

    const result = await retryWhileStarting(() => runMigrations(pool), {
      deadline: Date.now() + 20_000,
      backoff: { baseMs: 200, maxMs: 500 },
      onRetry: (error) => retries.push(messageOf(error)),
    });

    expect(Date.now() - started).toBeGreaterThanOrEqual(1_500);
    expect(retries.length).toBeGreaterThan(0);
    expect(retries[0]).toMatch(/^database unavailable: .*ECONNREFUSED/);
    expect(result.applied).toEqual([
      '0000_spillway_bookkeeping',
      '0001_pipeline_tables',
      '0002_spillway_epochs',
    ]);
    const { rows } = await pool.query('SELECT count(*)::int AS n FROM source_documents');
    expect(rows).toEqual([{ n: 0 }]);
  }, 30_000);

  it('fails with the last connection error when the port never answers', async () => {
    const { url } = await services().createDatabase();
    const pool = poolThrough(await freePort(), new URL(url));
    const started = Date.now();
    const attempt = retryWhileStarting(() => runMigrations(pool), {
      deadline: Date.now() + 1_500,
      backoff: { baseMs: 100, maxMs: 300 },
    });
    await expect(attempt).rejects.toBeInstanceOf(UnavailableError);
    await expect(attempt).rejects.toThrow(/ECONNREFUSED/);
    expect(Date.now() - started).toBeLessThan(5_000);
  }, 30_000);
});
