-- Version 7: the admin overview's recent failures (GET /api/admin/overview) read the newest
-- FAILED and EXPIRED commands of every family; this index keeps that a short range read
-- instead of a scan of the whole commands table. Only terminal failures are in it.
CREATE INDEX commands_failed_by_time ON commands(created_at) WHERE status IN ('FAILED', 'EXPIRED');
