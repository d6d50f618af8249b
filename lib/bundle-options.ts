/**
 * The esbuild options of every function's bundle, in esbuild's own terms and in one place:
 * `buildBundle` (`bundle.ts`), the one build that `SpillwayFunction` (`cdk synth`),
 * `bench/cold.ts` and the bundle tests run, passes them to esbuild's JavaScript API.
 *
 * ESM for the Lambda runtime's Node.js (`NODE_RUNTIME`), with a `require` shim for CommonJS
 * dependencies; minified but keeping class and function names (error names are class names);
 * source maps that Node applies to stack traces, without the sources; everything bundled (the AWS
 * SDK too: its version is then ours, not the runtime's) but pg-native, an optional peer of pg that
 * Spillway never loads. What the dependencies carry and no function runs stands in as stubs:
 * whole packages (`alias`) and files inside packages (`LEFT_OUT_FILES`, through the plugin
 * `leaveOutUnusedFiles`, since `alias` reaches bare package names only); ioredis's command table
 * is re-encoded, whole (`lib/ioredis-command-table.ts`). Imports no package at run time, so the
 * bench needs no CDK.
 */
import { readFileSync } from 'node:fs';
import { relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { BuildOptions, Plugin } from 'esbuild';
import { compactCommandTable } from './ioredis-command-table.js';

/** A stand-in module of `bundle-stubs/`, by absolute path (esbuild resolves `alias` from its cwd). */
function stub(file: string): string {
  return fileURLToPath(new URL(`./bundle-stubs/${file}`, import.meta.url));
}

/** A file inside a package that the bundles carry a stub of instead. */
export interface LeftOutFile {
  readonly package: string;
  /** The file, relative to the package's directory. */
  readonly file: string;
  /** Its stand-in in `bundle-stubs/`, which says why that is safe and throws if it is ever used. */
  readonly stub: string;
}

/**
 * Files that dependencies require by relative path but no function runs, each replaced by a stub
 * that throws a clear error where the original would have run (each stub says why that is safe).
 * test/e2e/bundle-size.test.ts checks that they stay out of the bundles; test/e2e/bundle.test.ts
 * runs the bundles `cdk synth` builds with them.
 */
export const LEFT_OUT_FILES: readonly LeftOutFile[] = [
  // Redis Cluster: Spillway connects to one endpoint, the replication group's primary (36 KB).
  { package: 'ioredis', file: 'built/cluster/index.js', stub: 'ioredis-cluster.cjs' },
  // Redis Sentinel: ElastiCache fails over behind that endpoint (7 KB).
  {
    package: 'ioredis',
    file: 'built/connectors/SentinelConnector/index.js',
    stub: 'ioredis-sentinel.cjs',
  },
  // The CA certificates of named TLS profiles: Spillway names none (8.5 KB).
  { package: 'ioredis', file: 'built/constants/TLSProfiles.js', stub: 'ioredis-tls-profiles.cjs' },
  // The JavaScript of pg's libpq binding, whose native part was never bundled (8 KB).
  { package: 'pg', file: 'lib/native/index.js', stub: 'pg-native-binding.cjs' },
];

/** What a relative `require()` of `file` may say: with or without `.js`, a directory's index. */
function requiredAs(file: string): string[] {
  const bare = file.replace(/\.js$/, '');
  return [file, bare, ...(bare.endsWith('/index') ? [bare.slice(0, -'/index'.length)] : [])];
}

/** The last part of each way a left-out file is required, for the plugin's filter. */
const LEFT_OUT_NAMES = [
  ...new Set(LEFT_OUT_FILES.flatMap((f) => requiredAs(f.file).map((p) => p.split('/').pop()))),
];
const LEFT_OUT_FILTER = new RegExp(
  `^\\.\\.?/(.*/)?(${LEFT_OUT_NAMES.map((n) => n?.replace(/[.]/g, '\\.')).join('|')})$`,
);
const COMMAND_TABLE = /[\\/]node_modules[\\/]@ioredis[\\/]commands[\\/]built[\\/]commands\.json$/;

/** The package a file of `node_modules` belongs to, and that package's directory. */
function packageOf(path: string): { name: string; directory: string } | undefined {
  const marker = `${sep}node_modules${sep}`;
  const at = path.lastIndexOf(marker);
  if (at < 0) return undefined;
  const parts = path.slice(at + marker.length).split(sep);
  const length = parts[0]?.startsWith('@') ? 2 : 1;
  const name = parts.slice(0, length).join('/');
  return { name, directory: path.slice(0, at + marker.length) + parts.slice(0, length).join(sep) };
}

/**
 * The esbuild plugin that puts `LEFT_OUT_FILES`' stubs in place of the files they stand in for,
 * and ioredis's command table in its compact form.
 */
export function leaveOutUnusedFiles(): Plugin {
  return {
    name: 'spillway-leave-out-unused-files',
    setup(build) {
      build.onResolve({ filter: LEFT_OUT_FILTER }, (args) => {
        const owner = packageOf(args.importer);
        if (owner === undefined) return undefined;
        const target = relative(owner.directory, resolve(args.resolveDir, args.path))
          .split(sep)
          .join('/');
        const leftOut = LEFT_OUT_FILES.find(
          (f) => f.package === owner.name && requiredAs(f.file).includes(target),
        );
        return leftOut === undefined ? undefined : { path: stub(leftOut.stub) };
      });
      build.onLoad({ filter: COMMAND_TABLE }, (args) => ({
        contents: compactCommandTable(JSON.parse(readFileSync(args.path, 'utf8'))),
        loader: 'js',
      }));
    },
  };
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
  // as the package would here (each stub says why that is safe). test/e2e/bundle-size.test.ts
  // checks that the packages stay out.
  alias: {
    // ioredis's debug logging, on only under the `DEBUG` variable, which no function sets (8 KB).
    debug: stub('debug.cjs'),
    // pg's `~/.pgpass` lookup for a connection without a password; a function has neither (4 KB).
    pgpass: stub('pgpass.cjs'),
  },
  plugins: [leaveOutUnusedFiles()],
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
