/**
 * The shipped schema: the document pipeline's own tables. Each definition mirrors
 * `migrations/0001_pipeline_tables.sql` column for column (types, NOT NULL, DEFAULT, CHECK,
 * foreign keys); `test/integration/migrator.test.ts` fails when the two drift apart.
 *
 * To add a table: write a new SQL migration, add its definition here (or build your own
 * registry from `[...pipelineTables, yourTable]`).
 */
import { type ColumnDef, SchemaRegistry, type TableDef } from '../core/schema.js';

const uuidKey: ColumnDef = { type: 'uuid', nullable: false };
const requiredUuid: ColumnDef = { type: 'uuid', nullable: false };
const requiredText: ColumnDef = { type: 'text', nullable: false };
const jsonObject: ColumnDef = { type: 'jsonb', jsonObject: true };
const confidence: ColumnDef = { type: 'real', min: 0, max: 1 };

const sourceDocuments: TableDef = {
  name: 'source_documents',
  primaryKey: ['document_uuid'],
  columns: {
    document_uuid: uuidKey,
    filename: requiredText,
    status: {
      type: 'text',
      nullable: false,
      oneOf: ['pending', 'processing', 'completed', 'failed'],
    },
    content_type: { type: 'text' },
    page_count: { type: 'integer', min: 0 },
    error_message: { type: 'text' },
    metadata: jsonObject,
    created_at: { type: 'timestamptz', hasDefault: true },
    updated_at: { type: 'timestamptz' },
  },
};

const documentChunks: TableDef = {
  name: 'document_chunks',
  primaryKey: ['chunk_uuid'],
  columns: {
    chunk_uuid: uuidKey,
    document_uuid: requiredUuid,
    chunk_index: { type: 'integer', nullable: false, min: 0 },
    text: requiredText,
    char_start: { type: 'integer' },
    char_end: { type: 'integer' },
    metadata: jsonObject,
  },
  foreignKeys: [{ columns: ['document_uuid'], references: 'source_documents' }],
};

const entityMentions: TableDef = {
  name: 'entity_mentions',
  primaryKey: ['entity_uuid'],
  columns: {
    entity_uuid: uuidKey,
    document_uuid: requiredUuid,
    chunk_uuid: { type: 'uuid' },
    entity_type: requiredText,
    text: requiredText,
    confidence,
    start_offset: { type: 'integer' },
    end_offset: { type: 'integer' },
    attributes: jsonObject,
  },
  foreignKeys: [
    { columns: ['document_uuid'], references: 'source_documents' },
    { columns: ['chunk_uuid'], references: 'document_chunks' },
  ],
};

const relationships: TableDef = {
  name: 'relationships',
  primaryKey: ['relationship_uuid'],
  columns: {
    relationship_uuid: uuidKey,
    document_uuid: requiredUuid,
    source_entity_uuid: requiredUuid,
    target_entity_uuid: requiredUuid,
    relationship_type: requiredText,
    confidence,
    attributes: jsonObject,
  },
  foreignKeys: [
    { columns: ['document_uuid'], references: 'source_documents' },
    { columns: ['source_entity_uuid'], references: 'entity_mentions' },
    { columns: ['target_entity_uuid'], references: 'entity_mentions' },
  ],
};

const processingTasks: TableDef = {
  name: 'processing_tasks',
  primaryKey: ['task_id'],
  columns: {
    task_id: uuidKey,
    document_uuid: { type: 'uuid' },
    task_type: requiredText,
    status: {
      type: 'text',
      nullable: false,
      oneOf: ['queued', 'running', 'succeeded', 'failed'],
    },
    attempts: { type: 'integer', nullable: false, hasDefault: true, defaultValue: 0 },
    error_message: { type: 'text' },
    started_at: { type: 'timestamptz' },
    completed_at: { type: 'timestamptz' },
  },
  foreignKeys: [{ columns: ['document_uuid'], references: 'source_documents' }],
};

/** The pipeline's tables, in no particular order (the registry works out the write order). */
export const pipelineTables: TableDef[] = [
  sourceDocuments,
  documentChunks,
  entityMentions,
  relationships,
  processingTasks,
];

/** The registry of the shipped schema: what `write` and `read` accept by default. */
export const pipelineRegistry = new SchemaRegistry(pipelineTables);
