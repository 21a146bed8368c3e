-- kms-pam web console (issue 24): the Sessions page searches what a person typed (`get pods`,
-- `describe deployment my-app`, an exec's `echo hi`), not the events' JSON (where a key such as
-- `method` matched every session). Each command of a session, as `audit::group_commands` groups
-- it, is kept as the one line `Command::line` makes of it (the line `pam sessions show` and the
-- session page print), one row per command, in the order the session page lists them. KMS
-- rewrites a session's rows when an upload adds to its record; at its start it fills in the
-- rows of sessions stored before this migration (their events are JSON that only Rust groups).
CREATE TABLE session_commands (
    session_id TEXT NOT NULL REFERENCES sessions (id),
    ordinal    INTEGER NOT NULL,
    line       TEXT NOT NULL,
    PRIMARY KEY (session_id, ordinal)
);
