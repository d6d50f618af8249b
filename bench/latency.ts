/**
 * Write-latency benchmark (issue 9, item 5): `write` invoked the way a pipeline invokes it, through
 * the local runner (`spillway local` as a child process, `local/runner-process.ts`) with
 * `@aws-sdk/client-lambda`, beside a bare XADD of the same changeset from this process with
 * ioredis: what Spillway adds to the round trip to Redis. Changesets of 1 and 100 changes, 1 and
 * 16 concurrent callers; p50 and p99 of each, write and XADD measured in alternating blocks. The
 * runner drains the buffer in the background as it does when deployed (its `sync` schedule).
 * No target. Results go to bench/results/latency-*.json with a chart beside them.
 *
 * Usage: npm run bench:latency [-- --invocations 400]
 */
import { parseArgs } from 'node:util';
import { InvokeCommand, LambdaClient } from '@aws-sdk/client-lambda';
import { Redis } from 'ioredis';
import { spawnRunner } from '../local/runner-process.js';
import { startServices } from '../local/services/index.js';
import { type LatencyChartInput, latencyChart } from './chart.js';
import { load, percentile, timed, writeResults } from './common.js';
import { documentUpsert } from './workloads.js';

const PREFIX = 'bench-latency';
const CHANGESET_SIZES = [1, 100] as const;
const CALLERS = [1, 16] as const;
/** Calls before each case's measured ones: connections opened, code paths warm. */
const WARM_UP = 20;
/** Write and XADD alternate in this many blocks per case, so that a burst of load hits both. */
const BLOCKS = 4;

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { invocations: { type: 'string', default: '400' } } });
  const invocations = Number(values.invocations);
  if (!Number.isInteger(invocations) || invocations < BLOCKS) {
    throw new Error(`--invocations: an integer of at least ${BLOCKS}`);
  }
  const loadBefore = load();
  const services = await startServices();
  const database = await services.createDatabase();
  const redis = new Redis(services.redis.url);
  const runner = await spawnRunner({
    env: {
      REDIS_URL: services.redis.url,
      DATABASE_URL: database.url,
      SPILLWAY_PREFIX: PREFIX,
      // The harness's Redis has no replica to confirm a write.
      REDIS_REPLICA_ACKS: '0',
      POWERTOOLS_LOG_LEVEL: 'WARN',
      POWERTOOLS_METRICS_DISABLED: 'true',
    },
  });
  const lambda = new LambdaClient({
    endpoint: runner.url,
    region: 'us-east-1',
    credentials: { accessKeyId: 'AKIDLOCAL', secretAccessKey: 'local-secret' },
    maxAttempts: 1,
  });
  try {
    let n = 0;
    const changeset = (size: number) => ({
      changes: Array.from({ length: size }, () => documentUpsert(n++)),
    });
    const write = async (size: number) => {
      const answer = await lambda.send(
        new InvokeCommand({
          FunctionName: 'write',
          Payload: new TextEncoder().encode(JSON.stringify(changeset(size))),
        }),
      );
      if (answer.FunctionError !== undefined) {
        throw new Error(`write failed: ${new TextDecoder().decode(answer.Payload)}`);
      }
    };
    const xadd = async (size: number) => {
      await redis.xadd(`${PREFIX}:baseline`, '*', 'changeset', JSON.stringify(changeset(size)));
    };

    console.log(`load average ${load()}; ${invocations} calls of each kind per case`);
    const cases: LatencyChartInput[] = [];
    for (const size of CHANGESET_SIZES) {
      for (const callers of CALLERS) {
        await timed(() => write(size), WARM_UP, callers);
        await timed(() => xadd(size), WARM_UP, callers);
        const writeMs: number[] = [];
        const xaddMs: number[] = [];
        for (let block = 0; block < BLOCKS; block++) {
          const count = Math.ceil(invocations / BLOCKS);
          writeMs.push(...(await timed(() => write(size), count, callers)));
          xaddMs.push(...(await timed(() => xadd(size), count, callers)));
          // Keep the baseline's stream from growing over the run.
          await redis.del(`${PREFIX}:baseline`);
        }
        cases.push({
          changes: size,
          callers,
          write: { p50: percentile(writeMs, 50), p99: percentile(writeMs, 99) },
          xadd: { p50: percentile(xaddMs, 50), p99: percentile(xaddMs, 99) },
          load: load(),
        });
      }
    }
    const loadAfter = load();

    console.log(
      '\n| changes per changeset | callers | write p50 ms | write p99 ms | XADD p50 ms | XADD p99 ms | load average |',
    );
    console.log('|---|---|---|---|---|---|---|');
    for (const c of cases) {
      console.log(
        `| ${c.changes} | ${c.callers} | ${c.write.p50} | ${c.write.p99} | ${c.xadd.p50} | ${c.xadd.p99} | ${c.load} |`,
      );
    }
    console.log(`\nload average before ${loadBefore}, after ${loadAfter}`);
    const figures = {
      measuredAt: new Date().toISOString(),
      node: process.version,
      invocations,
      loadAverage: { before: loadBefore, after: loadAfter },
      cases,
    };
    const base = writeResults('latency', figures, await latencyChart(cases));
    console.log(`written: ${base}.json, ${base}.svg`);
  } finally {
    lambda.destroy();
    await runner.stop();
    redis.disconnect();
    await services.stop();
  }
}

/** Runs `call` `count` times with `callers` of them in flight; each call's time, in ms. */
await main();
