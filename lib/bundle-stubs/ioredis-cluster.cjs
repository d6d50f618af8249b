/**
 * Stands in for ioredis's `built/cluster/index.js` (Redis Cluster, 36 KB) in the functions'
 * bundles (`LEFT_OUT_FILES` in `lib/bundle-options.ts`). ioredis requires it at load only to hang
 * it on `Redis.Cluster` and export it as `Cluster`; it runs only when a caller constructs a
 * `Cluster`. Spillway never does: it connects to one endpoint, the replication group's primary
 * (cluster mode disabled, `lib/cache.ts`; `createRedis` in `lambdas/io/redis.ts`). Constructing
 * it throws, so a use of it could not pass unnoticed.
 */
'use strict';

class Cluster {
  constructor() {
    throw new Error(
      "ioredis Cluster is left out of Spillway's bundles: Spillway connects to one Redis endpoint (lib/bundle-options.ts)",
    );
  }
}

exports.__esModule = true;
exports.default = Cluster;
