-- Version 8: SQLite drops commands_pending_by_time (one node has no in-flight sweep) and
-- redefines commands_open by columns DELIVERED does not change; several nodes on PostgreSQL
-- keep both as they are, so nothing changes here.
COMMENT ON INDEX commands_pending_by_time IS 'the in-flight sweep of several nodes (server.rs)';
