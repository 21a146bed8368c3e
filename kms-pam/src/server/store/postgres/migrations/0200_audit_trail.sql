-- kms-pam control plane (PostgreSQL twin of SQLite's 0200): what makes a session's record hold against whoever can write this
-- database (docs/session-tracking.md, "Threat model"). Numbered from 0200 so that schema
-- changes made in parallel (0100…) keep their order.

-- Each gateway's Ed25519 public key (base64), registered at enrollment: its signatures on
-- session events are checked on ingest and by `sessions verify`.
CREATE TABLE gateway_audit_keys (
    gateway_id TEXT PRIMARY KEY REFERENCES gateways (id) ON DELETE CASCADE,
    public_key TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

-- KMS's signed head of each ended session whose record is complete: the JSON KMS signed and
-- its signature. The key that signs lives in a file beside the root key, never in here.
CREATE TABLE session_heads (
    session_id TEXT PRIMARY KEY REFERENCES sessions (id),
    head       TEXT NOT NULL,
    signature  TEXT NOT NULL,
    sealed_at  BIGINT NOT NULL
);

-- Per-resource recording policy: whether streams the gateway cannot record (SPDY,
-- port-forward, other upgrades) are refused, and the recording caps (NULL: the gateway's).
CREATE TABLE resource_recording (
    resource_id        TEXT PRIMARY KEY REFERENCES resources (id) ON DELETE CASCADE,
    unrecorded_streams TEXT NOT NULL,
    max_bytes          BIGINT,
    max_input_bytes    BIGINT
);
