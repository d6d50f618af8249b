/**
 * The cache fails the way caches do in production: it fills up during a long database outage,
 * or it loses its data (a node replaced, a failover to an empty replica, FLUSHALL). Every
 * acknowledged write must still land, without an operator (G1, G2, G5, G8).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BackpressureError } from '../../lambdas/core/errors.js';
import {
  chunk,
  countRows,
  createTestEngine,
  document,
  drainAll,
  patchDocument,
  type TestEngine,
  uuid,
} from '../support/engine.js';
import { useServices } from '../support/services.js';

const services = useServices();

describe('a cache at its memory limit', () => {
  let engine: TestEngine;
  beforeAll(async () => {
    engine = await createTestEngine(services(), 'full-cache', {
      // Only Redis's own memory limit stops writes here, as when the limits are set too high.
      backlogLimit: 100_000_000,
      backlogBytesLimit: 10 * 1024 ** 3,
      leaseMs: 300,
      breaker: { threshold: 2, cooldownMs: 100, maxCooldownMs: 200 },
    });
  });
  afterAll(async () => {
    await engine.redis.config('SET', 'maxmemory', '0');
    await engine.close();
  });

  it('drains every acknowledged write once the database is back, without raising the limit', async () => {
    const { spillway, redis, direct } = engine;
    await services().postgres.kill();
    let acknowledged = 0;
    try {
      // The drainer tries during the outage, opens the breaker and gives up its lease.
      await spillway.write({ changes: [document()] });
      acknowledged += 1;
      const failed = await spillway.drain(Date.now() + 3_000);
      expect(['breaker-open', 'deadline']).toContain(failed.stoppedBy);

      const used = Number(/used_memory:(\d+)/.exec(await redis.info('memory'))?.[1]);
      await redis.config('SET', 'maxmemory', String(used + 2 * 1024 * 1024));
      for (;;) {
        const doc = uuid();
        const result = await spillway
          .write({ changes: [document(doc), chunk(doc, 0), chunk(doc, 1)] })
          .catch((error: unknown) => error);
        if (result instanceof BackpressureError) break;
        if (result instanceof Error) throw result;
        acknowledged += 1;
      }
      expect(acknowledged).toBeGreaterThan(100);
      // The lease is long gone: taking it again must work at maxmemory.
      await new Promise((resolve) => setTimeout(resolve, 400));
      expect(await redis.exists(spillway.buffer.keys.lease)).toBe(0);
    } finally {
      await services().postgres.restart();
    }
    await new Promise((resolve) => setTimeout(resolve, 250));
    await drainAll(spillway);
    expect(await countRows(direct, 'source_documents')).toBe(acknowledged);
    expect(await countRows(direct, 'document_chunks')).toBe(2 * (acknowledged - 1));
    expect((await spillway.buffer.stats()).backlog).toBe(0);
    // The limit still stands, and now there is room again.
    await expect(spillway.write({ changes: [document()] })).resolves.toMatchObject({ accepted: 1 });
  });
});

describe('reads and operator calls at maxmemory', () => {
  // Redis refuses every command queued in a MULTI while it is out of memory (EXECABORT), read
  // or not: whatever must answer at maxmemory runs as single commands or no-writes scripts.
  let engine: TestEngine;
  const doc = uuid();
  const child = chunk(doc, 0);
  let version: string;
  let deadId: string;
  beforeAll(async () => {
    engine = await createTestEngine(services(), 'full-reads', {
      backlogLimit: 100_000_000,
      backlogBytesLimit: 10 * 1024 ** 3,
    });
    const { spillway, redis } = engine;
    // A dead letter (its document does not exist), then pending writes left undrained.
    await spillway.write({ changes: [chunk(uuid(), 0)] });
    await drainAll(spillway);
    deadId = (await spillway.listDeadLetters())[0]?.changesetId as string;
    ({ version } = await spillway.write({ changes: [document(doc), child] }));
    const used = Number(/used_memory:(\d+)/.exec(await redis.info('memory'))?.[1]);
    await redis.config('SET', 'maxmemory', String(used + 1024 * 1024));
    let refused: unknown;
    while (refused === undefined) {
      const other = uuid();
      await spillway
        .write({ changes: [document(other), chunk(other, 0), chunk(other, 1)] })
        .catch((error: unknown) => {
          refused = error;
        });
    }
    expect((refused as Error).message).toMatch(/Redis is out of memory/);
  });
  afterAll(async () => {
    await engine.redis.config('SET', 'maxmemory', '0');
    await engine.close();
  });

  it('read answers with the pending row', async () => {
    expect(
      await engine.spillway.read({ table: 'source_documents', key: { document_uuid: doc } }),
    ).toMatchObject({ record: { document_uuid: doc }, pending: true });
  });

  it('read by parent answers with the pending child', async () => {
    expect(
      await engine.spillway.readChildren({
        table: 'document_chunks',
        where: { document_uuid: doc },
      }),
    ).toMatchObject({ records: [{ chunk_uuid: child.record.chunk_uuid }], pending: true });
  });

  it('changesetStatus answers', async () => {
    expect(await engine.spillway.changesetStatus([version])).toEqual([
      { version, status: 'pending' },
    ]);
  });

  it('tombstone pruning answers (nothing to prune while the backlog holds changesets)', async () => {
    expect(await engine.spillway.pruneTombstones()).toBe(0);
  });

  it('dead letters are listed and purged', async () => {
    const { spillway } = engine;
    expect((await spillway.listDeadLetters()).map((l) => l.changesetId)).toEqual([deadId]);
    expect(await spillway.purgeDeadLetters({ changesetIds: [deadId] })).toEqual([deadId]);
    expect(await spillway.listDeadLetters()).toEqual([]);
  });
});

describe('a cache that lost its data', () => {
  it('resumes the drain within one sync after FLUSHALL, although the token counter restarted', async () => {
    const engine = await createTestEngine(services(), 'flushed');
    try {
      const { spillway, redis, direct } = engine;
      for (let i = 0; i < 5; i += 1) {
        await spillway.write({ changes: [document()] });
        await drainAll(spillway);
      }
      await redis.flushall();

      const doc = uuid();
      await spillway.write({ changes: [document(doc, { status: 'processing' })] });
      const drained = await spillway.drain(Date.now() + 10_000);
      expect(drained).toMatchObject({ stoppedBy: 'empty', applied: 1, cacheLost: true });
      expect(await countRows(direct, 'source_documents')).toBe(6);
    } finally {
      await engine.close();
    }
  });

  it('applies new writes over what the lost cache wrote, whatever the new node clock says, and health says the data was lost', async () => {
    const engine = await createTestEngine(services(), 'clock-behind');
    try {
      const { spillway, redis, direct } = engine;
      const doc = uuid();
      await spillway.write({ changes: [document(doc)] });
      // The old node's clock ran an hour ahead: every version it handed out is in the future.
      await redis.xsetid(spillway.buffer.keys.backlog, `${Date.now() + 3_600_000}-0`);
      await spillway.write({
        changes: [patchDocument(doc, { status: 'processing', page_count: 1 })],
      });
      await drainAll(spillway);

      // A new, empty node takes over with a correct clock: its versions are an hour lower.
      await redis.flushall();
      const written: number[] = [];
      for (let i = 2; i <= 12; i += 1) {
        await spillway.write({ changes: [patchDocument(doc, { page_count: i })] });
        written.push(i);
      }
      expect(
        await spillway.read({ table: 'source_documents', key: { document_uuid: doc } }),
      ).toMatchObject({
        record: { page_count: 12 },
        pending: true,
      });
      const drained = await spillway.drain(Date.now() + 10_000);
      expect(drained).toMatchObject({ stoppedBy: 'empty', cacheLost: true, deadLettered: 0 });
      const row = await direct.query(
        'SELECT status, page_count FROM source_documents WHERE document_uuid = $1',
        [doc],
      );
      expect(row.rows[0]).toEqual({ status: 'processing', page_count: 12 });
      expect(
        await spillway.read({ table: 'source_documents', key: { document_uuid: doc } }),
      ).toMatchObject({
        record: { page_count: 12 },
        pending: false,
      });

      const health = await spillway.health();
      expect(health.status).toBe('degraded');
      expect(health.cache.dataLostAt).toEqual(expect.any(String));
      expect(health.reasons.join('\n')).toMatch(/cache data lost at .*acknowledge-cache-loss/);
      const fence = await direct.query('SELECT cache_lost_at FROM spillway.drain_fence');
      expect(fence.rows[0].cache_lost_at).toBeInstanceOf(Date);

      // Later writes keep winning, and the operator's acknowledgement clears the report.
      await spillway.write({ changes: [patchDocument(doc, { page_count: 13 })] });
      await drainAll(spillway);
      expect(
        (
          await direct.query('SELECT page_count FROM source_documents WHERE document_uuid = $1', [
            doc,
          ])
        ).rows[0].page_count,
      ).toBe(13);
      await spillway.acknowledgeCacheLoss();
      expect(await spillway.health()).toMatchObject({ status: 'ok', reasons: [] });
    } finally {
      await engine.close();
    }
  });
});
