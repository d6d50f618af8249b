/**
 * Table definitions: the one description of a table that drives validation (G6),
 * SQL building and foreign-key order (G3). Each table also has a SQL migration.
 */

export type ColumnType =
  | 'uuid'
  | 'text'
  | 'integer'
  | 'bigint'
  | 'real'
  | 'double precision'
  | 'boolean'
  | 'jsonb'
  | 'timestamptz';

export interface ColumnDef {
  readonly type: ColumnType;
  /** @default true */
  readonly nullable?: boolean;
  /** The column has a SQL default: an upsert may omit it (insert takes the default, update keeps the value). */
  readonly hasDefault?: boolean;
  /**
   * The value of a constant SQL default, so that `read` can show it before the drain (G4). A
   * computed default (now()) has none: such a column reads null until the row is drained.
   */
  readonly defaultValue?: string | number | boolean;
  /** Allowed values of a text column (mirrors a CHECK constraint). */
  readonly oneOf?: readonly string[];
  /** Inclusive bounds of a numeric column (mirror CHECK constraints). */
  readonly min?: number;
  readonly max?: number;
  /** A jsonb column that must hold a JSON object. */
  readonly jsonObject?: boolean;
}

export interface ForeignKeyDef {
  readonly columns: readonly string[];
  readonly references: string;
}

export interface TableDef {
  readonly name: string;
  readonly primaryKey: readonly string[];
  readonly columns: Readonly<Record<string, ColumnDef>>;
  readonly foreignKeys?: readonly ForeignKeyDef[];
}

/** The known tables, checked for consistency once, with the order in which to write them. */
export class SchemaRegistry {
  /** Parents before children: the order for upserts and patches; deletes go in reverse (G3). */
  readonly writeOrder: readonly string[];
  private readonly tables: ReadonlyMap<string, TableDef>;

  constructor(tables: readonly TableDef[]) {
    const byName = new Map<string, TableDef>();
    for (const table of tables) {
      if (byName.has(table.name)) throw new Error(`table ${table.name} is defined twice`);
      if (table.primaryKey.length === 0) throw new Error(`table ${table.name} has no primary key`);
      for (const column of table.primaryKey) {
        if (!Object.hasOwn(table.columns, column)) {
          throw new Error(`table ${table.name}: primary key column ${column} is not a column`);
        }
      }
      byName.set(table.name, table);
    }
    for (const table of tables) {
      for (const fk of table.foreignKeys ?? []) {
        if (!byName.has(fk.references)) {
          throw new Error(`table ${table.name} references unknown table ${fk.references}`);
        }
      }
    }
    this.tables = byName;
    this.writeOrder = topologicalOrder(tables);
  }

  get(name: string): TableDef | undefined {
    return this.tables.get(name);
  }

  names(): string[] {
    return [...this.tables.keys()];
  }
}

function topologicalOrder(tables: readonly TableDef[]): string[] {
  const order: string[] = [];
  const state = new Map<string, 'visiting' | 'done'>();
  const byName = new Map(tables.map((t) => [t.name, t]));
  const visit = (name: string, path: string[]): void => {
    const seen = state.get(name);
    if (seen === 'done') return;
    if (seen === 'visiting')
      throw new Error(`foreign keys form a cycle: ${[...path, name].join(' -> ')}`);
    state.set(name, 'visiting');
    for (const fk of byName.get(name)?.foreignKeys ?? []) {
      // A self-reference is allowed: rows of one table are written in one statement.
      if (fk.references !== name) visit(fk.references, [...path, name]);
    }
    state.set(name, 'done');
    order.push(name);
  };
  for (const table of tables) visit(table.name, []);
  return order;
}
