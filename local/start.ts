/**
 * `spillway local`: Spillway on one machine. Uses `REDIS_URL` and `DATABASE_URL` when they are
 * set; starts its own redis-server and PostgreSQL (behind PgBouncer in transaction mode, as RDS
 * Proxy is in AWS) for whichever is not, keeping their data in a folder so that the next start
 * finds it. Then it applies the migrations, serves every function on the Lambda invoke API and
 * invokes `sync` on a timer, as EventBridge Scheduler does in AWS.
 *
 * With `SINK=data-api` the functions reach the database through the RDS Data API instead: unless
 * `DATA_API_ENDPOINT` is set, it starts the local stand-in (`data-api/server.ts`) over that
 * database and points the functions at it, with placeholder cluster and secret ARNs
 * (`LOCAL_DATA_API`) unless they are set.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { closeContainer, configureContainer } from '../lambdas/runtime/container.js';
import { type LocalDataApi, startLocalDataApi } from './data-api/server.js';
import { localFunctions } from './functions.js';
import { type Runner, startRunner } from './runner.js';
import { type Services, startServices } from './services/index.js';

/** Ports of the services `spillway local` starts: next to, never on, the standard ones. */
export const LOCAL_PORTS = { redis: 16379, postgres: 15432, pgbouncer: 16432 } as const;
/** The database the local runner creates and uses. */
export const LOCAL_DATABASE = 'spillway';
/**
 * What the functions are told about Aurora with `SINK=data-api` and the local stand-in: ARNs of
 * the right shape that name nothing (account 000000000000); the stand-in checks neither.
 */
export const LOCAL_DATA_API = {
  resourceArn: 'arn:aws:rds:us-east-1:000000000000:cluster:spillway-local',
  secretArn: 'arn:aws:secretsmanager:us-east-1:000000000000:secret:spillway-local',
} as const;

export interface LocalOptions {
  /** Where the invoke API listens; 0 picks a free port. @default 3001 */
  readonly port?: number;
  /** Pause between two `sync` invocations. @default 1_000 */
  readonly syncIntervalMs?: number;
  /** Timeout of each `sync` invocation. @default 60_000 */
  readonly syncTimeoutMs?: number;
  /** Where the services it starts keep their data. @default '.local' */
  readonly dataDir?: string;
  /** Ports of the services it starts. @default LOCAL_PORTS */
  readonly servicePorts?: {
    readonly redis?: number;
    readonly postgres?: number;
    readonly pgbouncer?: number;
  };
  /**
   * `REDIS_URL` and `DATABASE_URL` to use instead of starting services, and `SINK` with the
   * `DATA_API_*` settings. @default process.env
   */
  readonly env?: Readonly<Record<string, string | undefined>>;
  /** Connections of the shared pool: the runner serves invocations concurrently. @default 10 */
  readonly poolSize?: number;
}

export interface LocalSpillway {
  readonly runner: Runner;
  /** The invoke API endpoint, e.g. `http://127.0.0.1:3001`. */
  readonly url: string;
  readonly redisUrl: string;
  /** Through PgBouncer when the runner started PostgreSQL itself. */
  readonly databaseUrl: string;
  /** Straight to PostgreSQL, when the runner started it (for inspection). */
  readonly directDatabaseUrl: string | undefined;
  /** The Data API stand-in it started (`SINK=data-api` without `DATA_API_ENDPOINT`), if any. */
  readonly dataApiUrl: string | undefined;
  /** The services it started, if any. */
  readonly services: Services | undefined;
  /**
   * Stops the schedule, lets invocations in flight finish (a drain stops after its current step),
   * closes the clients and stops the services it started. Acknowledged writes are in Redis,
   * which is stopped gracefully with its append-only file.
   */
  stop(): Promise<void>;
}

export async function startLocal(options: LocalOptions = {}): Promise<LocalSpillway> {
  const env = options.env ?? process.env;
  const givenRedis = env.REDIS_URL?.trim() || undefined;
  const givenDatabase = env.DATABASE_URL?.trim() || undefined;
  const services =
    givenRedis !== undefined && givenDatabase !== undefined
      ? undefined
      : await startServices({
          dataDir: options.dataDir ?? '.local',
          ports: options.servicePorts ?? LOCAL_PORTS,
          redis: givenRedis === undefined ? { appendOnly: true } : false,
          postgres: givenDatabase === undefined,
        });

  let runner: Runner | undefined;
  let schedule: Schedule | undefined;
  let dataApi: LocalDataApi | undefined;
  const stop = async () => {
    schedule?.abort();
    // Closing the runner also tells a sync in flight that its time is up.
    await runner?.close();
    await schedule?.finished;
    await closeContainer();
    await dataApi?.close();
    await services?.stop();
  };

  try {
    const redisUrl = givenRedis ?? services?.redis.url;
    let databaseUrl = givenDatabase;
    let directDatabaseUrl: string | undefined;
    if (databaseUrl === undefined && services !== undefined) {
      await ensureDatabase(services.postgres.url, LOCAL_DATABASE);
      databaseUrl = withDatabase(services.pgbouncer.url, LOCAL_DATABASE);
      directDatabaseUrl = withDatabase(services.postgres.url, LOCAL_DATABASE);
    }
    if (redisUrl === undefined || databaseUrl === undefined) throw new Error('unreachable');
    // The handlers read their configuration from the environment, as in Lambda.
    process.env.REDIS_URL = redisUrl;
    process.env.DATABASE_URL = databaseUrl;
    if (env.SINK?.trim() === 'data-api' && !env.DATA_API_ENDPOINT?.trim()) {
      // Straight to PostgreSQL when it can: the stand-in cancels a statement past its time by
      // the backend's pid, which PgBouncer would hide.
      const postgresUrl = directDatabaseUrl ?? databaseUrl;
      dataApi = await startLocalDataApi({ postgresUrl });
      Object.assign(process.env, {
        SINK: 'data-api',
        DATA_API_ENDPOINT: dataApi.url,
        // The client signs for a region even when its endpoint is the stand-in's.
        AWS_REGION: env.AWS_REGION?.trim() || 'us-east-1',
        DATA_API_RESOURCE_ARN: env.DATA_API_RESOURCE_ARN?.trim() || LOCAL_DATA_API.resourceArn,
        DATA_API_SECRET_ARN: env.DATA_API_SECRET_ARN?.trim() || LOCAL_DATA_API.secretArn,
        DATA_API_DATABASE: env.DATA_API_DATABASE?.trim() || new URL(postgresUrl).pathname.slice(1),
      });
    }
    configureContainer({ poolSize: options.poolSize ?? 10 });

    runner = await startRunner({
      functions: localFunctions({ syncTimeoutMs: options.syncTimeoutMs ?? 60_000 }),
      port: options.port ?? 3001,
    });
    const migrated = await runner.invoke('migrate', {});
    if (!migrated.ok) {
      throw new Error(`migrations failed: ${migrated.errorType}: ${migrated.errorMessage}`);
    }
    schedule = scheduleSync(runner, options.syncIntervalMs ?? 1_000);
    const url = runner.url;
    return {
      runner,
      url,
      redisUrl,
      databaseUrl,
      directDatabaseUrl,
      dataApiUrl: dataApi?.url,
      services,
      stop,
    };
  } catch (error) {
    await stop();
    throw error;
  }
}

/**
 * Invokes `sync` `intervalMs` after start, then `intervalMs` after each invocation ended: never
 * two at once, as reserved concurrency 1 ensures in AWS.
 */
function scheduleSync(runner: Runner, intervalMs: number): Schedule {
  const abort = new AbortController();
  const finished = (async () => {
    for (;;) {
      await sleep(intervalMs, undefined, { signal: abort.signal }).catch(() => undefined);
      if (abort.signal.aborted) return;
      // The handler logs its own failures; an outage only delays the next drain.
      await runner.invoke('sync', {});
    }
  })();
  return { abort: () => abort.abort(), finished };
}

interface Schedule {
  /** No further invocation starts. */
  abort(): void;
  /** Resolves once the invocation in flight, if any, ended. */
  readonly finished: Promise<void>;
}

/** Creates the database unless it exists. */
async function ensureDatabase(serverUrl: string, name: string): Promise<void> {
  const client = new pg.Client({ connectionString: serverUrl });
  await client.connect();
  try {
    const found = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [name]);
    // The name is a constant of ours ([a-z]), so it needs no quoting.
    if (found.rowCount === 0) await client.query(`CREATE DATABASE ${name}`);
  } finally {
    await client.end();
  }
}

function withDatabase(url: string, database: string): string {
  const parsed = new URL(url);
  parsed.pathname = `/${database}`;
  return parsed.toString();
}
