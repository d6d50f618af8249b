/**
 * The one way a function's bundle is built: `buildBundle` runs esbuild's JavaScript API with
 * `BUNDLE_OPTIONS` (`bundle-options.ts`, whose plugin leaves out what no function runs) and copies
 * the files the function reads beside the bundle. `SpillwayFunction` (`function.ts`) runs it for
 * `cdk synth` through `bundle-cli.ts`, in a child process because CDK bundles synchronously and
 * esbuild's plugins run only in its asynchronous API; `bench/cold.ts` and the bundle tests call it
 * directly. Imports no CDK, so neither the bench nor the child process loads it.
 */
import { cpSync, mkdirSync, readdirSync, statSync } from 'node:fs';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build, type Metafile } from 'esbuild';
import { BUNDLE_OPTIONS, type BundledSink, sinkDefine } from './bundle-options.js';

/** The repository root: entries, the lock file and the migrations are found from here. */
export const PROJECT_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');

/** The module a bundle's code is in, beside its source map: Lambda's handler is `index.handler`. */
export const BUNDLE_MODULE = 'index.mjs';

/** Files copied into a bundle: one file, or a directory's files (those ending in `extension`). */
export interface BundleFiles {
  /** A file or a directory, relative to the project root. */
  readonly from: string;
  /** Where in the bundle: the file's name, or the directory the files go into. */
  readonly to: string;
  /** For a directory: only the files whose names end with this. @default every file */
  readonly extension?: string;
}

/** Where the buffer's Lua scripts live, relative to the project root. */
export const LUA_SOURCE = 'lambdas/io/lua';

/** The buffer's Lua scripts, which it reads from `lua/` beside the bundle: every function's. */
export const LUA_SCRIPTS: BundleFiles = { from: LUA_SOURCE, to: 'lua', extension: '.lua' };

/** Where the SQL migrations live, relative to the project root. */
export const MIGRATIONS_SOURCE = 'lambdas/schema/migrations';

/** The SQL migrations, which `migrate` reads from `migrations/` beside its bundle (`MIGRATIONS_DIR`). */
export const MIGRATION_FILES: BundleFiles = {
  from: MIGRATIONS_SOURCE,
  to: 'migrations',
  extension: '.sql',
};

export interface BundleRequest {
  /** The module that exports the handler, relative to the project root (or absolute). */
  readonly entry: string;
  /** Where the bundle goes: `index.mjs`, its source map and `files`. */
  readonly outdir: string;
  /**
   * The sink the function opens, if it reaches the database: the bundle then leaves the other
   * sink's client out (`sinkDefine`). @default - both sinks' clients are bundled
   */
  readonly sink?: BundledSink;
  /** @default - none */
  readonly files?: readonly BundleFiles[];
}

export interface BuiltBundle {
  /** The bundle's module (`<outdir>/index.mjs`). */
  readonly file: string;
  /** Its size, minified: what the size targets of issue 9 are about. */
  readonly bytes: number;
  /** esbuild's account of what the bundle is made of. */
  readonly metafile: Metafile;
}

/** Builds one bundle into `request.outdir` (created if missing). */
export async function buildBundle(request: BundleRequest): Promise<BuiltBundle> {
  const entry = isAbsolute(request.entry) ? request.entry : join(PROJECT_ROOT, request.entry);
  const file = join(request.outdir, BUNDLE_MODULE);
  const { metafile } = await build({
    ...BUNDLE_OPTIONS,
    define: request.sink === undefined ? undefined : sinkDefine(request.sink),
    entryPoints: [entry],
    outfile: file,
    // esbuild resolves `alias` and the entry's packages from its working directory.
    absWorkingDir: PROJECT_ROOT,
    metafile: true,
    logLevel: 'warning',
  });
  for (const files of request.files ?? []) copyFiles(files, request.outdir);
  return { file, bytes: statSync(file).size, metafile };
}

function copyFiles(files: BundleFiles, outdir: string): void {
  const from = join(PROJECT_ROOT, files.from);
  const to = join(outdir, files.to);
  if (!statSync(from).isDirectory()) {
    mkdirSync(dirname(to), { recursive: true });
    cpSync(from, to);
    return;
  }
  const names = readdirSync(from).filter(
    (name) => name.endsWith(files.extension ?? '') && statSync(join(from, name)).isFile(),
  );
  if (names.length === 0) {
    throw new Error(`${files.from} has no files ending in ${files.extension} to bundle`);
  }
  mkdirSync(to, { recursive: true });
  for (const name of names) cpSync(join(from, name), join(to, name));
}
