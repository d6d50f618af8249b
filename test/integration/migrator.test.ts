import { randomUUID } from 'node:crypto';
import { cp, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { ConfigError, MigrationError } from '../../lambdas/core/errors.js';
import { SchemaRegistry, type TableDef } from '../../lambdas/core/schema.js';
import { versionTableDdl, versionTableName } from '../../lambdas/core/sql.js';
import { createVersionTables, loadMigrations, runMigrations } from '../../lambdas/io/migrator.js';
import { findSchemaProblems, readTables, SQL_TYPE_NAMES } from '../../lambdas/io/schema-check.js';
import { pipelineRegistry, pipelineTables } from '../../lambdas/schema/tables.js';
import { useServices } from '../support/services.js';

const MIGRATIONS = fileURLToPath(new URL('../../lambdas/schema/migrations/', import.meta.url));
const services = useServices({ redis: false });

const pools: pg.Pool[] = [];
const tempDirs: string[] = [];
afterAll(async () => {
  await Promise.all(pools.map((pool) => pool.end()));
  await Promise.all(tempDirs.map((dir) => rm(dir, { recursive: true, force: true })));
});

/** A pool on a database of its own, through PgBouncer in transaction mode. */
async function freshDatabase(max = 4): Promise<pg.Pool> {
  const { url } = await services().createDatabase();
  return newPool(url, max);
}

function newPool(url: string, max: number): pg.Pool {
  const pool = new pg.Pool({ connectionString: url, max });
  pools.push(pool);
  return pool;
}

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'spillway-migrations-'));
  tempDirs.push(dir);
  return dir;
}

async function shippedIds(): Promise<string[]> {
  return (await loadMigrations(MIGRATIONS)).map((m) => m.id);
}

async function tablesIn(pool: pg.Pool, schema: string): Promise<string[]> {
  const { rows } = await pool.query<{ table_name: string }>(
    `SELECT table_name FROM information_schema.tables
      WHERE table_schema = $1 AND table_type = 'BASE TABLE' ORDER BY table_name`,
    [schema],
  );
  return rows.map((r) => r.table_name);
}

/** For migration directories of the tests' own: no table to check afterwards. */
const NO_TABLES = new SchemaRegistry([]);

/**
 * Compares what PostgreSQL holds in `schema` with the table definitions: columns, types,
 * NOT NULL, DEFAULT, primary keys, foreign keys (RESTRICT, no cascade), which columns carry a
 * CHECK constraint, and an index on every foreign-key column. Any drift fails.
 */
async function expectSchemaMatchesDefinitions(pool: pg.Pool, schema: string): Promise<void> {
  expect(await tablesIn(pool, schema)).toEqual(pipelineTables.map((t) => t.name).sort());
  // What migrate checks on every run; the rest of this function is stricter (exact match).
  expect(await findSchemaProblems(pool, { registry: pipelineRegistry, schema })).toEqual([]);

  const found = [...(await readTables(pool, schema, pipelineRegistry.names())).values()];
  const actual = found.flatMap((table) =>
    table.columns.map((c) => ({
      column: `${table.name}.${c.name}`,
      type: c.type,
      notNull: c.notNull,
      hasDefault: c.hasDefault,
    })),
  );
  const expected = pipelineTables.flatMap((table) =>
    Object.entries(table.columns).map(([name, def]) => ({
      column: `${table.name}.${name}`,
      type: SQL_TYPE_NAMES[def.type],
      notNull: def.nullable === false || table.primaryKey.includes(name),
      hasDefault: def.hasDefault === true,
    })),
  );
  const byColumn = (a: { column: string }, b: { column: string }) =>
    a.column < b.column ? -1 : a.column > b.column ? 1 : 0;
  expect(actual.sort(byColumn)).toEqual(expected.sort(byColumn));

  const constraints = await pool.query<{
    table_name: string;
    contype: 'p' | 'f' | 'c' | 'u';
    columns: string[];
    referenced: string | null;
    on_delete: string;
    on_update: string;
  }>(
    `SELECT rel.relname AS table_name, con.contype,
            array(SELECT att.attname FROM unnest(con.conkey) WITH ORDINALITY AS k(attnum, n)
                    JOIN pg_attribute att ON att.attrelid = con.conrelid AND att.attnum = k.attnum
                   ORDER BY k.n)::text[] AS columns,
            ref.relname AS referenced, con.confdeltype AS on_delete, con.confupdtype AS on_update
       FROM pg_constraint con
       JOIN pg_class rel ON rel.oid = con.conrelid
       JOIN pg_namespace ns ON ns.oid = rel.relnamespace
       LEFT JOIN pg_class ref ON ref.oid = con.confrelid
      WHERE ns.nspname = $1`,
    [schema],
  );
  const sorted = (values: string[]) => [...values].sort();

  expect(sorted(found.map((t) => `${t.name}(${t.primaryKey.join(',')})`))).toEqual(
    sorted(pipelineTables.map((t) => `${t.name}(${t.primaryKey.join(',')})`)),
  );

  const foreignKeys = constraints.rows.filter((c) => c.contype === 'f');
  expect(
    sorted(foreignKeys.map((c) => `${c.table_name}(${c.columns.join(',')})->${c.referenced}`)),
  ).toEqual(
    sorted(
      pipelineTables.flatMap((t) =>
        (t.foreignKeys ?? []).map((fk) => `${t.name}(${fk.columns.join(',')})->${fk.references}`),
      ),
    ),
  );
  for (const fk of foreignKeys) {
    expect(fk.on_delete, `${fk.table_name}(${fk.columns}) ON DELETE`).toBe('r');
    expect(['r', 'a'], `${fk.table_name}(${fk.columns}) ON UPDATE`).toContain(fk.on_update);
  }

  expect(constraints.rows.filter((c) => c.contype === 'u')).toEqual([]);
  const checked = constraints.rows
    .filter((c) => c.contype === 'c')
    .flatMap((c) => c.columns.map((column) => `${c.table_name}.${column}`));
  expect(sorted([...new Set(checked)])).toEqual(
    sorted(
      pipelineTables.flatMap((t) =>
        Object.entries(t.columns)
          .filter(
            ([, d]) =>
              d.oneOf !== undefined ||
              d.min !== undefined ||
              d.max !== undefined ||
              d.jsonObject === true,
          )
          .map(([name]) => `${t.name}.${name}`),
      ),
    ),
  );

  const indexed = await pool.query<{ table_name: string; first_column: string }>(
    `SELECT tbl.relname AS table_name, att.attname AS first_column
       FROM pg_index idx
       JOIN pg_class tbl ON tbl.oid = idx.indrelid
       JOIN pg_namespace ns ON ns.oid = tbl.relnamespace
       JOIN pg_attribute att ON att.attrelid = tbl.oid AND att.attnum = idx.indkey[0]
      WHERE ns.nspname = $1`,
    [schema],
  );
  const leading = new Set(indexed.rows.map((r) => `${r.table_name}.${r.first_column}`));
  for (const table of pipelineTables) {
    for (const fk of table.foreignKeys ?? []) {
      expect(
        leading.has(`${table.name}.${fk.columns[0]}`),
        `index on ${table.name}(${fk.columns})`,
      ).toBe(true);
    }
  }
}

describe('loadMigrations', () => {
  it('reads only .sql files, in file-name order, with CRLF and BOM not changing the checksum', async () => {
    const dir = await tempDir();
    await writeFile(join(dir, '0010_b.sql'), 'SELECT 2;\n');
    await writeFile(join(dir, '0002_a.sql'), '\uFEFFSELECT 1;\r\nSELECT 3;\r\n');
    await writeFile(join(dir, 'README.md'), 'not a migration');
    const migrations = await loadMigrations(dir);
    expect(migrations.map((m) => m.file)).toEqual(['0002_a.sql', '0010_b.sql']);
    expect(migrations.map((m) => m.id)).toEqual(['0002_a', '0010_b']);

    await writeFile(join(dir, '0002_a.sql'), 'SELECT 1;\nSELECT 3;\n');
    const [lf] = await loadMigrations(dir);
    expect(lf?.checksum).toBe(migrations[0]?.checksum);
    expect(lf?.checksum).toMatch(/^[0-9a-f]{64}$/);
  });
});

describe('runMigrations through PgBouncer in transaction mode', () => {
  it('applies every shipped migration and records each with its checksum', async () => {
    const pool = await freshDatabase();
    const result = await runMigrations(pool, {});
    expect(result).toEqual({ applied: await shippedIds(), skipped: [] });
    expect(result.applied).toEqual([
      '0000_spillway_bookkeeping',
      '0001_pipeline_tables',
      '0002_spillway_epochs',
    ]);

    const recorded = await pool.query<{ id: string; checksum: string }>(
      'SELECT id, checksum FROM spillway.schema_migrations ORDER BY id',
    );
    expect(recorded.rows).toEqual(
      (await loadMigrations(MIGRATIONS)).map((m) => ({ id: m.id, checksum: m.checksum })),
    );
    expect(await tablesIn(pool, 'spillway')).toEqual(
      [
        'drain_fence',
        'row_versions',
        'schema_migrations',
        ...pipelineTables.map((t) => `public.${t.name}`),
      ].sort(),
    );
  });

  it('creates a version table per table in spillway, keyed by its own typed primary key, text keys in byte order', async () => {
    const pool = await freshDatabase();
    const dir = await tempDir();
    await cp(MIGRATIONS, dir, { recursive: true });
    await writeFile(
      join(dir, '0100_tags.sql'),
      'CREATE TABLE tags (tag text, n integer, note text, PRIMARY KEY (tag, n));\n',
    );
    const tags: TableDef = {
      name: 'tags',
      primaryKey: ['tag', 'n'],
      columns: {
        tag: { type: 'text', nullable: false },
        n: { type: 'integer', nullable: false },
        note: { type: 'text' },
      },
    };
    await runMigrations(pool, {
      directory: dir,
      registry: new SchemaRegistry([...pipelineTables, tags]),
    });
    const columns = async (table: string) =>
      (
        await pool.query(
          `SELECT a.attname AS name, format_type(a.atttypid, a.atttypmod) AS type, a.attnotnull AS "notNull",
                  c.collname AS collation
             FROM pg_attribute a LEFT JOIN pg_collation c ON c.oid = a.attcollation
            WHERE a.attrelid = $1::regclass AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum`,
          [table],
        )
      ).rows;
    const bookkeeping = [
      { name: 'version', type: 'bigint', notNull: true, collation: null },
      { name: 'deleted', type: 'boolean', notNull: true, collation: null },
    ];
    expect(await columns('spillway."public.source_documents"')).toEqual([
      { name: 'document_uuid', type: 'uuid', notNull: true, collation: null },
      ...bookkeeping,
    ]);
    expect(await columns('spillway."public.tags"')).toEqual([
      { name: 'tag', type: 'text', notNull: true, collation: 'C' },
      { name: 'n', type: 'integer', notNull: true, collation: null },
      ...bookkeeping,
    ]);
    const key = await pool.query(
      `SELECT pg_get_constraintdef(oid) AS def FROM pg_constraint
        WHERE conrelid = 'spillway."public.tags"'::regclass AND contype = 'p'`,
    );
    expect(key.rows).toEqual([{ def: 'PRIMARY KEY (tag, n)' }]);
  });

  it("moves each table's versions out of spillway.row_versions into its version table, typed, the newest per key, once", async () => {
    const pool = await freshDatabase();
    // A deployment of before version tables: the shipped migrations, no version tables yet.
    await runMigrations(pool, { registry: NO_TABLES });
    const dir = await tempDir();
    await cp(MIGRATIONS, dir, { recursive: true });
    await writeFile(join(dir, '0100_tags.sql'), 'CREATE TABLE tags (tag text PRIMARY KEY);\n');
    const tags: TableDef = {
      name: 'tags',
      primaryKey: ['tag'],
      columns: { tag: { type: 'text', nullable: false } },
    };
    const registry = new SchemaRegistry([...pipelineTables, tags]);
    const [a, b, c] = [randomUUID(), randomUUID(), randomUUID()];
    // As the single version table held them: `<schema>.<table>` and the key as JSON text.
    await pool.query(
      `INSERT INTO spillway.row_versions (table_name, row_key, version, deleted) VALUES
         ('public.source_documents', $1, 100, false),
         ('public.source_documents', $2, 300, true),
         ('public.source_documents', $3, 200, true),
         ('public.document_chunks', $4, 50, false),
         ('public.tags', '["x\\"y"]', 70, true),
         ('public.not_defined', '["z"]', 7, false)`,
      [
        JSON.stringify([a]),
        // Another spelling of the same uuid: one typed key, whose newest version wins.
        JSON.stringify([a.toUpperCase()]),
        JSON.stringify([b]),
        JSON.stringify([c]),
      ],
    );
    // A version already in the version table that is newer than the one moved stays.
    await pool.query(
      versionTableDdl(pipelineRegistry.get('source_documents') as TableDef, 'public'),
    );
    await pool.query(
      'INSERT INTO spillway."public.source_documents" (document_uuid, version, deleted) VALUES ($1, 500, false)',
      [b],
    );
    const versions = async () => ({
      source_documents: (
        await pool.query(
          'SELECT document_uuid::text AS key, version::int, deleted FROM spillway."public.source_documents" ORDER BY version',
        )
      ).rows,
      document_chunks: (
        await pool.query(
          'SELECT chunk_uuid::text AS key, version::int, deleted FROM spillway."public.document_chunks"',
        )
      ).rows,
      tags: (
        await pool.query('SELECT tag AS key, version::int, deleted FROM spillway."public.tags"')
      ).rows,
      left: (
        await pool.query('SELECT table_name, row_key, version::int FROM spillway.row_versions')
      ).rows,
    });
    const moved = {
      source_documents: [
        { key: a, version: 300, deleted: true },
        { key: b, version: 500, deleted: false },
      ],
      document_chunks: [{ key: c, version: 50, deleted: false }],
      tags: [{ key: 'x"y', version: 70, deleted: true }],
      left: [{ table_name: 'public.not_defined', row_key: '["z"]', version: 7 }],
    };

    await runMigrations(pool, { directory: dir, registry });
    expect(await versions()).toEqual(moved);
    // Idempotent: nothing more to move, nothing changes.
    await runMigrations(pool, { directory: dir, registry });
    expect(await versions()).toEqual(moved);
  });

  it('moves spillway.row_versions in transactions of a bounded number of rows, with the same outcome', async () => {
    const pool = await freshDatabase();
    await runMigrations(pool, { registry: NO_TABLES });
    const keys = Array.from({ length: 7 }, () => randomUUID());
    // Seven keys, the first also under another spelling with a newer version: with two rows a
    // transaction, the two spellings may be moved by different transactions; the newer wins.
    await pool.query(
      `INSERT INTO spillway.row_versions (table_name, row_key, version, deleted)
       SELECT 'public.source_documents', k, 10 + n, n % 2 = 0
       FROM unnest($1::text[]) WITH ORDINALITY AS u (k, n)`,
      [[...keys.map((k) => JSON.stringify([k])), JSON.stringify([keys[0]?.toUpperCase()])]],
    );
    await createVersionTables(pool, { moveChunkRows: 2 });
    const moved = await pool.query(
      'SELECT document_uuid::text AS key, version::int, deleted FROM spillway."public.source_documents" ORDER BY version',
    );
    expect(moved.rows).toEqual([
      ...keys.slice(1).map((key, i) => ({ key, version: 12 + i, deleted: (i + 2) % 2 === 0 })),
      { key: keys[0], version: 18, deleted: true },
    ]);
    const left = await pool.query('SELECT count(*)::int AS n FROM spillway.row_versions');
    expect(left.rows).toEqual([{ n: 0 }]);
  });

  it('names a version table whose name would pass 63 bytes by a prefix and a hash, distinct per table', async () => {
    const pool = await freshDatabase();
    const schema = `S${'x'.repeat(55)}`;
    await runMigrations(pool, { schema });
    const names = await tablesIn(pool, 'spillway');
    const versionTables = pipelineTables.map((t) => versionTableName(schema, t.name));
    expect(new Set(versionTables).size).toBe(pipelineTables.length);
    for (const name of versionTables) {
      expect(Buffer.byteLength(name)).toBeLessThanOrEqual(63);
      expect(names).toContain(name);
    }
  });

  it('creates the tables exactly as tables.ts defines them', async () => {
    const pool = await freshDatabase();
    await runMigrations(pool);
    await expectSchemaMatchesDefinitions(pool, 'public');
  });

  it('applies nothing when run a second time', async () => {
    const pool = await freshDatabase();
    await runMigrations(pool);
    const second = await runMigrations(pool);
    expect(second).toEqual({ applied: [], skipped: await shippedIds() });
    const { rows } = await pool.query('SELECT count(*)::int AS n FROM spillway.schema_migrations');
    expect(rows[0]).toEqual({ n: (await shippedIds()).length });
  });

  it('applies each migration exactly once when ten runners start at the same time', async () => {
    const { url } = await services().createDatabase();
    const runners = Array.from({ length: 10 }, () => newPool(url, 1));
    const results = await Promise.all(runners.map((pool) => runMigrations(pool)));
    const ids = await shippedIds();
    for (const result of results) {
      expect([...result.applied, ...result.skipped].sort()).toEqual(ids);
    }
    for (const id of ids) {
      expect(
        results.filter((r) => r.applied.includes(id)),
        id,
      ).toHaveLength(1);
    }
    const pool = runners[0] as pg.Pool;
    const { rows } = await pool.query('SELECT count(*)::int AS n FROM spillway.schema_migrations');
    expect(rows[0]).toEqual({ n: ids.length });
    await expectSchemaMatchesDefinitions(pool, 'public');
  });

  it('puts the tables in the schema it is given, quoted, and the bookkeeping in spillway', async () => {
    const pool = await freshDatabase();
    const result = await runMigrations(pool, { schema: 'Pipeline_2' });
    expect(result.applied).toEqual(await shippedIds());
    await expectSchemaMatchesDefinitions(pool, 'Pipeline_2');
    expect(await tablesIn(pool, 'public')).toEqual([]);
    expect(await tablesIn(pool, 'pipeline_2')).toEqual([]);
    expect(await tablesIn(pool, 'spillway')).toEqual(
      [
        'drain_fence',
        'row_versions',
        'schema_migrations',
        ...pipelineTables.map((t) => `Pipeline_2.${t.name}`),
      ].sort(),
    );
  });

  it.each(['public; DROP SCHEMA spillway', 'a"b', '1st', '', 'x'.repeat(64)])(
    'refuses the schema name %j before touching the database',
    async (schema) => {
      const pool = await freshDatabase();
      await expect(runMigrations(pool, { schema })).rejects.toBeInstanceOf(ConfigError);
      const { rows } = await pool.query(
        "SELECT count(*)::int AS n FROM pg_namespace WHERE nspname = 'spillway'",
      );
      expect(rows[0]).toEqual({ n: 0 });
    },
  );

  it('refuses an applied migration whose file changed, naming the file, and applies nothing after it', async () => {
    const pool = await freshDatabase();
    const dir = await tempDir();
    await cp(MIGRATIONS, dir, { recursive: true });
    await runMigrations(pool, { directory: dir });

    const edited = join(dir, '0001_pipeline_tables.sql');
    await writeFile(
      edited,
      `${await readFile(edited, 'utf8')}\nALTER TABLE relationships ADD note text;\n`,
    );
    await writeFile(join(dir, '0002_later.sql'), 'CREATE TABLE later (id int);');

    const error = await runMigrations(pool, { directory: dir }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(MigrationError);
    expect((error as MigrationError).file).toBe('0001_pipeline_tables.sql');
    expect((error as Error).message).toMatch(
      /0001_pipeline_tables\.sql was changed after it was applied/,
    );
    expect(await tablesIn(pool, 'public')).not.toContain('later');
  });

  it('fails a broken migration with its file name and PostgreSQL’s message, and leaves nothing of it behind', async () => {
    const pool = await freshDatabase();
    const dir = await tempDir();
    await writeFile(join(dir, '0000_good.sql'), 'CREATE TABLE good (id int);\n');
    await writeFile(
      join(dir, '0001_broken.sql'),
      'CREATE TABLE half_done (id int);\nINSERT INTO good VALUES (1);\n\nCREATE TABLE broken (\n  id int,\n  x nosuchtype\n);\n',
    );
    await writeFile(join(dir, '0002_after.sql'), 'CREATE TABLE after_broken (id int);\n');

    const error = await runMigrations(pool, { directory: dir, registry: NO_TABLES }).catch(
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(MigrationError);
    const failure = error as MigrationError;
    expect(failure.file).toBe('0001_broken.sql');
    expect(failure.sqlState).toBe('42704');
    expect(failure.message).toContain('0001_broken.sql');
    expect(failure.message).toContain('type "nosuchtype" does not exist');
    expect(failure.message).toMatch(/at line 6/);

    expect(await tablesIn(pool, 'public')).toEqual(['good']);
    const { rows } = await pool.query('SELECT count(*)::int AS n FROM good');
    expect(rows[0]).toEqual({ n: 0 });
    const recorded = await pool.query<{ id: string }>('SELECT id FROM spillway.schema_migrations');
    expect(recorded.rows).toEqual([{ id: '0000_good' }]);

    // Fixed, it applies where it stopped.
    await writeFile(join(dir, '0001_broken.sql'), 'CREATE TABLE half_done (id int);\n');
    expect(await runMigrations(pool, { directory: dir, registry: NO_TABLES })).toEqual({
      applied: ['0001_broken', '0002_after'],
      skipped: ['0000_good'],
    });
  });

  it('leaves no session state behind on the pooled server connections', async () => {
    const { url } = await services().createDatabase();
    const pool = newPool(url, 1);
    await runMigrations(pool, { schema: 'elsewhere' });
    const { rows } = await pool.query<{ search_path: string; locks: number }>(
      `SELECT current_setting('search_path') AS search_path,
              (SELECT count(*)::int FROM pg_locks WHERE locktype = 'advisory') AS locks`,
    );
    expect(rows[0]).toEqual({ search_path: '"$user", public', locks: 0 });
  });
});

/** A valid row for every shipped table, parents first. */
const DOC = 'a0000000-0000-4000-8000-000000000001';
const CHUNK = 'a0000000-0000-4000-8000-000000000002';
const ENTITY = 'a0000000-0000-4000-8000-000000000003';
const ENTITY_2 = 'a0000000-0000-4000-8000-000000000004';
const RELATIONSHIP = 'a0000000-0000-4000-8000-000000000005';
const TASK = 'a0000000-0000-4000-8000-000000000006';
const rows: Record<string, Record<string, unknown>[]> = {
  source_documents: [{ document_uuid: DOC, filename: 'a.pdf', status: 'pending' }],
  document_chunks: [{ chunk_uuid: CHUNK, document_uuid: DOC, chunk_index: 0, text: 'Ada' }],
  entity_mentions: [
    {
      entity_uuid: ENTITY,
      document_uuid: DOC,
      chunk_uuid: CHUNK,
      entity_type: 'person',
      text: 'Ada',
    },
    { entity_uuid: ENTITY_2, document_uuid: DOC, entity_type: 'org', text: 'ACME' },
  ],
  relationships: [
    {
      relationship_uuid: RELATIONSHIP,
      document_uuid: DOC,
      source_entity_uuid: ENTITY,
      target_entity_uuid: ENTITY_2,
      relationship_type: 'works_for',
    },
  ],
  processing_tasks: [{ task_id: TASK, document_uuid: DOC, task_type: 'ocr', status: 'queued' }],
};

const quote = (name: string) => `"${name.replaceAll('"', '""')}"`;

async function insert(client: pg.PoolClient, table: string, row: Record<string, unknown>) {
  const names = Object.keys(row);
  await client.query(
    `INSERT INTO ${quote(table)} (${names.map(quote).join(', ')}) VALUES (${names.map((_, i) => `$${i + 1}`).join(', ')})`,
    Object.values(row),
  );
}

/** Runs `run` under a savepoint and returns its SQLSTATE, or 'ok'. */
async function outcome(client: pg.PoolClient, run: () => Promise<unknown>): Promise<string> {
  await client.query('SAVEPOINT attempt');
  try {
    await run();
    await client.query('RELEASE SAVEPOINT attempt');
    return 'ok';
  } catch (error) {
    await client.query('ROLLBACK TO SAVEPOINT attempt');
    if (error instanceof pg.DatabaseError && error.code) return error.code;
    throw error;
  }
}

describe('the migrated constraints', () => {
  async function migratedWithRows(): Promise<pg.PoolClient> {
    const pool = await freshDatabase();
    await runMigrations(pool);
    const client = await pool.connect();
    await client.query('BEGIN');
    for (const table of pipelineRegistry.writeOrder) {
      for (const row of rows[table] ?? []) await insert(client, table, row);
    }
    return client;
  }

  it('fill defaults: created_at and attempts', async () => {
    const client = await migratedWithRows();
    try {
      const { rows: found } = await client.query(
        `SELECT (SELECT created_at IS NOT NULL FROM source_documents) AS created,
                (SELECT attempts FROM processing_tasks) AS attempts`,
      );
      expect(found[0]).toEqual({ created: true, attempts: 0 });
    } finally {
      await client.query('ROLLBACK');
      client.release();
    }
  });

  it('reject a chunk of a missing document and the delete of a document that has children (23503)', async () => {
    const client = await migratedWithRows();
    try {
      const missing = 'b0000000-0000-4000-8000-000000000009';
      expect(
        await outcome(client, () =>
          insert(client, 'document_chunks', {
            chunk_uuid: missing,
            document_uuid: missing,
            chunk_index: 1,
            text: 'x',
          }),
        ),
      ).toBe('23503');
      for (const parent of ['source_documents', 'document_chunks', 'entity_mentions']) {
        expect(await outcome(client, () => client.query(`DELETE FROM ${parent}`)), parent).toBe(
          '23503',
        );
      }
      // Children first, then parents: what a delete changeset does (G3).
      for (const table of [...pipelineRegistry.writeOrder].reverse()) {
        expect(await outcome(client, () => client.query(`DELETE FROM ${table}`)), table).toBe('ok');
      }
    } finally {
      await client.query('ROLLBACK');
      client.release();
    }
  });

  it('enforce every oneOf, min, max, jsonObject and NOT NULL of the definitions, and accept their bounds', async () => {
    const client = await migratedWithRows();
    try {
      for (const table of pipelineTables) {
        const [keyColumn] = table.primaryKey;
        const keyValue = rows[table.name]?.[0]?.[keyColumn ?? ''];
        const set = (column: string, value: unknown, cast = '') =>
          outcome(client, () =>
            client.query(
              `UPDATE ${quote(table.name)} SET ${quote(column)} = $1${cast} WHERE ${quote(keyColumn ?? '')} = $2`,
              [value, keyValue],
            ),
          );
        for (const [name, column] of Object.entries(table.columns)) {
          const where = `${table.name}.${name}`;
          for (const allowed of column.oneOf ?? [])
            expect(await set(name, allowed), where).toBe('ok');
          if (column.oneOf) expect(await set(name, 'not-allowed'), where).toBe('23514');
          if (column.min !== undefined) {
            expect(await set(name, column.min), where).toBe('ok');
            expect(await set(name, column.min - 1), where).toBe('23514');
          }
          if (column.max !== undefined) {
            expect(await set(name, column.max), where).toBe('ok');
            expect(await set(name, column.max + 1), where).toBe('23514');
          }
          if (column.jsonObject) {
            expect(await set(name, '{"a": [1]}', '::jsonb'), where).toBe('ok');
            expect(await set(name, '[1, 2]', '::jsonb'), where).toBe('23514');
            expect(await set(name, '"text"', '::jsonb'), where).toBe('23514');
          }
          const nullable = column.nullable !== false && !table.primaryKey.includes(name);
          expect(await set(name, null), where).toBe(nullable ? 'ok' : '23502');
        }
      }
    } finally {
      await client.query('ROLLBACK');
      client.release();
    }
  });
});

/**
 * The pipeline tables as a pipeline that wrote to PostgreSQL before Spillway might have made
 * them: compatible with the definitions, but with indexes of other names, no CHECK constraints,
 * columns of its own (nullable, or with a default or an identity) and one column nullable that
 * the definition requires (the reverse would be a mismatch; this way round it is fine).
 */
const EXISTING_TABLES = `
CREATE TABLE source_documents (
  document_uuid uuid PRIMARY KEY,
  filename text,
  status text NOT NULL,
  content_type text,
  page_count integer,
  error_message text,
  metadata jsonb,
  created_at timestamptz DEFAULT now(),
  updated_at timestamptz,
  uploaded_by text,
  storage_key text NOT NULL DEFAULT ''
);
CREATE TABLE document_chunks (
  chunk_uuid uuid PRIMARY KEY,
  document_uuid uuid NOT NULL REFERENCES source_documents,
  chunk_index integer NOT NULL,
  text text NOT NULL,
  char_start integer,
  char_end integer,
  metadata jsonb,
  embedding_id bigint GENERATED BY DEFAULT AS IDENTITY
);
CREATE INDEX ix_chunks_document ON document_chunks (document_uuid, chunk_index);
CREATE TABLE entity_mentions (
  entity_uuid uuid PRIMARY KEY,
  document_uuid uuid NOT NULL REFERENCES source_documents,
  chunk_uuid uuid REFERENCES document_chunks,
  entity_type text NOT NULL,
  text text NOT NULL,
  confidence real,
  start_offset integer,
  end_offset integer,
  attributes jsonb,
  normalized text
);
CREATE INDEX ix_mentions_document ON entity_mentions (document_uuid);
CREATE INDEX ix_mentions_chunk ON entity_mentions (chunk_uuid);
CREATE TABLE relationships (
  relationship_uuid uuid PRIMARY KEY,
  document_uuid uuid NOT NULL REFERENCES source_documents,
  source_entity_uuid uuid NOT NULL REFERENCES entity_mentions,
  target_entity_uuid uuid NOT NULL REFERENCES entity_mentions,
  relationship_type text NOT NULL,
  confidence real,
  attributes jsonb
);
CREATE INDEX ix_relationships_document ON relationships (document_uuid);
CREATE INDEX ix_relationships_source ON relationships (source_entity_uuid);
CREATE INDEX ix_relationships_target ON relationships (target_entity_uuid);
CREATE TABLE processing_tasks (
  task_id uuid PRIMARY KEY,
  document_uuid uuid REFERENCES source_documents,
  task_type text NOT NULL,
  status text NOT NULL,
  attempts integer NOT NULL DEFAULT 0,
  error_message text,
  started_at timestamptz,
  completed_at timestamptz,
  worker text
);
CREATE INDEX ix_tasks_document ON processing_tasks (document_uuid);
`;

/** `EXISTING_TABLES` in `pool`'s public schema, holding `rows` (plus a value in an extra column). */
async function existingDatabase(pool: pg.Pool, extraSql = ''): Promise<void> {
  await pool.query(EXISTING_TABLES + extraSql);
  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    for (const table of pipelineRegistry.writeOrder) {
      for (const row of rows[table] ?? []) await insert(client, table, row);
    }
    await client.query(`UPDATE source_documents SET uploaded_by = 'celery'`);
    await client.query('COMMIT');
  } finally {
    client.release();
  }
}

/** Every row of every pipeline table, as JSON, keyed by table. */
async function contents(pool: pg.Pool): Promise<Record<string, unknown[]>> {
  const result: Record<string, unknown[]> = {};
  for (const table of pipelineRegistry.writeOrder) {
    const { rows: found } = await pool.query(
      `SELECT to_jsonb(t) AS row FROM ${quote(table)} AS t ORDER BY 1`,
    );
    result[table] = found.map((r) => r.row);
  }
  return result;
}

async function indexesIn(pool: pg.Pool, schema: string): Promise<string[]> {
  const { rows: found } = await pool.query<{ definition: string }>(
    'SELECT indexdef AS definition FROM pg_indexes WHERE schemaname = $1 ORDER BY indexdef',
    [schema],
  );
  return found.map((r) => r.definition);
}

describe('runMigrations on a database that already has the pipeline tables', () => {
  it('adopts them as they are, rows and extra columns included, adding only a missing foreign-key index', async () => {
    const pool = await freshDatabase();
    await existingDatabase(pool, 'DROP INDEX ix_tasks_document;');
    const names = pipelineRegistry.names();
    const tablesBefore = await readTables(pool, 'public', names);
    const indexesBefore = await indexesIn(pool, 'public');
    const rowsBefore = await contents(pool);
    expect(rowsBefore.source_documents).toHaveLength(1);

    const result = await runMigrations(pool);
    expect(result).toEqual({ applied: await shippedIds(), skipped: [] });

    expect(await readTables(pool, 'public', names)).toEqual(tablesBefore);
    expect(await contents(pool)).toEqual(rowsBefore);
    expect(rowsBefore.source_documents?.[0]).toMatchObject({ uploaded_by: 'celery' });
    expect(await indexesIn(pool, 'public')).toEqual(
      [
        ...indexesBefore,
        'CREATE INDEX processing_tasks_document_uuid_idx ON public.processing_tasks USING btree (document_uuid)',
      ].sort(),
    );
    const checks = await pool.query(
      "SELECT count(*)::int AS n FROM pg_constraint WHERE contype = 'c' AND connamespace = 'public'::regnamespace",
    );
    expect(checks.rows[0]).toEqual({ n: 0 });

    expect(await runMigrations(pool)).toEqual({ applied: [], skipped: await shippedIds() });
  });

  it('adopts them while the pipeline writes to them, without waiting for its transactions', async () => {
    const pool = await freshDatabase();
    await existingDatabase(pool);
    // A pipeline's open write transaction on every table (ROW EXCLUSIVE, what INSERT takes):
    // a statement that wants a SHARE lock (CREATE INDEX, even one that then skips) waits for it.
    const writer = await pool.connect();
    try {
      await writer.query('BEGIN');
      for (const table of pipelineRegistry.writeOrder) {
        await writer.query(`LOCK TABLE ${table} IN ROW EXCLUSIVE MODE`);
      }
      const outcome = await Promise.race([
        runMigrations(pool).catch((error: unknown) => error),
        new Promise((resolve) => setTimeout(resolve, 10_000, 'still waiting after 10 s')),
      ]);
      expect(outcome).toEqual({ applied: await shippedIds(), skipped: [] });
    } finally {
      await writer.query('ROLLBACK');
      writer.release();
    }
  });

  it('adopts tables owned by another role, with only the grants the deploy guide asks for', async () => {
    // Straight to PostgreSQL: PgBouncer here knows only the postgres user. The role is what a
    // deployment's `spillway` role is: granted the tables, owner of none, no superuser.
    const { name, directUrl } = await services().createDatabase();
    const admin = newPool(directUrl, 2);
    const suffix = name.slice(2);
    const [owner, role] = [`pipeline_owner_${suffix}`, `spillway_${suffix}`];
    await admin.query(
      `CREATE ROLE ${owner};
       CREATE ROLE ${role} LOGIN;
       GRANT CONNECT, CREATE ON DATABASE ${name} TO ${role};
       GRANT USAGE, CREATE ON SCHEMA public TO ${role};`,
    );
    await existingDatabase(admin);
    await admin.query(
      `${pipelineRegistry
        .names()
        .map((table) => `ALTER TABLE ${table} OWNER TO ${owner};`)
        .join('\n')}
       GRANT SELECT, INSERT, UPDATE, DELETE, REFERENCES ON ALL TABLES IN SCHEMA public TO ${role};`,
    );

    const spillway = newPool(directUrl.replace('postgres@', `${role}@`), 1);
    expect(await runMigrations(spillway)).toEqual({ applied: await shippedIds(), skipped: [] });
    const owners = await admin.query<{ owner: string }>(
      `SELECT DISTINCT tableowner AS owner FROM pg_tables WHERE schemaname = 'public'`,
    );
    expect(owners.rows).toEqual([{ owner }]);
  });

  it('fails with one MigrationError naming every mismatch and how to fix it, until the tables are fixed', async () => {
    const pool = await freshDatabase();
    await pool.query(
      `${EXISTING_TABLES}
       ALTER TABLE source_documents ALTER COLUMN page_count TYPE bigint;
       ALTER TABLE document_chunks DROP COLUMN char_end;
       ALTER TABLE entity_mentions ADD COLUMN reviewer text NOT NULL;
       ALTER TABLE relationships DROP CONSTRAINT relationships_pkey,
         ADD PRIMARY KEY (relationship_uuid, document_uuid);
       ALTER TABLE processing_tasks ALTER COLUMN error_message SET NOT NULL;`,
    );
    const problems = [
      'source_documents.page_count: defined as integer, the database has bigint',
      'document_chunks.char_end: defined as integer, the database has no such column',
      'entity_mentions.reviewer: not in the definition, and NOT NULL without a default in the database (every insert would fail)',
      'relationships: primary key defined as (relationship_uuid), the database has (relationship_uuid, document_uuid)',
      'processing_tasks.error_message: defined as nullable, the database has NOT NULL',
    ];

    const error = await runMigrations(pool).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(MigrationError);
    const failure = error as MigrationError;
    expect(failure.problems).toEqual(problems);
    expect(failure.file).toBeUndefined();
    expect(failure.message).toMatch(
      /^the tables in schema "public" do not match their definitions \(5 problems\): /,
    );
    for (const problem of problems) expect(failure.message).toContain(problem);
    expect(failure.message).toContain(
      'adapt each table to its definition (ALTER TABLE, by hand or in a new migration) or the definition to the table (lambdas/schema/tables.ts)',
    );

    // The migrations themselves were no-ops and are recorded; every run checks again.
    const again = await runMigrations(pool).catch((e: unknown) => e);
    expect((again as MigrationError).problems).toEqual(problems);

    await pool.query(
      `ALTER TABLE source_documents ALTER COLUMN page_count TYPE integer;
       ALTER TABLE document_chunks ADD COLUMN char_end integer;
       ALTER TABLE entity_mentions ALTER COLUMN reviewer DROP NOT NULL;
       ALTER TABLE relationships DROP CONSTRAINT relationships_pkey,
         ADD PRIMARY KEY (relationship_uuid);
       ALTER TABLE processing_tasks ALTER COLUMN error_message DROP NOT NULL;`,
    );
    expect(await runMigrations(pool)).toEqual({ applied: [], skipped: await shippedIds() });
  });

  it('applies each migration exactly once when ten runners adopt the same tables at the same time', async () => {
    const { url } = await services().createDatabase();
    const setup = newPool(url, 1);
    await existingDatabase(setup);
    const before = await contents(setup);
    const runners = Array.from({ length: 10 }, () => newPool(url, 1));
    const results = await Promise.all(runners.map((pool) => runMigrations(pool)));
    const ids = await shippedIds();
    for (const id of ids) {
      expect(
        results.filter((r) => r.applied.includes(id)),
        id,
      ).toHaveLength(1);
    }
    for (const result of results) {
      expect([...result.applied, ...result.skipped].sort()).toEqual(ids);
    }
    const { rows: recorded } = await setup.query(
      'SELECT count(*)::int AS n FROM spillway.schema_migrations',
    );
    expect(recorded[0]).toEqual({ n: ids.length });
    expect(await contents(setup)).toEqual(before);
  });

  it('checks the registry it is given, in the schema it is given', async () => {
    const pool = await freshDatabase();
    const dir = await tempDir();
    await writeFile(
      join(dir, '0000_notes.sql'),
      'CREATE TABLE IF NOT EXISTS notes (id bigint PRIMARY KEY, body text);\n',
    );
    const notes = (id: 'integer' | 'bigint') => ({
      name: 'notes',
      primaryKey: ['id'],
      columns: { id: { type: id, nullable: false }, body: { type: 'text' as const } },
    });
    const tags = { name: 'tags', primaryKey: ['tag'], columns: { tag: { type: 'text' as const } } };

    const error = await runMigrations(pool, {
      directory: dir,
      schema: 'Notes_1',
      registry: new SchemaRegistry([notes('integer'), tags]),
    }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(MigrationError);
    expect((error as MigrationError).problems).toEqual([
      'notes.id: defined as integer, the database has bigint',
      'tags: no such table (no migration creates it)',
    ]);
    expect((error as Error).message).toContain('schema "Notes_1"');

    expect(
      await runMigrations(pool, {
        directory: dir,
        schema: 'Notes_1',
        registry: new SchemaRegistry([notes('bigint')]),
      }),
    ).toEqual({ applied: [], skipped: ['0000_notes'] });
  });
});
