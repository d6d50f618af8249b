/**
 * The benchmarks' baselines: the final rows a workload's changesets produce, loaded with raw
 * PostgreSQL COPY in one transaction (no versions, no coalescing); the same with a version row
 * per key the changes touch, COPYed into the tables' version tables (the least G2's bookkeeping
 * can cost); and the row counts every method must land alike.
 */
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type pg from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import { type JsonValue, rowKeyOf } from '../lambdas/core/changeset.js';
import type { TableDef } from '../lambdas/core/schema.js';
import { versionTableOf } from '../lambdas/core/sql.js';
import { pipelineRegistry } from '../lambdas/schema/tables.js';
import type { Change, Row } from './workloads.js';

/** About what psql's \copy sends per CopyData message; COPY's cost then is the database's. */
const COPY_CHUNK_CHARS = 64 * 1024;

/**
 * Runs `sql` (a COPY ... FROM STDIN) with `lines` as its data, sent in chunks of about 64 KiB as
 * psql and pg_dump send it. Not a message per line: on a machine whose system calls are dear
 * that alone made COPY of 100,000 rows four times slower (1.2-1.3 s against 0.3 s).
 */
export async function copyLines(
  client: pg.PoolClient,
  sql: string,
  lines: Iterable<string>,
): Promise<void> {
  const chunks = function* (): Generator<string> {
    let chunk = '';
    for (const line of lines) {
      chunk += line;
      if (chunk.length >= COPY_CHUNK_CHARS) {
        yield chunk;
        chunk = '';
      }
    }
    if (chunk !== '') yield chunk;
  };
  await pipeline(Readable.from(chunks()), client.query(copyFrom(sql)));
}

/** The change's table and its row key, as the drain records it (`rowKeyOf`). */
function target(change: Change): { table: string; key: string } {
  const def = pipelineRegistry.get(change.table);
  if (!def) throw new Error(change.table);
  const source = change.op === 'upsert' ? change.record : change.key;
  return { table: change.table, key: rowKeyOf(def, source as Record<string, JsonValue>) };
}

/** The final rows the changes produce, per table, in foreign-key order (what COPY loads). */
export function finalRows(changesets: readonly Change[][]): Map<string, Map<string, Row>> {
  const tables = new Map(pipelineRegistry.writeOrder.map((t) => [t, new Map<string, Row>()]));
  for (const changeset of changesets) {
    for (const change of changeset) {
      const { table, key: id } = target(change);
      const rows = tables.get(table);
      if (!rows) throw new Error(table);
      if (change.op === 'upsert') rows.set(id, { ...change.record });
      else if (change.op === 'delete') rows.delete(id);
      else rows.set(id, { ...rows.get(id), ...change.set });
    }
  }
  return tables;
}

/** Every key the changes touch, per table: the keys a drain records a version for. */
export function touchedKeys(changesets: readonly Change[][]): Map<string, Set<string>> {
  const tables = new Map<string, Set<string>>();
  for (const changeset of changesets) {
    for (const change of changeset) {
      const { table, key } = target(change);
      const keys = tables.get(table) ?? new Set<string>();
      keys.add(key);
      tables.set(table, keys);
    }
  }
  return tables;
}

/**
 * Loads `final` with COPY, table by table in foreign-key order, in one transaction; with
 * `versions`, also a version row per touched key into the table's version table
 * (`spillway."public.<table>"`, `core/sql.ts`), as a drain records them (the key's typed columns,
 * a version), by COPY too: no conflict checks, no parsing, nothing a drain could leave out while
 * keeping G2.
 */
export async function copyRows(
  pool: pg.Pool,
  final: Map<string, Map<string, Row>>,
  versions?: Map<string, Set<string>>,
): Promise<void> {
  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    if (versions !== undefined) {
      let version = 1;
      for (const [table, keys] of versions) {
        const def = pipelineRegistry.get(table) as TableDef;
        const vt = versionTableOf(def, 'public');
        // The key's columns from its row key (`rowKeyOf`: a JSON array in primary-key order).
        const lines = [...keys].map((key) => {
          const columns = (JSON.parse(key) as JsonValue[]).map(copyText).join('\t');
          return `${columns}\t${version++}\tf\n`;
        });
        await copyLines(
          client,
          `COPY ${vt.name} (${vt.key.join(', ')}, ${vt.version}, ${vt.deleted}) FROM STDIN`,
          lines,
        );
      }
    }
    for (const [table, tableRows] of final) {
      if (tableRows.size === 0) continue;
      const columns = Object.keys(pipelineRegistry.get(table)?.columns ?? {}).filter(
        (c) => c !== 'created_at',
      );
      const lines = [...tableRows.values()].map(
        (row) => `${columns.map((c) => copyText(row[c])).join('\t')}\n`,
      );
      await copyLines(client, `COPY ${table} (${columns.join(', ')}) FROM STDIN`, lines);
    }
    await client.query('COMMIT');
  } finally {
    client.release();
  }
}

/** Rows per table of the registry. */
export async function countAll(pool: pg.Pool): Promise<Record<string, number>> {
  const counts: Record<string, number> = {};
  for (const table of pipelineRegistry.writeOrder) {
    const { rows } = await pool.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${table}`);
    counts[table] = rows[0]?.n ?? -1;
  }
  return counts;
}

/** A value as COPY's text format writes it. */
export function copyText(value: unknown): string {
  if (value === null || value === undefined) return '\\N';
  const text = typeof value === 'object' ? JSON.stringify(value) : String(value);
  return text
    .replace(/\\/g, '\\\\')
    .replace(/\t/g, '\\t')
    .replace(/\n/g, '\\n')
    .replace(/\r/g, '\\r');
}
