/**
 * Validation and normalisation of a `write` payload (G6): pure, no I/O.
 *
 * A changeset either comes out whole, every value checked against its table definition and
 * normalised, or a `ValidationError` names the first offending part (`changes[3].record.page_count`)
 * with what was expected and what was found. Nothing of a rejected changeset may be buffered,
 * so the caller validates before it touches Redis.
 *
 * The checks are those PostgreSQL would otherwise make at drain time, when it is too late to
 * tell the writer: a value the database would refuse (wrong type, NUL in text, out-of-range
 * number, CHECK constraint mirrored in the table definition) is refused here.
 */
import { ValidationError } from './errors.js';
import type { ColumnDef, SchemaRegistry, TableDef } from './schema.js';

export type JsonValue = null | boolean | number | string | JsonValue[] | { [k: string]: JsonValue };

/** A validated, normalised change. `rowKey` identifies the row across the buffer and the database. */
export type Change =
  | {
      op: 'upsert';
      table: string;
      rowKey: string;
      key: Record<string, JsonValue>;
      record: Record<string, JsonValue>;
    }
  | {
      op: 'patch';
      table: string;
      rowKey: string;
      key: Record<string, JsonValue>;
      set: Record<string, JsonValue>;
    }
  | { op: 'delete'; table: string; rowKey: string; key: Record<string, JsonValue> };

export interface ChangesetLimits {
  /** Most changes one changeset may hold. @default 1000 */
  readonly maxChanges: number;
  /** Most bytes of the changeset as UTF-8 JSON. @default 1 MiB */
  readonly maxBytes: number;
}

export const DEFAULT_LIMITS: ChangesetLimits = Object.freeze({
  maxChanges: 1000,
  maxBytes: 1024 * 1024,
});

/**
 * Deepest nesting accepted inside a jsonb value. Keeps validation (and PostgreSQL's recursive
 * jsonb parser) far from any stack limit; real documents stay well below it.
 */
export const MAX_JSON_DEPTH = 64;

const OPS = ['upsert', 'patch', 'delete'] as const;
type Op = (typeof OPS)[number];

const ALLOWED_PROPERTIES: Record<Op, readonly string[]> = {
  upsert: ['op', 'table', 'record'],
  patch: ['op', 'table', 'key', 'set'],
  delete: ['op', 'table', 'key'],
};

const INT32_MIN = -2147483648;
const INT32_MAX = 2147483647;
const INT64_MIN = -9223372036854775808n;
const INT64_MAX = 9223372036854775807n;
/** Largest finite single-precision float: a larger `real` overflows in PostgreSQL. */
const REAL_MAX = 3.4028234663852886e38;

const UUID = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/;
const DECIMAL_INTEGER = /^[+-]?[0-9]{1,40}$/;
const TIMESTAMP =
  /^([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt ]([0-9]{2}):([0-9]{2})(?::([0-9]{2})(?:\.([0-9]+))?)?(?:([Zz])|([+-])([0-9]{2})(?::?([0-9]{2}))?)$/;
/** A UTF-16 surrogate without its partner: not encodable as UTF-8, refused by PostgreSQL. */
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;
const IDENTIFIER = /^[A-Za-z_$][A-Za-z0-9_$]*$/;

type JsonObject = Record<string, unknown>;

/**
 * Checks a `write` payload `{ "changes": [...] }` against the registry and returns its changes,
 * normalised, in input order.
 *
 * Normalisation: UUIDs in lower case; timestamps as `Date.prototype.toISOString()` (UTC,
 * millisecond precision: finer digits are truncated); bigint decimal strings in canonical form;
 * jsonb values deep-copied. For an upsert, `key` holds the primary-key columns of the record.
 *
 * @throws ValidationError naming the offending path (G6)
 */
export function validateChangeset(
  input: unknown,
  registry: SchemaRegistry,
  limits: Partial<ChangesetLimits> = DEFAULT_LIMITS,
): Change[] {
  const maxChanges = limits.maxChanges ?? DEFAULT_LIMITS.maxChanges;
  const maxBytes = limits.maxBytes ?? DEFAULT_LIMITS.maxBytes;

  if (!isPlainObject(input)) {
    throw new ValidationError(
      '',
      `expected a changeset, an object {"changes": [...]}; found ${describe(input)}`,
    );
  }
  for (const name of Object.keys(input)) {
    if (name !== 'changes') {
      throw new ValidationError(
        pathOf('', name),
        'unknown property; a changeset has exactly one property, "changes"',
      );
    }
  }
  if (!Object.hasOwn(input, 'changes')) {
    throw new ValidationError('changes', 'missing; expected an array of changes');
  }
  const changes = input.changes;
  if (!Array.isArray(changes)) {
    throw new ValidationError(
      'changes',
      `expected an array of changes; found ${describe(changes)}`,
    );
  }
  if (changes.length === 0) {
    throw new ValidationError('changes', 'expected at least one change; found an empty array');
  }
  if (changes.length > maxChanges) {
    throw new ValidationError(
      'changes',
      `expected at most ${maxChanges} changes; found ${changes.length}`,
    );
  }

  const result: Change[] = [];
  // An index loop, not map(): a sparse array's holes must be reported, not skipped.
  for (let index = 0; index < changes.length; index++) {
    result.push(validateChange(changes[index], `changes[${index}]`, registry));
  }

  // Measured after validation: only then is the input known to be plain, acyclic, bounded JSON
  // that JSON.stringify can serialise without throwing.
  const bytes = Buffer.byteLength(JSON.stringify(input), 'utf8');
  if (bytes > maxBytes) {
    throw new ValidationError(
      'changes',
      `expected at most ${maxBytes} bytes of JSON in the changeset; found ${bytes}`,
    );
  }
  return result;
}

/**
 * The canonical identity of a row: `JSON.stringify` of its primary-key values in `primaryKey`
 * order. Pass normalised values (from `validateChangeset` or `validateRowKey`) so that one row
 * always gets one key whatever the case of its UUIDs.
 */
export function rowKeyOf(table: TableDef, key: Record<string, JsonValue>): string {
  return JSON.stringify(
    table.primaryKey.map((column) => {
      if (!Object.hasOwn(key, column)) {
        throw new ValidationError(pathOf('key', column), 'missing; the primary key needs it');
      }
      return key[column] ?? null;
    }),
  );
}

/**
 * Checks and normalises a primary key of `table` (exactly its primary-key columns, non-null),
 * as the `read` contract and patch/delete changes carry it. Returns it in `primaryKey` order.
 *
 * @throws ValidationError naming `path` or one of its columns
 */
export function validateRowKey(
  table: TableDef,
  key: unknown,
  path = 'key',
): Record<string, JsonValue> {
  if (!isPlainObject(key)) {
    throw new ValidationError(
      path,
      `expected an object with the primary key of ${table.name} (${table.primaryKey.join(', ')}); found ${describe(key)}`,
    );
  }
  for (const name of Object.keys(key)) {
    if (!table.primaryKey.includes(name)) {
      throw new ValidationError(
        pathOf(path, name),
        `not a primary-key column of ${table.name}; a key has exactly ${table.primaryKey.join(', ')}`,
      );
    }
  }
  const normalised: Record<string, JsonValue> = {};
  for (const column of table.primaryKey) {
    const columnPath = pathOf(path, column);
    if (!Object.hasOwn(key, column)) {
      throw new ValidationError(columnPath, `missing; the primary key of ${table.name} needs it`);
    }
    setOwn(
      normalised,
      column,
      validateValue(columnOf(table, column), true, key[column], columnPath),
    );
  }
  return normalised;
}

function validateChange(value: unknown, path: string, registry: SchemaRegistry): Change {
  if (!isPlainObject(value)) {
    throw new ValidationError(
      path,
      `expected a change, an object with "op" (upsert, patch or delete) and "table"; found ${describe(value)}`,
    );
  }
  if (!Object.hasOwn(value, 'op')) {
    throw new ValidationError(`${path}.op`, 'missing; expected "upsert", "patch" or "delete"');
  }
  const op = value.op;
  if (!isOp(op)) {
    throw new ValidationError(
      `${path}.op`,
      `expected "upsert", "patch" or "delete"; found ${describe(op)}`,
    );
  }
  const allowed = ALLOWED_PROPERTIES[op];
  for (const name of Object.keys(value)) {
    if (!allowed.includes(name)) {
      throw new ValidationError(
        pathOf(path, name),
        `unknown property; a ${op} change has exactly ${allowed.join(', ')}`,
      );
    }
  }
  for (const name of allowed) {
    if (!Object.hasOwn(value, name)) {
      throw new ValidationError(`${path}.${name}`, `missing; a ${op} change needs it`);
    }
  }

  const tableName = value.table;
  if (typeof tableName !== 'string') {
    throw new ValidationError(
      `${path}.table`,
      `expected a table name (a string); found ${describe(tableName)}`,
    );
  }
  const table = registry.get(tableName);
  if (!table) {
    throw new ValidationError(
      `${path}.table`,
      `unknown table ${describe(tableName)}; expected one of ${registry.names().join(', ')}`,
    );
  }

  switch (op) {
    case 'upsert': {
      const record = validateRecord(table, value.record, `${path}.record`);
      const key: Record<string, JsonValue> = {};
      for (const column of table.primaryKey) setOwn(key, column, record[column] ?? null);
      return { op, table: table.name, rowKey: rowKeyOf(table, key), key, record };
    }
    case 'patch': {
      const key = validateRowKey(table, value.key, `${path}.key`);
      const set = validateSet(table, value.set, `${path}.set`);
      return { op, table: table.name, rowKey: rowKeyOf(table, key), key, set };
    }
    case 'delete': {
      const key = validateRowKey(table, value.key, `${path}.key`);
      return { op, table: table.name, rowKey: rowKeyOf(table, key), key };
    }
  }
}

/** A full row: every primary-key column and every NOT NULL column without a default. */
function validateRecord(table: TableDef, value: unknown, path: string): Record<string, JsonValue> {
  if (!isPlainObject(value)) {
    throw new ValidationError(
      path,
      `expected an object with the columns of ${table.name}; found ${describe(value)}`,
    );
  }
  const record: Record<string, JsonValue> = {};
  for (const name of Object.keys(value)) {
    const column = knownColumn(table, name, pathOf(path, name));
    const isKey = table.primaryKey.includes(name);
    setOwn(record, name, validateValue(column, isKey, value[name], pathOf(path, name)));
  }
  for (const [name, column] of Object.entries(table.columns)) {
    if (Object.hasOwn(record, name)) continue;
    if (table.primaryKey.includes(name)) {
      throw new ValidationError(
        pathOf(path, name),
        `missing; an upsert needs the whole primary key of ${table.name}`,
      );
    }
    if (column.nullable === false && !column.hasDefault) {
      throw new ValidationError(
        pathOf(path, name),
        `missing; the column is NOT NULL without a default, so an upsert must set it (to a ${column.type})`,
      );
    }
  }
  return record;
}

/** Some non-key columns of an existing row. */
function validateSet(table: TableDef, value: unknown, path: string): Record<string, JsonValue> {
  if (!isPlainObject(value)) {
    throw new ValidationError(
      path,
      `expected an object with the columns to change; found ${describe(value)}`,
    );
  }
  const names = Object.keys(value);
  if (names.length === 0) {
    throw new ValidationError(
      path,
      'expected at least one column to change; found an empty object',
    );
  }
  const set: Record<string, JsonValue> = {};
  for (const name of names) {
    const columnPath = pathOf(path, name);
    const column = knownColumn(table, name, columnPath);
    if (table.primaryKey.includes(name)) {
      throw new ValidationError(
        columnPath,
        'a primary-key column cannot be patched; delete the row and upsert it under the new key',
      );
    }
    setOwn(set, name, validateValue(column, false, value[name], columnPath));
  }
  return set;
}

function knownColumn(table: TableDef, name: string, path: string): ColumnDef {
  // Own properties only: "__proto__", "constructor" or "toString" are not columns.
  if (!Object.hasOwn(table.columns, name)) {
    throw new ValidationError(
      path,
      `unknown column of ${table.name}; expected one of ${Object.keys(table.columns).join(', ')}`,
    );
  }
  return columnOf(table, name);
}

/**
 * Checks one value of one column of `table` as a write would (a filter of a read, say).
 * @throws ValidationError naming `path`
 */
export function validateColumnValue(
  table: TableDef,
  column: string,
  value: unknown,
  path: string,
): JsonValue {
  return validateValue(columnOf(table, column), true, value, path);
}

function columnOf(table: TableDef, name: string): ColumnDef {
  const column = table.columns[name];
  if (!column) throw new Error(`table ${table.name} has no column ${name}`);
  return column;
}

function validateValue(column: ColumnDef, isKey: boolean, value: unknown, path: string): JsonValue {
  if (value === null) {
    if (isKey || column.nullable === false) {
      throw new ValidationError(
        path,
        `the column is NOT NULL: expected ${expectation(column)}; found null`,
      );
    }
    return null;
  }
  switch (column.type) {
    case 'uuid':
      if (typeof value !== 'string' || !UUID.test(value)) fail(column, value, path);
      return value.toLowerCase();
    case 'text': {
      if (typeof value !== 'string') fail(column, value, path);
      checkString(value, path, 'a string');
      if (column.oneOf && !column.oneOf.includes(value)) fail(column, value, path);
      return value;
    }
    case 'integer': {
      if (typeof value !== 'number' || !Number.isSafeInteger(value)) fail(column, value, path);
      checkBounds(column, value, value, path);
      return value === 0 ? 0 : value; // no -0
    }
    case 'bigint':
      return validateBigint(column, value, path);
    case 'real':
    case 'double precision': {
      if (typeof value !== 'number' || !Number.isFinite(value)) fail(column, value, path);
      if (column.type === 'real' && (Math.abs(value) > REAL_MAX || isRealUnderflow(value))) {
        fail(column, value, path);
      }
      checkBounds(column, value, value, path);
      return column.type === 'real' ? toReal(value) : value;
    }
    case 'boolean':
      if (typeof value !== 'boolean') fail(column, value, path);
      return value;
    case 'jsonb': {
      if (column.jsonObject && !isPlainObject(value)) fail(column, value, path);
      return copyJson(value, path, 0);
    }
    case 'timestamptz':
      return validateTimestamp(column, value, path);
  }
}

/**
 * `value` as PostgreSQL stores a `real` (float4) and returns it: rounded to single precision,
 * then written as the shortest decimal that reads back as the same float4, which is what
 * PostgreSQL prints (`extra_float_digits` 1, its default) and node-postgres parses. So `read`
 * of a pending value shows what the drain will store (G4): 0.9999999999 reads 1 before the
 * drain as after it.
 */
export function toReal(value: number): number {
  const single = Math.fround(value);
  if (single === 0) return 0;
  for (let digits = 1; digits < 9; digits++) {
    const shortest = Number(single.toPrecision(digits));
    if (Math.fround(shortest) === single) return shortest;
  }
  return Number(single.toPrecision(9));
}

function validateBigint(column: ColumnDef, value: unknown, path: string): JsonValue {
  if (typeof value === 'number') {
    if (!Number.isSafeInteger(value)) fail(column, value, path);
    checkBounds(column, BigInt(value), value, path);
    return value === 0 ? 0 : value;
  }
  if (typeof value !== 'string' || !DECIMAL_INTEGER.test(value)) fail(column, value, path);
  const parsed = BigInt(value);
  checkBounds(column, parsed, value, path);
  return parsed.toString();
}

/** An ISO-8601 timestamp with date, time and offset, read without Date's local-time guesses. */
function validateTimestamp(column: ColumnDef, value: unknown, path: string): string {
  if (typeof value !== 'string') fail(column, value, path);
  const match = TIMESTAMP.exec(value);
  if (!match) fail(column, value, path);
  const [, y, mo, d, h, mi, s, fraction, zulu, sign, offsetH, offsetM] = match;
  const year = Number(y);
  const month = Number(mo);
  const day = Number(d);
  const hour = Number(h);
  const minute = Number(mi);
  const second = Number(s ?? 0);
  const offsetHours = Number(offsetH ?? 0);
  const offsetMinutes = Number(offsetM ?? 0);
  if (
    year < 1 ||
    month < 1 ||
    month > 12 ||
    day < 1 ||
    day > daysInMonth(year, month) ||
    hour > 23 ||
    minute > 59 ||
    second > 59 ||
    offsetHours > 23 ||
    offsetMinutes > 59
  ) {
    fail(column, value, path);
  }
  // Date keeps milliseconds: finer digits are truncated, as Date.parse does.
  const millis = Number((fraction ?? '').slice(0, 3).padEnd(3, '0'));
  const date = new Date(0);
  // setUTCFullYear, not Date.UTC: Date.UTC maps years 0-99 to 1900-1999.
  date.setUTCFullYear(year, month - 1, day);
  date.setUTCHours(hour, minute, second, millis);
  const offset = zulu ? 0 : (sign === '-' ? -1 : 1) * (offsetHours * 60 + offsetMinutes);
  const instant = new Date(date.getTime() - offset * 60_000);
  const utcYear = instant.getUTCFullYear();
  if (Number.isNaN(instant.getTime()) || utcYear < 1 || utcYear > 9999) fail(column, value, path);
  return instant.toISOString();
}

function daysInMonth(year: number, month: number): number {
  const leap = (year % 4 === 0 && year % 100 !== 0) || year % 400 === 0;
  return [31, leap ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][month - 1] ?? 0;
}

/** A nonzero number that single precision rounds to zero: PostgreSQL says "out of range". */
function isRealUnderflow(value: number): boolean {
  return value !== 0 && Math.fround(value) === 0;
}

function checkBounds(
  column: ColumnDef,
  value: number | bigint,
  found: unknown,
  path: string,
): void {
  const [low, high] = range(column);
  if (
    (low !== undefined && compare(value, low) < 0) ||
    (high !== undefined && compare(value, high) > 0)
  ) {
    fail(column, found, path);
  }
}

function compare(a: number | bigint, b: number | bigint): number {
  // Mixed bigint/number comparison is exact in JavaScript.
  return a < b ? -1 : a > b ? 1 : 0;
}

/** The inclusive range a column accepts: the type's range narrowed by the column's min/max. */
function range(column: ColumnDef): [number | bigint | undefined, number | bigint | undefined] {
  const typeRange: [number | bigint | undefined, number | bigint | undefined] =
    column.type === 'integer'
      ? [INT32_MIN, INT32_MAX]
      : column.type === 'bigint'
        ? [INT64_MIN, INT64_MAX]
        : [undefined, undefined];
  const [typeLow, typeHigh] = typeRange;
  const low =
    column.min === undefined
      ? typeLow
      : typeLow === undefined || compare(column.min, typeLow) > 0
        ? column.min
        : typeLow;
  const high =
    column.max === undefined
      ? typeHigh
      : typeHigh === undefined || compare(column.max, typeHigh) < 0
        ? column.max
        : typeHigh;
  return [low, high];
}

/** What a column accepts, in words, for error messages. */
function expectation(column: ColumnDef): string {
  const [low, high] = range(column);
  const bounds =
    low !== undefined && high !== undefined
      ? ` between ${low} and ${high}`
      : low !== undefined
        ? ` ≥ ${low}`
        : high !== undefined
          ? ` ≤ ${high}`
          : '';
  switch (column.type) {
    case 'uuid':
      return 'a UUID (8-4-4-4-12 hexadecimal digits)';
    case 'text':
      return column.oneOf
        ? `one of ${column.oneOf.map((v) => JSON.stringify(v)).join(', ')}`
        : 'a string';
    case 'integer':
      return `an integer${bounds}`;
    case 'bigint':
      return `an integer (a safe-integer number or a decimal string)${bounds}`;
    case 'real':
      return bounds ? `a number${bounds}` : 'a finite number within single precision (real) range';
    case 'double precision':
      return `a finite number${bounds}`;
    case 'boolean':
      return 'true or false';
    case 'jsonb':
      return column.jsonObject ? 'a JSON object' : 'a JSON value';
    case 'timestamptz':
      return 'an ISO-8601 timestamp with date, time and UTC offset, such as "2024-05-01T12:30:00Z"';
  }
}

function fail(column: ColumnDef, found: unknown, path: string): never {
  throw new ValidationError(path, `expected ${expectation(column)}; found ${describe(found)}`);
}

function checkString(value: string, path: string, what: string): void {
  const nul = value.indexOf('\u0000');
  if (nul >= 0) {
    throw new ValidationError(
      path,
      `expected ${what} without NUL (\\u0000) characters, which PostgreSQL cannot store; found one at index ${nul}`,
    );
  }
  const lone = LONE_SURROGATE.exec(value);
  if (lone) {
    throw new ValidationError(
      path,
      `expected ${what} of well-formed Unicode; found a lone UTF-16 surrogate at index ${lone.index}`,
    );
  }
}

/** A deep copy of a JSON value, refusing what is not JSON or what PostgreSQL's jsonb refuses. */
function copyJson(value: unknown, path: string, depth: number): JsonValue {
  if (value === null || typeof value === 'boolean') return value;
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) {
      throw new ValidationError(path, `expected a finite number; found ${describe(value)}`);
    }
    return value;
  }
  if (typeof value === 'string') {
    checkString(value, path, 'a string');
    return value;
  }
  if (Array.isArray(value) || isPlainObject(value)) {
    if (depth >= MAX_JSON_DEPTH) {
      throw new ValidationError(
        path,
        `expected JSON nested at most ${MAX_JSON_DEPTH} levels deep; found deeper nesting`,
      );
    }
    if (Array.isArray(value)) {
      const copy: JsonValue[] = [];
      for (let index = 0; index < value.length; index++) {
        copy.push(copyJson(value[index], `${path}[${index}]`, depth + 1));
      }
      return copy;
    }
    const copy: Record<string, JsonValue> = {};
    for (const name of Object.keys(value)) {
      const memberPath = pathOf(path, name);
      checkString(name, memberPath, 'an object key');
      setOwn(copy, name, copyJson(value[name], memberPath, depth + 1));
    }
    return copy;
  }
  throw new ValidationError(path, `expected a JSON value; found ${describe(value)}`);
}

/** Assigns even a key named "__proto__" as an own property instead of replacing the prototype. */
function setOwn(target: Record<string, JsonValue>, name: string, value: JsonValue): void {
  if (name === '__proto__') {
    Object.defineProperty(target, name, {
      value,
      enumerable: true,
      writable: true,
      configurable: true,
    });
  } else {
    target[name] = value;
  }
}

function isOp(value: unknown): value is Op {
  return typeof value === 'string' && (OPS as readonly string[]).includes(value);
}

function isPlainObject(value: unknown): value is JsonObject {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  const proto: unknown = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

/** `base.name`, or `base["name"]` when the name is not identifier-like (spaces, dots, quotes). */
function pathOf(base: string, name: string): string {
  if (IDENTIFIER.test(name) && name.length <= 64) return base ? `${base}.${name}` : name;
  return `${base}[${JSON.stringify(truncate(name, 64))}]`;
}

/** A short rendering of a found value for an error message. */
function describe(value: unknown): string {
  if (value === undefined) return 'undefined (not a JSON value)';
  if (value === null) return 'null';
  switch (typeof value) {
    case 'string':
      return value.length > 40
        ? `${JSON.stringify(truncate(value, 40))} (${value.length} characters)`
        : JSON.stringify(value);
    case 'number':
    case 'boolean':
      return String(value);
    case 'bigint':
      return `the BigInt ${truncate(String(value), 40)}n (not a JSON value)`;
    case 'symbol':
      return 'a symbol (not a JSON value)';
    case 'function':
      return 'a function (not a JSON value)';
  }
  if (Array.isArray(value)) return `an array of ${value.length} items`;
  if (isPlainObject(value)) return 'an object';
  const type = Object.prototype.toString.call(value).slice(8, -1);
  return `an object of type ${type} (not plain JSON)`;
}

function truncate(text: string, length: number): string {
  if (text.length <= length) return text;
  // Do not cut a surrogate pair in half.
  const end = /[\uD800-\uDBFF]/.test(text.charAt(length - 1)) ? length - 1 : length;
  return `${text.slice(0, end)}…`;
}

/** A validated change back in the `write` contract's form (to validate it again, say). */
export function toWriteInput(change: Change): Record<string, JsonValue> {
  if (change.op === 'upsert') return { op: change.op, table: change.table, record: change.record };
  if (change.op === 'patch') {
    return { op: change.op, table: change.table, key: change.key, set: change.set };
  }
  return { op: change.op, table: change.table, key: change.key };
}
