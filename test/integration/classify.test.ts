/**
 * G7: a change the database refuses is dead-lettered and the rest lands; a fault of the whole
 * system stops the drain, is reported by `health`, and heals by itself once fixed.
 */
import { describe, expect, it } from 'vitest';
import { SchemaRegistry } from '../../lambdas/core/schema.js';
import { pipelineTables } from '../../lambdas/schema/tables.js';
import type { DrainResult, Spillway } from '../../lambdas/spillway.js';
import { countRows, document, useTestEngines, uuid } from '../support/engine.js';

const { engine } = useTestEngines();

/** Short waits between tries after a systemic fault, so that healing shows within a test. */
const quickHeal = { breaker: { threshold: 5, cooldownMs: 100, maxCooldownMs: 400 } };

/** Drain as the schedule would, until the backlog is empty or `ms` passed; the last result. */
async function drainFor(spillway: Spillway, ms: number): Promise<DrainResult> {
  const until = Date.now() + ms;
  for (;;) {
    const result = await spillway.drain(Math.min(until, Date.now() + 5_000));
    if (result.stoppedBy === 'empty' || Date.now() >= until) return result;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

function task(id = uuid()) {
  return {
    op: 'upsert' as const,
    table: 'processing_tasks',
    record: { task_id: id, task_type: 'ocr', status: 'queued', attempts: 0 },
  };
}

const PROCESSING_TASKS_DDL = `CREATE TABLE processing_tasks (
  task_id uuid PRIMARY KEY,
  document_uuid uuid REFERENCES source_documents (document_uuid) ON DELETE RESTRICT,
  task_type text NOT NULL,
  status text NOT NULL CHECK (status IN ('queued', 'running', 'succeeded', 'failed')),
  attempts integer NOT NULL DEFAULT 0,
  error_message text,
  started_at timestamptz,
  completed_at timestamptz
)`;

describe('classifying database failures', () => {
  it('a trigger that raises on one row dead-letters that changeset with its message, and the other rows land', async () => {
    const { spillway, direct } = await engine('trigger-refuses-one');
    await direct.query(`CREATE FUNCTION quarantine() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        IF NEW.filename = 'quarantined.pdf' THEN
          RAISE EXCEPTION 'document % is quarantined', NEW.document_uuid;
        END IF;
        RETURN NEW;
      END $$`);
    await direct.query(
      'CREATE TRIGGER quarantine BEFORE INSERT OR UPDATE ON source_documents FOR EACH ROW EXECUTE FUNCTION quarantine()',
    );
    const poison = uuid();
    for (let i = 0; i < 20; i += 1) {
      if (i === 9) {
        await spillway.write({ changes: [document(poison, { filename: 'quarantined.pdf' })] });
      }
      await spillway.write({ changes: [document()] });
    }

    const result = await drainFor(spillway, 8_000);

    expect(result).toMatchObject({ stoppedBy: 'empty', deadLettered: 1, applied: 20 });
    expect(await countRows(direct, 'source_documents')).toBe(20);
    const letters = await spillway.listDeadLetters();
    expect(letters).toHaveLength(1);
    expect(letters[0]).toMatchObject({
      sqlState: 'P0001',
      reason: `document ${poison} is quarantined (SQLSTATE P0001)`,
    });
    expect((await spillway.health()).status).toBe('ok');
  });

  it('a dropped column stops the drain without dead-lettering, health names it, and the drain resumes once the column is back', async () => {
    const { spillway, direct } = await engine('dropped-column', quickHeal);
    // Changesets before the first one the fault touches land.
    for (let i = 0; i < 3; i += 1) await spillway.write({ changes: [task()] });
    await direct.query('ALTER TABLE source_documents DROP COLUMN content_type');
    for (let i = 0; i < 20; i += 1) await spillway.write({ changes: [document()] });

    const stopped = await spillway.drain(Date.now() + 10_000);

    expect(stopped).toMatchObject({ stoppedBy: 'systemic', deadLettered: 0, applied: 3 });
    expect(stopped.fault).toMatchObject({ sqlState: '42703', table: 'source_documents' });
    expect(stopped.fault?.message).toContain('content_type');
    expect(await countRows(direct, 'processing_tasks')).toBe(3);
    expect(await spillway.listDeadLetters()).toEqual([]);
    expect((await spillway.buffer.stats()).backlog).toBe(20);
    const health = await spillway.health();
    expect(health.status).toBe('degraded');
    expect(health.checks.database.error).toBe(`systemic error: ${stopped.fault?.message}`);
    // Held back: the next drain within the backoff does not try the batch again.
    expect(await spillway.drain(Date.now() + 10_000)).toMatchObject({
      stoppedBy: 'systemic',
      batches: 0,
    });

    await direct.query('ALTER TABLE source_documents ADD COLUMN content_type text');
    const resumed = await drainFor(spillway, 8_000);

    expect(resumed.stoppedBy).toBe('empty');
    expect(await countRows(direct, 'source_documents')).toBe(20);
    expect(await spillway.listDeadLetters()).toEqual([]);
    expect(await spillway.control.fault()).toBeNull();
    expect((await spillway.health()).status).toBe('ok');
  });

  it('a dropped table stops the drain without dead-lettering, and everything lands once the table is created again', async () => {
    const { spillway, direct } = await engine('dropped-table', quickHeal);
    await direct.query('DROP TABLE processing_tasks');
    for (let i = 0; i < 20; i += 1) await spillway.write({ changes: [task()] });

    const stopped = await spillway.drain(Date.now() + 10_000);

    expect(stopped).toMatchObject({ stoppedBy: 'systemic', deadLettered: 0, applied: 0 });
    expect(stopped.fault).toMatchObject({ sqlState: '42P01', table: 'processing_tasks' });
    expect(await spillway.listDeadLetters()).toEqual([]);
    const health = await spillway.health();
    expect(health.status).toBe('degraded');
    expect(health.checks.database.error).toMatch(/^systemic error: .*processing_tasks/);

    await direct.query(PROCESSING_TASKS_DDL);
    const resumed = await drainFor(spillway, 8_000);

    expect(resumed.stoppedBy).toBe('empty');
    expect(await countRows(direct, 'processing_tasks')).toBe(20);
    expect(await spillway.listDeadLetters()).toEqual([]);
    expect((await spillway.health()).status).toBe('ok');
  });

  it('a refusal every changeset of a batch meets alike is systemic: nothing is dead-lettered, and it heals once lifted', async () => {
    const { spillway, direct } = await engine('frozen-writes', quickHeal);
    await direct.query(`CREATE FUNCTION frozen() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN RAISE EXCEPTION 'writes are frozen for maintenance'; END $$`);
    await direct.query(
      'CREATE TRIGGER frozen BEFORE INSERT OR UPDATE ON source_documents FOR EACH ROW EXECUTE FUNCTION frozen()',
    );
    for (let i = 0; i < 6; i += 1) await spillway.write({ changes: [document()] });

    const stopped = await spillway.drain(Date.now() + 10_000);

    expect(stopped).toMatchObject({ stoppedBy: 'systemic', deadLettered: 0 });
    expect(stopped.fault).toMatchObject({ sqlState: 'P0001', table: 'source_documents' });
    expect(stopped.fault?.message).toContain('writes are frozen for maintenance');
    expect(await spillway.listDeadLetters()).toEqual([]);

    await direct.query('DROP TRIGGER frozen ON source_documents');
    expect((await drainFor(spillway, 8_000)).stoppedBy).toBe('empty');
    expect(await countRows(direct, 'source_documents')).toBe(6);
    expect(await spillway.listDeadLetters()).toEqual([]);
  });

  it('a change to a table the definitions no longer include is dead-lettered with that reason, and the rest lands', async () => {
    const { spillway, direct, another } = await engine('unknown-table');
    const before = uuid();
    const after = uuid();
    await spillway.write({ changes: [document(before)] });
    await spillway.write({ changes: [task()] });
    await spillway.write({ changes: [document(after)] });
    // Today's definitions no longer include processing_tasks (nor anything pointing at it).
    const withoutTasks = another({
      registry: new SchemaRegistry(pipelineTables.filter((t) => t.name !== 'processing_tasks')),
    });

    const result = await drainFor(withoutTasks, 8_000);

    expect(result).toMatchObject({ stoppedBy: 'empty', deadLettered: 1, applied: 2 });
    expect(await countRows(direct, 'source_documents')).toBe(2);
    const letters = await withoutTasks.listDeadLetters();
    expect(letters).toHaveLength(1);
    expect(letters[0]?.reason).toBe(
      'change to table processing_tasks, which the table definitions no longer include',
    );
    expect(letters[0]?.changes[0]).toMatchObject({ op: 'upsert', table: 'processing_tasks' });
  });
});
