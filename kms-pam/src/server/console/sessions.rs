//! The Sessions page (filters, search, pages, exports) and Terminate; a session's own page is in
//! `session_page.rs`. Visibility is the API's: [`whose_sessions`] for the list,
//! [`readable_session`] for one session.

use std::time::SystemTime;

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use http::header::{CONTENT_DISPOSITION, CONTENT_TYPE};
use http::{HeaderMap, HeaderValue};
use maud::{html, Markup};
use serde::Deserialize;

use super::page::{answer, badge, layout, span, when, PageError};
use super::session_export;
use super::signin::{project_path, same_origin, segment, ConsoleProject};
use crate::kms::api::SessionView;
use crate::server::edge::callers::SessionCaller;
use crate::server::edge::state::{now, AppState};
use crate::server::edge::views;
use crate::server::lifecycle::ending;
use crate::server::lifecycle::visibility::{readable_session, whose_sessions};
use crate::server::store::{SessionRecord, SessionSearch};
use crate::session::{EndCause, SessionStatus};
use crate::time::parse_rfc3339;

/// Rows per page.
const PAGE_SIZE: u32 = 50;
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
    let found = match whose_sessions(&state, caller, given(&query.user)).await? {
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
    let ids: Vec<_> = found
        .sessions
        .iter()
        .map(|r| r.session.id.clone())
        .collect();
    let counts = state.store.command_counts(&ids).await?;
    match query.format.as_str() {
        "json" => {
            let rows: Vec<session_export::ExportRow<'_>> = views
                .iter()
                .zip(&counts)
                .map(|(view, &commands)| session_export::ExportRow::new(view, commands, now))
                .collect();
            return Ok(download("application/json", "sessions.json", json(&rows)?));
        }
        "csv" => {
            return Ok(download(
                "text/csv; charset=utf-8",
                "sessions.csv",
                session_export::csv(&views, &counts, now),
            ))
        }
        _ => {}
    }
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

/// The status badge of a session, with its cause where that says more than the status
/// (`terminated · revocation`, `ended · abandoned`; not `terminated · termination`).
pub(super) fn status_badge(view: &SessionView) -> Markup {
    let status = view.session.status.as_str();
    let text = match view.end_cause {
        Some(EndCause::Termination) if view.session.status == SessionStatus::Terminated => {
            status.to_owned()
        }
        Some(EndCause::Expiry) if view.session.status == SessionStatus::Expired => {
            status.to_owned()
        }
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

pub(super) fn json<T: serde::Serialize>(value: &T) -> Result<String, PageError> {
    serde_json::to_string_pretty(value)
        .map_err(|e| PageError::Api(crate::server::edge::error::ApiError::internal(&e)))
}

pub(super) fn download(kind: &'static str, name: &str, body: String) -> Response {
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
pub(super) async fn session_of(
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
    let ended = ending::terminate(&state, &viewer.caller, &id).await?;
    let to = format!(
        "{}/{}",
        project_path(&viewer.caller.project.name, "sessions"),
        segment(ended.session.id.as_str())
    );
    Ok(Redirect::to(&to).into_response())
}
