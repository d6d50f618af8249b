/**
 * Values land as written, whatever their type: the drain carries rows to PostgreSQL as JSON
 * (`core/sql.ts`), and a JSON null, a JSON string that reads "null", or text full of escapes
 * must come out of it as the same SQL values an INSERT with bind parameters would store.
 */
import { describe, expect, it } from 'vitest';
import { document, drainAll, useTestEngines, uuid } from '../support/engine.js';

const { engine } = useTestEngines();

describe('values of every type', () => {
  it('land as written: null is SQL NULL in every column type, jsonb keeps its JSON, text its escapes', async () => {
    const { spillway, direct } = await engine('value-types');
    const withNulls = uuid();
    const withValues = uuid();
    const patched = uuid();
    const text = 'quote " backslash \\ tab \t newline \n unicode é ✓ null';
    await spillway.write({
      changes: [
        document(withNulls, {
          content_type: null,
          page_count: null,
          metadata: null,
          updated_at: null,
        }),
        document(withValues, {
          content_type: text,
          page_count: 0,
          metadata: { nested: { list: [1, 'two', null, true] }, text: 'null' },
          updated_at: '2024-03-01T12:34:56.789Z',
        }),
        document(patched, { metadata: { before: true }, page_count: 3 }),
      ],
    });
    await drainAll(spillway);
    await spillway.write({
      changes: [
        {
          op: 'patch',
          table: 'source_documents',
          key: { document_uuid: patched },
          set: { metadata: null, page_count: null },
        },
      ],
    });
    await drainAll(spillway);

    const { rows } = await direct.query<Record<string, unknown>>(
      `SELECT document_uuid, content_type, page_count, metadata, updated_at,
        metadata IS NULL AS metadata_is_sql_null
       FROM source_documents WHERE document_uuid = ANY($1::uuid[])`,
      [[withNulls, withValues, patched]],
    );
    const byId = new Map(rows.map((r) => [r.document_uuid, r]));
    expect(byId.get(withNulls)).toMatchObject({
      content_type: null,
      page_count: null,
      metadata: null,
      updated_at: null,
      metadata_is_sql_null: true,
    });
    expect(byId.get(withValues)).toMatchObject({
      content_type: text,
      page_count: 0,
      metadata: { nested: { list: [1, 'two', null, true] }, text: 'null' },
      updated_at: new Date('2024-03-01T12:34:56.789Z'),
      metadata_is_sql_null: false,
    });
    expect(byId.get(patched)).toMatchObject({
      page_count: null,
      metadata: null,
      metadata_is_sql_null: true,
    });
  });
});
