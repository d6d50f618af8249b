import { afterAll, describe, expect, it } from 'vitest';
import {
  chunk,
  createTestEngine,
  document,
  drainAll,
  patchDocument,
  type TestEngine,
  tableRows,
  uuid,
} from '../support/engine.js';
import { useServices } from '../support/services.js';

const services = useServices();
let engine: TestEngine | undefined;
afterAll(async () => {
  await engine?.close();
});

describe('PostgreSQL killed with SIGKILL in the middle of a drain', () => {
  it('keeps accepting writes the whole time, then drains everything after the restart: nothing lost, nothing doubled', async () => {
    let killed: Promise<void> | undefined;
    let commits = 0;
    engine = await createTestEngine(services(), 'pg-kill', {
      batchSize: 10,
      breaker: { threshold: 3, cooldownMs: 100, maxCooldownMs: 400 },
      drainHooks: {
        afterCommit: () => {
          commits += 1;
          // Kill the database right after a commit, while the drainer goes on with the next batch.
          if (commits === 3) killed = services().postgres.kill();
        },
      },
    });
    const { spillway, direct } = engine;
    const acknowledged = {
      documents: new Set<string>(),
      chunks: new Set<string>(),
      completed: new Set<string>(),
    };

    let writing = true;
    const failures: unknown[] = [];
    const writer = (async () => {
      let n = 0;
      while (writing || n < 300) {
        const doc = uuid();
        const chunks = [uuid(), uuid()];
        try {
          await spillway.write({
            changes: [document(doc), chunk(doc, 0, chunks[0]), chunk(doc, 1, chunks[1])],
          });
          acknowledged.documents.add(doc);
          for (const c of chunks) acknowledged.chunks.add(c);
          if (n % 3 === 0) {
            await spillway.write({
              changes: [patchDocument(doc, { status: 'completed' })],
            });
            acknowledged.completed.add(doc);
          }
        } catch (error) {
          failures.push(error);
        }
        n += 1;
        await new Promise((r) => setTimeout(r, 2));
      }
    })();

    // The schedule: drain again and again, whatever the database does.
    const outcomes: string[] = [];
    const drainErrors: unknown[] = [];
    const until = Date.now() + 4_000;
    while (Date.now() < until) {
      try {
        const result = await spillway.drain(Date.now() + 500);
        outcomes.push(result.stoppedBy);
      } catch (error) {
        drainErrors.push(error);
      }
      if (killed !== undefined && outcomes.includes('breaker-open')) break;
      await new Promise((r) => setTimeout(r, 20));
    }
    expect(killed).toBeDefined();
    await killed;
    // The database stays down a while longer; writes go on being accepted.
    const backlogWhileDown = (await spillway.buffer.stats()).backlog;
    await new Promise((r) => setTimeout(r, 1_500));
    expect((await spillway.buffer.stats()).backlog).toBeGreaterThan(backlogWhileDown);
    expect((await spillway.health()).status).toBe('degraded');
    await services().postgres.restart();
    writing = false;
    await writer;

    expect(failures).toEqual([]);
    expect(drainErrors).toEqual([]);
    expect(outcomes).toContain('breaker-open');
    await drainAll(spillway, 60_000);

    const documents = await tableRows(direct, 'source_documents');
    const chunks = await tableRows(direct, 'document_chunks');
    expect(documents.size).toBe(acknowledged.documents.size);
    expect(chunks.size).toBe(acknowledged.chunks.size);
    for (const doc of acknowledged.documents) {
      const row = documents.get(JSON.stringify([doc]));
      expect(row?.status).toBe(acknowledged.completed.has(doc) ? 'completed' : 'pending');
    }
    for (const c of acknowledged.chunks) expect(chunks.has(JSON.stringify([c]))).toBe(true);
    expect(await spillway.health()).toMatchObject({
      status: 'ok',
      backlog: 0,
      deadLetters: 0,
      breaker: 'closed',
    });
  });
});
