/**
 * Stands in for pg's `lib/native/index.js` (the JavaScript of its libpq binding, 8 KB) in the
 * functions' bundles (`LEFT_OUT_FILES` in `lib/bundle-options.ts`). pg requires it only for
 * `pg.native` or under `NODE_PG_FORCE_NATIVE`, neither of which Spillway uses; and the binding
 * itself, the optional `pg-native` package, was never bundled (`external`), so requiring it
 * failed with MODULE_NOT_FOUND, which `pg.native` answers with null. This fails the same way, with
 * a message that says why: `pg.native` is still null.
 */
'use strict';

const error = new Error(
  "pg's native binding is left out of Spillway's bundles: Spillway uses pg's JavaScript client (lib/bundle-options.ts)",
);
error.code = 'MODULE_NOT_FOUND';
throw error;
