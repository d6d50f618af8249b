/**
 * The migration runner: applies the `.sql` files of a directory in file-name order, each once.
 *
 * It runs through RDS Proxy (locally: PgBouncer in transaction mode), so it keeps no session
 * state: no session advisory lock, no `SET`, no named prepared statement. Each migration is one
 * transaction that first takes a transaction-level advisory lock, so that any number of runners
 * started at once (a deploy's custom resource, a retried invocation, an operator) serialise, and
 * every one of them after the first finds the migration recorded and skips it.
 *
 * Migrations may adopt tables that already exist (`CREATE TABLE IF NOT EXISTS`), so after the
 * last one the runner checks that every table of the registry fits its definition
 * (`schema-check.ts`) and fails with the list of mismatches otherwise. Then it creates each
 * table's version table (G2, `core/sql.ts`) and moves the table's versions there from
 * `spillway.row_versions`, where Spillway kept every table's versions before.
 */
import { createHash } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { classifyDatabaseError, databaseReportOf } from '../core/db-errors.js';
import {
  ConfigError,
  MigrationError,
  messageOf,
  SpillwayError,
  UnavailableError,
} from '../core/errors.js';
import type { SchemaRegistry, TableDef } from '../core/schema.js';
import { moveOldVersions, versionTableDdl } from '../core/sql.js';
import { type SqlStatement, splitSqlScript } from '../core/sql-script.js';
import { pipelineRegistry } from '../schema/tables.js';
import { DEFAULT_MIGRATION_TIMEOUT_MS } from './config.js';
import { inTransaction, type TransactionPool } from './postgres-transaction.js';
import { findSchemaProblems } from './schema-check.js';

/** One migration file. */
export interface Migration {
  /** The file name without `.sql`: what `spillway.schema_migrations` records. */
  readonly id: string;
  readonly file: string;
  readonly sql: string;
  /** sha256 (hex) of the SQL, line endings normalised to LF. */
  readonly checksum: string;
}

export interface RunMigrationsOptions {
  /** Schema of the user tables; created if missing. Spillway's own tables live in `spillway`. @default 'public' */
  readonly schema?: string;
  /** Directory of the `.sql` files. @default the `lambdas/schema/migrations` folder of this package */
  readonly directory?: string;
  /**
   * The tables checked after migrating: each must exist in `schema` and fit its definition.
   * Pass the registry the functions use; with a directory of your own, a registry of your own.
   * @default pipelineRegistry
   */
  readonly registry?: SchemaRegistry;
  /**
   * Longest one migration (and the table check after them) may take, waiting for locks
   * included: PostgreSQL cancels it past this (`statement_timeout`, `lock_timeout`), so that a
   * migration never outlives the `migrate` invocation that started it.
   * @default DEFAULT_MIGRATION_TIMEOUT_MS
   */
  readonly timeoutMs?: number;
}

export interface MigrationResult {
  /** Ids applied by this run, in order. */
  readonly applied: string[];
  /** Ids found already applied (by an earlier or a concurrent run), in order. */
  readonly skipped: string[];
}

/** Key of the transaction-level advisory lock every migration transaction takes ("SPILLWAY"). */
export const MIGRATION_LOCK_KEY = '6003378895332000089';

const DEFAULT_DIRECTORY = fileURLToPath(new URL('../schema/migrations/', import.meta.url));
const SCHEMA_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,62}$/;

/** Reads the `.sql` files of `directory`, sorted by file name (code-unit order, not locale). */
export async function loadMigrations(directory: string): Promise<Migration[]> {
  const files = (await readdir(directory, { withFileTypes: true }))
    .filter((entry) => entry.isFile() && entry.name.endsWith('.sql'))
    .map((entry) => entry.name)
    .sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  return Promise.all(
    files.map(async (file) => {
      // A checkout with CRLF line endings or a BOM must not look like an edited migration.
      const sql = (await readFile(join(directory, file), 'utf8'))
        .replace(/^\uFEFF/, '')
        .replace(/\r\n/g, '\n');
      return {
        id: file.slice(0, -'.sql'.length),
        file,
        sql,
        checksum: createHash('sha256').update(sql, 'utf8').digest('hex'),
      };
    }),
  );
}

/**
 * Applies the migrations of `options.directory` not yet recorded in `spillway.schema_migrations`,
 * each in its own transaction with `search_path` set to the target schema.
 *
 * Idempotent and safe to run concurrently. A migration must not contain transaction control
 * (`BEGIN`, `COMMIT`) or statements that cannot run in a transaction (`CREATE INDEX CONCURRENTLY`).
 * Its statements are sent one at a time (`core/sql-script.ts` splits the file), so that it runs
 * the same through pg and through the Data API, which takes one statement a call.
 *
 * Then checks that every table of `options.registry` exists in the schema and fits its
 * definition, on every run, whether or not it applied anything.
 *
 * @throws MigrationError when a migration fails (naming its file, with PostgreSQL's message), an
 *   applied migration's file has changed, or a table does not fit its definition (listing every
 *   mismatch)
 * @throws UnavailableError when the database cannot be reached
 */
export async function runMigrations(
  pool: TransactionPool,
  options: RunMigrationsOptions = {},
): Promise<MigrationResult> {
  const schema = options.schema ?? 'public';
  if (!SCHEMA_NAME.test(schema)) {
    throw new ConfigError(
      'schema',
      `expected a schema name of letters, digits and underscores, not starting with a digit, at most 63 characters; found ${JSON.stringify(schema.slice(0, 80))}`,
    );
  }
  const timeoutMs = options.timeoutMs ?? DEFAULT_MIGRATION_TIMEOUT_MS;
  const migrations = await loadMigrations(options.directory ?? DEFAULT_DIRECTORY);
  const result: MigrationResult = { applied: [], skipped: [] };
  for (const migration of migrations) {
    const applied = await applyMigration(pool, schema, migration, timeoutMs);
    (applied ? result.applied : result.skipped).push(migration.id);
  }
  const registry = options.registry ?? pipelineRegistry;
  await verifyTables(pool, schema, registry, timeoutMs);
  await createVersionTables(pool, { schema, registry, timeoutMs });
  return result;
}

export interface VersionTablesOptions {
  /** Schema of the user tables. @default 'public' */
  readonly schema?: string;
  /** @default pipelineRegistry */
  readonly registry?: SchemaRegistry;
  /** @default DEFAULT_MIGRATION_TIMEOUT_MS, for each transaction */
  readonly timeoutMs?: number;
  /** Rows of spillway.row_versions moved per transaction. @default MOVE_CHUNK_ROWS */
  readonly moveChunkRows?: number;
}

/**
 * Rows of spillway.row_versions one transaction of `createVersionTables` moves: a deployment
 * that kept millions of versions there moves them in transactions that each stay well inside
 * the migration timeout, and a `migrate` stopped halfway goes on where it stopped.
 */
export const MOVE_CHUNK_ROWS = 50_000;

/**
 * For each table of the registry, under the migrations' advisory lock: creates its version
 * table (`versionTableDdl`, if missing), then moves the table's rows of `spillway.row_versions`
 * (the single version table of earlier releases, keyed by `<schema>.<table>` and the row key as
 * JSON text) into it with their keys typed, deleting them there (`moveOldVersions`), in
 * transactions of at most `moveChunkRows` rows: one row per typed key, the highest version, and
 * a version already in the version table stays when it is newer (G2). Idempotent; with nothing
 * to move it costs an index probe per table. `runMigrations` calls it after its table check;
 * call it yourself only for tables you create without `runMigrations`.
 */
export async function createVersionTables(
  pool: TransactionPool,
  options: VersionTablesOptions = {},
): Promise<void> {
  const schema = options.schema ?? 'public';
  const registry = options.registry ?? pipelineRegistry;
  const timeoutMs = options.timeoutMs ?? DEFAULT_MIGRATION_TIMEOUT_MS;
  const chunk = options.moveChunkRows ?? MOVE_CHUNK_ROWS;
  for (const name of registry.writeOrder) {
    const def = registry.get(name) as TableDef;
    try {
      let moved = chunk;
      while (moved >= chunk) {
        moved = await inTransaction(pool, { timeoutMs }, async (query) => {
          await query(`SELECT pg_advisory_xact_lock(${MIGRATION_LOCK_KEY})`);
          await query(versionTableDdl(def, schema));
          const old = await query<{ found: boolean }>(
            "SELECT to_regclass('spillway.row_versions') IS NOT NULL AS found",
          );
          if (old.rows[0]?.found !== true) return 0;
          const result = await query<{ moved: number }>(moveOldVersions(def, schema), [
            `${schema}.${def.name}`,
            chunk,
          ]);
          return result.rows[0]?.moved ?? 0;
        });
      }
    } catch (error) {
      if (error instanceof SpillwayError) throw error;
      const message = messageOf(error);
      if (classifyDatabaseError(error) === 'transient') {
        throw new UnavailableError(
          'database',
          `creating the version table of ${name}: ${message}`,
          {
            cause: error,
          },
        );
      }
      const sqlState = databaseReportOf(error)?.sqlState;
      throw new MigrationError(
        `creating the version table of ${name} failed: ${message}${sqlState ? ` (SQLSTATE ${sqlState})` : ''}`,
        { sqlState, cause: error },
      );
    }
  }
}

/** Fails with every mismatch between the registry's tables and the database at once. */
async function verifyTables(
  pool: TransactionPool,
  schema: string,
  registry: SchemaRegistry,
  timeoutMs: number,
): Promise<void> {
  let problems: string[];
  try {
    problems = await inTransaction(pool, { timeoutMs }, (query) =>
      findSchemaProblems({ query }, { registry, schema }),
    );
  } catch (error) {
    if (error instanceof SpillwayError || classifyDatabaseError(error) !== 'transient') throw error;
    const message = messageOf(error);
    throw new UnavailableError('database', `checking the tables: ${message}`, { cause: error });
  }
  if (problems.length === 0) return;
  const count = problems.length === 1 ? '1 problem' : `${problems.length} problems`;
  throw new MigrationError(
    `the tables in schema ${JSON.stringify(schema)} do not match their definitions (${count}): ${problems.join('; ')}. ` +
      'Spillway adopts existing tables but does not change them: adapt each table to its definition ' +
      '(ALTER TABLE, by hand or in a new migration) or the definition to the table ' +
      '(lambdas/schema/tables.ts), then migrate again',
    { problems },
  );
}

/** Applies one migration unless it is recorded; returns whether this call applied it. */
async function applyMigration(
  pool: TransactionPool,
  schema: string,
  migration: Migration,
  timeoutMs: number,
): Promise<boolean> {
  try {
    // Bounded on the server too (G7): a migration stuck behind a lock, or one that runs away,
    // is cancelled by PostgreSQL instead of holding its locks after `migrate` gave up.
    return await inTransaction(pool, { timeoutMs }, async (query) => {
      // Everything below, including creating the bookkeeping table and the target schema,
      // happens under the lock: concurrent runners never race on IF NOT EXISTS.
      await query(`SELECT pg_advisory_xact_lock(${MIGRATION_LOCK_KEY})`);
      await query('CREATE SCHEMA IF NOT EXISTS spillway');
      await query(
        `CREATE TABLE IF NOT EXISTS spillway.schema_migrations (
           id text PRIMARY KEY,
           checksum text NOT NULL,
           applied_at timestamptz NOT NULL DEFAULT now()
         )`,
      );
      const quoted = quoteIdentifier(schema);
      await query(`CREATE SCHEMA IF NOT EXISTS ${quoted}`);
      // SET LOCAL ends with the transaction: nothing leaks into the pooled server connection.
      await query(`SET LOCAL search_path TO ${quoted}, public`);
      // A separate statement after the lock: under READ COMMITTED it sees what the previous
      // holder committed.
      const recorded = await query<{ checksum: string }>(
        'SELECT checksum FROM spillway.schema_migrations WHERE id = $1',
        [migration.id],
      );
      const row = recorded.rows[0];
      if (row) {
        if (row.checksum !== migration.checksum) {
          throw new MigrationError(
            `migration ${migration.file} was changed after it was applied (applied checksum ${row.checksum}, file checksum ${migration.checksum}); restore the file and put the change in a new migration`,
            { file: migration.file },
          );
        }
        return false;
      }
      // One statement a call: the Data API prepares each one, and PostgreSQL refuses a prepared
      // statement of several commands. The transaction keeps the migration all or nothing.
      for (const statement of statementsOf(migration)) {
        try {
          await query(statement.text);
        } catch (error) {
          throw refused(migration, error, statement);
        }
      }
      await query('INSERT INTO spillway.schema_migrations (id, checksum) VALUES ($1, $2)', [
        migration.id,
        migration.checksum,
      ]);
      return true;
    });
  } catch (error) {
    if (error instanceof SpillwayError) throw error;
    throw refused(migration, error);
  }
}

/**
 * A failure of a migration as core/db-errors.ts classifies it: transient ones (connection, lock,
 * timeout) are worth retrying (UnavailableError); a refused or systemic one is the migration's.
 */
function refused(migration: Migration, error: unknown, statement?: SqlStatement): SpillwayError {
  if (classifyDatabaseError(error) === 'transient') return unavailable(migration, error);
  const sqlState = databaseReportOf(error)?.sqlState;
  const message = messageOf(error);
  const position = statement === undefined ? '' : positionOf(statement, error);
  return new MigrationError(
    `migration ${migration.file} failed${position}: ${message}${sqlState ? ` (SQLSTATE ${sqlState})` : ''}`,
    { file: migration.file, sqlState, cause: error },
  );
}

function unavailable(migration: Migration, error: unknown): UnavailableError {
  const message = messageOf(error);
  return new UnavailableError('database', `applying ${migration.file}: ${message}`, {
    cause: error,
  });
}

/** The migration's statements; a file that does not split is the migration's failure. */
function statementsOf(migration: Migration): SqlStatement[] {
  try {
    return splitSqlScript(migration.sql);
  } catch (error) {
    throw new MigrationError(`migration ${migration.file} failed: ${messageOf(error)}`, {
      file: migration.file,
      cause: error,
    });
  }
}

/**
 * ` at line N` (of the migration file) when PostgreSQL reported a character position inside
 * `statement`.
 */
function positionOf(statement: SqlStatement, error: unknown): string {
  const position = error instanceof pg.DatabaseError ? Number(error.position) : Number.NaN;
  if (!Number.isInteger(position) || position < 1) return '';
  // PostgreSQL counts characters (code points) from 1.
  const before = Array.from(statement.text)
    .slice(0, position - 1)
    .join('');
  return ` at line ${statement.line + before.split('\n').length - 1}`;
}

function quoteIdentifier(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}
