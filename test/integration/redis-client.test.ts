import { createConnection, createServer, type Socket } from 'node:net';
import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { UnavailableError } from '../../lambdas/core/errors.js';
import type { SpillwayConfig } from '../../lambdas/io/config.js';
import { createRedis, toUnavailable } from '../../lambdas/io/redis.js';
import { freePort } from '../support/ports.js';
import {
  type SecretsExtensionStandIn,
  startSecretsExtension,
} from '../support/secrets-extension.js';
import { useServices } from '../support/services.js';

const services = useServices({ postgres: false });
const clients: Redis[] = [];
afterAll(() => {
  for (const client of clients) client.disconnect();
});

const quiet = () => ({ warn: vi.fn(), info: vi.fn() });

async function track(client: Promise<Redis>): Promise<Redis> {
  const created = await client;
  clients.push(created);
  return created;
}

/** The error `promise` rejects with, and how long that took. */
async function failureOf(promise: Promise<unknown>): Promise<{ error: unknown; ms: number }> {
  const started = Date.now();
  try {
    await promise;
  } catch (error) {
    return { error, ms: Date.now() - started };
  }
  throw new Error('expected a failure');
}

/**
 * A TCP proxy to Redis whose open connections can be made to go silent, as a flow that Lambda's
 * VPC networking forgot while the container was frozen: nothing arrives, nothing closes.
 */
async function silencingProxy(targetPort: number) {
  const open = new Set<{ client: Socket; upstream: Socket; silent: boolean }>();
  const server = createServer((client) => {
    const upstream = createConnection({ host: '127.0.0.1', port: targetPort });
    const link = { client, upstream, silent: false };
    open.add(link);
    client.on('data', (chunk) => link.silent || upstream.write(chunk));
    upstream.on('data', (chunk) => link.silent || client.write(chunk));
    const close = () => {
      open.delete(link);
      client.destroy();
      upstream.destroy();
    };
    client.on('close', close).on('error', close);
    upstream.on('close', close).on('error', close);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  const port = typeof address === 'object' && address !== null ? address.port : 0;
  return {
    url: `redis://127.0.0.1:${port}`,
    silenceOpenConnections: () => {
      for (const link of open) link.silent = true;
    },
    close: async () => {
      for (const link of open) {
        link.client.destroy();
        link.upstream.destroy();
      }
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

describe('createRedis with REDIS_URL', () => {
  const local = (): Pick<SpillwayConfig, 'redis' | 'region'> => ({
    redis: { kind: 'url', url: services().redis.url },
    region: undefined,
  });

  it('connects to a local redis-server', async () => {
    const redis = await track(createRedis(local(), { logger: quiet() }));
    expect(redis.status).toBe('ready');
    expect(await redis.ping()).toBe('PONG');
  });

  it('fails fast with UnavailableError when nothing listens', async () => {
    const port = await freePort();
    const { error, ms } = await failureOf(
      createRedis(
        { redis: { kind: 'url', url: `redis://127.0.0.1:${port}` } },
        { logger: quiet() },
      ),
    );
    expect(error).toBeInstanceOf(UnavailableError);
    expect(error).toMatchObject({
      dependency: 'redis',
      message: expect.stringMatching(/ECONNREFUSED/),
    });
    expect(ms).toBeLessThan(2_000);
  });

  it('turns an outage into UnavailableError within seconds, then recovers on the same client', async () => {
    const redis = await track(createRedis(local(), { logger: quiet() }));
    await redis.set('outage-probe', 'before');
    await services().redis.kill();
    try {
      const { error, ms } = await failureOf(
        redis.get('outage-probe').catch((e: unknown) => Promise.reject(toUnavailable(e))),
      );
      expect(error).toBeInstanceOf(UnavailableError);
      expect(ms).toBeLessThan(6_000);
    } finally {
      await services().redis.restart();
    }
    // Redis keeps nothing on disk here: the point is that the client reconnects by itself.
    await vi.waitFor(async () => expect(await redis.ping()).toBe('PONG'), {
      timeout: 10_000,
      interval: 200,
    });
  });
});

describe('a warm container whose connection went silent while frozen', () => {
  it('replaces the silent connection and completes the write on a new one', async () => {
    const proxy = await silencingProxy(services().redis.port);
    try {
      const redis = await track(
        createRedis(
          { redis: { kind: 'url', url: proxy.url } },
          { logger: quiet(), socketTimeoutMs: 1_000, commandTimeoutMs: 5_000 },
        ),
      );
      await redis.set('frozen-probe', 'before');
      proxy.silenceOpenConnections();

      const started = Date.now();
      expect(await redis.set('frozen-probe', 'after')).toBe('OK');
      expect(Date.now() - started).toBeGreaterThanOrEqual(1_000);
      expect(await redis.get('frozen-probe')).toBe('after');
      redis.disconnect();
    } finally {
      await proxy.close();
    }
  });
});

describe('createRedis with ElastiCache AUTH through the Parameters and Secrets extension (mocked AWS API on 127.0.0.1)', () => {
  let standIn: SecretsExtensionStandIn;
  beforeAll(async () => {
    standIn = await startSecretsExtension();
  });
  /** Clients of the current test, closed after it so that they stop reconnecting. */
  const testClients: Redis[] = [];
  afterEach(() => {
    for (const client of testClients.splice(0)) client.disconnect();
  });

  let arnCounter = 0;
  let arn = '';
  /** Redis's password right now ('' = none). */
  let requiredPassword = '';

  /** A new secret (the token cache is per container and ARN) that the stand-in serves. */
  function newSecret(value: string): string {
    arn = `arn:aws:secretsmanager:eu-west-1:123456789012:secret:redis-it-${++arnCounter}-AbCdEf`;
    standIn.setSecret(arn, value);
    return arn;
  }
  /** Rotates the current test's secret. */
  const setSecret = (value: string) => standIn.setSecret(arn, value);

  const elasticache = (authSecretArn: string): Pick<SpillwayConfig, 'redis'> => ({
    redis: {
      kind: 'elasticache',
      host: '127.0.0.1',
      port: services().redis.port,
      tls: false,
      authSecretArn,
    },
  });

  /** Rotates Redis's password and drops every other connection, as a rotation plus a failover would. */
  async function setRedisPassword(password: string): Promise<void> {
    const admin = new Redis(services().redis.url, {
      password: requiredPassword || undefined,
      lazyConnect: true,
    });
    admin.on('error', () => undefined);
    await admin.connect();
    try {
      await admin.config('SET', 'requirepass', password);
      await admin.call('CLIENT', 'KILL', 'TYPE', 'normal', 'SKIPME', 'yes');
      requiredPassword = password;
    } finally {
      admin.disconnect();
    }
  }

  afterAll(async () => {
    await setRedisPassword('');
    await standIn.close();
  });

  /** Reads of the current test's secret. */
  const reads = () => standIn.reads(arn);

  async function connect(
    authSecretArn: string,
    logger = quiet(),
    now?: () => number,
  ): Promise<Redis> {
    const client = await createRedis(elasticache(authSecretArn), {
      secretsExtension: standIn.extension,
      logger,
      now,
    });
    testClients.push(client);
    return client;
  }

  it('reads the AUTH token once per container (mocked AWS API)', async () => {
    await setRedisPassword('token-a');
    newSecret('{"token":"token-a"}');
    const first = await connect(arn);
    const second = await connect(arn);
    expect(await first.ping()).toBe('PONG');
    expect(await second.ping()).toBe('PONG');
    expect(reads()).toBe(1);
  });

  it('re-reads the secret once after a WRONGPASS and reconnects with the rotated token (mocked AWS API)', async () => {
    await setRedisPassword('token-b1');
    newSecret('token-b1');
    const logger = quiet();
    const redis = await connect(arn, logger);
    expect(reads()).toBe(1);

    setSecret('token-b2');
    await setRedisPassword('token-b2');

    await vi.waitFor(async () => expect(await redis.ping()).toBe('PONG'), {
      timeout: 10_000,
      interval: 100,
    });
    expect(reads()).toBe(2);
    expect(
      logger.warn.mock.calls.some(([, extra]) => /WRONGPASS/.test(String(extra?.error?.message))),
    ).toBe(true);
  });

  it('does not re-read the secret on every refusal, only once per interval (mocked AWS API)', async () => {
    await setRedisPassword('token-e1');
    newSecret('token-e1');
    let clock = 0;
    const redis = await connect(arn, quiet(), () => clock);

    // Redis moved on but the secret did not (yet): every reconnection attempt is refused.
    await setRedisPassword('token-e2');
    await vi.waitFor(() => expect(reads()).toBe(2), { timeout: 5_000 });
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    expect(reads()).toBe(2);

    // Once the interval has passed, the next refusal reads the secret again.
    setSecret('token-e2');
    clock += 30_000;
    await vi.waitFor(async () => expect(await redis.ping()).toBe('PONG'), {
      timeout: 10_000,
      interval: 100,
    });
    expect(reads()).toBe(3);
  });

  it('re-reads a token cached before a rotation when a new client is refused (mocked AWS API)', async () => {
    await setRedisPassword('token-c1');
    newSecret('token-c1');
    const earlier = await connect(arn);
    expect(await earlier.ping()).toBe('PONG');
    earlier.disconnect();

    // A client created later in the same container starts from token-c1 in the cache.
    setSecret('token-c2');
    await setRedisPassword('token-c2');
    const redis = await connect(arn);
    expect(await redis.ping()).toBe('PONG');
    expect(reads()).toBe(2);
  });

  it('gives up with UnavailableError when the re-read token is refused too, reading the secret only once more (mocked AWS API)', async () => {
    await setRedisPassword('token-d-right');
    newSecret('token-d-wrong');
    const { error, ms } = await failureOf(
      createRedis(elasticache(arn), { secretsExtension: standIn.extension, logger: quiet() }),
    );
    expect(error).toBeInstanceOf(UnavailableError);
    expect(error).toMatchObject({
      dependency: 'redis',
      message: expect.stringMatching(/WRONGPASS/),
    });
    expect(ms).toBeLessThan(3_000);
    expect(reads()).toBe(2);
  });
});
