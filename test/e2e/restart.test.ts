/**
 * G1 across a crash of the whole local runner: kill -9 in the middle of a drain, with writes
 * still coming in, loses nothing that was acknowledged. A new runner on the same Redis and
 * PostgreSQL finishes the drain, and every row ends as its last acknowledged write left it (G2).
 */
import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { call, eventually, invoke, lambdaClient, useLocalRunner } from '../support/local-runner.js';

// The tests start (and kill) the runners themselves.
const local = useLocalRunner({
  label: 'e2e-restart',
  services: { redis: { appendOnly: true } },
  env: {
    // Small batches make a drain long enough to kill in the middle of; a short lease lets the
    // next runner take over soon after the crash.
    SYNC_BATCH_SIZE: '5',
    SYNC_LEASE_MS: '1500',
    SYNC_IDLE_WAIT_MS: '0',
  },
  start: false,
});

async function rowCount(): Promise<number> {
  const { rows } = await local.direct.query<{ n: number }>(
    'SELECT count(*)::int AS n FROM source_documents',
  );
  return rows[0]?.n ?? 0;
}

describe('a crash of the local runner', () => {
  it('kill -9 in the middle of a drain loses no acknowledged write', async () => {
    // Only explicit syncs drain in the first runner, so the crash lands inside one of them.
    const first = await local.startRunner({ SYNC_INTERVAL_MS: '3600000' });
    const lambda = lambdaClient(first.url);
    /** document id → the page_count of its last acknowledged write */
    const expected = new Map<string, number>();
    /** Writes the crash cut off: Redis may or may not hold them. */
    const unanswered: { id: string; pages: number }[] = [];
    const write = async (id: string, pages: number, op: 'upsert' | 'patch') => {
      const change =
        op === 'upsert'
          ? {
              op,
              table: 'source_documents',
              record: {
                document_uuid: id,
                filename: `${id}.pdf`,
                status: 'pending',
                page_count: pages,
              },
            }
          : {
              op,
              table: 'source_documents',
              key: { document_uuid: id },
              set: { page_count: pages },
            };
      try {
        const result = await invoke(lambda, 'write', { changes: [change] });
        if (result.functionError === undefined) expected.set(id, pages);
      } catch {
        unanswered.push({ id, pages });
      }
    };

    const ids = Array.from({ length: 600 }, () => randomUUID());
    for (let i = 0; i < ids.length; i += 30) {
      await Promise.all(ids.slice(i, i + 30).map((id) => write(id, 1, 'upsert')));
    }
    expect(expected.size).toBe(ids.length);

    // Drain in the background while patches keep coming; crash once rows started landing.
    expect((await invoke(lambda, 'sync', {}, 'Event')).statusCode).toBe(202);
    let crashed = false;
    const patches = (async () => {
      for (let round = 2; !crashed; round += 1) {
        const id = ids[round % ids.length] as string;
        await write(id, round, 'patch');
      }
    })();
    await eventually('the drain to start applying', async () => (await rowCount()) > 0, 20_000);
    crashed = true;
    await first.kill();
    await patches;
    lambda.destroy();
    const landed = await rowCount();
    expect(landed).toBeGreaterThan(0);
    expect(landed).toBeLessThan(ids.length);

    const second = await local.startRunner({ SYNC_INTERVAL_MS: '100' });
    const again = lambdaClient(second.url);
    await eventually(
      'the new runner to drain the backlog',
      async () => {
        const health = await call<{ backlog: number }>(again, 'health', {});
        return health.backlog === 0 && (await rowCount()) === ids.length;
      },
      30_000,
    );
    const { rows } = await local.direct.query<{ document_uuid: string; page_count: number }>(
      'SELECT document_uuid, page_count FROM source_documents',
    );
    const actual = new Map(rows.map((row) => [row.document_uuid, row.page_count]));
    for (const { id, pages } of unanswered) {
      if (actual.get(id) === pages) expected.set(id, pages);
    }
    expect(actual).toEqual(expected);
    expect(await call(again, 'admin', { action: 'list' })).toEqual({
      deadLetters: [],
      nextCursor: null,
    });
    again.destroy();
  });
});
