-- kms-pam session tracking (issue 14): kubectl's first request goes out without its
-- `Kubectl-*` headers (`GET /version` from its version dispatcher, `User-Agent:
-- kubectl-dispatcher/…`), and `audit::group_commands` folds it into the kubectl command around it
-- rather than making it a command of its own. The console's command count (0301) must not count
-- it either, so such a request names no invocation. Numbered after 0301, whose column it
-- redefines (SQLite cannot alter a generated column: drop it and add it again).
DROP INDEX session_events_invocation;
ALTER TABLE session_events DROP COLUMN invocation;
ALTER TABLE session_events ADD COLUMN invocation TEXT GENERATED ALWAYS AS (
    CASE WHEN json_extract(event, '$.type') = 'request_started'
          AND NOT (coalesce(json_extract(event, '$.kubectl_session'), '') = ''
                   AND coalesce(json_extract(event, '$.user_agent'), '')
                       LIKE 'kubectl-dispatcher/%')
         THEN coalesce(nullif(json_extract(event, '$.kubectl_session'), ''), id)
    END
) VIRTUAL;
CREATE INDEX session_events_invocation ON session_events (session_id, invocation);
