/**
 * What `startServices` hands out (`Services`, a handle per service) and what it takes
 * (`ServicesOptions`).
 */

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
