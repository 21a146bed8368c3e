//! Single sign-on's calls (`/v1/sso/…`, docs/sso.md) and what a CLI needs around them: a PKCE
//! verifier and the loopback listener the browser is sent back to.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use kms_pam::kms::client::{KmsClient, LoopbackSignIn};
//!
//! let kms = KmsClient::new("https://kms.example", None)?;
//! let sign_in = LoopbackSignIn::start().await?;
//! println!("open {}", sign_in.url(kms.current_url(), "corp"));
//! let code = sign_in.code(std::time::Duration::from_secs(300)).await?;
//! let credential = kms.sso().exchange(&code, sign_in.verifier()).await?;
//! println!("signed in as {}", credential.user);
//! # Ok(()) }
//! ```

use std::time::Duration;

use base64::Engine as _;
use http::Method;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::error::KmsError;
use super::kms_client::{Call, KmsClient};
use crate::kms::api::{
    CreateSsoProvider, DevicePoll, DeviceSignIn, PollDeviceSignIn, RefreshSso, SsoCredential,
    SsoExchange, SsoProvider, SsoProviderNames, StartDeviceSignIn,
};
use crate::secret::Secret;

impl KmsClient {
    /// Single sign-on (`/v1/sso`).
    pub fn sso(&self) -> SsoApi<'_> {
        SsoApi { client: self }
    }
}

/// `/v1/sso/…`.
#[derive(Debug, Clone, Copy)]
pub struct SsoApi<'a> {
    client: &'a KmsClient,
}

impl SsoApi<'_> {
    /// `GET /v1/sso/providers/names` (no token needed).
    pub async fn names(&self) -> Result<Vec<String>, KmsError> {
        let names: SsoProviderNames = self
            .client
            .call(Call::new(Method::GET, &["sso", "providers", "names"]))
            .await?;
        Ok(names.providers)
    }

    /// `GET /v1/sso/providers` (organisation admin).
    pub async fn list(&self) -> Result<Vec<SsoProvider>, KmsError> {
        self.client
            .call(Call::new(Method::GET, &["sso", "providers"]))
            .await
    }

    /// `POST /v1/sso/providers` (organisation admin).
    pub async fn create(&self, provider: &CreateSsoProvider) -> Result<SsoProvider, KmsError> {
        let call = Call::new(Method::POST, &["sso", "providers"]).json(provider)?;
        self.client.call(call).await
    }

    /// `DELETE /v1/sso/providers/{name}` (organisation admin).
    pub async fn delete(&self, name: &str) -> Result<(), KmsError> {
        self.client
            .call_no_answer(Call::new(Method::DELETE, &["sso", "providers", name]))
            .await
    }

    /// `POST /v1/sso/exchange`: the loopback code and the verifier for a credential.
    pub async fn exchange(
        &self,
        code: &Secret,
        verifier: &Secret,
    ) -> Result<SsoCredential, KmsError> {
        let body = SsoExchange {
            code: code.clone(),
            verifier: verifier.clone(),
        };
        let call = Call::new(Method::POST, &["sso", "exchange"]).json(&body)?;
        self.client.call(call).await
    }

    /// `POST /v1/sso/device`: starts a device sign-in.
    pub async fn start_device(&self, provider: &str) -> Result<DeviceSignIn, KmsError> {
        let body = StartDeviceSignIn {
            provider: provider.to_owned(),
        };
        let call = Call::new(Method::POST, &["sso", "device"]).json(&body)?;
        self.client.call(call).await
    }

    /// `POST /v1/sso/device/poll`: asks once whether the person finished.
    pub async fn poll_device(&self, handle: &Secret) -> Result<DevicePoll, KmsError> {
        let body = PollDeviceSignIn {
            handle: handle.clone(),
        };
        let call = Call::new(Method::POST, &["sso", "device", "poll"]).json(&body)?;
        self.client.call(call).await
    }

    /// `POST /v1/sso/refresh`: a new credential for the last one's refresh token.
    pub async fn refresh(&self, refresh_token: &Secret) -> Result<SsoCredential, KmsError> {
        let body = RefreshSso {
            refresh_token: refresh_token.clone(),
        };
        let call = Call::new(Method::POST, &["sso", "refresh"]).json(&body)?;
        self.client.call(call).await
    }
}

/// Why a loopback sign-in failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoopbackError {
    /// The listener could not be opened or read.
    #[error("loopback listener: {0}")]
    Io(#[from] std::io::Error),
    /// No browser came back in time.
    #[error("no sign-in came back within {0:?}; run kms-pam login --sso again")]
    TimedOut(Duration),
    /// The system's random source failed.
    #[error("no random source: {0}")]
    Random(String),
}

/// A browser sign-in the CLI waits for on `127.0.0.1`: KMS sends the browser back to
/// `http://127.0.0.1:PORT/callback?code=…` once the provider signed the person in; the code is
/// worth a credential only with [`Self::verifier`], which never leaves this process.
#[derive(Debug)]
pub struct LoopbackSignIn {
    listener: TcpListener,
    verifier: Secret,
}

impl LoopbackSignIn {
    /// Opens the listener on a free loopback port and makes the verifier.
    pub async fn start() -> Result<Self, LoopbackError> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let verifier = Secret::random(32).map_err(|e| LoopbackError::Random(e.to_string()))?;
        Ok(Self { listener, verifier })
    }

    /// The PKCE verifier.
    pub fn verifier(&self) -> &Secret {
        &self.verifier
    }

    /// The page of the KMS at `kms_url` that starts the sign-in through `provider`.
    pub fn url(&self, kms_url: &str, provider: &str) -> String {
        let port = self.listener.local_addr().map(|a| a.port()).unwrap_or(0);
        let digest = ring::digest::digest(&ring::digest::SHA256, self.verifier.expose().as_bytes());
        let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest.as_ref());
        let provider =
            percent_encoding::utf8_percent_encode(provider, percent_encoding::NON_ALPHANUMERIC);
        format!(
            "{}/login/sso/{provider}?cli_port={port}&cli_challenge={challenge}",
            kms_url.trim_end_matches('/')
        )
    }

    /// Waits up to `wait` for the browser to bring the code back; answers it with a page saying
    /// it may be closed. Other requests (a favicon, a stray connection) are answered 404 and
    /// waited past.
    pub async fn code(&self, wait: Duration) -> Result<Secret, LoopbackError> {
        tokio::time::timeout(wait, async {
            loop {
                let (mut stream, _) = self.listener.accept().await?;
                let mut buffer = vec![0u8; 8192];
                let mut read = 0;
                // The request line and headers; a slow or silent client is dropped.
                let complete = tokio::time::timeout(Duration::from_secs(5), async {
                    while read < buffer.len() {
                        let n = stream.read(&mut buffer[read..]).await?;
                        if n == 0 {
                            break;
                        }
                        read += n;
                        if buffer[..read].windows(4).any(|w| w == b"\r\n\r\n") {
                            break;
                        }
                    }
                    Ok::<_, std::io::Error>(())
                })
                .await;
                if !matches!(complete, Ok(Ok(()))) {
                    continue;
                }
                let head = String::from_utf8_lossy(&buffer[..read]);
                let target = head
                    .lines()
                    .next()
                    .and_then(|line| line.strip_prefix("GET "))
                    .and_then(|rest| rest.split(' ').next())
                    .unwrap_or("");
                match code_of(target) {
                    Some(code) => {
                        let page = "<!doctype html><title>kms-pam</title><p>Signed in. You can \
                                    close this window and return to the terminal.</p>";
                        let answer = format!(
                            "HTTP/1.1 200 OK\r\ncontent-type: text/html; charset=utf-8\r\n\
                             cache-control: no-store\r\ncontent-length: {}\r\nconnection: \
                             close\r\n\r\n{page}",
                            page.len()
                        );
                        let _ = stream.write_all(answer.as_bytes()).await;
                        return Ok(code);
                    }
                    None => {
                        let _ = stream
                            .write_all(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                            .await;
                    }
                }
            }
        })
        .await
        .map_err(|_| LoopbackError::TimedOut(wait))?
    }
}

/// The `code` of a `/callback?code=…` request target.
fn code_of(target: &str) -> Option<Secret> {
    let url = url::Url::parse(&format!("http://127.0.0.1{target}")).ok()?;
    if url.path() != "/callback" {
        return None;
    }
    url.query_pairs()
        .find(|(name, _)| name == "code")
        .map(|(_, value)| Secret::new(value.into_owned()))
        .filter(|code| !code.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_callback_path_with_a_code_counts() {
        assert_eq!(code_of("/callback?code=abc").unwrap().expose(), "abc");
        assert!(code_of("/callback").is_none());
        assert!(code_of("/callback?code=").is_none());
        assert!(code_of("/favicon.ico").is_none());
        assert!(code_of("//evil/callback?code=x").is_none());
    }

    #[tokio::test]
    async fn the_browser_is_answered_and_the_code_returned() {
        let sign_in = LoopbackSignIn::start().await.unwrap();
        let url = sign_in.url("http://kms:8080/", "corp idp");
        assert!(url.starts_with("http://kms:8080/login/sso/corp%20idp?cli_port="));
        let port = sign_in.listener.local_addr().unwrap().port();
        let browser = tokio::spawn(async move {
            let mut stray = tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .unwrap();
            stray
                .write_all(b"GET /favicon.ico HTTP/1.1\r\n\r\n")
                .await
                .unwrap();
            let mut answer = String::new();
            stray.read_to_string(&mut answer).await.unwrap();
            assert!(answer.starts_with("HTTP/1.1 404"));
            let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .unwrap();
            s.write_all(b"GET /callback?code=c0de HTTP/1.1\r\nhost: x\r\n\r\n")
                .await
                .unwrap();
            let mut answer = String::new();
            s.read_to_string(&mut answer).await.unwrap();
            answer
        });
        let code = sign_in.code(Duration::from_secs(10)).await.unwrap();
        assert_eq!(code.expose(), "c0de");
        assert!(browser.await.unwrap().contains("close this window"));
        let silent = LoopbackSignIn::start().await.unwrap();
        assert!(matches!(
            silent.code(Duration::from_millis(50)).await,
            Err(LoopbackError::TimedOut(_))
        ));
    }
}
