/**
 * What all drainers share in Redis: the lease that lets one drain at a time (with a fencing
 * token the database checks), and the circuit breaker (G7).
 */
import type { Redis } from 'ioredis';
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
}
