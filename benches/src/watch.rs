//! Many watches over one HTTP/2 connection, as one kubectl (or a controller) holding thousands
//! of watches open would: one socket, one stream per watch.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use bytes::Bytes;
use http::{header, Request};
use http_body_util::{BodyExt as _, Empty};
use hyper::client::conn::http2;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls_pki_types::ServerName;
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::load::Endpoint;

/// Watches held open over one connection; dropping it (or [`Watches::close`]) cancels them.
#[derive(Debug)]
pub struct Watches {
    requested: usize,
    counts: watch::Receiver<Counts>,
    tasks: JoinSet<()>,
}

/// Where the watches are.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Got their response headers.
    pub opened: usize,
    /// Got their event.
    pub delivered: usize,
    /// Were refused, or ended or broke before their event.
    pub failed: usize,
}

impl Watches {
    /// Connects to `endpoint` (TLS, ALPN `h2`) and starts `n` watches of `path_and_query`.
    pub async fn open(endpoint: &Endpoint, path_and_query: &str, n: usize) -> anyhow::Result<Self> {
        let sender = connect(endpoint).await?;
        let uri = format!("https://{}{path_and_query}", endpoint.addr);
        let (progress, counts) = watch::channel(Counts::default());
        let progress = Arc::new(progress);
        let mut tasks = JoinSet::new();
        for _ in 0..n {
            let request = request(&uri, endpoint.bearer.as_deref())?;
            tasks.spawn(watch_one(sender.clone(), request, progress.clone()));
        }
        Ok(Self {
            requested: n,
            counts,
            tasks,
        })
    }

    /// Waits until every watch got its response headers (or failed), up to `limit`; returns the
    /// counts then and how long it took.
    pub async fn wait_opened(&mut self, limit: Duration) -> (Counts, Duration) {
        let n = self.requested;
        self.wait(limit, |c| c.opened + c.failed >= n).await
    }

    /// Waits until every open watch received its event (or failed), up to `limit`; returns the
    /// counts then and how long it took.
    pub async fn wait_delivered(&mut self, limit: Duration) -> (Counts, Duration) {
        let n = self.requested;
        self.wait(limit, |c| c.delivered + c.failed >= n).await
    }

    async fn wait(
        &mut self,
        limit: Duration,
        done: impl FnMut(&Counts) -> bool,
    ) -> (Counts, Duration) {
        let start = Instant::now();
        let _ = tokio::time::timeout(limit, self.counts.wait_for(done)).await;
        let counts = *self.counts.borrow();
        (counts, start.elapsed())
    }

    /// Cancels every watch.
    pub async fn close(mut self) {
        self.tasks.shutdown().await;
    }
}

async fn watch_one(
    mut sender: http2::SendRequest<Empty<Bytes>>,
    request: Request<Empty<Bytes>>,
    progress: Arc<watch::Sender<Counts>>,
) {
    let bump = |field: fn(&mut Counts) -> &mut usize| progress.send_modify(|c| *field(c) += 1);
    let response = match sender.send_request(request).await {
        Ok(response) if response.status().is_success() => response,
        Ok(response) => {
            first_failure(&progress, &format!("status {}", response.status()));
            return bump(|c| &mut c.failed);
        }
        Err(e) => {
            first_failure(&progress, &e.to_string());
            return bump(|c| &mut c.failed);
        }
    };
    bump(|c| &mut c.opened);
    let mut body = response.into_body();
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(frame) if frame.data_ref().is_some_and(|d| d.contains(&b'\n')) => {
                bump(|c| &mut c.delivered);
                // Hold the stream open until the benchmark closes it.
                std::future::pending::<()>().await;
            }
            Ok(_) => {}
            Err(e) => {
                first_failure(&progress, &format!("body: {e:?}"));
                return bump(|c| &mut c.failed);
            }
        }
    }
    first_failure(&progress, "the stream ended before its event");
    bump(|c| &mut c.failed);
}

/// Reports the first failure only: ten thousand identical lines would hide everything else.
fn first_failure(progress: &watch::Sender<Counts>, why: &str) {
    if progress.borrow().failed == 0 {
        eprintln!("  a watch failed: {why}");
    }
}

fn request(uri: &str, bearer: Option<&str>) -> anyhow::Result<Request<Empty<Bytes>>> {
    let mut builder = Request::get(uri)
        .header(header::ACCEPT, "application/json")
        .header(
            header::USER_AGENT,
            "kubectl/v1.32.4 (linux/amd64) kubernetes/4cb5f07",
        )
        .header("kubectl-command", "kubectl get");
    if let Some(token) = bearer {
        builder = builder.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    Ok(builder.body(Empty::new())?)
}

async fn connect(endpoint: &Endpoint) -> anyhow::Result<http2::SendRequest<Empty<Bytes>>> {
    let Some(config) = &endpoint.tls else {
        bail!("watch streams need TLS (HTTP/2 through ALPN)");
    };
    let tcp = TcpStream::connect(endpoint.addr).await?;
    tcp.set_nodelay(true)?;
    let name = ServerName::IpAddress(endpoint.addr.ip().into());
    let tls = tokio_rustls::TlsConnector::from(config.clone())
        .connect(name, tcp)
        .await
        .context("TLS handshake")?;
    if tls.get_ref().1.alpn_protocol() != Some(b"h2") {
        bail!("{} did not negotiate HTTP/2", endpoint.addr);
    }
    let (sender, connection) = http2::Builder::new(TokioExecutor::new())
        // kubectl (Go) opens 4 MiB stream / 1 GiB connection windows; hyper's adaptive windows
        // stay near 64 KiB on loopback, and h2 then treats a burst of small watch events as a
        // flood of tiny DATA frames and closes the connection.
        .initial_stream_window_size(4 * 1024 * 1024)
        .initial_connection_window_size(1024 * 1024 * 1024)
        .handshake(TokioIo::new(tls))
        .await?;
    tokio::spawn(connection);
    Ok(sender)
}
