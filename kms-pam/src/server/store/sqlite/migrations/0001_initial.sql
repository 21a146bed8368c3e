-- kms-pam control plane, schema version 1.
-- Portable SQL: TEXT UUID ids, INTEGER unix seconds, BOOLEAN, BLOB (BYTEA in PostgreSQL).
-- The only SQLite-specific construct is `INTEGER PRIMARY KEY AUTOINCREMENT` on
-- session_changes.seq (`BIGINT GENERATED ALWAYS AS IDENTITY` in PostgreSQL).

CREATE TABLE projects (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL UNIQUE,
    created_at INTEGER NOT NULL
);

-- Small named values: the CA certificate (clear) and key (sealed under the root key).
CREATE TABLE kms_settings (
    name  TEXT PRIMARY KEY,
    value BLOB NOT NULL
);

CREATE TABLE users (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL UNIQUE,
    admin      BOOLEAN NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,     -- SHA-256 of the API token, hex
    created_at INTEGER NOT NULL
);

CREATE TABLE gateways (
    id             TEXT PRIMARY KEY,
    name           TEXT NOT NULL UNIQUE,
    address        TEXT,
    token_hash     TEXT UNIQUE,          -- NULL until enrolled
    last_heartbeat INTEGER,
    enrolled_at    INTEGER,
    created_at     INTEGER NOT NULL
);

CREATE TABLE enrollment_tokens (
    token_hash TEXT PRIMARY KEY,
    gateway_id TEXT NOT NULL REFERENCES gateways (id) ON DELETE CASCADE,
    expires_at INTEGER NOT NULL,
    spent_at   INTEGER,
    created_at INTEGER NOT NULL
);

CREATE TABLE resources (
    id         TEXT PRIMARY KEY,
    project_id TEXT NOT NULL REFERENCES projects (id),
    name       TEXT NOT NULL,
    kind       TEXT NOT NULL,
    url        TEXT NOT NULL,
    gateway_id TEXT NOT NULL REFERENCES gateways (id),
    ssl_verify BOOLEAN NOT NULL,
    ca_cert    TEXT,
    created_at INTEGER NOT NULL,
    UNIQUE (project_id, name)
);

CREATE TABLE accounts (
    id                TEXT PRIMARY KEY,
    project_id        TEXT NOT NULL REFERENCES projects (id),
    resource_id       TEXT NOT NULL REFERENCES resources (id) ON DELETE CASCADE,
    name              TEXT NOT NULL,
    description       TEXT,
    max_duration_secs INTEGER NOT NULL,
    token_sealed      BLOB NOT NULL,     -- AES-256-GCM, AAD = resource id + account id
    created_at        INTEGER NOT NULL,
    UNIQUE (resource_id, name)
);

CREATE TABLE grants (
    id                TEXT PRIMARY KEY,
    project_id        TEXT NOT NULL REFERENCES projects (id),
    account_id        TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    user_id           TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    max_duration_secs INTEGER NOT NULL,
    created_at        INTEGER NOT NULL,
    UNIQUE (account_id, user_id)
);
CREATE INDEX grants_user ON grants (user_id);

-- Sessions keep the names they were opened with and no foreign key to resources or
-- accounts: they are history and outlive what they refer to.
CREATE TABLE sessions (
    id            TEXT PRIMARY KEY,
    project_id    TEXT NOT NULL REFERENCES projects (id),
    user_id       TEXT NOT NULL REFERENCES users (id),
    user_name     TEXT NOT NULL,
    resource_id   TEXT NOT NULL,
    resource_name TEXT NOT NULL,
    account_id    TEXT NOT NULL,
    account_name  TEXT NOT NULL,
    gateway_id    TEXT NOT NULL REFERENCES gateways (id),
    gateway_name  TEXT NOT NULL,
    status        TEXT NOT NULL,         -- active | ended | expired | terminated
    end_cause     TEXT,                  -- user | expiry | termination | error
    reason        TEXT,
    created_at    INTEGER NOT NULL,
    expires_at    INTEGER NOT NULL,
    ended_at      INTEGER
);
CREATE INDEX sessions_status_expiry ON sessions (status, expires_at);
CREATE INDEX sessions_project_created ON sessions (project_id, created_at);

-- Append-only log of session status changes; gateways follow it by seq.
CREATE TABLE session_changes (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    session_id TEXT NOT NULL REFERENCES sessions (id),
    gateway_id TEXT NOT NULL,
    status     TEXT NOT NULL,
    changed_at INTEGER NOT NULL
);
CREATE INDEX session_changes_gateway ON session_changes (gateway_id, seq);
