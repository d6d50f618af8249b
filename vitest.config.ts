import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // Each integration file starts its own Redis, PostgreSQL and PgBouncer; two at a time fits 2 cores.
    maxWorkers: 2,
    fileParallelism: true,
  },
});
