/**
 * Data API benchmark: the drain rate through the Data API sink beside the pg sink and raw COPY
 * into the same tables, all measured in this one run on this machine.
 *
 *   copy       raw PostgreSQL COPY of the final rows (the ceiling)
 *   drain-pg   Spillway draining through PgBouncer (transaction pooling, as RDS Proxy)
 *   drain-data-api  Spillway draining through the local Data API stand-in (local/data-api), one
 *              HTTP request per statement, as the RDS Data API takes them
 *
 * The stand-in is not Aurora: it shows what the Data API's shape costs (a request per statement,
 * JSON parameters, no connection held by the client), not the real service's latency. Each
 * method gets a fresh database on the same PostgreSQL; the methods alternate over rounds and the
 * medians are compared. Results go to bench/results/data-api-*.json with a chart beside it.
 * Usage: npm run bench:data-api [-- --documents 300 --batch 500 --rounds 3 --workload mixed|single|both]
 */
import { cpus, loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import { RDSDataClient } from '@aws-sdk/client-rds-data';
import { Redis } from 'ioredis';
import pg from 'pg';
import { DataApiPool } from '../lambdas/io/data-api-connection.js';
import { DataApiSink } from '../lambdas/io/data-api-sink.js';
import { runMigrations } from '../lambdas/io/migrator.js';
import { pipelineRegistry } from '../lambdas/schema/tables.js';
import { Spillway, type SpillwayOptions } from '../lambdas/spillway.js';
import { startLocalDataApi } from '../local/data-api/server.js';
import { startServices } from '../local/services/index.js';
import { type DrainChartInput, drainChart } from './chart.js';
import { load, median, PeakMemory, rate, writeResults } from './common.js';
import { copyRows, countAll, finalRows } from './copy.js';
import { drainToEmpty, fillBacklog } from './spillway-run.js';
import { type Change, workloadChangesets } from './workloads.js';

const { values: args } = parseArgs({
  options: {
    documents: { type: 'string', default: '300' },
    batch: { type: 'string', default: '500' },
    rounds: { type: 'string', default: '3' },
    workload: { type: 'string', default: 'both' },
  },
});
const DOCUMENTS = Number(args.documents);
const BATCH = Number(args.batch);
const ROUNDS = Number(args.rounds);
const WORKLOADS = args.workload === 'both' ? ['mixed', 'single'] : [String(args.workload)];

type Method = 'copy' | 'drain-pg' | 'drain-data-api';
const METHODS: readonly Method[] = ['copy', 'drain-pg', 'drain-data-api'];

interface Measured {
  readonly ms: number;
  readonly rssMiB: number;
  readonly counts: Record<string, number>;
  readonly batches: number;
  readonly timeline: { ms: number; rssMiB: number }[];
}

async function main(): Promise<void> {
  const services = await startServices({ redis: true });
  const memory = new PeakMemory();
  const closers: (() => Promise<unknown> | unknown)[] = [];
  let prefixes = 0;

  const fresh = async () => {
    const db = await services.createDatabase();
    const pool = new pg.Pool({ connectionString: db.url, max: 2 });
    closers.push(() => pool.end());
    await runMigrations(pool);
    return { db, pool };
  };

  /** Writes every changeset (acknowledged, untimed), then times the drain to empty. */
  const drain = async (
    changesets: readonly Change[][],
    changes: number,
    sinkOptions: (db: { directUrl: string }, pool: pg.Pool) => Promise<Partial<SpillwayOptions>>,
  ): Promise<Measured> => {
    const { db, pool } = await fresh();
    const redis = new Redis(services.redis.url);
    closers.push(() => redis.disconnect());
    const spillway = new Spillway({
      redis,
      pool,
      registry: pipelineRegistry,
      prefix: `bench-data-api-${prefixes++}`,
      batchSize: BATCH,
      ...(await sinkOptions(db, pool)),
    });
    await fillBacklog(spillway, changesets);
    memory.start();
    const t = performance.now();
    const { batches } = await drainToEmpty(spillway, changes);
    const ms = performance.now() - t;
    const peak = memory.stop();
    return {
      ms,
      rssMiB: peak.rssMiB,
      counts: await countAll(pool),
      batches,
      timeline: memory.timeline,
    };
  };

  const viaPg = async () => ({});
  const viaDataApi = async (db: { directUrl: string }) => {
    const api = await startLocalDataApi({ postgresUrl: db.directUrl });
    const client = new RDSDataClient({
      endpoint: api.url,
      region: 'us-east-1',
      credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
      maxAttempts: 1,
    });
    closers.push(async () => {
      client.destroy();
      await api.close();
    });
    const dataApi = new DataApiPool(client, {
      resourceArn: 'arn:aws:rds:us-east-1:000000000000:cluster:spillway-bench',
      secretArn: 'arn:aws:secretsmanager:us-east-1:000000000000:secret:spillway-bench',
      database: new URL(db.directUrl).pathname.slice(1),
    });
    return {
      pool: dataApi,
      sink: (o) => new DataApiSink(dataApi, o),
    } satisfies Partial<SpillwayOptions>;
  };

  const results: Record<string, unknown>[] = [];
  try {
    for (const workload of WORKLOADS) {
      const changesets = workloadChangesets(workload, DOCUMENTS);
      const changes = changesets.reduce((n, c) => n + c.length, 0);
      const final = finalRows(changesets);
      const rows = [...final.values()].reduce((n, t) => n + t.size, 0);
      console.log(
        `\n${workload}: ${changesets.length} changesets, ${changes} changes -> ${rows} final rows; ${ROUNDS} rounds; load average ${load()}`,
      );
      const runs: Record<Method, Measured[]> = { copy: [], 'drain-pg': [], 'drain-data-api': [] };
      for (let round = 0; round < ROUNDS; round++) {
        // The methods alternate, so that a busy moment of the machine hits them alike.
        const { pool } = await fresh();
        memory.start();
        const t = performance.now();
        await copyRows(pool, final);
        const copyMs = performance.now() - t;
        runs.copy.push({
          ms: copyMs,
          rssMiB: memory.stop().rssMiB,
          counts: await countAll(pool),
          batches: 1,
          timeline: [],
        });
        runs['drain-pg'].push(await drain(changesets, changes, viaPg));
        runs['drain-data-api'].push(await drain(changesets, changes, viaDataApi));
        const ms = (m: Method) => Math.round(runs[m][round]?.ms ?? 0);
        console.log(
          `round ${round + 1}: copy ${ms('copy')} ms, drain-pg ${ms('drain-pg')} ms, drain-data-api ${ms('drain-data-api')} ms (load ${load()})`,
        );
      }
      const expected = JSON.stringify(runs.copy[0]?.counts);
      for (const method of METHODS) {
        for (const run of runs[method]) {
          if (JSON.stringify(run.counts) !== expected) {
            throw new Error(`${method} landed ${JSON.stringify(run.counts)}, COPY ${expected}`);
          }
        }
      }
      const copyMs = median(runs.copy.map((r) => r.ms));
      const pgMs = median(runs['drain-pg'].map((r) => r.ms));
      const methods = METHODS.map((method) => {
        const ms = median(runs[method].map((r) => r.ms));
        return {
          method,
          medianMs: Math.round(ms),
          runsMs: runs[method].map((r) => Math.round(r.ms)),
          rowsPerSecond: rate(rows, ms),
          changesPerSecond: method === 'copy' ? null : rate(changes, ms),
          ratioToCopy: Number((copyMs / ms).toFixed(2)),
          ratioToPgDrain: Number((pgMs / ms).toFixed(2)),
          batches: runs[method][0]?.batches ?? 0,
          peakRssMiB: Math.max(...runs[method].map((r) => r.rssMiB)),
        };
      });
      results.push({
        workload,
        changesets: changesets.length,
        changes,
        finalRows: rows,
        batchChangesets: BATCH,
        rounds: ROUNDS,
        methods,
        drainRssTimeline: runs['drain-data-api'][0]?.timeline ?? [],
        loadAverageAfter: loadavg(),
      });
      for (const m of methods) {
        console.log(
          `${m.method.padEnd(15)} ${String(m.medianMs).padStart(7)} ms  ${String(m.rowsPerSecond).padStart(8)} rows/s  ${m.ratioToCopy.toFixed(2)} x COPY  ${m.ratioToPgDrain.toFixed(2)} x drain-pg  runs ${m.runsMs.join('/')} ms  ${m.batches} batches  peak rss ${m.peakRssMiB} MiB`,
        );
      }
    }
    const figures = {
      measuredAt: new Date().toISOString(),
      command: `npm run bench:data-api -- ${process.argv.slice(2).join(' ')}`.trim(),
      machine: { node: process.version, cpus: cpus().length, loadAverage: loadavg() },
      note: 'drain-data-api goes through the local stand-in of the Data API, not AWS',
      results,
    };
    const base = writeResults(
      'data-api',
      figures,
      await drainChart(results as unknown as DrainChartInput[]),
    );
    console.log(`\nload average ${load()}; figures written to ${base}.json, chart ${base}.svg`);
  } finally {
    for (const close of closers.reverse()) await Promise.resolve(close()).catch(() => undefined);
    await services.stop();
  }
}

await main();
