/**
 * The esbuild options of every function's bundle, in esbuild's own terms and in one place:
 * `SpillwayFunction` (`function.ts`) hands them to NodejsFunction, which passes them to esbuild
 * when `cdk synth` bundles, and `bench/cold.ts` builds the same bundles with them. Imports
 * nothing at run time, so the bench needs no CDK.
 *
 * ESM for the Lambda runtime's Node.js (`NODE_RUNTIME`), with a `require` shim for CommonJS
 * dependencies; minified but keeping class and function names (error names are class names);
 * source maps that Node applies to stack traces, without the sources; everything bundled (the AWS
 * SDK too: its version is then ours, not the runtime's) but pg-native, an optional peer of pg that
 * Spillway never loads.
 */
import type { BuildOptions } from 'esbuild';

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
