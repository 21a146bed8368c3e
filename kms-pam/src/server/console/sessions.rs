//! The Sessions page (filters, search, pages, exports, Terminate) and a session's page
//! (metadata, chain check, command log, recordings, export). Visibility is the API's:
//! [`whose_sessions`] for the list, [`readable_session`] for one session.

use std::time::SystemTime;

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Json;
use http::header::{CONTENT_DISPOSITION, CONTENT_TYPE};
use http::{HeaderMap, HeaderValue};
use maud::{html, Markup};
use serde::Deserialize;

use super::page::{answer, badge, layout, span, when, PageError};
use super::signin::{project_path, same_origin, segment, ConsoleProject};
use crate::audit::recording::{recordings, replay};
use crate::audit::{group_commands, AuditEvent, AuditEventKind, ChainReport, Command};
use crate::kms::api::{SessionDetail, SessionView};
use crate::server::audit_trail;
use crate::server::history::events;
use crate::server::rights::SessionCaller;
use crate::server::sessions::{readable_session, terminate_in, whose_sessions};
use crate::server::state::{now, AppState};
use crate::server::store::{SessionRecord, SessionSearch};
use crate::server::views;
use crate::session::SessionStatus;
use crate::time::parse_rfc3339;

/// Rows per page.
const PAGE_SIZE: u32 = 50;
/// Commands per page of a session's command log.
const COMMANDS_PER_PAGE: usize = 200;
/// Most rows an export holds.
const EXPORT_LIMIT: u32 = 10_000;

/// Query of the Sessions page: every filter is in the URL.
#[derive(Debug, Default, Deserialize)]
pub(super) struct ListQuery {
    #[serde(default)]
    status: String,
    #[serde(default)]
    user: String,
    #[serde(default)]
    resource: String,
    #[serde(default)]
    q: String,
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
    #[serde(default)]
    page: Option<u64>,
    #[serde(default)]
    format: String,
}

fn given(s: &str) -> Option<String> {
    let s = s.trim();
    (!s.is_empty()).then(|| s.to_owned())
}

/// `2025-01-02` (midnight UTC) or an RFC 3339 instant.
fn instant(s: &str) -> Option<SystemTime> {
    let s = s.trim();
    parse_rfc3339(s).or_else(|| parse_rfc3339(&format!("{s}T00:00:00Z")))
}

impl ListQuery {
    /// The query string of these filters (without page and format).
    fn filters(&self) -> String {
        let pairs = [
            ("status", &self.status),
            ("user", &self.user),
            ("resource", &self.resource),
            ("q", &self.q),
            ("from", &self.from),
            ("to", &self.to),
        ];
        pairs
            .iter()
            .filter(|(_, v)| !v.is_empty())
            .map(|(k, v)| format!("{k}={}", segment(v)))
            .collect::<Vec<_>>()
            .join("&")
    }
}

/// `GET /p/{project}/sessions`.
pub(super) async fn list(
    State(state): State<AppState>,
    viewer: ConsoleProject,
    Query(query): Query<ListQuery>,
) -> Result<Response, PageError> {
    let caller = &viewer.caller;
    let page = query.page.unwrap_or(1).max(1);
    let export = matches!(query.format.as_str(), "csv" | "json");
    let mut search = SessionSearch {
        status: given(&query.status),
        user: None,
        resource: given(&query.resource),
        text: given(&query.q),
        from: instant(&query.from),
        to: instant(&query.to),
        offset: if export {
            0
        } else {
            (page - 1) * u64::from(PAGE_SIZE)
        },
        limit: if export { EXPORT_LIMIT } else { PAGE_SIZE },
    };
    let found = match whose_sessions(&state, caller, given(&query.user)).await {
        Some(user) => {
            search.user = user;
            state
                .store
                .session_page(caller.project_id(), &search)
                .await?
        }
        None => crate::server::store::SessionPage {
            sessions: Vec::new(),
            more: false,
        },
    };
    let now = now();
    let views: Vec<SessionView> = found
        .sessions
        .iter()
        .map(|r| views::session(r, now))
        .collect();
    match query.format.as_str() {
        "json" => return Ok(download("application/json", "sessions.json", json(&views)?)),
        "csv" => {
            return Ok(download(
                "text/csv; charset=utf-8",
                "sessions.csv",
                csv(&views),
            ))
        }
        _ => {}
    }
    let ids: Vec<_> = found
        .sessions
        .iter()
        .map(|r| r.session.id.clone())
        .collect();
    let counts = state.store.command_counts(&ids).await?;
    let base = project_path(&caller.project.name, "sessions");
    let filters = query.filters();
    let link = |page: u64| {
        let mut q = filters.clone();
        if !q.is_empty() {
            q.push('&');
        }
        format!("{base}?{q}page={page}")
    };
    let export_link = |format: &str| {
        let sep = if filters.is_empty() { "" } else { "&" };
        format!("{base}?{filters}{sep}format={format}")
    };
    let body = html! {
        h1 { "Sessions" }
        form.filters method="get" action=(base) {
            label { "Search" input type="search" name="q" value=(query.q) placeholder="command, reason, user…"; }
            label { "Status" select name="status" {
                option value="" { "any" }
                @for s in ["active", "ended", "expired", "terminated"] {
                    option value=(s) selected[query.status == s] { (s) }
                }
            } }
            @if caller.reads_every_session() {
                label { "User" input type="text" name="user" value=(query.user) size="10"; }
            }
            label { "Resource" input type="text" name="resource" value=(query.resource) size="10"; }
            label { "From" input type="date" name="from" value=(query.from); }
            label { "To" input type="date" name="to" value=(query.to); }
            button type="submit" { "Filter" }
            a href=(export_link("csv")) { "CSV" }
            a href=(export_link("json")) { "JSON" }
        }
        @if views.is_empty() {
            div.card.empty {
                @if filters.is_empty() {
                    p { "No sessions yet. Open one with " code { "kms-pam pam access RESOURCE/ACCOUNT --duration 1h" } "; it shows here as soon as it starts." }
                } @else {
                    p { "No session matches these filters. " a href=(base) { "Clear the filters" } }
                }
            }
        } @else {
            div.scroll { table {
                thead { tr {
                    th { "Account" } th { "User" } th { "Status" } th { "Created" }
                    th { "Ended" } th { "Duration" } th { "Commands" } th { "Reason" }
                    @if caller.is_admin() { th {} }
                } }
                tbody {
                    @for (view, count) in views.iter().zip(&counts) {
                        (row(&caller.project.name, view, *count, caller.is_admin(), now))
                    }
                }
            } }
            div.pager {
                @if page > 1 { a href=(link(page - 1)) { "← Newer" } }
                span.muted { "Page " (page) }
                @if found.more { a href=(link(page + 1)) { "Older →" } }
            }
        }
    };
    Ok(answer(layout(&viewer.frame("sessions"), "Sessions", body)))
}

/// The status badge of a session, with its cause.
fn status_badge(view: &SessionView) -> Markup {
    let status = view.session.status.as_str();
    let text = match view.end_cause {
        Some(cause) if view.session.status != SessionStatus::Active => {
            format!("{status} · {}", cause.as_str())
        }
        _ => status.to_owned(),
    };
    badge(status, &text)
}

fn row(project: &str, view: &SessionView, commands: u64, admin: bool, now: SystemTime) -> Markup {
    let s = &view.session;
    let href = format!(
        "{}/{}",
        project_path(project, "sessions"),
        segment(s.id.as_str())
    );
    let end = s.ended_at.unwrap_or(now);
    html! {
        tr {
            td { a href=(href) { (s.resource) "/" (s.account) } }
            td { (s.user) }
            td { (status_badge(view)) }
            td { (when(s.created_at)) }
            td { @match s.ended_at { Some(t) => (when(t)), None => span.muted { "ongoing" } } }
            td { (span(s.created_at, end)) }
            td { (commands) }
            td { (s.reason.as_deref().unwrap_or("")) }
            @if admin {
                td { @if s.status == SessionStatus::Active {
                    a.button href={(href) "/terminate"} { "Terminate" }
                } }
            }
        }
    }
}

fn json<T: serde::Serialize>(value: &T) -> Result<String, PageError> {
    serde_json::to_string_pretty(value)
        .map_err(|e| PageError::Api(crate::server::error::ApiError::internal(&e)))
}

/// One CSV field: quoted, and never read as a formula by a spreadsheet.
fn csv_field(text: &str) -> String {
    let guarded = if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{text}")
    } else {
        text.to_owned()
    };
    format!("\"{}\"", guarded.replace('"', "\"\""))
}

fn csv(views: &[SessionView]) -> String {
    let mut out = String::from("id,user,resource,account,gateway,status,end_cause,created_at,expires_at,ended_at,reason\r\n");
    for v in views {
        let s = &v.session;
        let fields = [
            s.id.to_string(),
            s.user.clone(),
            s.resource.clone(),
            s.account.clone(),
            s.gateway.clone(),
            s.status.as_str().to_owned(),
            v.end_cause
                .map(|c| c.as_str().to_owned())
                .unwrap_or_default(),
            crate::time::format_rfc3339(s.created_at),
            crate::time::format_rfc3339(s.expires_at),
            s.ended_at
                .map(crate::time::format_rfc3339)
                .unwrap_or_default(),
            s.reason.clone().unwrap_or_default(),
        ];
        let line: Vec<String> = fields.iter().map(|f| csv_field(f)).collect();
        out.push_str(&line.join(","));
        out.push_str("\r\n");
    }
    out
}

fn download(kind: &'static str, name: &str, body: String) -> Response {
    let disposition = HeaderValue::from_str(&format!("attachment; filename=\"{name}\""))
        .unwrap_or(HeaderValue::from_static("attachment"));
    (
        [
            (CONTENT_TYPE, HeaderValue::from_static(kind)),
            (CONTENT_DISPOSITION, disposition),
        ],
        body,
    )
        .into_response()
}

/// The session `id` if the viewer may see it (the API's rule), else the 404 page.
async fn session_of(
    state: &AppState,
    viewer: &ConsoleProject,
    id: &str,
) -> Result<SessionRecord, PageError> {
    let caller = SessionCaller {
        user: viewer.caller.user.clone(),
        project: viewer.caller.project.clone(),
        role: Some(viewer.caller.role),
    };
    Ok(readable_session(state, &caller, id).await?)
}

/// Query of a session's page.
#[derive(Debug, Default, Deserialize)]
pub(super) struct ShowQuery {
    #[serde(default)]
    format: String,
    /// The page of the command log (1-based).
    #[serde(default)]
    page: Option<usize>,
}

/// The `User-Agent` of the session's first request through the gateway that sent one (kubectl's
/// names its version and platform).
fn first_user_agent(events: &[AuditEvent]) -> Option<&str> {
    events
        .iter()
        .filter_map(|e| match &e.kind {
            AuditEventKind::RequestStarted(r) => Some((e.time, r.user_agent.as_deref()?)),
            _ => None,
        })
        .min_by_key(|(time, _)| *time)
        .map(|(_, agent)| agent)
}

/// `GET /p/{project}/sessions/{id}` (`?format=json` exports it).
pub(super) async fn show(
    State(state): State<AppState>,
    viewer: ConsoleProject,
    Path((_, id)): Path<(String, String)>,
    Query(query): Query<ShowQuery>,
) -> Result<Response, PageError> {
    let record = session_of(&state, &viewer, &id).await?;
    let now = now();
    let view = views::session(&record, now);
    let events = events(&state, &record.session.id).await?;
    let commands = group_commands(&events);
    if query.format == "json" {
        let detail = SessionDetail {
            session: view,
            commands,
            audit: Some(audit_trail::progress(&state, &record).await?),
            client: views::session_client(&record),
        };
        let name = format!("session-{}.json", record.session.id);
        return Ok(download("application/json", &name, json(&detail)?));
    }
    let recorded = recordings(&events);
    // The command log in pages: rendering thousands of rows (each with its requests) is what
    // made a long session's page slow, and no reader takes them in at once.
    let pages = commands.len().div_ceil(COMMANDS_PER_PAGE).max(1);
    let page = query.page.unwrap_or(1).clamp(1, pages);
    let first = (page - 1) * COMMANDS_PER_PAGE;
    let shown = commands
        .get(first..commands.len().min(first + COMMANDS_PER_PAGE))
        .unwrap_or_default();
    let agent = first_user_agent(&events);
    let s = &view.session;
    let base = format!(
        "{}/{}",
        project_path(&viewer.caller.project.name, "sessions"),
        segment(s.id.as_str())
    );
    let active = s.status == SessionStatus::Active;
    let body = html! {
        h1 { "Session " (s.resource) "/" (s.account) " " (status_badge(&view)) }
        div.card { dl.meta {
            dt { "Id" } dd.mono { (s.id) }
            dt { "User" } dd { (s.user) }
            dt { "Account" } dd { (s.resource) "/" (s.account) }
            dt { "Gateway" } dd { (s.gateway) }
            dt { "Status" } dd { (status_badge(&view))
                @if let Some(cause) = view.end_cause { " " span.muted { (cause.describe()) } } }
            dt { "Reason" } dd { (s.reason.as_deref().unwrap_or("—")) }
            dt { "Client address" } dd.mono { (record.client_address.as_deref().unwrap_or("—")) }
            dt { "User agent" } dd.mono { (record.user_agent.as_deref().unwrap_or("—")) }
            dt { "kubectl user agent" } dd.mono { (agent.unwrap_or("—")) }
            dt { "Created" } dd { (when(s.created_at)) }
            dt { "Expires" } dd { (when(s.expires_at)) }
            dt { "Ended" } dd { @match s.ended_at { Some(t) => (when(t)), None => "ongoing" } }
            dt { "Duration" } dd { (span(s.created_at, s.ended_at.unwrap_or(now))) }
            // Checking the chain verifies every event's signature (thousands in a long session):
            // its own route, which console.js fills in here; without script, a link to it.
            dt { "Audit chain" } dd #chain data-verify={(base) "/verify"} {
                a href={(base) "/verify"} { "Check the audit chain" }
            }
        } }
        p {
            a href={(base) "?format=json"} { "Export as JSON" }
            @if active && viewer.caller.is_admin() {
                " · " a.button href={(base) "/terminate"} { "Terminate" }
            }
        }
        h2 #commands { "Commands (" (commands.len()) ")" }
        @if commands.is_empty() {
            div.card.empty { p { "No kubectl command recorded yet." @if active { " This page refreshes while the session is active." } } }
        } @else {
            div.scroll { table {
                thead { tr { th { "Time" } th { "Command" } th { "Namespace" } th { "Outcome" } } }
                tbody { @for command in shown { (command_row(command, &base)) } }
            } }
            @if pages > 1 {
                div.pager {
                    @if page > 1 { a href={(base) "?page=" (page - 1) "#commands"} { "← Earlier" } }
                    span.muted { "Commands " (first + 1) "–" (first + shown.len()) " of " (commands.len()) " · page " (page) " of " (pages) }
                    @if page < pages { a href={(base) "?page=" (page + 1) "#commands"} { "Later →" } }
                }
            }
        }
        @if !recorded.is_empty() {
            h2 { "Recordings" }
            @for (i, recording) in recorded.iter().enumerate() {
                div.card {
                    p { "Recording " (i + 1)
                        @if !recording.details.command.is_empty() { " · " code { (recording.details.command.join(" ")) } }
                        @if !recording.complete() { " · " span.badge.expired { "truncated or still open" } }
                        " · " a href={(base) "/recordings/" (i + 1)} { "Download" } }
                    pre { (String::from_utf8_lossy(&replay(recording))) }
                }
            }
        }
    };
    let mut frame = viewer.frame("sessions");
    if active {
        frame.refresh = Some(5);
    }
    Ok(answer(layout(&frame, "Session", body)))
}

/// `GET /p/{project}/sessions/{id}/verify`: the audit chain check of `sessions verify` (the
/// chain, every event's gateway signature, KMS's signed head, the metadata), as its own page;
/// the session page fetches its `#chain-verdict` into place.
pub(super) async fn verify(
    State(state): State<AppState>,
    viewer: ConsoleProject,
    Path((_, id)): Path<(String, String)>,
) -> Result<Response, PageError> {
    let record = session_of(&state, &viewer, &id).await?;
    let chain = audit_trail::verify(&state, &record).await?;
    let s = &record.session;
    let back = format!(
        "{}/{}",
        project_path(&viewer.caller.project.name, "sessions"),
        segment(s.id.as_str())
    );
    let body = html! {
        h1 { "Audit chain of session " (s.resource) "/" (s.account) }
        div.card {
            p #chain-verdict { (chain_badge(&chain)) }
            p.muted { "Each stored event's hash link and the gateway's signature on it, KMS's signed head and the session's metadata, checked as stored (as " code { "kms-pam pam sessions verify" } " does)." }
            p { a href=(back) { "Back to the session" } }
        }
    };
    Ok(answer(layout(
        &viewer.frame("sessions"),
        "Audit chain",
        body,
    )))
}

/// The verdict of `sessions verify`, as a badge and its reason.
fn chain_badge(report: &ChainReport) -> Markup {
    match report {
        ChainReport::Intact {
            count,
            sealed: true,
        } => html! {
            (badge("intact", "intact")) " " span.muted { (count) " events verified, head signed by KMS" }
        },
        // Never plain "intact" without KMS's head: nothing says no events followed these.
        ChainReport::Intact { count, .. } => html! {
            (badge("pending", "unsealed")) " " span.muted { (count) " events verified so far, no \
                head signed by KMS (the session has not ended, or nobody connected through its \
                gateway, or its head and events were deleted)" }
        },
        ChainReport::Altered { seq, reason, .. } => html! {
            (badge("broken", "altered"))
            @if let Some(seq) = seq { " at event " (seq) } ": " (reason)
        },
        ChainReport::Truncated { reason, .. } => {
            html! { (badge("broken", "truncated")) ": " (reason) }
        }
        ChainReport::MetadataChanged { reason, .. } => {
            html! { (badge("broken", "metadata changed")) ": " (reason) }
        }
        _ => badge("broken", "unknown"),
    }
}

fn command_row(command: &Command, base: &str) -> Markup {
    let namespace = command
        .requests
        .iter()
        .find_map(|r| r.namespace.as_deref())
        .unwrap_or("");
    let failed = command
        .requests
        .iter()
        .filter(|r| r.status.is_none_or(|s| s >= 400))
        .count();
    let outcome = if failed == 0 {
        badge("active", "ok")
    } else {
        badge("terminated", &format!("{failed} failed"))
    };
    html! {
        tr {
            td { (when(command.started_at)) }
            td {
                details {
                    // What the requests did; the client's claim beside it when it names another
                    // subcommand, and flagged when the requests contradict it.
                    summary {
                        code { (if command.derived.is_empty() { &command.command } else { &command.derived }) }
                        " " span.muted { "(" (command.requests.len()) " requests)" }
                        @if let Some(claim) = command.claimed.as_deref().filter(|c| *c != command.derived && !c.starts_with(&format!("{} ", command.derived))) {
                            " " span.muted { "client: " code { (claim) } }
                        }
                        @if command.mismatch.is_some() { " " (badge("broken", "mismatch")) }
                    }
                    @if let Some(why) = &command.mismatch { p.mismatch { (why) } }
                    table {
                        thead { tr { th { "Method" } th { "Path" } th { "Status" } th { "Bytes" } th { "Duration" } } }
                        tbody { @for r in &command.requests { tr {
                            td { (r.method) }
                            td.mono { (r.path) @if let Some(q) = &r.query { "?" (q) } }
                            td { @match r.status { Some(s) => (s), None => "—" } }
                            td { @match r.bytes_out { Some(b) => (b), None => "—" } }
                            td { @match r.duration_ms { Some(d) => { (d) " ms" }, None => "—" } }
                        } } }
                    }
                    @for stream in &command.streams { @if let Some(n) = stream.recording {
                        p { a href={(base) "/recordings/" (n)} { "Recording " (n) } }
                    } }
                }
            }
            td { (namespace) }
            td { (outcome) }
        }
    }
}

/// `GET /p/{project}/sessions/{id}/recordings/{n}`: the recorded output as a text download.
pub(super) async fn recording(
    State(state): State<AppState>,
    viewer: ConsoleProject,
    Path((_, id, n)): Path<(String, String, usize)>,
) -> Result<Response, PageError> {
    let record = session_of(&state, &viewer, &id).await?;
    let events = events(&state, &record.session.id).await?;
    let all = recordings(&events);
    let found = n
        .checked_sub(1)
        .and_then(|i| all.get(i))
        .ok_or(PageError::NotFound)?;
    let text = String::from_utf8_lossy(&replay(found)).into_owned();
    let name = format!("session-{}-recording-{n}.txt", record.session.id);
    Ok(download("text/plain; charset=utf-8", &name, text))
}

/// `GET /p/{project}/sessions/{id}/terminate`: the confirmation step.
pub(super) async fn confirm_terminate(
    State(state): State<AppState>,
    viewer: ConsoleProject,
    Path((_, id)): Path<(String, String)>,
) -> Result<Response, PageError> {
    let record = session_of(&state, &viewer, &id).await?;
    if !viewer.caller.is_admin() {
        return Err(PageError::NotFound);
    }
    let s = &record.session;
    let back = format!(
        "{}/{}",
        project_path(&viewer.caller.project.name, "sessions"),
        segment(s.id.as_str())
    );
    let body = html! {
        h1 { "Terminate this session?" }
        div.card {
            p { (s.user) " on " (s.resource) "/" (s.account) ", since " (when(s.created_at)) "." }
            p { "Every connection of this session is cut at once; its user sees that it was terminated." }
            form method="post" action={(back) "/terminate"} {
                button.danger type="submit" { "Terminate" }
                " "
                a href=(back) { "Cancel" }
            }
        }
    };
    Ok(answer(layout(&viewer.frame("sessions"), "Terminate", body)))
}

/// `POST /p/{project}/sessions/{id}/terminate`.
pub(super) async fn terminate(
    State(state): State<AppState>,
    viewer: ConsoleProject,
    headers: HeaderMap,
    Path((_, id)): Path<(String, String)>,
) -> Result<Response, PageError> {
    same_origin(&headers)?;
    let Json(ended) = terminate_in(&state, &viewer.caller, &id).await?;
    let to = format!(
        "{}/{}",
        project_path(&viewer.caller.project.name, "sessions"),
        segment(ended.session.id.as_str())
    );
    Ok(Redirect::to(&to).into_response())
}
