//! Talking to an OpenID provider: its discovery document and keys (cached, the keys fetched
//! again when a token names one not seen yet, so a provider's key rotation is picked up), and
//! its token and device authorization endpoints (client authentication `client_secret_basic`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use jsonwebtoken::jwk::JwkSet;
use serde::de::DeserializeOwned;
use serde::Deserialize;

use super::SsoError;
use crate::net::http_client::{https_client, ClientSettings, ConnectionFailure, HttpsClient};
use crate::secret::Secret;

/// A provider's answer is read up to this size.
const MAX_ANSWER: usize = 1024 * 1024;
/// Each call to a provider gives up after this long.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// The discovery document and keys are fetched again after this long.
const CACHE_FOR: Duration = Duration::from_secs(600);
/// A token naming an unknown key fetches the keys again at most this often.
const REFETCH_KEYS_AFTER: Duration = Duration::from_secs(5);

/// What KMS reads of a discovery document.
#[derive(Clone, Debug, Deserialize)]
pub(crate) struct Discovery {
    /// Must equal the configured issuer exactly.
    pub(crate) issuer: String,
    /// Where browsers are sent.
    pub(crate) authorization_endpoint: String,
    /// Where codes and refresh tokens are exchanged.
    pub(crate) token_endpoint: String,
    /// The signing keys.
    pub(crate) jwks_uri: String,
    /// The device authorization grant's endpoint, if the provider has one.
    #[serde(default)]
    pub(crate) device_authorization_endpoint: Option<String>,
}

/// A token endpoint's answer.
#[derive(Debug, Deserialize)]
pub(crate) struct TokenAnswer {
    /// The ID token (present for `openid` requests).
    #[serde(default)]
    pub(crate) id_token: Option<String>,
    /// A refresh token, if the provider issued one.
    #[serde(default)]
    pub(crate) refresh_token: Option<String>,
}

/// A device authorization endpoint's answer (RFC 8628).
#[derive(Debug, Deserialize)]
pub(crate) struct DeviceAnswer {
    pub(crate) device_code: String,
    pub(crate) user_code: String,
    pub(crate) verification_uri: String,
    #[serde(default)]
    pub(crate) verification_uri_complete: Option<String>,
    pub(crate) expires_in: u64,
    #[serde(default)]
    pub(crate) interval: Option<u64>,
}

/// An OAuth error answer (`{"error": "invalid_grant", ...}`).
#[derive(Debug, Deserialize)]
struct OAuthError {
    error: String,
    #[serde(default)]
    error_description: Option<String>,
}

struct Cached {
    discovery: Arc<Discovery>,
    keys: Arc<JwkSet>,
    fetched: Instant,
    keys_fetched: Instant,
}

/// The client KMS talks to providers with, and what it remembers of them.
pub(crate) struct Providers {
    client: HttpsClient<Full<Bytes>>,
    cache: Mutex<HashMap<String, Cached>>,
}

impl std::fmt::Debug for Providers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Providers").finish_non_exhaustive()
    }
}

impl Providers {
    /// A client verifying providers' HTTPS against the system roots.
    pub(crate) fn new() -> Result<Self, SsoError> {
        let client = https_client(&ClientSettings::default())
            .map_err(|e| SsoError::Internal(format!("HTTPS client for providers: {e}")))?;
        Ok(Self {
            client,
            cache: Mutex::new(HashMap::new()),
        })
    }

    /// The issuer's discovery document and keys, from the cache while fresh.
    pub(crate) async fn metadata(
        &self,
        issuer: &str,
    ) -> Result<(Arc<Discovery>, Arc<JwkSet>), SsoError> {
        if let Some(found) = self.cached(issuer, |c| c.fetched.elapsed() < CACHE_FOR) {
            return Ok(found);
        }
        let discovery = self.discover(issuer).await?;
        let keys: JwkSet = self.get_json(issuer, &discovery.jwks_uri).await?;
        let (discovery, keys) = (Arc::new(discovery), Arc::new(keys));
        self.remember(issuer, &discovery, &keys);
        Ok((discovery, keys))
    }

    /// The discovery document fetched now, whatever the cache holds: a sign-in starts only when
    /// the provider answers (a provider that is down is said so on KMS's page, not found by the
    /// browser). The keys are fetched too only when the cache has none fresh for that document.
    pub(crate) async fn metadata_now(
        &self,
        issuer: &str,
    ) -> Result<(Arc<Discovery>, Arc<JwkSet>), SsoError> {
        let discovery = Arc::new(self.discover(issuer).await?);
        let cached = self.cached(issuer, |c| {
            c.fetched.elapsed() < CACHE_FOR && c.discovery.jwks_uri == discovery.jwks_uri
        });
        let keys = match cached {
            Some((_, keys)) => keys,
            None => Arc::new(self.get_json(issuer, &discovery.jwks_uri).await?),
        };
        self.remember(issuer, &discovery, &keys);
        Ok((discovery, keys))
    }

    /// The issuer's discovery document, fetched, naming the issuer exactly as configured.
    async fn discover(&self, issuer: &str) -> Result<Discovery, SsoError> {
        let url = format!(
            "{}/.well-known/openid-configuration",
            issuer.trim_end_matches('/')
        );
        let discovery: Discovery = self.get_json(issuer, &url).await?;
        if discovery.issuer != issuer {
            return Err(SsoError::Provider(format!(
                "the discovery document of {issuer} names another issuer ({}); the issuer must \
                 be configured exactly as the provider spells it",
                discovery.issuer
            )));
        }
        Ok(discovery)
    }

    /// The keys again, fetched anew (a token named a key the cached set lacks), unless they were
    /// fetched moments ago.
    pub(crate) async fn fresh_keys(&self, issuer: &str) -> Result<Arc<JwkSet>, SsoError> {
        if let Some((_, keys)) =
            self.cached(issuer, |c| c.keys_fetched.elapsed() < REFETCH_KEYS_AFTER)
        {
            return Ok(keys);
        }
        let (discovery, _) = self.metadata(issuer).await?;
        let keys: Arc<JwkSet> = Arc::new(self.get_json(issuer, &discovery.jwks_uri).await?);
        self.remember(issuer, &discovery, &keys);
        Ok(keys)
    }

    fn cached(
        &self,
        issuer: &str,
        fresh: impl Fn(&Cached) -> bool,
    ) -> Option<(Arc<Discovery>, Arc<JwkSet>)> {
        let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        cache
            .get(issuer)
            .filter(|c| fresh(c))
            .map(|c| (c.discovery.clone(), c.keys.clone()))
    }

    fn remember(&self, issuer: &str, discovery: &Arc<Discovery>, keys: &Arc<JwkSet>) {
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        let fetched = match cache.get(issuer) {
            Some(c) if Arc::ptr_eq(&c.discovery, discovery) => c.fetched,
            _ => now,
        };
        // Keys kept from the cache keep the time they were fetched.
        let keys_fetched = match cache.get(issuer) {
            Some(c) if Arc::ptr_eq(&c.keys, keys) => c.keys_fetched,
            _ => now,
        };
        cache.insert(
            issuer.to_owned(),
            Cached {
                discovery: discovery.clone(),
                keys: keys.clone(),
                fetched,
                keys_fetched,
            },
        );
    }

    /// Posts `form` to the token endpoint with the client's credentials.
    pub(crate) async fn token(
        &self,
        issuer: &str,
        client: (&str, &Secret),
        form: &[(&str, &str)],
    ) -> Result<TokenAnswer, SsoError> {
        let (discovery, _) = self.metadata(issuer).await?;
        self.post_form(issuer, &discovery.token_endpoint, client, form)
            .await
    }

    /// Starts a device authorization grant.
    pub(crate) async fn device(
        &self,
        issuer: &str,
        client: (&str, &Secret),
        scopes: &str,
    ) -> Result<DeviceAnswer, SsoError> {
        let (discovery, _) = self.metadata(issuer).await?;
        let endpoint = discovery
            .device_authorization_endpoint
            .as_deref()
            .ok_or_else(|| {
                SsoError::Invalid(
                    "this provider offers no device authorization grant; sign in with a browser \
                 (kms-pam login --sso without --no-browser)"
                        .to_owned(),
                )
            })?;
        self.post_form(issuer, endpoint, client, &[("scope", scopes)])
            .await
    }

    async fn get_json<T: DeserializeOwned>(&self, issuer: &str, url: &str) -> Result<T, SsoError> {
        let request = http::Request::get(url)
            .header(http::header::ACCEPT, "application/json")
            .body(Full::new(Bytes::new()))
            .map_err(|e| SsoError::Provider(format!("{issuer}: bad URL {url}: {e}")))?;
        let (status, body) = self.call(issuer, request).await?;
        if !status.is_success() {
            return Err(SsoError::Provider(format!(
                "{issuer}: {url} answered {status}"
            )));
        }
        serde_json::from_slice(&body).map_err(|e| {
            SsoError::Provider(format!("{issuer}: {url} answered unreadable JSON: {e}"))
        })
    }

    async fn post_form<T: DeserializeOwned>(
        &self,
        issuer: &str,
        url: &str,
        (client_id, secret): (&str, &Secret),
        form: &[(&str, &str)],
    ) -> Result<T, SsoError> {
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form)
            .finish();
        // RFC 6749 §2.3.1: both parts form-encoded before the Basic encoding.
        let encode =
            |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
        let basic = base64::engine::general_purpose::STANDARD.encode(format!(
            "{}:{}",
            encode(client_id),
            encode(secret.expose())
        ));
        let request = http::Request::post(url)
            .header(http::header::ACCEPT, "application/json")
            .header(
                http::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .header(http::header::AUTHORIZATION, format!("Basic {basic}"))
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| SsoError::Provider(format!("{issuer}: bad URL {url}: {e}")))?;
        let (status, body) = self.call(issuer, request).await?;
        if status.is_success() {
            return serde_json::from_slice(&body).map_err(|e| {
                SsoError::Provider(format!("{issuer}: {url} answered unreadable JSON: {e}"))
            });
        }
        match serde_json::from_slice::<OAuthError>(&body) {
            Ok(error) => Err(SsoError::Refused {
                error: error.error,
                description: error.error_description.unwrap_or_default(),
            }),
            Err(_) => Err(SsoError::Provider(format!(
                "{issuer}: {url} answered {status}"
            ))),
        }
    }

    async fn call(
        &self,
        issuer: &str,
        request: http::Request<Full<Bytes>>,
    ) -> Result<(http::StatusCode, Bytes), SsoError> {
        let down =
            |what: String| SsoError::Down(format!("provider {issuer} is unreachable: {what}"));
        let answer = tokio::time::timeout(CALL_TIMEOUT, async {
            let response = self.client.request(request).await.map_err(|e| {
                let (_, plain) = ConnectionFailure::of(&e);
                down(plain)
            })?;
            let status = response.status();
            let body = Limited::new(response.into_body(), MAX_ANSWER)
                .collect()
                .await
                .map_err(|e| down(format!("reading its answer: {e}")))?
                .to_bytes();
            Ok::<_, SsoError>((status, body))
        })
        .await
        .map_err(|_| down(format!("no answer within {}s", CALL_TIMEOUT.as_secs())))??;
        Ok(answer)
    }
}
