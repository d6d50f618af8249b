/**
 * The services for integration and fault tests: throwaway Redis, PostgreSQL and PgBouncer on
 * free ports with their data in a temp dir (the process management lives in
 * `local/services/`, shared with `spillway local`, the demo and the benchmark).
 */
import { afterAll, beforeAll } from 'vitest';
import {
  type Services,
  type ServicesOptions,
  startServices,
  uniqueSuffix,
} from '../../local/services/index.js';

export {
  type CreatedDatabase,
  type RedisReplicaHandle,
  type RedisServiceOptions,
  type ServiceHandle,
  ServiceStartError,
  type Services,
  startServices,
} from '../../local/services/index.js';

/** What tests may ask for: always free ports and a temp dir, so that tests never share data. */
export type TestServicesOptions = Omit<ServicesOptions, 'dataDir' | 'ports'>;

/**
 * For vitest files: starts the services in `beforeAll` and stops them in `afterAll`. The getter
 * works inside tests and hooks. Register your own `afterAll` (closing clients and pools) after
 * calling this: vitest runs `afterAll` hooks in reverse order, so yours run first.
 */
export function useServices(options: TestServicesOptions = {}): () => Services {
  let services: Services | undefined;
  beforeAll(async () => {
    services = await startServices(options);
  }, 60_000);
  afterAll(async () => {
    await services?.stop();
  }, 60_000);
  return () => {
    if (services === undefined) {
      throw new Error(
        'useServices(): the services exist inside tests and hooks, once beforeAll ran',
      );
    }
    return services;
  };
}

/** A Redis key prefix no other test (in any worker) uses, e.g. `drain-batch-2kq1-0-9f3a1c`. */
export function uniquePrefix(label: string): string {
  const slug =
    label
      .toLowerCase()
      .replace(/[^a-z0-9]+/g, '-')
      .replace(/^-+|-+$/g, '')
      .slice(0, 40) || 'test';
  return `${slug}-${uniqueSuffix('-')}`;
}
