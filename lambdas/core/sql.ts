/**
 * SQL for applying a coalesced batch. Each statement writes every row of one table and one
 * shape in a single round trip: rows travel as one JSON parameter, an array of positional rows
 * (`[rowKey, version, ...columns]`) unpacked by `jsonb_array_elements` (`unpack`).
 *
 * Every write is guarded by the table's version table (G2, `versionTableOf`): a row is written
 * only when the change is newer than the version recorded for its key, so redelivered or stale
 * changes do nothing, and a delete leaves a tombstone that keeps an older upsert from bringing
 * the row back. Each user table has its own version table in the `spillway` schema, keyed by the
 * table's own primary-key columns with their types (text keys compared byte for byte,
 * COLLATE "C"); `spillway.row_versions`, one table keyed by the table's name and the row key as
 * JSON text, is no longer written (the migrator moves its rows, `io/migrator.ts`).
 *
 * Nothing here pins an RDS Proxy / PgBouncer session: unnamed statements, no SET, no temp tables.
 */
import type { JsonValue } from './changeset.js';
import type { RowWrite } from './coalesce.js';
import type { SchemaRegistry, TableDef } from './schema.js';

export interface Statement {
  readonly op: RowWrite['op'];
  readonly table: string;
  readonly text: string;
  readonly values: readonly unknown[];
  /** Rows in this statement. */
  readonly rows: number;
}

/** Quote an identifier for PostgreSQL. */
export function ident(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}

export function qualifiedName(schema: string, table: string): string {
  return `${ident(schema)}.${ident(table)}`;
}

/**
 * The bookkeeping `migrate` keeps beyond what the SQL files create: a version table per table of
 * the definitions (since this layout, `migrate` creates them and moves `spillway.row_versions`
 * into them). The CDK app's migration resource carries it, so that a deploy of code expecting
 * another layout runs `migrate` even when no SQL file and no table definition changed. Change it
 * whenever what `createVersionTables` makes changes.
 */
export const BOOKKEEPING_LAYOUT = 'version-tables-per-table-1';

/** PostgreSQL's longest identifier, in bytes (NAMEDATALEN - 1); longer ones are truncated. */
const MAX_IDENTIFIER_BYTES = 63;

/**
 * The name (unquoted) of the version table of `schema`.`table` in the `spillway` schema:
 * `<schema>.<table>`, or when that is longer than PostgreSQL's 63-byte identifier limit, a
 * prefix of it, `~` and a 64-bit FNV-1a hash of the whole name (16 hex digits), so that two
 * tables share a name only if their hashes collide.
 */
export function versionTableName(schema: string, table: string): string {
  const name = `${schema}.${table}`;
  const utf8 = new TextEncoder();
  const bytes = utf8.encode(name);
  if (bytes.length <= MAX_IDENTIFIER_BYTES) return name;
  const suffix = `~${fnv1a64(bytes)}`;
  let prefix = '';
  let size = 0;
  for (const char of name) {
    const charBytes = utf8.encode(char).length;
    if (size + charBytes > MAX_IDENTIFIER_BYTES - suffix.length) break;
    prefix += char;
    size += charBytes;
  }
  return `${prefix}${suffix}`;
}

/** 64-bit FNV-1a of `bytes`, as 16 hex digits. */
function fnv1a64(bytes: Uint8Array): string {
  let hash = 0xcbf29ce484222325n;
  for (const byte of bytes) {
    hash ^= BigInt(byte);
    hash = (hash * 0x100000001b3n) & 0xffffffffffffffffn;
  }
  return hash.toString(16).padStart(16, '0');
}

/** A table's version table: its qualified name and its quoted column names. */
export interface VersionTable {
  /** `spillway."<schema>.<table>"`. */
  readonly name: string;
  /** The table's primary-key columns, quoted, in primary-key order. */
  readonly key: readonly string[];
  /** The version column, quoted: `version`, or `"@version"` when a key column is so named. */
  readonly version: string;
  /** The tombstone column, quoted: `deleted`, or `"@deleted"` when a key column is so named. */
  readonly deleted: string;
}

/** The version table of `def` in `schema` (G2): one row per key ever written, tombstones too. */
export function versionTableOf(def: TableDef, schema: string): VersionTable {
  const taken = (c: string) => def.primaryKey.includes(c);
  return {
    name: `spillway.${ident(versionTableName(schema, def.name))}`,
    key: def.primaryKey.map(ident),
    version: ident(taken('version') ? '@version' : 'version'),
    deleted: ident(taken('deleted') ? '@deleted' : 'deleted'),
  };
}

/**
 * `CREATE TABLE IF NOT EXISTS` of the version table of `def`: its primary-key columns with the
 * definition's types (text in COLLATE "C": keys are only compared for equality, and byte
 * comparisons are the cheapest), the version and the tombstone flag.
 */
export function versionTableDdl(def: TableDef, schema: string): string {
  const vt = versionTableOf(def, schema);
  const keys = def.primaryKey.map(
    (c, i) => `${vt.key[i]} ${def.columns[c]?.type ?? 'text'}${byteOrder(def, c)} NOT NULL`,
  );
  return `CREATE TABLE IF NOT EXISTS ${vt.name} (${keys.join(', ')}, ${vt.version} bigint NOT NULL, ${vt.deleted} boolean NOT NULL DEFAULT false, PRIMARY KEY (${vt.key.join(', ')}))`;
}

/**
 * Element `at` of `json` (a jsonb array expression) as column `column` of `def` holds it: text
 * as text, jsonb as it is (a JSON null as SQL NULL), anything else cast to its type. How
 * `unpack` reads a row's columns and `keyColumnFromJson` a row key's.
 */
function typedElement(def: TableDef, column: string, json: string, at: number): string {
  const type = def.columns[column]?.type ?? 'text';
  return type === 'jsonb'
    ? `nullif(${json}->${at}, 'null'::jsonb)`
    : type === 'text'
      ? `(${json}->>${at})`
      : `(${json}->>${at})::${type}`;
}

/**
 * The value of primary-key column `column` of `def`, typed, from `json`, a jsonb expression of
 * the row key as `rowKeyOf` writes it (a JSON array in primary-key order).
 */
export function keyColumnFromJson(def: TableDef, column: string, json: string): string {
  const at = def.primaryKey.indexOf(column);
  if (at < 0) throw new Error(`${column} is not a primary-key column of ${def.name}`);
  return typedElement(def, column, json, at);
}

/** ` COLLATE "C"` for a text column of `def` (version tables compare keys byte for byte), else ''. */
function byteOrder(def: TableDef, column: string): string {
  return (def.columns[column]?.type ?? 'text') === 'text' ? ' COLLATE "C"' : '';
}

/**
 * `a.k1 = b.k1 AND ...` over the primary-key columns of `def`, text ones compared byte for byte
 * as the version tables store them.
 */
function keyJoin(def: TableDef, a: string, b: string): string {
  return def.primaryKey
    .map((c) => `${a}.${ident(c)} = ${b}.${ident(c)}${byteOrder(def, c)}`)
    .join(' AND ');
}

/**
 * Moves up to `$2` rows (all when null) of `$1` (`<schema>.<table>`) from spillway.row_versions,
 * where releases before version tables kept every table's versions, to def's version table,
 * their keys typed, and answers how many it took (`moved`): one row per typed key with the
 * highest version, and a version already there stays when it is newer (G2). `migrate` runs it (`io/migrator.ts`), and so does every drain's first transaction, for
 * what a drain of the earlier release wrote while a deploy replaced it (`PostgresSink`).
 */
export function moveOldVersions(def: TableDef, schema: string): string {
  const vt = versionTableOf(def, schema);
  const keys = vt.key.join(', ');
  const typed = def.primaryKey
    .map((c, i) => `${keyColumnFromJson(def, c, 'm.row_key::jsonb')} AS ${vt.key[i]}`)
    .join(', ');
  return `WITH moved AS (DELETE FROM spillway.row_versions WHERE ctid IN (
    SELECT ctid FROM spillway.row_versions WHERE table_name = $1 LIMIT $2::bigint)
  RETURNING row_key, version, deleted),
kept AS (INSERT INTO ${vt.name} AS rv (${keys}, ${vt.version}, ${vt.deleted})
SELECT DISTINCT ON (${keys}) ${keys}, "@v", "@d"
FROM (SELECT ${typed}, m.version AS "@v", m.deleted AS "@d" FROM moved AS m) AS k
ORDER BY ${keys}, "@v" DESC
ON CONFLICT (${keys}) DO UPDATE SET ${vt.version} = EXCLUDED.${vt.version}, ${vt.deleted} = EXCLUDED.${vt.deleted}
WHERE rv.${vt.version} < EXCLUDED.${vt.version})
SELECT count(*)::int AS moved FROM moved`;
}

/**
 * The fencing check that opens every drain transaction: fails (no row) once a newer drainer
 * wrote. It also records the largest version the transaction applies ($3), which a drain after
 * a loss of the cache's data starts its versions above (G2).
 */
export const FENCE_SQL = `INSERT INTO spillway.drain_fence AS f (buffer, token, max_version) VALUES ($1, $2::bigint, $3::bigint)
ON CONFLICT (buffer) DO UPDATE SET token = EXCLUDED.token,
  max_version = greatest(f.max_version, EXCLUDED.max_version)
WHERE f.token <= EXCLUDED.token
RETURNING token`;

/**
 * Checks that rows patched earlier in the batch, and replaced or deleted later in it, existed:
 * each returns the keys of rows that did not (and whose patch is not already applied), which
 * makes the batch a rejection (G7). The final patch of a row is checked by its own statement.
 */
export function buildExistenceChecks(
  rows: readonly RowWrite[],
  registry: SchemaRegistry,
  schema: string,
): Statement[] {
  const byTable = new Map<string, RowWrite[]>();
  for (const row of rows) {
    if (row.patchedFrom === undefined || row.op === 'patch') continue;
    const list = byTable.get(row.table);
    if (list) list.push(row);
    else byTable.set(row.table, [row]);
  }
  return [...byTable].map(([table, group]) => {
    const def = registry.get(table);
    if (def === undefined) throw new Error(`no table definition for ${table}`);
    const keyMatch = def.primaryKey.map((c) => `t.${ident(c)} = i.${ident(c)}`).join(' AND ');
    const vt = versionTableOf(def, schema);
    const payload = group.map((row) => [
      row.rowKey,
      row.patchedFrom ?? null,
      ...def.primaryKey.map((c) => row.key[c] ?? null),
    ]);
    return {
      op: 'patch' as const,
      table,
      text: `SELECT i."@k" AS row_key FROM (${unpack(def, def.primaryKey, true)}) AS i
WHERE NOT EXISTS (SELECT 1 FROM ${qualifiedName(schema, table)} AS t WHERE ${keyMatch})
  AND NOT EXISTS (SELECT 1 FROM ${vt.name} AS rv
    WHERE ${keyJoin(def, 'rv', 'i')} AND rv.${vt.version} >= i."@v")`,
      values: [JSON.stringify(payload)],
      rows: group.length,
    };
  });
}

/**
 * Statements in foreign-key order (G3): upserts and patches parents first, then deletes
 * children first.
 */
export function buildStatements(
  rows: readonly RowWrite[],
  registry: SchemaRegistry,
  schema: string,
): Statement[] {
  const groups = new Map<string, RowWrite[]>();
  const defaulted = new Map<string, string[]>();
  for (const row of rows) {
    let columns = defaulted.get(row.table);
    if (columns === undefined) {
      const def = registry.get(row.table);
      columns = Object.keys(def?.columns ?? {}).filter((c) => def?.columns[c]?.hasDefault);
      defaulted.set(row.table, columns);
    }
    const id = `${row.table}\u0000${row.op}\u0000${shapeOf(row, columns)}`;
    const group = groups.get(id);
    if (group) group.push(row);
    else groups.set(id, [row]);
  }
  const statements: Statement[] = [];
  const emit = (table: string, op: RowWrite['op']): void => {
    for (const group of groups.values()) {
      const first = group[0];
      if (first === undefined || first.table !== table || first.op !== op) continue;
      const def = registry.get(table);
      if (def === undefined) throw new Error(`no table definition for ${table}`);
      statements.push(buildStatement(def, op, group, schema));
    }
  };
  for (const table of registry.writeOrder) {
    emit(table, 'upsert');
    emit(table, 'patch');
  }
  for (const table of [...registry.writeOrder].reverse()) emit(table, 'delete');
  return statements;
}

/** Rows of one table and op share a statement when they write the same columns. */
function shapeOf(row: RowWrite, defaulted: readonly string[]): string {
  if (row.op === 'delete') return '';
  if (row.op === 'patch') return Object.keys(row.values).sort().join(',');
  // An upsert writes every column; those with a SQL default only when given.
  let shape = '';
  for (const column of defaulted) {
    if (Object.hasOwn(row.values, column)) shape += `${column},`;
  }
  return shape;
}

function buildStatement(
  def: TableDef,
  op: RowWrite['op'],
  given: readonly RowWrite[],
  schema: string,
): Statement {
  // A statement's foreign-key checks run at its end, whatever its rows' order; a statement split
  // into parts (the Data API's request limit) checks at the end of each, so parents come first.
  const rows = op !== 'delete' && isSelfReferencing(def) ? parentsFirst(def, given) : given;
  const first = rows[0];
  if (first === undefined) throw new Error('empty statement group');
  const columns = columnsOf(def, op, first);
  // Only a patch returns row keys (of rows it found missing); the others leave them out.
  const withKey = op === 'patch';
  const payload = rows.map((row) => {
    const item: JsonValue[] = withKey ? [row.rowKey, row.version] : [row.version];
    for (const c of columns) item.push(row.values[c] ?? row.key[c] ?? null);
    return item;
  });
  const target = qualifiedName(schema, def.name);
  const keyMatch = def.primaryKey.map((c) => `t.${ident(c)} = i.${ident(c)}`).join(' AND ');
  const incoming = `incoming AS (${unpack(def, columns, withKey)})`;
  const vt = versionTableOf(def, schema);
  const keys = vt.key.join(', ');
  const accepted = keyJoin(def, 'a', 'i');
  const versions = (deleted: boolean, revive: boolean) =>
    `accepted AS (INSERT INTO ${vt.name} AS rv (${keys}, ${vt.version}, ${vt.deleted})
  SELECT ${keys}, "@v", ${deleted} FROM incoming
  ON CONFLICT (${keys}) DO UPDATE SET ${vt.version} = EXCLUDED.${vt.version}${revive ? `, ${vt.deleted} = EXCLUDED.${vt.deleted}` : ''}
  WHERE rv.${vt.version} < EXCLUDED.${vt.version}
  RETURNING ${keys})`;

  let text: string;
  if (op === 'upsert') {
    const list = columns.map(ident).join(', ');
    const updates = columns
      .filter((c) => !def.primaryKey.includes(c))
      .map((c) => `${ident(c)} = EXCLUDED.${ident(c)}`);
    const conflict = updates.length > 0 ? `DO UPDATE SET ${updates.join(', ')}` : 'DO NOTHING';
    text = `WITH ${incoming},
${versions(false, true)}
INSERT INTO ${target} AS t (${list})
SELECT ${columns.map((c) => `i.${ident(c)}`).join(', ')} FROM incoming i JOIN accepted a ON ${accepted}
ON CONFLICT (${def.primaryKey.map(ident).join(', ')}) ${conflict}`;
  } else if (op === 'patch') {
    const sets = columns
      .filter((c) => !def.primaryKey.includes(c))
      .map((c) => `${ident(c)} = i.${ident(c)}`)
      .join(', ');
    // Returns the keys whose change is newer than the database but whose row is missing.
    text = `WITH ${incoming},
${versions(false, false)},
updated AS (UPDATE ${target} AS t SET ${sets}
  FROM incoming i JOIN accepted a ON ${accepted} WHERE ${keyMatch}
  RETURNING i."@k" AS row_key)
SELECT i."@k" AS row_key FROM incoming i JOIN accepted a ON ${accepted}
WHERE NOT EXISTS (SELECT 1 FROM updated u WHERE u.row_key = i."@k")`;
  } else {
    text = `WITH ${incoming},
${versions(true, true)}
DELETE FROM ${target} AS t USING incoming i JOIN accepted a ON ${accepted} WHERE ${keyMatch}`;
  }
  return {
    op,
    table: def.name,
    text,
    values: [JSON.stringify(payload)],
    rows: rows.length,
  };
}

/** Whether `def` has a foreign key to itself (a tree: categories, comment threads...). */
function isSelfReferencing(def: TableDef): boolean {
  return (def.foreignKeys ?? []).some((fk) => fk.references === def.name);
}

/**
 * Rows of a self-referencing table with every row after the rows it references among them
 * (depth first, in their given order otherwise). A cycle keeps its given order: it can only
 * land in one statement.
 */
function parentsFirst(def: TableDef, rows: readonly RowWrite[]): RowWrite[] {
  const byKey = new Map(rows.map((row) => [row.rowKey, row]));
  const parentsOf = (row: RowWrite): RowWrite[] =>
    (def.foreignKeys ?? []).flatMap((fk) => {
      if (fk.references !== def.name) return [];
      const values = fk.columns.map((c) => row.values[c] ?? row.key[c] ?? null);
      if (values.some((v) => v === null)) return [];
      const parent = byKey.get(JSON.stringify(values));
      return parent === undefined || parent === row ? [] : [parent];
    });
  const placed = new Set<RowWrite>();
  const ordered: RowWrite[] = [];
  for (const start of rows) {
    if (placed.has(start)) continue;
    // Depth first: a row is placed once every parent of it is (or is on the path: a cycle).
    const path = [start];
    const onPath = new Set(path);
    while (path.length > 0) {
      const row = path[path.length - 1] as RowWrite;
      const parent = parentsOf(row).find((p) => !placed.has(p) && !onPath.has(p));
      if (parent !== undefined) {
        path.push(parent);
        onPath.add(parent);
        continue;
      }
      path.pop();
      onPath.delete(row);
      placed.add(row);
      ordered.push(row);
    }
  }
  return ordered;
}

/**
 * The rows of `$1`, a JSON array of `[rowKey, version, ...columns]` (`[version, ...columns]`
 * without `withKey`), as a relation with the columns `"@k"` (with `withKey`), `"@v"` and
 * `columns` typed as the table says. Parsed once as jsonb: an element is then read by position
 * without parsing it again, and a jsonb column's value is taken as it is (a JSON null is SQL
 * NULL, as for every other type). About a tenth less of PostgreSQL's work than
 * `json_to_recordset` over objects, and a payload without a column name per value.
 */
function unpack(def: TableDef, columns: readonly string[], withKey: boolean): string {
  const first = withKey ? 1 : 0;
  const fields = columns.map(
    (c, i) => `${typedElement(def, c, 'e', first + 1 + i)} AS ${ident(c)}`,
  );
  const key = withKey ? 'e->>0 AS "@k", ' : '';
  return `SELECT ${key}(e->>${first})::bigint AS "@v", ${fields.join(', ')} FROM jsonb_array_elements($1::jsonb) AS e`;
}

function columnsOf(def: TableDef, op: RowWrite['op'], sample: RowWrite): string[] {
  if (op === 'delete') return [...def.primaryKey];
  if (op === 'patch') {
    return [
      ...def.primaryKey,
      ...Object.keys(sample.values).filter((c) => !def.primaryKey.includes(c)),
    ];
  }
  return Object.keys(def.columns).filter(
    (c) => !def.columns[c]?.hasDefault || Object.hasOwn(sample.values, c),
  );
}
