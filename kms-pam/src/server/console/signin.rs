//! Signing in and out, and who is looking.
//!
//! `kms-pam console` asks `POST /v1/console/links` (bearer-authenticated, `link.rs`) for a one-time code:
//! single use, valid [`LINK_TTL`], bound to the caller, stored hashed. `/login/link/{code}`
//! spends it and starts a console session; `/login` takes an API token instead. A console
//! session is a random cookie value whose hash the store keeps; it ends at `/logout`, after
//! [`IDLE_LIMIT`] without a request, or as soon as its user is disabled or deleted. Every form
//! that changes something is refused unless the browser says it came from the console itself.

use std::time::Duration;

use axum::extract::{FromRequestParts, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use http::header::{COOKIE, HOST, ORIGIN, SET_COOKIE};
use http::request::Parts;
use http::{HeaderMap, HeaderValue, StatusCode};
use maud::html;
use serde::Deserialize;

use super::page::{answer, bare, Frame, PageError};
use crate::secret::Secret;
use crate::server::edge::callers::{role_in, InProject};
use crate::server::edge::error::ApiError;
use crate::server::edge::refusals::Attempt;
use crate::server::edge::rights::ProjectScope;
use crate::server::edge::state::{now, AppState};
use crate::server::store::{ProjectRecord, StoreError, TokenHash, UserRecord};

/// How long a sign-in code from `kms-pam console` stays valid.
pub(super) const LINK_TTL: Duration = Duration::from_secs(60);
/// A console session ends after this long without a request.
pub(super) const IDLE_LIMIT: Duration = Duration::from_secs(12 * 3600);
/// The console cookie's name.
const COOKIE_NAME: &str = "kms_console";

/// The value of the console cookie, if the request has one.
pub(super) fn cookie_value(headers: &HeaderMap) -> Option<&str> {
    cookie_named(headers, COOKIE_NAME)
}

/// The value of the cookie `name`, if the request has one.
pub(super) fn cookie_named<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(cookie, _)| *cookie == name)
        .map(|(_, value)| value)
        .filter(|value| !value.is_empty())
}

/// Whether the request came over HTTPS (directly or through a proxy that says so).
pub(super) fn over_https(parts_headers: &HeaderMap, uri: &http::Uri) -> bool {
    uri.scheme_str() == Some("https")
        || parts_headers
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.eq_ignore_ascii_case("https"))
}

/// Refuses a state-changing request the browser did not send from the console's own pages:
/// `Sec-Fetch-Site` must say `same-origin`, or else `Origin` must be this host.
pub(super) fn same_origin(headers: &HeaderMap) -> Result<(), PageError> {
    if let Some(site) = headers.get("sec-fetch-site") {
        return if site == "same-origin" {
            Ok(())
        } else {
            Err(PageError::CrossSite)
        };
    }
    let origin = headers.get(ORIGIN).and_then(|v| v.to_str().ok());
    let host = headers.get(HOST).and_then(|v| v.to_str().ok());
    match (origin, host) {
        (Some(origin), Some(host)) => {
            let bare = origin
                .strip_prefix("http://")
                .or_else(|| origin.strip_prefix("https://"));
            if bare == Some(host) {
                Ok(())
            } else {
                Err(PageError::CrossSite)
            }
        }
        _ => Err(PageError::CrossSite),
    }
}

/// A signed-in console user (an enabled user with a live console session).
#[derive(Debug, Clone)]
pub(super) struct ConsoleUser(pub(super) UserRecord);

impl FromRequestParts<AppState> for ConsoleUser {
    type Rejection = PageError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, PageError> {
        signed_in_user(state, &parts.headers)
            .await?
            .map(Self)
            .ok_or(PageError::SignIn)
    }
}

/// The projects `user` may switch to: all for organisation administrators, else theirs.
pub(super) async fn projects_of(
    state: &AppState,
    user: &UserRecord,
) -> Result<Vec<ProjectRecord>, PageError> {
    if user.admin {
        return Ok(state.store.projects().await?);
    }
    let memberships = state.store.memberships(&user.id).await?;
    Ok(memberships.into_iter().map(|(p, _)| p).collect())
}

/// A signed-in user with a role in the route's project, exactly as the API's [`InProject`]
/// decides it; anybody else gets the 404 page.
#[derive(Debug, Clone)]
pub(super) struct ConsoleProject {
    /// The user, project and role.
    pub(super) caller: InProject,
    /// The header of the page.
    pub(super) frame: Frame,
}

impl ConsoleProject {
    /// The frame with `tab` marked.
    pub(super) fn frame(&self, tab: &'static str) -> Frame {
        Frame {
            tab,
            ..self.frame.clone()
        }
    }
}

impl FromRequestParts<AppState> for ConsoleProject {
    type Rejection = PageError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, PageError> {
        let ConsoleUser(user) = ConsoleUser::from_request_parts(parts, state).await?;
        let ProjectScope(project) = ProjectScope::from_request_parts(parts, state).await?;
        let role = role_in(state, &project, &user)
            .await?
            .ok_or(PageError::NotFound)?;
        let caller = InProject {
            user,
            project,
            role,
        };
        let frame = Frame {
            projects: projects_of(state, &caller.user).await?,
            project: Some(caller.project.name.clone()),
            user: caller.user.clone(),
            tab: "",
            refresh: None,
            members: caller.reads_every_session(),
        };
        Ok(Self { caller, frame })
    }
}

/// Query of `/`.
#[derive(Debug, Deserialize)]
pub(super) struct HomeQuery {
    project: Option<String>,
}

/// `GET /`: the sessions page of the chosen project, else of the user's first.
pub(super) async fn home(
    State(state): State<AppState>,
    ConsoleUser(user): ConsoleUser,
    Query(query): Query<HomeQuery>,
) -> Result<Response, PageError> {
    let projects = projects_of(&state, &user).await?;
    let chosen = query
        .project
        .filter(|name| projects.iter().any(|p| &p.name == name))
        .or_else(|| projects.first().map(|p| p.name.clone()));
    match chosen {
        Some(name) => Ok(Redirect::to(&project_path(&name, "sessions")).into_response()),
        None => Ok(answer(bare(
            "No project",
            html! {
                h1 { "No project yet" }
                div.card { p { "You are not a member of any project. Ask a project administrator to add you: "
                    code { "kms-pam project member add PROJECT " (user.name) " --role member" } } }
            },
        ))),
    }
}

/// `/p/{project}/{page}` with the project name percent-encoded.
pub(super) fn project_path(project: &str, page: &str) -> String {
    format!("/p/{}/{page}", segment(project))
}

/// One path segment, percent-encoded.
pub(super) fn segment(text: &str) -> String {
    percent_encoding::utf8_percent_encode(text, SEGMENT).to_string()
}

/// What a path segment encodes: all but letters, digits and the unreserved `-`, `_`, `~` (so a
/// session id reads as itself). `.` stays encoded: a name `..` must not climb a level.
const SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'~');

/// The sign-in page with its single sign-on buttons, with `error` shown above the form.
pub(super) async fn login_page(state: &AppState, error: Option<&str>) -> maud::Markup {
    // Without the list (the store is down) the page still offers tokens and links.
    let providers = match state.store.sso_providers().await {
        Ok(providers) => providers.into_iter().map(|p| p.name).collect(),
        Err(_) => Vec::new(),
    };
    login_page_with(error, &providers)
}

/// The sign-in page offering `providers`.
pub(super) fn login_page_with(error: Option<&str>, providers: &[String]) -> maud::Markup {
    bare(
        "Sign in",
        html! {
            h1 { "Sign in to kms-pam" }
            @if let Some(error) = error { p.field-error role="alert" { (error) } }
            @if !providers.is_empty() {
                div.card.sso {
                    @for name in providers {
                        p { a.button.sso href={"/login/sso/" (segment(name))} data-provider=(name) { "Sign in with " (name) } }
                    }
                }
            }
            div.card {
                p { "Run " code { "kms-pam console" } " in a terminal where you are logged in: it opens a one-time sign-in link. Or paste your API token:" }
                form.stack method="post" action="/login" {
                    label { "API token" input type="password" name="token" autocomplete="off" required; }
                    div { button type="submit" { "Sign in" } }
                }
            }
        },
    )
}

/// `GET /login`.
pub(super) async fn login_form(State(state): State<AppState>) -> Response {
    answer(login_page(&state, None).await)
}

/// `/login` form.
#[derive(Deserialize)]
pub(super) struct TokenForm {
    token: String,
}

impl std::fmt::Debug for TokenForm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenForm { .. }")
    }
}

/// `POST /login`: signs in with an API token. A wrong one costs its source from the refusal
/// budget like a wrong API token (`edge/refusals.rs`); an empty form guesses nothing.
pub(super) async fn login_token(
    State(state): State<AppState>,
    attempt: Attempt,
    headers: HeaderMap,
    uri: http::Uri,
    Form(form): Form<TokenForm>,
) -> Result<Response, PageError> {
    same_origin(&headers)?;
    let token = Secret::new(form.token.trim());
    if !token.expose().is_empty() {
        attempt.record("console sign-in token");
    }
    let user = match state
        .store
        .user_by_token(&TokenHash::of(token.expose()))
        .await
    {
        Ok(user) if !user.disabled => user,
        Ok(_) | Err(StoreError::NotFound(_)) => {
            let page = login_page(
                &state,
                Some("That token is not a valid, enabled user token."),
            );
            return Ok((StatusCode::UNAUTHORIZED, answer(page.await)).into_response());
        }
        Err(e) => return Err(e.into()),
    };
    start_session(&state, &user, over_https(&headers, &uri)).await
}

/// The user of the browser's live console session, if it has one.
pub(super) async fn signed_in_user(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<Option<UserRecord>, PageError> {
    let Some(value) = cookie_value(headers) else {
        return Ok(None);
    };
    let now = now();
    match state
        .store
        .console_session_user(&TokenHash::of(value), now - IDLE_LIMIT, now)
        .await
    {
        Ok(user) if !user.disabled => Ok(Some(user)),
        Ok(_) | Err(StoreError::NotFound(_)) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Starts a console session for `user` and sends them home with its cookie.
pub(super) async fn start_session(
    state: &AppState,
    user: &UserRecord,
    secure: bool,
) -> Result<Response, PageError> {
    let mut response = Redirect::to("/").into_response();
    let cookie = session_cookie(state, user, secure).await?;
    response.headers_mut().insert(SET_COOKIE, cookie);
    Ok(response)
}

/// A new console session for `user`: the `Set-Cookie` value that carries it.
pub(super) async fn session_cookie(
    state: &AppState,
    user: &UserRecord,
    secure: bool,
) -> Result<HeaderValue, PageError> {
    let value = Secret::random(32).map_err(|e| ApiError::unavailable(e.to_string()))?;
    state
        .store
        .create_console_session(&TokenHash::of(value.expose()), &user.id, now())
        .await?;
    tracing::info!(user = %user.name, "console sign-in");
    let cookie = format!(
        "{COOKIE_NAME}={}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{}",
        value.expose(),
        IDLE_LIMIT.as_secs(),
        if secure { "; Secure" } else { "" }
    );
    Ok(HeaderValue::from_str(&cookie).map_err(|e| ApiError::internal(&e))?)
}

/// `POST /logout`: ends the console session.
pub(super) async fn logout(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, PageError> {
    same_origin(&headers)?;
    if let Some(value) = cookie_value(&headers) {
        state
            .store
            .delete_console_session(&TokenHash::of(value))
            .await?;
    }
    let mut response = Redirect::to("/login").into_response();
    response.headers_mut().insert(
        SET_COOKIE,
        HeaderValue::from_static("kms_console=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"),
    );
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::segment;

    #[test]
    fn a_path_segment_keeps_unreserved_characters_and_encodes_the_rest() {
        // A session id reads as itself in its URL (hyphens were %2D).
        assert_eq!(
            segment("6f1c2d3e-0a1b-4c5d-8e9f-001122334455"),
            "6f1c2d3e-0a1b-4c5d-8e9f-001122334455"
        );
        assert_eq!(segment("web_0~a"), "web_0~a");
        // Dots, slashes, spaces and the rest stay encoded: `..` cannot climb a level.
        assert_eq!(segment(".."), "%2E%2E");
        assert_eq!(segment("a/b c?d#e"), "a%2Fb%20c%3Fd%23e");
        assert_eq!(segment("é"), "%C3%A9");
    }
}
