/**
 * Stands in for ioredis's `built/connectors/SentinelConnector/index.js` (Redis Sentinel, 7 KB)
 * in the functions' bundles (`LEFT_OUT_FILES` in `lib/bundle-options.ts`). ioredis constructs a
 * `SentinelConnector` only for a client given `sentinels`; Spillway never gives any (ElastiCache
 * fails over behind its primary endpoint; `createRedis` in `lambdas/io/redis.ts`). Constructing
 * either class throws, so a use of them could not pass unnoticed.
 */
'use strict';

function leftOut(what) {
  return class {
    constructor() {
      throw new Error(
        `ioredis ${what} is left out of Spillway's bundles: Spillway connects to one Redis endpoint, never through Sentinel (lib/bundle-options.ts)`,
      );
    }
  };
}

exports.__esModule = true;
exports.default = leftOut('SentinelConnector');
exports.SentinelIterator = leftOut('SentinelIterator');
