/**
 * The PostgreSQL pool of one Lambda container: a plain URL locally, RDS Proxy with IAM
 * authentication and verified TLS in AWS.
 */
import type { Logger } from '@aws-lambda-powertools/logger';
import pg from 'pg';
import { ConfigError, messageOf, UnavailableError } from '../core/errors.js';
import type { PostgresTarget, SpillwayConfig } from './config.js';
import { type AwsCredentials, IamTokenSigner } from './iam-token-signer.js';
import { logger as defaultLogger } from './telemetry.js';

/** The configuration of the `postgres` sink: where PostgreSQL is, and the region to sign in. */
export type PostgresConfig = Pick<SpillwayConfig, 'region'> & { readonly database: PostgresTarget };

/** What the pool needs of a token signer (`IamTokenSigner`). */
export interface AuthTokenSigner {
  getAuthToken(): Promise<string>;
}

/** IAM auth tokens are valid for 15 minutes; one is reused for 10, leaving margin for slow connects and skewed clocks. */
export const IAM_TOKEN_REUSE_MS = 10 * 60_000;

export interface IamAuthTokenOptions {
  readonly signer: AuthTokenSigner;
  /** @default Date.now */
  readonly now?: () => number;
  /** How long one token is handed out before a new one is signed. @default IAM_TOKEN_REUSE_MS */
  readonly reuseForMs?: number;
}

/**
 * A password function for `pg`: the current IAM auth token, signed again once it is
 * `reuseForMs` old. Concurrent callers share one signing; a failed signing is not remembered.
 * The token only matters while a connection authenticates: an open connection outlives it.
 *
 * @throws UnavailableError('database') when no token can be signed (no credentials, say).
 */
export function iamAuthToken(options: IamAuthTokenOptions): () => Promise<string> {
  const { signer, now = Date.now, reuseForMs = IAM_TOKEN_REUSE_MS } = options;
  let current: { readonly token: Promise<string>; readonly signedAt: number } | undefined;
  return () => {
    const at = now();
    const age = current === undefined ? Number.POSITIVE_INFINITY : at - current.signedAt;
    if (current === undefined || age < 0 || age >= reuseForMs) {
      const entry = { token: sign(signer), signedAt: at };
      current = entry;
      entry.token.catch(() => {
        if (current === entry) current = undefined;
      });
    }
    return current.token;
  };
}

async function sign(signer: AuthTokenSigner): Promise<string> {
  try {
    return await signer.getAuthToken();
  } catch (error) {
    const reason = messageOf(error);
    throw new UnavailableError('database', `cannot sign an IAM auth token: ${reason}`, {
      cause: error,
    });
  }
}

export interface PoolDeps {
  /** Signs IAM auth tokens. @default an `IamTokenSigner` for the configured endpoint and user */
  readonly signer?: AuthTokenSigner;
  /** Credentials of the default signer. @default the function's role's, from the environment */
  readonly credentials?: AwsCredentials;
  /** @default Date.now */
  readonly now?: () => number;
  /** @default the telemetry logger */
  readonly logger?: Pick<Logger, 'warn'>;
  /** Connections in the pool. @default 1 (one per Lambda container; RDS Proxy pools behind it) */
  readonly max?: number;
}

/** How long to wait for a connection (TCP, TLS, IAM auth) before a query fails. */
const CONNECT_TIMEOUT_MS = 5_000;
/**
 * A connection unused this long is closed, giving its slot at the proxy back. Long enough to
 * survive the gap between two scheduled syncs of a warm container.
 */
const IDLE_TIMEOUT_MS = 90_000;

/**
 * A `pg` pool for `config.database`. With `DATABASE_URL` it connects as the URL says; with IAM
 * it connects to RDS Proxy over TLS with the certificate verified against Node's trusted roots
 * (RDS Proxy certificates chain to Amazon's root CAs, so no RDS CA bundle is needed) and an IAM
 * auth token as the password. Connection errors while idle are logged, never thrown: an
 * unhandled 'error' event would end the container's process.
 */
export function createPool(config: PostgresConfig, deps: PoolDeps = {}): pg.Pool {
  const log = deps.logger ?? defaultLogger;
  const common: pg.PoolConfig = {
    max: deps.max ?? 1,
    connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
    idleTimeoutMillis: IDLE_TIMEOUT_MS,
    keepAlive: true,
  };
  const { database } = config;
  const { credentials } = deps;
  const pool =
    database.kind === 'url'
      ? new pg.Pool({ ...common, connectionString: database.url })
      : new pg.Pool({
          ...common,
          host: database.host,
          port: database.port,
          database: database.database,
          user: database.user,
          password: iamAuthToken({
            signer:
              deps.signer ??
              new IamTokenSigner({
                hostname: database.host,
                port: database.port,
                username: database.user,
                region: regionOf(config),
                credentials: credentials === undefined ? undefined : () => credentials,
              }),
            now: deps.now,
          }),
          ssl: { rejectUnauthorized: true },
        });

  // A connection that fails while idle in the pool is reported by pg-pool as a pool 'error';
  // one that fails while checked out, between two queries, only by its client. An 'error' event
  // without a listener would end the container's process, so both are listened to.
  pool.on('error', (error) => {
    log.warn('idle PostgreSQL connection failed; the pool will open a new one', { error });
  });
  const checkedOut = new WeakSet<pg.PoolClient>();
  pool.on('acquire', (client) => checkedOut.add(client));
  pool.on('release', (_error, client) => checkedOut.delete(client));
  pool.on('connect', (client) => {
    client.on('error', (error) => {
      if (checkedOut.has(client)) log.warn('PostgreSQL connection in use failed', { error });
    });
  });
  return pool;
}

/** The region IAM tokens are signed for, which `loadConfig` requires with IAM authentication. */
function regionOf(config: PostgresConfig): string {
  if (config.region === undefined) {
    throw new ConfigError('AWS_REGION', 'missing: needed to sign database IAM tokens');
  }
  return config.region;
}
