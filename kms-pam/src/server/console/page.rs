//! The layout every page shares, the small pieces tables repeat, and the one place failures
//! become pages.

use std::time::{Duration, SystemTime};

use axum::response::{Html, IntoResponse, Redirect, Response};
use http::StatusCode;
use maud::{html, Markup, DOCTYPE};

use crate::server::edge::error::ApiError;
use crate::server::store::{ProjectRecord, UserRecord};
use crate::time::{format_duration, format_rfc3339};

/// Who is looking, and where: what the header needs.
#[derive(Debug, Clone)]
pub(super) struct Frame {
    /// The signed-in user.
    pub(super) user: UserRecord,
    /// The projects they may switch to, by name.
    pub(super) projects: Vec<ProjectRecord>,
    /// The project the page is in, if any.
    pub(super) project: Option<String>,
    /// The nav entry to mark (`sessions`, `resources`, `members`, `gateways`).
    pub(super) tab: &'static str,
    /// Reload the page every so many seconds (live sessions), if set.
    pub(super) refresh: Option<u32>,
    /// Whether the user may read the project's members (administrators and auditors, as the
    /// API allows): the Members tab shows only then.
    pub(super) members: bool,
}

/// A whole page: header with project switcher and nav, then `body`.
pub(super) fn layout(frame: &Frame, title: &str, body: Markup) -> Markup {
    let project = frame.project.as_deref().unwrap_or("default");
    let tab = |name: &str| if frame.tab == name { "current" } else { "" };
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · kms-pam" }
                link rel="stylesheet" href="/assets/console.css";
                script src="/assets/console.js" defer {}
            }
            body data-refresh=[frame.refresh] {
                header.top {
                    a.brand href="/" { "kms-pam" }
                    form method="get" action="/" {
                        label {
                            span.hide-narrow { "Project " }
                            select name="project" aria-label="Project" {
                                @for p in &frame.projects {
                                    option value=(p.name) selected[p.name == project] { (p.name) }
                                }
                            }
                        }
                        " "
                        button.secondary type="submit" { "Go" }
                    }
                    nav {
                        a class=(tab("sessions")) href={"/p/" (project) "/sessions"} { "Sessions" }
                        a class=(tab("resources")) href={"/p/" (project) "/resources"} { "Resources" }
                        @if frame.members {
                            a class=(tab("members")) href={"/p/" (project) "/members"} { "Members" }
                        }
                        // The gateways page is the organisation admins' (others get a 404).
                        @if frame.user.admin {
                            a class=(tab("gateways")) href="/gateways" { "Gateways" }
                            a class=(tab("sso")) href="/sso" { "Sign-in" }
                        }
                    }
                    div.who {
                        span { (frame.user.name) @if frame.user.admin { " (org admin)" } }
                        form method="post" action="/logout" {
                            button.secondary type="submit" { "Sign out" }
                        }
                    }
                }
                main { (body) }
            }
        }
    }
}

/// A page outside the signed-in layout (sign-in, errors).
pub(super) fn bare(title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · kms-pam" }
                link rel="stylesheet" href="/assets/console.css";
            }
            body {
                header.top { a.brand href="/" { "kms-pam" } }
                main { (body) }
            }
        }
    }
}

/// Why a page could not be shown.
#[derive(Debug)]
pub(super) enum PageError {
    /// Not signed in (or signed out, expired, disabled): go to `/login`.
    SignIn,
    /// Does not exist, or the user may not see it.
    NotFound,
    /// A form posted from another site.
    CrossSite,
    /// What the API would have answered.
    Api(ApiError),
}

impl From<ApiError> for PageError {
    fn from(e: ApiError) -> Self {
        match e.status() {
            StatusCode::UNAUTHORIZED => Self::SignIn,
            StatusCode::NOT_FOUND => Self::NotFound,
            _ => Self::Api(e),
        }
    }
}

impl From<crate::server::store::StoreError> for PageError {
    fn from(e: crate::server::store::StoreError) -> Self {
        ApiError::from(e).into()
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let (status, title, message) = match self {
            Self::SignIn => return Redirect::to("/login").into_response(),
            Self::NotFound => (
                StatusCode::NOT_FOUND,
                "Not found",
                "There is nothing here, or nothing you may see.".to_owned(),
            ),
            Self::CrossSite => (
                StatusCode::FORBIDDEN,
                "Refused",
                "This form was not sent from the console itself.".to_owned(),
            ),
            Self::Api(e) => {
                let title = match e.status() {
                    StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => "Not allowed",
                    StatusCode::NOT_FOUND => "Not found",
                    StatusCode::CONFLICT => "Conflict",
                    s if s.is_client_error() => "Refused",
                    _ => "Something went wrong",
                };
                (e.status(), title, e.message().to_owned())
            }
        };
        let body = html! {
            h1 { (status.as_u16()) " · " (title) }
            div.card { p { (message) } p { a href="/" { "Back to the console" } } }
        };
        (status, Html(bare(title, body).into_string())).into_response()
    }
}

/// A rendered page as an answer.
pub(super) fn answer(markup: Markup) -> Response {
    Html(markup.into_string()).into_response()
}

/// `2025-01-02 15:04:05 UTC`.
pub(super) fn when(t: SystemTime) -> String {
    let text = format_rfc3339(t);
    format!("{} UTC", text.trim_end_matches('Z').replacen('T', " ", 1))
}

/// The time between two instants, for people (`1h 5m`).
pub(super) fn span(from: SystemTime, to: SystemTime) -> String {
    let secs = to.duration_since(from).unwrap_or_default().as_secs();
    format_duration(Duration::from_secs(secs))
}

/// A coloured status label.
pub(super) fn badge(class: &str, text: &str) -> Markup {
    html! { span class={"badge " (class)} { (text) } }
}

/// The KMS URL as the browser reached it (what the CLI should use too), followed by
/// ` --insecure-http` when that is plain HTTP to another host than this machine's loopback: the
/// CLI and the gateway refuse such a URL unless told so, and the browser already speaks plain
/// HTTP to it. `https`: KMS serves HTTPS itself.
pub(super) fn kms_url_flags(headers: &http::HeaderMap, https: bool) -> String {
    let url = kms_url(headers, https);
    let loopback = url::Url::parse(&url)
        .ok()
        .and_then(|u| u.host().map(|h| h.to_owned()))
        .is_some_and(|host| match host {
            url::Host::Domain(name) => name == "localhost" || name.ends_with(".localhost"),
            url::Host::Ipv4(ip) => ip.is_loopback(),
            url::Host::Ipv6(ip) => ip.is_loopback(),
        });
    if url.starts_with("http://") && !loopback {
        format!("{url} --insecure-http")
    } else {
        url
    }
}

/// The KMS URL as the browser reached it.
pub(super) fn kms_url(headers: &http::HeaderMap, https: bool) -> String {
    let host = headers
        .get(http::header::HOST)
        .and_then(|v| v.to_str().ok())
        .filter(|h| {
            h.chars()
                .all(|c| c.is_ascii_alphanumeric() || ".-:[]".contains(c))
        })
        .unwrap_or("localhost");
    let https = https
        || headers
            .get("x-forwarded-proto")
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"https"));
    format!("{}://{host}", if https { "https" } else { "http" })
}

#[cfg(test)]
mod tests {
    use super::kms_url_flags;

    fn headers(host: &str, proto: Option<&str>) -> http::HeaderMap {
        let mut headers = http::HeaderMap::new();
        headers.insert(http::header::HOST, host.parse().unwrap());
        if let Some(proto) = proto {
            headers.insert("x-forwarded-proto", proto.parse().unwrap());
        }
        headers
    }

    #[test]
    fn commands_for_plain_http_to_another_host_say_insecure_http() {
        // The CLI refuses plain HTTP to another host unless told: the command says so.
        assert_eq!(
            kms_url_flags(&headers("kms.corp:8443", None), false),
            "http://kms.corp:8443 --insecure-http"
        );
        for loopback in ["127.0.0.1:8443", "localhost:8443", "[::1]:8443"] {
            assert_eq!(
                kms_url_flags(&headers(loopback, None), false),
                format!("http://{loopback}")
            );
        }
        // KMS serving HTTPS itself, or behind a TLS-terminating proxy.
        assert_eq!(
            kms_url_flags(&headers("kms.corp:8443", None), true),
            "https://kms.corp:8443"
        );
        assert_eq!(
            kms_url_flags(&headers("kms.corp", Some("https")), false),
            "https://kms.corp"
        );
    }
}
