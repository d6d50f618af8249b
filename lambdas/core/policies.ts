/**
 * Retry policy for the drainer (G7). Database errors are classified in `db-errors.ts`.
 */

export interface BackoffPolicy {
  readonly baseMs: number;
  readonly maxMs: number;
}

/** "Full jitter" exponential backoff: uniform in [0, min(max, base * 2^attempt)). */
export function backoffDelay(
  attempt: number,
  policy: BackoffPolicy,
  random: () => number = Math.random,
): number {
  const ceiling = Math.min(policy.maxMs, policy.baseMs * 2 ** attempt);
  return Math.floor(random() * ceiling);
}
