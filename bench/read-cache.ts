/**
 * Read-cache benchmark (issue 12, item 2): `Spillway.read` of a synced row through PgBouncer (as
 * the engine reaches RDS Proxy), without the cache, on a miss (the database's row, then the
 * cache's reservation and fill) and on a hit (Redis only: two round trips, the row's overlay and
 * then its cache entry, in that order for G4), beside a bare Redis GET of a value of the row's size from the same process: what a hit
 * adds to one Redis round trip. One caller; p50 and p99 of each, the four measured in
 * alternating blocks so that a burst of load hits them all; and what a cached row costs Redis
 * (`INFO memory`) beside what the cache's byte counter charges for it. No target; figures are
 * printed.
 *
 * Usage: npm run bench:read-cache [-- --reads 2000]
 */
import { randomUUID } from 'node:crypto';
import { parseArgs } from 'node:util';
import { Redis } from 'ioredis';
import pg from 'pg';
import { runMigrations } from '../lambdas/io/migrator.js';
import { pipelineRegistry } from '../lambdas/schema/tables.js';
import { Spillway, type SpillwayOptions } from '../lambdas/spillway.js';
import { startServices } from '../local/services/index.js';
import { load, percentile, timed, usedMemory } from './common.js';

/** Rows read, round robin: enough that the database does not answer from one hot page only. */
const ROWS = 500;
const BLOCKS = 4;
const WARM_UP = 100;

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { reads: { type: 'string', default: '2000' } } });
  const reads = Number(values.reads);
  if (!Number.isInteger(reads) || reads < BLOCKS) {
    throw new Error(`--reads: an integer of at least ${BLOCKS}`);
  }
  const loadBefore = load();
  const services = await startServices();
  const database = await services.createDatabase();
  const pool = new pg.Pool({ connectionString: database.url, max: 4 });
  const redis = new Redis(services.redis.url);
  try {
    await runMigrations(pool);
    const engine = (prefix: string, options: Partial<SpillwayOptions>) =>
      new Spillway({ redis, pool, registry: pipelineRegistry, prefix, ...options });
    const writer = engine('bench-read-cache', {});
    const ids = Array.from({ length: ROWS }, () => randomUUID());
    for (let at = 0; at < ids.length; at += 100) {
      await writer.write({
        changes: ids.slice(at, at + 100).map((id, i) => ({
          op: 'upsert',
          table: 'source_documents',
          record: {
            document_uuid: id,
            filename: `contract-${at + i}.pdf`,
            status: 'completed',
            content_type: 'application/pdf',
            page_count: 12,
            metadata: { source: 'bench', pages: [1, 2, 3] },
          },
        })),
      });
    }
    while ((await writer.drain(Date.now() + 10_000)).stoppedBy !== 'empty') {}

    // One buffer (the rows are the same); three ways to read them.
    const uncached = engine('bench-read-cache', { readCacheMaxBytes: 0 });
    const missing = engine('bench-read-cache', { readCacheTtlMs: 0 });
    const hitting = writer;
    let n = 0;
    const read = (spillway: Spillway) => async () => {
      const id = ids[n++ % ids.length];
      await spillway.read({ table: 'source_documents', key: { document_uuid: id } });
    };
    const sample = JSON.stringify(
      (await hitting.read({ table: 'source_documents', key: { document_uuid: ids[0] } })).record,
    );
    await redis.set('bench-read-cache:get', sample);
    const get = async () => {
      await redis.get('bench-read-cache:get');
    };

    const cases = {
      'read, no cache (database)': read(uncached),
      'read, cache miss (database, then fill)': read(missing),
      'read, cache hit (Redis only)': read(hitting),
      'bare Redis GET (baseline)': get,
    } as const;
    const times = new Map<string, number[]>(Object.keys(cases).map((name) => [name, []]));
    for (const call of Object.values(cases)) await timed(call, WARM_UP, 1);
    await hitting.buffer.readCache.drop();
    const memoryBefore = await usedMemory(redis);
    for (const id of ids)
      await hitting.read({ table: 'source_documents', key: { document_uuid: id } });
    const memoryPerRow = Math.round(((await usedMemory(redis)) - memoryBefore) / ROWS);
    const charged = Math.round((await hitting.buffer.readCache.stats()).bytes / ROWS);
    for (let block = 0; block < BLOCKS; block++) {
      for (const [name, call] of Object.entries(cases)) {
        times.get(name)?.push(...(await timed(call, Math.ceil(reads / BLOCKS), 1)));
      }
    }
    console.log(
      `read cache: ${ROWS} synced rows of source_documents (${sample.length} B of JSON each), ${reads} reads per case, one caller, through PgBouncer; load average ${loadBefore} at the start, ${load()} at the end`,
    );
    console.log(
      `a cached row costs Redis ${memoryPerRow} B (used_memory), the cache's counter charges it ${charged} B`,
    );
    console.log('| case | p50 | p99 |');
    console.log('|---|---|---|');
    for (const [name, ms] of times) {
      console.log(`| ${name} | ${percentile(ms, 50)} ms | ${percentile(ms, 99)} ms |`);
    }
  } finally {
    redis.disconnect();
    await pool.end();
    await services.stop();
  }
}

await main();
