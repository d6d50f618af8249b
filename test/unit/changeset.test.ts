import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  type Change,
  DEFAULT_LIMITS,
  type JsonValue,
  MAX_JSON_DEPTH,
  rowKeyOf,
  validateChangeset,
  validateRowKey,
} from '../../lambdas/core/changeset.js';
import { ValidationError } from '../../lambdas/core/errors.js';
import { type ColumnDef, SchemaRegistry, type TableDef } from '../../lambdas/core/schema.js';
import { pipelineRegistry, pipelineTables } from '../../lambdas/schema/tables.js';

const DOC = '0b7a1f3e-5c2d-4e8f-9a6b-1c2d3e4f5a6b';
const CHUNK = '1c8b2a4f-6d3e-4f9a-8b7c-2d3e4f5a6b7c';
const ENTITY = '2d9c3b5a-7e4f-4a0b-9c8d-3e4f5a6b7c8d';
const ENTITY_2 = '3e0d4c6b-8f5a-4b1c-8d9e-4f5a6b7c8d9e';
const TASK = '4f1e5d7c-9a6b-4c2d-9e0f-5a6b7c8d9e0f';

/** A table with one column of every type, and a composite primary key. */
const samples: TableDef = {
  name: 'samples',
  primaryKey: ['tenant', 'id'],
  columns: {
    tenant: { type: 'text', nullable: false },
    id: { type: 'uuid', nullable: false },
    count: { type: 'integer' },
    total: { type: 'bigint' },
    ratio: { type: 'real' },
    score: { type: 'double precision', min: -10, max: 10 },
    flag: { type: 'boolean' },
    payload: { type: 'jsonb' },
    seen_at: { type: 'timestamptz' },
  },
};
const sampleRegistry = new SchemaRegistry([samples]);
const sampleKey = { tenant: 'acme', id: DOC };

const doc = (extra: Record<string, unknown> = {}): Record<string, unknown> => ({
  document_uuid: DOC,
  filename: 'report.pdf',
  status: 'pending',
  ...extra,
});
const upsertDoc = (extra: Record<string, unknown> = {}) => ({
  changes: [{ op: 'upsert', table: 'source_documents', record: doc(extra) }],
});
const patchDoc = (set: unknown, key: unknown = { document_uuid: DOC }) => ({
  changes: [{ op: 'patch', table: 'source_documents', key, set }],
});
const upsertSample = (extra: Record<string, unknown>) => ({
  changes: [{ op: 'upsert', table: 'samples', record: { ...sampleKey, ...extra } }],
});

function validationErrorOf(run: () => unknown): ValidationError {
  try {
    run();
  } catch (error) {
    if (error instanceof ValidationError) return error;
    throw error;
  }
  throw new Error('expected a ValidationError, but the changeset was accepted');
}

/** [what is wrong, input, registry, the path the error must name, a fragment of its message] */
type Malformed = [string, unknown, SchemaRegistry, string, RegExp];
const P = pipelineRegistry;
const S = sampleRegistry;

const cyclic: Record<string, unknown> = {};
cyclic.self = cyclic;
let deep: unknown = 'bottom';
for (let i = 0; i < MAX_JSON_DEPTH + 1; i++) deep = [deep];
const sparse = [{ op: 'delete', table: 'source_documents', key: { document_uuid: DOC } }];
sparse.length = 2;

const malformed: Malformed[] = [
  // the envelope
  ['a string instead of a changeset', 'changes', P, '', /expected a changeset.*found "changes"/],
  ['null instead of a changeset', null, P, '', /found null/],
  ['an array instead of a changeset', [], P, '', /found an array/],
  ['a changeset without changes', {}, P, 'changes', /missing/],
  ['an extra top-level property', { changes: [], dryRun: true }, P, 'dryRun', /unknown property/],
  ['changes that are not an array', { changes: { 0: {} } }, P, 'changes', /expected an array/],
  ['empty changes', { changes: [] }, P, 'changes', /at least one change/],
  [
    'more changes than the limit',
    { changes: Array.from({ length: 1001 }, () => upsertDoc().changes[0]) },
    P,
    'changes',
    /at most 1000 changes; found 1001/,
  ],
  [
    'a changeset over the byte limit',
    upsertDoc({ error_message: 'x'.repeat(DEFAULT_LIMITS.maxBytes) }),
    P,
    'changes',
    /at most 1048576 bytes/,
  ],
  // the change
  ['a change that is a number', { changes: [42] }, P, 'changes[0]', /expected a change.*found 42/],
  ['a change that is an array', { changes: [[]] }, P, 'changes[0]', /found an array/],
  ['a hole in the changes array', { changes: sparse }, P, 'changes[1]', /found undefined/],
  [
    'a change without op',
    { changes: [{ table: 'source_documents', record: doc() }] },
    P,
    'changes[0].op',
    /missing/,
  ],
  [
    'an unknown op',
    { changes: [{ op: 'insert', table: 'source_documents', record: doc() }] },
    P,
    'changes[0].op',
    /expected "upsert", "patch" or "delete"; found "insert"/,
  ],
  [
    'an extra property on an upsert',
    { changes: [{ op: 'upsert', table: 'source_documents', record: doc(), key: {} }] },
    P,
    'changes[0].key',
    /unknown property; a upsert change has exactly op, table, record/,
  ],
  [
    'a set on a delete',
    {
      changes: [
        { op: 'delete', table: 'source_documents', key: { document_uuid: DOC }, set: { a: 1 } },
      ],
    },
    P,
    'changes[0].set',
    /unknown property/,
  ],
  [
    'an upsert without record',
    { changes: [{ op: 'upsert', table: 'source_documents' }] },
    P,
    'changes[0].record',
    /missing/,
  ],
  [
    'a record that is an array',
    { changes: [{ op: 'upsert', table: 'source_documents', record: [] }] },
    P,
    'changes[0].record',
    /expected an object/,
  ],
  // tables
  [
    'a table name that is not a string',
    { changes: [{ op: 'upsert', table: 7, record: doc() }] },
    P,
    'changes[0].table',
    /expected a table name/,
  ],
  [
    'an unknown table',
    { changes: [{ op: 'upsert', table: 'documents', record: doc() }] },
    P,
    'changes[0].table',
    /unknown table "documents"/,
  ],
  [
    'a SQL-looking table name',
    { changes: [{ op: 'upsert', table: 'source_documents; DROP TABLE x', record: doc() }] },
    P,
    'changes[0].table',
    /unknown table "source_documents; DROP TABLE x"/,
  ],
  [
    '__proto__ as a table name',
    JSON.parse('{"changes":[{"op":"delete","table":"__proto__","key":{}}]}'),
    P,
    'changes[0].table',
    /unknown table/,
  ],
  [
    'constructor as a table name',
    { changes: [{ op: 'delete', table: 'constructor', key: {} }] },
    P,
    'changes[0].table',
    /unknown table/,
  ],
  // columns
  [
    'an unknown column',
    upsertDoc({ colour: 'red' }),
    P,
    'changes[0].record.colour',
    /unknown column/,
  ],
  [
    '__proto__ as a column',
    JSON.parse(
      `{"changes":[{"op":"upsert","table":"source_documents","record":{"document_uuid":"${DOC}","filename":"a","status":"pending","__proto__":{"x":1}}}]}`,
    ),
    P,
    'changes[0].record.__proto__',
    /unknown column/,
  ],
  [
    'toString as a column',
    upsertDoc({ toString: 'x' }),
    P,
    'changes[0].record.toString',
    /unknown column/,
  ],
  [
    'constructor as a patched column',
    patchDoc({ constructor: 'x' }),
    P,
    'changes[0].set.constructor',
    /unknown column/,
  ],
  [
    'a SQL-looking column name',
    upsertDoc({ 'filename = NULL; DROP TABLE source_documents; --': 'x' }),
    P,
    'changes[0].record["filename = NULL; DROP TABLE source_documents; --"]',
    /unknown column/,
  ],
  // full rows
  [
    'an upsert missing its primary key',
    {
      changes: [
        { op: 'upsert', table: 'source_documents', record: { filename: 'a', status: 'pending' } },
      ],
    },
    P,
    'changes[0].record.document_uuid',
    /missing; an upsert needs the whole primary key/,
  ],
  [
    'an upsert missing part of a composite key',
    { changes: [{ op: 'upsert', table: 'samples', record: { id: DOC } }] },
    S,
    'changes[0].record.tenant',
    /missing/,
  ],
  [
    'an upsert missing a NOT NULL column',
    {
      changes: [
        {
          op: 'upsert',
          table: 'source_documents',
          record: { document_uuid: DOC, status: 'pending' },
        },
      ],
    },
    P,
    'changes[0].record.filename',
    /NOT NULL without a default/,
  ],
  [
    'null in a NOT NULL column',
    upsertDoc({ status: null }),
    P,
    'changes[0].record.status',
    /NOT NULL.*found null/,
  ],
  [
    'null as the primary key',
    upsertDoc({ document_uuid: null }),
    P,
    'changes[0].record.document_uuid',
    /found null/,
  ],
  [
    'null in a NOT NULL column that has a default',
    {
      changes: [
        {
          op: 'upsert',
          table: 'processing_tasks',
          record: { task_id: TASK, task_type: 'ocr', status: 'queued', attempts: null },
        },
      ],
    },
    P,
    'changes[0].record.attempts',
    /NOT NULL/,
  ],
  // CHECK constraints
  [
    'a status outside the allowed set',
    upsertDoc({ status: 'done' }),
    P,
    'changes[0].record.status',
    /one of "pending", "processing", "completed", "failed"; found "done"/,
  ],
  [
    'a status in the wrong case',
    upsertDoc({ status: 'PENDING' }),
    P,
    'changes[0].record.status',
    /found "PENDING"/,
  ],
  [
    'a negative page_count',
    upsertDoc({ page_count: -1 }),
    P,
    'changes[0].record.page_count',
    /between 0 and 2147483647; found -1/,
  ],
  [
    'a confidence of 1.5',
    {
      changes: [
        {
          op: 'patch',
          table: 'entity_mentions',
          key: { entity_uuid: ENTITY },
          set: { confidence: 1.5 },
        },
      ],
    },
    P,
    'changes[0].set.confidence',
    /between 0 and 1; found 1.5/,
  ],
  [
    'metadata as an array',
    upsertDoc({ metadata: [1, 2] }),
    P,
    'changes[0].record.metadata',
    /a JSON object; found an array/,
  ],
  [
    'metadata as a string of JSON',
    upsertDoc({ metadata: '{"a":1}' }),
    P,
    'changes[0].record.metadata',
    /a JSON object/,
  ],
  // types of the shipped columns
  [
    'the string "NaN" as an integer',
    upsertDoc({ page_count: 'NaN' }),
    P,
    'changes[0].record.page_count',
    /expected an integer.*found "NaN"/,
  ],
  [
    'a numeric string as an integer',
    upsertDoc({ page_count: '3' }),
    P,
    'changes[0].record.page_count',
    /found "3"/,
  ],
  [
    'a fraction as an integer',
    upsertDoc({ page_count: 2.5 }),
    P,
    'changes[0].record.page_count',
    /found 2.5/,
  ],
  [
    'an integer beyond int32',
    upsertDoc({ page_count: 2147483648 }),
    P,
    'changes[0].record.page_count',
    /found 2147483648/,
  ],
  [
    'a number as text',
    upsertDoc({ filename: 42 }),
    P,
    'changes[0].record.filename',
    /expected a string; found 42/,
  ],
  [
    'a NUL character in text',
    upsertDoc({ filename: 'a\u0000b' }),
    P,
    'changes[0].record.filename',
    /NUL/,
  ],
  [
    'a lone surrogate in text',
    upsertDoc({ filename: 'a\ud800b' }),
    P,
    'changes[0].record.filename',
    /lone UTF-16 surrogate/,
  ],
  [
    'a SQL-looking value in a uuid column',
    {
      changes: [
        { op: 'delete', table: 'source_documents', key: { document_uuid: "1' OR '1'='1" } },
      ],
    },
    P,
    'changes[0].key.document_uuid',
    /expected a UUID.*found "1' OR '1'='1"/,
  ],
  [
    'a uuid without hyphens',
    upsertDoc({ document_uuid: DOC.replaceAll('-', '') }),
    P,
    'changes[0].record.document_uuid',
    /UUID/,
  ],
  [
    'a uuid in braces',
    upsertDoc({ document_uuid: `{${DOC}}` }),
    P,
    'changes[0].record.document_uuid',
    /UUID/,
  ],
  [
    'a NUL inside metadata',
    upsertDoc({ metadata: { note: ['ok', 'a\u0000'] } }),
    P,
    'changes[0].record.metadata.note[1]',
    /NUL/,
  ],
  [
    'a NUL in a metadata key',
    upsertDoc({ metadata: { 'a\u0000': 1 } }),
    P,
    'changes[0].record.metadata["a\\u0000"]',
    /object key without NUL/,
  ],
  [
    'metadata nested too deeply',
    upsertDoc({ metadata: { deep } }),
    P,
    `changes[0].record.metadata.deep${'[0]'.repeat(MAX_JSON_DEPTH - 1)}`,
    /nested at most/,
  ],
  [
    'cyclic metadata',
    upsertDoc({ metadata: cyclic }),
    P,
    `changes[0].record.metadata${'.self'.repeat(MAX_JSON_DEPTH)}`,
    /nested at most/,
  ],
  [
    'an undefined value',
    upsertDoc({ content_type: undefined }),
    P,
    'changes[0].record.content_type',
    /found undefined/,
  ],
  // timestamps
  [
    'a timestamp that is not a date',
    upsertDoc({ updated_at: 'yesterday' }),
    P,
    'changes[0].record.updated_at',
    /ISO-8601.*found "yesterday"/,
  ],
  [
    'a timestamp without an offset',
    upsertDoc({ updated_at: '2024-05-01T12:00:00' }),
    P,
    'changes[0].record.updated_at',
    /UTC offset/,
  ],
  [
    'a date without a time',
    upsertDoc({ updated_at: '2024-05-01' }),
    P,
    'changes[0].record.updated_at',
    /ISO-8601/,
  ],
  [
    'the 30th of February',
    upsertDoc({ updated_at: '2024-02-30T00:00:00Z' }),
    P,
    'changes[0].record.updated_at',
    /ISO-8601/,
  ],
  [
    'an hour of 25',
    upsertDoc({ updated_at: '2024-05-01T25:00:00Z' }),
    P,
    'changes[0].record.updated_at',
    /ISO-8601/,
  ],
  [
    'epoch milliseconds as a timestamp',
    upsertDoc({ updated_at: 1714564800000 }),
    P,
    'changes[0].record.updated_at',
    /found 1714564800000/,
  ],
  [
    'a Date object as a timestamp',
    upsertDoc({ updated_at: new Date(0) }),
    P,
    'changes[0].record.updated_at',
    /found an object of type Date/,
  ],
  // patch and delete keys
  [
    'a patch without key',
    { changes: [{ op: 'patch', table: 'source_documents', set: { status: 'failed' } }] },
    P,
    'changes[0].key',
    /missing/,
  ],
  [
    'a key that is a string',
    patchDoc({ status: 'failed' }, DOC),
    P,
    'changes[0].key',
    /expected an object with the primary key/,
  ],
  [
    'a key missing its column',
    patchDoc({ status: 'failed' }, {}),
    P,
    'changes[0].key.document_uuid',
    /missing/,
  ],
  [
    'a key with an extra column',
    patchDoc({ status: 'failed' }, { document_uuid: DOC, filename: 'a' }),
    P,
    'changes[0].key.filename',
    /not a primary-key column/,
  ],
  [
    'a key with a null value',
    { changes: [{ op: 'delete', table: 'source_documents', key: { document_uuid: null } }] },
    P,
    'changes[0].key.document_uuid',
    /found null/,
  ],
  [
    'a composite key missing one column',
    { changes: [{ op: 'delete', table: 'samples', key: { id: DOC } }] },
    S,
    'changes[0].key.tenant',
    /missing/,
  ],
  ['a patch with an empty set', patchDoc({}), P, 'changes[0].set', /at least one column/],
  [
    'a patch whose set is not an object',
    patchDoc('status=failed'),
    P,
    'changes[0].set',
    /expected an object/,
  ],
  [
    'a patch setting the primary key',
    patchDoc({ document_uuid: CHUNK }),
    P,
    'changes[0].set.document_uuid',
    /primary-key column cannot be patched/,
  ],
  [
    'a patch setting a NOT NULL column to null',
    patchDoc({ filename: null }),
    P,
    'changes[0].set.filename',
    /NOT NULL/,
  ],
  [
    'a patch of an unknown column',
    patchDoc({ colour: 'red' }),
    P,
    'changes[0].set.colour',
    /unknown column/,
  ],
  // every other column type
  [
    'a bigint beyond the safe integers',
    upsertSample({ total: 2 ** 53 }),
    S,
    'changes[0].record.total',
    /decimal string/,
  ],
  [
    'a bigint decimal string with a fraction',
    upsertSample({ total: '12.5' }),
    S,
    'changes[0].record.total',
    /found "12.5"/,
  ],
  [
    'a bigint beyond int64',
    upsertSample({ total: '9223372036854775808' }),
    S,
    'changes[0].record.total',
    /9223372036854775807/,
  ],
  ['a BigInt value', upsertSample({ total: 5n }), S, 'changes[0].record.total', /BigInt/],
  [
    'a real beyond single precision',
    upsertSample({ ratio: 1e39 }),
    S,
    'changes[0].record.ratio',
    /single precision/,
  ],
  [
    'a real that underflows to zero',
    upsertSample({ ratio: 1e-50 }),
    S,
    'changes[0].record.ratio',
    /found 1e-50/,
  ],
  [
    'NaN as a number',
    upsertSample({ score: Number.NaN }),
    S,
    'changes[0].record.score',
    /found NaN/,
  ],
  [
    'Infinity as a number',
    upsertSample({ score: Number.POSITIVE_INFINITY }),
    S,
    'changes[0].record.score',
    /found Infinity/,
  ],
  [
    'a double as a string',
    upsertSample({ score: '1.5' }),
    S,
    'changes[0].record.score',
    /a finite number between -10 and 10/,
  ],
  [
    'a boolean as a string',
    upsertSample({ flag: 'true' }),
    S,
    'changes[0].record.flag',
    /true or false; found "true"/,
  ],
  [
    'a boolean as a number',
    upsertSample({ flag: 1 }),
    S,
    'changes[0].record.flag',
    /true or false; found 1/,
  ],
  [
    'a function in jsonb',
    upsertSample({ payload: { f: () => 1 } }),
    S,
    'changes[0].record.payload.f',
    /a function/,
  ],
  [
    'Infinity in jsonb',
    upsertSample({ payload: [1, Number.POSITIVE_INFINITY] }),
    S,
    'changes[0].record.payload[1]',
    /finite number/,
  ],
  [
    'a class instance in jsonb',
    upsertSample({ payload: new Map() }),
    S,
    'changes[0].record.payload',
    /type Map/,
  ],
  // position
  [
    'a bad second change',
    {
      changes: [
        upsertDoc().changes[0],
        { op: 'delete', table: 'source_documents', key: { document_uuid: 'x' } },
      ],
    },
    P,
    'changes[1].key.document_uuid',
    /UUID/,
  ],
];

describe('validateChangeset refuses malformed changesets (G6)', () => {
  it.each(malformed)('%s', (_what, input, registry, path, message) => {
    const error = validationErrorOf(() => validateChangeset(input, registry));
    expect(error.path).toBe(path);
    expect(error.message).toMatch(message);
    expect(error.message.startsWith(path ? `${path}: ` : '')).toBe(true);
  });

  it('has at least 25 distinct kinds of malformed input', () => {
    expect(new Set(malformed.map(([what]) => what)).size).toBe(malformed.length);
    expect(malformed.length).toBeGreaterThanOrEqual(25);
  });

  it('truncates a long offending value in the message', () => {
    const error = validationErrorOf(() =>
      validateChangeset(upsertDoc({ document_uuid: 'z'.repeat(100_000) }), P),
    );
    expect(error.message).toMatch(/found "z{40}…" \(100000 characters\)/);
    expect(error.message.length).toBeLessThan(300);
  });

  it('honours custom limits', () => {
    const two = { changes: [upsertDoc().changes[0], upsertDoc().changes[0]] };
    expect(
      validationErrorOf(() => validateChangeset(two, P, { maxChanges: 1, maxBytes: 1e6 })).path,
    ).toBe('changes');
    const bytes = Buffer.byteLength(JSON.stringify(two));
    expect(validateChangeset(two, P, { maxChanges: 2, maxBytes: bytes })).toHaveLength(2);
    expect(() => validateChangeset(two, P, { maxChanges: 2, maxBytes: bytes - 1 })).toThrow(
      /at most/,
    );
  });

  it('counts bytes, not characters, against the size limit', () => {
    const input = upsertDoc({ error_message: 'é'.repeat(600_000) }); // 1.2 MB, 600k characters
    expect(validationErrorOf(() => validateChangeset(input, P)).path).toBe('changes');
  });
});

describe('validateChangeset accepts and normalises valid changesets', () => {
  it('accepts every op on the shipped tables and keeps input order', () => {
    const input = {
      changes: [
        { op: 'upsert', table: 'source_documents', record: doc({ page_count: 0, metadata: {} }) },
        {
          op: 'upsert',
          table: 'document_chunks',
          record: { chunk_uuid: CHUNK, document_uuid: DOC, chunk_index: 0, text: 'Hello' },
        },
        {
          op: 'patch',
          table: 'source_documents',
          key: { document_uuid: DOC },
          set: { status: 'processing' },
        },
        { op: 'delete', table: 'document_chunks', key: { chunk_uuid: CHUNK } },
      ],
    };
    const changes = validateChangeset(input, P);
    expect(changes).toEqual<Change[]>([
      {
        op: 'upsert',
        table: 'source_documents',
        rowKey: JSON.stringify([DOC]),
        key: { document_uuid: DOC },
        record: doc({ page_count: 0, metadata: {} }) as Record<string, JsonValue>,
      },
      {
        op: 'upsert',
        table: 'document_chunks',
        rowKey: JSON.stringify([CHUNK]),
        key: { chunk_uuid: CHUNK },
        record: { chunk_uuid: CHUNK, document_uuid: DOC, chunk_index: 0, text: 'Hello' },
      },
      {
        op: 'patch',
        table: 'source_documents',
        rowKey: JSON.stringify([DOC]),
        key: { document_uuid: DOC },
        set: { status: 'processing' },
      },
      {
        op: 'delete',
        table: 'document_chunks',
        rowKey: JSON.stringify([CHUNK]),
        key: { chunk_uuid: CHUNK },
      },
    ]);
  });

  it('lower-cases UUIDs everywhere, so one row has one rowKey', () => {
    const upper = DOC.toUpperCase();
    const [upsert, del] = validateChangeset(
      {
        changes: [
          { op: 'upsert', table: 'source_documents', record: doc({ document_uuid: upper }) },
          { op: 'delete', table: 'source_documents', key: { document_uuid: DOC } },
        ],
      },
      P,
    );
    expect(upsert).toMatchObject({ key: { document_uuid: DOC }, record: { document_uuid: DOC } });
    expect(upsert?.rowKey).toBe(del?.rowKey);
  });

  it.each([
    ['2024-05-01T12:30:00Z', '2024-05-01T12:30:00.000Z'],
    ['2024-05-01T14:30:00+02:00', '2024-05-01T12:30:00.000Z'],
    ['2024-05-01 07:30:00.5-0500', '2024-05-01T12:30:00.500Z'],
    ['2024-05-01T12:30Z', '2024-05-01T12:30:00.000Z'],
    ['2024-05-01t12:30:00.123456+00:00', '2024-05-01T12:30:00.123Z'],
    ['2024-02-29T23:59:59.999z', '2024-02-29T23:59:59.999Z'],
    ['0099-01-01T00:00:00Z', '0099-01-01T00:00:00.000Z'],
    ['2024-01-01T00:30:00+01:00', '2023-12-31T23:30:00.000Z'],
  ])('normalises the timestamp %s to %s', (given, normalised) => {
    const [change] = validateChangeset(upsertDoc({ updated_at: given }), P);
    expect(change).toMatchObject({ record: { updated_at: normalised } });
  });

  it('normalises bigint decimal strings and keeps safe-integer numbers', () => {
    const [change] = validateChangeset(upsertSample({ total: '+0009223372036854775807' }), S);
    expect(change).toMatchObject({ record: { total: '9223372036854775807' } });
    const [small] = validateChangeset(upsertSample({ total: -42 }), S);
    expect(small).toMatchObject({ record: { total: -42 } });
  });

  it('accepts every column type at its limits', () => {
    const record = {
      ...sampleKey,
      count: -2147483648,
      total: '-9223372036854775808',
      ratio: 3.4028234663852886e38,
      score: 10,
      flag: false,
      payload: [null, true, 1.5, 'x', { nested: { deeper: [] } }],
      seen_at: '9999-12-31T23:59:59.999Z',
    };
    const [change] = validateChangeset(
      { changes: [{ op: 'upsert', table: 'samples', record }] },
      S,
    );
    // The largest real, as PostgreSQL prints it: the shortest decimal of that float4.
    expect(change).toMatchObject({
      record: { ...record, ratio: 3.4028235e38 },
      rowKey: JSON.stringify(['acme', DOC]),
    });
  });

  it('rounds a real to what PostgreSQL stores and returns: 0.9999999999 is 1, 1/3 is 0.33333334', () => {
    const ratios = [0.9999999999, 1 / 3, 0.1, 1e-30, 0].map((ratio) => {
      const [change] = validateChangeset(upsertSample({ ratio }), S);
      return change?.op === 'upsert' ? change.record.ratio : undefined;
    });
    expect(ratios).toEqual([1, 0.33333334, 0.1, 1e-30, 0]);
  });

  it('accepts the bounds of CHECK constraints: confidence 0 and 1, page_count 0', () => {
    const entity = (confidence: number) => ({
      op: 'upsert',
      table: 'entity_mentions',
      record: {
        entity_uuid: ENTITY,
        document_uuid: DOC,
        entity_type: 'person',
        text: 'Ada',
        confidence,
      },
    });
    expect(validateChangeset({ changes: [entity(0), entity(1)] }, P)).toHaveLength(2);
    expect(validateChangeset(upsertDoc({ page_count: 0 }), P)).toHaveLength(1);
  });

  it('lets an upsert omit a NOT NULL column that has a default', () => {
    const record = { task_id: TASK, task_type: 'ocr', status: 'queued' };
    const [change] = validateChangeset(
      { changes: [{ op: 'upsert', table: 'processing_tasks', record }] },
      P,
    );
    expect(change).toMatchObject({ record });
  });

  it('accepts SQL-looking text verbatim', () => {
    const evil = "Robert'); DROP TABLE source_documents; --";
    const [change] = validateChangeset(
      upsertDoc({ filename: evil, metadata: { q: "' OR 1=1 --" } }),
      P,
    );
    expect(change).toMatchObject({ record: { filename: evil, metadata: { q: "' OR 1=1 --" } } });
  });

  it('keeps a "__proto__" key inside jsonb as data, not as a prototype', () => {
    const input = JSON.parse(
      `{"changes":[{"op":"upsert","table":"source_documents","record":{"document_uuid":"${DOC}","filename":"a","status":"pending","metadata":{"__proto__":{"polluted":true}}}}]}`,
    );
    const [change] = validateChangeset(input, P);
    const metadata = (change as { record: Record<string, JsonValue> }).record.metadata as Record<
      string,
      JsonValue
    >;
    expect(Object.getPrototypeOf(metadata)).toBe(Object.prototype);
    expect(Object.hasOwn(metadata, '__proto__')).toBe(true);
    expect(JSON.stringify(metadata)).toBe('{"__proto__":{"polluted":true}}');
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it('copies jsonb values, so later changes to the input do not leak into the output', () => {
    const metadata = { tags: ['a'] };
    const [change] = validateChangeset(upsertDoc({ metadata }), P);
    metadata.tags.push('b');
    expect(change).toMatchObject({ record: { metadata: { tags: ['a'] } } });
  });

  it('accepts a relationship between two entities of one document', () => {
    const relationship = {
      relationship_uuid: TASK,
      document_uuid: DOC,
      source_entity_uuid: ENTITY,
      target_entity_uuid: ENTITY_2,
      relationship_type: 'works_for',
      confidence: 0.87,
      attributes: { sentence: 3 },
    };
    const [change] = validateChangeset(
      { changes: [{ op: 'upsert', table: 'relationships', record: relationship }] },
      P,
    );
    expect(change).toMatchObject({ record: relationship });
  });
});

describe('rowKeyOf and validateRowKey', () => {
  it('orders composite key values by primaryKey, whatever the order of the key object', () => {
    expect(rowKeyOf(samples, { id: DOC, tenant: 'acme' })).toBe(JSON.stringify(['acme', DOC]));
  });

  it('normalises a read key and names the path of a bad one', () => {
    const table = pipelineTables.find((t) => t.name === 'source_documents');
    if (!table) throw new Error('source_documents is not defined');
    expect(validateRowKey(table, { document_uuid: DOC.toUpperCase() })).toEqual({
      document_uuid: DOC,
    });
    expect(validationErrorOf(() => validateRowKey(table, { document_uuid: 'nope' })).path).toBe(
      'key.document_uuid',
    );
    expect(validationErrorOf(() => rowKeyOf(samples, { id: DOC })).path).toBe('key.tenant');
  });
});

describe('validateChangeset properties', () => {
  /** Near-miss changesets: right shape, arbitrary contents, so that checks deep inside are reached. */
  const tableNames = [...P.names(), '__proto__', 'constructor', 'nope'];
  const columnNames = [
    ...new Set(pipelineTables.flatMap((t) => Object.keys(t.columns))),
    '__proto__',
    'toString',
  ];
  const row = fc.dictionary(fc.constantFrom(...columnNames), fc.oneof(fc.jsonValue(), fc.uuid()), {
    maxKeys: 8,
  });
  const change = fc.oneof(
    fc.record({ op: fc.constant('upsert'), table: fc.constantFrom(...tableNames), record: row }),
    fc.record({
      op: fc.constant('patch'),
      table: fc.constantFrom(...tableNames),
      key: row,
      set: row,
    }),
    fc.record({ op: fc.constant('delete'), table: fc.constantFrom(...tableNames), key: row }),
    fc.jsonValue(),
  );

  it('never throws anything but ValidationError for arbitrary JSON input', () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.jsonValue(),
          fc.record({ changes: fc.array(change, { maxLength: 5 }) }),
          fc.anything({ withNullPrototype: true, withBigInt: true, withDate: true, withMap: true }),
        ),
        (input) => {
          try {
            const changes = validateChangeset(input, P);
            expect(changes.length).toBeGreaterThan(0);
          } catch (error) {
            if (!(error instanceof ValidationError)) throw error;
          }
        },
      ),
      { numRuns: 2000 },
    );
  });

  /** A valid value for a column of the shipped schema. */
  const columnValue = (column: ColumnDef): fc.Arbitrary<JsonValue> => {
    const nullable = column.nullable !== false;
    const base = ((): fc.Arbitrary<JsonValue> => {
      switch (column.type) {
        case 'uuid':
          return fc.uuid().chain((u) => fc.constantFrom(u, u.toUpperCase()));
        case 'text':
          return column.oneOf ? fc.constantFrom(...column.oneOf) : fc.string();
        case 'integer':
          return fc.integer({ min: column.min ?? -2147483648, max: column.max ?? 2147483647 });
        case 'real':
          return fc.float({ min: column.min ?? -1e30, max: column.max ?? 1e30, noNaN: true });
        case 'jsonb':
          return fc
            .dictionary(fc.string(), fc.jsonValue() as fc.Arbitrary<JsonValue>)
            .filter((v) => !JSON.stringify(v).includes('\\u0000'))
            .map((v): JsonValue => v);
        case 'timestamptz':
          return fc
            .date({
              min: new Date('0001-01-01T00:00:00Z'),
              max: new Date('9999-12-31T23:59:59Z'),
              noInvalidDate: true,
            })
            .map((d) => d.toISOString());
        default:
          throw new Error(`no generator for ${column.type}`);
      }
    })();
    return nullable ? fc.option(base, { nil: null }) : base;
  };
  const validChange = fc.constantFrom(...pipelineTables).chain((table) => {
    const record = fc.record(
      Object.fromEntries(
        Object.entries(table.columns).map(([name, column]) => [name, columnValue(column)]),
      ),
    );
    return record.chain((row) => {
      const key = Object.fromEntries(table.primaryKey.map((c) => [c, row[c] ?? null]));
      const rest = Object.fromEntries(
        Object.entries(row).filter(([c]) => !table.primaryKey.includes(c)),
      );
      return fc.constantFrom(
        { op: 'upsert', table: table.name, record: row },
        { op: 'patch', table: table.name, key, set: rest },
        { op: 'delete', table: table.name, key },
      );
    });
  });

  it('accepts valid changesets, and validating its own output again changes nothing', () => {
    fc.assert(
      fc.property(fc.array(validChange, { minLength: 1, maxLength: 5 }), (changes) => {
        const once = validateChangeset({ changes }, P);
        const again = validateChangeset(
          {
            changes: once.map((c) =>
              c.op === 'upsert'
                ? { op: c.op, table: c.table, record: c.record }
                : c.op === 'patch'
                  ? { op: c.op, table: c.table, key: c.key, set: c.set }
                  : { op: c.op, table: c.table, key: c.key },
            ),
          },
          P,
        );
        expect(again).toEqual(once);
      }),
      { numRuns: 300 },
    );
  });
});
