import { describe, expect, it } from 'vitest';
import { ValidationError } from '../../lambdas/core/errors.js';
import {
  isStatusRequest,
  MAX_STATUS_VERSIONS,
  parseStatusRequest,
  takeWriteWait,
} from '../../lambdas/core/status-request.js';

describe('status requests', () => {
  it('reads versions as write returns them, and names the one that is not', () => {
    expect(isStatusRequest({ changesets: ['1-0'] })).toBe(true);
    expect(isStatusRequest({ table: 't', key: {} })).toBe(false);
    expect(parseStatusRequest({ changesets: ['1733337600000-0', '1-12'] })).toEqual([
      '1733337600000-0',
      '1-12',
    ]);
    expect(() => parseStatusRequest({ changesets: ['1-0', 'x'] })).toThrow(
      /^changesets\[1\]: expected a version/,
    );
    expect(() => parseStatusRequest({ changesets: [] })).toThrow(ValidationError);
    expect(() =>
      parseStatusRequest({
        changesets: Array.from({ length: MAX_STATUS_VERSIONS + 1 }, () => '1-0'),
      }),
    ).toThrow(/at most 500/);
  });

  it('takes waitForSyncMs off a write, bounded by the time the function has left', () => {
    expect(takeWriteWait({ changes: [] }, 1_000)).toEqual({
      changeset: { changes: [] },
      waitMs: 0,
    });
    expect(takeWriteWait({ changes: [], waitForSyncMs: 500 }, 1_000)).toEqual({
      changeset: { changes: [] },
      waitMs: 500,
    });
    expect(() => takeWriteWait({ changes: [], waitForSyncMs: 5_000 }, 1_000)).toThrow(
      /^waitForSyncMs: expected whole milliseconds from 0 to 1000/,
    );
    expect(() => takeWriteWait({ changes: [], waitForSyncMs: '1' }, 1_000)).toThrow(
      ValidationError,
    );
  });
});
