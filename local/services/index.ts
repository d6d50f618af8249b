/**
 * Redis, PostgreSQL and PgBouncer (transaction mode, standing in for RDS Proxy) on 127.0.0.1, the
 * stand-ins docs/design.md ("What is verified where") names: for the tests
 * (`test/support/services.ts`), for `spillway local`, the demo and the benchmark. This file is
 * the folder's only entry point; the files beside it are its parts:
 *
 * - `types.ts`: what `startServices` takes and hands out;
 * - `harness.ts`: the services of one call, stopping them all;
 * - `managed-service.ts`: one service as a handle (start on a free port, kill, stop, restart);
 * - `redis.ts`, `postgres.ts`, `pgbouncer.ts`: how each is launched;
 * - `readiness.ts`: whether a service answers, and is the process we started;
 * - `processes.ts`: spawning, waiting for and killing process trees;
 * - `binaries.ts`, `data-dir.ts` (and the user services run as), `names.ts`, `ports.ts`;
 * - `cleanup.ts`: the process 'exit' hook and the watchdog.
 *
 * By default each call to `startServices` gets its own processes on free ports and its own temp
 * dir, removed again by `stop()`: what integration and fault tests need. With `dataDir` the data
 * lives in that folder instead and survives `stop()`, so that the next start finds it; `ports`
 * pins the ports. Every service can be killed with SIGKILL and restarted on the same port with
 * the same data.
 *
 * Cleanup happens in three places, from most to least graceful: `stop()`; a process 'exit'
 * hook (a process that exits without calling `stop()`); and a small watchdog shell process that
 * notices when this process is gone (SIGKILL, Ctrl-C) and kills what it left behind.
 */
import { createTempDir, prepareDataDir, serviceUser } from './data-dir.js';
import { HarnessServices, planFrom } from './harness.js';
import type { Services, ServicesOptions } from './types.js';

export { uniqueSuffix } from './names.js';
export { freePort } from './ports.js';
export { ServiceStartError } from './start-error.js';
export type {
  CreatedDatabase,
  RedisReplicaHandle,
  RedisServiceOptions,
  ServiceHandle,
  Services,
  ServicesOptions,
} from './types.js';

/**
 * Starts Redis, PostgreSQL and PgBouncer (all three by default) and waits until each answers.
 * On failure whatever did start is stopped again before the error is thrown.
 */
export async function startServices(options: ServicesOptions = {}): Promise<Services> {
  const plan = planFrom(options);
  const runAs = plan.postgres ? serviceUser() : undefined;
  const dir =
    options.dataDir === undefined ? createTempDir(runAs) : prepareDataDir(options.dataDir, runAs);
  const services = new HarnessServices(dir, plan, runAs);
  const started = await Promise.allSettled([services.startRedis(), services.startPostgres()]);
  const failure = started.find((result) => result.status === 'rejected');
  if (failure !== undefined) {
    await services.stop();
    throw failure.reason;
  }
  return services;
}
