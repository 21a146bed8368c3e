-- kms-pam web console (issue 12): the Sessions page counts each row's kubectl commands with an
-- index instead of reading and grouping every event in Rust.
--
-- A command is what `audit::group_commands` makes one: the requests of one kubectl invocation
-- (the same `Kubectl-Session` header), or a request without that header on its own. So each
-- `request_started` event names its invocation — the header, or else its own id — and a
-- session's command count is the number of distinct invocations. The column is generated from
-- the stored JSON (so rows stored before this migration have it too, and ingest maintains it
-- with nothing to remember), and the index answers the count without reading the events.
ALTER TABLE session_events ADD COLUMN invocation TEXT GENERATED ALWAYS AS (
    CASE WHEN json_extract(event, '$.type') = 'request_started'
         THEN coalesce(nullif(json_extract(event, '$.kubectl_session'), ''), id)
    END
) VIRTUAL;

CREATE INDEX session_events_invocation ON session_events (session_id, invocation);
