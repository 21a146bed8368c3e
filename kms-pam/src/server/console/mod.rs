//! The web console (docs/console.md): server-rendered pages on the API's listener.
//!
//! Pages are maud templates (escaping every interpolated string) with one stylesheet and one
//! script served from `/assets/`, under a strict Content-Security-Policy. Handlers are thin:
//! they take the signed-in user from the console cookie ([`signin::ConsoleUser`]) and then call
//! the same rights checks and store functions as the API handlers. Every failure becomes a page
//! in one place ([`page::PageError`]): what the user may not see is a 404 like what does not
//! exist.

mod accounts;
mod forms;
mod link;
mod org;
mod page;
mod resource_edit;
mod resources;
mod session_export;
mod session_page;
mod sessions;
mod signin;
mod sso;

use crate::server::edge::state::AppState;
use axum::extract::{Path, Request};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, REFERRER_POLICY, X_CONTENT_TYPE_OPTIONS,
    X_FRAME_OPTIONS,
};
use http::HeaderValue;

/// The policy every console answer carries: nothing inline, nothing from elsewhere.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; \
                   object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

const CSS: &str = include_str!("assets/console.css");
const JS: &str = include_str!("assets/console.js");

/// The console's routes, and `POST /v1/console/links` (the API call behind `kms-pam console`).
pub(crate) fn routes() -> Router<AppState> {
    let pages = Router::new()
        .route("/", get(signin::home))
        .route("/login", get(signin::login_form).post(signin::login_token))
        .route(
            "/login/link/{code}",
            get(link::login_link).post(link::confirm_login_link),
        )
        .route("/login/sso/callback", get(sso::callback))
        .route("/login/sso/{provider}", get(sso::start))
        .route("/sso", get(sso::providers))
        .route("/logout", post(signin::logout))
        .route("/assets/{file}", get(asset))
        .route("/gateways", get(org::gateways).post(org::create_gateway))
        .route("/gateways/{name}/revoke", post(org::revoke_gateway))
        .route("/p/{project}/sessions", get(sessions::list))
        .route("/p/{project}/sessions/{id}", get(session_page::show))
        .route(
            "/p/{project}/sessions/{id}/terminate",
            get(sessions::confirm_terminate).post(sessions::terminate),
        )
        .route(
            "/p/{project}/sessions/{id}/verify",
            get(session_page::verify),
        )
        .route(
            "/p/{project}/sessions/{id}/recordings/{n}",
            get(session_page::recording),
        )
        .route(
            "/p/{project}/resources",
            get(resources::list).post(resources::create),
        )
        .route("/p/{project}/resources/{name}", get(accounts::show))
        .route(
            "/p/{project}/resources/{name}/edit",
            get(resource_edit::edit_form).post(resource_edit::update),
        )
        .route(
            "/p/{project}/resources/{name}/accounts",
            post(accounts::create),
        )
        .route(
            "/p/{project}/resources/{name}/accounts/{account}",
            get(accounts::edit_form).post(accounts::update),
        )
        .route(
            "/p/{project}/members",
            get(org::members).post(org::set_member),
        )
        .route(
            "/p/{project}/members/{user}/remove",
            post(org::remove_member),
        )
        .layer(middleware::from_fn(security_headers));
    Router::new()
        .route("/v1/console/links", post(link::create_link))
        .merge(pages)
}

/// Adds the console's security headers to every page answer.
async fn security_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    headers.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers
        .entry(CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    response
}

/// `GET /assets/{file}`: the embedded stylesheet and script.
async fn asset(Path(file): Path<String>) -> Response {
    let (body, kind) = match file.as_str() {
        "console.css" => (CSS, "text/css; charset=utf-8"),
        "console.js" => (JS, "text/javascript; charset=utf-8"),
        _ => return page::PageError::NotFound.into_response(),
    };
    (
        [
            (CONTENT_TYPE, HeaderValue::from_static(kind)),
            (
                CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=3600"),
            ),
        ],
        body,
    )
        .into_response()
}
