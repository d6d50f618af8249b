/**
 * The esbuild options of every function's bundle, in esbuild's own terms and in one place:
 * `SpillwayFunction` (`function.ts`) hands them to NodejsFunction, which passes them to esbuild
 * when `cdk synth` bundles, and `bench/cold.ts` builds the same bundles with them.
 *
 * ESM for the Lambda runtime's Node.js (`NODE_RUNTIME`), with a `require` shim for CommonJS
 * dependencies; minified but keeping class and function names (error names are class names);
 * source maps that Node applies to stack traces, without the sources; everything bundled (the AWS
 * SDK too: its version is then ours, not the runtime's) but pg-native, an optional peer of pg that
 * Spillway never loads; two packages that a function never uses stand in as stubs (`alias`).
 * Imports no package at run time, so the bench needs no CDK.
 */
import { fileURLToPath } from 'node:url';
import type { BuildOptions } from 'esbuild';

/** A stand-in module of `bundle-stubs/`, by absolute path (esbuild resolves `alias` from its cwd). */
function stub(file: string): string {
  return fileURLToPath(new URL(`./bundle-stubs/${file}`, import.meta.url));
}

export const BUNDLE_OPTIONS = {
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node24',
  mainFields: ['module', 'main'],
  // CommonJS dependencies (pg, ioredis) call require(); ESM has none until we make one.
  banner: {
    js: "import { createRequire as __spillwayCreateRequire } from 'node:module'; const require = __spillwayCreateRequire(import.meta.url);",
  },
  minify: true,
  // Minifying renames classes, and error names are class names: Spillway's own (`name` is the
  // errorType callers see) and ioredis's (MaxRetriesPerRequestError, ReplyError), which
  // `isRedisUnavailable` recognises by name. Without this, a Redis outage leaves as `$S`.
  keepNames: true,
  sourcemap: true,
  sourcesContent: false,
  external: ['pg-native'],
  // Packages that dependencies require but no function ever uses, replaced by stubs that answer
  // as the package would here (each stub says why that is safe). The e2e tests run the bundles
  // `cdk synth` builds with them (test/e2e/bundle.test.ts); test/e2e/bundle-size.test.ts checks
  // that the packages stay out.
  alias: {
    // ioredis's debug logging, on only under the `DEBUG` variable, which no function sets (8 KB).
    debug: stub('debug.cjs'),
    // pg's `~/.pgpass` lookup for a connection without a password; a function has neither (4 KB).
    pgpass: stub('pgpass.cjs'),
  },
} satisfies BuildOptions;

/** The sinks a function can be bundled for (`SINK`). */
export type BundledSink = 'postgres' | 'data-api';

/**
 * The `define` of a bundle for one sink: esbuild leaves the other sink's database client out of
 * it (`openDatabase` in `lambdas/runtime/container.ts`). The proxy shapes bundle for `postgres`
 * (no AWS SDK), the Aurora shapes for `data-api` (no pg).
 */
export function sinkDefine(sink: BundledSink): Record<string, string> {
  return { 'process.env.SPILLWAY_BUNDLED_SINK': JSON.stringify(sink) };
}
