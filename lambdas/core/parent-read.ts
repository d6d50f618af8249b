/**
 * Reads by parent key (`read { table, where: { <foreign-key column>: value } }`): the request,
 * and which pending rows the buffer indexes by parent. Pure.
 */
import { type JsonValue, rowKeyOf, validateColumnValue } from './changeset.js';
import type { RowWrite } from './coalesce.js';
import { ValidationError } from './errors.js';
import type { SchemaRegistry, TableDef } from './schema.js';

/** Rows one page of a read by parent holds at most, and without a `limit`. */
export const PARENT_READ_MAX_LIMIT = 500;
export const PARENT_READ_DEFAULT_LIMIT = 100;

export interface ParentRead {
  readonly def: TableDef;
  readonly column: string;
  readonly value: JsonValue;
  readonly limit: number;
  /** The primary key (in primary-key order) after which the page starts. */
  readonly after: readonly JsonValue[] | null;
}

/** The columns a read by parent may filter on: single-column foreign keys. */
export function parentColumns(def: TableDef): string[] {
  return (def.foreignKeys ?? [])
    .filter((fk) => fk.columns.length === 1)
    .map((fk) => fk.columns[0] as string);
}

/** Whether `read` was asked for the children of a parent rather than one row by key. */
export function isParentRead(input: unknown): input is { where: unknown } {
  return typeof input === 'object' && input !== null && !Array.isArray(input) && 'where' in input;
}

/**
 * `{ table, where: { column: value }, limit?, cursor? }`.
 * @throws ValidationError naming the offending path, and for a column that is not a foreign
 *   key, which columns are allowed
 */
export function parseParentRead(input: { where: unknown }, registry: SchemaRegistry): ParentRead {
  const fields = input as Record<string, unknown>;
  for (const name of Object.keys(fields)) {
    if (!['table', 'where', 'limit', 'cursor'].includes(name)) {
      throw new ValidationError(
        name,
        'unknown property; a read by parent has table, where, limit and cursor',
      );
    }
  }
  const { table } = fields;
  if (typeof table !== 'string') throw new ValidationError('table', 'expected a table name');
  const def = registry.get(table);
  if (def === undefined)
    throw new ValidationError('table', `unknown table '${table.slice(0, 64)}'`);
  const where = fields.where;
  const allowed = parentColumns(def);
  if (
    typeof where !== 'object' ||
    where === null ||
    Array.isArray(where) ||
    Object.keys(where).length !== 1
  ) {
    throw new ValidationError(
      'where',
      `expected one foreign-key column and its value; ${def.name} allows ${allowed.join(', ') || 'none'}`,
    );
  }
  const [[column, raw]] = Object.entries(where) as [[string, unknown]];
  if (!allowed.includes(column)) {
    throw new ValidationError(
      `where.${column.slice(0, 64)}`,
      `not a foreign-key column of ${def.name}; a read by parent may filter on ${allowed.join(', ') || 'none'}`,
    );
  }
  const value = validateColumnValue(def, column, raw, `where.${column}`);
  if (value === null) throw new ValidationError(`where.${column}`, 'expected a value, not null');
  const limit = fields.limit ?? PARENT_READ_DEFAULT_LIMIT;
  if (
    typeof limit !== 'number' ||
    !Number.isInteger(limit) ||
    limit < 1 ||
    limit > PARENT_READ_MAX_LIMIT
  ) {
    throw new ValidationError('limit', `expected an integer from 1 to ${PARENT_READ_MAX_LIMIT}`);
  }
  let after: JsonValue[] | null = null;
  if (fields.cursor !== undefined) {
    try {
      if (typeof fields.cursor !== 'string') throw new Error('not a string');
      const parsed = JSON.parse(
        Buffer.from(fields.cursor, 'base64url').toString('utf8'),
      ) as unknown;
      if (!Array.isArray(parsed) || parsed.length !== def.primaryKey.length)
        throw new Error('shape');
      after = parsed as JsonValue[];
    } catch {
      throw new ValidationError('cursor', 'expected the nextCursor of an earlier answer');
    }
  }
  return { def, column, value, limit, after };
}

/** The cursor that starts the page after the row with primary key `key`. */
export function cursorAfter(def: TableDef, record: Readonly<Record<string, JsonValue>>): string {
  return Buffer.from(rowKeyOf(def, { ...record }), 'utf8').toString('base64url');
}

/** The parent columns and values a pending row names, which the buffer indexes it under. */
export function parentEntriesOf(
  def: TableDef,
  row: Pick<RowWrite, 'op' | 'values'>,
): { column: string; value: string }[] {
  if (row.op === 'delete') return [];
  return parentColumns(def).flatMap((column) => {
    const value = row.values[column];
    return value === undefined || value === null ? [] : [{ column, value: JSON.stringify(value) }];
  });
}

/** Primary keys compared in primary-key order (strings, numbers), for ordering a page. */
export function compareKeys(a: readonly JsonValue[], b: readonly JsonValue[]): number {
  for (let i = 0; i < Math.max(a.length, b.length); i += 1) {
    const x = a[i] ?? null;
    const y = b[i] ?? null;
    if (x === y) continue;
    if (typeof x === 'number' && typeof y === 'number') return x < y ? -1 : 1;
    return String(x) < String(y) ? -1 : 1;
  }
  return 0;
}
