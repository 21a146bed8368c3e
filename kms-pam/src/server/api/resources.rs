//! PAM resources: Kubernetes clusters of a project, reached through a gateway (gateways belong
//! to the organisation and may serve several projects).

use axum::extract::State;
use axum::Json;
use http::StatusCode;

use crate::kms::api::{CreateResource, Resource, ResourceKind};
use crate::server::edge::callers::InProject;
use crate::server::edge::error::ApiError;
use crate::server::edge::extract::{ApiJson, ApiPath};
use crate::server::edge::paths::NamePath;
use crate::server::edge::rights::ProjectAdmin;
use crate::server::edge::state::{now, AppState};
use crate::server::edge::{gateway_scope, recording, validate, views};
use crate::server::lifecycle::ending::end_sessions;
use crate::server::store::{ActiveSessions, NewResource, StoreError};
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
    let gateway = state
        .store
        .gateway_by_name(&body.gateway)
        .await
        .map_err(|e| match e {
            StoreError::NotFound(_) => ApiError::not_found(format!(
                "gateway {:?} not found; create it with `kms-pam gateway create`",
                body.gateway
            )),
            other => other.into(),
        })?;
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
