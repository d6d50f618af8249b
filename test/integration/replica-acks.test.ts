/**
 * REDIS_REPLICA_ACKS against a real replica: a write is acknowledged only once the replica
 * confirmed it (Redis WAIT), so that a failover cannot lose it (G1). The failover itself is in
 * test/fault/redis-failover.test.ts; a lone Redis, where no replica ever confirms, in
 * write.test.ts.
 */
import { setTimeout } from 'node:timers/promises';
import { Redis } from 'ioredis';
import { afterEach, describe, expect, it } from 'vitest';
import { UnavailableError } from '../../lambdas/core/errors.js';
import { pipelineRegistry } from '../../lambdas/schema/tables.js';
import { createBuffer } from '../../lambdas/spillway.js';
import { document, useTestEngines, uuid } from '../support/engine.js';

const { services, engine } = useTestEngines({ redis: { replica: true } });

const replicaClients: Redis[] = [];
afterEach(() => {
  for (const client of replicaClients.splice(0)) client.disconnect();
});

/** The backlog as the replica holds it, read straight from the replica. */
function replicaBacklog(prefix: string) {
  const redis = new Redis(services().redisReplica.url, { maxRetriesPerRequest: 1 });
  redis.on('error', () => {});
  replicaClients.push(redis);
  return createBuffer({ redis, registry: pipelineRegistry, prefix });
}

describe('writes with REDIS_REPLICA_ACKS = 1', () => {
  it('are acknowledged once the replica confirmed them, and the replica already holds each one when write returns', async () => {
    const { spillway, prefix } = await engine('replica-confirms', {
      replicaAcks: 1,
      replicaAckTimeoutMs: 2_000,
    });
    const onReplica = replicaBacklog(prefix);
    const acknowledged: string[] = [];
    for (let i = 0; i < 20; i += 1) {
      const result = await spillway.write({ changes: [document(uuid())] });
      expect(result.accepted).toBe(1);
      acknowledged.push(result.changesetId);
      // No waiting here: WAIT returned only once the replica had applied the changeset.
      const held = await onReplica.peek(100);
      expect(held.at(-1)?.changesetId).toBe(result.changesetId);
    }
    expect((await onReplica.peek(100)).map((c) => c.changesetId)).toEqual(acknowledged);
  });

  it('wait for a lagging replica: the write returns only once the replica has caught up and confirmed', async () => {
    const { spillway, prefix } = await engine('replica-lags', {
      replicaAcks: 1,
      replicaAckTimeoutMs: 5_000,
    });
    const replica = services().redisReplica;
    replica.freeze();
    let settled = false;
    let write: Promise<{ changesetId: string }>;
    try {
      write = spillway.write({ changes: [document(uuid())] });
      void write.finally(() => {
        settled = true;
      });
      await setTimeout(300);
      expect(settled).toBe(false);
    } finally {
      replica.thaw();
    }
    const { changesetId } = await write;
    const held = await replicaBacklog(prefix).peek(100);
    expect(held.map((c) => c.changesetId)).toEqual([changesetId]);
  });

  it('fail with UnavailableError while the replica is down, and are acknowledged again once it is back', async () => {
    const { spillway, prefix, another } = await engine('replica-down', {
      replicaAcks: 1,
      replicaAckTimeoutMs: 200,
    });
    const replica = services().redisReplica;
    await expect(spillway.write({ changes: [document(uuid())] })).resolves.toMatchObject({
      accepted: 1,
    });

    await replica.kill();
    try {
      const error = await spillway.write({ changes: [document(uuid())] }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(UnavailableError);
      expect((error as UnavailableError).dependency).toBe('redis');
      expect((error as UnavailableError).message).toMatch(
        /0 of 1 replicas confirmed it within 200 ms.*writing it again is safe/,
      );
    } finally {
      await replica.restart();
    }

    // A loaded machine may take longer than 200 ms to confirm the first write after the restart.
    const patient = another({ replicaAckTimeoutMs: 5_000 });
    const again = await patient.write({ changes: [document(uuid())] });
    expect(again.accepted).toBe(1);
    const held = await replicaBacklog(prefix).peek(100);
    expect(held.at(-1)?.changesetId).toBe(again.changesetId);
  });
});
