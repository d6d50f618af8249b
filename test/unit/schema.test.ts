import { describe, expect, it } from 'vitest';
import { SchemaRegistry, type TableDef } from '../../lambdas/core/schema.js';
import { pipelineRegistry, pipelineTables } from '../../lambdas/schema/tables.js';

const table = (name: string, references: string[] = []): TableDef => ({
  name,
  primaryKey: ['id'],
  columns: { id: { type: 'uuid', nullable: false }, parent: { type: 'uuid' } },
  foreignKeys: references.map((target) => ({ columns: ['parent'], references: target })),
});

describe('the shipped schema', () => {
  it('holds the five pipeline tables', () => {
    expect([...pipelineRegistry.names()].sort()).toEqual([
      'document_chunks',
      'entity_mentions',
      'processing_tasks',
      'relationships',
      'source_documents',
    ]);
  });

  it('writes every parent before its children (G3)', () => {
    const order = pipelineRegistry.writeOrder;
    expect(order).toHaveLength(pipelineTables.length);
    for (const child of pipelineTables) {
      for (const fk of child.foreignKeys ?? []) {
        expect(order.indexOf(fk.references), `${fk.references} before ${child.name}`).toBeLessThan(
          order.indexOf(child.name),
        );
      }
    }
    expect(order[0]).toBe('source_documents');
    expect(order.indexOf('document_chunks')).toBeLessThan(order.indexOf('entity_mentions'));
    expect(order.indexOf('entity_mentions')).toBeLessThan(order.indexOf('relationships'));
  });

  it('points every foreign key at a single-column primary key of the same type', () => {
    for (const child of pipelineTables) {
      for (const fk of child.foreignKeys ?? []) {
        const parent = pipelineRegistry.get(fk.references);
        expect(parent, fk.references).toBeDefined();
        expect(fk.columns).toHaveLength(1);
        expect(parent?.primaryKey).toHaveLength(1);
        const [column] = fk.columns;
        const [parentKey] = parent?.primaryKey ?? [];
        expect(child.columns[column ?? '']?.type).toBe(parent?.columns[parentKey ?? '']?.type);
      }
    }
  });

  it('declares primary-key columns NOT NULL', () => {
    for (const def of pipelineTables) {
      for (const column of def.primaryKey) {
        expect(def.columns[column]?.nullable, `${def.name}.${column}`).toBe(false);
      }
    }
  });
});

describe('SchemaRegistry', () => {
  it('orders a chain parents first whatever the order of definition', () => {
    const registry = new SchemaRegistry([table('c', ['b']), table('b', ['a']), table('a')]);
    expect(registry.writeOrder).toEqual(['a', 'b', 'c']);
  });

  it('allows a table to reference itself', () => {
    expect(new SchemaRegistry([table('tree', ['tree'])]).writeOrder).toEqual(['tree']);
  });

  it('rejects foreign keys that form a cycle', () => {
    expect(() => new SchemaRegistry([table('a', ['b']), table('b', ['a'])])).toThrow(
      /cycle: a -> b -> a/,
    );
    expect(
      () => new SchemaRegistry([table('a', ['c']), table('b', ['a']), table('c', ['b'])]),
    ).toThrow(/cycle/);
  });

  it('rejects a reference to an unknown table', () => {
    expect(() => new SchemaRegistry([table('a', ['ghost'])])).toThrow(
      /a references unknown table ghost/,
    );
  });

  it('rejects a table defined twice, without a primary key, or with a key that is not a column', () => {
    expect(() => new SchemaRegistry([table('a'), table('a')])).toThrow(/defined twice/);
    expect(() => new SchemaRegistry([{ ...table('a'), primaryKey: [] }])).toThrow(/no primary key/);
    expect(() => new SchemaRegistry([{ ...table('a'), primaryKey: ['nope'] }])).toThrow(
      /not a column/,
    );
  });

  it('does not take inherited properties for tables', () => {
    expect(pipelineRegistry.get('__proto__')).toBeUndefined();
    expect(pipelineRegistry.get('constructor')).toBeUndefined();
    expect(pipelineRegistry.get('toString')).toBeUndefined();
  });
});
