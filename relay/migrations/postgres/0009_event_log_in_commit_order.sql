-- Version 9: SQLite keeps its parent event log in commit order with a (user_id, seq) index
-- and prunes by walking the oldest rows. Several nodes on PostgreSQL keep version 2's
-- layout (the log clustered by parent, events_by_time for pruning and the in-flight
-- sweep), so nothing changes here.
COMMENT ON INDEX events_by_time IS 'pruning and the in-flight sweep of several nodes (server.rs)';
