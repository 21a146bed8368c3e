-- kms-pam control plane: taking access away (issue 11).

-- Disabled users keep their row and token hash (enabling them restores the token); deleted
-- users keep their row for their sessions' history, renamed (`NAME~ID`) so the name is free,
-- with a token hash nothing can match.
ALTER TABLE users ADD COLUMN disabled_at BIGINT;
ALTER TABLE users ADD COLUMN deleted_at BIGINT;

-- User names are unique regardless of case. Names that already differ only by case keep the
-- oldest as it is and get `-` and the start of their id appended, so the index can be built.
UPDATE users SET name = name || '-' || substr(id, 1, 8)
 WHERE EXISTS (
     SELECT 1 FROM users older
      WHERE lower(older.name) = lower(users.name)
        AND (older.created_at < users.created_at
             OR (older.created_at = users.created_at AND older.id < users.id)));
CREATE UNIQUE INDEX users_name_nocase ON users (lower(name));

-- A revoked gateway has no token hash (its token matches nothing) until it enrolls again.
ALTER TABLE gateways ADD COLUMN revoked_at BIGINT;
