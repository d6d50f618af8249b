/**
 * What all drainers share in Redis: the lease that lets one drain at a time (with a fencing
 * token the database checks), the circuit breaker and the systemic fault record (G7), the
 * cache's epoch and what the last drain did (G8). Every write here is a script allowed when Redis
 * is out of memory, so that a full cache can always be drained (G5).
 */
import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { SystemicDatabaseError } from '../core/errors.js';
import { LuaScript } from './lua-script.js';
import { redisCall } from './redis.js';
import type { BufferKeys } from './redis-keys.js';

const leaseScript = new LuaScript('lease');
const breakerScript = new LuaScript('breaker');
const metaScript = new LuaScript('meta');
const recordScript = new LuaScript('record');
const faultScript = new LuaScript('fault');

export interface BreakerPolicy {
  /** Consecutive transient failures that open the breaker. */
  readonly threshold: number;
  /** First cool-down; doubles on each re-opening up to maxCooldownMs. */
  readonly cooldownMs: number;
  readonly maxCooldownMs: number;
}

export type BreakerState = 'closed' | 'open' | 'half-open';

export interface BreakerStatus {
  readonly state: BreakerState;
  readonly failures: number;
  /** Time until a trial is allowed, when open. */
  readonly retryInMs: number;
  /** When the breaker first opened in this run of failures (ms), when not closed. */
  readonly openSince?: number;
}

/** The buffer's meta hash (see `redis-keys.ts`). */
export interface CacheMeta {
  readonly epoch: string;
  /** The stream id the epoch began at. */
  readonly since: string;
  readonly offset?: string;
  readonly replid?: string;
  readonly lostAt?: number;
  readonly failoverAt?: number;
}

/** What the last drain did, for health (G8). */
export interface DrainStatus {
  /** When a drain last ended (ms). */
  readonly at?: number;
  readonly stoppedBy?: string;
  /** When a drain last made progress: committed a batch, or found the backlog empty (ms). */
  readonly progressAt?: number;
  /** The error that ended the last drain, if one did. */
  readonly error?: string;
}

/** A systemic database fault that stopped the drain (G7), as `health` reports it (G8). */
export interface SystemicFault {
  /** The database's message. */
  readonly message: string;
  readonly sqlState: string | null;
  /** The table it concerns, when known. */
  readonly table: string | null;
  /** When a drain first stopped on it (ISO-8601). */
  readonly since: string;
  /** Drains stopped by it so far. */
  readonly attempts: number;
  /** Time until the next drain tries the batch again; 0 when it may now. */
  readonly retryInMs: number;
}

export class DrainControl {
  constructor(
    private readonly redis: Redis,
    private readonly keys: BufferKeys,
    private readonly breakerPolicy: BreakerPolicy,
  ) {}

  /** A fencing token when the lease was free, null when another drainer holds it. */
  async acquireLease(ttlMs: number): Promise<string | null> {
    const token = await this.lease('acquire', ttlMs);
    return token === null ? null : String(token);
  }

  /** False when the lease expired and may be someone else's now. */
  async renewLease(token: string, ttlMs: number): Promise<boolean> {
    return (await this.lease('renew', ttlMs, token)) === 1;
  }

  async releaseLease(token: string): Promise<void> {
    await this.lease('release', 0, token);
  }

  /**
   * Move the token counter past `seen`, a token the database already holds (the cache lost its
   * counter), and re-take the lease with the new token. Null when `token` no longer holds it.
   */
  async advanceLease(token: string, seen: string, ttlMs: number): Promise<string | null> {
    const next = await this.lease('advance', ttlMs, token, seen);
    return next === null ? null : String(next);
  }

  private lease(...args: (string | number)[]): Promise<unknown> {
    return redisCall(`lease ${args[0]}`, () =>
      leaseScript.run(this.redis, [this.keys.lease, this.keys.leaseToken], args),
    );
  }

  /** The buffer's meta hash, created with a new epoch when the cache has none. */
  async meta(): Promise<CacheMeta> {
    return toMeta(
      await this.script('read the cache meta', metaScript, this.keys.meta, [randomUUID()]),
    );
  }

  /** Set (or, with '', remove) fields of the meta hash. */
  async recordMeta(fields: Readonly<Record<string, string | number>>): Promise<CacheMeta> {
    return toMeta(
      await this.script(
        'record the cache meta',
        recordScript,
        this.keys.meta,
        Object.entries(fields).flat(),
      ),
    );
  }

  /** Record what a drain did. */
  async recordDrain(fields: Readonly<Record<string, string | number>>): Promise<void> {
    await this.script(
      'record the drain status',
      recordScript,
      this.keys.drainStatus,
      Object.entries(fields).flat(),
    );
  }

  /**
   * The primary's replication id (`INFO replication`): a new one after a drain means the primary
   * changed (a failover, or a restart). Null where the server does not tell.
   */
  async replicationId(): Promise<string | null> {
    const info = await redisCall('read the replication id', () => this.redis.info('replication'));
    return /^master_replid:([0-9a-f]+)\s*$/m.exec(info)?.[1] ?? null;
  }

  /** What the last drain did, and the meta hash as it stands (without creating it). */
  async status(): Promise<{ drain: DrainStatus; meta: Partial<CacheMeta> }> {
    const [drain, meta] = await redisCall('read the drain status', () =>
      Promise.all([this.redis.hgetall(this.keys.drainStatus), this.redis.hgetall(this.keys.meta)]),
    );
    return {
      drain: {
        ...(drain.at ? { at: Number(drain.at) } : {}),
        ...(drain.stoppedBy ? { stoppedBy: drain.stoppedBy } : {}),
        ...(drain.progressAt ? { progressAt: Number(drain.progressAt) } : {}),
        ...(drain.error ? { error: drain.error } : {}),
      },
      meta: meta.epoch ? toMeta(Object.entries(meta).flat()) : {},
    };
  }

  private async script(
    what: string,
    script: LuaScript,
    key: string,
    args: readonly (string | number)[],
  ): Promise<string[]> {
    return (await redisCall(what, () => script.run(this.redis, [key], args))) as string[];
  }

  async breaker(action: 'check' | 'success' | 'failure'): Promise<BreakerStatus> {
    const policy = this.breakerPolicy;
    const [state, failures, wait] = (await redisCall(`record a breaker ${action}`, () =>
      breakerScript.run(
        this.redis,
        [this.keys.breaker],
        [action, policy.threshold, policy.cooldownMs, policy.maxCooldownMs],
      ),
    )) as [BreakerState, number, number];
    return { state, failures: Number(failures), retryInMs: Number(wait) };
  }

  /** The breaker as it stands, without moving it to half-open. */
  async breakerStatus(): Promise<BreakerStatus> {
    const hash = await redisCall('read the breaker', () => this.redis.hgetall(this.keys.breaker));
    const state = (hash.state as BreakerState | undefined) ?? 'closed';
    const retryInMs = state === 'open' ? Math.max(0, Number(hash.openUntil ?? 0) - Date.now()) : 0;
    return {
      state,
      failures: Number(hash.failures ?? 0),
      retryInMs,
      ...(state !== 'closed' && hash.since ? { openSince: Number(hash.since) } : {}),
    };
  }

  /**
   * Record that a systemic fault stopped the drain, and hold the next drains back: the first
   * wait is the breaker's cool-down, doubling with each stop up to its longest, so that a fault
   * nobody fixes yet is not hammered. Returns the record.
   */
  async recordFault(error: SystemicDatabaseError): Promise<SystemicFault> {
    const now = new Date().toISOString();
    const { cooldownMs, maxCooldownMs } = this.breakerPolicy;
    const [attempts, holdMs] = (await redisCall('record the systemic fault', () =>
      faultScript.run(
        this.redis,
        [this.keys.fault, this.keys.faultHold],
        [error.message, error.sqlState ?? '', error.table ?? '', now, cooldownMs, maxCooldownMs],
      ),
    )) as [number, number];
    return (
      (await this.fault()) ?? {
        message: error.message,
        sqlState: error.sqlState ?? null,
        table: error.table ?? null,
        since: now,
        attempts,
        retryInMs: holdMs,
      }
    );
  }

  /** The systemic fault the drain is stopped by, or null when there is none. */
  async fault(): Promise<SystemicFault | null> {
    const [hash, ttl] = await redisCall('read the systemic fault', () =>
      Promise.all([this.redis.hgetall(this.keys.fault), this.redis.pttl(this.keys.faultHold)]),
    );
    if (hash.message === undefined) return null;
    return {
      message: hash.message,
      sqlState: hash.sqlState || null,
      table: hash.table || null,
      since: hash.since ?? '',
      attempts: Number(hash.attempts ?? 0),
      retryInMs: Math.max(0, ttl),
    };
  }

  /** The faulty batch went through: the fault is healed. */
  async clearFault(): Promise<void> {
    await redisCall('clear the systemic fault', () =>
      this.redis.del(this.keys.fault, this.keys.faultHold),
    );
  }
}

function toMeta(flat: readonly string[]): CacheMeta {
  const hash: Record<string, string> = {};
  for (let i = 0; i + 1 < flat.length; i += 2) hash[flat[i] as string] = flat[i + 1] as string;
  return {
    epoch: hash.epoch ?? '',
    since: hash.since ?? '0-0',
    ...(hash.offset !== undefined ? { offset: hash.offset } : {}),
    ...(hash.replid !== undefined ? { replid: hash.replid } : {}),
    ...(hash.lostAt !== undefined ? { lostAt: Number(hash.lostAt) } : {}),
    ...(hash.failoverAt !== undefined ? { failoverAt: Number(hash.failoverAt) } : {}),
  };
}
