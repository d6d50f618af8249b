/**
 * Retrying while the database comes up. During a first deployment `migrate` runs as soon as RDS
 * Proxy's target group exists, and AWS documents that a new proxy target may report unavailable
 * for a while: connections are refused or reset, or the proxy answers that it cannot connect yet.
 * Those failures are retried with jittered backoff until a deadline; anything else (a migration
 * PostgreSQL refuses, a bad setting) fails at once.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { SpillwayError, UnavailableError } from '../core/errors.js';
import { type BackoffPolicy, backoffDelay } from '../core/policies.js';

/** Socket errors of a connection that could not be made or was cut. */
const SOCKET_FAILURES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EPIPE',
]);

/**
 * Whether a failure means the database (or the proxy in front of it) is not reachable yet:
 * UnavailableError('database'), a socket error, or SQLSTATE class 08 (connection exception),
 * 28000 (invalid authorization: the proxy's IAM registration is not done) or 57P03 (cannot connect
 * now), on the error or anywhere in its `cause` chain.
 */
export function isStartupFailure(error: unknown): boolean {
  for (let e: unknown = error, depth = 0; e !== undefined && e !== null && depth < 8; depth++) {
    if (e instanceof UnavailableError) return e.dependency === 'database';
    // A typed error of ours that is not UnavailableError (MigrationError, ConfigError) is final.
    if (e instanceof SpillwayError) return false;
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string') {
      if (SOCKET_FAILURES.has(code)) return true;
      if (/^[0-9A-Z]{5}$/.test(code)) {
        return code.startsWith('08') || code === '28000' || code === '57P03';
      }
    }
    e = (e as { cause?: unknown }).cause;
  }
  return false;
}

export interface StartupRetryOptions {
  /** Epoch milliseconds after which no new attempt starts. */
  readonly deadline: number;
  /** @default { baseMs: 1_000, maxMs: 15_000 } */
  readonly backoff?: BackoffPolicy;
  /** Called before each wait, with the failure and the wait in ms. */
  readonly onRetry?: (error: unknown, attempt: number, waitMs: number) => void;
  /** @default Date.now */
  readonly now?: () => number;
  /** @default node:timers/promises setTimeout */
  readonly sleep?: (ms: number) => Promise<unknown>;
  /** @default Math.random */
  readonly random?: () => number;
}

/**
 * Runs `work` until it succeeds, retrying startup failures (see {@link isStartupFailure}) with
 * full-jitter exponential backoff while the next attempt can start before `deadline`.
 * @throws the last error: at once when it is not a startup failure, else once the deadline has passed
 */
export async function retryWhileStarting<T>(
  work: () => Promise<T>,
  options: StartupRetryOptions,
): Promise<T> {
  const now = options.now ?? Date.now;
  const wait = options.sleep ?? sleep;
  const backoff = options.backoff ?? { baseMs: 1_000, maxMs: 15_000 };
  for (let attempt = 0; ; attempt++) {
    try {
      return await work();
    } catch (error) {
      if (!isStartupFailure(error)) throw error;
      // At least a tenth of the base between attempts, so that a random 0 never spins.
      const waitMs = Math.max(
        Math.floor(backoff.baseMs / 10),
        backoffDelay(attempt, backoff, options.random),
      );
      if (now() + waitMs >= options.deadline) throw error;
      options.onRetry?.(error, attempt + 1, waitMs);
      await wait(waitMs);
    }
  }
}
