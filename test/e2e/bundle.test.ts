/**
 * The bundles `cdk synth` produces, run as Lambda runs them. The stack is synthesized once with
 * esbuild; each function's code directory is found the way a deployment finds it (the template's
 * `Code.S3Key` → the assembly's asset manifest → the directory it zips), and runs in its own Node
 * process with that directory as task root and working directory, the function's own
 * environment from the template (AWS endpoints swapped for the harness's Redis and PgBouncer),
 * and nothing of this project's `node_modules` reachable. This proves what the template tests
 * cannot: that the ESM bundles load (the `require` banner, pg, ioredis, the Powertools), find
 * their Lua scripts beside `import.meta.url` and their SQL under `MIGRATIONS_DIR`, parse on this
 * Node.js although esbuild targets a newer one, and keep the contract across the process edge.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, parse } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PROJECT_ROOT } from '../../lib/function.js';
import { MIGRATIONS_SOURCE } from '../../lib/migrations.js';
import { FUNCTION_NAMES, type FunctionName } from '../../lib/spillway-stack.js';
import {
  BundleInvocationError,
  type BundleProcess,
  startBundle,
} from '../../local/lambda-bundle.js';
import { logicalIdOf, resourcesOfType, type Synthesized, synthesize } from '../infra/support.js';
import { type CreatedDatabase, uniquePrefix, useServices } from '../support/services.js';

const services = useServices();
let s: Synthesized;
let database: CreatedDatabase;
let direct: pg.Pool;
const prefix = uniquePrefix('e2e-bundle');

beforeAll(async () => {
  // Synthesis with bundling: esbuild for every function, as `cdk synth` does (~25 s).
  s = synthesize();
  database = await services().createDatabase();
  direct = new pg.Pool({ connectionString: database.directUrl, max: 1 });
}, 180_000);

const started = new Map<FunctionName, Promise<BundleProcess>>();
afterAll(async () => {
  await Promise.allSettled([...started.values()].map(async (b) => (await b).stop()));
  await direct?.end();
});

/** Where Lambda unpacks the code; paths under it in the environment point into the bundle. */
const TASK_ROOT = '/var/task';
/** Variables that locate ElastiCache and RDS Proxy; the harness's URLs stand in for them. */
const AWS_ENDPOINT_VARIABLES = new Set([
  'REDIS_HOST',
  'REDIS_PORT',
  'REDIS_TLS',
  'REDIS_AUTH_SECRET_ARN',
  'DB_HOST',
  'DB_PORT',
  'DB_NAME',
  'DB_USER',
  'DB_IAM_AUTH',
]);

interface FunctionResource {
  readonly Handler: string;
  readonly Runtime: string;
  readonly Timeout: number;
  readonly MemorySize: number;
  readonly Code: { readonly S3Key: string };
  readonly Environment: { readonly Variables: Readonly<Record<string, unknown>> };
}

function functionResource(name: FunctionName): FunctionResource {
  const id = logicalIdOf(s.stack, s.stack.functions[name]);
  const resource = resourcesOfType(s.template, 'AWS::Lambda::Function')[id];
  if (!resource?.Properties) throw new Error(`the template has no function ${name} (${id})`);
  return resource.Properties as unknown as FunctionResource;
}

/** The directory the deployment zips into the object the template's `Code.S3Key` names. */
function bundleDirectory(name: FunctionName): string {
  const key = functionResource(name).Code.S3Key;
  const assembly = s.app.synth();
  const manifest = assembly
    .getStackArtifact(s.stack.artifactId)
    .dependencies.find((artifact) => artifact.manifest.type === 'cdk:asset-manifest');
  const file = (manifest?.manifest.properties as { file?: string } | undefined)?.file;
  if (file === undefined) throw new Error(`the assembly has no asset manifest for ${name}`);
  const assets = JSON.parse(readFileSync(join(assembly.directory, file), 'utf8')) as {
    files: Record<
      string,
      {
        source: { path: string; packaging?: string };
        destinations: Record<string, { objectKey: string }>;
      }
    >;
  };
  const asset = Object.values(assets.files).find((entry) =>
    Object.values(entry.destinations).some((d) => d.objectKey === key),
  );
  if (asset === undefined) throw new Error(`no asset of ${name} is published as ${key}`);
  expect(asset.source.packaging).toBe('zip');
  return join(assembly.directory, asset.source.path);
}

/**
 * The function's environment as Lambda sets it: the runtime's own variables, then the
 * template's, with the AWS endpoints replaced by the harness's services (`DATABASE_URL` only for
 * functions the template gives a database).
 */
function lambdaEnvironment(name: FunctionName, directory: string): Record<string, string> {
  const fn = functionResource(name);
  const env: Record<string, string> = {
    PATH: '/usr/local/bin:/usr/bin:/bin',
    LANG: 'en_US.UTF-8',
    TZ: ':UTC',
    LAMBDA_TASK_ROOT: directory,
    AWS_EXECUTION_ENV: `AWS_Lambda_${fn.Runtime}`,
    AWS_REGION: 'us-east-1',
    AWS_DEFAULT_REGION: 'us-east-1',
    AWS_LAMBDA_FUNCTION_NAME: name,
    AWS_LAMBDA_FUNCTION_VERSION: '$LATEST',
    AWS_LAMBDA_FUNCTION_MEMORY_SIZE: String(fn.MemorySize),
  };
  let reachesDatabase = false;
  for (const [variable, value] of Object.entries(fn.Environment.Variables)) {
    if (AWS_ENDPOINT_VARIABLES.has(variable)) {
      reachesDatabase ||= variable === 'DB_HOST';
      continue;
    }
    if (typeof value !== 'string') {
      throw new Error(`${name}: ${variable} is not a literal in the template; map it here`);
    }
    env[variable] = value.startsWith(`${TASK_ROOT}/`)
      ? join(directory, value.slice(TASK_ROOT.length + 1))
      : value;
  }
  env.REDIS_URL = services().redis.url;
  if (reachesDatabase) env.DATABASE_URL = database.url;
  env.SPILLWAY_PREFIX = prefix;
  // The harness's Redis has no replica to confirm a write.
  env.REDIS_REPLICA_ACKS = '0';
  // sync returns once the backlog is empty instead of idling for new work.
  env.SYNC_IDLE_WAIT_MS = '0';
  env.POWERTOOLS_LOG_LEVEL = 'WARN';
  return env;
}

/** The function's bundle in its own process, started (imported) on first use, then kept warm. */
function bundle(name: FunctionName): Promise<BundleProcess> {
  let running = started.get(name);
  if (running === undefined) {
    const directory = bundleDirectory(name);
    const fn = functionResource(name);
    running = startBundle({
      directory,
      handler: fn.Handler,
      functionName: name,
      timeoutSeconds: fn.Timeout,
      memorySize: fn.MemorySize,
      environment: lambdaEnvironment(name, directory),
    });
    started.set(name, running);
  }
  return running;
}

async function invoke<T = Record<string, unknown>>(name: FunctionName, event: unknown): Promise<T> {
  const b = await bundle(name);
  try {
    return await b.invoke<T>(event);
  } catch (error) {
    if (error instanceof BundleInvocationError && error.errorType !== 'ValidationError') {
      error.message += `\n${error.trace.join('\n')}\n--- ${name} output ---\n${b.output()}`;
    }
    throw error;
  }
}

const DOCUMENT = '8a1d4f3e-5b6c-4d7e-9f80-112233445566';
const CHUNKS = [
  '2c9e1f0a-3b4d-4e5f-8a6b-7c8d9e0f1a2b',
  '3d0f2a1b-4c5e-4f60-9b7c-8d9e0f1a2b3c',
] as const;

const TEXT = [
  'This Settlement Agreement is made on March 3, 2024 between Acme Holdings Inc. and Blue River LLC.',
  'Acme Holdings Inc. shall pay $2,500,000 to Blue River LLC within thirty days.',
  'Notices go to counsel@acme-legal.com or +1 (212) 555-0147.',
  'The parties dismiss Case No. 23-cv-1042 with prejudice.',
].join(' ');

describe('the synthesized bundles, run as Lambda runs them', () => {
  it('every function has its own bundle directory with the handler module and lua/, and no node_modules above it', () => {
    const directories = new Set<string>();
    for (const name of FUNCTION_NAMES) {
      const directory = bundleDirectory(name);
      directories.add(directory);
      expect(functionResource(name).Handler).toBe('index.handler');
      expect(existsSync(join(directory, 'index.mjs'))).toBe(true);
      expect(existsSync(join(directory, 'lua', 'write.lua'))).toBe(true);
      // Nothing outside the bundle may satisfy an import: Lambda has only the bundle.
      for (let d = directory; d !== parse(d).root; d = dirname(d)) {
        expect(existsSync(join(d, 'node_modules')), `${d}/node_modules`).toBe(false);
      }
    }
    expect(directories.size).toBe(FUNCTION_NAMES.length);
    expect(existsSync(join(bundleDirectory('migrate'), 'migrations'))).toBe(true);
  });

  it("every bundle's handler module loads on this Node.js: it parses, resolves its imports and reads its Lua scripts", async () => {
    const results = await Promise.allSettled(FUNCTION_NAMES.map((name) => bundle(name)));
    const failed = results.flatMap((r, i) =>
      r.status === 'rejected' ? [`${FUNCTION_NAMES[i]}: ${String(r.reason)}`] : [],
    );
    expect(failed).toEqual([]);
  });

  it('migrate, given the Create event the custom resource Provider sends, applies the SQL it carries', async () => {
    const migrations = s.stack.migrations.resource;
    const properties = resourcesOfType(s.template, 'Custom::SpillwayMigrations')[
      logicalIdOf(s.stack, migrations)
    ]?.Properties as { MigrationsHash: string } | undefined;
    const serviceToken =
      'arn:aws:lambda:us-east-1:123456789012:function:Spillway-MigrationsProviderframeworkonEvent';
    const event = {
      RequestType: 'Create',
      ServiceToken: serviceToken,
      ResponseURL:
        'https://cloudformation-custom-resource-response-useast1.s3.amazonaws.com/signed',
      StackId:
        'arn:aws:cloudformation:us-east-1:123456789012:stack/Spillway/0f1e2d3c-4b5a-6978-8695-a4b3c2d1e0f9',
      RequestId: '5d1c3e4f-6a7b-4c8d-9e0f-a1b2c3d4e5f6',
      LogicalResourceId: logicalIdOf(s.stack, migrations),
      ResourceType: 'Custom::SpillwayMigrations',
      ResourceProperties: {
        ServiceToken: serviceToken,
        MigrationsHash: properties?.MigrationsHash,
      },
    };
    const ids = readdirSync(join(PROJECT_ROOT, MIGRATIONS_SOURCE))
      .filter((file) => file.endsWith('.sql'))
      .sort()
      .map((file) => file.slice(0, -'.sql'.length));
    expect(ids.length).toBeGreaterThan(0);
    expect(await invoke('migrate', event)).toEqual({
      PhysicalResourceId: 'spillway-migrations',
      Data: { Applied: ids.join(' '), Skipped: '0' },
    });
    const { rows } = await direct.query<{ id: string }>(
      'SELECT id FROM spillway.schema_migrations ORDER BY id',
    );
    expect(rows.map((r) => r.id)).toEqual(ids);

    const updated = await invoke('migrate', {
      ...event,
      RequestType: 'Update',
      PhysicalResourceId: 'spillway-migrations',
      OldResourceProperties: event.ResourceProperties,
    });
    expect(updated).toEqual({
      PhysicalResourceId: 'spillway-migrations',
      Data: { Applied: '', Skipped: String(ids.length) },
    });
  });

  it('write buffers a document with its chunks; read sees it pending; sync drains it; read sees it synced', async () => {
    const written = await invoke<{ accepted: number; changesetId: string }>('write', {
      changes: [
        {
          op: 'upsert',
          table: 'source_documents',
          record: { document_uuid: DOCUMENT, filename: 'lease.pdf', status: 'pending' },
        },
        ...CHUNKS.map((chunk_uuid, chunk_index) => ({
          op: 'upsert',
          table: 'document_chunks',
          record: {
            chunk_uuid,
            document_uuid: DOCUMENT,
            chunk_index,
            text: `part ${chunk_index}`,
          },
        })),
      ],
    });
    expect(written).toEqual({
      accepted: 3,
      changesetId: expect.any(String),
      version: expect.stringMatching(/^\d+-\d+$/),
    });

    const key = { table: 'source_documents', key: { document_uuid: DOCUMENT } };
    expect(await invoke('read', key)).toMatchObject({
      pending: true,
      record: { document_uuid: DOCUMENT, filename: 'lease.pdf', status: 'pending' },
    });

    const synced = await invoke('sync', {});
    expect(synced).toMatchObject({ stoppedBy: 'empty', backlog: 0, deadLettered: 0 });
    expect(synced.applied).toBeGreaterThanOrEqual(3);

    expect(await invoke('read', key)).toMatchObject({
      pending: false,
      record: { document_uuid: DOCUMENT, filename: 'lease.pdf', status: 'pending' },
    });
    const { rows } = await direct.query(
      'SELECT chunk_uuid, chunk_index FROM document_chunks WHERE document_uuid = $1 ORDER BY chunk_index',
      [DOCUMENT],
    );
    expect(rows).toEqual(CHUNKS.map((chunk_uuid, chunk_index) => ({ chunk_uuid, chunk_index })));
  });

  it('health says ok with both dependencies reachable, and admin lists no dead letters', async () => {
    expect(await invoke('health', {})).toMatchObject({
      status: 'ok',
      backlog: 0,
      deadLetters: 0,
      checks: { redis: { ok: true }, database: { ok: true } },
    });
    expect(await invoke('admin', { action: 'list' })).toEqual({
      deadLetters: [],
      nextCursor: null,
    });
  });

  it("process-document's output feeds extract-entities, and sync lands all of it in PostgreSQL", async () => {
    const processed = await invoke<{ document_uuid: string; chunks: { chunk_uuid: string }[] }>(
      'process-document',
      { filename: 'settlement.pdf', content_type: 'application/pdf', text: TEXT },
    );
    expect(processed.chunks.length).toBeGreaterThan(0);
    const extracted = await invoke<{ task_id: string; entities: number; relationships: number }>(
      'extract-entities',
      processed,
    );
    expect(extracted.entities).toBeGreaterThan(5);
    expect(extracted.relationships).toBeGreaterThan(0);

    expect(await invoke('sync', {})).toMatchObject({ backlog: 0, deadLettered: 0 });
    const id = processed.document_uuid;
    const count = async (table: string) =>
      (
        await direct.query<{ n: number }>(
          `SELECT count(*)::int AS n FROM ${table} WHERE document_uuid = $1`,
          [id],
        )
      ).rows[0]?.n;
    const { rows: documents } = await direct.query(
      'SELECT filename, status FROM source_documents WHERE document_uuid = $1',
      [id],
    );
    expect(documents).toEqual([{ filename: 'settlement.pdf', status: 'completed' }]);
    expect(await count('document_chunks')).toBe(processed.chunks.length);
    expect(await count('entity_mentions')).toBe(extracted.entities);
    expect(await count('relationships')).toBe(extracted.relationships);
    const { rows: tasks } = await direct.query(
      'SELECT task_id, status FROM processing_tasks WHERE document_uuid = $1',
      [id],
    );
    expect(tasks).toEqual([{ task_id: extracted.task_id, status: 'succeeded' }]);
  });

  it('a malformed write fails with ValidationError naming the path, as the runtime reports it, and buffers nothing', async () => {
    const failure = await invoke('write', {
      changes: [
        {
          op: 'upsert',
          table: 'source_documents',
          record: { document_uuid: DOCUMENT, filename: 'x.pdf', status: 'pending', page_count: -1 },
        },
      ],
    }).catch((error: unknown) => error);
    expect(failure).toBeInstanceOf(BundleInvocationError);
    const { errorType, errorMessage } = failure as BundleInvocationError;
    expect(errorType).toBe('ValidationError');
    expect(errorMessage).toMatch(/^changes\[0\]\.record\.page_count: /);
    expect(await invoke('health', {})).toMatchObject({ backlog: 0 });
  });

  it("while Redis is gone, write fails with UnavailableError: ioredis's errors keep their names in the bundle", async () => {
    const redis = services().redis;
    await redis.kill();
    try {
      const failure = await invoke('write', {
        changes: [
          {
            op: 'upsert',
            table: 'source_documents',
            record: { document_uuid: DOCUMENT, filename: 'y.pdf', status: 'pending' },
          },
        ],
      }).catch((error: unknown) => error);
      expect(failure).toBeInstanceOf(BundleInvocationError);
      expect(failure).toMatchObject({
        errorType: 'UnavailableError',
        errorMessage: expect.stringMatching(/^redis unavailable: /),
      });
    } finally {
      await redis.restart();
    }
  });
});
