/**
 * The local runner (`spillway local`) as a child process (`local/runner-process.ts`), for
 * end-to-end tests that drive it with `@aws-sdk/client-lambda` the way a pipeline would, and kill
 * it with SIGKILL.
 */
import { InvokeCommand, type InvokeCommandOutput, LambdaClient } from '@aws-sdk/client-lambda';
import pg from 'pg';
import { afterAll, beforeAll } from 'vitest';
import { type RunnerProcess, spawnRunner } from '../../local/runner-process.js';
import {
  type CreatedDatabase,
  type Services,
  type TestServicesOptions,
  uniquePrefix,
  useServices,
} from './services.js';

export type { RunnerProcess } from '../../local/runner-process.js';

/**
 * Starts `spillway local` against the given services (`REDIS_URL`, `DATABASE_URL` and any other
 * setting in `env`) on a free port, quiet enough that a failing test's output stays readable,
 * and resolves once it printed its ready line. `command` runs another script instead (with tsx),
 * which must print `ready at <url>` and serve on `PORT`.
 */
export async function startRunnerProcess(
  env: Record<string, string>,
  command?: readonly string[],
): Promise<RunnerProcess> {
  return await spawnRunner({
    env: {
      POWERTOOLS_LOG_LEVEL: 'WARN',
      // Metrics lines on every sync would only bury the logs a failing test prints.
      POWERTOOLS_METRICS_DISABLED: 'true',
      ...env,
    },
    ...(command === undefined ? {} : { command }),
  });
}

/** A Lambda client for the runner: fake credentials, no retries (a retry would hide a failure). */
export function lambdaClient(url: string): LambdaClient {
  return new LambdaClient({
    endpoint: url,
    region: 'us-east-1',
    credentials: { accessKeyId: 'AKIDLOCAL', secretAccessKey: 'local-secret' },
    maxAttempts: 1,
  });
}

export interface LocalRunnerOptions {
  /** Names the file's Redis key prefix (`SPILLWAY_PREFIX`). */
  readonly label: string;
  /** Runner settings beyond `REDIS_URL`, `DATABASE_URL` and `SPILLWAY_PREFIX`, which are set here. */
  readonly env?: Record<string, string>;
  /** Passed to `useServices`. */
  readonly services?: TestServicesOptions;
  /**
   * Whether `beforeAll` starts a runner (`runner`, `lambda`); without one, tests start their own
   * with `startRunner`.
   * @default true
   */
  readonly start?: boolean;
}

/** What `useLocalRunner` sets up; every field is there inside tests and hooks, once beforeAll ran. */
export interface LocalRunner {
  readonly services: Services;
  readonly database: CreatedDatabase;
  /** Straight to PostgreSQL, for assertions. */
  readonly direct: pg.Pool;
  /** The runner's settings: the services, the prefix and `options.env`. */
  readonly env: Record<string, string>;
  readonly runner: RunnerProcess;
  /** A client of `runner`. */
  readonly lambda: LambdaClient;
  /** Starts another runner with `env` and `overrides`; it is stopped after the file's tests. */
  startRunner(overrides?: Record<string, string>): Promise<RunnerProcess>;
}

/**
 * For vitest files: services, a database, a direct pool to it and (unless `start` is false) a
 * runner with a client, set up in `beforeAll` and closed in `afterAll`.
 */
export function useLocalRunner(options: LocalRunnerOptions): LocalRunner {
  const endpoint = process.env.LAMBDA_ENDPOINT?.trim();
  if (endpoint) return useLambdaEndpoint(endpoint);
  const services = useServices(options.services);
  const runners: RunnerProcess[] = [];
  let state:
    | { database: CreatedDatabase; direct: pg.Pool; env: Record<string, string> }
    | undefined;
  let started: { runner: RunnerProcess; lambda: LambdaClient } | undefined;

  const ready = () => {
    if (state === undefined) {
      throw new Error(
        'useLocalRunner(): the fields exist inside tests and hooks, once beforeAll ran',
      );
    }
    return state;
  };
  const startRunner = async (overrides: Record<string, string> = {}) => {
    const runner = await startRunnerProcess({ ...ready().env, ...overrides });
    runners.push(runner);
    return runner;
  };

  beforeAll(async () => {
    const database = await services().createDatabase();
    const direct = new pg.Pool({ connectionString: database.directUrl, max: 2 });
    direct.on('error', () => {
      // A test killed PostgreSQL under an idle connection; the pool replaces it.
    });
    const env = {
      REDIS_URL: services().redis.url,
      DATABASE_URL: database.url,
      SPILLWAY_PREFIX: uniquePrefix(options.label),
      ...options.env,
    };
    state = { database, direct, env };
    if (options.start ?? true) {
      const runner = await startRunner();
      started = { runner, lambda: lambdaClient(runner.url) };
    }
  });

  afterAll(async () => {
    started?.lambda.destroy();
    // A runner a test killed has exited already; stopping it again resolves at once.
    await Promise.allSettled(runners.map((runner) => runner.stop()));
    await state?.direct.end();
  });

  const runnerStarted = () => {
    if (started === undefined) {
      throw new Error(
        'useLocalRunner(): no runner was started (start: false, or before beforeAll)',
      );
    }
    return started;
  };
  return {
    get services() {
      return services();
    },
    get database() {
      return ready().database;
    },
    get direct() {
      return ready().direct;
    },
    get env() {
      return ready().env;
    },
    get runner() {
      return runnerStarted().runner;
    },
    get lambda() {
      return runnerStarted().lambda;
    },
    startRunner,
  };
}

/**
 * With `LAMBDA_ENDPOINT` set (`npm run test:localstack`): no services and no runner; `lambda`
 * talks to that endpoint, whose functions are named by their logical names, and `direct` to
 * `LAMBDA_DATABASE_URL`, the database behind them. Only what a test of deployed functions can use
 * is there.
 */
function useLambdaEndpoint(endpoint: string): LocalRunner {
  let state: { direct: pg.Pool; lambda: LambdaClient } | undefined;
  beforeAll(() => {
    const url = process.env.LAMBDA_DATABASE_URL?.trim();
    if (!url) throw new Error('LAMBDA_ENDPOINT is set: set LAMBDA_DATABASE_URL too');
    state = {
      direct: new pg.Pool({ connectionString: url, max: 2 }),
      lambda: lambdaClient(endpoint),
    };
  });
  afterAll(async () => {
    state?.lambda.destroy();
    await state?.direct.end();
  });
  const ready = () => {
    if (state === undefined) throw new Error('useLocalRunner(): inside tests and hooks only');
    return state;
  };
  const absent = (what: string): never => {
    throw new Error(`useLocalRunner(): no ${what} with LAMBDA_ENDPOINT set`);
  };
  return {
    get services() {
      return absent('services');
    },
    get database() {
      return absent('database');
    },
    get direct() {
      return ready().direct;
    },
    get env() {
      return absent('runner settings');
    },
    get runner() {
      return absent('runner');
    },
    get lambda() {
      return ready().lambda;
    },
    startRunner: async () => absent('runner'),
  };
}

export interface Invocation {
  readonly statusCode: number | undefined;
  /** 'Unhandled' when the function failed. */
  readonly functionError: string | undefined;
  /** The payload, parsed; undefined when there is none (Event). */
  readonly payload: unknown;
  readonly raw: InvokeCommandOutput;
}

/** Invokes a function and parses its payload. */
export async function invoke(
  client: LambdaClient,
  functionName: string,
  payload: unknown,
  invocationType: 'RequestResponse' | 'Event' | 'DryRun' = 'RequestResponse',
): Promise<Invocation> {
  const raw = await client.send(
    new InvokeCommand({
      FunctionName: functionName,
      InvocationType: invocationType,
      Payload: new TextEncoder().encode(JSON.stringify(payload)),
    }),
  );
  const text = new TextDecoder().decode(raw.Payload ?? new Uint8Array());
  return {
    statusCode: raw.StatusCode,
    functionError: raw.FunctionError,
    payload: text === '' ? undefined : JSON.parse(text),
    raw,
  };
}

/** Invokes a function that must succeed; returns its result. */
export async function call<T = Record<string, unknown>>(
  client: LambdaClient,
  functionName: string,
  payload: unknown,
): Promise<T> {
  const result = await invoke(client, functionName, payload);
  if (result.functionError !== undefined) {
    throw new Error(`${functionName} failed: ${JSON.stringify(result.payload)}`);
  }
  return result.payload as T;
}

/** Polls `check` until it returns true, or fails after `timeoutMs` with `what`. */
export async function eventually(
  what: string,
  check: () => Promise<boolean>,
  timeoutMs = 20_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
