/**
 * Backlogs that stretch the limits: large changesets drain in bounded batches and bounded Redis
 * commands (G5), and backpressure by bytes comes before Redis runs out of memory.
 */
import { describe, expect, it } from 'vitest';
import { ADMIN_MAX_LIST_BYTES } from '../../lambdas/core/admin-request.js';
import { BackpressureError } from '../../lambdas/core/errors.js';
import { chunk, countRows, document, drainAll, useTestEngines, uuid } from '../support/engine.js';

const { engine } = useTestEngines();

function mention(doc: string) {
  return {
    op: 'upsert' as const,
    table: 'entity_mentions',
    record: { entity_uuid: uuid(), document_uuid: doc, entity_type: 'party', text: 'ACME Corp.' },
  };
}

const usedMemory = async (redis: { info(section: string): Promise<string> }) =>
  Number(/used_memory:(\d+)/.exec(await redis.info('memory'))?.[1]);

describe('a backlog of large changesets', () => {
  it('drains in batches bounded by changes, with every Redis command bounded, and lands everything', async () => {
    const batches: number[] = [];
    const { spillway, redis, direct } = await engine('large-changesets', {
      batchChanges: 5_000,
      drainHooks: {
        afterCommit: (batch) => {
          batches.push(batch.reduce((n, changeset) => n + changeset.changes.length, 0));
        },
      },
    });
    const doc = uuid();
    await spillway.write({ changes: [document(doc)] });
    for (let i = 0; i < 120; i += 1) {
      await spillway.write({ changes: Array.from({ length: 500 }, () => mention(doc)) });
    }
    await redis.config('SET', 'slowlog-log-slower-than', '0');
    await redis.slowlog('RESET');
    await redis.config('SET', 'slowlog-max-len', '100000');
    try {
      await drainAll(spillway, 60_000);
      // No command of the drain carried more than a bounded number of arguments.
      const log = (await redis.slowlog('GET', 100_000)) as [number, number, number, string[]][];
      const widest = Math.max(
        ...log.map(([, , , args]) => {
          const more = /\((\d+) more arguments\)/.exec(args.at(-1) ?? '');
          return args.length + Number(more?.[1] ?? 0);
        }),
      );
      expect(widest).toBeLessThan(4_000);
    } finally {
      await redis.config('SET', 'slowlog-log-slower-than', '10000');
    }
    expect(await countRows(direct, 'entity_mentions')).toBe(60_000);
    expect(Math.max(...batches)).toBeLessThanOrEqual(5_000);
    expect((await spillway.buffer.stats()).backlog).toBe(0);
    expect((await spillway.buffer.stats()).backlogBytes).toBe(0);
  });
});

/** A changeset of `count` chunks of one document, each with `textBytes` characters of text. */
function chunks(doc: string, count: number, textBytes: number, from = 0) {
  return Array.from({ length: count }, (_, n) => {
    const c = chunk(doc, from + n);
    return { ...c, record: { ...c.record, text: 'x'.repeat(textBytes) } };
  });
}

describe("the drainer's memory on a backlog of large changesets", () => {
  it('with the default settings, holds at most 4 MiB of stored changes in a batch, however many changes that is', async () => {
    // Changesets of chunks per batch (the document's own changeset may join the first).
    const batches: number[] = [];
    const { spillway, direct } = await engine('batch-bytes-default', {
      drainHooks: {
        afterCommit: (batch) => void batches.push(batch.filter((c) => c.changes.length > 1).length),
      },
    });
    const doc = uuid();
    await spillway.write({ changes: [document(doc)] });
    // 12 changesets of 850 chunks of 1,000 characters: about 1,010 KB of JSON each, 10,200 changes
    // in all, 3,400 in four of them: well under the 10,000 changes a batch may hold.
    for (let i = 0; i < 12; i += 1) {
      await spillway.write({ changes: chunks(doc, 850, 1_000, i * 850) });
    }
    await drainAll(spillway, 60_000);
    expect(await countRows(direct, 'document_chunks')).toBe(10_200);
    // Four such changesets fit in 4 MiB, five do not.
    expect(Math.max(...batches)).toBe(4);
  });

  it('never reads from Redis more changesets than a batch holds', async () => {
    const batches: number[] = [];
    const { spillway, redis, direct } = await engine('batch-reads', {
      batchChanges: 2_000,
      drainHooks: {
        afterCommit: (batch) => {
          batches.push(batch.reduce((n, changeset) => n + changeset.changes.length, 0));
        },
      },
    });
    // Ten changesets of 1,000 changes each (the first with the document they name).
    const doc = uuid();
    for (let i = 0; i < 10; i += 1) {
      const mentions = Array.from({ length: i === 0 ? 999 : 1_000 }, () => mention(doc));
      await spillway.write({ changes: i === 0 ? [document(doc), ...mentions] : mentions });
    }
    await redis.config('SET', 'slowlog-log-slower-than', '0');
    await redis.slowlog('RESET');
    await redis.config('SET', 'slowlog-max-len', '100000');
    let counts: number[];
    try {
      await drainAll(spillway, 60_000);
      const log = (await redis.slowlog('GET', 100_000)) as [number, number, number, string[]][];
      counts = log
        .map(([, , , args]) => args)
        .filter((args) => args[0]?.toLowerCase() === 'xreadgroup')
        .map((args) => Number(args[args.findIndex((a) => a.toLowerCase() === 'count') + 1]));
    } finally {
      await redis.config('SET', 'slowlog-log-slower-than', '10000');
    }
    expect(await countRows(direct, 'entity_mentions')).toBe(9_999);
    expect(Math.max(...batches)).toBeLessThanOrEqual(2_000);
    // Two changesets of 1,000 changes fill a batch: no read asks for more.
    expect(counts.length).toBeGreaterThan(0);
    expect(Math.max(...counts)).toBeLessThanOrEqual(2);
  });

  it('bounds a batch by the bytes of its changes as stored, and drains a changeset larger than the bound alone', async () => {
    const batches: { changesets: number; bytes: number }[] = [];
    const { spillway, direct } = await engine('batch-bytes', {
      batchBytes: 64 * 1024,
      drainHooks: {
        afterCommit: (batch) =>
          void batches.push({
            changesets: batch.length,
            bytes: batch.reduce((n, changeset) => n + (changeset.bytes ?? 0), 0),
          }),
      },
    });
    const doc = uuid();
    await spillway.write({ changes: [document(doc)] });
    let index = 0;
    const write = async (count: number) => {
      await spillway.write({ changes: chunks(doc, count, 1_000, index) });
      index += count;
    };
    // About 11 KB each, then one of about 110 KB, then small ones again.
    for (let i = 0; i < 8; i += 1) await write(10);
    await write(100);
    for (let i = 0; i < 8; i += 1) await write(10);
    await drainAll(spillway, 60_000);
    expect(await countRows(direct, 'document_chunks')).toBe(260);
    const large = batches.filter((b) => b.bytes > 64 * 1024);
    expect(large).toHaveLength(1);
    expect(large[0]?.changesets).toBe(1);
    expect(large[0]?.bytes).toBeGreaterThan(100_000);
    // The small ones share batches, each within the bound.
    expect(batches.filter((b) => b.changesets > 1).length).toBeGreaterThan(0);
    for (const b of batches) if (b.changesets > 1) expect(b.bytes).toBeLessThanOrEqual(64 * 1024);
  });
});

describe('backpressure by bytes', () => {
  it('charges small changesets no less than what Redis uses for them', async () => {
    const { spillway, redis } = await engine('bytes-small');
    const before = await usedMemory(redis);
    for (let i = 0; i < 2_000; i += 1) await spillway.write({ changes: [document()] });
    const used = (await usedMemory(redis)) - before;
    expect((await spillway.buffer.stats()).backlogBytes).toBeGreaterThanOrEqual(used);
  });

  it('refuses writes by the byte limit before Redis runs out of memory, and the charge does not understate what Redis uses', async () => {
    const { spillway, redis } = await engine('bytes', { backlogBytesLimit: 4 * 1024 * 1024 });
    const before = await usedMemory(redis);
    await redis.config('SET', 'maxmemory', String(before + 12 * 1024 * 1024));
    let refused: unknown;
    try {
      for (let i = 0; i < 10_000 && refused === undefined; i += 1) {
        const doc = uuid();
        const chunks = Array.from({ length: 4 }, (_, n) => {
          const c = chunk(doc, n);
          return { ...c, record: { ...c.record, text: 'x'.repeat(1_000) } };
        });
        await spillway.write({ changes: [document(doc), ...chunks] }).catch((error: unknown) => {
          refused = error;
        });
      }
      expect(refused).toBeInstanceOf(BackpressureError);
      expect((refused as Error).message).toMatch(/bytes of Redis; the limit is 4194304/);
      const charged = (await spillway.buffer.stats()).backlogBytes;
      const used = (await usedMemory(redis)) - before;
      expect(charged).toBeGreaterThan(3.5 * 1024 * 1024);
      expect(charged).toBeGreaterThanOrEqual(used);
      // ...and not by much: the limit still lets most of the memory it grants be used.
      expect(charged).toBeLessThan(used * 1.5);
    } finally {
      await redis.config('SET', 'maxmemory', '0');
    }
    await drainAll(spillway);
    expect((await spillway.buffer.stats()).backlogBytes).toBe(0);
  });
});

describe('listing dead letters', () => {
  it('pages large dead letters so that no answer exceeds the admin limit, and reaches every one through the cursor', async () => {
    const { spillway } = await engine('dead-pages');
    const missingDocument = uuid();
    const written: string[] = [];
    for (let i = 0; i < 8; i += 1) {
      const c = chunk(missingDocument, i);
      const result = await spillway.write({
        changes: [{ ...c, record: { ...c.record, text: 'x'.repeat(900_000) } }],
      });
      written.push(result.changesetId);
    }
    await drainAll(spillway);

    const seen: string[] = [];
    let cursor: string | undefined;
    let pages = 0;
    for (;;) {
      const page = await spillway.pageDeadLetters({
        limit: 100,
        maxBytes: ADMIN_MAX_LIST_BYTES,
        ...(cursor === undefined ? {} : { cursor }),
      });
      pages += 1;
      expect(Buffer.byteLength(JSON.stringify(page))).toBeLessThan(ADMIN_MAX_LIST_BYTES + 4_096);
      seen.push(...page.deadLetters.map((letter) => letter.changesetId));
      if (page.nextCursor === null) break;
      cursor = page.nextCursor;
    }
    expect(pages).toBeGreaterThan(1);
    expect(seen).toEqual(written);

    // A limit pages too: one letter at a time, in order.
    const first = await spillway.pageDeadLetters({ limit: 1, maxBytes: ADMIN_MAX_LIST_BYTES });
    const second = await spillway.pageDeadLetters({
      limit: 1,
      maxBytes: ADMIN_MAX_LIST_BYTES,
      cursor: first.nextCursor ?? '',
    });
    expect([...first.deadLetters, ...second.deadLetters].map((l) => l.changesetId)).toEqual(
      written.slice(0, 2),
    );
  });
});
