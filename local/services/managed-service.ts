/**
 * One service as a handle: started on a free port (another one if it was grabbed meanwhile) or
 * a given one, ready once it answers, killed, stopped and restarted on the same port.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { freePort, releasePort } from './ports.js';
import {
  killTree,
  type LaunchSpec,
  type Running,
  signal,
  signalTree,
  spawnService,
  untilExit,
} from './processes.js';
import { logTail, ServiceStartError } from './start-error.js';
import type { ServiceHandle } from './types.js';

/** How long a service may take to answer after it was spawned. */
export const READY_TIMEOUT_MS = 20_000;
const READY_POLL_MS = 25;
/** How long a graceful stop may take before SIGKILL. */
const STOP_TIMEOUT_MS = 10_000;

export interface ManagedServiceOptions {
  readonly name: string;
  /** How to run the service on a port; called for every (re)start. */
  readonly launch: (port: number) => LaunchSpec;
  readonly urlFor: (port: number) => string;
  /** Called whenever the service's process starts or exits. */
  readonly onChange: () => void;
  /** Runs after every start once the service answers, before start or restart resolves. */
  readonly afterStart?: () => Promise<void>;
}

export class ManagedService implements ServiceHandle {
  readonly name: string;
  readonly #options: ManagedServiceOptions;
  #port: number | undefined;
  /** The port came from `freePort`, so `releasePort` gives it back once the service is gone. */
  #portReserved = false;
  #running: Running | undefined;
  /**
   * A spawn in flight, until its process is `#running` or killed: a process exists before
   * `spawnService` resolves, and kill() and stop() must not miss it.
   */
  #launching: Promise<unknown> | undefined;
  /** Set by Services.stop(): a restart still in flight must not start anything after it. */
  #closed = false;

  constructor(options: ManagedServiceOptions) {
    this.name = options.name;
    this.#options = options;
  }

  get port(): number {
    if (this.#port === undefined) throw new Error(`${this.name} has not been started`);
    return this.#port;
  }

  get url(): string {
    return this.#options.urlFor(this.port);
  }

  /** Process group of the running service, if any. */
  get pid(): number | undefined {
    return this.#running?.pid;
  }

  /** First start: on `port` when given, else on a free port (another if one was grabbed meanwhile). */
  async firstStart(port: number | undefined): Promise<void> {
    if (port !== undefined) {
      await this.#start(port);
      return;
    }
    for (let attempt = 1; ; attempt += 1) {
      const port = await freePort();
      try {
        await this.#start(port);
        this.#portReserved = true;
        return;
      } catch (error) {
        await releasePort(port);
        if (!(error instanceof ServiceStartError && error.portInUse) || attempt >= 5) throw error;
      }
    }
  }

  async kill(): Promise<void> {
    await this.#untilLaunched();
    const running = this.#running;
    if (running !== undefined) await killTree(running);
  }

  async stop(): Promise<void> {
    await this.#untilLaunched();
    const running = this.#running;
    if (running === undefined) return;
    signal(running.pid, running.spec.stopSignal);
    if (!(await untilExit(running, STOP_TIMEOUT_MS))) await killTree(running);
  }

  async restart(): Promise<void> {
    await this.stop();
    await this.#start(this.port);
  }

  /** No more starts from now on; what runs keeps running until killed. */
  close(): void {
    this.#closed = true;
  }

  /** Gives a port from `freePort` back; only once the service is gone for good. */
  async releaseFreePort(): Promise<void> {
    if (!this.#portReserved || this.#port === undefined) return;
    this.#portReserved = false;
    await releasePort(this.#port);
  }

  /** For the process 'exit' hook: SIGKILL without waiting; returns the pids to wait for. */
  killSync(): number[] {
    this.#closed = true;
    const pid = this.#running?.pid;
    return pid === undefined ? [] : signalTree(pid);
  }

  async #start(port: number): Promise<void> {
    if (this.#running !== undefined) throw new Error(`${this.name} is already running`);
    if (this.#closed) throw new Error(`${this.name}: the services were stopped`);
    const spec = this.#options.launch(port);
    const launching = this.#launch(spec);
    this.#launching = launching;
    let running: Running;
    try {
      running = await launching;
    } finally {
      if (this.#launching === launching) this.#launching = undefined;
    }

    const where = `${this.name} on 127.0.0.1:${port}`;
    const deadline = Date.now() + READY_TIMEOUT_MS;
    for (;;) {
      if (this.#closed) throw new Error(`${this.name}: the services were stopped while it started`);
      if (running.exitDescription !== undefined) {
        await killTree(running);
        throw startError(where, `exited (${running.exitDescription}) before answering`, spec);
      }
      if (await spec.answers(running.pid)) break;
      if (Date.now() >= deadline) {
        await killTree(running);
        throw startError(where, `did not answer within ${READY_TIMEOUT_MS / 1000} s`, spec);
      }
      await sleep(READY_POLL_MS);
    }
    this.#port = port;
    await this.#options.afterStart?.();
  }

  /** Spawns the service and makes it `#running`, unless the services were stopped meanwhile. */
  async #launch(spec: LaunchSpec): Promise<Running> {
    const running = await spawnService(spec);
    if (this.#closed) {
      await killTree(running);
      throw new Error(`${this.name}: the services were stopped while it started`);
    }
    this.#running = running;
    running.child.once('exit', () => {
      if (this.#running === running) this.#running = undefined;
      this.#options.onChange();
    });
    this.#options.onChange();
    return running;
  }

  /** Waits for a spawn in flight to settle; its failure is for `#start` to report. */
  async #untilLaunched(): Promise<void> {
    await Promise.allSettled([this.#launching]);
  }
}

function startError(where: string, reason: string, spec: LaunchSpec): ServiceStartError {
  return new ServiceStartError(where, reason, spec.logPath, logTail(spec.logPath));
}
