-- The PostgreSQL twin of SQLite's 0400 (issue 14): kubectl's header-less first request (from its
-- version dispatcher) is folded into a kubectl command by `audit::group_commands`, so it names
-- no invocation and the console's command count (0301) does not count it.
ALTER TABLE session_events DROP COLUMN invocation;
ALTER TABLE session_events ADD COLUMN invocation TEXT GENERATED ALWAYS AS (
    CASE WHEN (event::jsonb ->> 'type') = 'request_started'
          AND NOT (coalesce(event::jsonb ->> 'kubectl_session', '') = ''
                   AND coalesce(event::jsonb ->> 'user_agent', '') LIKE 'kubectl-dispatcher/%')
         THEN coalesce(nullif(event::jsonb ->> 'kubectl_session', ''), id)
    END
) STORED;
CREATE INDEX session_events_invocation ON session_events (session_id, invocation);
