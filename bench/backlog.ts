/**
 * Million-change backlog benchmark (issue 9, item 2): this process fills the buffer, then a
 * separate drainer process (a child, as a sync Lambda would be) drains it into PostgreSQL
 * through PgBouncer. Prints the draining process's peak RSS (the kernel's VmHWM) and its rate at
 * the start and at the end of the drain (the first and the last tenth of the changes), beside
 * the targets: peak RSS at most 256 MiB, end rate within 15% of the start rate. Beside the
 * rates, PostgreSQL's own: COPY of a tenth of the changes (new rows with their version rows) into
 * the drained tables against the same into empty ones, so that what the tables' growth costs the
 * database is told apart from what the drainer adds.
 * Results go to bench/results/backlog-*.json with a chart beside them (bench/chart.ts).
 *
 * Usage: npm run bench:backlog [-- --changes 1000000 --changeset-size 1|1000 --drain-seconds 60
 * --sync-memory-mb 512]
 * (--drain-seconds: how long one drain may run, as a sync invocation's deadline; the drainer
 * process drains again until the backlog is empty. --sync-memory-mb: the drainer process runs
 * with the NODE_OPTIONS a `sync` function of that memory gets (`nodeOptions` in
 * lambdas/functions.ts: V8's old generation bounded at three quarters of it); 0 runs it with
 * V8's defaults for this machine instead, as the bench did before.)
 */
import { type ChildProcess, fork } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Redis } from 'ioredis';
import pg from 'pg';
import { DEFAULT_MEMORY_MB, nodeOptions } from '../lambdas/functions.js';
import { runMigrations } from '../lambdas/io/migrator.js';
import { pipelineRegistry } from '../lambdas/schema/tables.js';
import { Spillway } from '../lambdas/spillway.js';
import { startServices } from '../local/services/index.js';
import { type BacklogChartInput, backlogChart } from './chart.js';
import { load, PeakMemory, rate, usedMemory, writeResults } from './common.js';
import { copyRows, finalRows, touchedKeys } from './copy.js';
import { type Change, documentUpsert } from './workloads.js';

const PREFIX = 'bench-backlog';
/** The limits are lifted so that the whole backlog fits; a Redis node of this size would be. */
const LIMITS = { backlogLimit: 1e12, backlogBytesLimit: 1e15 } as const;
/** Writes in flight while filling. */
const WRITERS = 64;
const MIB = 2 ** 20;

/** What the drainer process reports when it is done. */
interface DrainReport {
  readonly applied: number;
  readonly drains: number;
  readonly ms: number;
  /** VmHWM of the drainer process at the end: its peak resident memory. */
  readonly peakRssMiB: number;
  readonly peakHeapMiB: number;
  readonly rssTimeline: { ms: number; rssMiB: number }[];
  /** Changes applied so far, after each committed batch. */
  readonly progress: { ms: number; applied: number }[];
  /** When each drain after the first began (ms). */
  readonly drainStarts: number[];
  /** The machine's 1-minute load average, every 5 s of the drain. */
  readonly load: { ms: number; load1: number }[];
  /** CPU time of the drainer process over the drain, all its threads (GC's helpers too), ms. */
  readonly cpuMs: number;
}

/** The drainer process: drains the buffer at REDIS_URL into DATABASE_URL and reports. */
async function drainer(drainMs: number): Promise<void> {
  const redis = new Redis(required('REDIS_URL'));
  const pool = new pg.Pool({ connectionString: required('DATABASE_URL'), max: 2 });
  const progress: { ms: number; applied: number }[] = [];
  let applied = 0;
  const memory = new PeakMemory();
  const started = performance.now();
  const spillway = new Spillway({
    redis,
    pool,
    registry: pipelineRegistry,
    prefix: PREFIX,
    ...LIMITS,
    drainHooks: {
      afterCommit(batch) {
        for (const changeset of batch) applied += changeset.changes.length;
        progress.push({ ms: Math.round(performance.now() - started), applied });
      },
    },
  });
  memory.start();
  const cpuBefore = process.cpuUsage();
  const load: { ms: number; load1: number }[] = [];
  const sampleLoad = () =>
    load.push({ ms: Math.round(performance.now() - started), load1: loadavg()[0] ?? 0 });
  sampleLoad();
  const loadTimer = setInterval(sampleLoad, 5_000);
  const drainStarts: number[] = [];
  let drains = 0;
  for (;;) {
    if (drains > 0) drainStarts.push(Math.round(performance.now() - started));
    drains += 1;
    const result = await spillway.drain(Date.now() + drainMs);
    if (result.stoppedBy === 'empty') break;
    if (result.stoppedBy !== 'deadline') {
      throw new Error(`the drain stopped by ${result.stoppedBy} after ${applied} changes`);
    }
  }
  const ms = performance.now() - started;
  const cpu = process.cpuUsage(cpuBefore);
  const peak = memory.stop();
  clearInterval(loadTimer);
  redis.disconnect();
  await pool.end();
  const report: DrainReport = {
    applied,
    drains,
    ms,
    peakRssMiB: Math.round(vmHwmKiB() / 1024),
    peakHeapMiB: peak.heapMiB,
    rssTimeline: memory.timeline,
    progress,
    drainStarts,
    load,
    cpuMs: Math.round((cpu.user + cpu.system) / 1000),
  };
  process.send?.(report);
}

function required(name: string): string {
  const value = process.env[name];
  if (value === undefined) throw new Error(`the drainer process needs ${name}`);
  return value;
}

/** The peak resident set size of this process, from /proc (Linux). */
function vmHwmKiB(): number {
  const status = readFileSync('/proc/self/status', 'utf8');
  const match = /VmHWM:\s+(\d+) kB/.exec(status);
  if (match?.[1] === undefined) throw new Error('no VmHWM in /proc/self/status');
  return Number(match[1]);
}

/** Starts the drainer process and resolves with its report once it exits. */
function runDrainer(env: Record<string, string>, drainSeconds: number): Promise<DrainReport> {
  const child: ChildProcess = fork(
    fileURLToPath(import.meta.url),
    ['--drainer', '--drain-seconds', String(drainSeconds)],
    {
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...env },
      execArgv: ['--import', 'tsx'],
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    },
  );
  return new Promise((resolve, reject) => {
    let report: DrainReport | undefined;
    child.on('message', (message) => {
      report = message as DrainReport;
    });
    child.on('error', reject);
    child.on('exit', (code, signal) => {
      if (report !== undefined && code === 0) resolve(report);
      else reject(new Error(`the drainer process exited (${signal ?? `code ${code}`}) unreported`));
    });
  });
}

/** When `progress` passed `applied` changes, interpolated between batches (ms). */
function timeAt(progress: readonly { ms: number; applied: number }[], applied: number): number {
  let before = { ms: 0, applied: 0 };
  for (const point of progress) {
    if (point.applied >= applied) {
      const share = (applied - before.applied) / Math.max(1, point.applied - before.applied);
      return before.ms + share * (point.ms - before.ms);
    }
    before = point;
  }
  return before.ms;
}

async function main(): Promise<void> {
  const { values: args } = parseArgs({
    options: {
      changes: { type: 'string', default: '100000' },
      'changeset-size': { type: 'string', default: '1' },
      'drain-seconds': { type: 'string', default: '60' },
      'sync-memory-mb': { type: 'string', default: String(DEFAULT_MEMORY_MB) },
      drainer: { type: 'boolean', default: false },
    },
  });
  const drainSeconds = Number(args['drain-seconds']);
  if (args.drainer) return await drainer(drainSeconds * 1000);
  const changes = Number(args.changes);
  const size = Number(args['changeset-size']);
  if (!(changes > 0 && size > 0 && changes % size === 0)) {
    throw new Error(
      `--changes (${changes}) must be a positive multiple of --changeset-size (${size})`,
    );
  }

  const services = await startServices({ redis: true });
  const redis = new Redis(services.redis.url);
  const db = await services.createDatabase();
  const pool = new pg.Pool({ connectionString: db.url, max: 2 });
  try {
    await runMigrations(pool);
    const spillway = new Spillway({
      redis,
      pool,
      registry: pipelineRegistry,
      prefix: PREFIX,
      ...LIMITS,
    });
    const memoryMb = Number(args['sync-memory-mb']);
    const drainerOptions = memoryMb > 0 ? nodeOptions(memoryMb) : '';
    console.log(
      `backlog: ${changes} changes in changesets of ${size} (source_documents upserts); load average ${load()}`,
    );

    // Fill: WRITERS writes in flight from this process, each changeset acknowledged by Redis.
    const redisBefore = await usedMemory(redis);
    const filling = new PeakMemory();
    filling.start();
    const f = performance.now();
    let next = 0;
    const writer = async () => {
      while (next < changes) {
        const first = next;
        next += size;
        const changeset: Change[] = [];
        for (let n = first; n < first + size; n++) changeset.push(documentUpsert(n));
        await spillway.write({ changes: changeset });
      }
    };
    await Promise.all(Array.from({ length: WRITERS }, writer));
    const fillMs = performance.now() - f;
    filling.stop();
    const redisBytes = (await usedMemory(redis)) - redisBefore;
    console.log(
      `filled in ${Math.round(fillMs / 1000)} s (${rate(changes, fillMs)} changes/s); Redis holds ${Math.round(redisBytes / MIB)} MiB more (${Math.round(redisBytes / changes)} B per change); load average ${load()}`,
    );

    // Drain from another process.
    console.log(
      `draining from another process with NODE_OPTIONS=${drainerOptions === '' ? "'' (V8's defaults)" : `'${drainerOptions}' (a sync function of ${memoryMb} MB)`}`,
    );
    const drained = await runDrainer(
      {
        REDIS_URL: services.redis.url,
        DATABASE_URL: db.url,
        ...(drainerOptions === '' ? {} : { NODE_OPTIONS: drainerOptions }),
      },
      drainSeconds,
    );
    const rows = (await pool.query('SELECT count(*)::int AS n FROM source_documents')).rows[0].n;
    if (drained.applied !== changes || rows !== changes) {
      throw new Error(
        `the drainer applied ${drained.applied} of ${changes} changes; ${rows} rows landed`,
      );
    }
    const tenth = changes / 10;
    // PostgreSQL alone: a tenth of the rows, with their version rows, into empty tables and into
    // the drained ones (COPY, one transaction each; new keys, so nothing conflicts).
    // Each after a first, untimed COPY of a hundredth of that into the same tables (warm caches).
    const copyTenth = async (into: pg.Pool): Promise<number> => {
      const rows = (n: number) => {
        const changesets = Array.from({ length: Math.ceil(n / 100) }, () =>
          Array.from({ length: 100 }, (_, i) => documentUpsert(i)),
        );
        return [finalRows(changesets), touchedKeys(changesets)] as const;
      };
      await copyRows(into, ...rows(tenth / 100));
      const [final, versions] = rows(tenth);
      const t = performance.now();
      await copyRows(into, final, versions);
      return performance.now() - t;
    };
    const empty = await services.createDatabase();
    const emptyPool = new pg.Pool({ connectionString: empty.url, max: 2 });
    let copyEmptyMs: number;
    try {
      await runMigrations(emptyPool);
      copyEmptyMs = await copyTenth(emptyPool);
    } finally {
      await emptyPool.end();
    }
    const copyFullMs = await copyTenth(pool);
    const copyFullToEmpty = Number((copyEmptyMs / copyFullMs).toFixed(2));
    const startMs = timeAt(drained.progress, tenth);
    const endMs = drained.ms - timeAt(drained.progress, changes - tenth);
    const startRate = rate(tenth, startMs);
    const endRate = rate(tenth, endMs);
    const endToStart = Number((endRate / startRate).toFixed(2));
    const result = {
      measuredAt: new Date().toISOString(),
      command: `npm run bench:backlog -- ${process.argv.slice(2).join(' ')}`.trim(),
      machine: { node: process.version, cpus: cpus().length, loadAverage: loadavg() },
      changes,
      changesetSize: size,
      drainerNodeOptions: drainerOptions,
      fill: {
        ms: Math.round(fillMs),
        changesPerSecond: rate(changes, fillMs),
        redisBytes,
        redisBytesPerChange: Math.round(redisBytes / changes),
      },
      drain: {
        ms: Math.round(drained.ms),
        drains: drained.drains,
        changesPerSecond: rate(changes, drained.ms),
        cpuMs: drained.cpuMs,
        startChangesPerSecond: startRate,
        endChangesPerSecond: endRate,
        endToStart,
        peakRssMiB: drained.peakRssMiB,
        peakHeapMiB: drained.peakHeapMiB,
      },
      // COPY of a tenth of the rows (with version rows) into the drained tables, against empty ones.
      postgres: {
        copyTenthIntoEmptyMs: Math.round(copyEmptyMs),
        copyTenthIntoDrainedMs: Math.round(copyFullMs),
        drainedToEmpty: copyFullToEmpty,
      },
      targets: {
        peakRssAtMost256MiB: drained.peakRssMiB <= 256,
        endRateWithin15Percent: endToStart >= 0.85,
      },
      rssTimeline: drained.rssTimeline,
      progress: drained.progress,
      drainStarts: drained.drainStarts,
      loadDuringDrain: drained.load,
      loadAverageAfter: loadavg(),
    };
    console.log(
      `drained in ${Math.round(drained.ms / 1000)} s by another process (${drained.drains} drains of at most ${drainSeconds} s): ${result.drain.changesPerSecond} changes/s overall; the drainer used ${(drained.cpuMs / 1000).toFixed(1)} s of CPU (${Math.round((drained.cpuMs / changes) * 1000)} µs per change)`,
    );
    console.log(
      `  rate over the first tenth ${startRate} changes/s, over the last tenth ${endRate} changes/s: ${endToStart} x (target at least 0.85: ${result.targets.endRateWithin15Percent ? 'met' : 'missed'})`,
    );
    console.log(
      `  PostgreSQL alone: COPY of a tenth of the changes (with their version rows) into the drained tables ran at ${copyFullToEmpty} x its rate into empty ones (${Math.round(copyFullMs)} against ${Math.round(copyEmptyMs)} ms)`,
    );
    console.log(
      `  peak RSS of the draining process ${drained.peakRssMiB} MiB, peak heap ${drained.peakHeapMiB} MiB (target at most 256 MiB: ${result.targets.peakRssAtMost256MiB ? 'met' : 'missed'})`,
    );
    const chart: BacklogChartInput = {
      label: `${changes} changes, changesets of ${size}`,
      rssTimeline: result.rssTimeline,
      progress: result.progress,
    };
    const base = writeResults('backlog', result, await backlogChart([chart]));
    console.log(`load average ${load()}; figures written to ${base}.json, chart ${base}.svg`);
  } finally {
    redis.disconnect();
    await pool.end();
    await services.stop();
  }
}

await main();
