import { randomUUID } from 'node:crypto';
import { ExecuteStatementCommand, RDSDataClient } from '@aws-sdk/client-rds-data';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { DataApiPool } from '../../lambdas/io/data-api-connection.js';
import { runMigrations } from '../../lambdas/io/migrator.js';
import { type LocalDataApi, startLocalDataApi } from '../../local/data-api/server.js';
import { useServices } from '../support/services.js';

const services = useServices({ redis: false });

const pools: pg.Pool[] = [];
const apis: LocalDataApi[] = [];
const clients: RDSDataClient[] = [];
afterAll(async () => {
  for (const client of clients) client.destroy();
  await Promise.all(apis.map((api) => api.close()));
  await Promise.all(pools.map((pool) => pool.end()));
});

function directPool(url: string): pg.Pool {
  const pool = new pg.Pool({ connectionString: url, max: 2 });
  pools.push(pool);
  return pool;
}

/** The migrator's pool through the local Data API stand-in, onto the database at `directUrl`. */
async function dataApiPool(directUrl: string): Promise<DataApiPool> {
  const api = await startLocalDataApi({ postgresUrl: directUrl });
  apis.push(api);
  const client = new RDSDataClient({
    endpoint: api.url,
    region: 'us-east-1',
    credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
    maxAttempts: 1,
  });
  clients.push(client);
  return new DataApiPool(client, {
    resourceArn: 'arn:aws:rds:us-east-1:123456789012:cluster:spillway-local',
    secretArn: 'arn:aws:secretsmanager:us-east-1:123456789012:secret:spillway-local',
    database: new URL(directUrl).pathname.slice(1),
  });
}

/**
 * What the migrations leave in the catalog of schemas `public` and `spillway`: columns with
 * their types, nullability and defaults, every constraint and index as PostgreSQL prints it,
 * and the recorded migrations.
 */
interface Catalog {
  readonly columns: string[];
  readonly constraints: string[];
  readonly indexes: string[];
  readonly migrations: string[];
}

async function catalogOf(pool: pg.Pool): Promise<Catalog> {
  const lines = async (sql: string) =>
    (await pool.query<{ line: string }>(sql)).rows.map((r) => r.line);
  return {
    columns: await lines(
      `SELECT format('%s.%s.%s %s %s %s', table_schema, table_name, column_name, data_type,
                     is_nullable, coalesce(column_default, '-')) AS line
         FROM information_schema.columns
        WHERE table_schema IN ('public', 'spillway') ORDER BY 1`,
    ),
    constraints: await lines(
      `SELECT format('%s.%s %s %s', ns.nspname, rel.relname, con.conname,
                     pg_get_constraintdef(con.oid)) AS line
         FROM pg_constraint con
         JOIN pg_class rel ON rel.oid = con.conrelid
         JOIN pg_namespace ns ON ns.oid = rel.relnamespace
        WHERE ns.nspname IN ('public', 'spillway') ORDER BY 1`,
    ),
    indexes: await lines(
      `SELECT indexdef AS line FROM pg_indexes
        WHERE schemaname IN ('public', 'spillway') ORDER BY 1`,
    ),
    migrations: await lines(
      "SELECT id || ' ' || checksum AS line FROM spillway.schema_migrations ORDER BY id",
    ),
  };
}

describe('migrations through the Data API (local stand-in)', () => {
  it('the stand-in refuses SQL of more than one statement, as PostgreSQL refuses to prepare it', async () => {
    const { directUrl } = await services().createDatabase();
    const api = await startLocalDataApi({ postgresUrl: directUrl });
    apis.push(api);
    const client = new RDSDataClient({
      endpoint: api.url,
      region: 'us-east-1',
      credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
      maxAttempts: 1,
    });
    clients.push(client);
    const refused = await client
      .send(
        new ExecuteStatementCommand({
          resourceArn: 'arn:aws:rds:us-east-1:123456789012:cluster:spillway-local',
          secretArn: 'arn:aws:secretsmanager:us-east-1:123456789012:secret:spillway-local',
          sql: 'CREATE TABLE one (id int); CREATE TABLE two (id int)',
        }),
      )
      .catch((e: unknown) => e);
    expect(refused).toMatchObject({
      name: 'DatabaseErrorException',
      message: 'ERROR: cannot insert multiple commands into a prepared statement; SQLState: 42601',
    });
    const { rows } = await directPool(directUrl).query(
      "SELECT count(*)::int AS n FROM pg_tables WHERE tablename IN ('one', 'two')",
    );
    expect(rows[0]).toEqual({ n: 0 });
  });

  it('migrate a fresh database to the same schema as through pg, and again to nothing', async () => {
    const viaPg = await services().createDatabase();
    const viaDataApi = await services().createDatabase();

    await runMigrations(directPool(viaPg.url));
    const pool = await dataApiPool(viaDataApi.directUrl);
    const first = await runMigrations(pool);

    expect(first.applied.length).toBeGreaterThan(0);
    const expected = await catalogOf(directPool(viaPg.directUrl));
    expect(expected.columns.length).toBeGreaterThan(0);
    expect(expected.indexes.length).toBeGreaterThan(0);
    expect(await catalogOf(directPool(viaDataApi.directUrl))).toEqual(expected);

    const again = await runMigrations(pool);
    expect(again).toEqual({ applied: [], skipped: first.applied });
  });

  it('moves the versions of spillway.row_versions into the version tables, as through pg', async () => {
    const { directUrl } = await services().createDatabase();
    const direct = directPool(directUrl);
    const pool = await dataApiPool(directUrl);
    // A deployment of before version tables: the migrations, then versions in the single table.
    await runMigrations(pool);
    await direct.query('DROP TABLE spillway."public.source_documents"');
    const [a, b] = [randomUUID(), randomUUID()];
    await direct.query(
      `INSERT INTO spillway.row_versions (table_name, row_key, version, deleted) VALUES
         ('public.source_documents', $1, 10, false), ('public.source_documents', $2, 20, true)`,
      [JSON.stringify([a]), JSON.stringify([b])],
    );
    await runMigrations(pool);
    const moved = await direct.query(
      'SELECT document_uuid::text AS key, version::int, deleted FROM spillway."public.source_documents" ORDER BY version',
    );
    expect(moved.rows).toEqual([
      { key: a, version: 10, deleted: false },
      { key: b, version: 20, deleted: true },
    ]);
    const left = await direct.query('SELECT count(*)::int AS n FROM spillway.row_versions');
    expect(left.rows[0]).toEqual({ n: 0 });
  });
});
