/**
 * Every function of the contract through the local runner, called with @aws-sdk/client-lambda as
 * another program would call the deployed functions: success paths, the error shapes the SDK sees,
 * Event and DryRun invocations, and unknown functions.
 */
import { randomUUID } from 'node:crypto';
import { ResourceNotFoundException } from '@aws-sdk/client-lambda';
import { describe, expect, it } from 'vitest';
import { call, eventually, invoke, useLocalRunner } from '../support/local-runner.js';

const local = useLocalRunner({
  label: 'e2e-functions',
  env: {
    // Only explicit `sync` invocations drain here (the timer's first one finds nothing), so that
    // tests see what is pending and what sync returns.
    SYNC_INTERVAL_MS: '3600000',
    SYNC_IDLE_WAIT_MS: '0',
    // A cached row stays fresh for the whole file: what the read cache answers is deterministic.
    READ_CACHE_TTL_MS: '3600000',
  },
});

const document = (id: string, status = 'pending') => ({
  op: 'upsert',
  table: 'source_documents',
  record: { document_uuid: id, filename: `${id}.pdf`, status },
});

async function documentRow(id: string): Promise<Record<string, unknown> | undefined> {
  const { rows } = await local.direct.query(
    'SELECT * FROM source_documents WHERE document_uuid = $1',
    [id],
  );
  return rows[0] as Record<string, unknown> | undefined;
}

describe('the local runner serves the contract', () => {
  it('write waits for its changeset to be applied with waitForSyncMs, and read tells where changesets stand', async () => {
    const id = randomUUID();
    const [waited] = await Promise.all([
      call<{ version: string; status: string }>(local.lambda, 'write', {
        changes: [document(id)],
        waitForSyncMs: 10_000,
      }),
      (async () => {
        await new Promise((resolve) => setTimeout(resolve, 500));
        await call(local.lambda, 'sync', {});
      })(),
    ]);
    expect(waited).toMatchObject({ accepted: 1, status: 'applied' });
    const pending = await call<{ version: string }>(local.lambda, 'write', {
      changes: [document(randomUUID())],
      waitForSyncMs: 300,
    });
    expect(pending).toMatchObject({ status: 'pending' });
    expect(
      await call(local.lambda, 'read', { changesets: [waited.version, pending.version] }),
    ).toEqual({
      changesets: [
        { version: waited.version, status: 'applied' },
        { version: pending.version, status: 'pending' },
      ],
    });
    const refused = await invoke(local.lambda, 'read', { changesets: ['not-a-version'] });
    expect(refused.functionError).toBe('Unhandled');
    expect(refused.payload).toMatchObject({
      errorType: 'ValidationError',
      errorMessage: expect.stringMatching(/^changesets\[0\]: expected a version/),
    });
  });

  it('migrate ran at start: a second run applies nothing and skips every migration', async () => {
    const result = await call<{ applied: string[]; skipped: string[] }>(
      local.lambda,
      'migrate',
      {},
    );
    expect(result.applied).toEqual([]);
    expect(result.skipped).toEqual([
      '0000_spillway_bookkeeping',
      '0001_pipeline_tables',
      '0002_spillway_epochs',
    ]);
  });

  it('migrate answers a custom resource provider: migrates on Create, leaves everything on Delete', async () => {
    const created = await call(local.lambda, 'migrate', {
      RequestType: 'Create',
      ResourceProperties: {},
    });
    expect(created).toEqual({
      PhysicalResourceId: 'spillway-migrations',
      Data: { Applied: '', Skipped: '3' },
    });
    const deleted = await call(local.lambda, 'migrate', {
      RequestType: 'Delete',
      PhysicalResourceId: 'spillway-migrations',
    });
    expect(deleted).toEqual({ PhysicalResourceId: 'spillway-migrations' });
    expect(
      (await local.direct.query('SELECT count(*)::int AS n FROM source_documents')).rows,
    ).toEqual([{ n: expect.any(Number) }]);
  });

  it('write acknowledges, read sees the pending row, sync drains it, read sees it synced', async () => {
    const id = randomUUID();
    const written = await call<{ accepted: number; changesetId: string }>(local.lambda, 'write', {
      changes: [document(id)],
    });
    expect(written.accepted).toBe(1);
    expect(written.changesetId).toMatch(/^[0-9a-f-]{36}$/);

    const pending = await call<{ record: Record<string, unknown>; pending: boolean }>(
      local.lambda,
      'read',
      { table: 'source_documents', key: { document_uuid: id } },
    );
    expect(pending).toMatchObject({
      pending: true,
      record: { document_uuid: id, status: 'pending' },
    });
    expect(await documentRow(id)).toBeUndefined();

    const synced = await call<Record<string, unknown>>(local.lambda, 'sync', {});
    expect(synced).toMatchObject({ stoppedBy: 'empty', backlog: 0, deadLettered: 0 });
    expect(synced.applied).toBeGreaterThanOrEqual(1);
    expect(await documentRow(id)).toMatchObject({ document_uuid: id, status: 'pending' });

    const read = await call(local.lambda, 'read', {
      table: 'source_documents',
      key: { document_uuid: id },
    });
    expect(read).toMatchObject({ pending: false, record: { document_uuid: id } });
  });

  it('read answers a synced row from the read cache until a change to it is settled, and health reports the cache', async () => {
    const id = randomUUID();
    await call(local.lambda, 'write', { changes: [document(id)] });
    await call(local.lambda, 'sync', {});
    const key = { table: 'source_documents', key: { document_uuid: id } };
    expect(await call(local.lambda, 'read', key)).toMatchObject({
      record: { filename: `${id}.pdf` },
      pending: false,
    });
    // Changed behind Spillway's back: the cached row answers, without the database.
    await local.direct.query(
      `UPDATE source_documents SET filename = 'behind.pdf' WHERE document_uuid = $1`,
      [id],
    );
    expect(await call(local.lambda, 'read', key)).toEqual({
      record: expect.objectContaining({ filename: `${id}.pdf` }),
      pending: false,
    });
    const health = await call<{ readCache: { entries: number; bytes: number } }>(
      local.lambda,
      'health',
      {},
    );
    expect(health.readCache).toMatchObject({ bytesLimit: 16 * 1024 * 1024 });
    expect(health.readCache.entries).toBeGreaterThanOrEqual(1);
    expect(health.readCache.bytes).toBeGreaterThan(0);
    // A change through Spillway overlays the cached row, and settling it removes the row.
    await call(local.lambda, 'write', {
      changes: [
        { op: 'patch', table: 'source_documents', key: key.key, set: { status: 'completed' } },
      ],
    });
    expect(await call(local.lambda, 'read', key)).toMatchObject({
      record: { filename: `${id}.pdf`, status: 'completed' },
      pending: true,
    });
    await call(local.lambda, 'sync', {});
    expect(await call(local.lambda, 'read', key)).toMatchObject({
      record: { filename: 'behind.pdf', status: 'completed' },
      pending: false,
    });
  });

  it('sync prunes the tombstone of a deleted row once the backlog is empty and no dead letter is older', async () => {
    const id = randomUUID();
    await call(local.lambda, 'write', { changes: [document(id)] });
    await call(local.lambda, 'write', {
      changes: [{ op: 'delete', table: 'source_documents', key: { document_uuid: id } }],
    });
    await call(local.lambda, 'admin', { action: 'purge', all: true });
    const synced = await call<Record<string, unknown>>(local.lambda, 'sync', {});
    expect(synced).toMatchObject({ stoppedBy: 'empty', backlog: 0, tombstonesPruned: 1 });
    const left = await local.direct.query(
      'SELECT count(*)::int AS n FROM spillway."public.source_documents" WHERE deleted',
    );
    expect(left.rows[0].n).toBe(0);
  });

  it('health reports both dependencies, the backlog and the breaker', async () => {
    await call(local.lambda, 'write', { changes: [document(randomUUID())] });
    const health = await call<Record<string, unknown>>(local.lambda, 'health', {});
    expect(health).toMatchObject({
      status: 'ok',
      breaker: 'closed',
      deadLetters: 0,
      checks: { redis: { ok: true }, database: { ok: true } },
    });
    expect(health.backlog).toBeGreaterThanOrEqual(1);
    expect(health.oldestPendingMs).toBeGreaterThanOrEqual(0);
    await call(local.lambda, 'sync', {});
  });

  it('admin peeks at the backlog, lists dead letters, and replays and purges them', async () => {
    const id = randomUUID();
    const { changesetId } = await call<{ changesetId: string }>(local.lambda, 'write', {
      changes: [document(id)],
    });
    const peeked = await call<{ pending: { changesetId: string }[] }>(local.lambda, 'admin', {
      action: 'peek',
      limit: 10,
    });
    expect(peeked.pending.map((p) => p.changesetId)).toContain(changesetId);

    // A chunk of a document the database does not hold breaks a foreign key: a dead letter.
    const missing = randomUUID();
    const chunkId = randomUUID();
    const poison = await call<{ changesetId: string }>(local.lambda, 'write', {
      changes: [
        {
          op: 'upsert',
          table: 'document_chunks',
          record: { chunk_uuid: chunkId, document_uuid: missing, chunk_index: 0, text: 'orphan' },
        },
      ],
    });
    const drained = await call<{ deadLettered: number }>(local.lambda, 'sync', {});
    expect(drained.deadLettered).toBe(1);
    const listed = await call<{ deadLetters: { changesetId: string; reason: string }[] }>(
      local.lambda,
      'admin',
      { action: 'list' },
    );
    expect(listed.deadLetters.map((d) => d.changesetId)).toEqual([poison.changesetId]);
    expect(listed.deadLetters[0]?.reason).toMatch(/foreign key/);

    // Once the document exists, the replayed chunk applies.
    await call(local.lambda, 'write', { changes: [document(missing)] });
    await call(local.lambda, 'sync', {});
    expect(
      await call(local.lambda, 'admin', { action: 'replay', changesetIds: [poison.changesetId] }),
    ).toEqual({ replayed: [poison.changesetId] });
    await call(local.lambda, 'sync', {});
    const { rows } = await local.direct.query(
      'SELECT text FROM document_chunks WHERE chunk_uuid = $1',
      [chunkId],
    );
    expect(rows).toEqual([{ text: 'orphan' }]);

    const again = await call<{ changesetId: string }>(local.lambda, 'write', {
      changes: [
        {
          op: 'patch',
          table: 'source_documents',
          key: { document_uuid: randomUUID() },
          set: { status: 'failed' },
        },
      ],
    });
    await call(local.lambda, 'sync', {});
    expect(await call(local.lambda, 'admin', { action: 'purge', all: true })).toEqual({
      purged: [again.changesetId],
    });
    expect(await call(local.lambda, 'admin', { action: 'list' })).toEqual({
      deadLetters: [],
      nextCursor: null,
    });
  });

  it('an Event invocation answers 202 at once and its write happens', async () => {
    const id = randomUUID();
    const accepted = await invoke(local.lambda, 'write', { changes: [document(id)] }, 'Event');
    expect(accepted.statusCode).toBe(202);
    expect(accepted.payload).toBeUndefined();
    await eventually('the Event write to be buffered', async () => {
      const read = await call<{ pending: boolean }>(local.lambda, 'read', {
        table: 'source_documents',
        key: { document_uuid: id },
      });
      return read.pending;
    });
    // sync as an Event too, as the schedule invokes it.
    expect((await invoke(local.lambda, 'sync', {}, 'Event')).statusCode).toBe(202);
    await eventually(
      'the row to reach PostgreSQL',
      async () => (await documentRow(id)) !== undefined,
    );
  });

  it('a DryRun answers 204 and runs nothing', async () => {
    const id = randomUUID();
    const dry = await invoke(local.lambda, 'write', { changes: [document(id)] }, 'DryRun');
    expect(dry.statusCode).toBe(204);
    const read = await call(local.lambda, 'read', {
      table: 'source_documents',
      key: { document_uuid: id },
    });
    expect(read).toEqual({ record: null, pending: false });
  });

  it('bad input fails the invocation with ValidationError naming the path, and buffers nothing', async () => {
    const before = await call<{ backlog: number }>(local.lambda, 'health', {});
    const failed = await invoke(local.lambda, 'write', {
      changes: [
        document(randomUUID()),
        { op: 'upsert', table: 'source_documents', record: { document_uuid: 'nope' } },
      ],
    });
    expect(failed.statusCode).toBe(200);
    expect(failed.functionError).toBe('Unhandled');
    expect(failed.payload).toEqual({
      errorType: 'ValidationError',
      errorMessage: expect.stringMatching(/^changes\[1\]\.record\.document_uuid: /),
    });
    expect(Object.keys(failed.payload as object).sort()).toEqual(['errorMessage', 'errorType']);
    const after = await call<{ backlog: number }>(local.lambda, 'health', {});
    expect(after.backlog).toBe(before.backlog);

    const badAdmin = await invoke(local.lambda, 'admin', { action: 'drop-everything' });
    expect(badAdmin.functionError).toBe('Unhandled');
    expect(badAdmin.payload).toMatchObject({ errorType: 'ValidationError' });

    const badStep = await invoke(local.lambda, 'process-document', { text: 'no file name' });
    expect(badStep.payload).toMatchObject({
      errorType: 'ValidationError',
      errorMessage: expect.stringMatching(/^filename: /),
    });
  });

  it('replaying an unknown dead letter fails with NotFoundError', async () => {
    const failed = await invoke(local.lambda, 'admin', {
      action: 'replay',
      changesetIds: ['no-such-id'],
    });
    expect(failed.functionError).toBe('Unhandled');
    expect(failed.payload).toMatchObject({
      errorType: 'NotFoundError',
      errorMessage: expect.stringContaining('no-such-id'),
    });
  });

  it('process-document lands a text of control characters and one unbroken megabyte, whatever their encoded size', async () => {
    const controls = Array.from({ length: 400 }, () => '\u0001'.repeat(1_000)).join(' ');
    const word = 'x'.repeat(1_048_576);
    for (const text of [controls, word]) {
      const processed = await call<{ document_uuid: string; chunks: unknown[] }>(
        local.lambda,
        'process-document',
        { filename: `${randomUUID()}.txt`, text },
      );
      await call(local.lambda, 'sync', {});
      const { rows } = await local.direct.query<{ n: number; longest: number }>(
        'SELECT count(*)::int AS n, max(length(text))::int AS longest FROM document_chunks WHERE document_uuid = $1',
        [processed.document_uuid],
      );
      expect(rows[0]).toEqual({ n: processed.chunks.length, longest: 1_000 });
      expect(await documentRow(processed.document_uuid)).toMatchObject({ status: 'completed' });
    }
  });

  it('an unknown function is a 404 ResourceNotFoundException, as AWS answers', async () => {
    const error = await invoke(local.lambda, 'no-such-function', {}).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ResourceNotFoundException);
    expect((error as ResourceNotFoundException).$metadata.httpStatusCode).toBe(404);
    expect((error as Error).message).toBe(
      'Function not found: arn:aws:lambda:us-east-1:000000000000:function:no-such-function',
    );
    // So is a published version the runner does not have.
    const versioned = await invoke(local.lambda, 'write:7', {}).catch((e: unknown) => e);
    expect(versioned).toBeInstanceOf(ResourceNotFoundException);
  });

  it('a function can be named by its ARN', async () => {
    const health = await call(
      local.lambda,
      'arn:aws:lambda:us-east-1:000000000000:function:health',
      {},
    );
    expect(health).toMatchObject({ status: 'ok' });
  });
});
