/**
 * `write`: buffers one changeset (`{ changes: [...] }`) and answers once Redis holds it:
 * `{ accepted, changesetId, version }`. With `waitForSyncMs`, it then waits, at most that long,
 * for the drain to apply the changeset, and adds `status`: `applied`, `dead-lettered` (with the
 * reason) or, when the wait ended first, `pending`. Needs Redis only.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { takeWriteWait } from '../core/status-request.js';
import { getBuffer } from '../runtime/container.js';
import { lambdaHandler } from '../runtime/invocation.js';

/** How often a waiting `write` asks where its changeset stands. */
const STATUS_POLL_MS = 200;
/** What a waiting `write` leaves of the function's time, to answer in. */
const ANSWER_MARGIN_MS = 1_000;

export const handler = lambdaHandler(async (event, context) => {
  const { changeset, waitMs } = takeWriteWait(
    event,
    Math.max(0, context.getRemainingTimeInMillis() - ANSWER_MARGIN_MS),
  );
  const buffer = await getBuffer();
  const written = await buffer.write(changeset);
  if (waitMs === 0) return written;
  const until = Date.now() + waitMs;
  for (;;) {
    const [standing] = await buffer.changesetStatus([written.version]);
    const done = standing !== undefined && standing.status !== 'pending';
    if (done || Date.now() + STATUS_POLL_MS > until) {
      const { version: _, ...status } = standing ?? { version: '', status: 'pending' as const };
      return { ...written, ...status };
    }
    await sleep(STATUS_POLL_MS);
  }
});
