/**
 * Drain benchmark: lands the same mixed workload in the shipped tables three ways and prints
 * the rates side by side, all measured in this one run on this machine.
 *
 *   copy   raw PostgreSQL COPY of the final rows (the ceiling: no versions, no coalescing)
 *   drain  Spillway: changesets written to Redis, then drained through PgBouncer
 *   naive  one autocommitted statement per change, as a queue-per-row worker would do
 *
 * Each approach gets a fresh database behind the same PgBouncer (transaction pooling, as RDS
 * Proxy). COPY and drain run in alternating rounds and the medians are compared.
 * Usage: npm run bench [-- --documents 2500 --batch 500 --rounds 3]
 */
import { randomUUID } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
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
    rounds: { type: 'string', default: '3' },
  },
});
const DOCUMENTS = Number(args.documents);
const BATCH = Number(args.batch);
const ROUNDS = Number(args.rounds);

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

interface Measured {
  readonly ms: number;
  readonly memory: { rssMiB: number; heapMiB: number };
  readonly counts: Record<string, number>;
}

const median = (values: readonly number[]): number => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? Number.NaN;
};

async function main(): Promise<void> {
  const changesets = Array.from({ length: DOCUMENTS }, (_, d) => documentRun(d)).flat();
  const changes = changesets.reduce((n, c) => n + c.length, 0);
  const final = finalRows(changesets);
  const rows = [...final.values()].reduce((n, t) => n + t.size, 0);
  console.log(
    `workload: ${DOCUMENTS} documents, ${changesets.length} changesets, ${changes} changes -> ${rows} final rows; ${ROUNDS} rounds`,
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
  const measure = async (work: (pool: pg.Pool) => Promise<void>): Promise<Measured> => {
    const pool = await freshPool();
    memory.start();
    const t = performance.now();
    await work(pool);
    const ms = performance.now() - t;
    return { ms, memory: memory.stop(), counts: await countAll(pool) };
  };

  // COPY: the final rows, table by table in one transaction.
  const copy = () =>
    measure(async (pool) => {
      const client = await pool.connect();
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
    });

  // Spillway: every changeset written to Redis (acknowledged) first, untimed; then the drain.
  let writeMs = 0;
  let batches = 0;
  const drain = async (round: number): Promise<Measured> => {
    const pool = await freshPool();
    const redis = new Redis(services.redis.url);
    const spillway = new Spillway({
      redis,
      pool,
      registry: pipelineRegistry,
      prefix: `bench-${round}`,
      batchSize: BATCH,
    });
    const w = performance.now();
    for (let i = 0; i < changesets.length; i += 64) {
      await Promise.all(changesets.slice(i, i + 64).map((c) => spillway.write({ changes: c })));
    }
    writeMs = performance.now() - w;
    memory.start();
    const t = performance.now();
    let applied = 0;
    batches = 0;
    for (;;) {
      const result = await spillway.drain(Date.now() + 600_000);
      applied += result.applied;
      batches += result.batches;
      if (result.stoppedBy === 'empty') break;
    }
    const ms = performance.now() - t;
    const peak = memory.stop();
    redis.disconnect();
    if (applied !== changes) throw new Error(`drain applied ${applied} of ${changes} changes`);
    return { ms, memory: peak, counts: await countAll(pool) };
  };

  // Naive: one statement per change, each its own transaction.
  const naive = () =>
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

  try {
    // COPY and drain alternate, so that a busy moment of the machine hits both alike.
    const copies: Measured[] = [];
    const drains: Measured[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      copies.push(await copy());
      drains.push(await drain(round));
      console.log(
        `round ${round + 1}: copy ${Math.round(copies[round]?.ms ?? 0)} ms, drain ${Math.round(drains[round]?.ms ?? 0)} ms`,
      );
    }
    const naiveRun = await naive();
    const expected = JSON.stringify(copies[0]?.counts);
    for (const [name, run] of [
      ...drains.map((d) => ['drain', d] as const),
      ['naive', naiveRun] as const,
    ]) {
      if (JSON.stringify(run.counts) !== expected) {
        throw new Error(`${name} landed ${JSON.stringify(run.counts)}, COPY ${expected}`);
      }
    }

    const copyMs = median(copies.map((c) => c.ms));
    const drainMs = median(drains.map((d) => d.ms));
    const naiveMs = naiveRun.ms;
    const rate = (n: number, ms: number) => Math.round(n / (ms / 1000));
    const spread = (runs: Measured[]) => runs.map((r) => Math.round(r.ms));
    const peak = (runs: Measured[]) => ({
      rssMiB: Math.max(...runs.map((r) => r.memory.rssMiB)),
      heapMiB: Math.max(...runs.map((r) => r.memory.heapMiB)),
    });
    const figures = {
      measuredAt: new Date().toISOString(),
      machine: { node: process.version, cpus: cpus().length, loadAverage: loadavg() },
      workload: {
        documents: DOCUMENTS,
        changesets: changesets.length,
        changes,
        finalRows: rows,
        batchChangesets: BATCH,
        rounds: ROUNDS,
      },
      copy: {
        medianMs: Math.round(copyMs),
        runsMs: spread(copies),
        rowsPerSecond: rate(rows, copyMs),
        peakMemory: peak(copies),
      },
      drain: {
        medianMs: Math.round(drainMs),
        runsMs: spread(drains),
        rowsPerSecond: rate(rows, drainMs),
        changesPerSecond: rate(changes, drainMs),
        batches,
        ratioToCopy: Number((copyMs / drainMs).toFixed(2)),
        peakMemory: peak(drains),
        bufferWrite: { ms: Math.round(writeMs), changesPerSecond: rate(changes, writeMs) },
      },
      naive: {
        ms: Math.round(naiveMs),
        rowsPerSecond: rate(rows, naiveMs),
        changesPerSecond: rate(changes, naiveMs),
        ratioToCopy: Number((copyMs / naiveMs).toFixed(2)),
        peakMemory: naiveRun.memory,
      },
      drainVsNaive: Number((naiveMs / drainMs).toFixed(1)),
    };
    const line = (name: string, ms: number, extra: string) =>
      console.log(
        `${name.padEnd(7)} ${String(Math.round(ms)).padStart(7)} ms  ${String(rate(rows, ms)).padStart(8)} rows/s  ${extra}`,
      );
    console.log('');
    line(
      'copy',
      copyMs,
      `1.00 x COPY   runs ${spread(copies).join('/')} ms   peak rss ${figures.copy.peakMemory.rssMiB} MiB`,
    );
    line(
      'drain',
      drainMs,
      `${figures.drain.ratioToCopy.toFixed(2)} x COPY   runs ${spread(drains).join('/')} ms   ${figures.drain.changesPerSecond} changes/s   peak rss ${figures.drain.peakMemory.rssMiB} MiB, heap ${figures.drain.peakMemory.heapMiB} MiB`,
    );
    line(
      'naive',
      naiveMs,
      `${figures.naive.ratioToCopy.toFixed(2)} x COPY   ${figures.naive.changesPerSecond} changes/s   peak rss ${naiveRun.memory.rssMiB} MiB`,
    );
    console.log(
      `\ndrain is ${figures.drainVsNaive} x the naive rate; buffering the writes took ${Math.round(writeMs)} ms (${figures.drain.bufferWrite.changesPerSecond} changes/s); load average ${loadavg()
        .map((l) => l.toFixed(1))
        .join(' ')}`,
    );
    console.log(
      '(medians of the rounds; peak memory is the whole process, which also holds the generated workload)',
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
