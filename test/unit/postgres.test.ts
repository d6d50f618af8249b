import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TLSSocket } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { UnavailableError } from '../../lambdas/core/errors.js';
import {
  createPool,
  IAM_TOKEN_REUSE_MS,
  iamAuthToken,
  type PostgresConfig,
} from '../../lambdas/io/postgres.js';

const proxy: PostgresConfig = {
  database: {
    kind: 'iam',
    host: 'spillway.proxy-abc123.eu-west-1.rds.amazonaws.com',
    port: 5432,
    database: 'spillway',
    user: 'spillway_sync',
  },
  region: 'eu-west-1',
};

const fakeCredentials = { accessKeyId: 'AKIAIOSFODNN7EXAMPLE', secretAccessKey: 'fake-secret-key' };

/** A signer whose tokens are numbered, with a count of signings. */
function countingSigner() {
  let signed = 0;
  return {
    getAuthToken: vi.fn(async () => `token-${++signed}`),
  };
}

const silent = { warn: vi.fn() };

/** The password function pg will call, from the pool's options. */
function passwordOf(pool: ReturnType<typeof createPool>): () => Promise<string> {
  const password = (pool.options as { password?: unknown }).password;
  if (typeof password !== 'function') throw new Error('the pool has no password function');
  return password as () => Promise<string>;
}

describe('createPool with IAM auth (mocked AWS)', () => {
  it('connects to the proxy with TLS verified against Node’s roots, one connection per container', async () => {
    const pool = createPool(proxy, { signer: countingSigner(), logger: silent });
    expect(pool.options).toMatchObject({
      host: proxy.database.kind === 'iam' ? proxy.database.host : '',
      port: 5432,
      database: 'spillway',
      user: 'spillway_sync',
      max: 1,
      ssl: { rejectUnauthorized: true },
    });
    // No CA bundle: RDS Proxy certificates chain to Amazon roots that Node trusts.
    expect(pool.options.ssl).toEqual({ rejectUnauthorized: true });
    expect(pool.options.connectionTimeoutMillis).toBeGreaterThan(0);
    expect(pool.options.idleTimeoutMillis).toBeGreaterThan(0);
    expect(pool.options).not.toHaveProperty('connectionString');
    await pool.end();
  });

  it('reuses a token, then signs a new one before the 15-minute expiry (mocked AWS)', async () => {
    let now = 1_700_000_000_000;
    const signer = countingSigner();
    const pool = createPool(proxy, { signer, now: () => now, logger: silent });
    const password = passwordOf(pool);

    expect(await password()).toBe('token-1');
    now += 5 * 60_000;
    expect(await password()).toBe('token-1');
    now += IAM_TOKEN_REUSE_MS - 5 * 60_000 - 1;
    expect(await password()).toBe('token-1');
    expect(signer.getAuthToken).toHaveBeenCalledTimes(1);

    now += 1;
    expect(await password()).toBe('token-2');
    expect(signer.getAuthToken).toHaveBeenCalledTimes(2);
    expect(IAM_TOKEN_REUSE_MS).toBeLessThan(15 * 60_000);
    await pool.end();
  });

  it('shares one signing between concurrent connects (mocked AWS)', async () => {
    const signer = countingSigner();
    const token = iamAuthToken({ signer });
    expect(await Promise.all([token(), token(), token()])).toEqual([
      'token-1',
      'token-1',
      'token-1',
    ]);
    expect(signer.getAuthToken).toHaveBeenCalledTimes(1);
  });

  it('signs again when the clock goes backwards (mocked AWS)', async () => {
    let now = 10 * IAM_TOKEN_REUSE_MS;
    const token = iamAuthToken({ signer: countingSigner(), now: () => now });
    expect(await token()).toBe('token-1');
    now -= 1;
    expect(await token()).toBe('token-2');
  });

  it('does not remember a failed signing, and reports it as the database being unavailable (mocked AWS)', async () => {
    const signer = {
      getAuthToken: vi
        .fn<() => Promise<string>>()
        .mockRejectedValueOnce(new Error('Could not load credentials from any providers'))
        .mockResolvedValueOnce('token-after-failure'),
    };
    const token = iamAuthToken({ signer });
    const failure = await token().catch((error: unknown) => error);
    expect(failure).toBeInstanceOf(UnavailableError);
    expect((failure as UnavailableError).dependency).toBe('database');
    expect((failure as Error).message).toMatch(
      /cannot sign an IAM auth token: Could not load credentials/,
    );
    expect(await token()).toBe('token-after-failure');
  });

  it('signs tokens for the proxy endpoint and user with the function’s credentials (mocked AWS: fake credentials, signed locally)', async () => {
    const pool = createPool(proxy, { credentials: fakeCredentials, logger: silent });
    const token = await passwordOf(pool)();
    const url = new URL(`https://${token}`);
    expect(url.host).toBe('spillway.proxy-abc123.eu-west-1.rds.amazonaws.com:5432');
    expect(url.searchParams.get('Action')).toBe('connect');
    expect(url.searchParams.get('DBUser')).toBe('spillway_sync');
    expect(url.searchParams.get('X-Amz-Expires')).toBe('900');
    expect(url.searchParams.get('X-Amz-Credential')).toMatch(
      /^AKIAIOSFODNN7EXAMPLE\/\d{8}\/eu-west-1\/rds-db\/aws4_request$/,
    );
    expect(url.searchParams.get('X-Amz-Signature')).toMatch(/^[0-9a-f]{64}$/);
    await pool.end();
  });
});

describe('createPool with DATABASE_URL', () => {
  it('connects as the URL says, with one connection and no IAM token', async () => {
    const url = 'postgres://spillway@127.0.0.1:6432/spillway';
    const pool = createPool(
      { database: { kind: 'url', url }, region: undefined },
      { logger: silent },
    );
    expect(pool.options).toMatchObject({ connectionString: url, max: 1 });
    expect((pool.options as { password?: unknown }).password).toBeUndefined();
    await pool.end();
  });

  it('honours a larger pool when asked (the local runner serving many functions)', async () => {
    const pool = createPool(
      { database: { kind: 'url', url: 'postgres://x@127.0.0.1/x' }, region: undefined },
      { max: 4, logger: silent },
    );
    expect(pool.options.max).toBe(4);
    await pool.end();
  });

  it('logs an idle connection’s failure instead of crashing the process', async () => {
    const logger = { warn: vi.fn() };
    const pool = createPool(
      { database: { kind: 'url', url: 'postgres://x@127.0.0.1/x' }, region: undefined },
      { logger },
    );
    const failure = new Error('terminating connection due to administrator command');
    expect(() => pool.emit('error', failure)).not.toThrow();
    expect(logger.warn).toHaveBeenCalledWith(
      expect.stringMatching(/idle PostgreSQL connection failed/),
      {
        error: failure,
      },
    );
    await pool.end();
  });
});

describe('TLS to the proxy', () => {
  let dir: string;
  let server: Server;
  let port: number;
  const sockets = new Set<Socket>();

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'spillway-tls-'));
    // A throwaway self-signed certificate: what a man in the middle would present.
    execFileSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'ec',
        '-pkeyopt',
        'ec_paramgen_curve:prime256v1',
        '-nodes',
        '-subj',
        '/CN=127.0.0.1',
        '-days',
        '1',
        '-keyout',
        join(dir, 'key.pem'),
        '-out',
        join(dir, 'cert.pem'),
      ],
      { stdio: 'ignore' },
    );
    const key = readFileSync(join(dir, 'key.pem'));
    const cert = readFileSync(join(dir, 'cert.pem'));

    // Speaks just enough PostgreSQL to accept the SSLRequest, then offers TLS with that certificate.
    server = createServer((socket) => {
      sockets.add(socket);
      socket.once('data', () => {
        socket.write('S');
        const tls = new TLSSocket(socket, { isServer: true, key, cert });
        tls.on('error', () => socket.destroy());
      });
      socket.on('error', () => undefined);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const address = server.address();
    port = typeof address === 'object' && address !== null ? address.port : 0;
  });

  afterAll(async () => {
    for (const socket of sockets) socket.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
    rmSync(dir, { recursive: true, force: true });
  });

  it('refuses a server whose certificate does not chain to a trusted root, before sending the token (mocked AWS)', async () => {
    const signer = countingSigner();
    const pool = createPool(
      {
        database: {
          kind: 'iam',
          host: '127.0.0.1',
          port,
          database: 'spillway',
          user: 'spillway_sync',
        },
        region: 'eu-west-1',
      },
      { signer, logger: silent },
    );
    const failure = await pool.query('SELECT 1').catch((error: unknown) => error);
    expect(failure).toMatchObject({ code: 'DEPTH_ZERO_SELF_SIGNED_CERT' });
    expect(signer.getAuthToken).not.toHaveBeenCalled();
    await pool.end();
  });
});
