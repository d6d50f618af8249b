/**
 * Where a changeset stands, by the version `write` returned: pending, applied, dead-lettered
 * (with the reason), or unknown once the cache lost what would tell.
 */
import { describe, expect, it } from 'vitest';
import { chunk, document, drainAll, useTestEngines, uuid } from '../support/engine.js';

const { engine } = useTestEngines();

describe('changeset status', () => {
  it('is pending until drained, then applied or dead-lettered with the reason', async () => {
    const { spillway } = await engine('status');
    const good = await spillway.write({ changes: [document(uuid())] });
    const poison = await spillway.write({ changes: [chunk(uuid(), 0)] });
    expect(good.version).toMatch(/^\d+-\d+$/);
    expect(await spillway.changesetStatus([good.version, poison.version])).toEqual([
      { version: good.version, status: 'pending' },
      { version: poison.version, status: 'pending' },
    ]);
    await drainAll(spillway);
    const [applied, dead] = await spillway.changesetStatus([good.version, poison.version]);
    expect(applied).toEqual({ version: good.version, status: 'applied' });
    expect(dead).toMatchObject({
      version: poison.version,
      status: 'dead-lettered',
      changesetId: poison.changesetId,
      sqlState: '23503',
      reason: expect.stringMatching(/foreign key/),
    });
  });

  it('is unknown for a version the cache cannot vouch for: never written, or written before it lost its data', async () => {
    const { spillway, redis } = await engine('status-unknown');
    const written = await spillway.write({ changes: [document(uuid())] });
    await drainAll(spillway);
    const [later] = await spillway.changesetStatus([`${Date.now() + 3_600_000}-0`]);
    expect(later?.status).toBe('unknown');
    await redis.flushall();
    await spillway.write({ changes: [document(uuid())] });
    expect(await spillway.changesetStatus([written.version])).toEqual([
      { version: written.version, status: 'unknown' },
    ]);
  });
});
