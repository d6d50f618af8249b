/**
 * Stands in for ioredis's `built/constants/TLSProfiles.js` (the CA certificates of named TLS
 * profiles such as `tls: 'RedisCloudFixed'`, 8.5 KB) in the functions' bundles (`LEFT_OUT_FILES`
 * in `lib/bundle-options.ts`). ioredis looks a profile up by `tls.profile` (or `tls` as a string)
 * for every client; Spillway passes no profile (`tls: {}` for ElastiCache, whose certificate
 * chains to Amazon's roots that Node.js trusts; `createRedis` in `lambdas/io/redis.ts`), so the
 * lookup is `profiles[undefined]`, answered here as it was: no profile. Looking up any named
 * profile throws.
 */
'use strict';

const profiles = new Proxy(
  {},
  {
    get(_target, key) {
      if (typeof key === 'symbol' || key === 'undefined') return undefined;
      throw new Error(
        `ioredis TLS profile ${key} is left out of Spillway's bundles: Spillway names no TLS profile (lib/bundle-options.ts)`,
      );
    },
  },
);

exports.__esModule = true;
exports.default = profiles;
