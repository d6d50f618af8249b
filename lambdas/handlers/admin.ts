/**
 * `admin`: operator actions on the buffer.
 * - `{ action: 'list', limit?, cursor? }` → `{ deadLetters, nextCursor }`: one page, at most
 *   `limit` letters and ADMIN_MAX_LIST_BYTES of them; `nextCursor` (null after the last page)
 *   asks for the next
 * - `{ action: 'replay', changesetIds | all: true }` → `{ replayed }` (ids)
 * - `{ action: 'purge', changesetIds | all: true }` → `{ purged }` (ids)
 * - `{ action: 'peek', limit? }` → `{ pending }`, the oldest changesets waiting to be drained
 * - `{ action: 'acknowledge-cache-loss' }` → `{ acknowledged: true }`: `health` stops reporting a
 *   loss of the cache's data the drainer detected
 * Anything else is a ValidationError; an unknown changeset id is a NotFoundError.
 */
import { ADMIN_MAX_LIST_BYTES, parseAdminRequest } from '../core/admin-request.js';
import { logger } from '../io/telemetry.js';
import { getSpillway } from '../runtime/container.js';
import { lambdaHandler } from '../runtime/invocation.js';

export const handler = lambdaHandler(async (event) => {
  const request = parseAdminRequest(event);
  const spillway = await getSpillway();
  switch (request.action) {
    case 'list':
      return await spillway.pageDeadLetters({
        limit: request.limit,
        maxBytes: ADMIN_MAX_LIST_BYTES,
        ...(request.cursor === undefined ? {} : { cursor: request.cursor }),
      });
    case 'peek':
      return { pending: await spillway.peekPending(request.limit) };
    case 'replay': {
      const replayed = await spillway.replayDeadLetters(request.selection);
      logger.info('dead letters replayed', { changesetIds: replayed });
      return { replayed };
    }
    case 'acknowledge-cache-loss':
      await spillway.acknowledgeCacheLoss();
      logger.info('loss of the cache data acknowledged');
      return { acknowledged: true };
    case 'purge': {
      const purged = await spillway.purgeDeadLetters(request.selection);
      logger.info('dead letters purged', { changesetIds: purged });
      return { purged };
    }
  }
});
