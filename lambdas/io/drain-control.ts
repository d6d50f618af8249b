/**
 * What all drainers share in Redis: the lease that lets one drain at a time (with a fencing
 * token the database checks), the circuit breaker, and the systemic fault record (G7).
 */
import type { Redis } from 'ioredis';
import type { SystemicDatabaseError } from '../core/errors.js';
import { LuaScript } from './lua-script.js';
import type { BufferKeys } from './redis-keys.js';

const leaseScript = new LuaScript('lease');
const breakerScript = new LuaScript('breaker');

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
    const token = String(await this.redis.incr(this.keys.leaseToken));
    const taken = await this.redis.set(this.keys.lease, token, 'PX', ttlMs, 'NX');
    return taken === 'OK' ? token : null;
  }

  /** False when the lease expired and may be someone else's now. */
  async renewLease(token: string, ttlMs: number): Promise<boolean> {
    return (await leaseScript.run(this.redis, [this.keys.lease], ['renew', token, ttlMs])) === 1;
  }

  async releaseLease(token: string): Promise<void> {
    await leaseScript.run(this.redis, [this.keys.lease], ['release', token, 0]);
  }

  async breaker(action: 'check' | 'success' | 'failure'): Promise<BreakerStatus> {
    const policy = this.breakerPolicy;
    const [state, failures, wait] = (await breakerScript.run(
      this.redis,
      [this.keys.breaker],
      [action, policy.threshold, policy.cooldownMs, policy.maxCooldownMs],
    )) as [BreakerState, number, number];
    return { state, failures: Number(failures), retryInMs: Number(wait) };
  }

  /** The breaker as it stands, without moving it to half-open. */
  async breakerStatus(): Promise<BreakerStatus> {
    const hash = await this.redis.hgetall(this.keys.breaker);
    const state = (hash.state as BreakerState | undefined) ?? 'closed';
    const retryInMs = state === 'open' ? Math.max(0, Number(hash.openUntil ?? 0) - Date.now()) : 0;
    return { state, failures: Number(hash.failures ?? 0), retryInMs };
  }

  /**
   * Record that a systemic fault stopped the drain, and hold the next drains back: the first
   * wait is the breaker's cool-down, doubling with each stop up to its longest, so that a fault
   * nobody fixes yet is not hammered. Returns the record.
   */
  async recordFault(error: SystemicDatabaseError): Promise<SystemicFault> {
    const now = new Date().toISOString();
    const [, , [, attempts]] = (await this.redis
      .multi()
      .hset(this.keys.fault, {
        message: error.message,
        sqlState: error.sqlState ?? '',
        table: error.table ?? '',
      })
      .hsetnx(this.keys.fault, 'since', now)
      .hincrby(this.keys.fault, 'attempts', 1)
      .exec()) as [unknown, unknown, [unknown, number]];
    const { cooldownMs, maxCooldownMs } = this.breakerPolicy;
    const holdMs = Math.max(1, Math.min(maxCooldownMs, cooldownMs * 2 ** (attempts - 1)));
    await this.redis.set(this.keys.faultHold, '1', 'PX', holdMs);
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
    const [[, hash], [, ttl]] = (await this.redis
      .multi()
      .hgetall(this.keys.fault)
      .pttl(this.keys.faultHold)
      .exec()) as [[unknown, Record<string, string>], [unknown, number]];
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
    await this.redis.del(this.keys.fault, this.keys.faultHold);
  }
}
