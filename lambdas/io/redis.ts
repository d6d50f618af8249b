/**
 * The Redis client of one Lambda container: a URL locally, ElastiCache with TLS and an AUTH token
 * from Secrets Manager in AWS, read through the AWS Parameters and Secrets Lambda Extension (a
 * local HTTP endpoint; no AWS SDK in the bundle). Tuned to fail fast, so that a Redis outage
 * reaches the caller as a retryable UnavailableError within seconds instead of as a Lambda timeout.
 */
import type { Logger } from '@aws-lambda-powertools/logger';
import { Redis, type RedisOptions } from 'ioredis';
import { messageOf, UnavailableError } from '../core/errors.js';
import { boundText } from '../core/reasons.js';
import type { SpillwayConfig } from './config.js';
import { logger as defaultLogger } from './telemetry.js';

/** How long the first connection may take (TCP, TLS, AUTH, ready check). */
export const CONNECT_TIMEOUT_MS = 2_000;
/** The longest any command waits for its reply, including time spent waiting for a reconnect. */
export const COMMAND_TIMEOUT_MS = 5_000;
/** A connection that owes replies and receives nothing for this long is dead: it is replaced. */
export const SOCKET_TIMEOUT_MS = 3_000;
/** After re-reading the AUTH secret, authentication failures within this time do not re-read it again. */
export const AUTH_REREAD_INTERVAL_MS = 30_000;
/** The extension's port unless `PARAMETERS_SECRETS_EXTENSION_HTTP_PORT` says otherwise. */
export const SECRETS_EXTENSION_PORT = 2773;
/**
 * The longest wait for the extension's answer. The extension's own timeout for Secrets Manager is
 * shorter (`lib/cache.ts`), so that a slow Secrets Manager is reported by the extension, not as
 * this timeout.
 */
export const SECRET_READ_TIMEOUT_MS = 3_000;

/*
 * Fail fast, but ride out a blip: the first connect is awaited with a short connectTimeout, so a
 * cold start against an unreachable Redis fails at once; after that a command issued while the
 * client reconnects waits in the offline queue only until one reconnection attempt has failed
 * (maxRetriesPerRequest: 1), and never longer than commandTimeout. A connection that went silent
 * while the container was frozen (Lambda's VPC network forgets idle flows after a few minutes) is
 * dropped after socketTimeout and its command resent on a new one. So a warm container heals
 * without failing a write, and an outage becomes an UnavailableError within about five seconds.
 * (enableOfflineQueue: false would fail even a reconnect after a stale socket, which is no outage.)
 */
const FAIL_FAST: RedisOptions = {
  lazyConnect: true,
  connectTimeout: CONNECT_TIMEOUT_MS,
  commandTimeout: COMMAND_TIMEOUT_MS,
  socketTimeout: SOCKET_TIMEOUT_MS,
  maxRetriesPerRequest: 1,
  retryStrategy: (attempt) => Math.min(attempt * 200, 2_000),
};

/** Where the AWS Parameters and Secrets Lambda Extension serves secrets, and how to ask it. */
export interface SecretsExtension {
  /** `http://localhost:<port>`. */
  readonly url: string;
  /**
   * The `X-Aws-Parameters-Secrets-Token` the extension requires of every request: the function's
   * `AWS_SESSION_TOKEN`. Undefined outside Lambda.
   */
  readonly sessionToken: string | undefined;
  /** @default SECRET_READ_TIMEOUT_MS */
  readonly timeoutMs?: number;
}

/**
 * The extension as the Lambda environment describes it: its port from
 * `PARAMETERS_SECRETS_EXTENSION_HTTP_PORT` (set with the layer; default 2773) and the session
 * token from `AWS_SESSION_TOKEN`.
 */
export function secretsExtensionOf(env: NodeJS.ProcessEnv): SecretsExtension {
  const port = env.PARAMETERS_SECRETS_EXTENSION_HTTP_PORT?.trim() || String(SECRETS_EXTENSION_PORT);
  return { url: `http://localhost:${port}`, sessionToken: env.AWS_SESSION_TOKEN };
}

export interface RedisDeps {
  /** Reads the AUTH secret. @default secretsExtensionOf(process.env) */
  readonly secretsExtension?: SecretsExtension;
  /** @default the telemetry logger */
  readonly logger?: Pick<Logger, 'warn' | 'info'>;
  /**
   * Longest wait for a reply, in ms. A blocking command (XREADGROUP BLOCK, BLMOVE) must block for
   * less than this and than `socketTimeoutMs`, or run on its own client created with larger values.
   * @default COMMAND_TIMEOUT_MS
   */
  readonly commandTimeoutMs?: number;
  /** Silence, in ms, after which a connection owing replies is replaced. @default SOCKET_TIMEOUT_MS */
  readonly socketTimeoutMs?: number;
  /** @default AUTH_REREAD_INTERVAL_MS */
  readonly authRereadIntervalMs?: number;
  /** @default Date.now */
  readonly now?: () => number;
}

/**
 * A connected ioredis client for `config.redis`.
 *
 * For ElastiCache with `REDIS_AUTH_SECRET_ARN`, the AUTH token is read from Secrets Manager
 * (through the Parameters and Secrets extension, whose own cache is off) once per container. When
 * Redis refuses it (WRONGPASS or NOAUTH: the token was rotated), the secret is read once more and
 * the client reconnects with the new token; further refusals within `authRereadIntervalMs` do not
 * read it again.
 *
 * @throws UnavailableError('redis') when Redis cannot be reached or the secret cannot be read.
 */
export async function createRedis(
  config: Pick<SpillwayConfig, 'redis'>,
  deps: RedisDeps = {},
): Promise<Redis> {
  const log = deps.logger ?? defaultLogger;
  const options: RedisOptions = {
    ...FAIL_FAST,
    commandTimeout: deps.commandTimeoutMs ?? COMMAND_TIMEOUT_MS,
    socketTimeout: deps.socketTimeoutMs ?? SOCKET_TIMEOUT_MS,
  };
  const target = config.redis;
  if (target.kind === 'url') return await connected(new Redis(target.url, options), log);

  const secretArn = target.authSecretArn;
  if (secretArn === undefined) {
    return await connected(
      new Redis({
        ...options,
        host: target.host,
        port: target.port,
        tls: target.tls ? {} : undefined,
      }),
      log,
    );
  }
  const secrets = deps.secretsExtension ?? secretsExtensionOf(process.env);
  const client = new Redis({
    ...options,
    host: target.host,
    port: target.port,
    tls: target.tls ? {} : undefined,
    password: await readRedisAuthToken(secrets, secretArn),
  });
  return await connected(client, log, new TokenRotation(client, secrets, secretArn, deps, log));
}

/** Re-reads the AUTH secret when Redis refuses the token, at most once per interval. */
class TokenRotation {
  /** The latest re-read; resolves to whether it brought a different token. */
  latest: Promise<boolean> | undefined;
  private lastAt = Number.NEGATIVE_INFINITY;
  private inFlight = false;

  constructor(
    private readonly client: Redis,
    private readonly secrets: SecretsExtension,
    private readonly secretArn: string,
    private readonly deps: RedisDeps,
    private readonly log: Pick<Logger, 'warn' | 'info'>,
  ) {}

  /** Starts a re-read unless one is running or happened within the interval. */
  reread(): void {
    const at = (this.deps.now ?? Date.now)();
    const interval = this.deps.authRereadIntervalMs ?? AUTH_REREAD_INTERVAL_MS;
    if (this.inFlight || at - this.lastAt < interval) return;
    this.lastAt = at;
    this.inFlight = true;
    const { client, secretArn, log } = this;
    this.latest = readRedisAuthToken(this.secrets, secretArn, { refresh: true })
      .then((token) => {
        const changed = token !== client.options.password;
        // ioredis reads the password from its options on every (re)connection.
        client.options.password = token;
        log.info('Redis refused the AUTH token; re-read it from Secrets Manager', {
          secretArn,
          changed,
        });
        return changed;
      })
      .catch((error: unknown) => {
        log.warn('could not re-read the Redis AUTH token', { secretArn, error });
        return false;
      })
      .finally(() => {
        this.inFlight = false;
      });
  }
}

/** Connects `client`, logging its errors from now on. */
async function connected(
  client: Redis,
  log: Pick<Logger, 'warn'>,
  rotation?: TokenRotation,
): Promise<Redis> {
  let lastError: unknown;
  client.on('error', (error: Error) => {
    lastError = error;
    log.warn('Redis connection error', { error });
    // ioredis keeps reconnecting by itself; the new token only has to land before one attempt.
    if (rotation !== undefined && isAuthFailure(error)) rotation.reread();
  });

  try {
    await client.connect();
  } catch (error) {
    // connect() rejects with "Connection is closed."; the 'error' event had the reason.
    const reason = lastError ?? error;
    // The token cached in this container may predate a rotation: one re-read, then one more try.
    const rotated = isAuthFailure(reason) && (await rotation?.latest) === true;
    if (!rotated) {
      client.disconnect();
      throw toUnavailable(reason);
    }
    await untilReady(client, CONNECT_TIMEOUT_MS + 2_000, () => lastError);
  }
  return client;
}

/** Waits for the client's own reconnection to succeed, or gives up and closes it. */
async function untilReady(
  client: Redis,
  timeoutMs: number,
  lastError: () => unknown,
): Promise<void> {
  if (client.status === 'ready') return;
  let onReady: (() => void) | undefined;
  let timer: NodeJS.Timeout | undefined;
  const ready = await new Promise<boolean>((resolve) => {
    onReady = () => resolve(true);
    client.once('ready', onReady);
    timer = setTimeout(() => resolve(false), timeoutMs);
  }).finally(() => {
    clearTimeout(timer);
    if (onReady) client.off('ready', onReady);
  });
  if (!ready) {
    client.disconnect();
    throw toUnavailable(lastError() ?? new Error('Redis did not become ready'));
  }
}

const secretReads = new Map<string, Promise<string>>();

/**
 * The Redis AUTH token held by a Secrets Manager secret: its SecretString, or the `token` (or
 * `password`) field when the SecretString is JSON. Read once per container and ARN; `refresh`
 * reads it again (after a rotation). A failed read is not remembered.
 *
 * @throws UnavailableError('redis') when the secret cannot be read or holds no token.
 */
export function readRedisAuthToken(
  extension: SecretsExtension,
  secretArn: string,
  options: { readonly refresh?: boolean } = {},
): Promise<string> {
  const cached = secretReads.get(secretArn);
  if (cached !== undefined && options.refresh !== true) return cached;
  const read = fetchAuthToken(extension, secretArn);
  secretReads.set(secretArn, read);
  read.catch(() => {
    if (secretReads.get(secretArn) === read) secretReads.delete(secretArn);
  });
  return read;
}

async function fetchAuthToken(extension: SecretsExtension, secretArn: string): Promise<string> {
  const failed = (reason: string, cause?: unknown) =>
    new UnavailableError(
      'redis',
      `cannot read the AUTH token secret ${secretArn}: ${reason}`,
      cause === undefined ? undefined : { cause },
    );
  if (extension.sessionToken === undefined || extension.sessionToken === '') {
    throw failed(
      'AWS_SESSION_TOKEN is not set, and the Parameters and Secrets extension requires it (outside Lambda, set REDIS_URL instead)',
    );
  }
  const url = `${extension.url}/secretsmanager/get?secretId=${encodeURIComponent(secretArn)}`;
  let status: number;
  let body: string;
  try {
    const reply = await fetch(url, {
      headers: { 'X-Aws-Parameters-Secrets-Token': extension.sessionToken },
      signal: AbortSignal.timeout(extension.timeoutMs ?? SECRET_READ_TIMEOUT_MS),
    });
    status = reply.status;
    body = await reply.text();
  } catch (error) {
    // fetch() fails with "fetch failed" and the socket's error (ECONNREFUSED...) as its cause.
    const reason = messageOf((error as { cause?: unknown }).cause ?? error);
    throw failed(
      `the AWS Parameters and Secrets Lambda Extension at ${extension.url} did not answer (${reason}); the function needs the extension's layer (SpillwayFunction's paramsAndSecrets: SpillwayCache.secretsExtension)`,
      error,
    );
  }
  if (status !== 200) {
    // The extension passes Secrets Manager's refusal on: not found, access denied, throttled...
    throw failed(
      `the Parameters and Secrets extension answered HTTP ${status}: ${boundText(body.trim(), 200)}`,
    );
  }
  let reply: { SecretString?: unknown } | null;
  try {
    reply = JSON.parse(body);
  } catch (error) {
    throw failed(
      `the Parameters and Secrets extension's answer is not JSON: ${boundText(body, 200)}`,
      error,
    );
  }
  const secret = typeof reply?.SecretString === 'string' ? reply.SecretString : undefined;
  const token = secret === undefined ? undefined : tokenOf(secret);
  if (token === undefined || token === '') {
    throw new UnavailableError(
      'redis',
      `the secret ${secretArn} holds no AUTH token: expected a SecretString that is the token, or JSON with a "token" or "password" field`,
    );
  }
  return token;
}

function tokenOf(secret: string): string | undefined {
  if (!secret.trimStart().startsWith('{')) return secret;
  let parsed: unknown;
  try {
    parsed = JSON.parse(secret);
  } catch {
    // Not JSON after all: a token may contain '{'.
    return secret;
  }
  if (typeof parsed !== 'object' || parsed === null) return undefined;
  const fields = parsed as Record<string, unknown>;
  for (const field of ['token', 'password']) {
    if (typeof fields[field] === 'string') return fields[field];
  }
  return undefined;
}

/** Redis refused the credentials: a wrong or rotated AUTH token, or none where one is required. */
export function isAuthFailure(error: unknown): boolean {
  return error instanceof Error && /^(WRONGPASS|NOAUTH|ERR invalid password)/.test(error.message);
}

/** Messages of ioredis errors that mean the connection, not the command, failed. */
const CONNECTION_MESSAGES = [
  'Connection is closed.',
  "Stream isn't writeable and enableOfflineQueue options is false",
  'Command timed out',
  'Command aborted due to connection close',
];
/** Replies of a Redis that is up but cannot serve now (loading, failing over, busy, refusing AUTH). */
const UNAVAILABLE_REPLY =
  /^(LOADING|MASTERDOWN|READONLY|BUSY|TRYAGAIN|CLUSTERDOWN|WRONGPASS|NOAUTH)\b/;

/**
 * Whether `error` says that Redis cannot be reached or used right now, as opposed to a command
 * being wrong (or a script refusing it on purpose).
 */
export function isRedisUnavailable(error: unknown): boolean {
  if (error instanceof UnavailableError) return error.dependency === 'redis';
  if (!(error instanceof Error)) return false;
  if (error.name === 'MaxRetriesPerRequestError' || error.name === 'AbortError') return true;
  if (error.name === 'ReplyError') return UNAVAILABLE_REPLY.test(error.message);
  if (CONNECTION_MESSAGES.includes(error.message) || error.message.startsWith('Socket timeout')) {
    return true;
  }
  // Node's own socket, DNS and TLS errors: ECONNREFUSED, ETIMEDOUT, ENOTFOUND, certificate errors...
  const { syscall, code } = error as { syscall?: unknown; code?: unknown };
  return (
    typeof syscall === 'string' ||
    (typeof code === 'string' &&
      /^(E[A-Z]+$|ERR_TLS_|ERR_SSL_|CERT_|DEPTH_ZERO|UNABLE_TO)/.test(code))
  );
}

/** Whether Redis refused a command for lack of memory (`maxmemory` with `noeviction`, G5). */
export function isOutOfMemory(error: unknown): boolean {
  return messageOf(error).startsWith('OOM');
}

/**
 * `UnavailableError('redis', ...)` for an error that means Redis cannot be reached or used right
 * now (with the original as `cause`, and `what` was being done, when given, before its message);
 * any other error unchanged. Use as `throw toUnavailable(e)`.
 */
export function toUnavailable(error: unknown, what?: string): Error {
  if (error instanceof UnavailableError) return error;
  if (isRedisUnavailable(error)) {
    const reason = messageOf(error);
    const message = boundText(what === undefined ? reason : `${what}: ${reason}`);
    return new UnavailableError('redis', message, { cause: error });
  }
  return error instanceof Error ? error : new Error(String(error), { cause: error });
}

/**
 * Runs Redis commands, turning a failure that means Redis cannot be reached or used right now
 * into `UnavailableError('redis', '<what>: <reason>')`; any other failure (a script refusing on
 * purpose, NOGROUP, a wrong command) is rethrown unchanged for the caller to read. The one place
 * the buffer and drain control type Redis failures.
 */
export async function redisCall<T>(what: string, commands: () => Promise<T>): Promise<T> {
  try {
    return await commands();
  } catch (error) {
    throw toUnavailable(error, what);
  }
}
