/**
 * Dead-letter reasons say why the database refused a change (message, SQLSTATE, table,
 * constraint) in a bounded length, and never quote the row: they are stored, listed and logged.
 */
import { describe, expect, it } from 'vitest';
import { MAX_REASON_CHARS } from '../../lambdas/core/reasons.js';
import { document, drainAll, useTestEngines, uuid } from '../support/engine.js';

const { engine } = useTestEngines();

describe('dead-letter reasons', () => {
  it('name the constraint and SQLSTATE a refused row broke, bounded, without quoting the row', async () => {
    const { spillway, direct } = await engine('bounded-reasons');
    // A rule of the database that the table definitions do not know: only PostgreSQL refuses.
    await direct.query(
      "ALTER TABLE source_documents ADD CONSTRAINT no_drafts CHECK (filename NOT LIKE 'draft-%')",
    );
    const secret = `private-${'x'.repeat(20_000)}`;
    const refused = uuid();
    await spillway.write({
      changes: [document(refused, { filename: 'draft-1.pdf', error_message: secret })],
    });
    await spillway.write({ changes: [document(uuid())] });
    await drainAll(spillway);

    const [letter, ...others] = await spillway.listDeadLetters();
    expect(others).toEqual([]);
    const reason = letter?.reason ?? '';
    expect(reason).toMatch(/violates check constraint "no_drafts"/);
    expect(reason).toMatch(/SQLSTATE 23514/);
    expect(reason).toMatch(/table source_documents/);
    expect(reason.length).toBeLessThanOrEqual(MAX_REASON_CHARS);
    expect(reason).not.toContain('private-');
    expect(reason).not.toContain('Failing row');
  });
});
