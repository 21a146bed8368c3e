-- kms-pam control plane, schema version 2: session events (docs/session-tracking.md).
-- Each event is kept once (its id is the idempotency key of gateway uploads) as the JSON text
-- that was hashed, beside the columns the chain check and the ordering need. Events are never
-- updated or deleted by KMS; `pam sessions verify` detects a row changed behind its back.

CREATE TABLE session_events (
    id          TEXT PRIMARY KEY,
    session_id  TEXT NOT NULL REFERENCES sessions (id),
    seq         BIGINT NOT NULL,
    hash        TEXT NOT NULL,
    event       TEXT NOT NULL,
    received_at BIGINT NOT NULL,
    UNIQUE (session_id, seq)
);
