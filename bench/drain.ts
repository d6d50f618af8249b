/**
 * Drain benchmark: lands the same workloads in the shipped tables several ways and prints the
 * rates side by side, all measured in this one run on this machine.
 *
 *   copy       raw PostgreSQL COPY of the final rows (the ceiling: no versions, no coalescing)
 *   copy+versions  the same, plus a version row per touched key COPYed into its version table:
 *              the least G2's per-row bookkeeping costs, a ceiling for any drain that keeps G2
 *   drain      Spillway: changesets written to Redis, then drained through PgBouncer
 *   naive      one autocommitted statement per change, as a queue-per-row worker would do
 *
 * Two workloads: `mixed` (a document pipeline's changesets, every op and table) and `single`
 * (upserts of one table, 20 to a changeset). Each approach gets a fresh database behind the
 * same PgBouncer (transaction pooling, as RDS Proxy). COPY and the drains run in alternating
 * rounds and the medians are compared. It also reports the Redis memory per pending change
 * (INFO memory before and after the buffer is filled) beside the changesets' JSON size, for
 * each workload and for changesets of 1,000-character chunks, with what the backlog limit
 * charges for it and how many changes (and minutes of outage) a cache node absorbs.
 * Results go to bench/results/*.json and a chart beside it (bench/chart.ts).
 * Usage: npm run bench [-- --documents 2500 --batch 500 --batch-bytes N --rounds 3 --workload mixed|single|both --naive]
 */
import { cpus, loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import { Redis } from 'ioredis';
import pg from 'pg';
import { runMigrations } from '../lambdas/io/migrator.js';
import { pipelineRegistry } from '../lambdas/schema/tables.js';
import { createBuffer, Spillway } from '../lambdas/spillway.js';
import { startServices } from '../local/services/index.js';
import { timingApply } from './apply-timing.js';
import { type DrainChartInput, drainChart } from './chart.js';
import { load, median, PeakMemory, rate, usedMemory, writeResults } from './common.js';
import { copyRows, countAll, finalRows, touchedKeys } from './copy.js';
import { drainToEmpty, fillBacklog } from './spillway-run.js';
import { type Change, longChunks, type Row, workloadChangesets } from './workloads.js';

const { values: args } = parseArgs({
  options: {
    documents: { type: 'string', default: '2500' },
    batch: { type: 'string', default: '500' },
    'batch-bytes': { type: 'string' },
    rounds: { type: 'string', default: '3' },
    workload: { type: 'string', default: 'both' },
    naive: { type: 'boolean', default: false },
  },
});
const DOCUMENTS = Number(args.documents);
const BATCH = Number(args.batch);
/** SYNC_BATCH_BYTES for the drain; the engine's default when not given. */
const BATCH_BYTES = args['batch-bytes'] === undefined ? undefined : Number(args['batch-bytes']);
const ROUNDS = Number(args.rounds);
const WORKLOADS = args.workload === 'both' ? ['mixed', 'single'] : [String(args.workload)];

interface Measured {
  readonly ms: number;
  readonly memory: { rssMiB: number; heapMiB: number };
  readonly counts: Record<string, number>;
}

interface DrainMeasured extends Measured {
  readonly writeMs: number;
  /** Time inside PostgresSink.apply: the database's part, round trips included. */
  readonly applyMs: number;
  readonly batches: number;
  readonly redisBytes: number;
  /** What the backlog limit charged for the filled buffer (`stats().backlogBytes`). */
  readonly chargedBytes: number;
  readonly timeline: { ms: number; rssMiB: number }[];
}

/** Cache nodes the report translates memory into, and the write rate it assumes. */
const NODES: [string, number][] = [
  ['0.5 GiB', 0.5 * 2 ** 30],
  ['6 GiB', 6 * 2 ** 30],
];
const WRITE_RATE = 1_000;

/**
 * What a filled buffer costs per pending change, and what a node absorbs: the backlog limit
 * (`BACKLOG_LIMIT_BYTES`, half the node's memory when deployed) counts the charge, so the
 * changes it lets in are half the node over the charge per change.
 */
function memoryFigures(
  redisBytes: number,
  chargedBytes: number,
  jsonBytes: number,
  changes: number,
) {
  const charged = chargedBytes / changes;
  return {
    redisBytesPerChange: Math.round(redisBytes / changes),
    chargedBytesPerChange: Math.round(charged),
    jsonBytesPerChange: Math.round(jsonBytes / changes),
    redisToJson: Number((redisBytes / jsonBytes).toFixed(2)),
    absorbs: Object.fromEntries(
      NODES.map(([name, bytes]) => {
        const pending = Math.floor(bytes / 2 / charged);
        return [name, { changes: pending, outageMinutes: Math.round(pending / WRITE_RATE / 60) }];
      }),
    ),
  };
}

function printMemory(label: string, figures: ReturnType<typeof memoryFigures>): void {
  console.log(
    `${label}: Redis ${figures.redisBytesPerChange} B per pending change, JSON ${figures.jsonBytesPerChange} B (${figures.redisToJson} x), charged ${figures.chargedBytesPerChange} B`,
  );
  for (const [name, a] of Object.entries(figures.absorbs)) {
    console.log(
      `  a ${name} node (backlog limit half of it) holds ${a.changes} pending changes: ${a.outageMinutes} minutes of outage at ${WRITE_RATE} changes/s`,
    );
  }
}

const jsonBytesOf = (changesets: Change[][]) =>
  changesets.reduce((n, c) => n + Buffer.byteLength(JSON.stringify({ changes: c })), 0);

type Method = 'copy' | 'copy+versions' | 'drain' | 'naive';

async function main(): Promise<void> {
  const services = await startServices({ redis: true });
  const memory = new PeakMemory();
  const pools: pg.Pool[] = [];
  const freshPool = async (): Promise<pg.Pool> => {
    const db = await services.createDatabase();
    const pool = new pg.Pool({ connectionString: db.url, max: 2 });
    pools.push(pool);
    await runMigrations(pool);
    return pool;
  };
  const measure = async (work: (pool: pg.Pool) => Promise<void>): Promise<Measured> => {
    const pool = await freshPool();
    memory.start();
    const t = performance.now();
    await work(pool);
    const ms = performance.now() - t;
    return { ms, memory: memory.stop(), counts: await countAll(pool) };
  };

  // COPY: the final rows, table by table in one transaction.
  const copy = (final: Map<string, Map<string, Row>>, versions?: Map<string, Set<string>>) =>
    measure((pool) => copyRows(pool, final, versions));

  // Spillway: every changeset written to Redis (acknowledged) first, untimed; then the drain.
  let prefixes = 0;
  const drain = async (changesets: Change[][], changes: number): Promise<DrainMeasured> => {
    const pool = await freshPool();
    const redis = new Redis(services.redis.url);
    const spillway = new Spillway({
      redis,
      pool,
      registry: pipelineRegistry,
      prefix: `bench-${prefixes++}`,
      batchSize: BATCH,
      ...(BATCH_BYTES === undefined ? {} : { batchBytes: BATCH_BYTES }),
    });
    const before = await usedMemory(redis);
    const w = performance.now();
    await fillBacklog(spillway, changesets);
    const writeMs = performance.now() - w;
    const redisBytes = (await usedMemory(redis)) - before;
    const chargedBytes = (await spillway.buffer.stats()).backlogBytes;
    memory.start();
    const t = performance.now();
    const {
      result: { batches },
      applyMs,
    } = await timingApply(() => drainToEmpty(spillway, changes));
    const ms = performance.now() - t;
    const peak = memory.stop();
    const timeline = memory.timeline;
    redis.disconnect();
    return {
      ms,
      memory: peak,
      counts: await countAll(pool),
      writeMs,
      applyMs,
      batches,
      redisBytes,
      chargedBytes,
      timeline,
    };
  };

  // The memory of a filled buffer alone (nothing drains it; the services stop at the end).
  const fillMemory = async (changesets: Change[][]) => {
    const redis = new Redis(services.redis.url);
    const buffer = createBuffer({
      redis,
      registry: pipelineRegistry,
      prefix: `bench-${prefixes++}`,
      backlogLimit: 1e12,
      backlogBytesLimit: 1e15,
    });
    const before = await usedMemory(redis);
    for (let i = 0; i < changesets.length; i += 64) {
      await Promise.all(changesets.slice(i, i + 64).map((c) => buffer.write({ changes: c })));
    }
    const redisBytes = (await usedMemory(redis)) - before;
    const { backlogBytes } = await buffer.stats();
    redis.disconnect();
    const changes = changesets.reduce((n, c) => n + c.length, 0);
    return memoryFigures(redisBytes, backlogBytes, jsonBytesOf(changesets), changes);
  };

  // Naive: one statement per change, each its own transaction.
  const naive = (changesets: Change[][]) =>
    measure(async (pool) => {
      for (const changeset of changesets) {
        for (const change of changeset) {
          const def = pipelineRegistry.get(change.table);
          if (!def) throw new Error(change.table);
          const pk = def.primaryKey[0] as string;
          if (change.op === 'upsert') {
            const columns = Object.keys(change.record);
            const updates = columns.filter((c) => c !== pk).map((c) => `${c} = EXCLUDED.${c}`);
            await pool.query(
              `INSERT INTO ${change.table} (${columns.join(', ')}) VALUES (${columns.map((_, i) => `$${i + 1}`).join(', ')}) ON CONFLICT (${pk}) DO UPDATE SET ${updates.join(', ')}`,
              columns.map((c) => change.record[c]),
            );
          } else if (change.op === 'patch') {
            const columns = Object.keys(change.set);
            await pool.query(
              `UPDATE ${change.table} SET ${columns.map((c, i) => `${c} = $${i + 2}`).join(', ')} WHERE ${pk} = $1`,
              [change.key[pk], ...columns.map((c) => change.set[c])],
            );
          } else {
            await pool.query(`DELETE FROM ${change.table} WHERE ${pk} = $1`, [change.key[pk]]);
          }
        }
      }
    });

  const results: Record<string, unknown>[] = [];
  try {
    for (const workload of WORKLOADS) {
      const changesets = workloadChangesets(workload, DOCUMENTS);
      const changes = changesets.reduce((n, c) => n + c.length, 0);
      const jsonBytes = jsonBytesOf(changesets);
      const final = finalRows(changesets);
      const versions = touchedKeys(changesets);
      const rows = [...final.values()].reduce((n, t) => n + t.size, 0);
      console.log(
        `\n${workload}: ${changesets.length} changesets, ${changes} changes -> ${rows} final rows; ${ROUNDS} rounds; load average ${load()}`,
      );

      // The methods alternate, so that a busy moment of the machine hits them alike.
      const runs: Record<Method, (Measured | DrainMeasured)[]> = {
        copy: [],
        'copy+versions': [],
        drain: [],
        naive: [],
      };
      const drains: DrainMeasured[] = [];
      for (let round = 0; round < ROUNDS; round++) {
        runs.copy.push(await copy(final));
        runs['copy+versions'].push(await copy(final, versions));
        const drained = await drain(changesets, changes);
        drains.push(drained);
        runs.drain.push(drained);
        const ms = (m: Method) => Math.round(runs[m][round]?.ms ?? 0);
        console.log(
          `round ${round + 1}: copy ${ms('copy')} ms, copy+versions ${ms('copy+versions')} ms, drain ${ms('drain')} ms (load ${load()})`,
        );
      }
      if (args.naive && workload === 'mixed') runs.naive.push(await naive(changesets));
      const expected = JSON.stringify(runs.copy[0]?.counts);
      for (const [method, list] of Object.entries(runs)) {
        for (const run of list) {
          if (JSON.stringify(run.counts) !== expected) {
            throw new Error(`${method} landed ${JSON.stringify(run.counts)}, COPY ${expected}`);
          }
        }
      }

      const copyMs = median(runs.copy.map((r) => r.ms));
      const methods = (Object.keys(runs) as Method[])
        .filter((m) => runs[m].length > 0)
        .map((method) => {
          const list = runs[method];
          const ms = median(list.map((r) => r.ms));
          return {
            method,
            medianMs: Math.round(ms),
            runsMs: list.map((r) => Math.round(r.ms)),
            rowsPerSecond: rate(rows, ms),
            changesPerSecond: method.startsWith('copy') ? null : rate(changes, ms),
            ratioToCopy: Number((copyMs / ms).toFixed(2)),
            // The share of the drain spent inside apply (waiting for the database).
            applyShare: list.every((r) => 'applyMs' in r)
              ? Number(median(list.map((r) => ('applyMs' in r ? r.applyMs / r.ms : 0))).toFixed(2))
              : null,
            peakMemory: {
              rssMiB: Math.max(...list.map((r) => r.memory.rssMiB)),
              heapMiB: Math.max(...list.map((r) => r.memory.heapMiB)),
            },
          };
        });
      const redisBytes = median(drains.map((d) => d.redisBytes));
      const chargedBytes = median(drains.map((d) => d.chargedBytes));
      const result = {
        workload,
        changesets: changesets.length,
        changes,
        finalRows: rows,
        batchChangesets: BATCH,
        rounds: ROUNDS,
        batches: drains[0]?.batches,
        methods,
        buffer: {
          writeMs: Math.round(median(drains.map((d) => d.writeMs))),
          changesPerSecond: rate(changes, median(drains.map((d) => d.writeMs))),
          ...memoryFigures(redisBytes, chargedBytes, jsonBytes, changes),
        },
        drainRssTimeline: drains[0]?.timeline ?? [],
        loadAverageAfter: loadavg(),
      };
      results.push(result);
      for (const m of methods) {
        console.log(
          `${m.method.padEnd(13)} ${String(m.medianMs).padStart(7)} ms  ${String(m.rowsPerSecond).padStart(8)} rows/s  ${m.ratioToCopy.toFixed(2)} x COPY  runs ${m.runsMs.join('/')} ms${m.applyShare === null ? '' : `  in apply ${Math.round(m.applyShare * 100)}%`}  peak rss ${m.peakMemory.rssMiB} MiB`,
        );
      }
      console.log(`buffer: ${result.buffer.changesPerSecond} changes/s written`);
      printMemory('buffer', result.buffer);
    }
    // Changesets of 1,000-character chunks: memory only (the drain is measured above).
    const chunkMemory: Record<string, unknown>[] = [];
    for (const [shape, changesets] of [
      ['a document with 4 chunks of 1,000 characters', longChunks(DOCUMENTS * 4, 4, true)],
      ['one 1,000-character chunk', longChunks(DOCUMENTS * 8, 1, false)],
    ] as const) {
      const figures = await fillMemory(changesets);
      chunkMemory.push({ shape, changesets: changesets.length, ...figures });
      printMemory(`\nchangesets of ${shape}`, figures);
    }
    const figures = {
      measuredAt: new Date().toISOString(),
      command: `npm run bench -- ${process.argv.slice(2).join(' ')}`.trim(),
      machine: { node: process.version, cpus: cpus().length, loadAverage: loadavg() },
      results,
      chunkMemory,
    };
    const base = writeResults(
      'drain',
      figures,
      await drainChart(results as unknown as DrainChartInput[]),
    );
    console.log(`\nload average ${load()}; figures written to ${base}.json, chart ${base}.svg`);
  } finally {
    await Promise.allSettled(pools.map((p) => p.end()));
    await services.stop();
  }
}

await main();
