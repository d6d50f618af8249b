/**
 * `spawnRunner` (local/runner-process.ts), what the end-to-end tests and the demo start the local
 * runner with: it resolves with the URL of a runner that serves, and when the runner exits or
 * hangs before its ready line it fails with a message that says so and quotes the runner.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { spawnRunner } from '../../local/runner-process.js';
import { invoke, lambdaClient } from '../support/local-runner.js';

const FUNCTIONS = fileURLToPath(new URL('../support/failing-functions.ts', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'spillway-runner-process-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Whether a process with this pid runs (a zombie counts as gone). */
function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return !/^\S+ \(.*\) [ZX] /.test(stat);
  } catch {
    return false;
  }
}

describe('spawnRunner', () => {
  it('resolves with the URL of a runner that serves, and stop() ends it cleanly', async () => {
    const runner = await spawnRunner({ command: [FUNCTIONS] });
    expect(runner.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    const lambda = lambdaClient(runner.url);
    try {
      const echo = await invoke(lambda, 'echo', { hello: 'runner' });
      expect(echo).toMatchObject({ functionError: undefined, payload: { hello: 'runner' } });
    } finally {
      lambda.destroy();
    }
    expect(await runner.stop()).toBe(0);
  });

  it('fails with the exit code and the runner error when spillway local exits before it is ready', async () => {
    const logPath = join(dir, 'bad-port.log');
    const started = spawnRunner({
      // Checked before anything connects: the runner exits at once.
      env: {
        PORT: 'not-a-port',
        REDIS_URL: 'redis://127.0.0.1:1',
        DATABASE_URL: 'postgres://127.0.0.1:1/none',
      },
      logPath,
    });
    await expect(started).rejects.toThrow(
      new RegExp(
        `^the local runner exited \\(code 1\\) before it was ready \\(its log: ${logPath}\\); its output:\\n.*ConfigError: PORT: must be a non-negative integer, got 'not-a-port'`,
        's',
      ),
    );
    expect(readFileSync(logPath, 'utf8')).toContain(
      "ConfigError: PORT: must be a non-negative integer, got 'not-a-port'",
    );
  });

  it('kills a runner that prints no ready line in time, and says how long it waited', async () => {
    const started = spawnRunner({
      command: ['-e', "console.log('pid', process.pid); setInterval(() => {}, 1000);"],
      readyTimeoutMs: 3_000,
    });
    const error = await started.then(
      () => undefined,
      (reason: unknown) => reason,
    );
    expect(error).toBeInstanceOf(Error);
    const message = (error as Error).message;
    expect(message).toMatch(
      /^the local runner did not get ready within 3000 ms; its output:\npid \d+/,
    );
    const pid = Number(/pid (\d+)/.exec(message)?.[1]);
    // SIGKILL is delivered at once; the process may take a moment to be gone.
    const deadline = Date.now() + 5_000;
    while (alive(pid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    expect(alive(pid)).toBe(false);
  });
});
