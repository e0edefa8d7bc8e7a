-- Version 3: find commands still PENDING a moment after they were created (the cluster's
-- in-flight sweep re-sends them to the devices a node holds, in case the node that
-- accepted them died between COMMIT and publishing).
CREATE INDEX commands_pending_by_time ON commands(created_at) WHERE status = 'PENDING';
-- ...and revocations that node may not have announced.
CREATE INDEX devices_revoked ON devices(revoked_at) WHERE revoked_at IS NOT NULL;
