/**
 * Where a batch must end so that draining it gives what applying its changesets one at a time,
 * in acknowledgement order, gives (G2: the outcome never depends on how changesets fall into
 * batches). Pure: plain data in, a decision out.
 *
 * A batch is coalesced per row and applied in foreign-key order (G3): every upsert and patch,
 * parents first, then every delete, children first. Applied one at a time, each changeset is
 * coalesced and ordered the same way, but only within itself. The two orders meet the same
 * foreign-key checks, and so commit or refuse the same changesets, unless a later changeset
 * of the batch does one of the following after an earlier one (C a table referencing P):
 *
 * 1. upserts a row of C, or patches its reference to P, after a delete of any row of P: the
 *    batch deletes P last, so the row (new, or moved away from the deleted parent, whose old
 *    reference is unknown) would see a parent that the sequence had already deleted;
 * 2. upserts a row of P that an earlier change of a C row referenced without upserting it in
 *    its own changeset: the batch writes the parent first, so a child the sequence refused lands;
 * 3. deletes a row of C after a delete of a row of P: the batch deletes the child first, so a
 *    parent delete the sequence refused (RESTRICT) succeeds; a delete's old values are unknown,
 *    so this is decided per table;
 * 4. upserts a row of a referenced table that was deleted earlier: coalescing drops the delete,
 *    and with it the RESTRICT check the sequence made;
 * 5. deletes a row of C, or writes another reference, after a change that referenced a parent
 *    it did not upsert itself: coalescing drops that change's reference, and with it the check;
 * 6. touches a self-referencing table another changeset of the batch touched: rows of one table
 *    are written by statements in the order their shapes first appear, which a batch can change.
 *
 * Each rule looks at one earlier changeset and the next one, never at what lies between, so a
 * contiguous part of an admitted batch (a half, when the drainer bisects a refused batch) is
 * admitted too. Where a key is unknown (a delete, a patch of part of a multi-column reference, a
 * referencing column left to its SQL default) the plan assumes the worst. The pipeline's own
 * pattern (a document, its chunks, their entities, relationships and task, a status patch, the
 * next document) has no deletes and references only parents written before: it is never cut.
 *
 * Left alone: coalescing also hides a value the database would refuse for a row written again
 * later in the batch (a trigger, a constraint the table definitions do not mirror).
 */
import type { Change } from './changeset.js';
import { coalesce, type RowWrite } from './coalesce.js';
import type { ForeignKeyDef, SchemaRegistry, TableDef } from './schema.js';

/** What the plan looks at in a changeset. */
export interface PlannedChangeset {
  readonly changes: readonly Change[];
}

/** A parent key the plan cannot know (partial patch of a multi-column reference, SQL default). */
const UNKNOWN = '*';

/** Where one change points through one foreign key. */
interface Reference {
  /** The change writes the referencing columns (an upsert always does). */
  readonly touched: boolean;
  /** Row key of the parent; null for no reference (a NULL column), UNKNOWN when unknown. */
  readonly parent: string | null;
}

const rowIdOf = (table: string, rowKey: string): string => `${table}\u0000${rowKey}`;

/**
 * The batch being built: `admits` says whether the next changeset may join it, `add` lets it
 * join. The first changeset of a batch is always admitted.
 */
export class BatchPlan {
  private size = 0;
  /** Tables with a row deleted in the batch (rules 1 and 3). */
  private readonly deletedTables = new Set<string>();
  /** Deleted rows of tables that other tables reference (rule 4). */
  private readonly deletedReferencedRows = new Set<string>();
  /** Parent rows referenced by a changeset that did not upsert them (rule 2). */
  private readonly unresolvedParents = new Set<string>();
  /** Parent tables referenced through an unknown key (rule 2, for any row). */
  private readonly unresolvedParentTables = new Set<string>();
  /** Child rows with such a reference: foreign-key index to parent key (rule 5). */
  private readonly unresolvedChildren = new Map<string, Map<number, string>>();
  /** Self-referencing tables touched by the batch (rule 6). */
  private readonly selfReferencingTouched = new Set<string>();
  private readonly referenced = new Set<string>();
  private readonly selfReferencing = new Set<string>();
  /**
   * The net rows of the changeset looked at last, with their references (by row, then by
   * foreign key; none for a delete): `add` follows `admits` for the same one.
   */
  private last:
    | {
        changeset: PlannedChangeset;
        rows: readonly RowWrite[];
        /** Per row: its id (`rowIdOf`) and definition (undefined for a table the registry lacks). */
        rowIds: readonly string[];
        defs: readonly (TableDef | undefined)[];
        references: readonly (readonly Reference[])[];
      }
    | undefined;

  constructor(private readonly registry: SchemaRegistry) {
    for (const name of registry.names()) {
      for (const fk of registry.get(name)?.foreignKeys ?? []) {
        this.referenced.add(fk.references);
        if (fk.references === name) this.selfReferencing.add(name);
      }
    }
  }

  /** Changesets in the batch. */
  get changesets(): number {
    return this.size;
  }

  /** Whether `changeset` may join the batch without changing its outcome (G2). */
  admits(changeset: PlannedChangeset): boolean {
    return this.size === 0 || this.conflict(changeset) === undefined;
  }

  /** Why `changeset` cannot join the batch so far, or undefined when it can (for logs and tests). */
  conflict(changeset: PlannedChangeset): string | undefined {
    const { rows, rowIds, defs, references } = this.netRows(changeset);
    for (let at = 0; at < rows.length; at++) {
      const row = rows[at] as RowWrite;
      const def = defs[at];
      // A table the registry does not know has no known references; the sink refuses it alone.
      if (def === undefined) continue;
      const rowId = rowIds[at] as string;
      if (this.selfReferencing.has(row.table) && this.selfReferencingTouched.has(row.table)) {
        return `${describe(row)}: ${row.table} references itself and the batch already writes it`;
      }
      const unresolved = this.unresolvedChildren.get(rowId);
      const foreignKeys = def.foreignKeys ?? [];
      if (row.op === 'delete') {
        for (const fk of foreignKeys) {
          if (this.deletedTables.has(fk.references)) {
            return `${describe(row)}: the batch deleted a row of its parent table ${fk.references} before`;
          }
        }
        if (unresolved !== undefined) {
          return `${describe(row)}: an earlier change of the row references a parent it did not write`;
        }
        continue;
      }
      const rowReferences = references[at] as readonly Reference[];
      for (let index = 0; index < foreignKeys.length; index++) {
        const fk = foreignKeys[index] as ForeignKeyDef;
        const reference = rowReferences[index] as Reference;
        if (!reference.touched) continue;
        if (this.deletedTables.has(fk.references)) {
          return `${describe(row)}: the batch deleted a row of its parent table ${fk.references} before`;
        }
        const before = unresolved?.get(index);
        if (before !== undefined && (before === UNKNOWN || before !== reference.parent)) {
          return `${describe(row)}: an earlier change of the row references another parent it did not write`;
        }
      }
      if (row.op === 'upsert') {
        if (this.unresolvedParents.has(rowId) || this.unresolvedParentTables.has(row.table)) {
          return `${describe(row)}: an earlier change referenced this row before it was written`;
        }
        if (this.deletedReferencedRows.has(rowId)) {
          return `${describe(row)}: the batch deleted this row before, and other tables reference it`;
        }
      }
    }
    return undefined;
  }

  /** Let `changeset` join the batch (after `admits` said it may). */
  add(changeset: PlannedChangeset): void {
    this.size += 1;
    const { rows, rowIds, defs, references } = this.netRows(changeset);
    const upserted = new Set<string>();
    for (let at = 0; at < rows.length; at++) {
      if ((rows[at] as RowWrite).op === 'upsert') upserted.add(rowIds[at] as string);
    }
    for (let at = 0; at < rows.length; at++) {
      const row = rows[at] as RowWrite;
      const def = defs[at];
      if (def === undefined) continue;
      const rowId = rowIds[at] as string;
      if (this.selfReferencing.has(row.table)) this.selfReferencingTouched.add(row.table);
      if (row.op === 'delete') {
        this.deletedTables.add(row.table);
        if (this.referenced.has(row.table)) this.deletedReferencedRows.add(rowId);
        continue;
      }
      const foreignKeys = def.foreignKeys ?? [];
      const rowReferences = references[at] as readonly Reference[];
      for (let index = 0; index < foreignKeys.length; index++) {
        const fk = foreignKeys[index] as ForeignKeyDef;
        const { touched, parent } = rowReferences[index] as Reference;
        if (!touched || parent === null) continue;
        if (parent === UNKNOWN) this.unresolvedParentTables.add(fk.references);
        else if (upserted.has(rowIdOf(fk.references, parent))) continue;
        else this.unresolvedParents.add(rowIdOf(fk.references, parent));
        let byKey = this.unresolvedChildren.get(rowId);
        if (byKey === undefined) {
          byKey = new Map();
          this.unresolvedChildren.set(rowId, byKey);
        }
        byKey.set(index, parent);
      }
    }
  }

  /** The net change of a changeset to each row, as applying it alone would write it. */
  private netRows(changeset: PlannedChangeset): NonNullable<BatchPlan['last']> {
    if (this.last?.changeset !== changeset) {
      const rows = coalesce([
        { streamId: '', version: '', changesetId: '', changes: changeset.changes },
      ]).rows;
      const rowIds: string[] = [];
      const defs: (TableDef | undefined)[] = [];
      const references: (readonly Reference[])[] = [];
      for (const row of rows) {
        const def = this.registry.get(row.table);
        rowIds.push(rowIdOf(row.table, row.rowKey));
        defs.push(def);
        references.push(
          def === undefined || row.op === 'delete'
            ? []
            : (def.foreignKeys ?? []).map((fk) => referenceOf(def, fk, row)),
        );
      }
      this.last = { changeset, rows, rowIds, defs, references };
    }
    return this.last;
  }
}

/**
 * Splits changesets read in acknowledgement order into the next batch (never empty when
 * `changesets` is not) and the rest, which must start the batch after it, in the same order.
 */
export function planBatch<T extends PlannedChangeset>(
  registry: SchemaRegistry,
  changesets: readonly T[],
): { batch: T[]; rest: T[] } {
  const plan = new BatchPlan(registry);
  let end = 0;
  for (const changeset of changesets) {
    if (!plan.admits(changeset)) break;
    plan.add(changeset);
    end += 1;
  }
  return { batch: changesets.slice(0, end), rest: changesets.slice(end) };
}

/** A row write, for a conflict's reason (only built when there is one). */
const describe = (row: RowWrite): string => `${row.op} of ${row.table} ${row.rowKey}`;

/** The parent a row write points to through `fk` (MATCH SIMPLE: a NULL column means none). */
function referenceOf(def: TableDef, fk: ForeignKeyDef, row: RowWrite): Reference {
  const [only, ...more] = fk.columns;
  if (only !== undefined && more.length === 0 && Object.hasOwn(row.values, only)) {
    // The usual reference, one given column: the same answer as below, without its arrays.
    const value = row.values[only] ?? null;
    return { touched: true, parent: value === null ? null : `[${JSON.stringify(value)}]` };
  }
  const given = fk.columns.filter((column) => Object.hasOwn(row.values, column));
  if (row.op === 'patch' && given.length === 0) return { touched: false, parent: null };
  if (given.some((column) => row.values[column] === null)) return { touched: true, parent: null };
  const values = [];
  for (const column of fk.columns) {
    if (Object.hasOwn(row.values, column)) values.push(row.values[column] ?? null);
    // An upsert leaves an omitted column NULL, or to its default, which the plan cannot know.
    else if (row.op === 'upsert' && !def.columns[column]?.hasDefault)
      return { touched: true, parent: null };
    else return { touched: true, parent: UNKNOWN };
  }
  // The referencing columns, in order, are the parent's primary key: its row key (rowKeyOf).
  return { touched: true, parent: JSON.stringify(values) };
}
