/**
 * Requests about where changesets stand: pure parsing, each problem a ValidationError naming
 * its path.
 */
import { ValidationError } from './errors.js';

/** Most versions one status request may ask about. */
export const MAX_STATUS_VERSIONS = 500;

const VERSION = /^\d{1,15}-\d{1,6}$/;

/** Whether `read` was asked for changeset statuses (`{ "changesets": [...] }`) rather than a row. */
export function isStatusRequest(input: unknown): input is { changesets: unknown } {
  return (
    typeof input === 'object' && input !== null && !Array.isArray(input) && 'changesets' in input
  );
}

/**
 * `{ "changesets": ["<version>", ...] }`, the versions `write` returned.
 * @throws ValidationError naming the offending path.
 */
export function parseStatusRequest(input: { changesets: unknown }): string[] {
  for (const name of Object.keys(input)) {
    if (name !== 'changesets') {
      throw new ValidationError(name, 'unknown property; a status request has only "changesets"');
    }
  }
  const { changesets } = input;
  if (!Array.isArray(changesets) || changesets.length === 0) {
    throw new ValidationError(
      'changesets',
      'expected a non-empty array of versions that write returned',
    );
  }
  if (changesets.length > MAX_STATUS_VERSIONS) {
    throw new ValidationError(
      'changesets',
      `at most ${MAX_STATUS_VERSIONS} versions per request, got ${changesets.length}`,
    );
  }
  return changesets.map((version, index) => {
    if (typeof version !== 'string' || !VERSION.test(version)) {
      throw new ValidationError(
        `changesets[${index}]`,
        'expected a version as write returns it ("<ms>-<seq>")',
      );
    }
    return version;
  });
}

/**
 * Takes `waitForSyncMs` off a `write` event: how long `write` may wait for its changeset to be
 * applied (0 or absent: not at all), at most `maxMs` (the function's time left).
 * @throws ValidationError for a wait that is not a whole number of ms within bounds.
 */
export function takeWriteWait(
  input: unknown,
  maxMs: number,
): { changeset: unknown; waitMs: number } {
  if (
    typeof input !== 'object' ||
    input === null ||
    Array.isArray(input) ||
    !('waitForSyncMs' in input)
  ) {
    return { changeset: input, waitMs: 0 };
  }
  const { waitForSyncMs, ...changeset } = input as Record<string, unknown>;
  if (
    typeof waitForSyncMs !== 'number' ||
    !Number.isInteger(waitForSyncMs) ||
    waitForSyncMs < 0 ||
    waitForSyncMs > maxMs
  ) {
    throw new ValidationError(
      'waitForSyncMs',
      `expected whole milliseconds from 0 to ${maxMs} (the function's time left), got ${JSON.stringify(waitForSyncMs)?.slice(0, 40)}`,
    );
  }
  return { changeset, waitMs: waitForSyncMs };
}
