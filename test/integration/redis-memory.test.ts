/**
 * What a pending change costs Redis (issue 9): a change is stored once, in its backlog entry;
 * the read overlay refers to it and the parent indexes stay compact small hashes. And a cache
 * written by the layout before (overlay values holding a copy of each row's layer, parent
 * indexes as sets) keeps working after an upgrade: its pending changes are read and drained.
 */
import { describe, expect, it } from 'vitest';
import {
  chunk,
  countRows,
  document,
  drainAll,
  tableRows,
  useTestEngines,
  uuid,
} from '../support/engine.js';

const { engine } = useTestEngines();

const usedMemory = async (redis: { info(section: string): Promise<string> }) =>
  Number(/used_memory:(\d+)/.exec(await redis.info('memory'))?.[1]);

/** A document with four chunks of 1,000 characters, as the example pipeline writes them. */
function documentWithChunks() {
  const doc = uuid();
  const chunks = Array.from({ length: 4 }, (_, n) => {
    const c = chunk(doc, n);
    return { ...c, record: { ...c.record, text: 'x'.repeat(1_000) } };
  });
  return { doc, chunks, changes: [document(doc), ...chunks] };
}

describe('the memory of a pending change', () => {
  it('is at most 1.5 times its JSON for changesets of 1,000-character chunks, measured with INFO memory', async () => {
    const { spillway, redis } = await engine('memory-chunks');
    // One changeset first, so that the keys every buffer has exist before the measurement.
    await spillway.write({ changes: documentWithChunks().changes });
    const before = await usedMemory(redis);
    let json = 0;
    let changes = 0;
    for (let i = 0; i < 1_000; i += 1) {
      const changeset = { changes: documentWithChunks().changes };
      json += Buffer.byteLength(JSON.stringify(changeset));
      changes += changeset.changes.length;
      await spillway.write(changeset);
    }
    const used = (await usedMemory(redis)) - before;
    const ratio = used / json;
    console.log(
      `Redis ${Math.round(used / changes)} B per pending change, JSON ${Math.round(json / changes)} B (${ratio.toFixed(2)} x)`,
    );
    expect(ratio).toBeLessThanOrEqual(1.5);
  });

  it('keeps a row overlay and a parent index in compact listpack encoding', async () => {
    const { spillway, redis } = await engine('memory-encoding');
    const { doc, chunks } = documentWithChunks();
    await spillway.write({ changes: [document(doc), ...chunks] });
    await spillway.write({ changes: [{ ...chunks[0], record: { ...chunks[0]?.record } }] });
    const { keys } = spillway.buffer;
    const overlay = keys.overlay('document_chunks', JSON.stringify([chunks[0]?.record.chunk_uuid]));
    const parent = keys.parentIndex('document_chunks', 'document_uuid', JSON.stringify(doc));
    expect(await redis.hlen(overlay)).toBe(2);
    expect(await redis.object('ENCODING', overlay)).toBe('listpack');
    expect(await redis.hlen(parent)).toBe(4);
    expect(await redis.object('ENCODING', parent)).toBe('listpack');
  });
});

describe('a cache written by the layout before references', () => {
  it('reads and drains pending changes whose overlay holds layers and whose parent indexes are sets, also beside new writes', async () => {
    const { spillway, redis, direct } = await engine('memory-upgrade');
    const { keys } = spillway.buffer;
    // The buffer exists (meta, stream) as any deployed one does.
    await spillway.write({ changes: [document()] });

    // What the write script before wrote for a document with two chunks, as it wrote it.
    const doc = uuid();
    const [first, second] = [chunk(doc, 0), chunk(doc, 1)];
    const docRecord = { document_uuid: doc, filename: 'old.pdf', status: 'pending' };
    const payload = JSON.stringify({
      id: uuid(),
      changes: [
        ['upsert', 'source_documents', docRecord],
        ['upsert', 'document_chunks', first.record],
        ['upsert', 'document_chunks', second.record],
      ],
    });
    const id = (await redis.xadd(keys.backlog, '*', 'cs', payload, 'b', 3_000)) as string;
    await redis.incrby(keys.backlogChanges, 3);
    await redis.incrby(keys.backlogBytes, 3_000);
    const rowKey = (value: string) => JSON.stringify([value]);
    await redis.hset(
      keys.overlay('source_documents', rowKey(doc)),
      id,
      `|${JSON.stringify(['upsert', docRecord])}`,
    );
    for (const c of [first, second]) {
      await redis.hset(
        keys.overlay('document_chunks', rowKey(c.record.chunk_uuid)),
        id,
        `|${JSON.stringify(['upsert', c.record])}`,
      );
    }
    const parent = keys.parentIndex('document_chunks', 'document_uuid', JSON.stringify(doc));
    await redis.sadd(parent, rowKey(first.record.chunk_uuid), rowKey(second.record.chunk_uuid));

    // The new code reads them...
    expect(
      await spillway.read({ table: 'source_documents', key: { document_uuid: doc } }),
    ).toMatchObject({ record: { filename: 'old.pdf' }, pending: true });
    // ...and writes beside them: a patch of an old row, and a third chunk into the old set.
    const third = chunk(doc, 2);
    await spillway.write({
      changes: [
        {
          op: 'patch',
          table: 'document_chunks',
          key: { chunk_uuid: first.record.chunk_uuid },
          set: { text: 'edited' },
        },
        third,
      ],
    });
    expect(await redis.type(parent)).toBe('set');
    const children = await spillway.readChildren({
      table: 'document_chunks',
      where: { document_uuid: doc },
    });
    expect(children.pending).toBe(true);
    expect(children.records.map((r) => [r.chunk_uuid, r.text])).toEqual(
      [
        [first.record.chunk_uuid, 'edited'],
        [second.record.chunk_uuid, second.record.text],
        [third.record.chunk_uuid, third.record.text],
      ].sort((a, b) => String(a[0]).localeCompare(String(b[0]))),
    );

    await drainAll(spillway);
    expect(await countRows(direct, 'document_chunks')).toBe(3);
    const stored = await tableRows(direct, 'document_chunks');
    expect(stored.get(rowKey(first.record.chunk_uuid))).toMatchObject({ text: 'edited' });
    expect(stored.get(rowKey(second.record.chunk_uuid))).toMatchObject({
      text: second.record.text,
    });
    // Nothing of either layout is left once drained.
    expect(await redis.exists(parent)).toBe(0);
    expect(await redis.exists(keys.overlay('source_documents', rowKey(doc)))).toBe(0);
    expect(
      await redis.exists(keys.overlay('document_chunks', rowKey(first.record.chunk_uuid))),
    ).toBe(0);
    expect(await spillway.buffer.stats()).toMatchObject({ backlog: 0, backlogBytes: 0 });
    expect(
      await spillway.read({ table: 'source_documents', key: { document_uuid: doc } }),
    ).toMatchObject({ record: { filename: 'old.pdf' }, pending: false });
  });
});
