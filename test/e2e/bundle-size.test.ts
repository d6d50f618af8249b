/**
 * What the `write` and `read` bundles carry (issue 9, target 4: under 300 KB each), built by the
 * one build `cdk synth` runs (`buildBundle`, `lib/bundle.ts`; `read` for the postgres sink, as the
 * new shape bundles it), and that what the bundles leave out fails loudly if it is ever reached.
 * Bytes are deterministic for a given lock file, so these are no timed assertions; the
 * cold-start times are measured by `npm run bench:cold`. That the bundles still load and answer
 * with the stand-ins is what test/e2e/bundle.test.ts proves: it runs them.
 */
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { Metafile } from 'esbuild';
import { afterAll, describe, expect, it } from 'vitest';
import { type BuiltBundle, buildBundle, PROJECT_ROOT } from '../../lib/bundle.js';
import { LEFT_OUT_FILES } from '../../lib/bundle-options.js';

const KB = 1024;
/** Issue 9's size target for `write` and `read`. */
const TARGET_KB = 300;

const workDir = join(PROJECT_ROOT, '.tmp/bundle-size');
afterAll(() => rmSync(workDir, { recursive: true, force: true }));

interface Built extends BuiltBundle {
  readonly code: string;
}

async function bundleOf(handler: string, reachesDatabase: boolean): Promise<Built> {
  const built = await buildBundle({
    entry: `lambdas/handlers/${handler}`,
    outdir: join(workDir, handler.replace(/\.ts$/, '')),
    sink: reachesDatabase ? 'postgres' : undefined,
  });
  return { ...built, code: readFileSync(built.file, 'utf8') };
}

/** The input files whose code is in the bundle (esbuild kept at least a byte of them). */
function inputsOf(metafile: Metafile): string[] {
  return Object.values(metafile.outputs).flatMap((output) =>
    Object.entries(output.inputs)
      .filter(([, input]) => input.bytesInOutput > 0)
      .map(([path]) => path),
  );
}

/** The npm packages whose code is in the bundle. */
function packagesIn(metafile: Metafile): Set<string> {
  const names = new Set<string>();
  for (const path of inputsOf(metafile)) {
    const name = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(path)?.[1];
    if (name !== undefined) names.add(name);
  }
  return names;
}

/** Whether a file of a package (or under a directory of it) is in the bundle. */
function carries(metafile: Metafile, pkg: string, path: string): boolean {
  return inputsOf(metafile).some((input) => input.includes(`node_modules/${pkg}/${path}`));
}

/** Files of ioredis that only their left-out entry points reach. */
const LEFT_OUT_DIRECTORIES = [
  ['ioredis', 'built/cluster/'],
  ['ioredis', 'built/connectors/SentinelConnector/'],
  ['ioredis', 'built/constants/'],
  ['pg', 'lib/native/'],
] as const;

/** Class names survive minification (keepNames); `expect(code)` would print the bundle. */
const hasClass = (code: string, name: string) => code.includes(`"${name}"`);

function expectLeftOut(bundle: Built): void {
  for (const [pkg, directory] of LEFT_OUT_DIRECTORIES) {
    expect(carries(bundle.metafile, pkg, directory), `${pkg}/${directory}`).toBe(false);
  }
  // The command table is there, whole but re-encoded (lib/ioredis-command-table.ts): 43 KB as JSON.
  const table = Object.values(bundle.metafile.outputs)
    .flatMap((output) => Object.entries(output.inputs))
    .find(([path]) => path.endsWith('@ioredis/commands/built/commands.json'));
  expect(table?.[1].bytesInOutput).toBeLessThan(16 * KB);
}

describe('the write and read bundles', () => {
  it(`write stays under ${TARGET_KB} KB, without a PostgreSQL client, the metrics, or what ioredis has but Spillway never runs`, async () => {
    const write = await bundleOf('write.ts', false);
    expect(write.bytes / KB).toBeLessThan(TARGET_KB);
    const packages = packagesIn(write.metafile);
    for (const name of ['pg', '@aws-lambda-powertools/metrics', 'debug']) {
      expect(packages.has(name), name).toBe(false);
    }
    expectLeftOut(write);
  });

  it(`read stays under ${TARGET_KB} KB, and carries neither the drain, unused packages, nor what ioredis and pg have but Spillway never runs`, async () => {
    const read = await bundleOf('read.ts', true);
    const packages = packagesIn(read.metafile);
    expect(packages.has('pg')).toBe(true);
    expect(packages.has('ioredis')).toBe(true);
    // Only `sync` publishes metrics; ioredis's DEBUG trace and pg's ~/.pgpass lookup are stubs.
    for (const name of ['@aws-lambda-powertools/metrics', 'debug', 'ms', 'pgpass', 'split2']) {
      expect(packages.has(name), name).toBe(false);
    }
    expect(hasClass(read.code, 'SpillwayReader')).toBe(true);
    for (const name of ['Spillway', 'Drainer', 'DrainControl']) {
      expect(hasClass(read.code, name), name).toBe(false);
    }
    expectLeftOut(read);
    expect(read.bytes / KB).toBeLessThan(TARGET_KB);
  });
});

describe('what the bundles leave out', () => {
  /** A bundle of `source` built as the functions' are, with the stubs of `pkg`, imported here. */
  async function bundled<T>(name: 'ioredis' | 'pg', source: string): Promise<T> {
    const entry = join(workDir, `${name}-entry.mjs`);
    mkdirSync(workDir, { recursive: true });
    writeFileSync(entry, source);
    const built = await buildBundle({ entry, outdir: join(workDir, name) });
    for (const leftOut of LEFT_OUT_FILES.filter((f) => f.package === name)) {
      expect(inputsOf(built.metafile), leftOut.stub).toContain(`lib/bundle-stubs/${leftOut.stub}`);
    }
    return (await import(pathToFileURL(built.file).href)) as T;
  }

  it('fails with a clear error wherever a left-out part of ioredis would run, and connects as before without them', async () => {
    const { Redis, Cluster } = await bundled<typeof import('ioredis')>(
      'ioredis',
      "export { Redis, Cluster } from 'ioredis';",
    );
    expect(() => new Cluster([{ host: '127.0.0.1', port: 1 }])).toThrow(
      "ioredis Cluster is left out of Spillway's bundles: Spillway connects to one Redis endpoint",
    );
    expect(
      () => new Redis({ sentinels: [{ host: '127.0.0.1', port: 1 }], name: 'primary' }),
    ).toThrow("ioredis SentinelConnector is left out of Spillway's bundles");
    // A profile by name, as ioredis takes it (its types know only TLS options).
    const profile: object = { profile: 'RedisCloudFixed' };
    expect(() => new Redis({ tls: profile, lazyConnect: true })).toThrow(
      "ioredis TLS profile RedisCloudFixed is left out of Spillway's bundles",
    );
    // What Spillway passes (createRedis in lambdas/io/redis.ts): TLS without a profile, or a URL.
    for (const options of [{ tls: {} }, {}]) {
      const client = new Redis({ ...options, host: '127.0.0.1', port: 1, lazyConnect: true });
      expect(client.status).toBe('wait');
      client.disconnect();
    }
    const fromUrl = new Redis('rediss://127.0.0.1:1', { lazyConnect: true });
    expect(fromUrl.options.tls).toBeTruthy();
    fromUrl.disconnect();
  });

  it("answers pg's native binding as absent, as it was when pg-native was not bundled", async () => {
    const { pg } = await bundled<{ pg: typeof import('pg') }>(
      'pg',
      "import pg from 'pg'; export { pg };",
    );
    expect(pg.native).toBeNull();
    expect(typeof pg.Pool).toBe('function');
  });
});
