-- The document pipeline's tables. Names are unqualified: the migration runner sets
-- search_path to the target schema. Mirrored column for column by lambdas/schema/tables.ts.
-- Foreign keys are plain RESTRICT: Spillway deletes children before parents (G3), never cascades.

CREATE TABLE source_documents (
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

CREATE TABLE document_chunks (
  chunk_uuid uuid PRIMARY KEY,
  document_uuid uuid NOT NULL REFERENCES source_documents (document_uuid) ON DELETE RESTRICT,
  chunk_index integer NOT NULL CHECK (chunk_index >= 0),
  text text NOT NULL,
  char_start integer,
  char_end integer,
  metadata jsonb CHECK (jsonb_typeof(metadata) = 'object')
);

CREATE INDEX document_chunks_document_uuid_idx ON document_chunks (document_uuid);

CREATE TABLE entity_mentions (
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

CREATE INDEX entity_mentions_document_uuid_idx ON entity_mentions (document_uuid);
CREATE INDEX entity_mentions_chunk_uuid_idx ON entity_mentions (chunk_uuid);

CREATE TABLE relationships (
  relationship_uuid uuid PRIMARY KEY,
  document_uuid uuid NOT NULL REFERENCES source_documents (document_uuid) ON DELETE RESTRICT,
  source_entity_uuid uuid NOT NULL REFERENCES entity_mentions (entity_uuid) ON DELETE RESTRICT,
  target_entity_uuid uuid NOT NULL REFERENCES entity_mentions (entity_uuid) ON DELETE RESTRICT,
  relationship_type text NOT NULL,
  confidence real CHECK (confidence >= 0 AND confidence <= 1),
  attributes jsonb CHECK (jsonb_typeof(attributes) = 'object')
);

CREATE INDEX relationships_document_uuid_idx ON relationships (document_uuid);
CREATE INDEX relationships_source_entity_uuid_idx ON relationships (source_entity_uuid);
CREATE INDEX relationships_target_entity_uuid_idx ON relationships (target_entity_uuid);

CREATE TABLE processing_tasks (
  task_id uuid PRIMARY KEY,
  document_uuid uuid REFERENCES source_documents (document_uuid) ON DELETE RESTRICT,
  task_type text NOT NULL,
  status text NOT NULL CHECK (status IN ('queued', 'running', 'succeeded', 'failed')),
  attempts integer NOT NULL DEFAULT 0,
  error_message text,
  started_at timestamptz,
  completed_at timestamptz
);

CREATE INDEX processing_tasks_document_uuid_idx ON processing_tasks (document_uuid);
