import { GetSecretValueCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { mockClient } from 'aws-sdk-client-mock';
import { ReplyError } from 'ioredis';
import { MaxRetriesPerRequestError } from 'ioredis/built/errors/index.js';
import { afterEach, describe, expect, it } from 'vitest';
import { BackpressureError, UnavailableError, ValidationError } from '../../lambdas/core/errors.js';
import {
  isAuthFailure,
  isRedisUnavailable,
  readRedisAuthToken,
  redisCall,
  toUnavailable,
} from '../../lambdas/io/redis.js';

const secretsMock = mockClient(SecretsManagerClient);
afterEach(() => secretsMock.reset());

const secrets = () =>
  new SecretsManagerClient({
    region: 'eu-west-1',
    credentials: { accessKeyId: 'AKIAIOSFODNN7EXAMPLE', secretAccessKey: 'fake-secret-key' },
  });

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

describe('readRedisAuthToken (mocked AWS)', () => {
  it('reads the token once per container and secret (mocked AWS)', async () => {
    const arn = freshArn();
    secretsMock.on(GetSecretValueCommand, { SecretId: arn }).resolves({ SecretString: 'tok-1' });
    const client = secrets();
    expect(await readRedisAuthToken(client, arn)).toBe('tok-1');
    expect(await readRedisAuthToken(client, arn)).toBe('tok-1');
    expect(await readRedisAuthToken(secrets(), arn)).toBe('tok-1');
    expect(secretsMock.commandCalls(GetSecretValueCommand)).toHaveLength(1);
  });

  it('reads it again when asked to refresh, and keeps the new one (mocked AWS)', async () => {
    const arn = freshArn();
    secretsMock
      .on(GetSecretValueCommand, { SecretId: arn })
      .resolvesOnce({ SecretString: 'before-rotation' })
      .resolves({ SecretString: 'after-rotation' });
    const client = secrets();
    expect(await readRedisAuthToken(client, arn)).toBe('before-rotation');
    expect(await readRedisAuthToken(client, arn, { refresh: true })).toBe('after-rotation');
    expect(await readRedisAuthToken(client, arn)).toBe('after-rotation');
    expect(secretsMock.commandCalls(GetSecretValueCommand)).toHaveLength(2);
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
  ])('accepts %s (mocked AWS)', async (_label, secretString, token) => {
    const arn = freshArn();
    secretsMock
      .on(GetSecretValueCommand, { SecretId: arn })
      .resolves({ SecretString: secretString });
    expect(await readRedisAuthToken(secrets(), arn)).toBe(token);
  });

  it.each([
    ['JSON without a token or password', { SecretString: '{"user":"x"}' }],
    ['an empty token', { SecretString: '{"token":""}' }],
    ['a binary secret', { SecretBinary: new Uint8Array([1, 2, 3]) }],
  ])('refuses %s with an error naming the secret (mocked AWS)', async (_label, reply) => {
    const arn = freshArn();
    secretsMock.on(GetSecretValueCommand, { SecretId: arn }).resolves(reply);
    const failure = await readRedisAuthToken(secrets(), arn).catch((error: unknown) => error);
    expect(failure).toBeInstanceOf(UnavailableError);
    expect((failure as Error).message).toContain(arn);
    expect((failure as Error).message).toMatch(/"token" or "password"/);
  });

  it('reports a failed read as Redis being unavailable and does not remember it (mocked AWS)', async () => {
    const arn = freshArn();
    secretsMock
      .on(GetSecretValueCommand, { SecretId: arn })
      .rejectsOnce(Object.assign(new Error('Rate exceeded'), { name: 'ThrottlingException' }))
      .resolves({ SecretString: 'tok' });
    const client = secrets();
    const failure = await readRedisAuthToken(client, arn).catch((error: unknown) => error);
    expect(failure).toBeInstanceOf(UnavailableError);
    expect(failure).toMatchObject({ dependency: 'redis' });
    expect((failure as Error).message).toMatch(
      /cannot read the AUTH token secret .*: Rate exceeded/,
    );
    expect(await readRedisAuthToken(client, arn)).toBe('tok');
    expect(secretsMock.commandCalls(GetSecretValueCommand)).toHaveLength(2);
  });
});
