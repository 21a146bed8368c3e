//! The Members page (add a member with a role, remove one: project administrators) and the
//! Gateways page (create, which shows the enrollment command once, and revoke: organisation
//! administrators). Each form calls the API handler of the same change.

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Form, Json};
use http::{HeaderMap, StatusCode};
use maud::{html, Markup};
use serde::Deserialize;

use super::forms::{field, reshown, FieldErrors};
use super::page::{badge, kms_url_flags, layout, when, Frame, PageError};
use super::resources::status_name;
use super::signin::{project_path, projects_of, same_origin, segment, ConsoleProject, ConsoleUser};
use crate::kms::api::{CreateGateway, CreatedGateway, ProjectRole, SetMember};
use crate::server::api::{gateways as gateway_api, members as member_api};
use crate::server::edge::auth::AdminUser;
use crate::server::edge::extract::{ApiJson, ApiPath};
use crate::server::edge::paths::MemberPath;
use crate::server::edge::rights::ProjectAdmin;
use crate::server::edge::state::{now, AppState};
use crate::server::edge::{validate, views};
use crate::server::store::UserRecord;

/// The Add member form.
#[derive(Debug, Default, Deserialize)]
pub(super) struct MemberForm {
    #[serde(default)]
    user: String,
    #[serde(default)]
    role: String,
}

/// `GET /p/{project}/members`.
pub(super) async fn members(
    State(state): State<AppState>,
    viewer: ConsoleProject,
) -> Result<Response, PageError> {
    let errors = FieldErrors::default();
    let form = MemberForm {
        role: "member".to_owned(),
        ..MemberForm::default()
    };
    Ok(reshown(
        &errors,
        members_page(&state, &viewer, &form, &errors).await?,
    ))
}

/// `POST /p/{project}/members`: adds the user with the role, or changes their role.
pub(super) async fn set_member(
    State(state): State<AppState>,
    viewer: ConsoleProject,
    headers: HeaderMap,
    Form(form): Form<MemberForm>,
) -> Result<Response, PageError> {
    same_origin(&headers)?;
    let admin = ProjectAdmin::of(viewer.caller.clone())?;
    let mut errors = FieldErrors::default();
    let user = form.user.trim().to_owned();
    if user.is_empty() {
        errors.add("user", "name the user to add");
    }
    let role = ProjectRole::from_name(&form.role);
    if role.is_none() {
        errors.add("role", "role must be admin, member or auditor");
    }
    if let (true, Some(role)) = (errors.is_empty(), role) {
        let path = ApiPath(MemberPath { user });
        match member_api::set(
            State(state.clone()),
            admin,
            path,
            ApiJson(SetMember { role }),
        )
        .await
        {
            Ok(Json(_)) => {
                let to = project_path(&viewer.caller.project.name, "members");
                return Ok(Redirect::to(&to).into_response());
            }
            Err(e) => errors.api(
                e,
                &[
                    (StatusCode::NOT_FOUND, "user"),
                    (StatusCode::BAD_REQUEST, "role"),
                ],
            )?,
        }
    }
    Ok(reshown(
        &errors,
        members_page(&state, &viewer, &form, &errors).await?,
    ))
}

/// `POST /p/{project}/members/{user}/remove`.
pub(super) async fn remove_member(
    State(state): State<AppState>,
    viewer: ConsoleProject,
    headers: HeaderMap,
    Path((_, user)): Path<(String, String)>,
) -> Result<Response, PageError> {
    same_origin(&headers)?;
    let admin = ProjectAdmin::of(viewer.caller.clone())?;
    member_api::remove(State(state), admin, ApiPath(MemberPath { user })).await?;
    let to = project_path(&viewer.caller.project.name, "members");
    Ok(Redirect::to(&to).into_response())
}

async fn members_page(
    state: &AppState,
    viewer: &ConsoleProject,
    form: &MemberForm,
    errors: &FieldErrors,
) -> Result<Markup, PageError> {
    // The API's rule for `GET .../members`: administrators and auditors read the list.
    if !viewer.caller.reads_every_session() {
        return Err(viewer
            .caller
            .refused("the member list: it takes a project administrator or auditor")
            .into());
    }
    let project = &viewer.caller.project;
    let members = state.store.members(&project.id).await?;
    let admin = viewer.caller.is_admin();
    let here = project_path(&project.name, "members");
    let body = html! {
        h1 { "Members" }
        @if members.is_empty() {
            div.card.empty { p { "No member yet. " code { "kms-pam project member add " (project.name) " USER --role member" } } }
        } @else {
            div.scroll { table {
                thead { tr { th { "User" } th { "Role" } th { "Since" } @if admin { th {} } } }
                tbody { @for m in &members { tr {
                    td { (m.user) } td { (m.role) } td { (when(m.created_at)) }
                    @if admin { td {
                        form method="post" action={(here) "/" (segment(&m.user)) "/remove"}
                            data-confirm={"Remove " (m.user) " from " (project.name) "? Their active sessions here end at once."} {
                            button.danger type="submit" { "Remove" }
                        }
                    } }
                } } }
            } }
        }
        @if admin {
            h2 id="add-member" { "Add member" }
            div.card {
                (errors.whole_form())
                form.stack method="post" action=(here) {
                    (field(errors, "user", "User", html! { input type="text" name="user" value=(form.user) required autocomplete="off"; }))
                    (field(errors, "role", "Role", html! {
                        select name="role" {
                            @for role in ["admin", "member", "auditor"] { option value=(role) selected[form.role == role] { (role) } }
                        }
                    }))
                    p.muted { "Members open sessions on the accounts granted to them; auditors read every session; admins manage the project. A user already here gets the new role." }
                    div { button type="submit" { "Save member" } }
                }
            }
        }
    };
    Ok(layout(&viewer.frame("members"), "Members", body))
}

/// The Create gateway form.
#[derive(Debug, Default, Deserialize)]
pub(super) struct GatewayForm {
    #[serde(default)]
    name: String,
}

/// An organisation administrator, or the 404 page (as `/gateways` is for anybody else).
fn org_admin(user: UserRecord) -> Result<AdminUser, PageError> {
    AdminUser::of(user).map_err(|_| PageError::NotFound)
}

/// `GET /gateways`: organisation administrators only (the API's rule); 404 for anybody else.
pub(super) async fn gateways(
    State(state): State<AppState>,
    ConsoleUser(user): ConsoleUser,
) -> Result<Response, PageError> {
    let AdminUser(user) = org_admin(user)?;
    let errors = FieldErrors::default();
    let markup = gateways_page(&state, user, &GatewayForm::default(), &errors, None).await?;
    Ok(reshown(&errors, markup))
}

/// `POST /gateways`: creates a gateway (or renews a revoked one's enrollment) and shows its
/// enrollment command, this once.
pub(super) async fn create_gateway(
    State(state): State<AppState>,
    ConsoleUser(user): ConsoleUser,
    headers: HeaderMap,
    Form(form): Form<GatewayForm>,
) -> Result<Response, PageError> {
    same_origin(&headers)?;
    let admin = org_admin(user)?;
    let user = admin.0.clone();
    let mut errors = FieldErrors::default();
    let name = form.name.trim().to_owned();
    let mut created = None;
    if errors
        .check("name", validate::name("gateway", &name))
        .is_some()
    {
        let body = ApiJson(CreateGateway {
            name,
            projects: Vec::new(),
        });
        match gateway_api::create(State(state.clone()), admin, body).await {
            Ok((_, Json(gateway))) => created = Some(gateway),
            Err(e) => errors.api(e, &[(StatusCode::CONFLICT, "name")])?,
        }
    }
    let enrollment = created.map(|c| enrollment_card(&c, &kms_url_flags(&headers, state.https)));
    let form = if enrollment.is_some() {
        GatewayForm::default()
    } else {
        form
    };
    let markup = gateways_page(&state, user, &form, &errors, enrollment).await?;
    Ok(reshown(&errors, markup))
}

/// `POST /gateways/{name}/revoke`.
pub(super) async fn revoke_gateway(
    State(state): State<AppState>,
    ConsoleUser(user): ConsoleUser,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Result<Response, PageError> {
    same_origin(&headers)?;
    let admin = org_admin(user)?;
    let Json(_) = gateway_api::revoke(State(state), admin, ApiPath(name)).await?;
    Ok(Redirect::to("/gateways").into_response())
}

/// The enrollment command of a gateway just created: shown once, never stored readable.
fn enrollment_card(created: &CreatedGateway, url: &str) -> Markup {
    let name = &created.gateway.name;
    let command = format!(
        "kms-pam-gateway --kms-url {url} --name {name} --listen 0.0.0.0:8443 --advertise HOST:8443 \
         --enroll-token {} --data-dir /var/lib/kms-pam-gateway",
        created.enrollment_token.expose()
    );
    html! {
        div.card.notice role="status" {
            p { strong { "Gateway " (name) " created." } " Start it where it can reach the Kubernetes API server, within the hour (the enrollment token works once and is not shown again):" }
            div.command-line {
                code id="enrollment" { (command) }
                button.secondary type="button" data-copy="enrollment" hidden { "Copy" }
            }
        }
    }
}

async fn gateways_page(
    state: &AppState,
    user: UserRecord,
    form: &GatewayForm,
    errors: &FieldErrors,
    enrollment: Option<Markup>,
) -> Result<Markup, PageError> {
    let now = now();
    let gateways = state.store.gateways().await?;
    let assigned = state.store.gateway_projects().await?;
    let projects_of_gateway = |id: &str| -> String {
        let names: Vec<&str> = assigned
            .iter()
            .filter(|(g, _)| g == id)
            .map(|(_, p)| p.as_str())
            .collect();
        if names.is_empty() {
            "none".to_owned()
        } else {
            names.join(", ")
        }
    };
    let frame = Frame {
        projects: projects_of(state, &user).await?,
        project: None,
        members: user.admin,
        user,
        tab: "gateways",
        refresh: None,
    };
    let body = html! {
        h1 { "Gateways" }
        @if let Some(card) = enrollment { (card) }
        @if gateways.is_empty() {
            div.card.empty { p { "No gateway yet. Create one below; the page shows the command that starts and enrolls it." } }
        } @else {
            div.scroll { table {
                thead { tr { th { "Name" } th { "Status" } th { "Address" } th { "Reach" } th { "Last heartbeat" } th { "Projects" } th { "URL allow-list" } th {} } }
                tbody { @for g in &gateways {
                    @let status = status_name(views::gateway_status(g, now));
                    tr {
                        td { (g.name) }
                        td { (badge(status, status)) }
                        td.mono { (g.address.as_deref().unwrap_or("—")) }
                        td.mono.reach { @if g.enrolled { (g.reach) } @else { "—" } }
                        td { @match g.last_heartbeat { Some(t) => (when(t)), None => "never" } }
                        td.projects { (projects_of_gateway(&g.id)) }
                        td.mono { @if g.allowed_url_hosts.is_empty() { "any URL" } @else { (g.allowed_url_hosts.join(", ")) } }
                        td { @if !g.revoked {
                            form method="post" action={"/gateways/" (segment(&g.name)) "/revoke"}
                                data-confirm={"Revoke gateway " (g.name) "? Its token stops working and its active sessions end at once."} {
                                button.danger type="submit" { "Revoke" }
                            }
                        } }
                    }
                } }
            } }
        }
        h2 id="create-gateway" { "Create gateway" }
        div.card {
            (errors.whole_form())
            form.stack method="post" action="/gateways" {
                (field(errors, "name", "Name", html! { input type="text" name="name" value=(form.name) required autocomplete="off"; }))
                p.muted { "Creating a revoked gateway's name again hands out a new enrollment token for it. A new gateway serves the project default; assign it to other projects with kms-pam gateway assign NAME PROJECT, and limit its resources' URLs with kms-pam gateway update NAME --allow-url-host PATTERN." }
                div { button type="submit" { "Create gateway" } }
            }
        }
    };
    Ok(layout(&frame, "Gateways", body))
}
