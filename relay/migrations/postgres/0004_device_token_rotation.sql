-- Version 4: device token rotation (docs/protocol.md, "Device token rotation").
-- Device tokens carry a generation (`gen`; tokens issued before this version have none and
-- count as generation 0). The relay accepts the current generation and, while a rotation is
-- pending, the pending one; the first use of the pending one makes it current.
ALTER TABLE devices ADD COLUMN token_gen BIGINT NOT NULL DEFAULT 0;
-- When the current generation was issued (ms); NULL: at registration (created_at).
ALTER TABLE devices ADD COLUMN token_issued_at BIGINT;
-- The pending generation and when it was issued (its token is re-derived from these).
ALTER TABLE devices ADD COLUMN pending_gen BIGINT;
ALTER TABLE devices ADD COLUMN pending_issued_at BIGINT;
-- When the current generation became current (the cluster's in-flight sweep re-announces
-- promotions a node may have committed without publishing).
ALTER TABLE devices ADD COLUMN token_promoted_at BIGINT;
CREATE INDEX devices_token_promoted ON devices(token_promoted_at) WHERE token_promoted_at IS NOT NULL;
