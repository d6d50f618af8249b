/**
 * Stands in for the `debug` package in the functions' bundles (`alias` in
 * `lib/bundle-options.ts`). ioredis is its only user (`ioredis/built/utils/debug.js`): it makes
 * one logger per namespace and writes through it only while `logger.enabled`, which `debug` sets
 * from the `DEBUG` variable. No function sets `DEBUG`, so every such logger is disabled: so is
 * each of these. What is lost is ioredis's own trace under `DEBUG=ioredis:*`; Spillway logs its
 * Redis failures itself (`io/redis.ts`).
 */
'use strict';

function createDebug(namespace) {
  const logger = () => {};
  logger.namespace = namespace;
  logger.enabled = false;
  logger.log = () => {};
  logger.destroy = () => true;
  logger.extend = (suffix, delimiter = ':') => createDebug(`${namespace}${delimiter}${suffix}`);
  return logger;
}
createDebug.enabled = () => false;
createDebug.enable = () => {};
createDebug.disable = () => '';
// ioredis calls `require('debug').default(...)`.
createDebug.default = createDebug;

module.exports = createDebug;
