-- kms-pam control plane: which gateway audit key a session's events must be signed with, as KMS
-- bound it when it created the session, and KMS's signature over that binding (its own audit
-- key, a file beside the root key, never this database). A head is signed only over events
-- signed with this key, so that whoever can write this database cannot register a key of their
-- own for a gateway row they made and have KMS vouch for a history re-signed with it
-- (docs/session-tracking.md, "Threat model").
CREATE TABLE session_keys (
    session_id  TEXT PRIMARY KEY REFERENCES sessions (id),
    gateway_key TEXT NOT NULL,
    ticket      TEXT NOT NULL
);
