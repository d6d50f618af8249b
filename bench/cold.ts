/**
 * Cold-start benchmark (issue 9, target 4): every function's bundle, built by the build `cdk synth`
 * runs for the new shape (`buildBundle`, `lib/bundle.ts`; the functions that reach the database
 * bundled for the postgres sink), is started in a fresh Node process the way the Lambda runtime
 * starts it (`local/lambda-bundle.ts`) and answers one realistic invocation against this
 * machine's Redis, PostgreSQL and PgBouncer (`local/services/`). Beside them, a baseline bundle
 * that only imports ioredis and answers with one XADD, built the same way (so it, too, leaves
 * out ioredis's Cluster, Sentinel connector and TLS profiles).
 *
 * Prints per bundle its size, the medians over --rounds of the time to import it (Lambda's init),
 * of the CPU time that import took (which a busy machine changes less than the time), and of
 * the whole cold start (process spawned until the first answer), their ratios to the baseline,
 * and the biggest contributors to the bundle (esbuild's metafile), against the targets: write
 * and read under 300 KB; cold import within 1.3 x the baseline. Results go to
 * bench/results/cold-*.json with a chart beside them (bench/chart.ts).
 *
 * Usage: npm run bench:cold [-- --rounds 5]
 */
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import type { Metafile } from 'esbuild';
import pg from 'pg';
import { METRICS_NAMESPACE } from '../lambdas/core/metric-names.js';
import { FUNCTION_NAMES, FUNCTIONS, type FunctionName } from '../lambdas/functions.js';
import { runMigrations } from '../lambdas/io/migrator.js';
import {
  type BundleRequest,
  buildBundle,
  LUA_SCRIPTS,
  MIGRATION_FILES,
  PROJECT_ROOT,
} from '../lib/bundle.js';
import { startBundle } from '../local/lambda-bundle.js';
import { startServices } from '../local/services/index.js';
import { type ColdChartInput, coldChart } from './chart.js';
import { load, median, writeResults } from './common.js';
import { documentUpsert } from './workloads.js';

const PREFIX = 'bench-cold';
const BASELINE = 'baseline (ioredis only)';
/** The targets of issue 9: bundle size of these functions, and cold import against the baseline. */
const SIZE_TARGET_KB = 300;
const SIZE_TARGETS: readonly string[] = ['write', 'read'];
const IMPORT_RATIO_TARGET = 1.3;
/** How many of a bundle's biggest contributors are printed and recorded. */
const TOP_CONTRIBUTORS = 6;

/** The baseline: a handler that only connects with ioredis and answers with one XADD. */
const BASELINE_SOURCE = `
import { Redis } from 'ioredis';
let redis;
export const handler = async (event) => {
  redis ??= new Redis(process.env.REDIS_URL, { lazyConnect: true });
  if (redis.status === 'wait') await redis.connect();
  const id = await redis.xadd(process.env.SPILLWAY_PREFIX + ':baseline', '*', 'changeset', JSON.stringify(event));
  return { accepted: event.changes.length, version: id };
};
`;

interface Bundle {
  readonly name: string;
  readonly directory: string;
  readonly bytes: number;
  /** The biggest contributors: a package the project imports (and `via` which file), or a folder. */
  readonly contributors: { readonly source: string; readonly via: string; readonly kb: number }[];
  readonly environment: Record<string, string>;
}

interface Timing {
  readonly importMs: number;
  /** CPU time of the import: what a quiet machine's wall time would be, near enough. */
  readonly importCpuMs: number;
  readonly coldMs: number;
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { rounds: { type: 'string', default: '5' } } });
  const rounds = Number(values.rounds);
  if (!Number.isInteger(rounds) || rounds < 1) throw new Error('--rounds: a positive integer');
  const loadBefore = load();

  const services = await startServices();
  const database = await services.createDatabase();
  const direct = new pg.Pool({ connectionString: database.directUrl, max: 1 });
  const workDir = mkdtempSync(join(tmpdir(), 'spillway-bench-cold-'));
  try {
    await runMigrations(direct);
    // What the template sets for every function, then the harness's services in place of AWS's.
    const common = {
      NODE_OPTIONS: '--enable-source-maps',
      POWERTOOLS_METRICS_NAMESPACE: METRICS_NAMESPACE,
      REDIS_URL: services.redis.url,
      SPILLWAY_PREFIX: PREFIX,
      // The harness's Redis has no replica to confirm a write.
      REDIS_REPLICA_ACKS: '0',
      SYNC_IDLE_WAIT_MS: '0',
      POWERTOOLS_LOG_LEVEL: 'WARN',
      POWERTOOLS_METRICS_DISABLED: 'true',
    };
    const bundles: Bundle[] = [];
    bundles.push(await buildBaseline(workDir, common));
    for (const name of FUNCTION_NAMES) {
      const env = FUNCTIONS[name].reachesDatabase
        ? { ...common, DATABASE_URL: database.url }
        : common;
      bundles.push(await buildFunction(workDir, name, env));
    }
    console.log(`load average ${load()}; ${rounds} rounds, one fresh process per bundle each`);

    const timings = new Map<string, Timing[]>(bundles.map((b) => [b.name, []]));
    const events = new Events();
    for (let round = 0; round < rounds; round++) {
      // Round-robin over the bundles, so that a burst of load on the machine hits them all alike.
      for (const bundle of bundles) {
        const { timing, answer } = await coldStart(bundle, events.next(bundle.name));
        events.answered(bundle.name, answer);
        timings.get(bundle.name)?.push(timing);
      }
    }
    const loadAfter = load();

    const baselineTimes = timings.get(BASELINE) ?? [];
    const baseImport = median(baselineTimes.map((t) => t.importMs));
    const baseImportCpu = median(baselineTimes.map((t) => t.importCpuMs));
    const baseCold = median(baselineTimes.map((t) => t.coldMs));
    const results = bundles.map((b) => {
      const t = timings.get(b.name) ?? [];
      const importMs = median(t.map((x) => x.importMs));
      const importCpuMs = median(t.map((x) => x.importCpuMs));
      const coldMs = median(t.map((x) => x.coldMs));
      return {
        bundle: b.name,
        kb: Math.round(b.bytes / 1024),
        importMs: round1(importMs),
        coldMs: round1(coldMs),
        importRatio: round2(importMs / baseImport),
        importCpuMs: round1(importCpuMs),
        importCpuRatio: round2(importCpuMs / baseImportCpu),
        coldRatio: round2(coldMs / baseCold),
        meetsSizeTarget: SIZE_TARGETS.includes(b.name) ? b.bytes / 1024 < SIZE_TARGET_KB : null,
        meetsImportTarget:
          b.name === BASELINE ? null : importMs / baseImport <= IMPORT_RATIO_TARGET,
        meetsImportCpuTarget:
          b.name === BASELINE ? null : importCpuMs / baseImportCpu <= IMPORT_RATIO_TARGET,
        rounds: t,
        contributors: b.contributors,
      };
    });

    const mark = (ok: boolean | null) => (ok === null ? '' : ok ? 'met' : 'missed');
    console.log(
      `\ntargets: write and read under ${SIZE_TARGET_KB} KB; cold import within ${IMPORT_RATIO_TARGET} x the baseline's`,
    );
    console.log(
      '| bundle | KB | import ms | vs baseline | import CPU ms | vs baseline | cold ms | vs baseline | size target | import target (time / CPU) |',
    );
    console.log('|---|---|---|---|---|---|---|---|---|---|');
    for (const r of results) {
      const importTarget =
        r.meetsImportTarget === null
          ? ''
          : `${mark(r.meetsImportTarget)} / ${mark(r.meetsImportCpuTarget)}`;
      console.log(
        `| ${r.bundle} | ${r.kb} | ${r.importMs} | ${r.importRatio} | ${r.importCpuMs} | ${r.importCpuRatio} | ${r.coldMs} | ${r.coldRatio} | ${mark(r.meetsSizeTarget)} | ${importTarget} |`,
      );
    }
    console.log(
      '(medians; import CPU: user and system CPU time of the import, which other processes on a busy machine change less than the time; cold: the process spawned until its first answer)',
    );
    console.log(
      '\nbiggest contributors, KB of the minified bundle: each package the code imports with all it pulls in (and the file importing it), or a source folder:',
    );
    for (const r of results) {
      const list = r.contributors.map((c) =>
        c.source === c.via.split('/').slice(0, -1).join('/')
          ? `${c.source} ${c.kb}`
          : `${c.source} (${c.via}) ${c.kb}`,
      );
      console.log(`  ${r.bundle}: ${list.join(', ')}`);
    }
    console.log(`\nload average before ${loadBefore}, after ${loadAfter}`);

    const figures = {
      measuredAt: new Date().toISOString(),
      node: process.version,
      rounds,
      loadAverage: { before: loadBefore, after: loadAfter },
      targets: { sizeKb: SIZE_TARGET_KB, sizeOf: SIZE_TARGETS, importRatio: IMPORT_RATIO_TARGET },
      results,
    };
    const chart: ColdChartInput[] = results.map((r) => ({
      bundle: r.bundle,
      kb: r.kb,
      importMs: r.importMs,
      coldMs: r.coldMs,
    }));
    const base = writeResults('cold', figures, await coldChart(chart, BASELINE));
    console.log(`written: ${base}.json, ${base}.svg`);
  } finally {
    await direct.end();
    await services.stop();
    rmSync(workDir, { recursive: true, force: true });
  }
}

/** Builds one function's bundle as `cdk synth` does, with its Lua scripts (and SQL) beside it. */
async function buildFunction(
  workDir: string,
  name: FunctionName,
  environment: Record<string, string>,
): Promise<Bundle> {
  const directory = join(workDir, name);
  // As the new shape's stack builds it: a function that reaches the database, for the postgres
  // sink (RDS Proxy), without the Data API client; migrate with the SQL migrations.
  const bundle = await bundleInto(directory, {
    entry: join('lambdas/handlers', FUNCTIONS[name].handler),
    sink: FUNCTIONS[name].reachesDatabase ? 'postgres' : undefined,
    files: [LUA_SCRIPTS, ...(name === 'migrate' ? [MIGRATION_FILES] : [])],
  });
  const env: Record<string, string> = { ...environment, POWERTOOLS_SERVICE_NAME: name };
  if (name === 'migrate') env.MIGRATIONS_DIR = join(directory, MIGRATION_FILES.to);
  return { name, directory, ...bundle, environment: env };
}

async function buildBaseline(
  workDir: string,
  environment: Record<string, string>,
): Promise<Bundle> {
  const directory = join(workDir, 'baseline');
  // Inside the project, so that esbuild resolves ioredis from its node_modules.
  const entry = join(PROJECT_ROOT, 'bench', '.cold-baseline-entry.mjs');
  writeFileSync(entry, BASELINE_SOURCE);
  try {
    const bundle = await bundleInto(directory, { entry });
    return { name: BASELINE, directory, ...bundle, environment };
  } finally {
    rmSync(entry, { force: true });
  }
}

async function bundleInto(
  directory: string,
  request: Omit<BundleRequest, 'outdir'>,
): Promise<Pick<Bundle, 'bytes' | 'contributors'>> {
  const entry = resolve(PROJECT_ROOT, request.entry);
  const { file, bytes, metafile } = await buildBundle({ ...request, outdir: directory });
  return { bytes, contributors: contributors(metafile, entry, file) };
}

/**
 * The bundle's bytes by what the project's code imports: each npm package the project imports
 * directly, with everything it pulls in (a module shared by two of them counts for the first
 * reached from the entry), and the project's own code by source folder; biggest first.
 */
function contributors(metafile: Metafile, entry: string, outfile: string): Bundle['contributors'] {
  // The metafile's paths are relative to esbuild's working directory, the project root.
  const output = Object.entries(metafile.outputs).find(
    ([path]) => resolve(PROJECT_ROOT, path) === outfile,
  );
  if (output === undefined) throw new Error(`esbuild's metafile has no ${outfile}`);
  const start = Object.keys(metafile.inputs).find((path) => resolve(PROJECT_ROOT, path) === entry);
  if (start === undefined) throw new Error(`esbuild's metafile has no ${entry}`);
  // Breadth first from the entry, the project's static imports before its dynamic ones (what
  // loads with the module before what loads on first use): a module's dependency is the one its
  // importer was reached by.
  const dependency = new Map<string, { source: string; via: string }>([[start, ownCode(start)]]);
  const queue = [start];
  const deferred: { from: string; path: string }[] = [];
  const reach = (from: string, path: string) => {
    if (dependency.has(path)) return;
    const name = packageName(path);
    const importer = dependency.get(from) ?? ownCode(from);
    const inPackage = packageName(from) !== undefined;
    dependency.set(
      path,
      name === undefined ? ownCode(path) : inPackage ? importer : { source: name, via: from },
    );
    queue.push(path);
  };
  while (queue.length > 0 || deferred.length > 0) {
    const path = queue.shift();
    if (path === undefined) {
      const next = deferred.shift();
      if (next !== undefined) reach(next.from, next.path);
      continue;
    }
    for (const imported of metafile.inputs[path]?.imports ?? []) {
      // Through all imports, kept or not (a file of re-exports leaves no bytes of its own): what
      // esbuild dropped counts for nothing below.
      // The project's lazy imports wait; a package's own (the AWS SDK's credential providers)
      // count as part of that package.
      const lazy = imported.kind === 'dynamic-import' && packageName(path) === undefined;
      if (lazy) deferred.push({ from: path, path: imported.path });
      else reach(path, imported.path);
    }
  }
  const bytes = new Map<string, { source: string; via: string; bytes: number }>();
  for (const [path, input] of Object.entries(output[1].inputs)) {
    const { source, via } = dependency.get(path) ?? {
      source: packageName(path) ?? ownCode(path).source,
      via: '?',
    };
    const sum = bytes.get(source) ?? { source, via, bytes: 0 };
    sum.bytes += input.bytesInOutput;
    bytes.set(source, sum);
  }
  return [...bytes.values()]
    .sort((a, b) => b.bytes - a.bytes)
    .slice(0, TOP_CONTRIBUTORS)
    .map(({ source, via, bytes }) => ({ source, via, kb: Math.round(bytes / 1024) }));
}

/** The npm package of a path of the metafile, or undefined for the project's own code. */
function packageName(path: string): string | undefined {
  return /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(path)?.[1];
}

function ownCode(path: string): { source: string; via: string } {
  return { source: path.split('/').slice(0, -1).join('/') || path, via: path };
}

/** One cold start: a fresh process imports the bundle and answers its first invocation. */
async function coldStart(
  bundle: Bundle,
  event: unknown,
): Promise<{ timing: Timing; answer: unknown }> {
  const spawned = performance.now();
  const running = await startBundle({
    directory: bundle.directory,
    handler: 'index.handler',
    functionName: bundle.name,
    timeoutSeconds: 60,
    memorySize: 512,
    environment: bundle.environment,
  });
  try {
    const answer = await running.invoke(event);
    const timing = {
      importMs: round1(running.initMs),
      importCpuMs: round1(running.initCpuMs),
      coldMs: round1(performance.now() - spawned),
    };
    return { timing, answer };
  } catch (error) {
    throw new Error(`${bundle.name}: ${String(error)}\n${running.output()}`);
  } finally {
    await running.stop();
  }
}

/** Each function's realistic event; `extract-entities` takes what `process-document` answered. */
class Events {
  private processed: unknown;
  private lastDocument: string = randomUUID();
  private n = 0;

  next(name: string): unknown {
    switch (name) {
      case BASELINE:
      case 'write': {
        const change = documentUpsert(this.n++);
        if (change.op === 'upsert') this.lastDocument = String(change.record.document_uuid);
        return { changes: [change] };
      }
      case 'read':
        return { table: 'source_documents', key: { document_uuid: this.lastDocument } };
      case 'sync':
      case 'health':
        return {};
      case 'admin':
        return { action: 'list' };
      case 'migrate':
        // What the custom resource Provider sends on a stack update: migrates (here: skips all).
        return {
          RequestType: 'Update',
          PhysicalResourceId: 'spillway-migrations',
          ResourceProperties: { MigrationsHash: 'bench' },
        };
      case 'process-document':
        return { filename: `bench-${this.n++}.pdf`, content_type: 'application/pdf', text: TEXT };
      case 'extract-entities':
        if (this.processed === undefined)
          throw new Error('extract-entities runs after process-document');
        return this.processed;
      default:
        throw new Error(`no event for ${name}`);
    }
  }

  /** Keeps what process-document answered, for extract-entities. */
  answered(name: string, answer: unknown): void {
    if (name === 'process-document') this.processed = answer;
  }
}

const TEXT = [
  'This Settlement Agreement is made on March 3, 2024 between Acme Holdings Inc. and Blue River LLC.',
  'Acme Holdings Inc. shall pay $2,500,000 to Blue River LLC within thirty days.',
  'Notices go to counsel@acme-legal.com or +1 (212) 555-0147.',
].join(' ');

const round1 = (n: number) => Math.round(n * 10) / 10;
const round2 = (n: number) => Math.round(n * 100) / 100;

await main();
