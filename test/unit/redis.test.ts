import { ReplyError } from 'ioredis';
import { MaxRetriesPerRequestError } from 'ioredis/built/errors/index.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BackpressureError, UnavailableError, ValidationError } from '../../lambdas/core/errors.js';
import {
  isAuthFailure,
  isRedisUnavailable,
  readRedisAuthToken,
  redisCall,
  SECRETS_EXTENSION_PORT,
  secretsExtensionOf,
  toUnavailable,
} from '../../lambdas/io/redis.js';
import { freePort } from '../support/ports.js';
import {
  type SecretsExtensionStandIn,
  startSecretsExtension,
} from '../support/secrets-extension.js';

let arnCounter = 0;
/** A secret ARN no other test used: the token cache is per container, keyed by ARN. */
const freshArn = () =>
  `arn:aws:secretsmanager:eu-west-1:123456789012:secret:spillway/redis-${++arnCounter}-AbCdEf`;

function socketError(code: string, syscall = 'connect'): Error {
  return Object.assign(new Error(`${syscall} ${code} 10.0.0.12:6379`), { code, syscall });
}

describe('toUnavailable', () => {
  it.each<[string, Error]>([
    ['a refused connection', socketError('ECONNREFUSED')],
    ['a connect timeout', socketError('ETIMEDOUT')],
    ['a reset connection', socketError('ECONNRESET', 'read')],
    ['an unknown host', socketError('ENOTFOUND', 'getaddrinfo')],
    [
      'an untrusted certificate',
      Object.assign(new Error('self-signed certificate'), { code: 'DEPTH_ZERO_SELF_SIGNED_CERT' }),
    ],
    ['a closed connection', new Error('Connection is closed.')],
    [
      'the offline queue being off',
      new Error("Stream isn't writeable and enableOfflineQueue options is false"),
    ],
    ['a command timeout', new Error('Command timed out')],
    [
      'a socket timeout',
      new Error("Socket timeout. Expecting data, but didn't receive any in 5000ms."),
    ],
    ['running out of reconnection attempts', new MaxRetriesPerRequestError(1)],
    [
      'Redis still loading its data',
      new ReplyError('LOADING Redis is loading the dataset in memory'),
    ],
    [
      'a failover in progress',
      new ReplyError("READONLY You can't write against a read only replica."),
    ],
    [
      'a refused AUTH token',
      new ReplyError('WRONGPASS invalid username-password pair or user is disabled.'),
    ],
    ['a missing AUTH token', new ReplyError('NOAUTH Authentication required.')],
  ])('makes %s an UnavailableError of redis, keeping the cause', (_label, error) => {
    const mapped = toUnavailable(error);
    expect(mapped).toBeInstanceOf(UnavailableError);
    expect(mapped).toMatchObject({ dependency: 'redis', retryable: true, cause: error });
    expect(mapped.message).toBe(`redis unavailable: ${error.message}`);
    expect(isRedisUnavailable(error)).toBe(true);
  });

  it.each<[string, Error]>([
    ['an unknown command', new ReplyError("ERR unknown command 'NOPE'")],
    [
      'a wrong key type',
      new ReplyError('WRONGTYPE Operation against a key holding the wrong kind of value'),
    ],
    ['a script refusing on purpose', new ReplyError('BACKLOG full')],
    ['a validation error', new ValidationError('changes[0].table', 'unknown table')],
    ['a backpressure error', new BackpressureError(10, 5)],
    ['a programming error', new TypeError('x is not a function')],
    [
      'a Node argument error',
      Object.assign(new TypeError('The "key" argument must be of type string'), {
        code: 'ERR_INVALID_ARG_TYPE',
      }),
    ],
  ])('leaves %s unchanged', (_label, error) => {
    expect(toUnavailable(error)).toBe(error);
    expect(isRedisUnavailable(error)).toBe(false);
  });

  it('keeps an UnavailableError as it is and wraps a thrown non-error', () => {
    const unavailable = new UnavailableError('database', 'proxy down');
    expect(toUnavailable(unavailable)).toBe(unavailable);
    expect(isRedisUnavailable(unavailable)).toBe(false);
    const wrapped = toUnavailable('boom');
    expect(wrapped).toBeInstanceOf(Error);
    expect(wrapped.message).toBe('boom');
  });
});

describe('redisCall', () => {
  it('makes an outage an UnavailableError of redis that says what was being done', async () => {
    const refused = socketError('ECONNREFUSED');
    const call = redisCall('read the breaker', () => Promise.reject(refused));
    await expect(call).rejects.toBeInstanceOf(UnavailableError);
    await expect(call).rejects.toMatchObject({
      dependency: 'redis',
      cause: refused,
      message: `redis unavailable: read the breaker: ${refused.message}`,
    });
  });

  it('rethrows a failure that is no outage unchanged, for the caller to read', async () => {
    const noGroup = new ReplyError('NOGROUP No such key or consumer group');
    await expect(redisCall('read the backlog', () => Promise.reject(noGroup))).rejects.toBe(
      noGroup,
    );
  });

  it('returns what the commands returned', async () => {
    await expect(redisCall('count', () => Promise.resolve(3))).resolves.toBe(3);
  });
});

describe('isAuthFailure', () => {
  it('recognises WRONGPASS and NOAUTH, and nothing else', () => {
    expect(isAuthFailure(new ReplyError('WRONGPASS invalid username-password pair'))).toBe(true);
    expect(
      isAuthFailure(
        new ReplyError('NOAUTH HELLO must be called with the client already authenticated'),
      ),
    ).toBe(true);
    expect(isAuthFailure(new ReplyError('ERR invalid password'))).toBe(true);
    expect(isAuthFailure(new ReplyError('LOADING Redis is loading'))).toBe(false);
    expect(isAuthFailure(socketError('ECONNREFUSED'))).toBe(false);
  });
});

describe('secretsExtensionOf', () => {
  it('finds the extension on the port the layer sets, with the session token', () => {
    expect(
      secretsExtensionOf({
        PARAMETERS_SECRETS_EXTENSION_HTTP_PORT: '2999',
        AWS_SESSION_TOKEN: 'session',
      }),
    ).toEqual({ url: 'http://localhost:2999', sessionToken: 'session' });
  });

  it("falls back to the extension's default port", () => {
    expect(secretsExtensionOf({}).url).toBe(`http://localhost:${SECRETS_EXTENSION_PORT}`);
  });
});

describe('readRedisAuthToken from the Parameters and Secrets extension (mocked AWS API on 127.0.0.1)', () => {
  let standIn: SecretsExtensionStandIn;
  beforeAll(async () => {
    standIn = await startSecretsExtension();
  });
  afterAll(() => standIn.close());

  /** A fresh secret holding `value`. */
  const secret = (value: string | { binary: true }) => {
    const arn = freshArn();
    standIn.setSecret(arn, value);
    return arn;
  };
  const failureOf = (read: Promise<string>): Promise<Error> =>
    read.then(
      (token) => new Error(`expected a failure, read ${token}`),
      (error: unknown) => error as Error,
    );

  it('reads the token once per container and secret', async () => {
    const arn = secret('tok-1');
    expect(await readRedisAuthToken(standIn.extension, arn)).toBe('tok-1');
    expect(await readRedisAuthToken(standIn.extension, arn)).toBe('tok-1');
    expect(await readRedisAuthToken({ ...standIn.extension }, arn)).toBe('tok-1');
    expect(standIn.reads(arn)).toBe(1);
  });

  it('reads it again when asked to refresh, and keeps the new one', async () => {
    const arn = secret('before-rotation');
    expect(await readRedisAuthToken(standIn.extension, arn)).toBe('before-rotation');
    standIn.setSecret(arn, 'after-rotation');
    expect(await readRedisAuthToken(standIn.extension, arn)).toBe('before-rotation');
    expect(await readRedisAuthToken(standIn.extension, arn, { refresh: true })).toBe(
      'after-rotation',
    );
    expect(await readRedisAuthToken(standIn.extension, arn)).toBe('after-rotation');
    expect(standIn.reads(arn)).toBe(2);
  });

  it.each([
    ['a plain SecretString', 'p4ss-w0rd{not-json', 'p4ss-w0rd{not-json'],
    ['JSON with a token field', '{"token":"from-token","password":"ignored"}', 'from-token'],
    [
      'JSON with a password field',
      '{"username":"default","password":"from-password"}',
      'from-password',
    ],
    ['text that only looks like JSON', '{not json', '{not json'],
    ['a token that needs escaping in JSON', 'a"b\\c&d=e', 'a"b\\c&d=e'],
  ])('accepts %s', async (_label, secretString, token) => {
    expect(await readRedisAuthToken(standIn.extension, secret(secretString))).toBe(token);
  });

  it.each([
    ['JSON without a token or password', '{"user":"x"}'],
    ['an empty token', '{"token":""}'],
    ['a binary secret', { binary: true as const }],
  ])('refuses %s with an error naming the secret', async (_label, value) => {
    const arn = secret(value);
    const failure = await failureOf(readRedisAuthToken(standIn.extension, arn));
    expect(failure).toBeInstanceOf(UnavailableError);
    expect(failure.message).toContain(arn);
    expect(failure.message).toMatch(/holds no AUTH token: .*"token" or "password"/);
  });

  it('says when the secret does not exist, passing on what Secrets Manager said', async () => {
    const arn = freshArn();
    const failure = await failureOf(readRedisAuthToken(standIn.extension, arn));
    expect(failure).toBeInstanceOf(UnavailableError);
    expect(failure.message).toBe(
      `redis unavailable: cannot read the AUTH token secret ${arn}: the Parameters and Secrets extension answered HTTP 400: ResourceNotFoundException: Secrets Manager can't find the specified secret.`,
    );
  });

  it('says when there is no session token to show the extension, without asking it', async () => {
    const arn = secret('tok');
    const failure = await failureOf(
      readRedisAuthToken({ ...standIn.extension, sessionToken: undefined }, arn),
    );
    expect(failure).toBeInstanceOf(UnavailableError);
    expect(failure.message).toMatch(/AWS_SESSION_TOKEN is not set.*set REDIS_URL instead/);
    expect(standIn.reads(arn)).toBe(0);
  });

  it('says when the extension is not there, naming its address and its layer', async () => {
    const url = `http://127.0.0.1:${await freePort()}`;
    const arn = secret('tok');
    const failure = await failureOf(readRedisAuthToken({ ...standIn.extension, url }, arn));
    expect(failure).toBeInstanceOf(UnavailableError);
    expect(failure).toMatchObject({ dependency: 'redis' });
    expect(failure.message).toContain(
      `the AWS Parameters and Secrets Lambda Extension at ${url} did not answer (connect ECONNREFUSED`,
    );
    expect(failure.message).toContain('SpillwayCache.secretsExtension');
  });

  it('reports a failed read as Redis being unavailable and does not remember it', async () => {
    const arn = secret('tok');
    standIn.failNext(arn, 400, 'ThrottlingException: Rate exceeded');
    const failure = await failureOf(readRedisAuthToken(standIn.extension, arn));
    expect(failure).toBeInstanceOf(UnavailableError);
    expect(failure).toMatchObject({ dependency: 'redis' });
    expect(failure.message).toMatch(/cannot read the AUTH token secret .*: .*Rate exceeded/);
    expect(await readRedisAuthToken(standIn.extension, arn)).toBe('tok');
    expect(standIn.reads(arn)).toBe(2);
  });
});
