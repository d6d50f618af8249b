/**
 * Drain benchmark: lands the same mixed workload in the shipped tables three ways and prints
 * the rates side by side, all measured in this one run on this machine.
 *
 *   copy   raw PostgreSQL COPY of the final rows (the ceiling: no versions, no coalescing)
 *   drain  Spillway: changesets written to Redis, then drained through PgBouncer
 *   naive  one autocommitted statement per change, as a queue-per-row worker would do
 *
 * Each approach gets a fresh database behind the same PgBouncer (transaction pooling, as RDS
 * Proxy). Usage: npm run bench [-- --documents 2500 --batch 500]
 */
import { randomUUID } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { parseArgs } from 'node:util';
import { Redis } from 'ioredis';
import pg from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import { runMigrations } from '../lambdas/io/migrator.js';
import { pipelineRegistry } from '../lambdas/schema/tables.js';
import { Spillway } from '../lambdas/spillway.js';
import { startServices } from '../test/support/services.js';

const { values: args } = parseArgs({
  options: {
    documents: { type: 'string', default: '2500' },
    batch: { type: 'string', default: '500' },
  },
});
const DOCUMENTS = Number(args.documents);
const BATCH = Number(args.batch);

type Row = Record<string, unknown>;
type Change =
  | { op: 'upsert'; table: string; record: Row }
  | { op: 'patch'; table: string; key: Row; set: Row }
  | { op: 'delete'; table: string; key: Row };

/**
 * One document's pipeline run, as two changesets: the document with its chunks, then the
 * entities, relationships and task, a status patch and a few deletes (mixed ops).
 */
function documentRun(d: number): Change[][] {
  const doc = randomUUID();
  const first: Change[] = [
    {
      op: 'upsert',
      table: 'source_documents',
      record: {
        document_uuid: doc,
        filename: `case-${d}.pdf`,
        status: 'processing',
        content_type: 'application/pdf',
        page_count: 12,
        metadata: { court: 'SDNY', n: d },
      },
    },
  ];
  const chunks: string[] = [];
  for (let c = 0; c < 16; c++) {
    const id = randomUUID();
    chunks.push(id);
    first.push({
      op: 'upsert',
      table: 'document_chunks',
      record: {
        chunk_uuid: id,
        document_uuid: doc,
        chunk_index: c,
        text: `Acme Holdings LLC agreed on March ${c + 1}, 2024 to pay $${(c + 1) * 1000}.00 under Case No. 1:23-cv-0${c}567.`,
        char_start: c * 120,
        char_end: c * 120 + 110,
        metadata: null,
      },
    });
  }
  const second: Change[] = [];
  const entities: string[] = [];
  for (let e = 0; e < 12; e++) {
    const id = randomUUID();
    entities.push(id);
    second.push({
      op: 'upsert',
      table: 'entity_mentions',
      record: {
        entity_uuid: id,
        document_uuid: doc,
        chunk_uuid: chunks[e % chunks.length],
        entity_type: e % 2 ? 'ORG' : 'MONEY',
        text: `entity ${e}`,
        confidence: 0.9,
        start_offset: e,
        end_offset: e + 5,
        attributes: { rule: 'suffix' },
      },
    });
  }
  const relationships: string[] = [];
  for (let r = 0; r < 8; r++) {
    const id = randomUUID();
    relationships.push(id);
    second.push({
      op: 'upsert',
      table: 'relationships',
      record: {
        relationship_uuid: id,
        document_uuid: doc,
        source_entity_uuid: entities[r],
        target_entity_uuid: entities[r + 1],
        relationship_type: 'co_occurs_with',
        confidence: 0.5,
        attributes: null,
      },
    });
  }
  second.push({
    op: 'upsert',
    table: 'processing_tasks',
    record: {
      task_id: randomUUID(),
      document_uuid: doc,
      task_type: 'extract-entities',
      status: 'succeeded',
      attempts: 1,
      started_at: '2026-11-30T00:00:00.000Z',
      completed_at: '2026-11-30T00:00:01.000Z',
    },
  });
  second.push({
    op: 'delete',
    table: 'relationships',
    key: { relationship_uuid: relationships[7] },
  });
  second.push({
    op: 'patch',
    table: 'source_documents',
    key: { document_uuid: doc },
    set: { status: 'completed', updated_at: '2026-11-30T00:00:02.000Z' },
  });
  return [first, second];
}

/** The final rows the changes produce, per table, in foreign-key order (what COPY loads). */
function finalRows(changesets: Change[][]): Map<string, Map<string, Row>> {
  const tables = new Map(pipelineRegistry.writeOrder.map((t) => [t, new Map<string, Row>()]));
  for (const changeset of changesets) {
    for (const change of changeset) {
      const def = pipelineRegistry.get(change.table);
      const rows = tables.get(change.table);
      if (!def || !rows) throw new Error(change.table);
      const source = change.op === 'upsert' ? change.record : change.key;
      const id = JSON.stringify(def.primaryKey.map((c) => source[c]));
      if (change.op === 'upsert') rows.set(id, { ...change.record });
      else if (change.op === 'delete') rows.delete(id);
      else rows.set(id, { ...rows.get(id), ...change.set });
    }
  }
  return tables;
}

function copyText(value: unknown): string {
  if (value === null || value === undefined) return '\\N';
  const text = typeof value === 'object' ? JSON.stringify(value) : String(value);
  return text
    .replace(/\\/g, '\\\\')
    .replace(/\t/g, '\\t')
    .replace(/\n/g, '\\n')
    .replace(/\r/g, '\\r');
}

class PeakMemory {
  rss = 0;
  heap = 0;
  private timer: NodeJS.Timeout | undefined;
  start(): void {
    this.rss = 0;
    this.heap = 0;
    this.sample();
    this.timer = setInterval(() => this.sample(), 20);
  }
  stop(): { rssMiB: number; heapMiB: number } {
    clearInterval(this.timer);
    this.sample();
    return { rssMiB: Math.round(this.rss / 2 ** 20), heapMiB: Math.round(this.heap / 2 ** 20) };
  }
  private sample(): void {
    const m = process.memoryUsage();
    this.rss = Math.max(this.rss, m.rss);
    this.heap = Math.max(this.heap, m.heapUsed);
  }
}

async function countAll(pool: pg.Pool): Promise<Record<string, number>> {
  const counts: Record<string, number> = {};
  for (const table of pipelineRegistry.writeOrder) {
    counts[table] = (await pool.query(`SELECT count(*)::int AS n FROM ${table}`)).rows[0].n;
  }
  return counts;
}

async function main(): Promise<void> {
  const changesets = Array.from({ length: DOCUMENTS }, (_, d) => documentRun(d)).flat();
  const changes = changesets.reduce((n, c) => n + c.length, 0);
  const final = finalRows(changesets);
  const rows = [...final.values()].reduce((n, t) => n + t.size, 0);
  console.log(
    `workload: ${DOCUMENTS} documents, ${changesets.length} changesets, ${changes} changes -> ${rows} final rows`,
  );

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
  try {
    // COPY: the final rows, table by table in one transaction.
    const copyPool = await freshPool();
    memory.start();
    let t = performance.now();
    const client = await copyPool.connect();
    await client.query('BEGIN');
    for (const [table, tableRows] of final) {
      const columns = Object.keys(pipelineRegistry.get(table)?.columns ?? {}).filter(
        (c) => c !== 'created_at',
      );
      const lines = [...tableRows.values()].map(
        (row) => `${columns.map((c) => copyText(row[c])).join('\t')}\n`,
      );
      await pipeline(
        Readable.from(lines),
        client.query(copyFrom(`COPY ${table} (${columns.join(', ')}) FROM STDIN`)),
      );
    }
    await client.query('COMMIT');
    client.release();
    const copyMs = performance.now() - t;
    const copyMemory = memory.stop();
    const copyCounts = await countAll(copyPool);

    // Spillway: write every changeset to Redis (acknowledged), then drain.
    const drainPool = await freshPool();
    const redis = new Redis(services.redis.url);
    const spillway = new Spillway({
      redis,
      pool: drainPool,
      registry: pipelineRegistry,
      prefix: 'bench',
      batchSize: BATCH,
    });
    t = performance.now();
    for (let i = 0; i < changesets.length; i += 64) {
      await Promise.all(changesets.slice(i, i + 64).map((c) => spillway.write({ changes: c })));
    }
    const writeMs = performance.now() - t;
    memory.start();
    t = performance.now();
    let applied = 0;
    let batches = 0;
    for (;;) {
      const result = await spillway.drain(Date.now() + 600_000);
      applied += result.applied;
      batches += result.batches;
      if (result.stoppedBy === 'empty') break;
    }
    const drainMs = performance.now() - t;
    const drainMemory = memory.stop();
    const drainCounts = await countAll(drainPool);
    redis.disconnect();

    // Naive: one statement per change, each its own transaction.
    const naivePool = await freshPool();
    memory.start();
    t = performance.now();
    for (const changeset of changesets) {
      for (const change of changeset) {
        const def = pipelineRegistry.get(change.table);
        if (!def) throw new Error(change.table);
        const pk = def.primaryKey[0] as string;
        if (change.op === 'upsert') {
          const columns = Object.keys(change.record);
          const updates = columns.filter((c) => c !== pk).map((c) => `${c} = EXCLUDED.${c}`);
          await naivePool.query(
            `INSERT INTO ${change.table} (${columns.join(', ')}) VALUES (${columns.map((_, i) => `$${i + 1}`).join(', ')}) ON CONFLICT (${pk}) DO UPDATE SET ${updates.join(', ')}`,
            columns.map((c) => change.record[c]),
          );
        } else if (change.op === 'patch') {
          const columns = Object.keys(change.set);
          await naivePool.query(
            `UPDATE ${change.table} SET ${columns.map((c, i) => `${c} = $${i + 2}`).join(', ')} WHERE ${pk} = $1`,
            [change.key[pk], ...columns.map((c) => change.set[c])],
          );
        } else {
          await naivePool.query(`DELETE FROM ${change.table} WHERE ${pk} = $1`, [change.key[pk]]);
        }
      }
    }
    const naiveMs = performance.now() - t;
    const naiveMemory = memory.stop();
    const naiveCounts = await countAll(naivePool);

    for (const [name, counts] of Object.entries({ drain: drainCounts, naive: naiveCounts })) {
      if (JSON.stringify(counts) !== JSON.stringify(copyCounts)) {
        throw new Error(
          `${name} landed ${JSON.stringify(counts)}, COPY ${JSON.stringify(copyCounts)}`,
        );
      }
    }
    if (applied !== changes) throw new Error(`drain applied ${applied} of ${changes} changes`);

    const rate = (n: number, ms: number) => Math.round(n / (ms / 1000));
    const figures = {
      measuredAt: new Date().toISOString(),
      machine: { node: process.version, cpus: (await import('node:os')).cpus().length },
      workload: {
        documents: DOCUMENTS,
        changesets: changesets.length,
        changes,
        finalRows: rows,
        batchChangesets: BATCH,
      },
      copy: { ms: Math.round(copyMs), rowsPerSecond: rate(rows, copyMs), peakMemory: copyMemory },
      drain: {
        ms: Math.round(drainMs),
        rowsPerSecond: rate(rows, drainMs),
        changesPerSecond: rate(changes, drainMs),
        batches,
        ratioToCopy: Number((copyMs / drainMs).toFixed(2)),
        peakMemory: drainMemory,
        bufferWrite: { ms: Math.round(writeMs), changesPerSecond: rate(changes, writeMs) },
      },
      naive: {
        ms: Math.round(naiveMs),
        rowsPerSecond: rate(rows, naiveMs),
        changesPerSecond: rate(changes, naiveMs),
        ratioToCopy: Number((copyMs / naiveMs).toFixed(2)),
        peakMemory: naiveMemory,
      },
      drainVsNaive: Number((naiveMs / drainMs).toFixed(1)),
    };
    const line = (name: string, ms: number, extra: string) =>
      console.log(
        `${name.padEnd(7)} ${String(Math.round(ms)).padStart(7)} ms  ${String(rate(rows, ms)).padStart(8)} rows/s  ${extra}`,
      );
    console.log('');
    line('copy', copyMs, `1.00 x COPY   peak rss ${copyMemory.rssMiB} MiB`);
    line(
      'drain',
      drainMs,
      `${figures.drain.ratioToCopy.toFixed(2)} x COPY   ${figures.drain.changesPerSecond} changes/s   peak rss ${drainMemory.rssMiB} MiB, heap ${drainMemory.heapMiB} MiB`,
    );
    line(
      'naive',
      naiveMs,
      `${figures.naive.ratioToCopy.toFixed(2)} x COPY   ${figures.naive.changesPerSecond} changes/s   peak rss ${naiveMemory.rssMiB} MiB`,
    );
    console.log(
      `\ndrain is ${figures.drainVsNaive} x the naive rate; buffering the writes took ${Math.round(writeMs)} ms (${figures.drain.bufferWrite.changesPerSecond} changes/s)`,
    );
    mkdirSync('bench/results', { recursive: true });
    const file = `bench/results/drain-${figures.measuredAt.replace(/[:.]/g, '-')}.json`;
    writeFileSync(file, `${JSON.stringify(figures, null, 2)}\n`);
    console.log(`figures written to ${file}`);
  } finally {
    await Promise.allSettled(pools.map((p) => p.end()));
    await services.stop();
  }
}

await main();
