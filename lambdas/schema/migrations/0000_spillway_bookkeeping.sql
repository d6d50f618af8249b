-- Spillway's own bookkeeping. Always schema-qualified: it lives in the `spillway` schema
-- whatever schema the pipeline tables are migrated into.
CREATE SCHEMA IF NOT EXISTS spillway;

-- per-row version and tombstone (G2): the stream id of the last applied change, as bigint ms*1000000+seq
CREATE TABLE IF NOT EXISTS spillway.row_versions (
  table_name text NOT NULL,
  row_key text NOT NULL,
  version bigint NOT NULL,
  deleted boolean NOT NULL DEFAULT false,
  PRIMARY KEY (table_name, row_key)
);

-- fencing token of the drainer lease, checked in every drain transaction
CREATE TABLE IF NOT EXISTS spillway.drain_fence (
  buffer text PRIMARY KEY,
  token bigint NOT NULL
);
