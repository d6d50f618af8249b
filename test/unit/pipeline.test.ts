import { describe, expect, it } from 'vitest';
import { ValidationError } from '../../lambdas/core/errors.js';
import {
  chunkRows,
  entityRows,
  packChangesets,
  parseDocumentInput,
  parseEntitiesInput,
} from '../../lambdas/example/pipeline.js';

const DOC = '3f1c2a9e-5b7d-4c2e-9a1b-2c3d4e5f6a7b';
const TEXT =
  'Acme Holdings Inc. agreed to pay $2,500,000 to Blue River LLC on March 3, 2024. ' +
  'Questions go to counsel@acme-legal.com before the hearing in Case No. 23-cv-1042.';

describe('the example pipeline', () => {
  it('derives the same document id from the same file name and text, and another from other text', () => {
    const a = parseDocumentInput({ filename: 'a.pdf', text: TEXT });
    const b = parseDocumentInput({ filename: 'a.pdf', text: TEXT });
    const c = parseDocumentInput({ filename: 'a.pdf', text: `${TEXT} More.` });
    expect(a.document_uuid).toBe(b.document_uuid);
    expect(a.document_uuid).not.toBe(c.document_uuid);
    expect(
      parseDocumentInput({ document_uuid: DOC.toUpperCase(), filename: 'x', text: '' }),
    ).toMatchObject({ document_uuid: DOC, content_type: null });
  });

  it.each([
    [{ text: 'x' }, 'filename'],
    [{ filename: ' ', text: 'x' }, 'filename'],
    [{ filename: 'a' }, 'text'],
    [{ filename: 'a', text: 'x', document_uuid: 'not-a-uuid' }, 'document_uuid'],
    [{ filename: 'a', text: 'x', content_type: 3 }, 'content_type'],
  ])('refuses a document input naming the field (%j)', (input, path) => {
    expect(() => parseDocumentInput(input)).toThrow(ValidationError);
    try {
      parseDocumentInput(input);
    } catch (error) {
      expect((error as ValidationError).path).toBe(path);
    }
  });

  it('gives chunks ids from the document and the index, the same on every call', () => {
    const long = Array.from({ length: 200 }, (_, i) => `word${i}`).join(' ');
    const first = chunkRows(DOC, long, { size: 100, overlap: 20 });
    const again = chunkRows(DOC, long, { size: 100, overlap: 20 });
    expect(first.length).toBeGreaterThan(5);
    expect(again).toEqual(first);
    expect(new Set(first.map((row) => row.chunk_uuid)).size).toBe(first.length);
    for (const row of first)
      expect(long.slice(Number(row.char_start), Number(row.char_end))).toBe(row.text);
  });

  it('finds the entities of each chunk and pairs those of one sentence, with stable ids', () => {
    const chunk = '0b6f2c1e-8a8e-4d55-9f43-1d2e3f4a5b6c';
    const input = parseEntitiesInput({
      document_uuid: DOC,
      chunks: [{ chunk_uuid: chunk, chunk_index: 0, text: TEXT }],
    });
    const rows = entityRows(input);
    const types = rows.mentions.map((m) => m.entity_type);
    expect(types).toEqual(
      expect.arrayContaining(['organization', 'money', 'date', 'email', 'case_number']),
    );
    for (const mention of rows.mentions) {
      expect(TEXT.slice(Number(mention.start_offset), Number(mention.end_offset))).toBe(
        mention.text,
      );
    }
    // The first sentence holds two organisations, an amount and a date: 4 choose 2 pairs.
    const firstSentence = rows.mentions.filter(
      (m) => Number(m.start_offset) < TEXT.indexOf('Questions'),
    );
    expect(firstSentence).toHaveLength(4);
    const ids = new Set(firstSentence.map((m) => m.entity_uuid));
    const withinFirst = rows.relationships.filter(
      (r) => ids.has(r.source_entity_uuid as string) && ids.has(r.target_entity_uuid as string),
    );
    expect(withinFirst).toHaveLength(6);
    expect(rows.relationships.every((r) => r.relationship_type === 'co_occurs_with')).toBe(true);
    expect(entityRows(input)).toEqual(rows);
  });

  it('refuses entity input naming the chunk at fault', () => {
    expect(() =>
      parseEntitiesInput({
        document_uuid: DOC,
        chunks: [{ chunk_uuid: DOC, text: 'a' }, { text: 'b' }],
      }),
    ).toThrow(/chunks\[1\]\.chunk_uuid/);
    expect(() => parseEntitiesInput({ document_uuid: DOC })).toThrow(/chunks/);
  });

  it('packs changesets by their measured JSON size, escapes included, never past the limits', () => {
    // A control character takes 6 bytes once JSON-escaped: 1,000 of them, 6,000 bytes.
    const changes = Array.from({ length: 10 }, (_, i) => ({ i, text: '\u0001'.repeat(1_000) }));
    const packed = packChangesets(changes, { maxChanges: 1_000, maxBytes: 20_000 });
    for (const changeset of packed) {
      expect(Buffer.byteLength(JSON.stringify(changeset))).toBeLessThanOrEqual(20_000);
    }
    expect(packed.map((c) => c.changes.length)).toEqual([3, 3, 3, 1]);
    expect(packed.flatMap((c) => c.changes)).toEqual(changes);
    expect(packChangesets(changes, { maxChanges: 4, maxBytes: 1_000_000 }).length).toBe(3);
  });

  it('refuses, naming it, a change too large for any changeset', () => {
    expect(() =>
      packChangesets([{ text: 'a' }, { text: 'b'.repeat(200) }], { maxChanges: 10, maxBytes: 100 }),
    ).toThrow(ValidationError);
    expect(() =>
      packChangesets([{ text: 'a' }, { text: 'b'.repeat(200) }], { maxChanges: 10, maxBytes: 100 }),
    ).toThrow(/changes\[1\]/);
  });
});
