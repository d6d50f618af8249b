import { describe, expect, it } from 'vitest';
import { BackpressureError, UnavailableError, ValidationError } from '../../lambdas/core/errors.js';
import { chunk, document, useTestEngines, uuid } from '../support/engine.js';

const { services, engine } = useTestEngines();

const doc = '7d0c2b8e-3d2f-4a51-9a53-0f9d0c8b1a11';
const good = document(doc);
const malformed: [string, unknown, string][] = [
  ['no changes property', {}, ''],
  ['changes not an array', { changes: {} }, 'changes'],
  ['empty changes', { changes: [] }, 'changes'],
  ['a change that is not an object', { changes: [good, 'upsert'] }, 'changes[1]'],
  ['unknown op', { changes: [{ ...good, op: 'merge' }] }, 'changes[0].op'],
  ['unknown table', { changes: [{ ...good, table: 'documents' }] }, 'changes[0].table'],
  [
    'SQL in the table name',
    { changes: [{ ...good, table: 'source_documents; DROP TABLE x' }] },
    'changes[0].table',
  ],
  ['unknown column', { changes: [document(doc, { colour: 'red' })] }, 'changes[0].record.colour'],
  [
    'SQL in a column name',
    { changes: [document(doc, { 'status = 1; --': 'x' })] },
    'changes[0].record',
  ],
  [
    '__proto__ as a column',
    { changes: [{ ...good, record: JSON.parse(`{"__proto__": 1, "document_uuid": "${doc}"}`) }] },
    'changes[0].record',
  ],
  [
    'SQL in a uuid value',
    { changes: [document("1' OR '1'='1")] },
    'changes[0].record.document_uuid',
  ],
  [
    'missing primary key',
    {
      changes: [
        { op: 'upsert', table: 'source_documents', record: { filename: 'x', status: 'pending' } },
      ],
    },
    'changes[0].record.document_uuid',
  ],
  [
    'missing NOT NULL column',
    {
      changes: [
        {
          op: 'upsert',
          table: 'source_documents',
          record: { document_uuid: doc, status: 'pending' },
        },
      ],
    },
    'changes[0].record.filename',
  ],
  [
    'integer as a string',
    { changes: [document(doc, { page_count: '3' })] },
    'changes[0].record.page_count',
  ],
  [
    'negative page count',
    { changes: [document(doc, { page_count: -1 })] },
    'changes[0].record.page_count',
  ],
  [
    'status outside its set',
    { changes: [document(doc, { status: 'done' })] },
    'changes[0].record.status',
  ],
  [
    'metadata not an object',
    { changes: [document(doc, { metadata: [1, 2] })] },
    'changes[0].record.metadata',
  ],
  [
    'confidence above 1',
    {
      changes: [
        {
          op: 'upsert',
          table: 'entity_mentions',
          record: {
            entity_uuid: uuid(),
            document_uuid: doc,
            entity_type: 'ORG',
            text: 'x',
            confidence: 1.5,
          },
        },
      ],
    },
    'changes[0].record.confidence',
  ],
  [
    'bad timestamp',
    { changes: [document(doc, { updated_at: 'yesterday' })] },
    'changes[0].record.updated_at',
  ],
  [
    'NUL in text',
    { changes: [document(doc, { filename: 'a\u0000b' })] },
    'changes[0].record.filename',
  ],
  [
    'patch without key',
    { changes: [{ op: 'patch', table: 'source_documents', set: { status: 'failed' } }] },
    'changes[0].key',
  ],
  [
    'patch with an empty set',
    { changes: [{ op: 'patch', table: 'source_documents', key: { document_uuid: doc }, set: {} }] },
    'changes[0].set',
  ],
  [
    'patch of the primary key',
    {
      changes: [
        {
          op: 'patch',
          table: 'source_documents',
          key: { document_uuid: doc },
          set: { document_uuid: uuid() },
        },
      ],
    },
    'changes[0].set.document_uuid',
  ],
  [
    'delete with an extra key column',
    {
      changes: [
        { op: 'delete', table: 'source_documents', key: { document_uuid: doc, filename: 'x' } },
      ],
    },
    'changes[0].key.filename',
  ],
  ['extra property on a change', { changes: [{ ...good, where: '1=1' }] }, 'changes[0].where'],
  ['too many changes', { changes: Array.from({ length: 11 }, () => good) }, 'changes'],
  [
    'oversize changeset',
    { changes: [document(doc, { error_message: 'x'.repeat(5_000) })] },
    'changes',
  ],
];

describe('write', () => {
  it.each(malformed)(
    'refuses %s with a ValidationError naming its path, and buffers nothing',
    async (_, input, path) => {
      const { spillway, redis, prefix } = await engine('malformed', {
        maxChangesPerChangeset: 10,
        maxChangesetBytes: 4_096,
      });
      const error = await spillway.write(input).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(ValidationError);
      expect((error as ValidationError).retryable).toBe(false);
      expect((error as ValidationError).path.startsWith(path)).toBe(true);
      expect(await redis.keys(`{${prefix}}*`)).toEqual([]);
    },
  );

  const perChange = malformed.filter(([, , path]) => path.startsWith('changes[0]'));
  it.each(perChange)(
    'refuses %s after a valid change of the same changeset, and buffers neither',
    async (_, input, path) => {
      const { spillway, redis, prefix } = await engine('malformed-second');
      const changes = [chunk(doc, 0), ...(input as { changes: unknown[] }).changes];
      const error = await spillway.write({ changes }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(ValidationError);
      expect(
        (error as ValidationError).path.startsWith(path.replace('changes[0]', 'changes[1]')),
      ).toBe(true);
      expect(await redis.keys(`{${prefix}}*`)).toEqual([]);
    },
  );

  it('stores a SQL-looking text value verbatim', async () => {
    const { spillway, direct } = await engine('sql-text');
    const id = uuid();
    const filename = "report'); DROP TABLE source_documents; --.pdf";
    await spillway.write({ changes: [document(id, { filename })] });
    await spillway.drain(Date.now() + 10_000);
    const row = await direct.query(
      'SELECT filename FROM source_documents WHERE document_uuid = $1',
      [id],
    );
    expect(row.rows[0].filename).toBe(filename);
  });

  it('acknowledges with the number of changes and a changeset id', async () => {
    const { spillway } = await engine('ack');
    const result = await spillway.write({ changes: [document(doc), chunk(doc, 0)] });
    expect(result.accepted).toBe(2);
    expect(result.changesetId).toMatch(/^[0-9a-f-]{36}$/);
    expect((await spillway.buffer.stats()).backlog).toBe(2);
  });

  it('a changeset larger than the remaining room is refused whole, never split', async () => {
    const { spillway } = await engine('room', { backlogLimit: 5 });
    await spillway.write({ changes: [document(uuid()), document(uuid()), document(uuid())] });
    const refused = await spillway
      .write({ changes: [document(uuid()), document(uuid()), document(uuid())] })
      .catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(BackpressureError);
    expect(await spillway.buffer.stats()).toMatchObject({ backlog: 3, pendingChangesets: 1 });
  });

  it('refuses with BackpressureError when Redis is out of memory (noeviction), and accepts again once there is room', async () => {
    const { spillway, redis } = await engine('oom');
    await redis.config('SET', 'maxmemory', '1');
    try {
      const refused = await spillway
        .write({ changes: [document(uuid())] })
        .catch((e: unknown) => e);
      expect(refused).toBeInstanceOf(BackpressureError);
      expect((refused as BackpressureError).message).toMatch(/out of memory/);
    } finally {
      await redis.config('SET', 'maxmemory', '0');
    }
    expect(await redis.config('GET', 'maxmemory-policy')).toEqual([
      'maxmemory-policy',
      'noeviction',
    ]);
    await expect(spillway.write({ changes: [document(uuid())] })).resolves.toMatchObject({
      accepted: 1,
    });
  });

  it('does not acknowledge a changeset that no replica confirmed when replica acknowledgements are required', async () => {
    // The harness runs a lone Redis: WAIT can never be satisfied, which is the failure path.
    const { spillway } = await engine('replica-acks', { replicaAcks: 1, replicaAckTimeoutMs: 50 });
    const error = await spillway.write({ changes: [document(uuid())] }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(UnavailableError);
    expect((error as UnavailableError).message).toMatch(
      /0 of 1 replicas confirmed it within 50 ms.*writing it again is safe/,
    );
  });

  it('fails with UnavailableError while Redis is down, and works again once it is back', async () => {
    const { spillway } = await engine('redis-down');
    await services().redis.kill();
    try {
      const error = await spillway.write({ changes: [document(uuid())] }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(UnavailableError);
      expect((error as UnavailableError).dependency).toBe('redis');
      expect((await spillway.health()).status).toBe('down');
    } finally {
      await services().redis.restart();
    }
    await expect(spillway.write({ changes: [document(uuid())] })).resolves.toMatchObject({
      accepted: 1,
    });
  });
});
