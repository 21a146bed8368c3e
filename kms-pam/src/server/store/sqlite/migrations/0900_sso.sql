-- kms-pam control plane: single sign-on with OpenID Connect providers (docs/sso.md).

-- The organisation's providers. The client secret is sealed under the root key with the row's id
-- as associated data.
CREATE TABLE sso_providers (
    id            TEXT PRIMARY KEY,
    name          TEXT NOT NULL UNIQUE,
    issuer        TEXT NOT NULL,
    client_id     TEXT NOT NULL,
    client_secret BLOB NOT NULL,
    settings      TEXT NOT NULL,       -- JSON: scopes, groups claim, rules, require existing, TTL
    created_at    INTEGER NOT NULL
);

-- Who each user is at a provider: (issuer, subject) identifies a person; email, name and groups
-- are what the provider said at the last sign-in or refresh.
CREATE TABLE user_identities (
    issuer       TEXT NOT NULL,
    subject      TEXT NOT NULL,
    user_id      TEXT NOT NULL REFERENCES users (id),
    email        TEXT,
    display_name TEXT,
    groups       TEXT NOT NULL,        -- JSON array
    last_seen_at INTEGER NOT NULL,
    PRIMARY KEY (issuer, subject)
);
CREATE INDEX user_identities_user ON user_identities (user_id);

-- Sign-ins in flight, one row per one-time key (the hash of a console or CLI sign-in's state, a
-- device sign-in's handle, or a CLI exchange code): spent by deleting the row. The data (PKCE
-- verifier, nonce, device code, ...) is sealed with the key's hash as associated data.
CREATE TABLE sso_pending (
    key_hash   TEXT PRIMARY KEY,
    kind       TEXT NOT NULL,
    data       BLOB NOT NULL,
    expires_at INTEGER NOT NULL
);

-- The CLI's KMS credentials from single sign-on: a short-lived access token and a single-use
-- refresh token (hashes only), and the provider's refresh token KMS renews them with (sealed
-- with the row's id as associated data; never handed out).
CREATE TABLE sso_credentials (
    id                TEXT PRIMARY KEY,
    user_id           TEXT NOT NULL REFERENCES users (id),
    provider_id       TEXT NOT NULL REFERENCES sso_providers (id) ON DELETE CASCADE,
    issuer            TEXT NOT NULL,
    subject           TEXT NOT NULL,
    access_hash       TEXT NOT NULL UNIQUE,
    access_expires_at INTEGER NOT NULL,
    refresh_hash      TEXT NOT NULL UNIQUE,
    provider_refresh  BLOB,
    created_at        INTEGER NOT NULL,
    refreshed_at      INTEGER NOT NULL,
    revoked_at        INTEGER
);
CREATE INDEX sso_credentials_user ON sso_credentials (user_id);

-- The provider identity of the person who opened a session after single sign-on (JSON), as the
-- session's record names them.
ALTER TABLE sessions ADD COLUMN identity TEXT;
