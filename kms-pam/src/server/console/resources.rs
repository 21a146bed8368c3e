//! The Resources page and its **Add resource** form (project administrators); a resource's
//! **Edit** form is in `resource_edit.rs`.

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
use crate::audit::recording::{RecordingPolicy, UnrecordedStreams};
use crate::kms::api::{CreateResource, ResourceKind};
use crate::server::api::resources as api;
use crate::server::edge::extract::ApiJson;
use crate::server::edge::rights::ProjectAdmin;
use crate::server::edge::state::{now, AppState};
use crate::server::edge::{recording, validate, views};
use crate::server::store::GatewayRecord;

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
    pub(super) name: String,
    #[serde(default)]
    pub(super) url: String,
    #[serde(default)]
    pub(super) gateway: String,
    /// A checkbox: present (`on`) when ticked.
    pub(super) ssl_verify: Option<String>,
    #[serde(default)]
    pub(super) ca_cert: String,
    /// `deny` (the default) or `allow`: streams the gateway cannot record.
    #[serde(default)]
    pub(super) unrecorded_streams: String,
    /// Recording cap per stream (a size; blank: the gateway's).
    #[serde(default)]
    pub(super) recording_max_bytes: String,
    /// Input recording cap per stream (a size; blank: the gateway's).
    #[serde(default)]
    pub(super) recording_input_max_bytes: String,
}

impl Default for ResourceForm {
    fn default() -> Self {
        Self {
            name: String::new(),
            url: String::new(),
            gateway: String::new(),
            ssl_verify: Some("on".to_owned()),
            ca_cert: String::new(),
            unrecorded_streams: "deny".to_owned(),
            recording_max_bytes: String::new(),
            recording_input_max_bytes: String::new(),
        }
    }
}

/// `4096`, `64KiB`, `1MiB`, `2GiB` (K, M, G and KB, MB, GB read as powers of 1024 too), as the
/// CLI's `--recording-max-bytes` reads them; blank is `None`.
fn parse_size(text: &str) -> Result<Option<u64>, String> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    let digits = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(digits);
    let number: u64 = number
        .parse()
        .map_err(|_| "expected a size such as 4096, 64KiB or 1MiB".to_owned())?;
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        _ => return Err("unknown size unit; use KiB, MiB or GiB".to_owned()),
    };
    number
        .checked_mul(1 << shift)
        .map(Some)
        .ok_or_else(|| "this size is too large".to_owned())
}

/// The form's recording policy, each refusal next to its field.
pub(super) fn recording_of(form: &ResourceForm, errors: &mut FieldErrors) -> RecordingPolicy {
    let unrecorded = match form.unrecorded_streams.as_str() {
        "" | "deny" => UnrecordedStreams::Deny,
        "allow" => UnrecordedStreams::Allow,
        _ => {
            errors.add("unrecorded_streams", "choose deny or allow");
            UnrecordedStreams::Deny
        }
    };
    let mut cap = |field: &'static str, text: &str| match parse_size(text) {
        Ok(size) => {
            let alone = RecordingPolicy::deny().with_max_bytes(size);
            errors.check(field, recording::validate(&alone)).and(size)
        }
        Err(message) => {
            errors.add(field, &message);
            None
        }
    };
    let max = cap("recording_max_bytes", &form.recording_max_bytes);
    let input = cap("recording_input_max_bytes", &form.recording_input_max_bytes);
    let policy = RecordingPolicy::deny()
        .with_unrecorded_streams(unrecorded)
        .with_max_bytes(max)
        .with_max_input_bytes(input);
    errors.check("recording_input_max_bytes", recording::validate(&policy));
    policy
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
    let recording = recording_of(&form, &mut errors);
    if errors.is_empty() {
        let body = CreateResource {
            kind: ResourceKind::Kubernetes,
            name,
            url,
            gateway: form.gateway.clone(),
            ssl_verify: form.ssl_verify.is_some(),
            ca_cert,
            recording,
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
                    // The caller administers the project: a 403 here is the gateway's scope.
                    (StatusCode::FORBIDDEN, "gateway"),
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
                code { "kms-pam pam resource create kubernetes NAME --url https://API-SERVER --gateway GATEWAY" } "."
            } }
        } @else {
            div.scroll { table {
                thead { tr { th { "Name" } th { "API URL" } th { "Gateway" } th { "TLS" } th { "Accounts" } } }
                tbody { @for r in &resources {
                    @let status = statuses.get(r.gateway_id.as_str()).copied().unwrap_or("unknown");
                    tr {
                        td { a href={(project_path(&project.name, "resources")) "/" (segment(&r.name))} { (r.name) } }
                        td.mono { (validate::shown_url(&r.url)) }
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
                    (connection_fields(form, errors, &usable, true))
                    div { button type="submit" { "Add resource" } }
                }
            }
        }
    };
    Ok(layout(&viewer.frame("resources"), "Resources", body))
}

/// The fields of a resource's connection and recording, shared by the Add resource form
/// (`adding`: with examples) and the Edit resource form (blank fields say what they fall back
/// to); `usable` are the gateways to choose from.
pub(super) fn connection_fields(
    form: &ResourceForm,
    errors: &FieldErrors,
    usable: &[&GatewayRecord],
    adding: bool,
) -> Markup {
    let (ca, cap, input_cap) = if adding {
        (
            "CA certificate (PEM, optional: the cluster's own CA)",
            "Recording cap per stream (optional: 64KiB, 1MiB; blank: the gateway's, 1MiB)",
            "Input recording cap per stream (optional; blank: the gateway's, 8MiB)",
        )
    } else {
        (
            "CA certificate (PEM; blank: the system roots)",
            "Recording cap per stream (blank: the gateway's, 1MiB)",
            "Input recording cap per stream (blank: the gateway's, 8MiB)",
        )
    };
    html! {
        (field(errors, "url", "API server URL", html! { input type="url" name="url" value=(form.url) placeholder=[adding.then_some("https://10.0.0.1:6443")] required; }))
        (field(errors, "gateway", "Gateway", html! {
            select name="gateway" required {
                option value="" { "Choose a gateway" }
                @for g in usable { option value=(g.name) selected[g.name == form.gateway] { (g.name) } }
            }
            @if adding && usable.is_empty() { span.muted { "No gateway yet: an organisation administrator creates one on the Gateways page." } }
        }))
        (field(errors, "ssl_verify", "Verify the API server's TLS certificate", html! {
            input.switch type="checkbox" name="ssl_verify" checked[form.ssl_verify.is_some()];
        }))
        (field(errors, "ca_cert", ca, html! {
            textarea name="ca_cert" rows="5" placeholder="-----BEGIN CERTIFICATE-----" { (form.ca_cert) }
        }))
        (field(errors, "unrecorded_streams", "Streams the gateway cannot record (SPDY exec/attach, port-forward)", html! {
            select name="unrecorded_streams" {
                option value="deny" selected[form.unrecorded_streams != "allow"] { "Refuse them, saying why (recommended)" }
                option value="allow" selected[form.unrecorded_streams == "allow"] { "Let them through unrecorded" }
            }
        }))
        (field(errors, "recording_max_bytes", cap, html! {
            input type="text" name="recording_max_bytes" value=(form.recording_max_bytes) size="10" autocomplete="off";
        }))
        (field(errors, "recording_input_max_bytes", input_cap, html! {
            input type="text" name="recording_input_max_bytes" value=(form.recording_input_max_bytes) size="10" autocomplete="off";
        }))
    }
}
