-- What the database knows about the cache, so that a cache that lost its data cannot take the
-- drain down with it (G1, G2). Always schema-qualified, like 0000.
--   epoch           the cache epoch the last drain saw (the buffer's meta hash in Redis)
--   version_offset  added to the cache's versions in this epoch: a cache that lost its data may
--                   hand out versions below what the database already holds (its clock, a new
--                   stream), and the offset puts them above it
--   max_version     the largest version any drain transaction applied (in the database's terms)
--   replid          the Redis primary's replication id at the last drain: a new one is a failover
--   cache_lost_at, failover_at  when a drain last detected either
ALTER TABLE spillway.drain_fence
  ADD COLUMN IF NOT EXISTS epoch text,
  ADD COLUMN IF NOT EXISTS version_offset bigint NOT NULL DEFAULT 0,
  ADD COLUMN IF NOT EXISTS max_version bigint NOT NULL DEFAULT 0,
  ADD COLUMN IF NOT EXISTS replid text,
  ADD COLUMN IF NOT EXISTS cache_lost_at timestamptz,
  ADD COLUMN IF NOT EXISTS failover_at timestamptz;

UPDATE spillway.drain_fence
SET max_version = (SELECT coalesce(max(version), 0) FROM spillway.row_versions)
WHERE max_version = 0;
