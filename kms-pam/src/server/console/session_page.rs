//! A session's page: its metadata, the chain check (its own route, fetched by the page), the
//! command log in pages, the recordings and the JSON export. Visibility is the API's
//! (`readable_session` of `lifecycle/visibility.rs`, through `session_of`).

use axum::extract::{Path, Query, State};
use axum::response::Response;
use maud::{html, Markup};
use serde::Deserialize;

use super::page::{answer, badge, layout, span, when, PageError};
use super::sessions::{download, json, session_of, status_badge};
use super::signin::{project_path, segment, ConsoleProject};
use crate::audit::{group_commands, AuditEvent, AuditEventKind, ChainReport, Command};
use crate::audit::{recordings, replay};
use crate::kms::api::SessionDetail;
use crate::server::edge::state::{now, AppState};
use crate::server::edge::views;
use crate::server::lifecycle::record;
use crate::server::lifecycle::record::events;
use crate::session::SessionStatus;

/// Commands per page of a session's command log.
const COMMANDS_PER_PAGE: usize = 200;

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
            audit: Some(record::progress(&state, &record).await?),
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
            @if let Some(person) = &view.identity {
                dt { "Signed in as" } dd.identity {
                    (person.email.as_deref().unwrap_or(&person.subject)) " "
                    span.muted.mono { "(" (person.subject) " at " (person.issuer) ")" }
                }
            }
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
                tbody { @for command in shown { (command_row(command, &base, active)) } }
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
    let chain = record::verify(&state, &record).await?;
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

/// A command's row: its line (`Command::line`, as `pam sessions show` prints it), and how its
/// requests stand: `ok`, `running` while a watch, `logs -f` or exec of an active session is still
/// open (never "failed"), or how many failed.
fn command_row(command: &Command, base: &str, open: bool) -> Markup {
    let namespace = command
        .requests
        .iter()
        .find_map(|r| r.namespace.as_deref())
        .unwrap_or("");
    let tally = command.outcome(open);
    let line = command.line();
    let outcome = html! {
        @if tally.failed > 0 { (badge("terminated", &format!("{} failed", tally.failed))) " " }
        @if tally.running > 0 { (badge("running", "running")) }
        @if tally.failed == 0 && tally.running == 0 { (badge("active", "ok")) }
    };
    html! {
        tr {
            td { (when(command.started_at)) }
            td {
                details {
                    // What the requests did; the client's claim beside it when it names another
                    // subcommand, and flagged when the requests contradict it.
                    summary {
                        code.line { (line.text) }
                        " " span.muted { "(" (command.requests.len()) " requests)" }
                        @if let Some(claim) = &line.client {
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
                            td { @match r.status { Some(s) => (s), None if open => "running", None => "—" } }
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
