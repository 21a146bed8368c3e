//! The client itself: the replicas it calls, its token and project, and how one call is sent
//! (deadlines, failover to the next replica, the answer decoded or turned into an error). The
//! typed calls are the area handles' (`organisation.rs`, `project.rs`, `gateway.rs`).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, USER_AGENT};
use http::{HeaderValue, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use serde::de::DeserializeOwned;
use url::Url;

use super::error::{ConnectionFailure, KmsError};

use super::failover::{self, Replica, Replicas, Unanswered};
use crate::kms::api::ErrorBody;
use crate::net::http_client::{https_client, ClientSettings, HttpsClient};
use crate::secret::Secret;
use crate::tls::UpstreamTls;

/// How long to wait for the TCP connection to the KMS.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long an ordinary call may take, connection included.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);
/// The largest answer accepted; session histories are the biggest ones.
const MAX_ANSWER_BYTES: usize = 64 << 20;

type HttpClient = HttpsClient<Full<Bytes>>;

/// How a [`KmsClient`] reaches KMS: which CA verifies an `https://` KMS, and whether a plain
/// `http://` URL to another host than this machine is allowed (docs/operations.md).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct KmsClientOptions {
    /// How an `https://` KMS is verified (default: the system roots; a KMS with a private CA:
    /// `UpstreamTls::CaBundle`).
    pub tls: UpstreamTls,
    /// Allow `http://` URLs to other hosts (a lab network): API tokens, gateway tokens and
    /// service-account credentials then cross the network in clear. Loopback `http://` URLs
    /// are always allowed.
    pub insecure_http: bool,
}

impl KmsClientOptions {
    /// The defaults: HTTPS verified against the system roots, no plain HTTP to other hosts.
    pub fn new() -> Self {
        Self::default()
    }

    /// With `https://` KMS URLs verified as `tls` says.
    pub fn with_tls(mut self, tls: UpstreamTls) -> Self {
        self.tls = tls;
        self
    }

    /// With plain `http://` URLs to other hosts allowed (`--insecure-http`) or not.
    pub fn with_insecure_http(mut self, allow: bool) -> Self {
        self.insecure_http = allow;
        self
    }
}

/// A client of one KMS (or of several replicas of one KMS), optionally authenticated with an
/// API or gateway token.
///
/// Cheap to clone: clones share the connection pool and the replica in use.
#[derive(Clone)]
pub struct KmsClient {
    replicas: Arc<Replicas>,
    authorization: Option<HeaderValue>,
    /// The PAM project of project-scoped calls; `None`: the unprefixed routes (`default`).
    project: Option<Arc<str>>,
    http: HttpClient,
}

impl KmsClient {
    /// A client for the KMS at `base_url` (`https://`, or `http://` to this machine; optionally
    /// with a path prefix; or several replicas' URLs separated by commas), sending `token` as a
    /// bearer token when given. HTTPS is verified against the system roots. A plain `http://`
    /// URL to another host is refused ([`KmsError::PlainHttp`]; see
    /// [`KmsClient::with_options`]).
    pub fn new(base_url: &str, token: Option<Secret>) -> Result<Self, KmsError> {
        Self::with_tls(base_url, token, &UpstreamTls::SystemRoots)
    }

    /// Like [`KmsClient::new`], verifying an `https://` KMS as `tls` says (for a KMS with a
    /// private CA, `UpstreamTls::CaBundle`). Ignored for `http://` URLs.
    pub fn with_tls(
        base_url: &str,
        token: Option<Secret>,
        tls: &UpstreamTls,
    ) -> Result<Self, KmsError> {
        Self::with_options(
            base_url,
            token,
            &KmsClientOptions::new().with_tls(tls.clone()),
        )
    }

    /// A client for the KMS at `base_url` as `options` say (how an `https://` KMS is verified,
    /// whether plain `http://` to another host is allowed). A plain `http://` URL whose host is
    /// not this machine is refused ([`KmsError::PlainHttp`]) unless the options allow it:
    /// tokens would cross the network in clear. Nothing is sent before the check.
    pub fn with_options(
        base_url: &str,
        token: Option<Secret>,
        options: &KmsClientOptions,
    ) -> Result<Self, KmsError> {
        let replicas = Replicas::parse(base_url)?;
        if let (false, Some(url)) = (options.insecure_http, replicas.plain_http_remote()) {
            return Err(KmsError::PlainHttp {
                url: url.to_owned(),
            });
        }
        let authorization = token.map(|t| bearer(&t)).transpose()?;
        let http = http_client(replicas.any_https(), &options.tls)?;
        Ok(Self {
            replicas: Arc::new(replicas),
            authorization,
            project: None,
            http,
        })
    }

    /// The same KMS, with the calls of one PAM project (resources, accounts, grants, sessions)
    /// going to that project (`/v1/projects/{project}/…`).
    pub fn in_project(&self, project: &str) -> Self {
        Self {
            project: Some(project.into()),
            ..self.clone()
        }
    }

    /// The project this client's project-scoped calls go to; `None` means the unprefixed routes,
    /// which are the project `default`'s.
    pub fn project(&self) -> Option<&str> {
        self.project.as_deref()
    }

    /// The same KMS, authenticated with another token (e.g. the gateway token received at
    /// enrollment).
    pub fn with_token(&self, token: Secret) -> Result<Self, KmsError> {
        Ok(Self {
            authorization: Some(bearer(&token)?),
            ..self.clone()
        })
    }

    /// The KMS base URL, without a trailing slash; with several replicas, all of them,
    /// comma-separated (as given, which is what to pass on to another client or gateway).
    pub fn base_url(&self) -> &str {
        self.replicas.shown()
    }

    /// The base URL of the replica calls go to now (the one that answered last), without a
    /// trailing slash.
    pub fn current_url(&self) -> &str {
        &self.replicas.current().shown
    }

    /// `base/v1/[projects/PROJECT/]SEGMENTS?QUERY`, each segment percent-encoded; the project
    /// prefix only for project-scoped calls of a client [`in_project`](Self::in_project).
    fn url(
        &self,
        replica: &Replica,
        segments: &[&str],
        scoped: bool,
        query: &[(&str, String)],
    ) -> Url {
        let mut url = replica.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().push("v1");
            if let (true, Some(project)) = (scoped, &self.project) {
                path.push("projects").push(project);
            }
            path.extend(segments);
        }
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        url
    }

    /// Sends one request and decodes a JSON answer.
    pub(super) async fn call<T: DeserializeOwned>(&self, call: Call<'_>) -> Result<T, KmsError> {
        let what = call.describe();
        let (_, body) = self.send(call).await?;
        serde_json::from_slice(&body).map_err(|source| KmsError::UnexpectedAnswer { what, source })
    }

    /// Sends one request whose answer body does not matter (204, `{"status":"ok"}`).
    pub(super) async fn call_no_answer(&self, call: Call<'_>) -> Result<(), KmsError> {
        self.send(call).await.map(drop)
    }

    /// Sends one request, to the replicas in turn as the failover policy says (see `failover`);
    /// a non-2xx answer becomes an error.
    async fn send(&self, call: Call<'_>) -> Result<(StatusCode, Bytes), KmsError> {
        let what = call.describe();
        let mut failures = Vec::new();
        for (i, replica) in self.replicas.order() {
            match self.send_to(replica, &call, &what).await? {
                Ok((status, body)) => {
                    self.replicas.answered(i);
                    if status.is_success() {
                        return Ok((status, body));
                    }
                    return Err(api_error(status, &body, &what));
                }
                Err(unanswered) => {
                    self.replicas.failed(i);
                    let next = failover::try_next(&call.method, &unanswered);
                    failures.push((replica.shown.clone(), unanswered.error));
                    if !next {
                        return Err(failover::none_answered(failures));
                    }
                    tracing::debug!(kms = %replica.shown, %what, "KMS replica unreachable; trying the next");
                }
            }
        }
        Err(failover::none_answered(failures))
    }

    /// One attempt at one replica: the status and body it answered, or how it did not answer
    /// (the inner error). The outer error is for failures no other replica would change.
    async fn send_to(
        &self,
        replica: &Replica,
        call: &Call<'_>,
        what: &str,
    ) -> Result<Result<(StatusCode, Bytes), Unanswered>, KmsError> {
        let request = self.build(replica, call)?;
        let deadline = REQUEST_TIMEOUT + call.extra_wait;
        let exchange = async {
            let response = self.http.request(request).await.map_err(|e| Unanswered {
                never_sent: e.is_connect(),
                error: unreachable(replica, &e),
            })?;
            let status = response.status();
            let body = Limited::new(response.into_body(), MAX_ANSWER_BYTES)
                .collect()
                .await;
            Ok::<_, Unanswered>((status, body))
        };
        let (status, body) = match tokio::time::timeout(deadline, exchange).await {
            Ok(Ok(answered)) => answered,
            Ok(Err(unanswered)) => return Ok(Err(unanswered)),
            Err(_) => {
                return Ok(Err(Unanswered {
                    never_sent: false,
                    error: KmsError::Unreachable {
                        url: replica.shown.to_string(),
                        failure: ConnectionFailure::Timeout,
                        detail: format!("no answer to {what} within {}s", deadline.as_secs()),
                    },
                }))
            }
        };
        match body {
            Ok(body) => Ok(Ok((status, body.to_bytes()))),
            Err(e) => match e.downcast_ref::<hyper::Error>() {
                Some(hyper_error) => Ok(Err(Unanswered {
                    never_sent: false,
                    error: unreachable(replica, hyper_error),
                })),
                None => Err(KmsError::AnswerBody {
                    what: what.to_owned(),
                    source: e,
                }),
            },
        }
    }

    fn build(&self, replica: &Replica, call: &Call<'_>) -> Result<Request<Full<Bytes>>, KmsError> {
        let url = self.url(replica, call.segments, call.scoped, &call.query);
        let mut builder = Request::builder()
            .method(call.method.clone())
            .uri(url.as_str())
            .header(ACCEPT, "application/json")
            .header(USER_AGENT, concat!("kms-pam/", env!("CARGO_PKG_VERSION")));
        if let Some(authorization) = &self.authorization {
            builder = builder.header(AUTHORIZATION, authorization.clone());
        }
        let body = match &call.body {
            Some(json) => {
                builder = builder.header(CONTENT_TYPE, "application/json");
                Full::new(Bytes::from(json.clone()))
            }
            None => Full::new(Bytes::new()),
        };
        builder.body(body).map_err(|source| KmsError::Request {
            url: url.to_string(),
            source,
        })
    }
}

fn unreachable(replica: &Replica, error: &(dyn std::error::Error + 'static)) -> KmsError {
    let (failure, detail) = ConnectionFailure::of(error);
    KmsError::Unreachable {
        url: replica.shown.to_string(),
        failure,
        detail,
    }
}

impl fmt::Debug for KmsClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KmsClient")
            .field("base_url", &self.replicas.shown())
            .field("authenticated", &self.authorization.is_some())
            .field("project", &self.project)
            .finish_non_exhaustive()
    }
}

/// One API call: method, path under `/v1/`, query, JSON body.
pub(super) struct Call<'a> {
    method: Method,
    segments: &'a [&'a str],
    pub(super) query: Vec<(&'static str, String)>,
    body: Option<Vec<u8>>,
    /// How long the KMS may hold the answer on purpose (long polls).
    pub(super) extra_wait: Duration,
    /// Whether the path is one of a PAM project's (prefixed for a client in a project).
    scoped: bool,
}

impl<'a> Call<'a> {
    pub(super) fn new(method: Method, segments: &'a [&'a str]) -> Self {
        Self {
            method,
            segments,
            query: Vec::new(),
            body: None,
            extra_wait: Duration::ZERO,
            scoped: false,
        }
    }

    /// A call of the client's PAM project: resources, accounts, grants, sessions.
    pub(super) fn in_project(mut self) -> Self {
        self.scoped = true;
        self
    }

    pub(super) fn json(mut self, body: &impl serde::Serialize) -> Result<Self, KmsError> {
        let json = serde_json::to_vec(body).map_err(KmsError::Encode)?;
        self.body = Some(json);
        Ok(self)
    }

    /// `GET /v1/users`, for messages. Never includes the query (it may name users).
    fn describe(&self) -> String {
        format!("{} /v1/{}", self.method, self.segments.join("/"))
    }
}

fn bearer(token: &Secret) -> Result<HeaderValue, KmsError> {
    crate::net::bearer::header_value(token).map_err(|_| KmsError::InvalidToken)
}

fn http_client(https: bool, tls: &UpstreamTls) -> Result<HttpClient, KmsError> {
    let settings = ClientSettings {
        // An http:// KMS needs no roots; loading them could only fail.
        tls: https.then(|| tls.clone()),
        connect_timeout: CONNECT_TIMEOUT,
        ..ClientSettings::default()
    };
    https_client(&settings).map_err(KmsError::Tls)
}

/// A non-2xx answer: the API's error body when there is one, otherwise a protocol error that
/// says what came back (a proxy's HTML page, another service on that port).
fn api_error(status: StatusCode, body: &[u8], what: &str) -> KmsError {
    match serde_json::from_slice::<ErrorBody>(body) {
        Ok(ErrorBody { error }) => KmsError::Api {
            status: status.as_u16(),
            code: error.code,
            message: error.message,
        },
        Err(_) => KmsError::NotKms {
            what: what.to_owned(),
            status,
        },
    }
}
