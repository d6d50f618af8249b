/**
 * A synthesized Lambda bundle run the way the Node.js Lambda runtime runs it: in its own Node
 * process, with the bundle directory as the task root and working directory, only the
 * environment given (no inherited variables, no project `node_modules` anywhere above it), the
 * handler module imported by the function's `Handler` setting, and `handler(event, context)`
 * called once per invocation in that warm process. Results cross the process boundary as JSON,
 * failures as the runtime reports them: `{ errorType: error.name, errorMessage, trace }`.
 * For the end-to-end bundle tests (`test/e2e/bundle.test.ts`) and the cold-start benchmark
 * (`bench/cold.ts`).
 */
import { type ChildProcess, spawn } from 'node:child_process';

/** What the runtime reports for a failed invocation. */
export class BundleInvocationError extends Error {
  constructor(
    readonly errorType: string,
    readonly errorMessage: string,
    readonly trace: readonly string[],
  ) {
    super(`${errorType}: ${errorMessage}`);
    this.name = 'BundleInvocationError';
  }
}

export interface BundleOptions {
  /** The bundle directory (the function's unzipped code, `/var/task` in Lambda). */
  readonly directory: string;
  /** The function's `Handler` setting, `<module>.<export>`, e.g. `index.handler`. */
  readonly handler: string;
  readonly functionName: string;
  /** The function's timeout: what `getRemainingTimeInMillis` counts down from. */
  readonly timeoutSeconds: number;
  readonly memorySize: number;
  /** The function's whole environment (nothing of the test process is inherited). */
  readonly environment: Readonly<Record<string, string>>;
}

export interface BundleProcess {
  /** How long importing the handler module took inside the process (Lambda's init phase), in ms. */
  readonly initMs: number;
  /**
   * The CPU time (user and system, all threads) the process spent on that import, in ms: less
   * changed than `initMs` by other processes competing for the CPU.
   */
  readonly initCpuMs: number;
  /** Invokes the handler; rejects with BundleInvocationError when the invocation fails. */
  invoke<T = unknown>(event: unknown): Promise<T>;
  /** Everything the function printed so far (stdout and stderr). */
  output(): string;
  /** Ends the process (SIGTERM, then SIGKILL) and waits for it to exit. */
  stop(): Promise<void>;
}

/**
 * The runtime's part inside the child: resolves the handler as the Node.js runtime does
 * (`<module>.js`, `.mjs` or `.cjs` in the task root), imports it once (init), then serves
 * invocations from the parent over IPC with a Lambda-like context.
 */
const BOOTSTRAP = `
import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

const [root, handlerSetting, functionName, timeoutMs, memorySize] = process.argv.slice(1);
const failure = (error) => ({
  errorType: error instanceof Error ? error.name : typeof error,
  errorMessage: error instanceof Error ? error.message : String(error),
  trace: error instanceof Error && error.stack ? error.stack.split('\\n') : [],
});
try {
  const dot = handlerSetting.lastIndexOf('.');
  const moduleName = handlerSetting.slice(0, dot);
  const exportName = handlerSetting.slice(dot + 1);
  const file = ['.js', '.mjs', '.cjs'].map((ext) => join(root, moduleName + ext)).find(existsSync);
  if (file === undefined) throw new Error('Cannot find module ' + moduleName + ' in ' + root);
  const importStarted = performance.now();
  const cpuStarted = process.cpuUsage();
  const handler = (await import(pathToFileURL(file).href))[exportName];
  const initMs = performance.now() - importStarted;
  const cpu = process.cpuUsage(cpuStarted);
  const initCpuMs = (cpu.user + cpu.system) / 1000;
  if (typeof handler !== 'function') throw new Error(handlerSetting + ' is not a function');
  process.on('message', async ({ id, event }) => {
    const deadline = Date.now() + Number(timeoutMs);
    const context = {
      functionName,
      functionVersion: '$LATEST',
      invokedFunctionArn: 'arn:aws:lambda:us-east-1:123456789012:function:' + functionName,
      memoryLimitInMB: memorySize,
      awsRequestId: randomUUID(),
      logGroupName: '/aws/lambda/' + functionName,
      logStreamName: 'bundle-test',
      callbackWaitsForEmptyEventLoop: true,
      getRemainingTimeInMillis: () => Math.max(0, deadline - Date.now()),
    };
    try {
      const result = await handler(event, context);
      process.send({ id, result: result === undefined ? null : result });
    } catch (error) {
      process.send({ id, error: failure(error) });
    }
  });
  process.send({ ready: true, initMs, initCpuMs });
} catch (error) {
  process.send({ initError: failure(error) });
  process.disconnect();
}
`;

type Reply =
  | { ready: true; initMs: number; initCpuMs: number }
  | { initError: Failure }
  | { id: number; result: unknown }
  | { id: number; error: Failure };
type Failure = { errorType: string; errorMessage: string; trace: string[] };

const running = new Set<ChildProcess>();
process.on('exit', () => {
  for (const child of running) child.kill('SIGKILL');
});

/** Starts the bundle's process and resolves once its handler module is imported (init done). */
export async function startBundle(options: BundleOptions): Promise<BundleProcess> {
  const child = spawn(
    process.execPath,
    [
      '--input-type=module',
      '--eval',
      BOOTSTRAP,
      '--',
      options.directory,
      options.handler,
      options.functionName,
      String(options.timeoutSeconds * 1_000),
      String(options.memorySize),
    ],
    {
      cwd: options.directory,
      env: { ...options.environment },
      stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
    },
  );
  running.add(child);
  let out = '';
  child.stdout?.on('data', (chunk: Buffer) => {
    out += chunk.toString();
  });
  child.stderr?.on('data', (chunk: Buffer) => {
    out += chunk.toString();
  });
  const exited = new Promise<void>((resolve) => {
    child.once('exit', () => {
      running.delete(child);
      resolve();
    });
  });

  const pending = new Map<number, { resolve(v: unknown): void; reject(e: unknown): void }>();
  let nextId = 0;
  const gone = (reason: string) => new Error(`${options.functionName}: ${reason}\n${out}`);
  void exited.then(() => {
    for (const call of pending.values()) call.reject(gone('the process exited mid-invocation'));
    pending.clear();
  });

  const init = await new Promise<{ initMs: number; initCpuMs: number }>((resolve, reject) => {
    child.on('message', (received) => {
      const message = received as Reply;
      if ('ready' in message) return resolve(message);
      if ('initError' in message) {
        const e = message.initError;
        return reject(new BundleInvocationError(e.errorType, e.errorMessage, e.trace));
      }
      const call = pending.get(message.id);
      pending.delete(message.id);
      if ('error' in message) {
        const e = message.error;
        call?.reject(new BundleInvocationError(e.errorType, e.errorMessage, e.trace));
      } else {
        call?.resolve(message.result);
      }
    });
    void exited.then(() => reject(gone('the process exited during init')));
  });

  return {
    initMs: init.initMs,
    initCpuMs: init.initCpuMs,
    invoke<T>(event: unknown): Promise<T> {
      const id = nextId++;
      return new Promise<T>((resolve, reject) => {
        pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
        child.send({ id, event });
      });
    },
    output: () => out,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
      await exited;
      clearTimeout(timer);
    },
  };
}
