import { defineConfig } from 'vitest/config';

/** The suites that also run through the Data API sink (SINK=data-api, test/support/engine.ts). */
const bothSinks = [
  'test/integration/drain.test.ts',
  'test/integration/read-and-replay.test.ts',
  'test/integration/parent-read.test.ts',
  'test/integration/read-cache.test.ts',
  'test/fault/postgres-kill.test.ts',
  'test/fault/property.test.ts',
];

export default defineConfig({
  test: {
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // Each integration file starts its own Redis, PostgreSQL and PgBouncer; two at a time fits 2 cores.
    maxWorkers: 2,
    fileParallelism: true,
    projects: [
      { extends: true, test: { name: 'pg', include: ['test/**/*.test.ts'] } },
      {
        extends: true,
        test: { name: 'data-api', include: bothSinks, env: { SINK: 'data-api' } },
      },
    ],
  },
});
