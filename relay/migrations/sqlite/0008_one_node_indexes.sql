-- Version 8: SQLite is one node (several nodes need PostgreSQL + Redis), and only the
-- in-flight sweep of several nodes reads commands still PENDING by creation time. The index
-- version 3 made for it cost SQLite a B-tree page written at every create and every
-- DELIVERED; it goes. PostgreSQL keeps it (its version 8 changes nothing).
DROP INDEX IF EXISTS commands_pending_by_time;
