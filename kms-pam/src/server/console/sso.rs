//! Single sign-on in the console (docs/sso.md): "Sign in with NAME" starts the authorization
//! code flow, the provider sends the browser back to `/login/sso/callback`, and a finished
//! sign-in starts a console session — or, for a sign-in the CLI began, hands the CLI's loopback
//! listener a one-time code. Organisation administrators see the providers at `/sso` (never a
//! client secret). A failed sign-in creates nothing and says why on the sign-in page.

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use http::header::SET_COOKIE;
use http::{HeaderMap, StatusCode};
use maud::{html, Markup, DOCTYPE};
use serde::Deserialize;

use super::page::{answer, kms_url, layout, when, Frame, PageError};
use super::signin::{
    cookie_named, login_page, over_https, projects_of, session_cookie, ConsoleUser,
};
use crate::server::edge::auth::AdminUser;
use crate::server::edge::state::AppState;
use crate::server::sso::credentials::exchange_code;
use crate::server::sso::signin::{abandon, begin, finish, CliLoopback};
use crate::server::sso::SsoError;

/// Query of `/login/sso/{provider}`: a sign-in the CLI began names its loopback port and its
/// PKCE challenge.
#[derive(Debug, Deserialize)]
pub(super) struct StartQuery {
    cli_port: Option<u16>,
    cli_challenge: Option<String>,
}

/// Query of `/login/sso/callback`.
#[derive(Deserialize)]
pub(super) struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

impl std::fmt::Debug for CallbackQuery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallbackQuery")
            .field("error", &self.error)
            .finish_non_exhaustive()
    }
}

/// The cookie binding a sign-in to the browser that began it: sent back on the provider's
/// redirect to the callback, a top-level GET from another site, hence `SameSite=Lax`.
const BROWSER_COOKIE: &str = "kms_sso";

/// The browser's sign-in cookie value, if it has a well-formed one.
fn browser_cookie(headers: &HeaderMap) -> Option<&str> {
    cookie_named(headers, BROWSER_COOKIE).filter(|value| {
        value.len() == 43
            && value
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    })
}

/// KMS's callback as this browser reaches KMS (register it at the provider).
fn callback_url(state: &AppState, headers: &HeaderMap) -> String {
    format!("{}/login/sso/callback", kms_url(headers, state.https))
}

/// The sign-in page again with what went wrong (nothing was created).
async fn failed(state: &AppState, error: &SsoError) -> Response {
    let status = match error {
        SsoError::Down(_) | SsoError::Provider(_) => StatusCode::BAD_GATEWAY,
        SsoError::Denied(_) => StatusCode::FORBIDDEN,
        SsoError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        _ => StatusCode::BAD_REQUEST,
    };
    tracing::info!(%error, "single sign-on refused");
    let message = format!("Single sign-on failed: {error}");
    (status, answer(login_page(state, Some(&message)).await)).into_response()
}

/// `GET /login/sso/{provider}`: off to the provider.
pub(super) async fn start(
    State(state): State<AppState>,
    Path(provider): Path<String>,
    Query(query): Query<StartQuery>,
    headers: HeaderMap,
) -> Response {
    let cli = match (query.cli_port, query.cli_challenge) {
        (Some(port), Some(challenge))
            if port != 0
                && challenge.len() == 43
                && challenge
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') =>
        {
            Some(CliLoopback { port, challenge })
        }
        (None, None) => None,
        _ => {
            let error = SsoError::Invalid(
                "a CLI sign-in needs both cli_port and a 43-character S256 cli_challenge".into(),
            );
            return failed(&state, &error).await;
        }
    };
    // The browser keeps one sign-in cookie; sign-ins it begins are bound to it.
    let browser = match browser_cookie(&headers) {
        Some(value) => crate::secret::Secret::new(value),
        None => match crate::secret::Secret::random(32) {
            Ok(value) => value,
            Err(e) => return failed(&state, &SsoError::Internal(e.to_string())).await,
        },
    };
    let redirect = callback_url(&state, &headers);
    match begin(&state, &provider, &redirect, cli, browser.expose()).await {
        Ok(url) => {
            let secure = if redirect.starts_with("https://") {
                "; Secure"
            } else {
                ""
            };
            let cookie = format!(
                "{BROWSER_COOKIE}={}; Path=/login/sso; HttpOnly; SameSite=Lax; Max-Age={}{secure}",
                browser.expose(),
                crate::server::sso::LOGIN_TTL.as_secs()
            );
            let mut response = Redirect::to(&url).into_response();
            match http::HeaderValue::from_str(&cookie) {
                Ok(value) => {
                    response.headers_mut().insert(SET_COOKIE, value);
                    response
                }
                Err(e) => failed(&state, &SsoError::Internal(e.to_string())).await,
            }
        }
        Err(e) => failed(&state, &e).await,
    }
}

/// `GET /login/sso/callback`: the provider's answer.
pub(super) async fn callback(
    State(state): State<AppState>,
    Query(query): Query<CallbackQuery>,
    headers: HeaderMap,
    uri: http::Uri,
) -> Result<Response, PageError> {
    if let Some(error) = query.error {
        // The provider refused (the person cancelled, or it refuses them); the state, if any,
        // is spent so it cannot be finished later.
        if let Some(key) = &query.state {
            if let Err(e) = abandon(&state, key).await {
                tracing::warn!(error = %e, "a refused sign-in's state could not be spent");
            }
        }
        let error = SsoError::Refused {
            error,
            description: query.error_description.unwrap_or_default(),
        };
        return Ok(failed(&state, &error).await);
    }
    let (Some(code), Some(key)) = (query.code, query.state) else {
        let error = SsoError::Invalid("the provider's answer lacks a code or a state".into());
        return Ok(failed(&state, &error).await);
    };
    let signed_in = match finish(&state, &key, &code, browser_cookie(&headers)).await {
        Ok(signed_in) => signed_in,
        Err(e) => return Ok(failed(&state, &e).await),
    };
    if let Some(cli) = &signed_in.cli {
        let code = match exchange_code(&state, &signed_in, cli).await {
            Ok(code) => code,
            Err(e) => return Ok(failed(&state, &e).await),
        };
        return Ok(Redirect::to(&cli.redirect(code.expose())).into_response());
    }
    let cookie = session_cookie(&state, &signed_in.user, over_https(&headers, &uri)).await?;
    // The cookie is SameSite=Strict, and this request came from the provider's site: a redirect
    // would carry that cross-site origin on, and the browser would not send the cookie. A page
    // of this site moves on to the console instead.
    let page = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta http-equiv="refresh" content="0;url=/";
                title { "Signed in · kms-pam" }
                link rel="stylesheet" href="/assets/console.css";
            }
            body { main { p { "Signed in as " (signed_in.user.name) ". " a href="/" { "Continue" } } } }
        }
    };
    let mut response = answer(page);
    response.headers_mut().insert(SET_COOKIE, cookie);
    Ok(response)
}

/// `GET /sso`: the providers, for organisation administrators (404 for anybody else).
pub(super) async fn providers(
    State(state): State<AppState>,
    ConsoleUser(user): ConsoleUser,
    headers: HeaderMap,
) -> Result<Response, PageError> {
    let AdminUser(user) = AdminUser::of(user).map_err(|_| PageError::NotFound)?;
    let providers = state.store.sso_providers().await?;
    let frame = Frame {
        projects: projects_of(&state, &user).await?,
        project: None,
        members: user.admin,
        user,
        tab: "sso",
        refresh: None,
    };
    let body: Markup = html! {
        h1 { "Single sign-on" }
        div.card {
            p { "Register this callback URL at each provider: " code { (callback_url(&state, &headers)) } }
        }
        @if providers.is_empty() {
            div.card.empty { p { "No provider yet. " code { "kms-pam sso provider create NAME --issuer URL --client-id ID --client-secret-file FILE" } } }
        } @else {
            div.scroll { table {
                thead { tr { th { "Name" } th { "Issuer" } th { "Client id" } th { "Scopes" } th { "Groups claim" } th { "Group rules" } th { "New users" } th { "CLI credential" } th { "Since" } } }
                tbody { @for p in &providers { tr {
                    td { (p.name) }
                    td.mono { (p.issuer) }
                    td.mono { (p.client_id) }
                    td.mono { (p.settings.scopes.join(" ")) }
                    td.mono { (p.settings.groups_claim) }
                    td.mono { @if p.settings.rules.is_empty() { "none (roles managed in KMS)" } @else {
                        @for rule in &p.settings.rules { (rule.to_string()) br; }
                    } }
                    td { @if p.settings.require_existing_users { "must exist first" } @else { "created at first sign-in" } }
                    td { (crate::time::format_duration(std::time::Duration::from_secs(p.settings.credential_ttl_secs))) }
                    td { (when(p.created_at)) }
                } } }
            } }
        }
    };
    Ok(answer(layout(&frame, "Single sign-on", body)))
}
