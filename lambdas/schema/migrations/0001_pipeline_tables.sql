-- The document pipeline's tables. Names are unqualified: the migration runner sets
-- search_path to the target schema. Mirrored column for column by lambdas/schema/tables.ts.
-- Foreign keys are plain RESTRICT: Spillway deletes children before parents (G3), never cascades.
--
-- Adopts tables that already exist (the usual deployment is next to a database the pipeline
-- already writes to): on such a database every statement here is a no-op, and the migration
-- runner then checks that the tables it found match their definitions.

CREATE TABLE IF NOT EXISTS source_documents (
  document_uuid uuid PRIMARY KEY,
  filename text NOT NULL,
  status text NOT NULL CHECK (status IN ('pending', 'processing', 'completed', 'failed')),
  content_type text,
  page_count integer CHECK (page_count >= 0),
  error_message text,
  metadata jsonb CHECK (jsonb_typeof(metadata) = 'object'),
  created_at timestamptz DEFAULT now(),
  updated_at timestamptz
);

CREATE TABLE IF NOT EXISTS document_chunks (
  chunk_uuid uuid PRIMARY KEY,
  document_uuid uuid NOT NULL REFERENCES source_documents (document_uuid) ON DELETE RESTRICT,
  chunk_index integer NOT NULL CHECK (chunk_index >= 0),
  text text NOT NULL,
  char_start integer,
  char_end integer,
  metadata jsonb CHECK (jsonb_typeof(metadata) = 'object')
);

CREATE TABLE IF NOT EXISTS entity_mentions (
  entity_uuid uuid PRIMARY KEY,
  document_uuid uuid NOT NULL REFERENCES source_documents (document_uuid) ON DELETE RESTRICT,
  chunk_uuid uuid REFERENCES document_chunks (chunk_uuid) ON DELETE RESTRICT,
  entity_type text NOT NULL,
  text text NOT NULL,
  confidence real CHECK (confidence >= 0 AND confidence <= 1),
  start_offset integer,
  end_offset integer,
  attributes jsonb CHECK (jsonb_typeof(attributes) = 'object')
);

CREATE TABLE IF NOT EXISTS relationships (
  relationship_uuid uuid PRIMARY KEY,
  document_uuid uuid NOT NULL REFERENCES source_documents (document_uuid) ON DELETE RESTRICT,
  source_entity_uuid uuid NOT NULL REFERENCES entity_mentions (entity_uuid) ON DELETE RESTRICT,
  target_entity_uuid uuid NOT NULL REFERENCES entity_mentions (entity_uuid) ON DELETE RESTRICT,
  relationship_type text NOT NULL,
  confidence real CHECK (confidence >= 0 AND confidence <= 1),
  attributes jsonb CHECK (jsonb_typeof(attributes) = 'object')
);

CREATE TABLE IF NOT EXISTS processing_tasks (
  task_id uuid PRIMARY KEY,
  document_uuid uuid REFERENCES source_documents (document_uuid) ON DELETE RESTRICT,
  task_type text NOT NULL,
  status text NOT NULL CHECK (status IN ('queued', 'running', 'succeeded', 'failed')),
  attempts integer NOT NULL DEFAULT 0,
  error_message text,
  started_at timestamptz,
  completed_at timestamptz
);

-- An index on every foreign-key column (deletes of a parent check its children), created only
-- where no valid index of the table starts with that column yet. Not a plain CREATE INDEX IF
-- NOT EXISTS: even when it skips, that takes a SHARE lock on the table (blocking the pipeline's
-- writes) and requires owning it, which Spillway's role does not for adopted tables.
DO $$
DECLARE
  wanted record;
BEGIN
  FOR wanted IN
    SELECT * FROM (VALUES
      ('document_chunks', 'document_uuid', 'document_chunks_document_uuid_idx'),
      ('entity_mentions', 'document_uuid', 'entity_mentions_document_uuid_idx'),
      ('entity_mentions', 'chunk_uuid', 'entity_mentions_chunk_uuid_idx'),
      ('relationships', 'document_uuid', 'relationships_document_uuid_idx'),
      ('relationships', 'source_entity_uuid', 'relationships_source_entity_uuid_idx'),
      ('relationships', 'target_entity_uuid', 'relationships_target_entity_uuid_idx'),
      ('processing_tasks', 'document_uuid', 'processing_tasks_document_uuid_idx')
    ) AS v (table_name, column_name, index_name)
  LOOP
    IF NOT EXISTS (
      SELECT 1
        FROM pg_index i
        JOIN pg_class t ON t.oid = i.indrelid
        JOIN pg_namespace n ON n.oid = t.relnamespace
        JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = i.indkey[0]
       WHERE n.nspname = current_schema()
         AND t.relname = wanted.table_name
         AND a.attname = wanted.column_name
         AND i.indisvalid
    ) THEN
      EXECUTE format('CREATE INDEX IF NOT EXISTS %I ON %I.%I (%I)', wanted.index_name,
                     current_schema(), wanted.table_name, wanted.column_name);
    END IF;
  END LOOP;
END
$$;
