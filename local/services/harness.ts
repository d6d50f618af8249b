/**
 * The services of one `startServices` call: which run (the plan), their dir, and stopping them
 * all, gracefully with kept data or with SIGKILL and the temp dir removed.
 */
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { armExitHook, disarmExitHook, Watchdog } from './cleanup.js';
import { type RunAs, serviceLogPath } from './data-dir.js';
import { ManagedService } from './managed-service.js';
import { pgUrl, uniqueSuffix } from './names.js';
import { pgbouncerLaunch, untilPgBouncerReconnects } from './pgbouncer.js';
import { initdb, pgDataDir, postgresLaunch } from './postgres.js';
import { isAlive, type Running, signalTree, sleepSync } from './processes.js';
import { postgresAnswers } from './readiness.js';
import { RedisReplicaService, redisLaunch } from './redis.js';
import { logTail, ServiceStartError } from './start-error.js';
import type { CreatedDatabase, Services, ServicesOptions } from './types.js';

/** Which services run, and how; from `ServicesOptions`. */
export interface Plan {
  readonly redis: boolean;
  readonly appendOnly: boolean;
  readonly redisReplica: boolean;
  readonly postgres: boolean;
  readonly pgbouncer: boolean;
  /** The data outlives the services (`dataDir`). */
  readonly persistent: boolean;
  readonly ports: NonNullable<ServicesOptions['ports']>;
}

export function planFrom(options: ServicesOptions): Plan {
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

export class HarnessServices implements Services {
  readonly dir: string;
  readonly #plan: Plan;
  readonly #redis: ManagedService | undefined;
  readonly #redisReplica: RedisReplicaService | undefined;
  readonly #postgres: ManagedService | undefined;
  readonly #pgbouncer: ManagedService | undefined;
  readonly #runAs: RunAs | undefined;
  readonly #watchdog: Watchdog;
  #stopping: Promise<void> | undefined;
  /** initdb while it runs, so that the 'exit' hook can kill it too. */
  #initdbRunning: Running | undefined;

  constructor(dir: string, plan: Plan, runAs: RunAs | undefined) {
    this.dir = dir;
    this.#plan = plan;
    this.#runAs = runAs;
    const onChange = () => this.#writePids();
    const appendOnly = plan.appendOnly;
    this.#redis = plan.redis
      ? new ManagedService({
          name: 'redis',
          launch: (port) => redisLaunch(port, { dir, role: 'redis', appendOnly }),
          urlFor: (port) => `redis://127.0.0.1:${port}`,
          onChange,
        })
      : undefined;
    this.#redisReplica = plan.redisReplica
      ? new RedisReplicaService({
          name: 'redis-replica',
          launch: (port, following) =>
            redisLaunch(port, {
              dir,
              role: 'redis-replica',
              appendOnly,
              ...(following ? { primaryPort: this.redis.port } : {}),
            }),
          urlFor: (port) => `redis://127.0.0.1:${port}`,
          onChange,
        })
      : undefined;
    this.#postgres = plan.postgres
      ? new ManagedService({
          name: 'postgres',
          launch: (port) => postgresLaunch(port, { dir, runAs }),
          urlFor: (port) => pgUrl(port, 'postgres'),
          onChange,
          afterStart: async () => {
            if (this.#pgbouncer !== undefined) await untilPgBouncerReconnects(this.#pgbouncer, dir);
          },
        })
      : undefined;
    this.#pgbouncer = plan.pgbouncer
      ? new ManagedService({
          name: 'pgbouncer',
          launch: (port) => pgbouncerLaunch(port, { dir, runAs, postgresPort: this.postgres.port }),
          urlFor: (port) => pgUrl(port, 'postgres'),
          onChange,
        })
      : undefined;
    armExitHook(this);
    this.#watchdog = new Watchdog(dir, plan.persistent);
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
    if (!existsSync(join(pgDataDir(this.dir), 'PG_VERSION'))) {
      await initdb({
        dir: this.dir,
        runAs: this.#runAs,
        track: (running) => {
          this.#initdbRunning = running;
        },
      });
    }
    await this.#postgres.firstStart(this.#plan.ports.postgres);
    if (this.#pgbouncer === undefined) return;
    await this.#pgbouncer.firstStart(this.#plan.ports.pgbouncer);
    // PgBouncer answering on its console does not prove it reaches PostgreSQL.
    if (!(await postgresAnswers(this.#pgbouncer.url))) {
      const logPath = serviceLogPath(this.dir, 'pgbouncer');
      throw new ServiceStartError(
        `pgbouncer on 127.0.0.1:${this.#pgbouncer.port}`,
        `answers but cannot reach PostgreSQL on port ${this.#postgres.port}`,
        logPath,
        logTail(logPath),
      );
    }
  }

  /**
   * For the process 'exit' hook: synchronous, no waiting on the event loop. The watchdog is
   * stopped only once the temp dir is gone.
   */
  destroySync(): void {
    disarmExitHook(this);
    const doomed = this.#all().flatMap((service) => service.killSync());
    if (this.#initdbRunning !== undefined) doomed.push(...signalTree(this.#initdbRunning.pid));
    const deadline = Date.now() + 2_000;
    while (doomed.some(isAlive) && Date.now() < deadline) sleepSync(10);
    if (!this.#plan.persistent) rmSync(this.dir, { recursive: true, force: true, maxRetries: 3 });
    this.#watchdog.stopSync();
  }

  async #stopAll(): Promise<void> {
    disarmExitHook(this);
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
    await this.#watchdog.stop();
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

  /** The process groups the watchdog kills should this process die without cleaning up. */
  #writePids(): void {
    if (this.#stopping !== undefined || !existsSync(this.dir)) return;
    const pids = this.#all().flatMap((service) => service.pid ?? []);
    writeFileSync(join(this.dir, 'pids'), `${pids.join('\n')}\n`);
  }
}
