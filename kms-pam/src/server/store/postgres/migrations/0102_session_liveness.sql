-- kms-pam control plane: what a session stands on, and whether anybody still holds it
-- (issue 11).

-- The grant a session was opened under (NULL: opened by an administrator, who needs none, or
-- before this version). Deleting the grant ends the sessions opened under it.
ALTER TABLE sessions ADD COLUMN grant_id TEXT;

-- The last time the session's owner asked KMS about it (the CLI does every second); a session
-- nobody asked about for 30 s is ended as abandoned.
ALTER TABLE sessions ADD COLUMN last_seen_at BIGINT;
UPDATE sessions SET last_seen_at = created_at;

CREATE INDEX sessions_status_seen ON sessions (status, last_seen_at);
CREATE INDEX sessions_user_status ON sessions (user_id, status);
CREATE INDEX sessions_gateway_status ON sessions (gateway_id, status);
