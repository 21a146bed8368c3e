//! Run with `cargo bench -p kms-pam-benches --bench store_engines`.
//!
//! KMS's three deployments side by side in one run (issue 13): SQLite, PostgreSQL behind one
//! replica, PostgreSQL behind two replicas (the load split between them as a load balancer
//! would). Each is a real `Server` in this process on 127.0.0.1:0, driven over HTTP by the
//! library's KMS client; PostgreSQL is a throwaway cluster (`initdb`, `pg_ctl`, fsync on) with
//! one database per deployment. Two phases, `STORE_BENCH_ROUNDS` rounds (default 3, the engines
//! interleaved within each round; the median is reported):
//!
//! - sessions opened per second: `WORKERS` concurrent `POST /v1/sessions` (admin, so no grant
//!   lookup), each answered with a signed client certificate; the sessions are ended afterwards,
//!   untimed, so no reaper works during the next measurement;
//! - audit events ingested per second: `WORKERS` sessions, each uploading its own chained, signed
//!   events in batches of `BATCH` (`POST /v1/gateway/events`), batch after batch alternating
//!   between the replicas; every event must be stored once.
//!
//! CPU: cores this process kept busy (the KMS servers and the clients), cores of the
//! PostgreSQL cluster's processes, and `others` (the rest of the machine: foreign load).
//! `BENCH_QUICK=1` for a smoke run.

use std::sync::Arc;

use anyhow::{ensure, Context as _};
use kms_pam::audit::evidence::signing::SigningKey;
use kms_pam::audit::{
    AuditEvent, AuditEventKind, AuditSink, ChainingSink, MemoryAuditSink, RequestFinished,
    RequestStarted,
};
use kms_pam::kms::api::{
    CreateAccount, CreateResource, CreateSession, EnrollGateway, ResourceKind,
};
use kms_pam::kms::client::KmsClient;
use kms_pam::kube::RequestInfo;
use kms_pam::server::{Server, ServerConfig, ServerError};
use kms_pam::session::SessionId;
use kms_pam::tls::generate_csr;
use kms_pam::Secret;
use kms_pam_benches::pg::PgCluster;
use kms_pam_benches::quick_mode;
use kms_pam_benches::report::Table;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

#[path = "store_engines/window.rs"]
mod window;

use window::Window;

const WORKERS: usize = 8;
const BATCH: usize = 250;

/// How big each phase is.
#[derive(Clone, Copy, Debug)]
struct Sizes {
    sessions: usize,
    events_per_session: usize,
    rounds: usize,
}

/// A server task and the sender that stops it.
type Serving = (oneshot::Sender<()>, JoinHandle<Result<(), ServerError>>);

/// One deployment: its servers (stopped on drop of the senders) and clients per replica.
struct Deployment {
    name: &'static str,
    admins: Vec<KmsClient>,
    gateways: Vec<KmsClient>,
    audit_key: Arc<SigningKey>,
    stops: Vec<Serving>,
    _dir: tempfile::TempDir,
}

/// One phase's result.
#[derive(Clone, Copy, Debug, Default, serde::Serialize)]
struct Reading {
    per_second: f64,
    bench_cores: f64,
    pg_cores: f64,
    others: f64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let quick = quick_mode();
    let rounds = std::env::var("STORE_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if quick { 1 } else { 3 });
    let sizes = Sizes {
        sessions: if quick { 64 } else { 800 },
        events_per_session: if quick { 500 } else { 4_000 },
        rounds,
    };
    let cluster = PgCluster::start()?;
    let postmaster = cluster.postmaster_pid()?;
    let maintenance = sqlx::PgPool::connect(&cluster.url("postgres")).await?;
    for db in ["kms_one", "kms_two"] {
        sqlx::query(&format!("CREATE DATABASE {db}"))
            .execute(&maintenance)
            .await?;
    }
    maintenance.close().await;
    let deployments = [
        deploy("SQLite", None, 1).await?,
        deploy("PostgreSQL, 1 replica", Some(cluster.url("kms_one")), 1).await?,
        deploy("PostgreSQL, 2 replicas", Some(cluster.url("kms_two")), 2).await?,
    ];
    eprintln!("{sizes:?}, {WORKERS} concurrent clients, batches of {BATCH} events");

    let mut sessions = vec![Vec::new(); deployments.len()];
    let mut events = vec![Vec::new(); deployments.len()];
    for round in 0..sizes.rounds {
        for (i, d) in deployments.iter().enumerate() {
            let reading = open_sessions(d, postmaster, sizes.sessions).await?;
            eprintln!(
                "round {round}: {}: {:.0} sessions/s",
                d.name, reading.per_second
            );
            sessions[i].push(reading);
            let reading = ingest_events(d, postmaster, sizes.events_per_session).await?;
            eprintln!(
                "round {round}: {}: {:.0} events/s",
                d.name, reading.per_second
            );
            events[i].push(reading);
        }
    }
    let session_ranges: Vec<(f64, f64)> = sessions.iter().map(|r| range(r)).collect();
    let event_ranges: Vec<(f64, f64)> = events.iter().map(|r| range(r)).collect();
    let sessions: Vec<Reading> = sessions.into_iter().map(median).collect();
    let events: Vec<Reading> = events.into_iter().map(median).collect();
    for (title, readings, ranges) in [
        ("sessions opened per second", &sessions, &session_ranges),
        ("audit events ingested per second", &events, &event_ranges),
    ] {
        println!("\n{title} (median of {} rounds)", sizes.rounds);
        let mut table = Table::new([
            "deployment",
            "per second",
            "range",
            "vs SQLite",
            "bench cores",
            "postgres cores",
            "others",
        ]);
        for ((d, r), (low, high)) in deployments.iter().zip(readings.iter()).zip(ranges) {
            table.row([
                d.name.to_owned(),
                format!("{:.0}", r.per_second),
                format!("{low:.0}–{high:.0}"),
                format!(
                    "{:.2}",
                    r.per_second / readings[0].per_second.max(f64::EPSILON)
                ),
                format!("{:.2}", r.bench_cores),
                format!("{:.2}", r.pg_cores),
                format!("{:.2}", r.others),
            ]);
        }
        print!("{}", table.render());
    }
    let names: Vec<&str> = deployments.iter().map(|d| d.name).collect();
    let json = serde_json::json!({
        "deployments": names,
        "sessions_opened": sessions,
        "events_ingested": events,
        "workers": WORKERS,
        "batch": BATCH,
        "sessions_per_round": sizes.sessions,
        "events_per_round": sizes.events_per_session * WORKERS,
        "rounds": sizes.rounds,
        "cores": std::thread::available_parallelism().map(usize::from).unwrap_or(0),
    });
    let dir = kms_pam_benches::output_dir();
    std::fs::create_dir_all(&dir)?;
    std::fs::write(
        dir.join("store_engines.json"),
        serde_json::to_vec_pretty(&json)?,
    )?;
    for d in deployments {
        for (stop, serving) in d.stops {
            let _ = stop.send(());
            serving.await??;
        }
    }
    drop(cluster);
    Ok(())
}

/// The lowest and highest rate of the rounds.
fn range(readings: &[Reading]) -> (f64, f64) {
    readings
        .iter()
        .fold((f64::INFINITY, 0.0), |(low, high), r| {
            (low.min(r.per_second), high.max(r.per_second))
        })
}

/// The reading whose rate is the median; CPU figures from the same round.
fn median(mut readings: Vec<Reading>) -> Reading {
    readings.sort_by(|a, b| a.per_second.total_cmp(&b.per_second));
    readings
        .get(readings.len() / 2)
        .copied()
        .unwrap_or_default()
}

/// Starts `replicas` servers on `database` (SQLite in the first one's data dir when `None`),
/// enrolls gateway `gw` and creates resource `prod` with account `admin`.
async fn deploy(
    name: &'static str,
    database: Option<String>,
    replicas: usize,
) -> anyhow::Result<Deployment> {
    let dir = tempfile::tempdir()?;
    let mut stops = Vec::new();
    let mut urls = Vec::new();
    let mut admin_token = None;
    for r in 0..replicas {
        let mut config = ServerConfig::new(dir.path().join(format!("replica{r}")));
        if database.is_some() {
            config = config
                .with_database(database.clone())
                .with_root_key(Some(dir.path().join("root.key")));
        }
        let server = Server::open(config).await?;
        if admin_token.is_none() {
            admin_token = Some(std::fs::read_to_string(server.admin_token_path())?);
        }
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        urls.push(format!("http://{}", listener.local_addr()?));
        let (stop, stopped) = oneshot::channel::<()>();
        let serving = tokio::spawn(server.serve(listener, async {
            let _ = stopped.await;
        }));
        stops.push((stop, serving));
    }
    let token = Secret::new(admin_token.context("no admin token")?.trim());
    let admins = urls
        .iter()
        .map(|url| KmsClient::new(url, Some(token.clone())))
        .collect::<Result<Vec<_>, _>>()?;
    let audit_key = Arc::new(SigningKey::generate()?.0);
    let gateway_token = seed(&admins[0], &audit_key).await?;
    let gateways = urls
        .iter()
        .map(|url| KmsClient::new(url, Some(gateway_token.clone())))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Deployment {
        name,
        admins,
        gateways,
        audit_key,
        stops,
        _dir: dir,
    })
}

/// Gateway `gw` (enrolled), resource `prod` with account `admin`; the gateway's token.
async fn seed(admin: &KmsClient, audit_key: &SigningKey) -> anyhow::Result<Secret> {
    let created = admin.gateways().create("gw").await?;
    let (_key, csr) = generate_csr("gw")?;
    let enrolled = admin
        .gateways()
        .enroll(&EnrollGateway {
            name: "gw".into(),
            enrollment_token: created.enrollment_token,
            csr,
            address: "127.0.0.1:9".into(),
            audit_key: Some(audit_key.public_key()),
            sealing_key: None,
        })
        .await?;
    admin
        .resources()
        .create(&CreateResource {
            kind: ResourceKind::Kubernetes,
            name: "prod".into(),
            url: "https://10.0.0.1:6443".into(),
            gateway: "gw".into(),
            ssl_verify: true,
            ca_cert: None,
            recording: Default::default(),
        })
        .await?;
    admin
        .accounts()
        .create(
            "prod",
            &CreateAccount {
                name: "admin".into(),
                token: Secret::new("eyJhbGciOiJSUzI1NiJ9.YmVuY2g.sig"),
                description: None,
                max_duration_secs: None,
            },
        )
        .await?;
    Ok(enrolled.gateway_token)
}

/// `count` sessions opened by `WORKERS` concurrent clients, spread over the replicas; timed
/// from the first request to the last answer. Then ended (untimed).
async fn open_sessions(d: &Deployment, postmaster: u32, count: usize) -> anyhow::Result<Reading> {
    let mut csrs = Vec::new();
    for _ in 0..WORKERS {
        csrs.push(generate_csr("bench")?.1);
    }
    let window = Window::open(postmaster)?;
    let mut workers = Vec::new();
    for (w, csr) in csrs.into_iter().enumerate() {
        let admins = d.admins.clone();
        workers.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            for i in (w..count).step_by(WORKERS) {
                let admin = &admins[i % admins.len()];
                let created = admin
                    .sessions()
                    .create(&CreateSession {
                        resource: "prod".into(),
                        account: "admin".into(),
                        duration_secs: 600,
                        reason: None,
                        csr: csr.clone(),
                    })
                    .await?;
                ids.push(created.session.session.id);
            }
            Ok::<_, anyhow::Error>(ids)
        }));
    }
    let mut ids = Vec::new();
    for worker in workers {
        ids.extend(worker.await??);
    }
    let reading = window.close(count)?;
    ensure!(
        ids.len() == count,
        "{} sessions opened, not {count}",
        ids.len()
    );
    end_all(d, ids).await?;
    Ok(reading)
}

async fn end_all(d: &Deployment, ids: Vec<SessionId>) -> anyhow::Result<()> {
    let ids = Arc::new(ids);
    let mut workers = Vec::new();
    for w in 0..WORKERS {
        let (ids, admin) = (ids.clone(), d.admins[0].clone());
        workers.push(tokio::spawn(async move {
            for id in ids.iter().skip(w).step_by(WORKERS) {
                admin.sessions().end(id).await?;
            }
            Ok::<_, anyhow::Error>(())
        }));
    }
    for worker in workers {
        worker.await??;
    }
    Ok(())
}

/// `WORKERS` sessions upload `per_session` events each, concurrently, in batches alternating
/// between the replicas; timed over the uploads only.
async fn ingest_events(
    d: &Deployment,
    postmaster: u32,
    per_session: usize,
) -> anyhow::Result<Reading> {
    let (_key, csr) = generate_csr("bench")?;
    let mut uploads = Vec::new();
    let mut ids = Vec::new();
    for _ in 0..WORKERS {
        let created = d.admins[0]
            .sessions()
            .create(&CreateSession {
                resource: "prod".into(),
                account: "admin".into(),
                duration_secs: 600,
                reason: None,
                csr: csr.clone(),
            })
            .await?;
        let id = created.session.session.id;
        uploads.push(chained_events(&id, per_session, &d.audit_key)?);
        ids.push(id);
    }
    let window = Window::open(postmaster)?;
    let mut workers = Vec::new();
    for (w, events) in uploads.into_iter().enumerate() {
        let gateways = d.gateways.clone();
        workers.push(tokio::spawn(async move {
            let mut stored = 0;
            for (b, batch) in events.chunks(BATCH).enumerate() {
                let gateway = &gateways[(w + b) % gateways.len()];
                let answer = gateway.gateway().upload_events(batch).await?;
                ensure!(answer.duplicates == 0, "a batch was stored twice");
                stored += answer.stored as usize;
            }
            Ok::<_, anyhow::Error>(stored)
        }));
    }
    let mut stored = 0;
    for worker in workers {
        stored += worker.await??;
    }
    let reading = window.close(stored)?;
    ensure!(
        stored == per_session * WORKERS,
        "{stored} events stored, not {}",
        per_session * WORKERS
    );
    end_all(d, ids).await?;
    Ok(reading)
}

/// `count` events of kubectl requests (started, finished) for `session`, chained and signed
/// with the gateway's audit key, as the gateway would upload them.
fn chained_events(
    session: &SessionId,
    count: usize,
    audit_key: &Arc<SigningKey>,
) -> anyhow::Result<Vec<AuditEvent>> {
    let chained = ChainingSink::new(MemoryAuditSink::new()).with_signer(audit_key.clone());
    let path = "/api/v1/namespaces/default/pods";
    for n in 1..=(count / 2) as u64 {
        let started = RequestStarted {
            request_id: n,
            method: "GET".into(),
            path: path.into(),
            query: None,
            info: RequestInfo::classify(&http::Method::GET, path, None),
            kubectl_command: Some("kubectl get".into()),
            kubectl_session: Some(format!("k{n}")),
            user_agent: Some("kubectl/v1.32.0".into()),
            impersonation: None,
        };
        let finished = RequestFinished {
            request_id: n,
            status: 200,
            bytes_in: 0,
            bytes_out: 1_024,
            duration_ms: 3,
            error: None,
        };
        for kind in [
            AuditEventKind::RequestStarted(Box::new(started)),
            AuditEventKind::RequestFinished(finished),
        ] {
            chained
                .record(AuditEvent::now(session.clone(), kind))
                .map_err(|e| anyhow::anyhow!("chaining: {e}"))?;
        }
    }
    let events = chained.inner().events();
    ensure!(
        events.len() == count,
        "{} events made, not {count}",
        events.len()
    );
    Ok(events)
}
