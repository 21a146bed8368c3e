//! The load generator: `connections` workers, each with one HTTP/1.1 keep-alive connection,
//! sending the same GET back to back and reading every body to its end. A warm-up phase, then
//! a measured phase started by all workers together; elapsed time and latencies come from
//! [`Instant`], never from sleeping.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use bytes::Bytes;
use http::{header, Request};
use http_body_util::{BodyExt as _, Empty};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use rustls::ClientConfig;
use rustls_pki_types::ServerName;
use serde::Serialize;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::Barrier;

/// Where requests go, and how.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// The server.
    pub addr: SocketAddr,
    /// TLS settings; `None` for plain HTTP (`kubectl proxy`).
    pub tls: Option<Arc<ClientConfig>>,
    /// The bearer token to send, if any.
    pub bearer: Option<String>,
}

/// How long a phase lasts.
#[derive(Clone, Copy, Debug)]
pub enum Phase {
    /// Each worker sends requests until this much time has passed.
    For(Duration),
    /// Each worker sends this many requests.
    Requests(u64),
}

/// One load run.
#[derive(Clone, Debug)]
pub struct Load {
    /// Path and query of the GET.
    pub path: String,
    /// Concurrent connections (one worker each).
    pub connections: usize,
    /// Discarded phase.
    pub warmup: Phase,
    /// Measured phase.
    pub measure: Phase,
}

/// What a measured phase achieved.
#[derive(Clone, Debug, Default, Serialize)]
pub struct LoadResult {
    /// Concurrent connections.
    pub connections: usize,
    /// Requests answered with 2xx and read to the end.
    pub requests: u64,
    /// Requests that failed (status, transport).
    pub errors: u64,
    /// Body bytes received.
    pub bytes: u64,
    /// From the common start to the last worker's end.
    pub elapsed_s: f64,
    /// Requests per second.
    pub requests_per_s: f64,
    /// Body throughput, MB/s (10^6 bytes).
    pub mb_per_s: f64,
    /// Median latency, microseconds.
    pub p50_us: f64,
    /// 99th percentile latency, microseconds.
    pub p99_us: f64,
}

/// Runs `load` against `endpoint`.
pub async fn run(endpoint: &Endpoint, load: &Load) -> anyhow::Result<LoadResult> {
    let barrier = Arc::new(Barrier::new(load.connections));
    let reported = Arc::new(AtomicBool::new(false));
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..load.connections {
        let (endpoint, load) = (endpoint.clone(), load.clone());
        let (barrier, reported) = (barrier.clone(), reported.clone());
        workers.spawn(async move { worker(&endpoint, &load, &barrier, reported).await });
    }
    let mut samples = Vec::new();
    let (mut errors, mut bytes) = (0, 0);
    let mut window: Option<(Instant, Instant)> = None;
    while let Some(done) = workers.join_next().await {
        let tally = done.context("load worker panicked")??;
        samples.extend(tally.latencies_ns);
        errors += tally.errors;
        bytes += tally.bytes;
        window = Some(match window {
            None => (tally.start, tally.end),
            Some((s, e)) => (s.min(tally.start), e.max(tally.end)),
        });
    }
    let elapsed = window.map_or(Duration::ZERO, |(s, e)| e - s).as_secs_f64();
    samples.sort_unstable();
    let requests = samples.len() as u64;
    Ok(LoadResult {
        connections: load.connections,
        requests,
        errors,
        bytes,
        elapsed_s: elapsed,
        requests_per_s: per_second(requests as f64, elapsed),
        mb_per_s: per_second(bytes as f64 / 1e6, elapsed),
        p50_us: percentile_us(&samples, 0.50),
        p99_us: percentile_us(&samples, 0.99),
    })
}

/// Runs `load` if the phase `name` is enabled (see [`phase_enabled`]); a disabled phase gives
/// an empty result.
pub async fn run_phase(name: &str, endpoint: &Endpoint, load: &Load) -> anyhow::Result<LoadResult> {
    if phase_enabled(name) {
        run(endpoint, load).await
    } else {
        Ok(LoadResult::default())
    }
}

/// Whether `BENCH_PHASES` (comma-separated phase names; unset: all) enables `name`. Used to
/// profile one kind of traffic at a time.
pub fn phase_enabled(name: &str) -> bool {
    std::env::var("BENCH_PHASES").map_or(true, |phases| {
        phases.trim().is_empty() || phases.split(',').any(|p| p.trim() == name)
    })
}

struct Tally {
    latencies_ns: Vec<u64>,
    errors: u64,
    bytes: u64,
    start: Instant,
    end: Instant,
}

async fn worker(
    endpoint: &Endpoint,
    load: &Load,
    barrier: &Barrier,
    reported: Arc<AtomicBool>,
) -> anyhow::Result<Tally> {
    let mut conn = Conn::open(endpoint, &load.path, reported).await?;
    let mut discard = Tally::new();
    conn.phase(load.warmup, &mut discard).await?;
    barrier.wait().await;
    let mut tally = Tally::new();
    conn.phase(load.measure, &mut tally).await?;
    tally.end = Instant::now();
    Ok(tally)
}

impl Tally {
    fn new() -> Self {
        let now = Instant::now();
        Self {
            latencies_ns: Vec::new(),
            errors: 0,
            bytes: 0,
            start: now,
            end: now,
        }
    }
}

struct Conn<'a> {
    endpoint: &'a Endpoint,
    path: String,
    sender: http1::SendRequest<Empty<Bytes>>,
    /// Whether a failure of this run was printed already: one is enough to diagnose.
    reported: Arc<AtomicBool>,
}

impl<'a> Conn<'a> {
    async fn open(
        endpoint: &'a Endpoint,
        path: &str,
        reported: Arc<AtomicBool>,
    ) -> anyhow::Result<Self> {
        Ok(Self {
            endpoint,
            path: path.to_owned(),
            sender: connect(endpoint).await?,
            reported,
        })
    }

    async fn phase(&mut self, phase: Phase, tally: &mut Tally) -> anyhow::Result<()> {
        let start = Instant::now();
        tally.start = start;
        let mut sent = 0;
        loop {
            match phase {
                Phase::For(d) if start.elapsed() >= d => return Ok(()),
                Phase::Requests(n) if sent >= n => return Ok(()),
                _ => {}
            }
            sent += 1;
            let began = Instant::now();
            match self.get().await {
                Ok(bytes) => {
                    tally.bytes += bytes;
                    let ns = u64::try_from(began.elapsed().as_nanos()).unwrap_or(u64::MAX);
                    tally.latencies_ns.push(ns);
                }
                Err(e) => {
                    tally.errors += 1;
                    if !self.reported.swap(true, Ordering::Relaxed) {
                        eprintln!("  request failed (first failure of this run): {e:#}");
                    }
                    // The connection may be gone: start a fresh one.
                    self.sender = connect(self.endpoint).await?;
                }
            }
        }
    }

    async fn get(&mut self) -> anyhow::Result<u64> {
        self.sender.ready().await?;
        let response = self
            .sender
            .send_request(request(self.endpoint, &self.path)?)
            .await?;
        let status = response.status();
        let mut body = response.into_body();
        if !status.is_success() {
            let text = body.collect().await?.to_bytes();
            let text = String::from_utf8_lossy(&text[..text.len().min(300)]).into_owned();
            bail!("status {status}: {text}");
        }
        let mut bytes = 0;
        while let Some(frame) = body.frame().await {
            if let Some(data) = frame?.data_ref() {
                bytes += data.len() as u64;
            }
        }
        Ok(bytes)
    }
}

/// One request on a fresh connection: `method path` with the endpoint's token; returns the
/// status and the body. For control endpoints, not for measuring.
pub async fn fetch(
    endpoint: &Endpoint,
    method: http::Method,
    path: &str,
) -> anyhow::Result<(http::StatusCode, Bytes)> {
    let mut sender = connect(endpoint).await?;
    let mut request = request(endpoint, path)?;
    *request.method_mut() = method;
    let response = sender.send_request(request).await?;
    let status = response.status();
    Ok((status, response.into_body().collect().await?.to_bytes()))
}

/// The request kubectl would send for a list (headers included, bar compression).
fn request(endpoint: &Endpoint, path: &str) -> anyhow::Result<Request<Empty<Bytes>>> {
    let mut builder = Request::get(path)
        .header(header::HOST, endpoint.addr.to_string())
        .header(header::ACCEPT, "application/json")
        .header(
            header::USER_AGENT,
            "kubectl/v1.32.4 (linux/amd64) kubernetes/4cb5f07",
        )
        .header("kubectl-command", "kubectl get")
        .header("kubectl-session", "0f6f1a52-3a43-4a8b-9d6e-2f1c5b7a9e10");
    if let Some(token) = &endpoint.bearer {
        builder = builder.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    Ok(builder.body(Empty::new())?)
}

async fn connect(endpoint: &Endpoint) -> anyhow::Result<http1::SendRequest<Empty<Bytes>>> {
    let tcp = TcpStream::connect(endpoint.addr)
        .await
        .with_context(|| format!("connect to {}", endpoint.addr))?;
    tcp.set_nodelay(true)?;
    match &endpoint.tls {
        None => handshake(tcp).await,
        Some(config) => {
            let name = ServerName::IpAddress(endpoint.addr.ip().into());
            let tls = tokio_rustls::TlsConnector::from(config.clone())
                .connect(name, tcp)
                .await
                .with_context(|| format!("TLS handshake with {}", endpoint.addr))?;
            handshake(tls).await
        }
    }
}

async fn handshake<I>(io: I) -> anyhow::Result<http1::SendRequest<Empty<Bytes>>>
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (sender, connection) = http1::handshake(TokioIo::new(io)).await?;
    tokio::spawn(connection);
    Ok(sender)
}

fn per_second(amount: f64, seconds: f64) -> f64 {
    if seconds > 0.0 {
        amount / seconds
    } else {
        0.0
    }
}

/// The `q` quantile of sorted nanosecond samples, in microseconds (nearest rank).
pub fn percentile_us(sorted_ns: &[u64], q: f64) -> f64 {
    if sorted_ns.is_empty() {
        return 0.0;
    }
    let rank = (q * sorted_ns.len() as f64).ceil() as usize;
    sorted_ns[rank.clamp(1, sorted_ns.len()) - 1] as f64 / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let samples: Vec<u64> = (1..=100).map(|i| i * 1000).collect();
        assert_eq!(percentile_us(&samples, 0.50), 50.0);
        assert_eq!(percentile_us(&samples, 0.99), 99.0);
        assert_eq!(percentile_us(&samples[..1], 0.99), 1.0);
        assert_eq!(percentile_us(&[], 0.5), 0.0);
    }
}
