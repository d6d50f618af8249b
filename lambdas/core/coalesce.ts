/**
 * Coalescing: many changes to one row within a batch become one write (G2, G3).
 * Pure: the drainer feeds it the changesets of a batch in acknowledgement order.
 */
import type { Change, JsonValue } from './changeset.js';

/** One changeset as the drainer takes it from the backlog. */
export interface PendingChangeset {
  /** Stream id of the backlog entry (acknowledged and deleted after commit). */
  readonly streamId: string;
  /** The row version its changes carry: its own stream id, or the original one for a replay. */
  readonly version: string;
  readonly changesetId: string;
  readonly changes: readonly Change[];
  /** A replayed dead letter: its version is older than its place in the log. */
  readonly replayed?: boolean;
  /** What it costs Redis in bytes (charged when written, refunded when settled). */
  readonly charge?: number;
  /**
   * Bytes of its changes as the backlog stores them (JSON): what reading it moves, and what its
   * decoded changes take in the drainer's memory, a few times over. Bounds a drain batch.
   */
  readonly bytes?: number;
}

/** The net effect of a batch on one row. */
export interface RowWrite {
  readonly table: string;
  readonly rowKey: string;
  readonly key: Readonly<Record<string, JsonValue>>;
  /** upsert: the full row; patch: the columns to set; delete: nothing. */
  readonly op: 'upsert' | 'patch' | 'delete';
  readonly values: Readonly<Record<string, JsonValue>>;
  /** Version of the last change to this row in the batch. */
  readonly version: string;
  /** Stream id of the changeset that last touched this row: its overlay entry may be cleared. */
  readonly lastStreamId: string;
  /**
   * Version of a patch that began this row's changes in the batch: the row must exist in the
   * database for it (unless that patch is already applied), even when a later change replaced it.
   */
  readonly patchedFrom?: string;
}

export interface CoalescedBatch {
  readonly rows: readonly RowWrite[];
  /** Changes in the batch. */
  readonly changes: number;
  /** Set when a change cannot apply whatever the database holds (a patch of a row deleted earlier). */
  readonly rejection?: string;
}

export function coalesce(batch: readonly PendingChangeset[]): CoalescedBatch {
  const rows = new Map<string, RowWrite>();
  let changes = 0;
  let rejection: string | undefined;
  for (const changeset of batch) {
    for (const change of changeset.changes) {
      changes += 1;
      const id = `${change.table}\u0000${change.rowKey}`;
      const before = rows.get(id);
      let op: RowWrite['op'];
      let values: Readonly<Record<string, JsonValue>>;
      let patchedFrom = before?.patchedFrom;
      if (change.op === 'upsert') {
        op = 'upsert';
        values = change.record;
      } else if (change.op === 'delete') {
        op = 'delete';
        values = {};
      } else if (before === undefined) {
        op = 'patch';
        values = change.set;
        patchedFrom = changeset.version;
      } else if (before.op === 'delete') {
        rejection ??= `patch of a row deleted earlier: ${change.table} ${change.rowKey} (changeset ${changeset.changesetId})`;
        op = 'delete';
        values = before.values;
      } else {
        op = before.op;
        values = { ...before.values, ...change.set };
      }
      const row: RowWrite = {
        table: change.table,
        rowKey: change.rowKey,
        key: change.key,
        op,
        values,
        version: changeset.version,
        lastStreamId: changeset.streamId,
      };
      rows.set(id, patchedFrom === undefined ? row : { ...row, patchedFrom });
    }
  }
  return rejection === undefined
    ? { rows: [...rows.values()], changes }
    : { rows: [...rows.values()], changes, rejection };
}
