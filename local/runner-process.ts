/**
 * The local runner as a child process: `spillway local` (or another script that serves on `PORT`
 * and prints `ready at <url>`), run with tsx, for the end-to-end tests
 * (`test/support/local-runner.ts`) and the demo (`scripts/demo.ts`), which drive it with
 * `@aws-sdk/client-lambda` the way a pipeline would and may kill it with SIGKILL.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { fileURLToPath } from 'node:url';

const CLI = fileURLToPath(new URL('../bin/spillway.ts', import.meta.url));
/** How much of the runner's output an error about its start quotes. */
const OUTPUT_TAIL_CHARS = 16_384;

export interface SpawnRunnerOptions {
  /**
   * The runner's environment (`REDIS_URL`, `DATABASE_URL`, `PORT`, any setting); only `PATH` and
   * `HOME` are taken from this process. `PORT` defaults to '0': a free port, which the ready line
   * reports.
   */
  readonly env?: Readonly<Record<string, string>>;
  /** Script and arguments, run with tsx. @default ['bin/spillway.ts', 'local'] */
  readonly command?: readonly string[];
  /** Where the runner's stdout and stderr are written too (the file is replaced). */
  readonly logPath?: string;
  /** How long it may take to print its ready line. @default 30_000 */
  readonly readyTimeoutMs?: number;
}

export interface RunnerProcess {
  /** `http://127.0.0.1:<port>`, from its ready line. */
  readonly url: string;
  /** SIGTERM, then waits for a clean exit; resolves with the exit code. */
  stop(): Promise<number | null>;
  /** SIGKILL: no shutdown at all. Resolves once the process is gone. */
  kill(): Promise<void>;
}

/** Runners of this process still running: killed if it exits without stopping them. */
const running = new Set<ChildProcess>();
let exitHookInstalled = false;

/**
 * Starts the runner and resolves once it printed `ready at <url>`. Rejects, with the end of its
 * output, when it exits before that or does not get there within `readyTimeoutMs` (then it is
 * killed).
 */
export async function spawnRunner(options: SpawnRunnerOptions = {}): Promise<RunnerProcess> {
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    process.on('exit', () => {
      for (const child of running) child.kill('SIGKILL');
    });
  }
  const readyTimeoutMs = options.readyTimeoutMs ?? 30_000;
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', ...(options.command ?? [CLI, 'local'])],
    {
      env: {
        PATH: process.env.PATH ?? '/usr/bin:/bin',
        HOME: process.env.HOME ?? '/tmp',
        PORT: '0',
        ...options.env,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  running.add(child);
  const exited = new Promise<string>((resolve) => {
    child.once('exit', (code, signal) => {
      running.delete(child);
      resolve(signal === null ? `code ${code}` : `signal ${signal}`);
    });
  });
  const exitCode = async () => {
    await exited;
    return child.exitCode;
  };
  if (options.logPath !== undefined) {
    const log = createWriteStream(options.logPath);
    child.stdout?.pipe(log);
    child.stderr?.pipe(log);
  }
  let output = '';
  const record = (chunk: Buffer) => {
    output = (output + chunk.toString()).slice(-OUTPUT_TAIL_CHARS);
  };
  child.stderr?.on('data', record);

  const url = await new Promise<string>((resolve, reject) => {
    const fail = (reason: string) => {
      clearTimeout(timer);
      child.stdout?.off('data', onStdout);
      const log = options.logPath === undefined ? '' : ` (its log: ${options.logPath})`;
      reject(new Error(`the local runner ${reason}${log}; its output:\n${output || '(none)'}`));
    };
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      fail(`did not get ready within ${readyTimeoutMs} ms`);
    }, readyTimeoutMs);
    let stdout = '';
    const onStdout = (chunk: Buffer) => {
      stdout += chunk.toString();
      const match = /ready at (http:\/\/\S+)/.exec(stdout);
      if (match?.[1] === undefined) return;
      clearTimeout(timer);
      child.stdout?.off('data', onStdout);
      resolve(match[1]);
    };
    child.stdout?.on('data', record);
    child.stdout?.on('data', onStdout);
    void exited.then((how) => fail(`exited (${how}) before it was ready`));
  });

  return {
    url,
    stop: async () => {
      child.kill('SIGTERM');
      return await exitCode();
    },
    kill: async () => {
      child.kill('SIGKILL');
      await exited;
    },
  };
}
