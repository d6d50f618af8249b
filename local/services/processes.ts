/**
 * One spawned service process: how it is launched (detached, its output to a log), how its exit
 * is awaited, and how it and everything it started are killed. Linux's /proc where available.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { closeSync, existsSync, openSync, readdirSync, readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import type { RunAs } from './data-dir.js';

/** How long processes may take to disappear after SIGKILL. */
export const KILL_TIMEOUT_MS = 10_000;

export interface LaunchSpec {
  readonly command: string;
  readonly args: readonly string[];
  readonly runAs: RunAs | undefined;
  readonly cwd: string;
  /** stdout and stderr go here. */
  readonly logPath: string;
  /** Signal for a graceful stop. */
  readonly stopSignal: NodeJS.Signals;
  /**
   * One readiness check: resolves true once this very service answers, the process `pid`
   * started. Anything may answer on a port another process also tried: checking the port alone
   * would take a foreign service for ours, and lose it once its owner kills it.
   */
  answers(pid: number): Promise<boolean>;
}

export interface Running {
  readonly spec: LaunchSpec;
  readonly child: ChildProcess;
  /** Also the process group id: services are spawned detached, as group leaders. */
  readonly pid: number;
  readonly exited: Promise<void>;
  exitDescription: string | undefined;
}

/** What services see of the environment: no PG* or REDIS* variables leaking into them. */
function childEnv(): NodeJS.ProcessEnv {
  return {
    PATH: process.env.PATH ?? '/usr/local/bin:/usr/bin:/bin',
    LANG: 'C',
    LC_ALL: 'C',
    TZ: 'UTC',
  };
}

export async function spawnService(spec: LaunchSpec): Promise<Running> {
  const log = openSync(spec.logPath, 'a');
  let child: ChildProcess;
  try {
    // detached: the service leads its own session and process group, so that a Ctrl-C in the
    // terminal (or vitest killing the worker's group) leaves cleanup to the hooks and the
    // watchdog instead of racing them.
    child = spawn(spec.command, [...spec.args], {
      cwd: spec.cwd,
      env: childEnv(),
      detached: true,
      stdio: ['ignore', log, log],
      uid: spec.runAs?.uid,
      gid: spec.runAs?.gid,
    });
  } finally {
    closeSync(log);
  }
  await new Promise<void>((resolve, reject) => {
    child.once('spawn', resolve);
    child.once('error', reject);
  });
  const pid = child.pid;
  if (pid === undefined) throw new Error(`${spec.command}: spawned without a pid`);
  // A service must not keep the worker alive (the 'exit' hook kills what is left); whoever
  // waits for it to exit does so through untilExit, whose timer keeps the event loop alive.
  child.unref();
  let running: Running;
  const exited = new Promise<void>((resolve) => {
    child.once('exit', (code, signalName) => {
      running.exitDescription = signalName === null ? `code ${code}` : `signal ${signalName}`;
      resolve();
    });
  });
  running = { spec, child, pid, exited, exitDescription: undefined };
  return running;
}

/** Resolves true once the process exited, false after the timeout. */
export function untilExit(running: Running, timeoutMs: number): Promise<boolean> {
  return settlesWithin(running.exited, timeoutMs);
}

/**
 * Resolves true once `done` resolves, false after the timeout. The timer keeps the event loop
 * alive meanwhile: the child processes waited for are unref'd.
 */
export function settlesWithin(done: Promise<void>, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), timeoutMs);
    void done.then(() => {
      clearTimeout(timer);
      resolve(true);
    });
  });
}

/**
 * SIGKILL to the service and everything it started, resolving once all of it is gone.
 * PostgreSQL backends call setsid(), so the process group alone misses them: the service is
 * stopped first (no more forks), then its whole process tree is killed.
 */
export async function killTree(running: Running): Promise<void> {
  // Once reaped, the pid may belong to someone else; the process's orphans, if any, have
  // been reparented out of reach (PostgreSQL backends exit on their own when the postmaster dies).
  if (running.exitDescription !== undefined) return;
  const doomed = signalTree(running.pid);
  if (!(await untilExit(running, KILL_TIMEOUT_MS))) {
    throw new Error(`${running.spec.command} (pid ${running.pid}) did not exit after SIGKILL`);
  }
  const deadline = Date.now() + KILL_TIMEOUT_MS;
  while (doomed.some(isAlive)) {
    if (Date.now() >= deadline) {
      throw new Error(
        `processes ${doomed.filter(isAlive).join(', ')} alive ${KILL_TIMEOUT_MS / 1000} s after SIGKILL`,
      );
    }
    await sleep(10);
  }
}

/** Synchronous part of killTree: the pids it killed, to wait for. */
export function signalTree(pid: number): number[] {
  signal(pid, 'SIGSTOP');
  const doomed = processTree(pid);
  signal(-pid, 'SIGKILL');
  for (const each of doomed) signal(each, 'SIGKILL');
  return doomed;
}

/** process.kill that treats "no such process" as done. Negative pid: the whole group. */
export function signal(pid: number, name: NodeJS.Signals): void {
  try {
    process.kill(pid, name);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ESRCH') throw error;
  }
}

interface ProcStat {
  readonly state: string;
  readonly ppid: number;
}

/** State and parent of a process from /proc (Linux); undefined once it is gone. */
function procStat(pid: number): ProcStat | undefined {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    // Gone (or no /proc).
    return undefined;
  }
  // Fields after "(comm)": state, ppid, ...
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return { state: fields[0] ?? '', ppid: Number(fields[1]) };
}

/** The process and all its descendants. Without /proc, just the process. */
function processTree(root: number): number[] {
  if (!existsSync('/proc/self/stat')) return [root];
  const children = new Map<number, number[]>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const pid = Number(entry);
    const stat = procStat(pid);
    if (stat === undefined) continue;
    children.set(stat.ppid, [...(children.get(stat.ppid) ?? []), pid]);
  }
  const tree = [root];
  for (let i = 0; i < tree.length; i += 1) {
    tree.push(...(children.get(tree[i] ?? -1) ?? []));
  }
  return tree;
}

/**
 * Whether the process still runs. Orphans are reparented to PID 1, which in containers may
 * take its time to reap them: a zombie counts as gone (it holds no port, no shared memory).
 */
export function isAlive(pid: number): boolean {
  if (existsSync('/proc/self/stat')) {
    const state = procStat(pid)?.state;
    return state !== undefined && state !== 'Z' && state !== 'X';
  }
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

export function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}
