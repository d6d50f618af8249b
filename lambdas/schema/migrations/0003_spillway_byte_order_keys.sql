-- Version rows compare their keys byte for byte (issue 9). A database's default collation is
-- usually a language's (RDS and Aurora create theirs with en_US.UTF-8), and every lookup and
-- insert into the primary key of spillway.row_versions then compares text the way that language
-- sorts it, a dozen times per row the drain writes. Spillway only ever asks whether two keys are
-- equal, and under a deterministic collation equal means the same bytes whatever the collation,
-- so "C" changes no answer; it only makes each comparison a memcmp. PostgreSQL rebuilds the
-- primary key's index (not the table) and holds the table's lock meanwhile: on a large
-- row_versions the migration takes as long as building that index does.
ALTER TABLE spillway.row_versions
  ALTER COLUMN table_name TYPE text COLLATE "C",
  ALTER COLUMN row_key TYPE text COLLATE "C";
