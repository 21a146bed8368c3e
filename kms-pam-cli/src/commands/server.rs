//! `kms-pam server` (the KMS control plane) and `kms-pam dev` (KMS and a gateway in one process).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{bail, Context as _};
use clap::{Args, Subcommand};
use kms_pam::audit::JsonLinesSink;
use kms_pam::gateway::kms::{self as kms_mode, KmsGateway};
use kms_pam::gateway::GatewayOptions;
use kms_pam::kms::api::GatewayStatus;
use kms_pam::kms::client::{KmsClient, KmsClientOptions};
use kms_pam::server::{Server, ServerConfig, ServerTls};
use kms_pam::Secret;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::output;

/// The gateway `kms-pam dev` runs.
const DEV_GATEWAY: &str = "dev";

/// `server [--listen 127.0.0.1:8080] [--data-dir DIR] [--database URL] [--root-key PATH]
/// [--tls-cert FILE --tls-key FILE]`, or
/// `server migrate-store --from URL --to URL`.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub(crate) struct ServerArgs {
    #[command(subcommand)]
    command: Option<ServerCommand>,
    /// Address to serve the API on (and /healthz, /readyz, /metrics).
    #[arg(
        long,
        env = "KMS_PAM_LISTEN",
        default_value = "127.0.0.1:8080",
        value_name = "ADDR"
    )]
    listen: SocketAddr,
    /// Where the database, root key and admin token live (created 0700).
    #[arg(
        long,
        env = "KMS_PAM_DATA_DIR",
        default_value = "kms-pam-data",
        value_name = "DIR"
    )]
    data_dir: PathBuf,
    /// Store to use: sqlite://PATH or postgres://USER@HOST:PORT/DB (default: SQLite in
    /// DATA_DIR). A PostgreSQL URL with a password belongs in --database-file.
    #[arg(
        long,
        env = "KMS_PAM_DATABASE",
        hide_env_values = true,
        value_name = "URL"
    )]
    database: Option<String>,
    /// Read the store's URL from this file (a mounted secret; surrounding whitespace ignored).
    #[arg(
        long,
        env = "KMS_PAM_DATABASE_FILE",
        value_name = "FILE",
        conflicts_with = "database"
    )]
    database_file: Option<PathBuf>,
    /// Root key file sealing secrets at rest (default: DATA_DIR/root.key); every replica on
    /// one PostgreSQL database must be given the same file.
    #[arg(long, env = "KMS_PAM_ROOT_KEY_FILE", value_name = "PATH")]
    root_key: Option<PathBuf>,
    /// Serve HTTPS with this certificate chain (PEM, leaf first); needs --tls-key. Re-read when
    /// the file changes. Without it KMS serves plain HTTP (loopback, or behind a TLS proxy).
    #[arg(
        long,
        env = "KMS_PAM_TLS_CERT",
        value_name = "FILE",
        requires = "tls_key"
    )]
    tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM: PKCS#8, PKCS#1 or SEC1); needs --tls-cert.
    #[arg(
        long,
        env = "KMS_PAM_TLS_KEY",
        value_name = "FILE",
        requires = "tls_cert"
    )]
    tls_key: Option<PathBuf>,
}

/// `dev [--data-dir DIR] [--listen ADDR] [--gateway-listen ADDR]`.
#[derive(Debug, Args)]
pub(crate) struct DevArgs {
    /// Where KMS and the gateway keep their state (created 0700).
    #[arg(long, default_value = "kms-pam-dev", value_name = "DIR")]
    data_dir: PathBuf,
    /// Address of the KMS API.
    #[arg(long, default_value = "127.0.0.1:8080", value_name = "ADDR")]
    listen: SocketAddr,
    /// Address the gateway accepts session tunnels on.
    #[arg(long, default_value = "127.0.0.1:8443", value_name = "ADDR")]
    gateway_listen: SocketAddr,
}

/// What `server` does besides serving.
#[derive(Debug, Subcommand)]
pub(crate) enum ServerCommand {
    /// Copies a SQLite store into an empty PostgreSQL database and verifies the copy (row
    /// counts, every session's event chain). Stop the server first; keep the root key.
    MigrateStore(MigrateStoreArgs),
}

/// `server migrate-store --from sqlite://PATH --to postgres://USER@HOST:PORT/DB`.
#[derive(Debug, Args)]
pub(crate) struct MigrateStoreArgs {
    /// The store to copy (read only).
    #[arg(long, value_name = "URL")]
    from: String,
    /// The empty database to copy it into.
    #[arg(long, value_name = "URL")]
    to: String,
}

/// Runs `server migrate-store`.
async fn migrate_store(args: MigrateStoreArgs) -> anyhow::Result<ExitCode> {
    let report = kms_pam::server::migrate_urls(&args.from, &args.to).await?;
    for (table, rows) in &report.rows {
        println!("{table:<18} {rows:>8} rows");
    }
    println!(
        "verified: row counts equal, {} session event chains identical",
        report.sessions_verified
    );
    Ok(ExitCode::SUCCESS)
}

/// The store URL a `--database-file` holds (it may carry a password: never on a command line).
fn read_database_file(file: &Path) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(file)
        .with_context(|| format!("cannot read --database-file {}", file.display()))?;
    let url = text.trim();
    if url.is_empty() {
        bail!("--database-file {} is empty", file.display());
    }
    Ok(url.to_owned())
}

/// Runs `server`.
pub(crate) async fn run_server(args: ServerArgs) -> anyhow::Result<ExitCode> {
    if let Some(ServerCommand::MigrateStore(migrate)) = args.command {
        return migrate_store(migrate).await;
    }
    let tls = match (args.tls_cert, args.tls_key) {
        (Some(cert), Some(key)) => Some(ServerTls::new(cert, key)),
        _ => None,
    };
    let database = match &args.database_file {
        Some(file) => Some(read_database_file(file)?),
        None => args.database,
    };
    let config = ServerConfig::new(args.data_dir)
        .with_database(database)
        .with_root_key(args.root_key)
        .with_tls(tls);
    let server = Server::open(config).await?;
    announce_admin(&server)?;
    let listener = bind(args.listen).await?;
    server.serve(listener, shutdown_signal()).await?;
    Ok(ExitCode::SUCCESS)
}

/// Runs `dev`: KMS, then its gateway `dev` (enrolled on the first start), until Ctrl+C. The
/// gateway stops first, so it never sees its KMS vanish.
pub(crate) async fn run_dev(args: DevArgs) -> anyhow::Result<ExitCode> {
    let server = Server::open(ServerConfig::new(&args.data_dir)).await?;
    announce_admin(&server)?;
    let admin_token_path = server.admin_token_path().to_owned();
    let kms_listener = bind(args.listen).await?;
    let gateway_listener = bind(args.gateway_listen).await?;
    let kms_url = format!("http://{}", kms_listener.local_addr()?);
    let gateway_addr = gateway_listener.local_addr()?.to_string();

    let kms_stop = CancellationToken::new();
    let kms = tokio::spawn(server.serve(kms_listener, kms_stop.clone().cancelled_owned()));
    let gateway =
        match dev_gateway(&args.data_dir, &kms_url, &gateway_addr, &admin_token_path).await {
            Ok(gateway) => gateway,
            Err(e) => {
                kms_stop.cancel();
                let _ = kms.await;
                return Err(e);
            }
        };
    let console = console_line(&kms_url, &admin_token_path).await;
    output::print(&dev_guide(
        &kms_url,
        &gateway_addr,
        &admin_token_path,
        &console,
    ))?;
    let served = kms_mode::serve(gateway_listener, gateway, shutdown_signal()).await;
    kms_stop.cancel();
    let kms_result = kms.await.context("the KMS task failed")?;
    served.context("gateway")?;
    kms_result?;
    Ok(ExitCode::SUCCESS)
}

async fn dev_gateway(
    data_dir: &Path,
    kms_url: &str,
    gateway_addr: &str,
    admin_token_path: &Path,
) -> anyhow::Result<KmsGateway> {
    let enroll_token = enrollment_token(kms_url, admin_token_path).await?;
    let audit = Arc::new(JsonLinesSink::open(&data_dir.join("audit.jsonl")).await?);
    Ok(
        KmsGateway::new(kms_url, DEV_GATEWAY, data_dir.join("gateway"), gateway_addr)
            .with_enroll_token(enroll_token)
            // KMS is in this process: the link never leaves the machine, whatever --listen is.
            .with_kms_client_options(same_process())
            .with_options(GatewayOptions::new(audit)),
    )
}

/// The gateway `dev` needs an enrollment token only until it has enrolled once.
async fn enrollment_token(
    kms_url: &str,
    admin_token_path: &Path,
) -> anyhow::Result<Option<Secret>> {
    let admin = admin_client(kms_url, admin_token_path)?;
    let gateways = admin.gateways().list().await?;
    match gateways.iter().find(|g| g.name == DEV_GATEWAY) {
        None => {
            let created = admin.gateways().create(DEV_GATEWAY).await?;
            Ok(Some(created.enrollment_token))
        }
        Some(gateway) if gateway.status == GatewayStatus::Pending => bail!(
            "gateway {DEV_GATEWAY:?} was created but never enrolled; remove the data directory to start over"
        ),
        Some(_) => Ok(None),
    }
}

/// A client of the dev KMS acting as its administrator.
fn admin_client(kms_url: &str, admin_token_path: &Path) -> anyhow::Result<KmsClient> {
    let token = std::fs::read_to_string(admin_token_path)
        .with_context(|| format!("cannot read the admin token {}", admin_token_path.display()))?;
    let token = Some(Secret::new(token.trim()));
    Ok(KmsClient::with_options(kms_url, token, &same_process())?)
}

/// How `dev` reaches the KMS it runs itself: over plain HTTP to its own listener (perhaps on a
/// LAN address given as `--listen`), which never crosses to another machine.
fn same_process() -> KmsClientOptions {
    KmsClientOptions::new().with_insecure_http(true)
}

/// The admin's one-time sign-in link to the web console, as the last line `dev` prints. The
/// dev server keeps running without it: the line then says how to get one later.
async fn console_line(kms_url: &str, admin_token_path: &Path) -> String {
    let link = match admin_client(kms_url, admin_token_path) {
        Ok(admin) => admin.console().link().await.map_err(anyhow::Error::from),
        Err(e) => Err(e),
    };
    match link {
        Ok(link) => format!(
            "Web console (sign-in link for admin, works once within 60 s; later run \
             `kms-pam console`):\n\n  {link}\n\n"
        ),
        Err(e) => format!("Web console: no sign-in link ({e:#}); run `kms-pam console`.\n\n"),
    }
}

fn announce_admin(server: &Server) -> anyhow::Result<()> {
    if !server.admin_created() {
        return Ok(());
    }
    output::print(&format!(
        "Created user admin; its API token is in {} (mode 0600).\n\
         KMS audit key (signs ended sessions; keep its fingerprint to check exported ones): {}\n",
        server.admin_token_path().display(),
        server.audit_public_key().fingerprint()
    ))
}

async fn bind(addr: SocketAddr) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))
}

fn dev_guide(kms_url: &str, gateway_addr: &str, admin_token: &Path, console: &str) -> String {
    format!(
        "KMS:      {kms_url}\nGateway:  {DEV_GATEWAY} at {gateway_addr}\n\n\
         Try it, in another terminal:\n\n  \
         export KMS_PAM_URL={kms_url}\n  \
         export KMS_PAM_TOKEN=$(cat {})\n  \
         kms-pam pam resource create kubernetes my-cluster --url https://API-SERVER:6443 \
         --gateway {DEV_GATEWAY} --ca-cert ca.pem\n  \
         kms-pam pam account create my-cluster/admin --token-file sa.token\n  \
         kms-pam pam access my-cluster/admin\n\n{console}Press Ctrl+C to stop.\n",
        admin_token.display()
    )
}

/// Ctrl+C or SIGTERM.
pub(crate) async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut terminate) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = terminate.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}
