-- kms-pam web console (issue 12): one-time sign-in links and browser sessions.
-- Both are kept as SHA-256 hashes of what the browser or the CLI holds, never in clear.

-- A sign-in code made by `kms-pam console` for its user: single use, valid 60 s.
CREATE TABLE console_links (
    hash       TEXT PRIMARY KEY,
    user_id    TEXT NOT NULL REFERENCES users (id),
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at    BIGINT
);

-- A signed-in browser: its cookie's hash, ended by /logout or after 12 h without a request.
CREATE TABLE console_sessions (
    hash         TEXT PRIMARY KEY,
    user_id      TEXT NOT NULL REFERENCES users (id),
    created_at   BIGINT NOT NULL,
    last_seen_at BIGINT NOT NULL
);
