//! PAM resources: Kubernetes clusters of a project, reached through a gateway (gateways belong
//! to the organisation and may serve several projects).

use axum::extract::State;
use axum::Json;
use http::StatusCode;

use crate::kms::api::{CreateResource, Resource, ResourceKind, UpdateResource};
use crate::server::edge::callers::InProject;
use crate::server::edge::error::ApiError;
use crate::server::edge::extract::{ApiJson, ApiPath};
use crate::server::edge::paths::NamePath;
use crate::server::edge::rights::ProjectAdmin;
use crate::server::edge::state::{now, AppState};
use crate::server::edge::{gateway_scope, recording, validate, views};
use crate::server::lifecycle::ending::end_sessions;
use crate::server::store::{
    ActiveSessions, GatewayRecord, NewResource, ResourceChange, StoreError,
};
use crate::session::EndCause;

/// `POST /v1/resources`.
pub(crate) async fn create(
    State(state): State<AppState>,
    ProjectAdmin(admin): ProjectAdmin,
    ApiJson(body): ApiJson<CreateResource>,
) -> Result<(StatusCode, Json<Resource>), ApiError> {
    // The only resource kind so far; any other name reads as `Unknown`.
    if body.kind != ResourceKind::Kubernetes {
        return Err(ApiError::invalid(format!(
            "unsupported resource kind: only {:?} is supported",
            ResourceKind::Kubernetes.as_str()
        )));
    }
    validate::name("resource", &body.name)?;
    validate::server_url(&body.url)?;
    if let Some(pem) = &body.ca_cert {
        validate::ca_bundle(pem)?;
    }
    recording::validate(&body.recording)?;
    let gateway = gateway_named(&state, &body.gateway).await?;
    gateway_scope::check_use(
        &state,
        &gateway,
        admin.project_id(),
        &admin.project.name,
        &body.url,
    )
    .await?;
    let resource = state
        .store
        .create_resource(NewResource {
            project_id: admin.project_id().to_owned(),
            name: body.name,
            kind: body.kind.as_str().to_owned(),
            url: body.url,
            gateway_id: gateway.id,
            ssl_verify: body.ssl_verify,
            ca_cert: body.ca_cert,
            now: now(),
        })
        .await?;
    recording::save(&state, &resource.id, &body.recording).await?;
    tracing::info!(by = %admin.user.name, project = %admin.project.name,
        resource = %resource.name, "resource created");
    let view = recording::with_policy(&state, &resource.id, views::resource(&resource)).await?;
    Ok((StatusCode::CREATED, Json(view)))
}

/// `PATCH /v1/resources/{name}`: each field given replaces the resource's, checked as at its
/// creation (URL, CA bundle, recording policy; the gateway, new or kept, must serve the project
/// and allow the URL). Accounts, grants and open sessions stay; a session the gateway already
/// admitted keeps what it started with.
pub(crate) async fn update(
    State(state): State<AppState>,
    ProjectAdmin(admin): ProjectAdmin,
    ApiPath(NamePath { name }): ApiPath<NamePath>,
    ApiJson(body): ApiJson<UpdateResource>,
) -> Result<Json<Resource>, ApiError> {
    if let Some(url) = &body.url {
        validate::server_url(url)?;
    }
    let ca_cert = match body.ca_cert {
        Some(pem) if pem.trim().is_empty() => Some(None),
        Some(pem) => {
            validate::ca_bundle(&pem)?;
            Some(Some(pem))
        }
        None => None,
    };
    if let Some(policy) = &body.recording {
        recording::validate(policy)?;
    }
    let resource = state.store.resource(admin.project_id(), &name).await?;
    let gateway = match &body.gateway {
        Some(gateway) => gateway_named(&state, gateway).await?,
        None => state.store.gateway_by_id(&resource.gateway_id).await?,
    };
    let url = body.url.unwrap_or_else(|| resource.url.clone());
    // Only what changes is checked: a resource left as it was stays editable (its TLS, its
    // recording) even if its gateway's allow-list was narrowed since.
    if body.gateway.is_some() || url != resource.url {
        let project = &admin.project.name;
        gateway_scope::check_use(&state, &gateway, admin.project_id(), project, &url).await?;
    }
    let updated = state
        .store
        .update_resource(ResourceChange {
            id: resource.id.clone(),
            url,
            gateway_id: gateway.id,
            ssl_verify: body.ssl_verify.unwrap_or(resource.ssl_verify),
            ca_cert: ca_cert.unwrap_or(resource.ca_cert),
        })
        .await?;
    if let Some(policy) = &body.recording {
        recording::save(&state, &updated.id, policy).await?;
    }
    tracing::info!(by = %admin.user.name, project = %admin.project.name,
        resource = %updated.name, gateway = %updated.gateway, "resource updated");
    let view = recording::with_policy(&state, &updated.id, views::resource(&updated)).await?;
    Ok(Json(view))
}

/// The gateway `name`; 404 saying how to create it.
async fn gateway_named(state: &AppState, name: &str) -> Result<GatewayRecord, ApiError> {
    state
        .store
        .gateway_by_name(name)
        .await
        .map_err(|e| match e {
            StoreError::NotFound(_) => ApiError::not_found(format!(
                "gateway {name:?} not found; create it with `kms-pam gateway create`"
            )),
            other => other.into(),
        })
}

/// `GET /v1/resources`.
pub(crate) async fn list(
    State(state): State<AppState>,
    caller: InProject,
) -> Result<Json<Vec<Resource>>, ApiError> {
    let resources = state.store.resources(caller.project_id()).await?;
    let mut views = Vec::with_capacity(resources.len());
    for resource in &resources {
        views.push(recording::with_policy(&state, &resource.id, views::resource(resource)).await?);
    }
    Ok(Json(views))
}

/// `GET /v1/resources/{name}`.
pub(crate) async fn show(
    State(state): State<AppState>,
    caller: InProject,
    ApiPath(NamePath { name }): ApiPath<NamePath>,
) -> Result<Json<Resource>, ApiError> {
    let resource = state.store.resource(caller.project_id(), &name).await?;
    let view = recording::with_policy(&state, &resource.id, views::resource(&resource)).await?;
    Ok(Json(view))
}

/// `DELETE /v1/resources/{name}`: its accounts and grants go too; its active sessions are
/// terminated first (cause `resource_deleted`: they could not get their credential any more),
/// then kept as history.
pub(crate) async fn delete(
    State(state): State<AppState>,
    ProjectAdmin(admin): ProjectAdmin,
    ApiPath(NamePath { name }): ApiPath<NamePath>,
) -> Result<StatusCode, ApiError> {
    let resource = state.store.resource(admin.project_id(), &name).await?;
    let which = ActiveSessions {
        resource_id: Some(resource.id.clone()),
        ..ActiveSessions::default()
    };
    end_sessions(&state, which, EndCause::ResourceDeleted, &admin.user.name).await?;
    state
        .store
        .delete_resource(admin.project_id(), &name)
        .await?;
    tracing::info!(by = %admin.user.name, project = %admin.project.name, resource = %name,
        "resource deleted");
    Ok(StatusCode::NO_CONTENT)
}
