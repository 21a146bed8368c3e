//! The Resources page and its **Add resource** form (project administrators).

use std::collections::HashMap;

use axum::extract::State;
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Form, Json};
use http::{HeaderMap, StatusCode};
use maud::{html, Markup};
use serde::Deserialize;

use super::forms::{field, reshown, FieldErrors};
use super::page::{badge, layout, PageError};
use super::signin::{project_path, same_origin, segment, ConsoleProject};
use crate::kms::api::{CreateResource, ResourceKind};
use crate::server::error::ApiJson;
use crate::server::rights::ProjectAdmin;
use crate::server::state::{now, AppState};
use crate::server::{resources as api, validate, views};

/// A gateway's status as a badge class and label.
pub(super) fn status_name(status: crate::kms::api::GatewayStatus) -> &'static str {
    use crate::kms::api::GatewayStatus::*;
    match status {
        Online => "online",
        Offline => "offline",
        Pending => "pending",
        Revoked => "revoked",
        _ => "unknown",
    }
}

/// The Add resource form as sent (and as re-shown with its errors).
#[derive(Debug, Deserialize)]
pub(super) struct ResourceForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    url: String,
    #[serde(default)]
    gateway: String,
    /// A checkbox: present (`on`) when ticked.
    ssl_verify: Option<String>,
    #[serde(default)]
    ca_cert: String,
}

impl Default for ResourceForm {
    fn default() -> Self {
        Self {
            name: String::new(),
            url: String::new(),
            gateway: String::new(),
            ssl_verify: Some("on".to_owned()),
            ca_cert: String::new(),
        }
    }
}

/// `GET /p/{project}/resources`.
pub(super) async fn list(
    State(state): State<AppState>,
    viewer: ConsoleProject,
) -> Result<Response, PageError> {
    let errors = FieldErrors::default();
    let markup = list_page(&state, &viewer, &ResourceForm::default(), &errors).await?;
    Ok(reshown(&errors, markup))
}

/// `POST /p/{project}/resources`: the Add resource form, through `POST /v1/resources`'s handler.
pub(super) async fn create(
    State(state): State<AppState>,
    viewer: ConsoleProject,
    headers: HeaderMap,
    Form(form): Form<ResourceForm>,
) -> Result<Response, PageError> {
    same_origin(&headers)?;
    let admin = ProjectAdmin::of(viewer.caller.clone())?;
    let mut errors = FieldErrors::default();
    let name = form.name.trim().to_owned();
    let url = form.url.trim().to_owned();
    let ca_cert = Some(form.ca_cert.trim().to_owned()).filter(|pem| !pem.is_empty());
    errors.check("name", validate::name("resource", &name));
    errors.check("url", validate::server_url(&url));
    if form.gateway.is_empty() {
        errors.add("gateway", "choose the gateway that reaches this API server");
    }
    if let Some(pem) = &ca_cert {
        errors.check("ca_cert", validate::ca_bundle(pem));
    }
    if errors.is_empty() {
        let body = CreateResource {
            kind: ResourceKind::Kubernetes,
            name,
            url,
            gateway: form.gateway.clone(),
            ssl_verify: form.ssl_verify.is_some(),
            ca_cert,
            // The default: streams the gateway cannot record are refused (the CLI sets others).
            recording: Default::default(),
        };
        match api::create(State(state.clone()), admin, ApiJson(body)).await {
            Ok((_, Json(resource))) => {
                let to = format!(
                    "{}/{}",
                    project_path(&viewer.caller.project.name, "resources"),
                    segment(&resource.name)
                );
                return Ok(Redirect::to(&to).into_response());
            }
            Err(e) => errors.api(
                e,
                &[
                    (StatusCode::CONFLICT, "name"),
                    (StatusCode::NOT_FOUND, "gateway"),
                ],
            )?,
        }
    }
    let markup = list_page(&state, &viewer, &form, &errors).await?;
    Ok(reshown(&errors, markup))
}

/// The Resources page, with the Add resource form (for administrators) holding `form`.
async fn list_page(
    state: &AppState,
    viewer: &ConsoleProject,
    form: &ResourceForm,
    errors: &FieldErrors,
) -> Result<Markup, PageError> {
    let project = &viewer.caller.project;
    let resources = state.store.resources(&project.id).await?;
    let accounts = state.store.accounts(&project.id, None).await?;
    let now = now();
    let gateways = state.store.gateways().await?;
    let statuses: HashMap<&str, &'static str> = gateways
        .iter()
        .map(|g| (g.id.as_str(), status_name(views::gateway_status(g, now))))
        .collect();
    let body = html! {
        h1 { "Resources" }
        @if resources.is_empty() {
            div.card.empty { p {
                "No resource in this project yet. "
                @if viewer.caller.is_admin() { "Add the first one below, or with " } @else { "A project administrator adds one with " }
                code { "kms-pam pam resource create NAME --url https://API-SERVER --gateway GATEWAY" } "."
            } }
        } @else {
            div.scroll { table {
                thead { tr { th { "Name" } th { "API URL" } th { "Gateway" } th { "TLS" } th { "Accounts" } } }
                tbody { @for r in &resources {
                    @let status = statuses.get(r.gateway_id.as_str()).copied().unwrap_or("unknown");
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
        @if viewer.caller.is_admin() {
            @let usable: Vec<_> = gateways.iter().filter(|g| !g.revoked).collect();
            h2 id="add-resource" { "Add resource" }
            div.card {
                (errors.whole_form())
                form.stack method="post" action=(project_path(&project.name, "resources")) {
                    label { "Kind" select name="kind" disabled { option selected { "Kubernetes" } } }
                    (field(errors, "name", "Name", html! { input type="text" name="name" value=(form.name) required autocomplete="off"; }))
                    (field(errors, "url", "API server URL", html! { input type="url" name="url" value=(form.url) placeholder="https://10.0.0.1:6443" required; }))
                    (field(errors, "gateway", "Gateway", html! {
                        select name="gateway" required {
                            option value="" { "Choose a gateway" }
                            @for g in &usable { option value=(g.name) selected[g.name == form.gateway] { (g.name) } }
                        }
                        @if usable.is_empty() { span.muted { "No gateway yet: an organisation administrator creates one on the Gateways page." } }
                    }))
                    (field(errors, "ssl_verify", "Verify the API server's TLS certificate", html! {
                        input.switch type="checkbox" name="ssl_verify" checked[form.ssl_verify.is_some()];
                    }))
                    (field(errors, "ca_cert", "CA certificate (PEM, optional: the cluster's own CA)", html! {
                        textarea name="ca_cert" rows="5" placeholder="-----BEGIN CERTIFICATE-----" { (form.ca_cert) }
                    }))
                    div { button type="submit" { "Add resource" } }
                }
            }
        }
    };
    Ok(layout(&viewer.frame("resources"), "Resources", body))
}
