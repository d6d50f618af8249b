/**
 * The test harness itself: what every integration and fault test relies on.
 */
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import pg from 'pg';
import { afterEach, describe, expect, it } from 'vitest';
import {
  ServiceStartError,
  type Services,
  startServices,
  uniquePrefix,
  useServices,
} from '../support/services.js';

const servicesModule = fileURLToPath(new URL('../support/services.ts', import.meta.url));

/** Closed after each test, so that a failing assertion leaks no connection. */
const cleanups: Array<() => Promise<unknown>> = [];

afterEach(async () => {
  await Promise.all(cleanups.splice(0).map((cleanup) => cleanup()));
});

async function pgClient(url: string): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  cleanups.push(() => client.end());
  return client;
}

function redisClient(url: string): Redis {
  const redis = new Redis(url, { maxRetriesPerRequest: 0 });
  cleanups.push(async () => redis.disconnect());
  return redis;
}

async function scalar<T>(client: pg.Client, sql: string): Promise<T> {
  const { rows } = await client.query<{ value: T }>(sql);
  return rows[0]?.value as T;
}

/** The error code of a plain TCP connect to 127.0.0.1:port, or 'connected'. */
function tcpConnect(port: number): Promise<string> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      resolve('connected');
    });
    socket.once('error', (error: NodeJS.ErrnoException) => resolve(error.code ?? error.message));
  });
}

/** Runs the harness in a separate Node process; resolves with what it printed first. */
function startInChild(
  script: string,
): Promise<{ child: ReturnType<typeof spawn>; info: Record<string, unknown> }> {
  const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  return new Promise((resolve, reject) => {
    let out = '';
    child.stdout.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      const line = out.split('\n')[0];
      if (out.includes('\n') && line !== undefined) resolve({ child, info: JSON.parse(line) });
    });
    child.once('exit', (code) => reject(new Error(`child exited (${code}) before reporting`)));
  });
}

/** Processes working inside a harness temp dir, or naming it on their command line. */
function processesUsing(dir: string): number[] {
  return readdirSync('/proc')
    .filter((entry) => /^\d+$/.test(entry) && Number(entry) !== process.pid)
    .filter((entry) => {
      try {
        return (
          readlinkSync(`/proc/${entry}/cwd`).startsWith(dir) ||
          readFileSync(`/proc/${entry}/cmdline`, 'utf8').includes(dir)
        );
      } catch {
        // The process is gone.
        return false;
      }
    })
    .map(Number);
}

async function eventually(check: () => Promise<boolean> | boolean, timeoutMs: number) {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() >= deadline) throw new Error(`condition not met within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

describe('test harness', () => {
  const services = useServices();

  it('starts Redis, PostgreSQL and PgBouncer, each answering on its own port of 127.0.0.1', async () => {
    const { redis, postgres, pgbouncer } = services();
    expect(new Set([redis.port, postgres.port, pgbouncer.port]).size).toBe(3);
    expect(redis.url).toBe(`redis://127.0.0.1:${redis.port}`);
    expect(postgres.url).toBe(`postgres://postgres@127.0.0.1:${postgres.port}/postgres`);
    expect(pgbouncer.url).toBe(`postgres://postgres@127.0.0.1:${pgbouncer.port}/postgres`);

    const client = redisClient(redis.url);
    expect(await client.ping()).toBe('PONG');
    expect(await client.config('GET', 'maxmemory-policy')).toEqual([
      'maxmemory-policy',
      'noeviction',
    ]);
    const key = `${uniquePrefix('harness answers')}:k`;
    await client.set(key, 'v');
    expect(await client.get(key)).toBe('v');

    const direct = await pgClient(postgres.url);
    expect(await scalar(direct, 'SELECT current_user AS value')).toBe('postgres');
    expect(await scalar(direct, "SELECT current_setting('max_connections') AS value")).toBe('200');

    const bounced = await pgClient(pgbouncer.url);
    expect(await scalar(bounced, 'SELECT 41 + 1 AS value')).toBe(42);
  });

  it('uniquePrefix never repeats and keeps to characters safe inside a Redis hash tag', () => {
    const prefixes = Array.from({ length: 100 }, () => uniquePrefix('Drain {batch}: one'));
    expect(new Set(prefixes).size).toBe(100);
    for (const prefix of prefixes) expect(prefix).toMatch(/^drain-batch-one-[a-z0-9-]+$/);
  });

  it('createDatabase makes a fresh database, reachable through PgBouncer and directly', async () => {
    const { postgres, pgbouncer } = services();
    const first = await services().createDatabase();
    const second = await services().createDatabase();
    expect(first.name).not.toBe(second.name);
    expect(first.url).toBe(`postgres://postgres@127.0.0.1:${pgbouncer.port}/${first.name}`);
    expect(first.directUrl).toBe(`postgres://postgres@127.0.0.1:${postgres.port}/${first.name}`);

    const bounced = await pgClient(first.url);
    expect(await scalar(bounced, 'SELECT current_database() AS value')).toBe(first.name);
    // PgBouncer connects to PostgreSQL over TCP: the backend sees the PostgreSQL port.
    expect(await scalar(bounced, 'SELECT inet_server_port() AS value')).toBe(postgres.port);
    const direct = await pgClient(first.directUrl);
    expect(await scalar(direct, 'SELECT current_database() AS value')).toBe(first.name);
  });

  it('PgBouncer pools per transaction: between transactions a backend and its session settings pass to another client', async () => {
    const { url } = await services().createDatabase();
    const first = await pgClient(url);
    const second = await pgClient(url);

    await first.query("SET work_mem = '7MB'");
    const firstBackend = await scalar<number>(first, 'SELECT pg_backend_pid() AS value');
    // In session mode the second client would have a backend of its own, with the default 4MB.
    const seen = await second.query<{ pid: number; work_mem: string }>(
      "SELECT pg_backend_pid() AS pid, current_setting('work_mem') AS work_mem",
    );
    expect(seen.rows[0]).toEqual({ pid: firstBackend, work_mem: '7MB' });

    // Inside a transaction, though, the backend is the client's alone.
    await first.query('BEGIN');
    const held = await scalar<number>(first, 'SELECT pg_backend_pid() AS value');
    expect(await scalar<number>(second, 'SELECT pg_backend_pid() AS value')).not.toBe(held);
    await first.query('COMMIT');
  });

  it('kill() takes PostgreSQL down at once; restart() brings it back on the same port with its committed rows', async () => {
    const { postgres } = services();
    const db = await services().createDatabase();
    const writer = new pg.Client({ connectionString: db.directUrl });
    await writer.connect();
    await writer.query('CREATE TABLE survivors (id int PRIMARY KEY, note text)');
    await writer.query("INSERT INTO survivors VALUES (1, 'committed before kill -9')");
    // The open connection dies with the server (pg may report that more than once).
    const writerError = new Promise((resolve) => writer.on('error', resolve));

    const port = postgres.port;
    await postgres.kill();
    await expect(tcpConnect(port)).resolves.toBe('ECONNREFUSED');
    await expect(writerError).resolves.toBeInstanceOf(Error);

    await postgres.restart();
    expect(postgres.port).toBe(port);
    const direct = await pgClient(db.directUrl);
    expect((await direct.query('SELECT id, note FROM survivors')).rows).toEqual([
      { id: 1, note: 'committed before kill -9' },
    ]);
    // restart() also waits until PgBouncer reaches PostgreSQL again.
    const bounced = await pgClient(db.url);
    expect(await scalar(bounced, 'SELECT count(*)::int AS value FROM survivors')).toBe(1);
  });

  it('kill() takes PgBouncer down while PostgreSQL stays up; restart() brings it back on the same port', async () => {
    const { pgbouncer, postgres } = services();
    const port = pgbouncer.port;
    await pgbouncer.kill();
    await expect(tcpConnect(port)).resolves.toBe('ECONNREFUSED');
    await expect(tcpConnect(postgres.port)).resolves.toBe('connected');

    await pgbouncer.restart();
    expect(pgbouncer.port).toBe(port);
    const bounced = await pgClient(pgbouncer.url);
    expect(await scalar(bounced, 'SELECT 1 AS value')).toBe(1);
  });

  it('kill() takes Redis down; restart() brings it back on the same port, empty without appendOnly', async () => {
    const { redis } = services();
    const key = `${uniquePrefix('volatile')}:k`;
    const before = redisClient(redis.url);
    await before.set(key, 'v');

    const port = redis.port;
    await redis.kill();
    await expect(tcpConnect(port)).resolves.toBe('ECONNREFUSED');

    await redis.restart();
    expect(redis.port).toBe(port);
    const after = redisClient(redis.url);
    expect(await after.get(key)).toBeNull();
  });

  it('Redis with appendOnly keeps every acknowledged write across kill -9', async () => {
    const durable = await startServices({ redis: { appendOnly: true }, postgres: false });
    cleanups.push(() => durable.stop());
    const writer = redisClient(durable.redis.url);
    expect(await writer.config('GET', 'appendfsync')).toEqual(['appendfsync', 'always']);
    const key = `${uniquePrefix('durable')}:counter`;
    for (let i = 0; i < 50; i += 1) await writer.incr(key);

    await durable.redis.kill();
    await durable.redis.restart();
    const reader = redisClient(durable.redis.url);
    expect(await reader.get(key)).toBe('50');
  });

  it('a replica follows the primary with the same settings and holds every write WAIT says it confirmed; killed, it confirms nothing until restart() syncs it again', async () => {
    const pair = await startServices({ redis: { replica: true }, postgres: false });
    cleanups.push(() => pair.stop());
    const { redis: primary, redisReplica: replica } = pair;
    expect(replica.port).not.toBe(primary.port);
    expect(replica.url).toBe(`redis://127.0.0.1:${replica.port}`);
    expect(replica.following).toBe(true);

    const writer = redisClient(primary.url);
    const reader = redisClient(replica.url);
    const replication = await reader.info('replication');
    expect(replication).toMatch(/^role:slave\r?$/m);
    expect(replication).toMatch(new RegExp(`^master_port:${primary.port}\\r?$`, 'm'));
    expect(replication).toMatch(/^master_link_status:up\r?$/m);
    for (const setting of ['maxmemory-policy', 'appendonly', 'save']) {
      expect(await reader.config('GET', setting)).toEqual(await writer.config('GET', setting));
    }
    expect(await reader.config('GET', 'maxmemory-policy')).toEqual([
      'maxmemory-policy',
      'noeviction',
    ]);

    const key = `${uniquePrefix('replicated')}:counter`;
    for (let i = 0; i < 50; i += 1) await writer.incr(key);
    expect(await writer.wait(1, 2_000)).toBe(1);
    expect(await reader.get(key)).toBe('50');
    await expect(reader.set(key, 'from the replica')).rejects.toThrow(/READONLY/);
    // No disk without appendOnly: the full sync went over the socket, on both sides.
    expect(readdirSync(`${pair.dir}/redis`)).toEqual([]);
    expect(readdirSync(`${pair.dir}/redis-replica`)).toEqual([]);

    await replica.kill();
    await writer.incr(key);
    expect(await writer.wait(1, 100)).toBe(0);

    await replica.restart();
    expect(await writer.wait(1, 2_000)).toBe(1);
    const resynced = redisClient(replica.url);
    expect(await resynced.get(key)).toBe('51');
  });

  it('promote() makes the replica a primary that keeps what it had and takes writes after the old primary is killed, and restart() keeps it a primary', async () => {
    const pair = await startServices({ redis: { replica: true }, postgres: false });
    cleanups.push(() => pair.stop());
    const { redis: primary, redisReplica: replica } = pair;
    const key = `${uniquePrefix('promoted')}:k`;
    const writer = redisClient(primary.url);
    await writer.set(key, 'before failover');
    expect(await writer.wait(1, 2_000)).toBe(1);

    await replica.promote();
    expect(replica.following).toBe(false);
    writer.disconnect();
    await primary.kill();
    await expect(tcpConnect(primary.port)).resolves.toBe('ECONNREFUSED');

    const promoted = redisClient(replica.url);
    expect(await promoted.info('replication')).toMatch(/^role:master\r?$/m);
    expect(await promoted.get(key)).toBe('before failover');
    expect(await promoted.set(`${key}:after`, 'after failover')).toBe('OK');
    expect(await promoted.get(`${key}:after`)).toBe('after failover');

    // Following the dead primary, the restart would never see its link up.
    await replica.restart();
    const restarted = redisClient(replica.url);
    expect(await restarted.info('replication')).toMatch(/^role:master\r?$/m);
    expect(await restarted.set(key, 'writable')).toBe('OK');
  });

  it('a second startServices in the same process gets its own ports, data and temp dir, and stop() removes them', async () => {
    const first = services();
    const second = await startServices();
    cleanups.push(() => second.stop());
    const ports = (s: Services) => [s.redis.port, s.postgres.port, s.pgbouncer.port];
    expect(new Set([...ports(first), ...ports(second)]).size).toBe(6);
    expect(second.dir).not.toBe(first.dir);

    const key = `${uniquePrefix('isolation')}:k`;
    await redisClient(first.redis.url).set(key, 'first');
    expect(await redisClient(second.redis.url).get(key)).toBeNull();

    await Promise.all(cleanups.splice(0).map((cleanup) => cleanup()));
    expect(existsSync(second.dir)).toBe(false);
    for (const port of ports(second)) await expect(tcpConnect(port)).resolves.toBe('ECONNREFUSED');
    await expect(second.stop()).resolves.toBeUndefined();
  });

  it('restart() on a port that was taken meanwhile fails fast, quoting the service log', async () => {
    const own = await startServices({ postgres: false });
    cleanups.push(() => own.stop());
    const port = own.redis.port;
    await own.redis.kill();
    const squatter = createServer((socket) => socket.destroy());
    await new Promise<void>((resolve) => squatter.listen(port, '127.0.0.1', resolve));
    try {
      const started = Date.now();
      const failure = await own.redis.restart().then(
        () => undefined,
        (error: unknown) => error,
      );
      expect(failure).toBeInstanceOf(ServiceStartError);
      expect(String((failure as Error).message)).toMatch(
        new RegExp(`redis on 127.0.0.1:${port} exited[\\s\\S]*Address already in use`),
      );
      expect(Date.now() - started).toBeLessThan(5_000);
    } finally {
      await new Promise((resolve) => squatter.close(resolve));
    }
    await own.redis.restart();
    await expect(tcpConnect(port)).resolves.toBe('connected');
  });

  it('stop() while a restart is in flight leaves no process behind', async () => {
    const own = await startServices({ postgres: false });
    const port = own.redis.port;
    await own.redis.kill();
    const restarting = own.redis.restart().then(
      () => 'restarted',
      (error: unknown) => String(error),
    );
    await own.stop();
    expect(await restarting).toMatch(/stopped|ENOENT/);
    expect(processesUsing(own.dir)).toEqual([]);
    await expect(tcpConnect(port)).resolves.toBe('ECONNREFUSED');
  });

  it('a worker that exits without stop() leaves no process and no temp dir behind', async () => {
    const { child, info } = await startInChild(`
      import { startServices } from ${JSON.stringify(servicesModule)};
      const s = await startServices();
      console.log(JSON.stringify({ dir: s.dir, ports: [s.redis.port, s.postgres.port, s.pgbouncer.port] }));
      process.exit(0);
    `);
    await new Promise((resolve) => child.once('exit', resolve));
    const { dir, ports } = info as { dir: string; ports: number[] };
    expect(existsSync(dir)).toBe(false);
    expect(processesUsing(dir)).toEqual([]);
    for (const port of ports) await expect(tcpConnect(port)).resolves.toBe('ECONNREFUSED');
  });

  it('a worker killed with SIGKILL is cleaned up after by the watchdog', async () => {
    const { child, info } = await startInChild(`
      import { startServices } from ${JSON.stringify(servicesModule)};
      const s = await startServices({ pgbouncer: false });
      console.log(JSON.stringify({ dir: s.dir, ports: [s.redis.port, s.postgres.port] }));
      setInterval(() => undefined, 1_000);
    `);
    const { dir, ports } = info as { dir: string; ports: number[] };
    child.kill('SIGKILL');
    await eventually(() => !existsSync(dir), 10_000);
    await eventually(() => processesUsing(dir).length === 0, 5_000);
    for (const port of ports) await expect(tcpConnect(port)).resolves.toBe('ECONNREFUSED');
  });
});
