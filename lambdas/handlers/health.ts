/**
 * `health`: Redis and database reachability (through the drainer's own path), backlog size,
 * age of the oldest pending change, dead letters and the breaker's state. `ok`; `degraded` when
 * the database is out of reach but writes are accepted; `down` when writes are impossible.
 */
import { messageOf, UnavailableError } from '../core/errors.js';
import { pingDatabase } from '../io/postgres-sink.js';
import { getDatabase, getSpillway } from '../runtime/container.js';
import { lambdaHandler } from '../runtime/invocation.js';
import type { Health } from '../spillway.js';

export const handler = lambdaHandler(async (): Promise<Health> => {
  let spillway: Awaited<ReturnType<typeof getSpillway>>;
  try {
    spillway = await getSpillway();
  } catch (error) {
    // A container that never reached Redis has no engine yet: it still owes an answer.
    if (error instanceof UnavailableError && error.dependency === 'redis') {
      return await downWithoutRedis(error);
    }
    throw error;
  }
  return await spillway.health();
});

async function downWithoutRedis(error: UnavailableError): Promise<Health> {
  let database: Health['checks']['database'];
  try {
    await pingDatabase((await getDatabase()).pool);
    database = { ok: true };
  } catch (dbError) {
    database = { ok: false, error: messageOf(dbError) };
  }
  return {
    status: 'down',
    reasons: [`Redis is unreachable: ${error.message}`],
    backlog: -1,
    pendingChangesets: -1,
    oldestPendingMs: -1,
    deadLetters: -1,
    buffer: { changes: -1, bytes: -1, changesLimit: -1, bytesLimit: -1, percentFull: -1 },
    breaker: 'closed',
    lastDrain: {},
    readCache: { entries: -1, bytes: -1, bytesLimit: -1 },
    cache: {},
    checks: { redis: { ok: false, error: error.message }, database },
  };
}
