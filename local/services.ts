/**
 * Redis, PostgreSQL and PgBouncer (transaction mode, standing in for RDS Proxy) on 127.0.0.1, as
 * DESIGN's "Where each AWS part runs locally" lays out: for the tests (`test/support/services.ts`)
 * and for `spillway local` and the demo.
 *
 * By default each call to `startServices` gets its own processes on free ports and its own temp
 * dir, removed again by `stop()`: what integration and fault tests need. With `dataDir` the data
 * lives in that folder instead and survives `stop()`, so that the next start finds it; `ports`
 * pins the ports. Every service can be killed with SIGKILL and restarted on the same port with
 * the same data.
 *
 * Cleanup happens in three places, from most to least graceful: `stop()`; a process 'exit'
 * hook (a process that exits without calling `stop()`); and a small watchdog shell process that
 * notices when this process is gone (SIGKILL, Ctrl-C) and kills what it left behind.
 */
import { type ChildProcess, execFileSync, spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  accessSync,
  chownSync,
  closeSync,
  constants,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { delimiter, join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { freePort, mentionsAddressInUse, releasePort } from './ports.js';

// ---------------------------------------------------------------------------------------------
// Public API
// ---------------------------------------------------------------------------------------------

/** One running service. Its port never changes, so clients can reconnect after a restart. */
export interface ServiceHandle {
  /** TCP port on 127.0.0.1. */
  readonly port: number;
  /** SIGKILL to the service and every process it started; resolves once all of them are gone. */
  kill(): Promise<void>;
  /**
   * Starts the service again on the same port with the same data dir and resolves once it
   * answers. A service that is still running is stopped gracefully first.
   */
  restart(): Promise<void>;
  /** Graceful shutdown (SIGKILL after 10 s); `restart()` brings the service back. */
  stop(): Promise<void>;
}

/**
 * The Redis replica (`redis: { replica: true }`): ElastiCache's replica node, which a failover
 * promotes.
 */
export interface RedisReplicaHandle extends ServiceHandle {
  /** `redis://127.0.0.1:<port>`: read-only until promoted. */
  readonly url: string;
  /**
   * Until `promote()`, whether it follows the primary (`--replicaof`); a (re)start then
   * resolves only once it reports `master_link_status:up`, so it fails while the primary is
   * down.
   */
  readonly following: boolean;
  /**
   * `REPLICAOF NO ONE`: the replica becomes a primary of its own, keeping what it had received,
   * and accepts writes; resolves once it reports `role:master`. From then on `restart()` starts
   * it as a primary too. Kill the old primary (`redis.kill()`) and point clients at this
   * replica's `url` to play ElastiCache's failover, whose primary endpoint moves to the
   * promoted node.
   */
  promote(): Promise<void>;
  /**
   * SIGSTOP: the replica stays connected but neither applies nor confirms anything, as a replica
   * lagging behind; `thaw()` (SIGCONT) lets it catch up. A frozen replica can still be killed.
   */
  freeze(): void;
  thaw(): void;
}

export interface Services {
  /**
   * `redis://127.0.0.1:<port>`, the primary. Restarted without `appendOnly` it comes back empty,
   * and a replica still following it empties too when it syncs again.
   */
  readonly redis: ServiceHandle & { readonly url: string };
  /** Only with `redis: { replica: true }`; `redis` is its primary until it is promoted. */
  readonly redisReplica: RedisReplicaHandle;
  /**
   * `postgres://postgres@127.0.0.1:<port>/postgres`, straight to PostgreSQL (superuser
   * `postgres`, trust auth). Its `restart()` also waits until PgBouncer, if running, reaches
   * PostgreSQL again from every pool.
   */
  readonly postgres: ServiceHandle & { readonly url: string };
  /**
   * `postgres://postgres@127.0.0.1:<port>/postgres`, through PgBouncer in transaction mode.
   * While PostgreSQL is down, a query through PgBouncer fails after at most 5 s
   * (`query_wait_timeout`), or at once once PgBouncer has seen a login fail.
   */
  readonly pgbouncer: ServiceHandle & { readonly url: string };
  /**
   * The dir holding the data and the logs (`redis.log`, `redis-replica.log`, `postgres.log`,
   * `pgbouncer.log`).
   */
  readonly dir: string;
  /**
   * CREATE DATABASE with a fresh unique name; returns URLs for it through PgBouncer (`url`)
   * and direct (`directUrl`). Without PgBouncer, `url` is the direct URL too.
   */
  createDatabase(): Promise<CreatedDatabase>;
  /**
   * Kills every service and removes the temp dir; with `dataDir`, stops every service
   * gracefully and keeps the data. Idempotent.
   */
  stop(): Promise<void>;
}

export interface CreatedDatabase {
  readonly name: string;
  /** Through PgBouncer. */
  readonly url: string;
  /** Straight to PostgreSQL. */
  readonly directUrl: string;
}

export interface RedisServiceOptions {
  /**
   * `--appendonly yes --appendfsync always`, so that every acknowledged write survives a
   * kill -9 of Redis. Otherwise Redis keeps nothing on disk.
   * @default false
   */
  readonly appendOnly?: boolean;
  /**
   * A second redis-server on its own port, `--replicaof` the first, with the same settings
   * (`noeviction`, on disk only with `appendOnly`): see `Services.redisReplica`. The start
   * resolves once it reports `master_link_status:up`.
   * @default false
   */
  readonly replica?: boolean;
}

export interface ServicesOptions {
  /** @default true */
  readonly redis?: boolean | RedisServiceOptions;
  /** @default true */
  readonly postgres?: boolean;
  /** PgBouncer in front of PostgreSQL; needs `postgres`. @default the value of `postgres` */
  readonly pgbouncer?: boolean;
  /**
   * Keep the data (and the logs) in this dir, created if missing, instead of a fresh temp dir:
   * a later start with the same dir finds the same data, and `stop()` keeps it. Pair it with
   * `redis: { appendOnly: true }` for Redis data to survive too.
   * @default a temp dir that `stop()` removes
   */
  readonly dataDir?: string;
  /** Ports to listen on. @default free ports */
  readonly ports?: {
    readonly redis?: number;
    readonly redisReplica?: number;
    readonly postgres?: number;
    readonly pgbouncer?: number;
  };
}

/** A service did not start or did not answer in time; the message ends with its log. */
export class ServiceStartError extends Error {
  override readonly name = 'ServiceStartError';
  readonly service: string;
  readonly logTail: string;
  /** The log says the port was taken: worth another try on another port. */
  readonly portInUse: boolean;

  constructor(service: string, reason: string, logPath: string, logTail: string) {
    super(`${service} ${reason}\n--- last lines of ${logPath} ---\n${logTail || '(empty)'}`);
    this.service = service;
    this.logTail = logTail;
    this.portInUse = mentionsAddressInUse(logTail);
  }
}

/**
 * Starts Redis, PostgreSQL and PgBouncer (all three by default) and waits until each answers.
 * On failure whatever did start is stopped again before the error is thrown.
 */
export async function startServices(options: ServicesOptions = {}): Promise<Services> {
  const plan = planFrom(options);
  const runAs = plan.postgres ? serviceUser() : undefined;
  const dir =
    options.dataDir === undefined ? createTempDir(runAs) : prepareDataDir(options.dataDir, runAs);
  const services = new HarnessServices(dir, plan, runAs);
  const started = await Promise.allSettled([services.startRedis(), services.startPostgres()]);
  const failure = started.find((result) => result.status === 'rejected');
  if (failure !== undefined) {
    await services.stop();
    throw failure.reason;
  }
  return services;
}

// ---------------------------------------------------------------------------------------------
// Timings and names
// ---------------------------------------------------------------------------------------------

/** How long a service may take to answer after it was spawned. */
const READY_TIMEOUT_MS = 20_000;
const READY_POLL_MS = 25;
/** How long a graceful stop may take before SIGKILL. */
const STOP_TIMEOUT_MS = 10_000;
/** How long processes may take to disappear after SIGKILL. */
const KILL_TIMEOUT_MS = 10_000;
const INITDB_TIMEOUT_MS = 60_000;
const LOG_TAIL_LINES = 30;
/** PostgreSQL superuser, and the system user PostgreSQL and PgBouncer run as under root. */
const PG_USER = 'postgres';
/** Unix socket paths are limited to 107 bytes; the socket lives in the temp dir. */
const MAX_TEMP_DIR_LENGTH = 80;

let uniqueCounter = 0;

/** Unique across processes (pid), within one (counter) and across runs (random). */
export function uniqueSuffix(separator: string): string {
  uniqueCounter += 1;
  return [
    process.pid.toString(36),
    uniqueCounter.toString(36),
    randomBytes(3).toString('hex'),
  ].join(separator);
}

interface Plan {
  readonly redis: boolean;
  readonly appendOnly: boolean;
  readonly redisReplica: boolean;
  readonly postgres: boolean;
  readonly pgbouncer: boolean;
  /** The data outlives the services (`dataDir`). */
  readonly persistent: boolean;
  readonly ports: NonNullable<ServicesOptions['ports']>;
}

function planFrom(options: ServicesOptions): Plan {
  const postgres = options.postgres ?? true;
  if (options.pgbouncer === true && !postgres) {
    throw new Error(
      'startServices: pgbouncer: true needs PostgreSQL behind it; drop postgres: false',
    );
  }
  const redis = options.redis ?? true;
  return {
    redis: redis !== false,
    appendOnly: typeof redis === 'object' && redis.appendOnly === true,
    redisReplica: typeof redis === 'object' && redis.replica === true,
    postgres,
    pgbouncer: options.pgbouncer ?? postgres,
    persistent: options.dataDir !== undefined,
    ports: options.ports ?? {},
  };
}

// ---------------------------------------------------------------------------------------------
// Binaries and the user services run as
// ---------------------------------------------------------------------------------------------

interface Binaries {
  readonly redisServer: string;
  readonly initdb: string;
  readonly postgres: string;
  readonly pgbouncer: string;
}

const binaryCache = new Map<keyof Binaries, string>();

function binary(name: keyof Binaries): string {
  let path = binaryCache.get(name);
  if (path === undefined) {
    path = findBinary(name);
    binaryCache.set(name, path);
  }
  return path;
}

function findBinary(name: keyof Binaries): string {
  switch (name) {
    case 'redisServer':
      return (
        findOnPath('redis-server', ['/usr/bin', '/usr/local/bin']) ??
        missing('redis-server', 'on PATH', 'redis-server')
      );
    case 'pgbouncer':
      return (
        findOnPath('pgbouncer', ['/usr/sbin', '/usr/bin', '/usr/local/bin']) ??
        missing('pgbouncer', 'in /usr/sbin or on PATH', 'pgbouncer')
      );
    case 'initdb':
    case 'postgres':
      return join(postgresBinDir(), name);
  }
}

/**
 * Debian's newest /usr/lib/postgresql/<major>/bin first: that is what apt installs, and
 * /usr/local/bin/initdb and friends, where present, are symlinks into it. `PG_BINDIR` overrides.
 */
function postgresBinDir(): string {
  const hasBoth = (dir: string) =>
    isExecutable(join(dir, 'initdb')) && isExecutable(join(dir, 'postgres'));
  const override = process.env.PG_BINDIR;
  if (override !== undefined && override !== '') {
    if (hasBoth(override)) return override;
    throw new Error(`PG_BINDIR=${override} holds no initdb and postgres`);
  }
  const debianRoot = '/usr/lib/postgresql';
  const majors = existsSync(debianRoot)
    ? readdirSync(debianRoot)
        .filter((entry) => /^\d+(\.\d+)?$/.test(entry))
        .sort((a, b) => Number(b) - Number(a))
    : [];
  for (const major of majors) {
    const dir = join(debianRoot, major, 'bin');
    if (hasBoth(dir)) return dir;
  }
  for (const dir of pathDirs()) {
    if (hasBoth(dir)) return dir;
  }
  return missing('initdb and postgres', `in ${debianRoot}/<major>/bin or on PATH`, 'postgresql');
}

function pathDirs(): string[] {
  return (process.env.PATH ?? '').split(delimiter).filter((dir) => dir !== '');
}

function findOnPath(name: string, fallbackDirs: readonly string[]): string | undefined {
  for (const dir of [...pathDirs(), ...fallbackDirs]) {
    const candidate = join(dir, name);
    if (isExecutable(candidate)) return candidate;
  }
  return undefined;
}

function isExecutable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

function missing(what: string, where: string, aptPackage: string): never {
  throw new Error(`services: found no ${what} ${where} (apt-get install ${aptPackage})`);
}

interface RunAs {
  readonly uid: number;
  readonly gid: number;
}

/**
 * PostgreSQL and PgBouncer refuse to run as root (CI runs as root): then they run as the
 * `postgres` system user that Debian's postgresql package creates. Redis may stay root.
 */
function serviceUser(): RunAs | undefined {
  if (process.getuid?.() !== 0) return undefined;
  try {
    const id = (flag: string) =>
      Number(execFileSync('id', [flag, PG_USER], { encoding: 'utf8' }).trim());
    return { uid: id('-u'), gid: id('-g') };
  } catch (error) {
    throw new Error(
      `services: running as root, PostgreSQL and PgBouncer must run as the "${PG_USER}" system user, which does not exist (apt-get install postgresql creates it)`,
      { cause: error },
    );
  }
}

/**
 * A fresh temp dir the services' user can write. Under root it belongs to `postgres`; a
 * TMPDIR that user cannot reach (or one too long for a unix socket path) falls back to /tmp.
 */
function createTempDir(runAs: RunAs | undefined): string {
  const bases = [...new Set([tmpdir(), '/tmp'])];
  for (const base of bases) {
    const dir = mkdtempSync(join(base, 'spillway-'));
    if (dir.length <= MAX_TEMP_DIR_LENGTH && (runAs === undefined || handOver(dir, runAs))) {
      return dir;
    }
    rmSync(dir, { recursive: true, force: true });
  }
  throw new Error(`services: no temp dir under ${bases.join(' or ')} is usable by user ${PG_USER}`);
}

/** The `dataDir`, created if missing; under root it must be usable by `postgres` too. */
function prepareDataDir(dataDir: string, runAs: RunAs | undefined): string {
  const dir = resolve(dataDir);
  mkdirSync(dir, { recursive: true });
  if (runAs !== undefined && !handOver(dir, runAs)) {
    throw new Error(
      `services: ${dir} is not usable by user ${PG_USER}, whom PostgreSQL runs as under root: every folder above it must be searchable by others (chmod o+x)`,
    );
  }
  return dir;
}

function handOver(dir: string, runAs: RunAs): boolean {
  chownSync(dir, runAs.uid, runAs.gid);
  const probe = spawnSync('/bin/sh', ['-c', 'test -w "$0" && test -x "$0"', dir], {
    uid: runAs.uid,
    gid: runAs.gid,
    stdio: 'ignore',
  });
  return probe.status === 0;
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

// ---------------------------------------------------------------------------------------------
// One managed process
// ---------------------------------------------------------------------------------------------

interface LaunchSpec {
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

interface Running {
  readonly spec: LaunchSpec;
  readonly child: ChildProcess;
  /** Also the process group id: services are spawned detached, as group leaders. */
  readonly pid: number;
  readonly exited: Promise<void>;
  exitDescription: string | undefined;
}

interface ManagedServiceOptions {
  readonly name: string;
  /** How to run the service on a port; called for every (re)start. */
  readonly launch: (port: number) => LaunchSpec;
  readonly urlFor: (port: number) => string;
  /** Called whenever the service's process starts or exits. */
  readonly onChange: () => void;
  /** Runs after every start once the service answers, before start or restart resolves. */
  readonly afterStart?: () => Promise<void>;
}

class ManagedService implements ServiceHandle {
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

/** The replica: a Redis that follows the primary until promoted. */
class RedisReplicaService extends ManagedService implements RedisReplicaHandle {
  #following = true;

  constructor(options: Omit<ManagedServiceOptions, 'launch'> & { launch: LaunchFor }) {
    super({ ...options, launch: (port) => options.launch(port, this.#following) });
  }

  get following(): boolean {
    return this.#following;
  }

  freeze(): void {
    this.#signal('SIGSTOP');
  }

  thaw(): void {
    this.#signal('SIGCONT');
  }

  #signal(name: 'SIGSTOP' | 'SIGCONT'): void {
    const pid = this.pid;
    if (pid === undefined) throw new Error(`${this.name} is not running`);
    signal(pid, name);
  }

  async promote(): Promise<void> {
    const where = `${this.name} on 127.0.0.1:${this.port}`;
    const reply = await redisCommand(this.port, ['REPLICAOF', 'NO', 'ONE']);
    if (reply?.kind !== 'status' || reply.text !== 'OK') {
      throw new Error(`${where}: REPLICAOF NO ONE answered ${JSON.stringify(reply)}`);
    }
    this.#following = false;
    const info = await redisCommand(this.port, ['INFO', 'replication']);
    if (info?.kind !== 'bulk' || !/^role:master\r?$/m.test(info.text)) {
      throw new Error(`${where}: still no primary after REPLICAOF NO ONE: ${JSON.stringify(info)}`);
    }
  }
}

/** How to launch a Redis that follows its primary or not. */
type LaunchFor = (port: number, following: boolean) => LaunchSpec;

async function spawnService(spec: LaunchSpec): Promise<Running> {
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
function untilExit(running: Running, timeoutMs: number): Promise<boolean> {
  return settlesWithin(running.exited, timeoutMs);
}

/**
 * Resolves true once `done` resolves, false after the timeout. The timer keeps the event loop
 * alive meanwhile: the child processes waited for are unref'd.
 */
function settlesWithin(done: Promise<void>, timeoutMs: number): Promise<boolean> {
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
async function killTree(running: Running): Promise<void> {
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
function signalTree(pid: number): number[] {
  signal(pid, 'SIGSTOP');
  const doomed = processTree(pid);
  signal(-pid, 'SIGKILL');
  for (const each of doomed) signal(each, 'SIGKILL');
  return doomed;
}

/** process.kill that treats "no such process" as done. Negative pid: the whole group. */
function signal(pid: number, name: NodeJS.Signals): void {
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
function isAlive(pid: number): boolean {
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

function startError(where: string, reason: string, spec: LaunchSpec): ServiceStartError {
  return new ServiceStartError(where, reason, spec.logPath, logTail(spec.logPath));
}

function logTail(path: string): string {
  if (!existsSync(path)) return '';
  const lines = readFileSync(path, 'utf8').trimEnd().split('\n');
  return lines.slice(-LOG_TAIL_LINES).join('\n');
}

function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

// ---------------------------------------------------------------------------------------------
// Readiness checks
// ---------------------------------------------------------------------------------------------

/**
 * Whether the Redis on the port is process `pid` and has loaded its data (and, for a replica
 * that follows its primary, has its link to it up): raw RESP `INFO`, no client library retrying
 * in the background.
 */
async function redisAnswers(port: number, pid: number, following: boolean): Promise<boolean> {
  const reply = await redisCommand(port, ['INFO']);
  // An error (-LOADING while an append-only file is read back, say) is not ready.
  if (reply?.kind !== 'bulk') return false;
  const info = reply.text;
  return (
    new RegExp(`^process_id:${pid}\\r?$`, 'm').test(info) &&
    /^loading:0\r?$/m.test(info) &&
    (!following || /^master_link_status:up\r?$/m.test(info))
  );
}

type RedisReply =
  | { readonly kind: 'bulk' | 'status' | 'error'; readonly text: string }
  | { readonly kind: 'other' };

/** One command over a fresh connection; undefined when Redis does not answer within 1 s. */
function redisCommand(port: number, args: readonly string[]): Promise<RedisReply | undefined> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    let reply = '';
    const finish = (result: RedisReply | undefined) => {
      socket.destroy();
      resolve(result);
    };
    socket.setTimeout(1_000, () => finish(undefined));
    socket.on('error', () => finish(undefined));
    socket.on('close', () => finish(undefined));
    socket.on('connect', () => {
      const parts = args.map((arg) => `$${Buffer.byteLength(arg)}\r\n${arg}\r\n`);
      socket.write(`*${args.length}\r\n${parts.join('')}`);
    });
    socket.on('data', (chunk) => {
      // latin1: one character per byte, so the bulk string's byte length counts characters.
      reply += chunk.toString('latin1');
      const headerEnd = reply.indexOf('\r\n');
      if (headerEnd === -1) return;
      const header = reply.slice(1, headerEnd);
      if (reply.startsWith('+')) return finish({ kind: 'status', text: header });
      if (reply.startsWith('-')) return finish({ kind: 'error', text: header });
      if (!reply.startsWith('$')) return finish({ kind: 'other' });
      const body = reply.slice(headerEnd + 2);
      if (body.length < Number(header)) return;
      finish({ kind: 'bulk', text: body.slice(0, Number(header)) });
    });
  });
}

type QueryOutcome =
  | { readonly ok: true; readonly rows: readonly Record<string, unknown>[] }
  | { readonly ok: false; readonly error: unknown };

/** Connects and runs one simple query. */
async function queryOnce(url: string, sql: string): Promise<QueryOutcome> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 1_000 });
  // A probe's failure is its answer; the 'error' event must not crash the worker.
  client.on('error', () => undefined);
  try {
    await client.connect();
    const { rows } = await client.query<Record<string, unknown>>(sql);
    return { ok: true, rows };
  } catch (error) {
    return { ok: false, error };
  } finally {
    await client.end();
  }
}

async function postgresAnswers(url: string): Promise<boolean> {
  return (await queryOnce(url, 'SELECT 1')).ok;
}

/** Whether the PostgreSQL on the port is the one serving `dataDir`. */
async function postgresServes(port: number, dataDir: string): Promise<boolean> {
  const outcome = await queryOnce(
    pgUrl(port, 'postgres'),
    "SELECT current_setting('data_directory') AS value",
  );
  return outcome.ok && outcome.rows[0]?.value === dataDir;
}

/**
 * Whether the PgBouncer on the port runs with `configPath`. Its admin console answers without
 * PostgreSQL, so PgBouncer can restart while PostgreSQL is down.
 */
async function pgbouncerRuns(port: number, configPath: string): Promise<boolean> {
  const outcome = await queryOnce(pgUrl(port, 'pgbouncer'), 'SHOW CONFIG');
  return (
    outcome.ok && outcome.rows.some((row) => row.key === 'conffile' && row.value === configPath)
  );
}

/** SQLSTATE of a `pg` error, if it has one. */
function sqlState(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | undefined)?.code;
  return typeof code === 'string' ? code : undefined;
}

function pgUrl(port: number, database: string): string {
  return `postgres://${PG_USER}@127.0.0.1:${port}/${database}`;
}

// ---------------------------------------------------------------------------------------------
// The three services
// ---------------------------------------------------------------------------------------------

/** Services whose process 'exit' hook is armed. */
const live = new Set<HarnessServices>();
let exitHookInstalled = false;

function armExitHook(services: HarnessServices): void {
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

class HarnessServices implements Services {
  readonly dir: string;
  readonly #plan: Plan;
  readonly #runAs: RunAs | undefined;
  readonly #redis: ManagedService | undefined;
  readonly #redisReplica: RedisReplicaService | undefined;
  readonly #postgres: ManagedService | undefined;
  readonly #pgbouncer: ManagedService | undefined;
  readonly #watchdog: ChildProcess;
  /** Resolves once the watchdog has exited and was reaped: its pid is no longer ours to signal. */
  readonly #watchdogExited: Promise<void>;
  #watchdogGone = false;
  #stopping: Promise<void> | undefined;
  /** initdb while it runs, so that the 'exit' hook can kill it too. */
  #initdbRunning: Running | undefined;

  constructor(dir: string, plan: Plan, runAs: RunAs | undefined) {
    this.dir = dir;
    this.#plan = plan;
    this.#runAs = runAs;
    const onChange = () => this.#writePids();
    this.#redis = plan.redis
      ? new ManagedService({
          name: 'redis',
          launch: (port) => this.#redisSpec(port, { role: 'redis' }),
          urlFor: (port) => `redis://127.0.0.1:${port}`,
          onChange,
        })
      : undefined;
    this.#redisReplica = plan.redisReplica
      ? new RedisReplicaService({
          name: 'redis-replica',
          launch: (port, following) =>
            this.#redisSpec(port, {
              role: 'redis-replica',
              ...(following ? { primaryPort: this.redis.port } : {}),
            }),
          urlFor: (port) => `redis://127.0.0.1:${port}`,
          onChange,
        })
      : undefined;
    this.#postgres = plan.postgres
      ? new ManagedService({
          name: 'postgres',
          launch: (port) => this.#postgresSpec(port),
          urlFor: (port) => pgUrl(port, 'postgres'),
          onChange,
          afterStart: () => this.#untilPgBouncerReconnects(),
        })
      : undefined;
    this.#pgbouncer = plan.pgbouncer
      ? new ManagedService({
          name: 'pgbouncer',
          launch: (port) => this.#pgbouncerSpec(port),
          urlFor: (port) => pgUrl(port, 'postgres'),
          onChange,
        })
      : undefined;
    armExitHook(this);
    this.#watchdog = spawn(
      '/bin/sh',
      [
        '-c',
        WATCHDOG_SCRIPT,
        'spillway-watchdog',
        String(process.pid),
        dir,
        plan.persistent ? 'keep' : 'remove',
      ],
      {
        detached: true,
        stdio: 'ignore',
      },
    );
    this.#watchdogExited = new Promise((resolve) => {
      this.#watchdog.once('exit', () => {
        this.#watchdogGone = true;
        resolve();
      });
    });
    this.#watchdog.unref();
  }

  get redis(): ManagedService {
    return this.#required(this.#redis, 'redis');
  }

  get redisReplica(): RedisReplicaService {
    return this.#required(this.#redisReplica, 'redis-replica (redis: { replica: true })');
  }

  get postgres(): ManagedService {
    return this.#required(this.#postgres, 'postgres');
  }

  get pgbouncer(): ManagedService {
    return this.#required(this.#pgbouncer, 'pgbouncer');
  }

  async createDatabase(): Promise<CreatedDatabase> {
    const postgres = this.postgres;
    const name = `t_${uniqueSuffix('_')}`;
    const client = new pg.Client({ connectionString: postgres.url });
    await client.connect();
    try {
      // The name is ours ([a-z0-9_]), so it needs no quoting.
      await client.query(`CREATE DATABASE ${name}`);
    } finally {
      await client.end();
    }
    const directUrl = pgUrl(postgres.port, name);
    const url = this.#pgbouncer === undefined ? directUrl : pgUrl(this.#pgbouncer.port, name);
    return { name, url, directUrl };
  }

  stop(): Promise<void> {
    this.#stopping ??= this.#stopAll();
    return this.#stopping;
  }

  async startRedis(): Promise<void> {
    if (this.#redis === undefined) return;
    mkdirSync(join(this.dir, 'redis'), { recursive: true });
    await this.#redis.firstStart(this.#plan.ports.redis);
    if (this.#redisReplica === undefined) return;
    mkdirSync(join(this.dir, 'redis-replica'), { recursive: true });
    await this.#redisReplica.firstStart(this.#plan.ports.redisReplica);
  }

  async startPostgres(): Promise<void> {
    if (this.#postgres === undefined) return;
    // A data dir from an earlier start already holds a cluster.
    if (!existsSync(join(this.dir, 'pgdata', 'PG_VERSION'))) await this.#initdb();
    await this.#postgres.firstStart(this.#plan.ports.postgres);
    if (this.#pgbouncer === undefined) return;
    await this.#pgbouncer.firstStart(this.#plan.ports.pgbouncer);
    // PgBouncer answering on its console does not prove it reaches PostgreSQL.
    if (!(await postgresAnswers(this.#pgbouncer.url))) {
      throw new ServiceStartError(
        `pgbouncer on 127.0.0.1:${this.#pgbouncer.port}`,
        `answers but cannot reach PostgreSQL on port ${this.#postgres.port}`,
        this.#logPath('pgbouncer'),
        logTail(this.#logPath('pgbouncer')),
      );
    }
  }

  /**
   * After PostgreSQL restarts, PgBouncer turns clients away ("server login has been failing")
   * until each of its pools has connected again, which a client's attempt triggers once
   * server_login_retry passed. Nudge every pool here, so that restart() means usable.
   */
  async #untilPgBouncerReconnects(): Promise<void> {
    const bouncer = this.#pgbouncer;
    if (bouncer?.pid === undefined) return;
    const admin = new pg.Client({ connectionString: pgUrl(bouncer.port, 'pgbouncer') });
    await admin.connect();
    let pools: { database: string }[];
    try {
      pools = (await admin.query<{ database: string }>('SHOW POOLS')).rows;
    } finally {
      await admin.end();
    }
    const databases = new Set(
      pools.map((pool) => pool.database).filter((name) => name !== 'pgbouncer'),
    );
    const deadline = Date.now() + READY_TIMEOUT_MS;
    for (const database of databases) {
      for (;;) {
        const outcome = await queryOnce(pgUrl(bouncer.port, database), 'SELECT 1');
        // 3D000: a test dropped that database; its pool will never connect again.
        if (outcome.ok || sqlState(outcome.error) === '3D000') break;
        if (Date.now() >= deadline) {
          const logPath = this.#logPath('pgbouncer');
          throw new ServiceStartError(
            `pgbouncer on 127.0.0.1:${bouncer.port}`,
            `does not reach database ${database} again after PostgreSQL restarted: ${String(outcome.error)}`,
            logPath,
            logTail(logPath),
          );
        }
        await sleep(50);
      }
    }
  }

  /**
   * For the process 'exit' hook: synchronous, no waiting on the event loop. The watchdog is
   * stopped only once the temp dir is gone.
   */
  destroySync(): void {
    live.delete(this);
    const doomed = this.#all().flatMap((service) => service.killSync());
    if (this.#initdbRunning !== undefined) doomed.push(...signalTree(this.#initdbRunning.pid));
    const deadline = Date.now() + 2_000;
    while (doomed.some(isAlive) && Date.now() < deadline) sleepSync(10);
    if (!this.#plan.persistent) rmSync(this.dir, { recursive: true, force: true, maxRetries: 3 });
    const watchdog = this.#stopWatchdog();
    // Nothing reaps it now: a zombie counts as gone, and names the dir no more.
    const watchdogDeadline = Date.now() + 2_000;
    while (watchdog !== undefined && isAlive(watchdog) && Date.now() < watchdogDeadline) {
      sleepSync(10);
    }
  }

  async #stopAll(): Promise<void> {
    live.delete(this);
    for (const service of this.#all()) service.close();
    if (this.#plan.persistent) {
      // Kept data: shut down gracefully, clients first (PgBouncer before PostgreSQL).
      for (const service of this.#all()) await service.stop();
      rmSync(join(this.dir, 'pids'), { force: true });
    } else {
      // SIGKILL is enough: the data goes away with the temp dir.
      await Promise.all(this.#all().map((service) => service.kill()));
      rmSync(this.dir, { recursive: true, force: true, maxRetries: 3 });
    }
    await Promise.all(this.#all().map((service) => service.releaseFreePort()));
    const watchdog = this.#stopWatchdog();
    // SIGKILL is delivered, not done: until the watchdog is gone, its command line names the dir
    // and a caller checking that nothing is left would find it.
    if (watchdog !== undefined && !(await settlesWithin(this.#watchdogExited, KILL_TIMEOUT_MS))) {
      throw new Error(`the watchdog (pid ${watchdog}) did not exit after SIGKILL`);
    }
  }

  /** SIGKILL to the watchdog and its `sleep`; returns its pid if it was still running. */
  #stopWatchdog(): number | undefined {
    const pid = this.#watchdog.pid;
    if (pid === undefined || this.#watchdogGone) return undefined;
    signal(-pid, 'SIGKILL');
    return pid;
  }

  #all(): ManagedService[] {
    return [this.#pgbouncer, this.#postgres, this.#redisReplica, this.#redis].filter(
      (service): service is ManagedService => service !== undefined,
    );
  }

  #required<T extends ManagedService>(service: T | undefined, name: string): T {
    if (service === undefined)
      throw new Error(`${name} was not started (see the startServices options)`);
    return service;
  }

  #writePids(): void {
    if (this.#stopping !== undefined || !existsSync(this.dir)) return;
    const pids = this.#all().flatMap((service) => service.pid ?? []);
    writeFileSync(join(this.dir, 'pids'), `${pids.join('\n')}\n`);
  }

  #logPath(name: string): string {
    return join(this.dir, `${name}.log`);
  }

  /** The primary, or with `primaryPort` a replica of it; both with the same settings. */
  #redisSpec(
    port: number,
    node: { readonly role: 'redis' | 'redis-replica'; readonly primaryPort?: number },
  ): LaunchSpec {
    const durability = this.#plan.appendOnly
      ? ['--appendonly', 'yes', '--appendfsync', 'always']
      : ['--appendonly', 'no'];
    const following =
      node.primaryPort === undefined ? [] : ['--replicaof', '127.0.0.1', String(node.primaryPort)];
    return {
      command: binary('redisServer'),
      args: [
        '--port',
        String(port),
        '--bind',
        '127.0.0.1',
        '--dir',
        join(this.dir, node.role),
        '--save',
        '',
        ...durability,
        // G5: nothing is ever evicted.
        '--maxmemory-policy',
        'noeviction',
        // A replica's full sync goes over the socket, never through an RDB file on either side,
        // and starts at once instead of waiting 5 s for more replicas to join.
        '--repl-diskless-sync',
        'yes',
        '--repl-diskless-sync-delay',
        '0',
        '--repl-diskless-load',
        'swapdb',
        ...following,
        '--logfile',
        '',
        '--daemonize',
        'no',
      ],
      runAs: undefined,
      cwd: this.dir,
      logPath: this.#logPath(node.role),
      stopSignal: 'SIGTERM',
      answers: (pid) => redisAnswers(port, pid, node.primaryPort !== undefined),
    };
  }

  async #initdb(): Promise<void> {
    const logPath = this.#logPath('initdb');
    const running = await spawnService({
      command: binary('initdb'),
      args: [
        '--pgdata',
        join(this.dir, 'pgdata'),
        '--username',
        PG_USER,
        '--auth-local=trust',
        '--auth-host=trust',
        '--encoding=UTF8',
        '--no-locale',
        '--no-sync',
      ],
      runAs: this.#runAs,
      cwd: this.dir,
      logPath,
      stopSignal: 'SIGTERM',
      answers: async () => true,
    });
    this.#initdbRunning = running;
    try {
      if (!(await untilExit(running, INITDB_TIMEOUT_MS))) {
        await killTree(running);
        throw new ServiceStartError(
          'initdb',
          `did not finish within ${INITDB_TIMEOUT_MS / 1000} s`,
          logPath,
          logTail(logPath),
        );
      }
    } finally {
      this.#initdbRunning = undefined;
    }
    if (running.exitDescription !== 'code 0') {
      throw new ServiceStartError(
        'initdb',
        `failed (${running.exitDescription})`,
        logPath,
        logTail(logPath),
      );
    }
  }

  #postgresSpec(port: number): LaunchSpec {
    const dataDir = join(this.dir, 'pgdata');
    const settings = {
      listen_addresses: '127.0.0.1',
      // A kept data dir may sit at a path too long for a unix socket; clients use TCP anyway.
      unix_socket_directories: this.dir.length <= MAX_TEMP_DIR_LENGTH ? this.dir : '',
      max_connections: '200',
      // Survives a kill -9 of PostgreSQL (the OS still has the writes), not a machine crash.
      fsync: 'off',
      full_page_writes: 'off',
    };
    return {
      command: binary('postgres'),
      args: [
        '-D',
        dataDir,
        '-p',
        String(port),
        ...Object.entries(settings).flatMap(([key, value]) => ['-c', `${key}=${value}`]),
      ],
      runAs: this.#runAs,
      cwd: this.dir,
      logPath: this.#logPath('postgres'),
      // Fast shutdown: SIGTERM ("smart") would wait for every client to disconnect.
      stopSignal: 'SIGINT',
      answers: () => postgresServes(port, dataDir),
    };
  }

  #pgbouncerSpec(port: number): LaunchSpec {
    const configPath = join(this.dir, 'pgbouncer.ini');
    const authFile = join(this.dir, 'pgbouncer-users.txt');
    writeFileSync(authFile, `"${PG_USER}" ""\n`);
    // No `logfile`: PgBouncer reports config errors only on stderr, which goes to pgbouncer.log.
    writeFileSync(
      configPath,
      [
        '[databases]',
        // Any database name routes to the database of the same name.
        `* = host=127.0.0.1 port=${this.postgres.port}`,
        '',
        '[pgbouncer]',
        'listen_addr = 127.0.0.1',
        `listen_port = ${port}`,
        'unix_socket_dir =',
        'pool_mode = transaction',
        'auth_type = trust',
        `auth_file = ${authFile}`,
        `admin_users = ${PG_USER}`,
        'ignore_startup_parameters = extra_float_digits,options',
        'max_client_conn = 1000',
        'default_pool_size = 20',
        // While PostgreSQL is down, PgBouncer 1.18 (Debian 12) queues a query instead of
        // failing it (so does RDS Proxy, up to its borrow timeout) until query_wait_timeout,
        // 120 s by default: fault tests need the error sooner. After a failed login PgBouncer
        // waits server_login_retry (default 15 s) before it tries PostgreSQL again.
        'query_wait_timeout = 5',
        'server_login_retry = 0.2',
        '',
      ].join('\n'),
    );
    return {
      command: binary('pgbouncer'),
      args: [configPath],
      runAs: this.#runAs,
      cwd: this.dir,
      logPath: this.#logPath('pgbouncer'),
      // SIGINT would wait for clients' transactions to end; SIGTERM is PgBouncer's immediate shutdown.
      stopSignal: 'SIGTERM',
      answers: () => pgbouncerRuns(port, configPath),
    };
  }
}
