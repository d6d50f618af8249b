/**
 * The benchmarks' baseline: the final rows a workload's changesets produce, loaded with raw
 * PostgreSQL COPY in one transaction (no versions, no coalescing), and the row counts every
 * method must land alike.
 */
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type pg from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import { pipelineRegistry } from '../lambdas/schema/tables.js';
import type { Change, Row } from './workloads.js';

/** The final rows the changes produce, per table, in foreign-key order (what COPY loads). */
export function finalRows(changesets: readonly Change[][]): Map<string, Map<string, Row>> {
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

/** Loads `final` with COPY, table by table in foreign-key order, in one transaction. */
export async function copyRows(pool: pg.Pool, final: Map<string, Map<string, Row>>): Promise<void> {
  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    for (const [table, tableRows] of final) {
      if (tableRows.size === 0) continue;
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

function copyText(value: unknown): string {
  if (value === null || value === undefined) return '\\N';
  const text = typeof value === 'object' ? JSON.stringify(value) : String(value);
  return text
    .replace(/\\/g, '\\\\')
    .replace(/\t/g, '\\t')
    .replace(/\n/g, '\\n')
    .replace(/\r/g, '\\r');
}
