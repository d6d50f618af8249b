import { describe, expect, it } from 'vitest';
import type { TableDef } from '../../lambdas/core/schema.js';
import { compareTables, type FoundColumn, type FoundTable } from '../../lambdas/io/schema-check.js';

const notes: TableDef = {
  name: 'notes',
  primaryKey: ['id'],
  columns: {
    id: { type: 'uuid', nullable: false },
    body: { type: 'text', nullable: false },
    score: { type: 'real' },
    written_at: { type: 'timestamptz', nullable: false, hasDefault: true },
  },
};

const column = (name: string, type: string, more: Partial<FoundColumn> = {}): FoundColumn => ({
  name,
  type,
  notNull: false,
  hasDefault: false,
  generatedAlways: false,
  ...more,
});

/** `notes` exactly as its definition says, then changed by `change`. */
function found(change: (table: FoundTable) => FoundTable = (t) => t): Map<string, FoundTable> {
  const table = change({
    name: 'notes',
    kind: 'r',
    columns: [
      column('id', 'uuid', { notNull: true }),
      column('body', 'text', { notNull: true }),
      column('score', 'real'),
      column('written_at', 'timestamp with time zone', { notNull: true, hasDefault: true }),
    ],
    primaryKey: ['id'],
  });
  return new Map([[table.name, table]]);
}

const withColumn =
  (name: string, more: Partial<FoundColumn>) =>
  (table: FoundTable): FoundTable => ({
    ...table,
    columns: table.columns.map((c) => (c.name === name ? { ...c, ...more } : c)),
  });

describe('compareTables', () => {
  it('finds nothing wrong with a table exactly as defined', () => {
    expect(compareTables([notes], found())).toEqual([]);
  });

  it('accepts what Spillway can write to: nullable where NOT NULL is defined, extra columns that are nullable, defaulted or an identity, a partitioned table', () => {
    const lenient = found((t) => ({
      ...t,
      kind: 'p',
      columns: [
        ...withColumn('body', { notNull: false })(t).columns,
        column('tag', 'character varying(20)'),
        column('rank', 'integer', { notNull: true, hasDefault: true }),
        column('seq', 'bigint', { notNull: true, hasDefault: true }),
      ],
    }));
    expect(compareTables([notes], lenient)).toEqual([]);
  });

  it('reports a missing table and a view in its place', () => {
    const other: TableDef = { ...notes, name: 'other' };
    const view = found((t) => ({ ...t, kind: 'v' }));
    expect(compareTables([other, notes], view)).toEqual([
      'other: no such table (no migration creates it)',
      'notes: is a view, not a table',
    ]);
  });

  it('reports every mismatch of one table, defined columns first, then the key, then extra columns', () => {
    const drifted = found((t) => ({
      ...t,
      columns: [
        column('id', 'uuid', { notNull: true }),
        column('score', 'double precision', { notNull: true }),
        column('written_at', 'timestamp without time zone', { notNull: true }),
        column('owner', 'text', { notNull: true }),
      ],
      primaryKey: [],
    }));
    expect(compareTables([notes], drifted)).toEqual([
      'notes.body: defined as text, the database has no such column',
      'notes.score: defined as real, the database has double precision',
      'notes.score: defined as nullable, the database has NOT NULL',
      'notes.written_at: defined as timestamptz, the database has timestamp without time zone',
      'notes.written_at: defined with a default (an upsert may leave it out), the database has NOT NULL and no default',
      'notes: primary key defined as (id), the database has none',
      'notes.owner: not in the definition, and NOT NULL without a default in the database (every insert would fail)',
    ]);
  });

  it('reports a defined column that the database generates', () => {
    expect(
      compareTables(
        [notes],
        found(withColumn('score', { generatedAlways: true, hasDefault: true })),
      ),
    ).toEqual(['notes.score: the database generates it (GENERATED ALWAYS), Spillway writes it']);
  });

  it('compares primary key columns in order', () => {
    const twoColumns: TableDef = { ...notes, primaryKey: ['id', 'body'] };
    expect(
      compareTables(
        [twoColumns],
        found((t) => ({ ...t, primaryKey: ['body', 'id'] })),
      ),
    ).toEqual(['notes: primary key defined as (id, body), the database has (body, id)']);
  });
});
