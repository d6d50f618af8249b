/**
 * The read cache (`lambdas/io/redis-read-cache.ts`) against real Redis and PostgreSQL: a synced
 * row is answered from Redis while fresh, pending writes overlay it, settling removes it, a fill
 * racing a drain never leaves a row older than the database's (G4), during a database outage a
 * cached row answers marked stale, the cache stays within its bytes, and a write that meets a
 * full Redis drops the cache instead of failing (G5).
 */
import { describe, expect, it } from 'vitest';
import { UnavailableError } from '../../lambdas/core/errors.js';
import type { StoredRow } from '../../lambdas/core/overlay.js';
import { PostgresSink, type SinkOptions } from '../../lambdas/io/postgres-sink.js';
import type { Sink } from '../../lambdas/io/sink.js';
import type { Spillway, SpillwayOptions } from '../../lambdas/spillway.js';
import {
  document,
  drainAll,
  patchDocument,
  type TestEngine,
  useTestEngines,
  uuid,
} from '../support/engine.js';

const { services, engine } = useTestEngines();

/**
 * The engine's sink with every `fetchRow` counted, and held, once fetched, until the test lets
 * it return (`hold()` before the read, `release()` when the test is ready), so that a test can
 * interleave a read's fill with writes and drains deterministically.
 */
function observedSink(test: TestEngine) {
  let fetches = 0;
  let gate: { fetched: () => void; released: Promise<void>; release: () => void } | undefined;
  const sink = (options: SinkOptions): Sink => {
    const inner = test.sinkOptions.sink?.(options) ?? new PostgresSink(test.pool, options);
    return Object.assign(Object.create(inner) as Sink, {
      fetchRow: async (...args: Parameters<Sink['fetchRow']>): Promise<StoredRow> => {
        fetches += 1;
        const row = await inner.fetchRow(...args);
        const held = gate;
        gate = undefined;
        if (held !== undefined) {
          held.fetched();
          await held.released;
        }
        return row;
      },
    });
  };
  return {
    sink,
    fetches: () => fetches,
    /** Holds the next fetchRow once it has its row; resolves when it has it. */
    hold(): { fetched: Promise<void>; release: () => void } {
      let fetched!: () => void;
      let release!: () => void;
      const fetchedPromise = new Promise<void>((resolve) => {
        fetched = resolve;
      });
      const released = new Promise<void>((resolve) => {
        release = resolve;
      });
      gate = { fetched, released, release };
      return { fetched: fetchedPromise, release };
    },
  };
}

async function setup(label: string, options: Partial<SpillwayOptions> = {}) {
  const test = await engine(label);
  const observed = observedSink(test);
  const spillway = test.another({ sink: observed.sink, ...options });
  return { test, observed, spillway };
}

const readDocument = (spillway: Spillway, id: string) =>
  spillway.read({ table: 'source_documents', key: { document_uuid: id } });

describe('the read cache', () => {
  it('answers a synced row from Redis while it is fresh, overlays pending writes on it, and asks the database again once they are settled', async () => {
    const { test, observed, spillway } = await setup('fresh');
    const id = uuid();
    await spillway.write({ changes: [document(id, { page_count: 3 })] });
    await drainAll(spillway);

    expect(await readDocument(spillway, id)).toMatchObject({
      record: { status: 'pending', page_count: 3 },
      pending: false,
    });
    expect(observed.fetches()).toBe(1);
    expect((await spillway.health()).readCache).toMatchObject({ entries: 1 });
    const again = await readDocument(spillway, id);
    expect(again).toEqual({ record: expect.objectContaining({ page_count: 3 }), pending: false });
    expect(observed.fetches()).toBe(1);

    // A pending write overlays the cached row: still no database round trip.
    await spillway.write({ changes: [patchDocument(id, { status: 'completed' })] });
    expect(await readDocument(spillway, id)).toMatchObject({
      record: { status: 'completed', page_count: 3 },
      pending: true,
    });
    expect(observed.fetches()).toBe(1);

    // Settling takes the row out of the cache, and what it cost off the counter: the next read
    // asks the database.
    expect((await spillway.buffer.readCache.stats()).bytes).toBeGreaterThan(0);
    await drainAll(spillway);
    expect(await test.redis.hlen(spillway.buffer.keys.readCache)).toBe(0);
    expect(await spillway.buffer.readCache.stats()).toMatchObject({ entries: 0, bytes: 0 });
    expect(await readDocument(spillway, id)).toMatchObject({
      record: { status: 'completed', page_count: 3 },
      pending: false,
    });
    expect(observed.fetches()).toBe(2);
  });

  it('refuses the fill of a row fetched before a write to it was drained and settled (G4)', async () => {
    const { observed, spillway } = await setup('race-settled');
    const id = uuid();
    await spillway.write({ changes: [document(id)] });
    await drainAll(spillway);

    // A read misses, reserves the row's place and fetches the row as the database holds it...
    const held = observed.hold();
    const slowRead = readDocument(spillway, id);
    await held.fetched;
    // ...meanwhile a write to the row is acknowledged, drained and settled...
    await spillway.write({ changes: [patchDocument(id, { status: 'completed' })] });
    await drainAll(spillway);
    // ...and only then does the slow read fill the cache with what it fetched.
    held.release();
    expect(await slowRead).toMatchObject({ record: { status: 'pending' } });

    expect(await readDocument(spillway, id)).toMatchObject({
      record: { status: 'completed' },
      pending: false,
    });
  });

  it('removes a row filled while a write to it was pending once that write is settled (G4)', async () => {
    const { observed, spillway } = await setup('race-pending');
    const id = uuid();
    await spillway.write({ changes: [document(id)] });
    await drainAll(spillway);
    await spillway.write({ changes: [patchDocument(id, { status: 'completed' })] });

    // The read fetches the row before the drain commits the patch, and fills the cache with it
    // while the patch is still pending (it answers with the patch resolved on the row).
    const held = observed.hold();
    const read = readDocument(spillway, id);
    await held.fetched;
    held.release();
    expect(await read).toMatchObject({ record: { status: 'completed' }, pending: true });
    expect(await spillway.buffer.readCache.stats()).toMatchObject({ entries: 1 });

    // The drain commits the patch and removes its layer: the row fetched before must go too.
    await drainAll(spillway);
    expect(await readDocument(spillway, id)).toMatchObject({
      record: { status: 'completed' },
      pending: false,
    });
  });

  it('reads the overlay before the cache: a change settled between the two looks is not missed (G4)', async () => {
    const { test, spillway } = await setup('order');
    const id = uuid();
    await spillway.write({ changes: [document(id)] });
    await drainAll(spillway);
    await readDocument(spillway, id);
    await spillway.write({ changes: [patchDocument(id, { status: 'completed' })] });

    // Right after this read's first look (whichever it is), a drain commits the patch and
    // settles it: the second look must not pair a cached row with an overlay that lost the patch.
    const { buffer } = spillway;
    const cache = buffer.readCache;
    const [overlay, lookup] = [buffer.overlay.bind(buffer), cache.lookup.bind(cache)];
    let drained = false;
    const thenDrain = async <T>(look: Promise<T>): Promise<T> => {
      const seen = await look;
      if (!drained) {
        drained = true;
        await drainAll(test.spillway);
      }
      return seen;
    };
    buffer.overlay = (...args) => thenDrain(overlay(...args));
    cache.lookup = (...args) => thenDrain(lookup(...args));
    try {
      expect(await readDocument(spillway, id)).toMatchObject({ record: { status: 'completed' } });
      expect(drained).toBe(true);
    } finally {
      buffer.overlay = overlay;
      cache.lookup = lookup;
    }
  });

  it('READ_CACHE_MAX_BYTES=0 turns it off: every read asks the database and nothing is kept', async () => {
    const { test, observed, spillway } = await setup('off', { readCacheMaxBytes: 0 });
    const id = uuid();
    await spillway.write({ changes: [document(id)] });
    await drainAll(spillway);
    await readDocument(spillway, id);
    await readDocument(spillway, id);
    expect(observed.fetches()).toBe(2);
    expect(await test.redis.exists(spillway.buffer.keys.readCache)).toBe(0);
  });

  it('stays within its byte limit, keeping the rows read last', async () => {
    const limit = 4_096;
    const { test, spillway } = await setup('bounded', { readCacheMaxBytes: limit });
    const ids = Array.from({ length: 40 }, () => uuid());
    await spillway.write({ changes: ids.map((id) => document(id)) });
    await drainAll(spillway);
    for (const id of ids) await readDocument(spillway, id);

    const stats = await spillway.buffer.readCache.stats();
    expect(stats.bytes).toBeLessThanOrEqual(limit);
    expect(stats.entries).toBeGreaterThan(0);
    expect(stats.entries).toBeLessThan(ids.length);
    const cached = await test.redis.hkeys(spillway.buffer.keys.readCache);
    expect(cached).toContain(`source_documents:${JSON.stringify([ids.at(-1)])}`);
    expect(cached).not.toContain(`source_documents:${JSON.stringify([ids[0]])}`);
  });

  it('gives its memory to writes: a write that meets a full Redis drops the cache and is accepted (G5)', async () => {
    const { test, spillway } = await setup('oom', {
      // Only Redis's own memory limit could stop writes here.
      backlogLimit: 100_000_000,
      backlogBytesLimit: 10 * 1024 ** 3,
    });
    const ids = Array.from({ length: 200 }, () => uuid());
    const note = 'x'.repeat(10_000);
    for (let at = 0; at < ids.length; at += 50) {
      await spillway.write({
        changes: ids.slice(at, at + 50).map((id) => document(id, { error_message: note })),
      });
    }
    await drainAll(spillway);
    for (const id of ids) await readDocument(spillway, id);
    const filled = await spillway.buffer.readCache.stats();
    expect(filled.entries).toBe(ids.length);
    expect(filled.bytes).toBeGreaterThan(ids.length * note.length);

    // Redis is past its memory limit by less than the cache holds.
    const used = Number(/used_memory:(\d+)/.exec(await test.redis.info('memory'))?.[1]);
    await test.redis.config('SET', 'maxmemory', String(used - 512 * 1024));
    try {
      // The cache takes no memory now: a miss cannot reserve a place, and says so instead of failing.
      expect(
        await spillway.buffer.readCache.lookup('source_documents', JSON.stringify([uuid()])),
      ).toEqual({
        kind: 'miss',
        generation: null,
        stale: null,
      });
      const id = uuid();
      await expect(spillway.write({ changes: [document(id)] })).resolves.toMatchObject({
        accepted: 1,
      });
      expect(await spillway.buffer.readCache.stats()).toMatchObject({ entries: 0, bytes: 0 });
    } finally {
      await test.redis.config('SET', 'maxmemory', '0');
    }
  });

  it('answers a cached row during a database outage, marked stale with when it was cached; a row neither pending nor cached still fails', async () => {
    // TTL 0: every read asks the database, so only the outage makes the cache answer.
    const { test, spillway } = await setup('outage', { readCacheTtlMs: 0 });
    const [cached, patched, uncached] = [uuid(), uuid(), uuid()];
    await spillway.write({ changes: [cached, patched, uncached].map((id) => document(id)) });
    await drainAll(spillway);
    const before = Date.now();
    await readDocument(spillway, cached);
    await readDocument(spillway, patched);
    const after = Date.now();

    await services().postgres.kill();
    try {
      await spillway.write({ changes: [patchDocument(patched, { page_count: 7 })] });
      const stale = await readDocument(spillway, cached);
      expect(stale).toMatchObject({
        record: { document_uuid: cached, status: 'pending' },
        pending: false,
        stale: true,
      });
      const cachedAt = Date.parse(stale.cachedAt ?? '');
      expect(cachedAt).toBeGreaterThanOrEqual(before);
      expect(cachedAt).toBeLessThanOrEqual(after);
      // A pending patch resolves on the cached row, as on the database's.
      expect(await readDocument(spillway, patched)).toMatchObject({
        record: { document_uuid: patched, status: 'pending', page_count: 7 },
        pending: true,
        stale: true,
      });
      const error = await readDocument(spillway, uncached).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(UnavailableError);
      expect((error as UnavailableError).dependency).toBe('database');
      // Past the stale window a cached row no longer answers.
      const strict = test.another({ readCacheTtlMs: 0, readCacheStaleMs: 0 });
      await expect(readDocument(strict, cached)).rejects.toBeInstanceOf(UnavailableError);
    } finally {
      await services().postgres.restart();
    }
    const back = await readDocument(spillway, cached);
    expect(back).toEqual({
      record: expect.objectContaining({ status: 'pending' }),
      pending: false,
    });
  });
});
