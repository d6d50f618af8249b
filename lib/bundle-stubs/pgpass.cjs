/**
 * Stands in for the `pgpass` package in the functions' bundles (`alias` in
 * `lib/bundle-options.ts`). pg requires it only when a connection has no password, to look one
 * up in `~/.pgpass` (`Client._checkPgPass`; deprecated, to go in pg 9). A deployed function
 * always has one (the IAM auth token) and no `~/.pgpass`; a `DATABASE_URL` without a password
 * (local runs) then connects as the URL says, as pgpass lets it when the file is missing. This
 * answers "no password found" at once.
 */
'use strict';

module.exports = function pgpass(_connectionParameters, callback) {
  callback(undefined);
};
