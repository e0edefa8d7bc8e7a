-- Version 8: fewer index pages written per command on SQLite (each is a 4 KiB WAL frame,
-- two pwrite calls, a checksum and later a copy into the database).
--
-- SQLite is one node (several nodes need PostgreSQL + Redis), and only the in-flight sweep
-- of several nodes reads commands still PENDING by creation time: the index version 3 made
-- for it cost a page at every create and every DELIVERED. It goes.
DROP INDEX IF EXISTS commands_pending_by_time;

-- Open commands by expiry, for the expiry sweep: the same rows as before (PENDING and
-- DELIVERED are exactly the commands with neither executed_at nor error: an ack sets
-- executed_at, an expiry sets error), but defined by columns PENDING -> DELIVERED does not
-- change, so that update no longer rewrites this index (SQLite maintains a partial index
-- whenever a column its WHERE names is updated).
DROP INDEX IF EXISTS commands_open;
CREATE INDEX commands_open ON commands(expires_at) WHERE executed_at IS NULL AND error IS NULL;
