/**
 * Cleanup when the process does not call `Services.stop()`, from more to less graceful: a
 * process 'exit' hook (a process that exits without calling it), and a small watchdog shell
 * process that notices when this process is gone (SIGKILL, Ctrl-C) and kills what it left
 * behind.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { isAlive, KILL_TIMEOUT_MS, settlesWithin, signal, sleepSync } from './processes.js';

/** What the 'exit' hook cleans up. */
export interface SyncDestroyable {
  readonly dir: string;
  /** Synchronous, no waiting on the event loop: the process is exiting. */
  destroySync(): void;
}

/** Services whose process 'exit' hook is armed. */
const live = new Set<SyncDestroyable>();
let exitHookInstalled = false;

/** Destroys `services` when the process exits, until `disarmExitHook`. */
export function armExitHook(services: SyncDestroyable): void {
  live.add(services);
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const each of live) {
      try {
        each.destroySync();
      } catch (error) {
        // Throwing here would skip the other instances; the watchdog still runs and retries.
        console.error(`services: cleanup of ${each.dir} failed`, error);
      }
    }
  });
}

export function disarmExitHook(services: SyncDestroyable): void {
  live.delete(services);
}

/**
 * Runs until the given process is gone, then SIGKILLs the process groups listed in <dir>/pids
 * and removes <dir> (unless told to keep it). Catches what the 'exit' hook cannot: SIGKILL, or
 * a signal without handler. A pid is only killed while its working dir is still inside <dir>:
 * pids get reused. A kept data dir survives the SIGKILL: Redis with an append-only file has
 * every acknowledged write on disk, and PostgreSQL recovers from its WAL on the next start.
 */
const WATCHDOG_SCRIPT = `
parent=$1; dir=$2; keep=$3
while kill -0 "$parent" 2>/dev/null; do sleep 1; done
if [ -f "$dir/pids" ]; then
  for pid in $(cat "$dir/pids"); do
    case "$(readlink "/proc/$pid/cwd" 2>/dev/null)" in "$dir"*) kill -9 "-$pid" 2>/dev/null ;; esac
  done
  sleep 1
fi
if [ "$keep" = keep ]; then rm -f "$dir/pids"; else rm -rf "$dir"; fi
`;

/** The watchdog of one services dir: see `WATCHDOG_SCRIPT`. */
export class Watchdog {
  readonly #child: ChildProcess;
  /** Resolves once the watchdog has exited and was reaped: its pid is no longer ours to signal. */
  readonly #exited: Promise<void>;
  #gone = false;

  /** Watches this process; kills the pids listed in `<dir>/pids`, then removes `dir` unless `keep`. */
  constructor(dir: string, keep: boolean) {
    this.#child = spawn(
      '/bin/sh',
      [
        '-c',
        WATCHDOG_SCRIPT,
        'spillway-watchdog',
        String(process.pid),
        dir,
        keep ? 'keep' : 'remove',
      ],
      { detached: true, stdio: 'ignore' },
    );
    this.#exited = new Promise((resolve) => {
      this.#child.once('exit', () => {
        this.#gone = true;
        resolve();
      });
    });
    this.#child.unref();
  }

  /** SIGKILL to the watchdog and its `sleep`, resolving once it is gone. */
  async stop(): Promise<void> {
    const watchdog = this.#kill();
    // SIGKILL is delivered, not done: until the watchdog is gone, its command line names the dir
    // and a caller checking that nothing is left would find it.
    if (watchdog !== undefined && !(await settlesWithin(this.#exited, KILL_TIMEOUT_MS))) {
      throw new Error(`the watchdog (pid ${watchdog}) did not exit after SIGKILL`);
    }
  }

  /** For the 'exit' hook: SIGKILL, then a short wait without the event loop. */
  stopSync(): void {
    const watchdog = this.#kill();
    // Nothing reaps it now: a zombie counts as gone, and names the dir no more.
    const watchdogDeadline = Date.now() + 2_000;
    while (watchdog !== undefined && isAlive(watchdog) && Date.now() < watchdogDeadline) {
      sleepSync(10);
    }
  }

  /** SIGKILL to the watchdog and its `sleep`; returns its pid if it was still running. */
  #kill(): number | undefined {
    const pid = this.#child.pid;
    if (pid === undefined || this.#gone) return undefined;
    signal(-pid, 'SIGKILL');
    return pid;
  }
}
