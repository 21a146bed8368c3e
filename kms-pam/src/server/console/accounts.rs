//! A resource's page: its connection card, its **Accounts** with the **Add account** form
//! (project administrators), and each account's **Access** panel whose duration field (a GET
//! form, no script needed) changes the CLI command shown; and an account's **Edit** form, whose
//! token field is write-only (left blank: "token unchanged").

use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Form, Json};
use http::{HeaderMap, StatusCode};
use maud::{html, Markup};
use serde::Deserialize;

use super::forms::{field, reshown, FieldErrors};
use super::page::{badge, kms_url_flags, layout, when, PageError};
use super::resources::status_name;
use super::signin::{project_path, same_origin, segment, ConsoleProject};
use crate::kms::api::{CreateAccount, UpdateAccount};
use crate::secret::Secret;
use crate::server::api::accounts as api;
use crate::server::edge::extract::{ApiJson, ApiPath};
use crate::server::edge::paths::AccountPath;
use crate::server::edge::rights::ProjectAdmin;
use crate::server::edge::state::{now, AppState};
use crate::server::edge::{validate, views};
use crate::time::{format_duration, parse_duration};

/// The Access panel's GET form: which account, for how long.
#[derive(Debug, Default, Deserialize)]
pub(super) struct AccessQuery {
    #[serde(default)]
    account: String,
    #[serde(default)]
    duration: String,
}

/// The Add account form. The token is never rendered back, even with errors.
#[derive(Default, Deserialize)]
pub(super) struct AccountForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    token: Secret,
    #[serde(default)]
    max_duration: String,
}

impl std::fmt::Debug for AccountForm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccountForm")
            .field("name", &self.name)
            .field("token", &self.token)
            .finish_non_exhaustive()
    }
}

/// `GET /p/{project}/resources/{name}`.
pub(super) async fn show(
    State(state): State<AppState>,
    viewer: ConsoleProject,
    headers: HeaderMap,
    Path((_, name)): Path<(String, String)>,
    Query(access): Query<AccessQuery>,
) -> Result<Response, PageError> {
    let errors = FieldErrors::default();
    let form = AccountForm {
        max_duration: "8h".to_owned(),
        ..AccountForm::default()
    };
    let markup = resource_page(&state, &viewer, &headers, &name, &access, &form, &errors).await?;
    Ok(reshown(&errors, markup))
}

/// `POST /p/{project}/resources/{name}/accounts`: the Add account form, through
/// `POST /v1/resources/{name}/accounts`'s handler.
pub(super) async fn create(
    State(state): State<AppState>,
    viewer: ConsoleProject,
    headers: HeaderMap,
    Path((_, resource)): Path<(String, String)>,
    Form(form): Form<AccountForm>,
) -> Result<Response, PageError> {
    same_origin(&headers)?;
    let admin = ProjectAdmin::of(viewer.caller.clone())?;
    let mut errors = FieldErrors::default();
    let name = form.name.trim().to_owned();
    let description = Some(form.description.trim().to_owned()).filter(|d| !d.is_empty());
    errors.check("name", validate::name("account", &name));
    errors.check(
        "description",
        validate::text("description", description.as_deref()),
    );
    errors.check("token", validate::account_token(&form.token));
    let max = match parse_duration(&form.max_duration) {
        Ok(d) => errors.check(
            "max_duration",
            validate::max_duration(d.as_secs()).map(|()| d),
        ),
        Err(message) => {
            errors.add("max_duration", &message);
            None
        }
    };
    if let (true, Some(max)) = (errors.is_empty(), max) {
        let body = CreateAccount {
            name,
            token: form.token.clone(),
            description,
            max_duration_secs: Some(max.as_secs()),
        };
        let path = AccountPath {
            resource: resource.clone(),
            account: None,
        };
        match api::create(State(state.clone()), admin, ApiPath(path), ApiJson(body)).await {
            Ok((_, Json(_))) => {
                let to = format!(
                    "{}/{}",
                    project_path(&viewer.caller.project.name, "resources"),
                    segment(&resource)
                );
                return Ok(Redirect::to(&to).into_response());
            }
            Err(e) if e.status() == StatusCode::NOT_FOUND => return Err(PageError::NotFound),
            Err(e) => errors.api(e, &[(StatusCode::CONFLICT, "name")])?,
        }
    }
    let access = AccessQuery::default();
    let markup = resource_page(
        &state, &viewer, &headers, &resource, &access, &form, &errors,
    )
    .await?;
    Ok(reshown(&errors, markup))
}

/// The Access panel's duration: what its field shows (what was asked, kept when refused so it
/// can be corrected), the duration of the command shown, and why the asked one was refused. A
/// duration longer than the account allows shows the command at the longest it allows.
fn access_duration(max_secs: u64, asked: Option<&str>) -> (String, String, Option<String>) {
    let fallback = format!("{}h", (max_secs / 3600).clamp(1, 4));
    let longest = format_duration(Duration::from_secs(max_secs));
    let typed = || asked.unwrap_or_default().trim().to_owned();
    match asked.filter(|a| !a.trim().is_empty()).map(parse_duration) {
        None => (fallback.clone(), fallback, None),
        Some(Ok(d)) if d.as_secs() <= max_secs => (format_duration(d), format_duration(d), None),
        Some(Ok(_)) => (
            typed(),
            longest.clone(),
            Some(format!(
                "longer than this account allows ({longest}); the command below is for {longest}"
            )),
        ),
        Some(Err(message)) => (typed(), fallback, Some(message)),
    }
}

/// The resource page with the Add account form holding `form` (never its token).
async fn resource_page(
    state: &AppState,
    viewer: &ConsoleProject,
    headers: &HeaderMap,
    name: &str,
    access: &AccessQuery,
    form: &AccountForm,
    errors: &FieldErrors,
) -> Result<Markup, PageError> {
    let project = &viewer.caller.project;
    let resource = state.store.resource(&project.id, name).await?;
    let accounts = state
        .store
        .accounts(&project.id, Some(&resource.name))
        .await?;
    let gateway = state.store.gateway_by_id(&resource.gateway_id).await?;
    let status = status_name(views::gateway_status(&gateway, now()));
    let policy = crate::server::edge::recording::policy(state, &resource.id).await?;
    let cap =
        |cap: Option<u64>| cap.map_or_else(|| "the gateway's".to_owned(), |b| format!("{b} bytes"));
    let url = kms_url_flags(headers, state.https);
    let here = format!(
        "{}/{}",
        project_path(&project.name, "resources"),
        segment(&resource.name)
    );
    let body = html! {
        h1 { "Resource " (resource.name) }
        div.card { dl.meta {
            dt { "Kind" } dd { (resource.kind) }
            dt { "API URL" } dd.mono { (validate::shown_url(&resource.url)) }
            dt { "Gateway" } dd { (gateway.name) " " (badge(status, status)) }
            dt { "TLS" } dd { @if resource.ssl_verify { "certificate verified" } @else { "not verified" } @if resource.ca_cert.is_some() { " against its own CA bundle" } }
            dt { "Recording" } dd {
                @if policy.unrecorded_streams == crate::audit::recording::UnrecordedStreams::Allow { "unrecordable streams let through unrecorded" } @else { "unrecordable streams refused" }
                "; cap per stream " (cap(policy.max_bytes)) ", input cap " (cap(policy.max_input_bytes))
            }
            dt { "Created" } dd { (when(resource.created_at)) }
            }
            @if viewer.caller.is_admin() { p { a.button.secondary href={(here) "/edit"} { "Edit resource" } } }
        }
        h2 { "Accounts" }
        @if accounts.is_empty() {
            div.card.empty { p {
                "No account yet. "
                @if viewer.caller.is_admin() { "Add one below, or with " } @else { "A project administrator adds one with " }
                code { "kms-pam pam account create " (resource.name) "/NAME --token-file TOKEN" } "."
            } }
        }
        @for (i, a) in accounts.iter().enumerate() {
            @let id = format!("access-{i}");
            @let chosen = access.account == a.name;
            @let (typed, duration, refused) = access_duration(a.max_duration_secs, chosen.then_some(access.duration.as_str()));
            @let command = format!("kms-pam --url {url} pam access {}/{} --project {} --duration {duration}", resource.name, a.name, project.name);
            div.card id={"account-" (i)} {
                p { strong { (a.name) } @if let Some(d) = &a.description { " — " (d) } }
                p.muted { "Longest session: " (format_duration(Duration::from_secs(a.max_duration_secs))) ". Token: stored sealed, never shown."
                    @if viewer.caller.is_admin() { " " a href={(here) "/accounts/" (segment(&a.name))} { "Edit" } } }
                details open[chosen] {
                    summary { "Access" }
                    form.filters method="get" action={(here) "#account-" (i)} {
                        input type="hidden" name="account" value=(a.name);
                        label { "Duration"
                            input type="text" name="duration" value=(typed) size="8" aria-label="Duration";
                            @if let Some(refused) = &refused { span.field-error role="alert" { (refused) } }
                        }
                        button.secondary type="submit" { "Update command" }
                    }
                    p { "Run this in a terminal to open a session and get a kubeconfig:" }
                    div.command-line {
                        code id=(id) { (command) }
                        button.secondary type="button" data-copy=(id) hidden { "Copy" }
                    }
                }
            }
        }
        @if viewer.caller.is_admin() {
            h2 id="add-account" { "Add account" }
            div.card {
                (errors.whole_form())
                form.stack method="post" action={(here) "/accounts"} {
                    (field(errors, "name", "Name", html! { input type="text" name="name" value=(form.name) required autocomplete="off"; }))
                    (field(errors, "description", "Description (optional)", html! { input type="text" name="description" value=(form.description); }))
                    (field(errors, "token", "Service-account token (write-only: stored sealed, never shown again)", html! {
                        input type="password" name="token" required autocomplete="off";
                    }))
                    (field(errors, "max_duration", "Longest session", html! { input type="text" name="max_duration" value=(form.max_duration) size="8" required; }))
                    div { button type="submit" { "Add account" } }
                }
            }
        }
    };
    Ok(layout(&viewer.frame("resources"), &resource.name, body))
}

/// The Edit account form. A blank token means "token unchanged"; a token is never rendered
/// back, even with errors.
#[derive(Default, Deserialize)]
pub(super) struct EditForm {
    #[serde(default)]
    description: String,
    #[serde(default)]
    token: Secret,
    #[serde(default)]
    max_duration: String,
}

impl std::fmt::Debug for EditForm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EditForm")
            .field("description", &self.description)
            .field("token", &self.token)
            .finish_non_exhaustive()
    }
}

/// `GET /p/{project}/resources/{name}/accounts/{account}`: the Edit account form (project
/// administrators).
pub(super) async fn edit_form(
    State(state): State<AppState>,
    viewer: ConsoleProject,
    Path((_, resource, name)): Path<(String, String, String)>,
) -> Result<Response, PageError> {
    ProjectAdmin::of(viewer.caller.clone())?;
    let account = state
        .store
        .account(&viewer.caller.project.id, &resource, &name)
        .await?;
    let form = EditForm {
        description: account.description.clone().unwrap_or_default(),
        token: Secret::default(),
        max_duration: format_duration(Duration::from_secs(account.max_duration_secs)),
    };
    let errors = FieldErrors::default();
    Ok(reshown(
        &errors,
        edit_page(&viewer, &resource, &name, &form, &errors),
    ))
}

/// `POST /p/{project}/resources/{name}/accounts/{account}`: the Edit account form, through
/// `PATCH /v1/resources/{name}/accounts/{account}`'s handler.
pub(super) async fn update(
    State(state): State<AppState>,
    viewer: ConsoleProject,
    headers: HeaderMap,
    Path((_, resource, name)): Path<(String, String, String)>,
    Form(form): Form<EditForm>,
) -> Result<Response, PageError> {
    same_origin(&headers)?;
    let admin = ProjectAdmin::of(viewer.caller.clone())?;
    let mut errors = FieldErrors::default();
    let description = form.description.trim().to_owned();
    errors.check(
        "description",
        validate::text("description", Some(description.as_str())),
    );
    let token = if form.token.expose().trim().is_empty() {
        None
    } else {
        errors.check("token", validate::account_token(&form.token))
    };
    let max = match parse_duration(&form.max_duration) {
        Ok(d) => errors.check(
            "max_duration",
            validate::max_duration(d.as_secs()).map(|()| d),
        ),
        Err(message) => {
            errors.add("max_duration", &message);
            None
        }
    };
    if let (true, Some(max)) = (errors.is_empty(), max) {
        let body = UpdateAccount {
            description: Some(description),
            max_duration_secs: Some(max.as_secs()),
            token,
        };
        let path = AccountPath {
            resource: resource.clone(),
            account: Some(name.clone()),
        };
        match api::update(State(state.clone()), admin, ApiPath(path), ApiJson(body)).await {
            Ok(Json(_)) => {
                let to = format!(
                    "{}/{}",
                    project_path(&viewer.caller.project.name, "resources"),
                    segment(&resource)
                );
                return Ok(Redirect::to(&to).into_response());
            }
            Err(e) if e.status() == StatusCode::NOT_FOUND => return Err(PageError::NotFound),
            Err(e) => errors.api(e, &[])?,
        }
    }
    Ok(reshown(
        &errors,
        edit_page(&viewer, &resource, &name, &form, &errors),
    ))
}

/// The Edit account page holding `form` (never its token).
fn edit_page(
    viewer: &ConsoleProject,
    resource: &str,
    name: &str,
    form: &EditForm,
    errors: &FieldErrors,
) -> Markup {
    let back = format!(
        "{}/{}",
        project_path(&viewer.caller.project.name, "resources"),
        segment(resource)
    );
    let here = format!("{back}/accounts/{}", segment(name));
    let body = html! {
        h1 { "Edit account " (resource) "/" (name) }
        div.card {
            (errors.whole_form())
            form.stack method="post" action=(here) {
                (field(errors, "description", "Description (optional)", html! { input type="text" name="description" value=(form.description); }))
                (field(errors, "token", "Service-account token (write-only: leave blank and the stored token stays)", html! {
                    input type="password" name="token" autocomplete="off" placeholder="token unchanged";
                }))
                p.muted { "Token: stored sealed, never shown. Blank means token unchanged." }
                (field(errors, "max_duration", "Longest session", html! { input type="text" name="max_duration" value=(form.max_duration) size="8" required; }))
                div { button type="submit" { "Save account" } " " a href=(back) { "Cancel" } }
            }
        }
    };
    layout(&viewer.frame("resources"), &format!("Edit {name}"), body)
}
