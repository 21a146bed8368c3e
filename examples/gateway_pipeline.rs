//! Run with: `cargo run -p kms-pam-examples --example gateway_pipeline`
//!
//! An embedder assembles the gateway's request pipeline: a stage of their own that keeps
//! per-request state (it times each request, adds an `X-Gateway-Time` response header and logs
//! every answered request), on a mutual-TLS gateway without KMS (sessions and credentials in
//! memory). On the user's side, a local stage refuses `delete` on secrets before the request
//! leaves the machine: the gateway never sees it.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use kms_pam::audit::NullAuditSink;
use kms_pam::credential::{MemoryCredentialStore, Upstream};
use kms_pam::gateway::mtls::{self, GatewayTls, MtlsGateway};
use kms_pam::gateway::GatewayOptions;
use kms_pam::kube::Verb;
use kms_pam::local::{self, LocalProxyConfig};
use kms_pam::proxy::{Pipeline, ProxyError, ProxyHooks, RequestContext, RequestOutcome};
use kms_pam::session::{MemorySessionManager, NewSession};
use kms_pam::tls::{
    CertificateAuthority, LocalServingCert, SessionCertSpec, SessionKey, UpstreamTls,
};
use kms_pam::transport::tls::TlsConnector;
use kms_pam::Secret;
use kms_pam_tests::apiserver::{ApiServerDouble, DoubleConfig};
use kms_pam_tests::kubectl::Kubectl;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Gateway stage: when the request arrived (per-request state), how long the answer took.
#[derive(Default)]
struct RequestTimer {
    answered: AtomicUsize,
}

/// What the timer keeps between phases of one request.
#[derive(Clone)]
struct Arrived(Instant);

#[async_trait]
impl ProxyHooks for RequestTimer {
    async fn on_request(
        &self,
        ctx: &mut RequestContext<'_>,
        _request: &mut http::request::Parts,
    ) -> Result<(), ProxyError> {
        ctx.state.insert(Arrived(Instant::now()));
        Ok(())
    }

    fn on_response(&self, ctx: &mut RequestContext<'_>, response: &mut http::response::Parts) {
        if let Some(Arrived(at)) = ctx.state.get::<Arrived>() {
            let value = format!("{}us", at.elapsed().as_micros());
            if let Ok(value) = http::HeaderValue::from_str(&value) {
                response.headers.insert("x-gateway-time", value);
            }
        }
    }

    fn on_logging(&self, ctx: &RequestContext<'_>, outcome: &RequestOutcome<'_>) {
        self.answered.fetch_add(1, Ordering::Relaxed);
        let took = ctx.state.get::<Arrived>().map(|Arrived(at)| at.elapsed());
        println!(
            "[gateway] {} {} -> {} ({took:?})",
            ctx.info.verb,
            ctx.info.resource.as_deref().unwrap_or("-"),
            outcome.status
        );
    }
}

/// Local stage: secrets are never deleted from this machine.
struct NoSecretDeletes;

#[async_trait]
impl ProxyHooks for NoSecretDeletes {
    async fn on_request(
        &self,
        ctx: &mut RequestContext<'_>,
        _request: &mut http::request::Parts,
    ) -> Result<(), ProxyError> {
        let deleting = matches!(ctx.info.verb, Verb::Delete | Verb::DeleteCollection);
        if deleting && ctx.info.resource.as_deref() == Some("secrets") {
            return Err(ProxyError::forbidden(
                "deleting secrets is refused on this machine (policy no-secret-deletes)",
            ));
        }
        Ok(())
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cluster = ApiServerDouble::start(DoubleConfig::default()).await?;
    let credentials = MemoryCredentialStore::new();
    let upstream = Upstream::new(
        format!("https://{}", cluster.addr()).parse()?,
        UpstreamTls::CaBundle(cluster.ca_pem().to_owned()),
    );
    credentials.add_resource("prod", upstream);
    credentials.add_account("prod", "admin", Secret::new(cluster.token()));
    let sessions = Arc::new(MemorySessionManager::new());
    let new = NewSession::new(
        "alice",
        "prod",
        "admin",
        "gw-pipeline",
        Duration::from_secs(600),
    )
    .with_reason("example");
    let session = sessions.create(new).await?;

    // The gateway, with the embedder's pipeline.
    let ca = CertificateAuthority::generate("example CA", Duration::from_secs(3600))?;
    let server = ca.issue_server_cert(&["127.0.0.1".to_owned()], Duration::from_secs(3600))?;
    let timer = Arc::new(RequestTimer::default());
    let pipeline = Pipeline::builder().stage_first(timer.clone()).build();
    let gateway = MtlsGateway::new(
        "gw-pipeline",
        GatewayTls::new(ca.cert_pem(), server.cert_pem, server.key),
        sessions,
        Arc::new(credentials),
        GatewayOptions::new(Arc::new(NullAuditSink)).with_pipeline(pipeline),
    );
    let gateway_listener = TcpListener::bind("127.0.0.1:0").await?;
    let gateway_addr = gateway_listener.local_addr()?.to_string();
    let stop = CancellationToken::new();
    let gateway_task = tokio::spawn(mtls::serve(
        gateway_listener,
        gateway,
        stop.clone().cancelled_owned(),
    ));

    // The user's side: session key and certificate, and the local proxy with its own stage.
    let (key, csr) = SessionKey::generate()?;
    let spec = SessionCertSpec::new(
        session.id.to_string(),
        session.gateway.clone(),
        session.user.clone(),
        session.created_at,
        session.expires_at,
    );
    let cert = ca.sign_session_csr(&csr, &spec)?;
    let transport = TlsConnector::from_pem(ca.cert_pem(), &cert, key.key_pem(), gateway_addr)?;
    let serving = LocalServingCert::generate(Duration::from_secs(600))?;
    let local_token = Secret::random(32)?;
    let config = LocalProxyConfig::new(
        local_token.clone(),
        serving.server_config()?,
        Arc::new(transport),
    )
    .with_stage(Arc::new(NoSecretDeletes));
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("https://{}", listener.local_addr()?);
    let proxy_task = tokio::spawn(local::serve(
        listener,
        config,
        stop.clone().cancelled_owned(),
    ));

    let kubectl = Kubectl::new(&url, &serving.ca_pem, local_token.expose())?;
    let get = kubectl.run(&["get", "pods", "-v=8"]).await;
    let timed = get
        .stderr
        .lines()
        .any(|l| l.to_ascii_lowercase().contains("x-gateway-time"));
    println!("$ kubectl get pods\n{}", get.stdout_str());
    let create = [
        "create",
        "secret",
        "generic",
        "db",
        "--from-literal=password=x",
    ];
    let created = kubectl.run(&create).await;
    let delete = kubectl.run(&["delete", "secret", "db"]).await;
    println!("$ kubectl delete secret db\n{}", delete.stderr.trim());
    let deletes = cluster
        .requests()
        .iter()
        .filter(|r| r.method == "DELETE")
        .count();
    println!("DELETE requests that reached the cluster: {deletes}");

    stop.cancel();
    gateway_task.await??;
    proxy_task.await??;
    cluster.shutdown().await;
    anyhow::ensure!(
        get.success() && created.success(),
        "kubectl failed: {}",
        get.stderr
    );
    anyhow::ensure!(timed, "the gateway stage's response header is missing");
    anyhow::ensure!(
        !delete.success() && deletes == 0,
        "the local stage let a delete through"
    );
    anyhow::ensure!(
        timer.answered.load(Ordering::Relaxed) >= 2,
        "the logging phase saw nothing"
    );
    Ok(())
}
