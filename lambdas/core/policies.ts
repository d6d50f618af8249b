/**
 * Retry policy and error classification for the drainer (G7).
 */

/** SQLSTATE classes that retrying cannot fix: data exceptions (22) and integrity violations (23). */
const REJECTING_CLASSES = new Set(['22', '23']);

/**
 * Whether the database refused the change itself (dead-letter after isolation) rather than
 * failing to run it (retry). Anything not known to be permanent counts as transient, so that
 * uncertainty delays a change instead of dead-lettering it (G1).
 */
export function isRejection(error: unknown): error is Error & { code: string } {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' && code.length === 5 && REJECTING_CLASSES.has(code.slice(0, 2));
}

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
