-- The PostgreSQL twin of SQLite's 0301 (kms-pam web console, issue 12): each `request_started`
-- event names its kubectl invocation (the `Kubectl-Session` header, or else its own id), so a
-- session's command count is the number of distinct invocations, answered from an index. The
-- column is generated from the stored JSON, so older rows have it and ingest maintains it.
ALTER TABLE session_events ADD COLUMN invocation TEXT GENERATED ALWAYS AS (
    CASE WHEN (event::jsonb ->> 'type') = 'request_started'
         THEN coalesce(nullif(event::jsonb ->> 'kubectl_session', ''), id)
    END
) STORED;

CREATE INDEX session_events_invocation ON session_events (session_id, invocation);
