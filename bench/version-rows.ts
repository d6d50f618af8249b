/**
 * What G2's version rows cost PostgreSQL, per way of keeping them (issue 9: what limits the
 * drain). Lands the same 100,000 new `source_documents` rows, in statements of 10,000 rows, one
 * transaction each, straight into PostgreSQL (no PgBouncer, no Redis: only the database's work),
 * and prints each way's wall time and the backend's CPU time (/proc/<pid>/stat), beside COPY of
 * the rows alone measured in the same run:
 *
 *   copy                    COPY of the rows (the baseline)
 *   copy+versions           the same, plus COPY of a version row each into the table's version
 *                           table (keyed by its typed primary key, as the drain keeps them)
 *   upsert, no versions     the drain's statement without its version rows (no G2)
 *   upsert, versions        the drain's statement as it is (`buildStatements`, core/sql.ts):
 *                           version rows in the table's own version table,
 *                           spillway."public.source_documents", keyed by its uuid primary key
 *   upsert, versions in one table       version rows in one table for every table, as before
 *                           version tables: spillway.row_versions keyed by the table's name and
 *                           the row key as JSON text (in the database's collation)
 *   upsert, one table by table number   the same with an integer naming the table
 *   upsert, versions from key arrays    the drain's statement's version-table layout, with the
 *                           keys and versions as typed arrays of their own ($2, $3) and the rows
 *                           unpacked once where they are written, so that PostgreSQL does not
 *                           materialize them for the version rows' join
 *
 * The others are that statement's shape built here, without version rows or with them kept
 * another way: not how Spillway stores versions, they measure what each layout costs.
 * The harness's PostgreSQL has no locale (its default collation is C, whose text comparisons
 * are byte comparisons); `--locale en_US.UTF-8` runs everything in a database with that
 * collation, as RDS and Aurora create theirs, where one table's text keys cost more to compare (the locale must exist on the machine: `locale -a`; Debian: package `locales`,
 * then `locale-gen`).
 * Linux only (/proc). Usage: npm run bench:versions [-- --rounds 3] [--locale en_US.UTF-8]
 */
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import pg from 'pg';
import type { RowWrite } from '../lambdas/core/coalesce.js';
import { messageOf } from '../lambdas/core/errors.js';
import type { TableDef } from '../lambdas/core/schema.js';
import { buildStatements, versionTableDdl, versionTableOf } from '../lambdas/core/sql.js';
import { pipelineRegistry } from '../lambdas/schema/tables.js';
import { startServices } from '../local/services/index.js';
import { load, median } from './common.js';
import { copyLines, copyText } from './copy.js';

const { values: args } = parseArgs({
  options: { rounds: { type: 'string', default: '3' }, locale: { type: 'string' } },
});
const ROUNDS = Number(args.rounds);
const BATCHES = 10;
const PER_BATCH = 10_000;

/** The columns the drain writes for an upsert of the table (all but `created_at`, defaulted). */
const COLUMNS = [
  'document_uuid',
  'filename',
  'status',
  'content_type',
  'page_count',
  'error_message',
  'metadata',
  'updated_at',
];
const TYPES = ['uuid', 'text', 'text', 'text', 'integer', 'text', 'jsonb', 'timestamptz'];
type Row = [string, string, string, string, number, null, { court: string; n: number }, null];

const TABLE = `CREATE TABLE source_documents (document_uuid uuid PRIMARY KEY, filename text NOT NULL,
  status text NOT NULL CHECK (status IN ('pending', 'processing', 'completed', 'failed')),
  content_type text, page_count integer CHECK (page_count >= 0), error_message text,
  metadata jsonb CHECK (jsonb_typeof(metadata) = 'object'), created_at timestamptz DEFAULT now(),
  updated_at timestamptz)`;
const DEF = pipelineRegistry.get('source_documents') as TableDef;
const VERSION_TABLE = versionTableOf(DEF, 'public');
const VERSIONS: Record<string, string> = {
  table: versionTableDdl(DEF, 'public'),
  text: `CREATE TABLE spillway.row_versions (table_name text NOT NULL, row_key text NOT NULL,
  version bigint NOT NULL, deleted boolean NOT NULL DEFAULT false, PRIMARY KEY (table_name, row_key))`,
  number: `CREATE TABLE spillway.row_versions (table_id integer NOT NULL, row_key text NOT NULL,
  version bigint NOT NULL, deleted boolean NOT NULL DEFAULT false, PRIMARY KEY (table_id, row_key))`,
};

/**
 * The drain's upsert statement's shape, with the version rows kept as `versions` says: none, or
 * in one spillway.row_versions for every table (`text`: keyed by the table's name, `number`: by
 * a number), as the drain kept them before version tables.
 */
function upsert(versions: 'none' | 'number' | 'text'): string {
  const fields = COLUMNS.map((c, i) =>
    TYPES[i] === 'jsonb'
      ? `nullif(e->${i + 2}, 'null'::jsonb) AS ${c}`
      : `(e->>${i + 2})::${TYPES[i]} AS ${c}`,
  );
  const incoming = `incoming AS (SELECT e->>0 AS "@k", (e->>1)::bigint AS "@v", ${fields.join(', ')} FROM jsonb_array_elements($1::jsonb) AS e)`;
  const write = `INSERT INTO source_documents AS t (${COLUMNS.join(', ')})
SELECT ${COLUMNS.map((c) => `i.${c}`).join(', ')} FROM incoming i`;
  const update = `ON CONFLICT (document_uuid) DO UPDATE SET ${COLUMNS.slice(1)
    .map((c) => `${c} = EXCLUDED.${c}`)
    .join(', ')}`;
  if (versions === 'none') return `WITH ${incoming} ${write} ${update}`;
  const [key, value] =
    versions === 'number'
      ? ['table_id, row_key', `7, "@k"`]
      : ['table_name, row_key', `'public.source_documents', "@k"`];
  return `WITH ${incoming},
accepted AS (INSERT INTO spillway.row_versions AS rv (${key}, version, deleted)
  SELECT ${value}, "@v", false FROM incoming
  ON CONFLICT (${key}) DO UPDATE SET version = EXCLUDED.version, deleted = EXCLUDED.deleted
  WHERE rv.version < EXCLUDED.version RETURNING row_key)
${write} JOIN accepted a ON a.row_key = i."@k" ${update}`;
}

/**
 * The upsert with the version table as the drain keeps it, but its version rows taken from typed
 * arrays of keys ($2) and versions ($3), and the rows ($1, without key text and version) unpacked
 * in the INSERT that writes them: `incoming` is read once, so it is not materialized.
 */
function upsertFromKeyArrays(): string {
  const fields = COLUMNS.map((c, i) =>
    TYPES[i] === 'jsonb'
      ? `nullif(e->${i}, 'null'::jsonb) AS ${c}`
      : `(e->>${i})::${TYPES[i]} AS ${c}`,
  );
  const vt = VERSION_TABLE;
  return `WITH accepted AS (INSERT INTO ${vt.name} AS rv (${vt.key.join(', ')}, ${vt.version}, ${vt.deleted})
  SELECT k, v, false FROM unnest($2::uuid[], $3::bigint[]) AS x (k, v)
  ON CONFLICT (${vt.key.join(', ')}) DO UPDATE SET ${vt.version} = EXCLUDED.${vt.version}, ${vt.deleted} = EXCLUDED.${vt.deleted}
  WHERE rv.${vt.version} < EXCLUDED.${vt.version} RETURNING ${vt.key.join(', ')})
INSERT INTO source_documents AS t (${COLUMNS.join(', ')})
SELECT i.* FROM (SELECT ${fields.join(', ')} FROM jsonb_array_elements($1::jsonb) AS e) AS i
JOIN accepted a ON a.document_uuid = i.document_uuid
ON CONFLICT (document_uuid) DO UPDATE SET ${COLUMNS.slice(1)
    .map((c) => `${c} = EXCLUDED.${c}`)
    .join(', ')}`;
}

function batches(): Row[][] {
  return Array.from({ length: BATCHES }, (_, b) =>
    Array.from({ length: PER_BATCH }, (_, i): Row => {
      const n = b * PER_BATCH + i;
      return [
        randomUUID(),
        `case-${n}.pdf`,
        'completed',
        'application/pdf',
        12,
        null,
        { court: 'SDNY', n },
        null,
      ];
    }),
  );
}

const copyLine = (values: readonly unknown[]) => `${values.map(copyText).join('\t')}\n`;

/** The drain's own statement for `rows` (one, as they share a shape), from core/sql.ts. */
function drainStatement(rows: Row[], base: number): { text: string; values: unknown[] } {
  const writes = rows.map((row, i): RowWrite => {
    const values = Object.fromEntries(COLUMNS.map((c, at) => [c, row[at] ?? null]));
    return {
      table: 'source_documents',
      rowKey: JSON.stringify([row[0]]),
      key: { document_uuid: row[0] },
      op: 'upsert',
      values,
      version: String(base + i),
      lastStreamId: '',
    };
  });
  const [statement, ...more] = buildStatements(writes, pipelineRegistry, 'public');
  if (statement === undefined || more.length > 0) throw new Error('expected one statement');
  return { text: statement.text, values: [...statement.values] };
}

type Way = (client: pg.PoolClient, rows: Row[], base: number) => Promise<void>;

const WAYS: [string, string | null, Way][] = [
  [
    'copy',
    null,
    (c, rows) =>
      copyLines(c, `COPY source_documents (${COLUMNS.join(', ')}) FROM STDIN`, rows.map(copyLine)),
  ],
  [
    'copy+versions',
    'table',
    async (c, rows, base) => {
      await copyLines(
        c,
        `COPY source_documents (${COLUMNS.join(', ')}) FROM STDIN`,
        rows.map(copyLine),
      );
      await copyLines(
        c,
        `COPY ${VERSION_TABLE.name} (${VERSION_TABLE.key.join(', ')}, ${VERSION_TABLE.version}, ${VERSION_TABLE.deleted}) FROM STDIN`,
        rows.map((r, i) => copyLine([r[0], base + i, 'f'])),
      );
    },
  ],
  [
    'upsert, versions',
    'table',
    async (c, rows, base) => {
      const { text, values } = drainStatement(rows, base);
      await c.query(text, values);
    },
  ],
  ...(['none', 'text', 'number'] as const).map((versions): [string, string | null, Way] => [
    {
      none: 'upsert, no versions',
      text: 'upsert, versions in one table',
      number: 'upsert, one table by table number',
    }[versions],
    versions === 'none' ? null : versions,
    async (c, rows, base) => {
      const payload = JSON.stringify(
        rows.map((r, i) => [JSON.stringify([r[0]]), String(base + i), ...r]),
      );
      await c.query(upsert(versions), [payload]);
    },
  ]),
  [
    'upsert, versions from key arrays',
    'table',
    async (c, rows, base) => {
      await c.query(upsertFromKeyArrays(), [
        JSON.stringify(rows),
        rows.map((r) => r[0]),
        rows.map((_, i) => String(base + i)),
      ]);
    },
  ],
];

function backendCpuMs(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? [];
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

/** A database beside `url`'s whose collation is `locale` (`url`'s own without one). */
async function inLocale(url: string, locale: string | undefined): Promise<string> {
  if (locale === undefined) return url;
  const admin = new pg.Client({ connectionString: url });
  await admin.connect();
  try {
    await admin.query(
      `CREATE DATABASE bench_locale TEMPLATE template0 LOCALE ${pg.escapeLiteral(locale)}`,
    );
  } catch (error) {
    throw new Error(
      `--locale ${locale}: PostgreSQL cannot create a database in it (${messageOf(error)}); \`locale -a\` lists the machine's locales, and on Debian \`locale-gen\` adds one`,
    );
  } finally {
    await admin.end();
  }
  const other = new URL(url);
  other.pathname = '/bench_locale';
  return other.toString();
}

async function main(): Promise<void> {
  const services = await startServices({ redis: false });
  const { directUrl } = await services.createDatabase();
  const pool = new pg.Pool({ connectionString: await inLocale(directUrl, args.locale), max: 1 });
  try {
    const collation = (await pool.query<{ c: string }>("SELECT current_setting('lc_collate') AS c"))
      .rows[0]?.c;
    console.log(
      `${BATCHES * PER_BATCH} new rows of source_documents, ${BATCHES} transactions of ${PER_BATCH}, straight into PostgreSQL (collation ${collation}); ${ROUNDS} rounds; load average ${load()}`,
    );
    const runs = new Map<string, { ms: number; cpuMs: number }[]>(WAYS.map(([name]) => [name, []]));
    for (let round = 0; round < ROUNDS; round++) {
      for (const [name, versions, way] of WAYS) {
        const client = await pool.connect();
        try {
          await client.query(
            `DROP SCHEMA IF EXISTS spillway CASCADE; DROP TABLE IF EXISTS source_documents; CREATE SCHEMA spillway; ${TABLE}; ${VERSIONS[versions ?? 'text']}`,
          );
          const pid =
            (await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]?.pid ??
            0;
          const data = batches();
          const cpu = backendCpuMs(pid);
          const t = performance.now();
          for (const [b, rows] of data.entries()) {
            await client.query('BEGIN');
            await way(client, rows, 1 + b * PER_BATCH);
            await client.query('COMMIT');
          }
          runs.get(name)?.push({ ms: performance.now() - t, cpuMs: backendCpuMs(pid) - cpu });
        } finally {
          client.release();
        }
      }
    }
    const copyMs = median(runs.get('copy')?.map((r) => r.ms) ?? []);
    const copyCpu = median(runs.get('copy')?.map((r) => r.cpuMs) ?? []);
    console.log(
      'way                                      wall ms  vs COPY  backend CPU ms  vs COPY',
    );
    for (const [name, list] of runs) {
      const ms = median(list.map((r) => r.ms));
      const cpu = median(list.map((r) => r.cpuMs));
      console.log(
        `${name.padEnd(40)} ${String(Math.round(ms)).padStart(7)}  ${(ms / copyMs).toFixed(2).padStart(7)}  ${String(Math.round(cpu)).padStart(14)}  ${(cpu / copyCpu).toFixed(2).padStart(7)}`,
      );
    }
    console.log(`load average ${load()}`);
  } finally {
    await pool.end();
    await services.stop();
  }
}

await main();
