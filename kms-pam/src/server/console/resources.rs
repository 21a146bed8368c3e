//! The Resources page, a resource's page (connection, accounts, the Access panel with the exact
//! CLI command), the Members page and the Gateways page. Read-only so far: resources, accounts,
//! members and gateways are added with the CLI (docs/cli.md).

use std::collections::HashMap;

use axum::extract::{Path, State};
use axum::response::Response;
use http::HeaderMap;
use maud::html;

use super::page::{answer, badge, layout, when, Frame, PageError};
use super::signin::{project_path, projects_of, segment, ConsoleProject, ConsoleUser};
use crate::server::state::{now, AppState};
use crate::server::views;
use crate::time::format_duration;

fn status_name(status: crate::kms::api::GatewayStatus) -> &'static str {
    use crate::kms::api::GatewayStatus::*;
    match status {
        Online => "online",
        Offline => "offline",
        Pending => "pending",
        Revoked => "revoked",
        _ => "unknown",
    }
}

/// `GET /p/{project}/resources`.
pub(super) async fn list(
    State(state): State<AppState>,
    viewer: ConsoleProject,
) -> Result<Response, PageError> {
    let project = &viewer.caller.project;
    let resources = state.store.resources(&project.id).await?;
    let accounts = state.store.accounts(&project.id, None).await?;
    let now = now();
    let gateways: HashMap<String, &'static str> = state
        .store
        .gateways()
        .await?
        .iter()
        .map(|g| (g.id.clone(), status_name(views::gateway_status(g, now))))
        .collect();
    let body = html! {
        h1 { "Resources" }
        @if resources.is_empty() {
            div.card.empty { p { "No resource in this project yet. A project administrator adds one with "
                code { "kms-pam pam resource create NAME --url https://API-SERVER --gateway GATEWAY" } "." } }
        } @else {
            div.scroll { table {
                thead { tr { th { "Name" } th { "API URL" } th { "Gateway" } th { "TLS" } th { "Accounts" } } }
                tbody { @for r in &resources {
                    @let status = gateways.get(&r.gateway_id).copied().unwrap_or("unknown");
                    tr {
                        td { a href={(project_path(&project.name, "resources")) "/" (segment(&r.name))} { (r.name) } }
                        td.mono { (r.url) }
                        td { (r.gateway) " " (badge(status, status)) }
                        td { @if r.ssl_verify { "verified" } @else { "not verified" } @if r.ca_cert.is_some() { " (own CA)" } }
                        td { (accounts.iter().filter(|a| a.resource_id == r.id).count()) }
                    }
                } }
            } }
        }
    };
    Ok(answer(layout(
        &viewer.frame("resources"),
        "Resources",
        body,
    )))
}

/// `GET /p/{project}/resources/{name}`.
pub(super) async fn show(
    State(state): State<AppState>,
    viewer: ConsoleProject,
    headers: HeaderMap,
    Path((_, name)): Path<(String, String)>,
) -> Result<Response, PageError> {
    let project = &viewer.caller.project;
    let resource = state.store.resource(&project.id, &name).await?;
    let accounts = state
        .store
        .accounts(&project.id, Some(&resource.name))
        .await?;
    let gateway = state.store.gateway_by_id(&resource.gateway_id).await?;
    let status = status_name(views::gateway_status(&gateway, now()));
    let url = kms_url(&headers);
    let body = html! {
        h1 { "Resource " (resource.name) }
        div.card { dl.meta {
            dt { "Kind" } dd { (resource.kind) }
            dt { "API URL" } dd.mono { (resource.url) }
            dt { "Gateway" } dd { (gateway.name) " " (badge(status, status)) }
            dt { "TLS" } dd { @if resource.ssl_verify { "certificate verified" } @else { "not verified" } @if resource.ca_cert.is_some() { " against its own CA bundle" } }
            dt { "Created" } dd { (when(resource.created_at)) }
        } }
        h2 { "Accounts" }
        @if accounts.is_empty() {
            div.card.empty { p { "No account yet. A project administrator adds one with "
                code { "kms-pam pam account create " (resource.name) "/NAME --token-file TOKEN" } "." } }
        } @else {
            @for (i, a) in accounts.iter().enumerate() {
                @let id = format!("access-{i}");
                @let hours = (a.max_duration_secs / 3600).clamp(1, 4);
                @let command = format!("kms-pam --url {url} pam access {}/{} --project {} --duration {hours}h", resource.name, a.name, project.name);
                div.card {
                    p { strong { (a.name) } @if let Some(d) = &a.description { " — " (d) } }
                    p.muted { "Longest session: " (format_duration(std::time::Duration::from_secs(a.max_duration_secs))) ". Token: stored sealed, never shown." }
                    details {
                        summary { "Access" }
                        p { "Run this in a terminal to open a session and get a kubeconfig:" }
                        div.command-line {
                            code id=(id) { (command) }
                            button.secondary type="button" data-copy=(id) hidden { "Copy" }
                        }
                    }
                }
            }
        }
    };
    Ok(answer(layout(
        &viewer.frame("resources"),
        &resource.name,
        body,
    )))
}

/// The KMS URL as the browser reached it (what the CLI should use too).
fn kms_url(headers: &HeaderMap) -> String {
    let host = headers
        .get(http::header::HOST)
        .and_then(|v| v.to_str().ok())
        .filter(|h| {
            h.chars()
                .all(|c| c.is_ascii_alphanumeric() || ".-:[]".contains(c))
        })
        .unwrap_or("localhost");
    let https = headers
        .get("x-forwarded-proto")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"https"));
    format!("{}://{host}", if https { "https" } else { "http" })
}

/// `GET /p/{project}/members`.
pub(super) async fn members(
    State(state): State<AppState>,
    viewer: ConsoleProject,
) -> Result<Response, PageError> {
    let members = state.store.members(viewer.caller.project_id()).await?;
    let body = html! {
        h1 { "Members" }
        @if members.is_empty() {
            div.card.empty { p { "No member yet. " code { "kms-pam project member add " (viewer.caller.project.name) " USER --role member" } } }
        } @else {
            div.scroll { table {
                thead { tr { th { "User" } th { "Role" } th { "Since" } } }
                tbody { @for m in &members { tr { td { (m.user) } td { (m.role) } td { (when(m.created_at)) } } } }
            } }
        }
    };
    Ok(answer(layout(&viewer.frame("members"), "Members", body)))
}

/// `GET /gateways`: organisation administrators only (the API's rule); 404 for anybody else.
pub(super) async fn gateways(
    State(state): State<AppState>,
    ConsoleUser(user): ConsoleUser,
) -> Result<Response, PageError> {
    if !user.admin {
        return Err(PageError::NotFound);
    }
    let now = now();
    let gateways = state.store.gateways().await?;
    let frame = Frame {
        projects: projects_of(&state, &user).await?,
        project: None,
        user,
        tab: "gateways",
        refresh: None,
    };
    let body = html! {
        h1 { "Gateways" }
        @if gateways.is_empty() {
            div.card.empty { p { "No gateway yet. " code { "kms-pam gateway create NAME" } " prints its enrollment command." } }
        } @else {
            div.scroll { table {
                thead { tr { th { "Name" } th { "Status" } th { "Address" } th { "Last heartbeat" } } }
                tbody { @for g in &gateways {
                    @let status = status_name(views::gateway_status(g, now));
                    tr {
                        td { (g.name) }
                        td { (badge(status, status)) }
                        td.mono { (g.address.as_deref().unwrap_or("—")) }
                        td { @match g.last_heartbeat { Some(t) => (when(t)), None => "never" } }
                    }
                } }
            } }
        }
    };
    Ok(answer(layout(&frame, "Gateways", body)))
}
