import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { validateChangeset } from '../../lambdas/core/changeset.js';
import { coalesce, type PendingChangeset, type RowWrite } from '../../lambdas/core/coalesce.js';
import { SchemaRegistry, type TableDef } from '../../lambdas/core/schema.js';
import {
  buildExistenceChecks,
  buildStatements,
  versionTableName,
  versionTableOf,
} from '../../lambdas/core/sql.js';
import { pipelineRegistry, pipelineTables } from '../../lambdas/schema/tables.js';

/** RDS Proxy pins the session of a statement whose text is longer (shared/DESIGN.md). */
const PINNING_TEXT_BYTES = 16 * 1024;

type Input = Record<string, unknown>;

/** The coalesced rows of `changes`, split into changesets of at most 1,000 changes. */
function rowsOf(changes: Input[], registry = pipelineRegistry): RowWrite[] {
  const pending: PendingChangeset[] = [];
  for (let at = 0; at < changes.length; at += 1_000) {
    const n = pending.length + 1;
    pending.push({
      streamId: `${n}-0`,
      version: String(n * 1_000_000),
      changesetId: `cs-${n}`,
      changes: validateChangeset({ changes: changes.slice(at, at + 1_000) }, registry),
    });
  }
  return [...coalesce(pending).rows];
}

const doc = (id = randomUUID(), extra: Input = {}): Input => ({
  op: 'upsert',
  table: 'source_documents',
  record: { document_uuid: id, filename: 'a.pdf', status: 'pending', ...extra },
});
const chunk = (documentId: string, id = randomUUID()): Input => ({
  op: 'upsert',
  table: 'document_chunks',
  record: { chunk_uuid: id, document_uuid: documentId, chunk_index: 0, text: 'x' },
});
const deleteOf = (table: string, column: string, id: string): Input => ({
  op: 'delete',
  table,
  key: { [column]: id },
});

describe('buildStatements', () => {
  it('writes one statement per table, op and shape, in foreign-key order: parents upserted first, children deleted first', () => {
    const parents = Array.from({ length: 600 }, () => randomUUID());
    const doomedParents = Array.from({ length: 600 }, () => randomUUID());
    const changes = [
      ...parents.map((d) => chunk(d)),
      ...parents.map((d) => doc(d)),
      ...doomedParents.map((d) => deleteOf('source_documents', 'document_uuid', d)),
      ...doomedParents.map((d) => deleteOf('document_chunks', 'chunk_uuid', d)),
    ];
    const statements = buildStatements(rowsOf(changes), pipelineRegistry, 'public');
    expect(statements.map((s) => `${s.op} ${s.table} ${s.rows}`)).toEqual([
      'upsert source_documents 600',
      'upsert document_chunks 600',
      'delete document_chunks 600',
      'delete source_documents 600',
    ]);
  });

  it('keeps every row of a self-referencing table in one statement, whose foreign-key checks run at its end', () => {
    const nodes: TableDef = {
      name: 'nodes',
      primaryKey: ['id'],
      columns: { id: { type: 'uuid', nullable: false }, parent: { type: 'uuid' } },
      foreignKeys: [{ columns: ['parent'], references: 'nodes' }],
    };
    const registry = new SchemaRegistry([nodes]);
    const ids = Array.from({ length: 600 }, () => randomUUID());
    // Each node's parent is the next one: split in order, a child would come before its parent.
    const upserts = ids.map((id, i) => ({
      op: 'upsert',
      table: 'nodes',
      record: { id, parent: ids[i + 1] ?? null },
    }));
    const deletes = ids.map((id) => deleteOf('nodes', 'id', id));
    for (const changes of [upserts, deletes]) {
      const statements = buildStatements(rowsOf(changes, registry), registry, 'public');
      expect(statements.map((s) => s.rows)).toEqual([ids.length]);
    }
  });

  it('keeps every statement text under the 16 KB that pins an RDS Proxy session, whatever the rows', () => {
    const big = 'x'.repeat(20_000);
    for (const table of pipelineTables) {
      const full = (): Input => {
        const record: Input = {};
        for (const [column, def] of Object.entries(table.columns)) {
          record[column] =
            def.type === 'uuid'
              ? randomUUID()
              : def.type === 'jsonb'
                ? { big }
                : def.type === 'timestamptz'
                  ? '2026-01-01T00:00:00.000Z'
                  : def.type === 'text'
                    ? (def.oneOf?.[0] ?? big)
                    : 0;
        }
        return record;
      };
      const upserts = Array.from({ length: 3 }, () => ({
        op: 'upsert',
        table: table.name,
        record: full(),
      }));
      const keyOf = (record: Input) =>
        Object.fromEntries(table.primaryKey.map((c) => [c, record[c]]));
      const patchOf = (record: Input): Input => ({
        op: 'patch',
        table: table.name,
        key: keyOf(record),
        set: Object.fromEntries(
          Object.entries(record).filter(([c]) => !table.primaryKey.includes(c)),
        ),
      });
      const patched = Array.from({ length: 3 }, () => full());
      const deleted = Array.from({ length: 3 }, () => full());
      const changes = [
        ...upserts,
        ...patched.map(patchOf),
        // Patched, then deleted in the batch: an existence check.
        ...deleted.map(patchOf),
        ...deleted.map((record) => ({ op: 'delete', table: table.name, key: keyOf(record) })),
      ];
      const rows = rowsOf(changes);
      const statements = [
        ...buildExistenceChecks(rows, pipelineRegistry, 'public'),
        ...buildStatements(rows, pipelineRegistry, 'public'),
      ];
      expect(statements.map((s) => s.op).sort()).toEqual(['delete', 'patch', 'patch', 'upsert']);
      for (const statement of statements) {
        expect(Buffer.byteLength(statement.text)).toBeLessThan(PINNING_TEXT_BYTES);
        // The rows' values travel in the parameters, never in the text.
        expect(statement.text).not.toContain('xxxx');
      }
    }
  });
});

describe('versionTableName', () => {
  it('is <schema>.<table> up to 63 bytes, and past them a prefix and a hash: at most 63 bytes, deterministic, distinct per table', () => {
    expect(versionTableName('public', 'source_documents')).toBe('public.source_documents');
    expect(
      versionTableOf(pipelineRegistry.get('source_documents') as TableDef, 'public').name,
    ).toBe('spillway."public.source_documents"');
    const exact = `s.${'t'.repeat(61)}`;
    expect(versionTableName('s', 't'.repeat(61))).toBe(exact);
    const schema = 'S'.repeat(40);
    const names = new Set<string>();
    for (const table of [
      't'.repeat(30),
      `${'t'.repeat(29)}u`,
      `${'t'.repeat(30)}x`,
      'tä'.repeat(20),
    ]) {
      const name = versionTableName(schema, table);
      expect(Buffer.byteLength(name)).toBeLessThanOrEqual(63);
      expect(name.startsWith('S'.repeat(40))).toBe(true);
      expect(versionTableName(schema, table)).toBe(name);
      names.add(name);
    }
    expect(names.size).toBe(4);
    // A multi-byte character is never cut in half.
    const wide = versionTableName('ä'.repeat(40), 'x');
    expect(Buffer.byteLength(wide)).toBeLessThanOrEqual(63);
    expect(wide).toMatch(/^ä+~[0-9a-f]{16}$/);
  });

  it('names the bookkeeping columns apart from primary-key columns called version or deleted', () => {
    const revisions: TableDef = {
      name: 'revisions',
      primaryKey: ['id', 'version'],
      columns: { id: { type: 'uuid' }, version: { type: 'integer' }, body: { type: 'text' } },
    };
    expect(versionTableOf(revisions, 'public')).toEqual({
      name: 'spillway."public.revisions"',
      key: ['"id"', '"version"'],
      version: '"@version"',
      deleted: '"deleted"',
    });
  });
});
