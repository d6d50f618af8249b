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
