//! One-time sign-in links: `kms-pam console` asks `POST /v1/console/links` for a code (single
//! use, valid [`LINK_TTL`], bound to the caller, stored hashed), and `/login/link/{code}` spends
//! it, after asking a browser that is signed in already whether to switch users.

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use http::{HeaderMap, StatusCode};
use maud::html;
use serde::Serialize;

use super::page::{answer, bare, PageError};
use super::signin::{login_page, over_https, same_origin, signed_in_user, start_session, LINK_TTL};
use crate::secret::Secret;
use crate::server::edge::auth::AnyUser;
use crate::server::edge::error::ApiError;
use crate::server::edge::refusals::Attempt;
use crate::server::edge::state::{now, AppState};
use crate::server::store::{StoreError, TokenHash, UserRecord};

/// `POST /v1/console/links` answer.
#[derive(Debug, Serialize)]
pub(super) struct CreatedLink {
    /// Path of the one-time sign-in link, relative to the KMS URL.
    path: String,
    /// Seconds it stays valid.
    expires_in_secs: u64,
}

/// `POST /v1/console/links`: a one-time sign-in code for the calling user.
pub(super) async fn create_link(
    State(state): State<AppState>,
    AnyUser(user): AnyUser,
) -> Result<(StatusCode, Json<CreatedLink>), ApiError> {
    let code = Secret::random(32).map_err(|e| ApiError::unavailable(e.to_string()))?;
    let now = now();
    state
        .store
        .create_console_link(&TokenHash::of(code.expose()), &user.id, now + LINK_TTL, now)
        .await?;
    tracing::info!(user = %user.name, "console sign-in link issued");
    Ok((
        StatusCode::CREATED,
        Json(CreatedLink {
            path: format!("/login/link/{}", code.expose()),
            expires_in_secs: LINK_TTL.as_secs(),
        }),
    ))
}

/// `GET /login/link/{code}`: spends a one-time code from `kms-pam console`. A wrong, used or
/// expired code costs its source from the refusal budget, like a wrong token.
///
/// A browser that is signed in already is asked first, and the code is kept until it confirms
/// (`POST`, from the console's own page): otherwise whoever sends a signed-in admin their own
/// link (in a chat, an `<img>`) would switch the admin's browser to their account, where what
/// the admin types next is theirs to read (login CSRF).
pub(super) async fn login_link(
    State(state): State<AppState>,
    attempt: Attempt,
    headers: HeaderMap,
    uri: http::Uri,
    Path(code): Path<String>,
) -> Result<Response, PageError> {
    // Only a code of the shape KMS issues is ever put in the confirmation's form target: the
    // path parameter is decoded, and `../` in it would aim the form at another console route.
    if is_link_code(&code) {
        if let Some(current) = signed_in_user(&state, &headers).await? {
            return Ok(answer(confirm_link_page(&current, &code)));
        }
    }
    spend_link(&state, attempt, &headers, &uri, &code).await
}

/// Whether `code` has the shape of a code KMS issues: 32 random bytes, base64url without padding.
fn is_link_code(code: &str) -> bool {
    code.len() == 43
        && code
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// `POST /login/link/{code}`: the confirmation asked for by [`login_link`].
pub(super) async fn confirm_login_link(
    State(state): State<AppState>,
    attempt: Attempt,
    headers: HeaderMap,
    uri: http::Uri,
    Path(code): Path<String>,
) -> Result<Response, PageError> {
    same_origin(&headers)?;
    spend_link(&state, attempt, &headers, &uri, &code).await
}

fn confirm_link_page(current: &UserRecord, code: &str) -> maud::Markup {
    bare(
        "Switch user?",
        html! {
            h1 { "Switch user?" }
            div.card {
                p { "This browser is signed in to kms-pam as " strong { (current.name) } "." }
                p { "The sign-in link you opened signs it in as the user who ran "
                    code { "kms-pam console" } " instead. Continue only if you ran it yourself." }
                form.stack method="post" action={"/login/link/" (code)} {
                    div { button type="submit" { "Sign in with this link" } }
                }
                p { a href="/" { "Stay signed in as " (current.name) } }
            }
        },
    )
}

/// Spends `code` and starts a console session for its user.
async fn spend_link(
    state: &AppState,
    attempt: Attempt,
    headers: &HeaderMap,
    uri: &http::Uri,
    code: &str,
) -> Result<Response, PageError> {
    attempt.record("console sign-in link");
    let user = match state
        .store
        .redeem_console_link(&TokenHash::of(code), now())
        .await
    {
        Ok(user) if !user.disabled => user,
        Ok(_) | Err(StoreError::NotFound(_)) => {
            let page = login_page(
                state,
                Some(
                    "This sign-in link was already used or has expired (links last 60 \
                         seconds). Run kms-pam console again.",
                ),
            );
            return Ok((StatusCode::UNAUTHORIZED, answer(page.await)).into_response());
        }
        Err(e) => return Err(e.into()),
    };
    start_session(state, &user, over_https(headers, uri)).await
}
