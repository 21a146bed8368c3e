//! A resource's **Edit** form (project administrators): its API server URL, gateway, TLS
//! settings and recording policy, through `PATCH /v1/resources/{name}`'s handler. The form shows
//! what is stored and sends every field back: a blank CA certificate removes the CA bundle.

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Form, Json};
use http::{HeaderMap, StatusCode};
use maud::{html, Markup};

use super::forms::{reshown, FieldErrors};
use super::page::{layout, PageError};
use super::resources::{connection_fields, recording_of, ResourceForm};
use super::signin::{project_path, same_origin, segment, ConsoleProject};
use crate::audit::recording::UnrecordedStreams;
use crate::kms::api::UpdateResource;
use crate::server::api::resources as api;
use crate::server::edge::extract::{ApiJson, ApiPath};
use crate::server::edge::paths::NamePath;
use crate::server::edge::rights::ProjectAdmin;
use crate::server::edge::state::AppState;
use crate::server::edge::{recording, validate};

/// `GET /p/{project}/resources/{name}/edit`: the Edit resource form, holding what is stored.
pub(super) async fn edit_form(
    State(state): State<AppState>,
    viewer: ConsoleProject,
    Path((_, name)): Path<(String, String)>,
) -> Result<Response, PageError> {
    ProjectAdmin::of(viewer.caller.clone())?;
    let resource = state
        .store
        .resource(&viewer.caller.project.id, &name)
        .await?;
    let policy = recording::policy(&state, &resource.id).await?;
    let size = |cap: Option<u64>| cap.map(|b| b.to_string()).unwrap_or_default();
    let form = ResourceForm {
        name: resource.name.clone(),
        url: validate::shown_url(&resource.url),
        gateway: resource.gateway.clone(),
        ssl_verify: resource.ssl_verify.then(|| "on".to_owned()),
        ca_cert: resource.ca_cert.clone().unwrap_or_default(),
        unrecorded_streams: match policy.unrecorded_streams {
            UnrecordedStreams::Allow => "allow".to_owned(),
            _ => "deny".to_owned(),
        },
        recording_max_bytes: size(policy.max_bytes),
        recording_input_max_bytes: size(policy.max_input_bytes),
    };
    let errors = FieldErrors::default();
    let markup = edit_page(&state, &viewer, &name, &form, &errors).await?;
    Ok(reshown(&errors, markup))
}

/// `POST /p/{project}/resources/{name}/edit`: the Edit resource form, through
/// `PATCH /v1/resources/{name}`'s handler.
pub(super) async fn update(
    State(state): State<AppState>,
    viewer: ConsoleProject,
    headers: HeaderMap,
    Path((_, name)): Path<(String, String)>,
    Form(form): Form<ResourceForm>,
) -> Result<Response, PageError> {
    same_origin(&headers)?;
    let admin = ProjectAdmin::of(viewer.caller.clone())?;
    // Gone meanwhile: the page says so rather than the gateway field.
    state
        .store
        .resource(&viewer.caller.project.id, &name)
        .await?;
    let mut errors = FieldErrors::default();
    let url = form.url.trim().to_owned();
    let ca_cert = form.ca_cert.trim().to_owned();
    errors.check("url", validate::server_url(&url));
    if form.gateway.is_empty() {
        errors.add("gateway", "choose the gateway that reaches this API server");
    }
    if !ca_cert.is_empty() {
        errors.check("ca_cert", validate::ca_bundle(&ca_cert));
    }
    let recording = recording_of(&form, &mut errors);
    if errors.is_empty() {
        let body = UpdateResource {
            url: Some(url),
            gateway: Some(form.gateway.clone()),
            ssl_verify: Some(form.ssl_verify.is_some()),
            ca_cert: Some(ca_cert),
            recording: Some(recording),
        };
        let path = NamePath { name: name.clone() };
        match api::update(State(state.clone()), admin, ApiPath(path), ApiJson(body)).await {
            Ok(Json(_)) => return Ok(Redirect::to(&resource_path(&viewer, &name)).into_response()),
            Err(e) => errors.api(
                e,
                &[
                    (StatusCode::NOT_FOUND, "gateway"),
                    // The caller administers the project: a 403 here is the gateway's scope.
                    (StatusCode::FORBIDDEN, "gateway"),
                ],
            )?,
        }
    }
    let markup = edit_page(&state, &viewer, &name, &form, &errors).await?;
    Ok(reshown(&errors, markup))
}

fn resource_path(viewer: &ConsoleProject, name: &str) -> String {
    format!(
        "{}/{}",
        project_path(&viewer.caller.project.name, "resources"),
        segment(name)
    )
}

/// The Edit resource page holding `form`.
async fn edit_page(
    state: &AppState,
    viewer: &ConsoleProject,
    name: &str,
    form: &ResourceForm,
    errors: &FieldErrors,
) -> Result<Markup, PageError> {
    let gateways = state.store.gateways().await?;
    let usable: Vec<_> = gateways.iter().filter(|g| !g.revoked).collect();
    let back = resource_path(viewer, name);
    let body = html! {
        h1 { "Edit resource " (name) }
        div.card {
            p.muted { "Its accounts and grants stay. Sessions already open keep running as they were opened; new sessions use what you save here." }
            (errors.whole_form())
            form.stack method="post" action={(back) "/edit"} {
                (connection_fields(form, errors, &usable, false))
                div { button type="submit" { "Save resource" } " " a href=(back) { "Cancel" } }
            }
        }
    };
    Ok(layout(
        &viewer.frame("resources"),
        &format!("Edit {name}"),
        body,
    ))
}
