/**
 * Where a drain's CPU goes, beside COPY's (issue 9: say what limits the drain, with the
 * measurement that shows it). Lands the drain benchmark's workloads by COPY and by a Spillway
 * drain through PgBouncer, alternating over rounds, and attributes the CPU time each spent, in
 * its timed part only, to:
 *
 *   node       this process (user and system time, `process.cpuUsage`), with its time in
 *              garbage collection (`PerformanceObserver`, entry type gc)
 *   postgres   every PostgreSQL process (backends, WAL writer, checkpointer...), from
 *              /proc/<pid>/stat, with the CPU of backends that exited meanwhile (cutime/cstime
 *              of the postmaster)
 *   pgbouncer, redis   the same, for their processes
 *
 * On 2 cores, the sum of the parts over the wall time says how busy the machine was: near 2,
 * the drain is bound by CPU, and its parts say whose. Linux only (/proc).
 * Usage: npm run bench:cpu [-- --documents 2500 --rounds 3 --workload mixed|single|both]
 */
import { readdirSync, readFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { PerformanceObserver } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { Redis } from 'ioredis';
import pg from 'pg';
import { runMigrations } from '../lambdas/io/migrator.js';
import { pipelineRegistry } from '../lambdas/schema/tables.js';
import { Spillway } from '../lambdas/spillway.js';
import { type Services, startServices } from '../local/services/index.js';
import { load, median } from './common.js';
import { copyRows, countAll, finalRows } from './copy.js';
import { drainToEmpty, fillBacklog } from './spillway-run.js';
import { workloadChangesets } from './workloads.js';

const { values: args } = parseArgs({
  options: {
    documents: { type: 'string', default: '2500' },
    batch: { type: 'string', default: '500' },
    rounds: { type: 'string', default: '3' },
    workload: { type: 'string', default: 'both' },
  },
});
const DOCUMENTS = Number(args.documents);
const BATCH = Number(args.batch);
const ROUNDS = Number(args.rounds);
const WORKLOADS = args.workload === 'both' ? ['mixed', 'single'] : [String(args.workload)];

/** Clock ticks per second of /proc/<pid>/stat's times (USER_HZ, 100 on Linux). */
const TICK_MS = 10;

type Part = 'node' | 'nodeGc' | 'postgres' | 'pgbouncer' | 'redis';
type Cpu = Record<Part, number> & { nodeUser: number; nodeSys: number };

/**
 * CPU milliseconds each service's processes have used so far: each service's leader (listed in
 * <dir>/pids) and its descendants (PostgreSQL's backends lead process groups of their own).
 */
function serviceCpu(services: Services): Record<'postgres' | 'pgbouncer' | 'redis', number> {
  const leaders = new Set(
    readFileSync(join(services.dir, 'pids'), 'utf8').split('\n').filter(Boolean).map(Number),
  );
  const processes = new Map<number, { ppid: number; comm: string; ms: number }>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
    } catch {
      continue; // gone meanwhile
    }
    const comm = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
    // Fields after the command: state ppid ... utime (14) stime cutime cstime (17).
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const ticks = [11, 12, 13, 14].reduce((n, i) => n + Number(fields[i]), 0);
    processes.set(Number(entry), { ppid: Number(fields[1]), comm, ms: ticks * TICK_MS });
  }
  const leaderOf = (pid: number): number | undefined => {
    for (let at: number | undefined = pid, depth = 0; at !== undefined && depth < 8; depth++) {
      if (leaders.has(at)) return at;
      at = processes.get(at)?.ppid;
    }
    return undefined;
  };
  const out = { postgres: 0, pgbouncer: 0, redis: 0 };
  for (const [pid, { ms }] of processes) {
    const leader = leaderOf(pid);
    if (leader === undefined) continue;
    const comm = processes.get(leader)?.comm ?? '';
    const part = comm.startsWith('redis')
      ? 'redis'
      : comm.startsWith('pgbouncer')
        ? 'pgbouncer'
        : 'postgres';
    out[part] += ms;
  }
  return out;
}

let gcMs = 0;
new PerformanceObserver((list) => {
  for (const entry of list.getEntries()) gcMs += entry.duration;
}).observe({ entryTypes: ['gc'] });

/** CPU used by every part while `work` runs, and its wall time. */
async function attribute(
  services: Services,
  work: () => Promise<void>,
): Promise<{ ms: number; cpu: Cpu }> {
  const services0 = serviceCpu(services);
  const gc0 = gcMs;
  const node0 = process.cpuUsage();
  const t = performance.now();
  await work();
  const ms = performance.now() - t;
  const node = process.cpuUsage(node0);
  const services1 = serviceCpu(services);
  const nodeUser = node.user / 1000;
  const nodeSys = node.system / 1000;
  return {
    ms,
    cpu: {
      node: nodeUser + nodeSys,
      nodeUser,
      nodeSys,
      nodeGc: gcMs - gc0,
      postgres: services1.postgres - services0.postgres,
      pgbouncer: services1.pgbouncer - services0.pgbouncer,
      redis: services1.redis - services0.redis,
    },
  };
}

const total = (cpu: Cpu) => cpu.node + cpu.postgres + cpu.pgbouncer + cpu.redis;

async function main(): Promise<void> {
  console.log(`load average ${load()}; ${cpus().length} cores`);
  const services = await startServices({ redis: true });
  const pools: pg.Pool[] = [];
  const fresh = async (): Promise<pg.Pool> => {
    const db = await services.createDatabase();
    const pool = new pg.Pool({ connectionString: db.url, max: 2 });
    pools.push(pool);
    await runMigrations(pool);
    return pool;
  };
  let prefixes = 0;
  try {
    for (const workload of WORKLOADS) {
      const changesets = workloadChangesets(workload, DOCUMENTS);
      const changes = changesets.reduce((n, c) => n + c.length, 0);
      const final = finalRows(changesets);
      const runs: Record<'copy' | 'drain', { ms: number; cpu: Cpu }[]> = { copy: [], drain: [] };
      for (let round = 0; round < ROUNDS; round++) {
        const copyPool = await fresh();
        runs.copy.push(await attribute(services, () => copyRows(copyPool, final)));
        const expected = JSON.stringify(await countAll(copyPool));

        const pool = await fresh();
        const redis = new Redis(services.redis.url);
        const spillway = new Spillway({
          redis,
          pool,
          registry: pipelineRegistry,
          prefix: `cpu-${prefixes++}`,
          batchSize: BATCH,
        });
        await fillBacklog(spillway, changesets);
        runs.drain.push(
          await attribute(services, async () => {
            await drainToEmpty(spillway, changes);
          }),
        );
        redis.disconnect();
        const landed = JSON.stringify(await countAll(pool));
        if (landed !== expected) throw new Error(`drain landed ${landed}, COPY ${expected}`);
      }
      console.log(
        `\n${workload}: ${changesets.length} changesets, ${changes} changes; medians of ${ROUNDS} rounds; load average ${load()}`,
      );
      const copyCpu = median(runs.copy.map((r) => total(r.cpu)));
      const copyMs = median(runs.copy.map((r) => r.ms));
      const rows = Object.entries(runs).map(([method, list]) => {
        const m = (f: (r: { ms: number; cpu: Cpu }) => number) => Math.round(median(list.map(f)));
        const ms = m((r) => r.ms);
        const cpu = m((r) => total(r.cpu));
        return [
          method,
          `${ms} (${(copyMs / ms).toFixed(2)} x COPY's rate)`,
          `${cpu} (${(cpu / ms).toFixed(2)} cores, ${(cpu / copyCpu).toFixed(1)} x COPY's)`,
          `${m((r) => r.cpu.node)} (${m((r) => r.cpu.nodeUser)}/${m((r) => r.cpu.nodeSys)}, gc ${m((r) => r.cpu.nodeGc)})`,
          String(m((r) => r.cpu.postgres)),
          String(m((r) => r.cpu.pgbouncer)),
          String(m((r) => r.cpu.redis)),
        ];
      });
      const header = [
        'method',
        'wall ms',
        'CPU ms, all parts',
        'node (user/sys, gc)',
        'postgres',
        'pgbouncer',
        'redis',
      ];
      const widths = header.map((h, i) =>
        Math.max(h.length, ...rows.map((r) => r[i]?.length ?? 0)),
      );
      for (const row of [header, ...rows]) {
        console.log(row.map((cell, i) => cell.padEnd(widths[i] ?? 0)).join('  '));
      }
    }
    console.log(`\nload average ${load()}`);
  } finally {
    await Promise.allSettled(pools.map((p) => p.end()));
    await services.stop();
  }
}

await main();
