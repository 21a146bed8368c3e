//! `kms-pam-gateway`: terminates session tunnels and forwards to the Kubernetes API server.
//! Thin: arguments → configuration → `kms_pam::gateway::kms::serve` (with KMS) or
//! `kms_pam::gateway::standalone::serve` (from a file).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use clap::Parser;
use kms_pam::audit::JsonLinesSink;
use kms_pam::gateway::kms::{self as kms_mode, KmsGateway};
use kms_pam::gateway::standalone;
use kms_pam::gateway::GatewayOptions;
use kms_pam::kms::client::KmsClientOptions;
use kms_pam::relay::DialOptions;
use kms_pam::tls::UpstreamTls;
use kms_pam::Secret;
use tokio::net::TcpListener;

/// The kms-pam gateway.
#[derive(Debug, Parser)]
#[command(name = "kms-pam-gateway", version, about)]
#[command(group(clap::ArgGroup::new("mode").required(true).args(["kms_url", "config"])))]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
struct Args {
    /// Something else than serving.
    #[command(subcommand)]
    command: Option<GatewayCommand>,
    /// KMS base URL: sessions and credentials come from KMS. With KMS replicas, repeat it or
    /// separate the URLs with commas: calls go on to the next URL when one cannot be reached.
    #[arg(
        long,
        value_name = "URL",
        env = "KMS_PAM_URL",
        requires = "name",
        value_delimiter = ','
    )]
    kms_url: Vec<String>,
    /// Trust this CA bundle (PEM) for an https:// KMS with a private CA, instead of the system
    /// roots.
    #[arg(
        long,
        value_name = "FILE",
        env = "KMS_PAM_KMS_CA",
        requires = "kms_url"
    )]
    kms_ca: Option<PathBuf>,
    /// Allow a plain http:// KMS URL to another host than this one (a lab network only): the
    /// gateway token and every session's service-account credential would cross the network
    /// in clear. Refused without it.
    #[arg(long, env = "KMS_PAM_INSECURE_HTTP", requires = "kms_url")]
    insecure_http: bool,
    /// This gateway's name, as created with `kms-pam gateway create NAME`.
    #[arg(long, env = "KMS_PAM_NAME", value_name = "NAME")]
    name: Option<String>,
    /// The address CLIs dial, HOST:PORT (default: the listen address; required when that is
    /// unspecified, such as the default 0.0.0.0). With relays only, the name the gateway's
    /// certificate carries (default: NAME:443); nothing dials it.
    #[arg(long, env = "KMS_PAM_ADVERTISE", value_name = "ADDR")]
    advertise: Option<String>,
    /// Dial out to this relay (HOST:PORT), so CLIs reach the gateway without an inbound port.
    /// Repeat it (or separate with commas) for several relays; the gateway keeps a tunnel to
    /// each. Without --listen, no tunnel port is opened at all. HTTPS_PROXY is honoured.
    #[arg(
        long = "relay",
        value_name = "HOST:PORT",
        env = "KMS_PAM_RELAY",
        requires = "kms_url",
        value_delimiter = ','
    )]
    relays: Vec<String>,
    /// One-time enrollment token (first run only).
    #[arg(
        long,
        value_name = "TOKEN",
        env = "KMS_PAM_ENROLL_TOKEN",
        hide_env_values = true,
        conflicts_with = "enroll_token_file"
    )]
    enroll_token: Option<String>,
    /// Read the one-time enrollment token from this file (a mounted secret), so it is on no
    /// command line.
    #[arg(long, value_name = "FILE", env = "KMS_PAM_ENROLL_TOKEN_FILE")]
    enroll_token_file: Option<PathBuf>,
    /// Where the gateway keeps its identity and audit spool.
    #[arg(
        long,
        value_name = "DIR",
        env = "KMS_PAM_DATA_DIR",
        default_value = "kms-pam-gateway-data"
    )]
    data_dir: PathBuf,
    /// Standalone mode: resources, accounts and sessions from this YAML file (see
    /// docs/standalone-gateway.md).
    #[arg(
        long,
        value_name = "FILE",
        env = "KMS_PAM_CONFIG",
        conflicts_with = "kms_url"
    )]
    config: Option<PathBuf>,
    /// Address to accept session tunnels on (default 0.0.0.0:8443; with --relay, none unless
    /// given).
    #[arg(long, value_name = "ADDR", env = "KMS_PAM_LISTEN")]
    listen: Option<SocketAddr>,
    /// Serve /healthz, /readyz (ready: listening, or a relay holds the tunnel) and Prometheus
    /// /metrics on this address.
    #[arg(long, value_name = "ADDR", env = "KMS_PAM_METRICS_LISTEN")]
    metrics_listen: Option<SocketAddr>,
    /// Append audit events as JSON lines to this file (default: DATA_DIR/audit.jsonl).
    #[arg(long, value_name = "FILE", env = "KMS_PAM_AUDIT_LOG")]
    audit_log: Option<PathBuf>,
    /// Log lines on stderr as text or as JSON lines.
    #[arg(long, value_enum, env = "KMS_PAM_LOG_FORMAT", default_value_t = LogFormat::Text)]
    log_format: LogFormat,
}

/// How log lines are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    /// One line per event (colours only on a terminal).
    Text,
    /// One JSON object per line.
    Json,
}

/// What the gateway does besides serving.
#[derive(Debug, clap::Subcommand)]
enum GatewayCommand {
    /// Exit 0 when URL answers 200 (a container healthcheck: the image has no shell or curl).
    Healthcheck {
        /// What to ask (plain http).
        #[arg(
            long,
            default_value = "http://127.0.0.1:9100/healthz",
            value_name = "URL"
        )]
        url: String,
    },
}

/// Where tunnels are accepted when nothing else is said.
const DEFAULT_LISTEN: &str = "0.0.0.0:8443";

impl Args {
    /// The tunnel listener's address: the one given, the default without relays, none with.
    fn listen(&self) -> Option<SocketAddr> {
        match self.listen {
            Some(addr) => Some(addr),
            None if self.relays.is_empty() => DEFAULT_LISTEN.parse().ok(),
            None => None,
        }
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    if args.command.is_none() && !args.kms_url.is_empty() {
        check_advertise(&args);
    }
    init_tracing(args.log_format);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Some(GatewayCommand::Healthcheck { url }) = &args.command {
        return match runtime.block_on(kms_pam::metrics::healthcheck(url)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("unhealthy: {e}");
                ExitCode::FAILURE
            }
        };
    }
    match runtime.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    // Read the standalone file first: a bad file fails before anything is created.
    let standalone_file = args.config.as_deref().map(standalone::load).transpose()?;
    let relays = args
        .relays
        .iter()
        .map(|url| kms_pam::relay::relay_address(url).map_err(anyhow::Error::msg))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let listener = match args.listen() {
        Some(addr) => Some(
            TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot listen on {addr}"))?,
        ),
        None => None,
    };
    let metrics_listener = match args.metrics_listen {
        Some(addr) => Some(
            TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot listen on {addr} for metrics"))?,
        ),
        None => None,
    };
    let audit_log = match args.audit_log {
        Some(path) => path,
        None => {
            kms_pam::fsutil::create_private_dir(&args.data_dir)
                .with_context(|| format!("cannot create {}", args.data_dir.display()))?;
            args.data_dir.join("audit.jsonl")
        }
    };
    let audit = Arc::new(JsonLinesSink::open(&audit_log).await?);
    let options = GatewayOptions::new(audit).with_metrics_listener(metrics_listener);
    let local = listener.as_ref().map(TcpListener::local_addr).transpose()?;
    let shown = local.map_or_else(|| "none".to_owned(), |a| a.to_string());
    if let Some(file) = standalone_file {
        let listener = listener.context("a standalone gateway needs --listen")?;
        tracing::info!(name = %file.name, listen = %shown, "standalone gateway starting");
        standalone::serve(listener, file, options, shutdown_signal()).await?;
    } else if let (false, Some(name)) = (args.kms_url.is_empty(), args.name) {
        let kms_url = args.kms_url.join(",");
        tracing::info!(%name, listen = %shown, relays = ?relays, %kms_url, "gateway starting");
        let advertise = match (args.advertise, local) {
            (Some(advertise), _) => advertise,
            (None, Some(local)) => local.to_string(),
            (None, None) => format!("{name}:443"),
        };
        let mut kms_client = KmsClientOptions::new().with_insecure_http(args.insecure_http);
        if let Some(file) = &args.kms_ca {
            let pem = std::fs::read_to_string(file).with_context(|| {
                format!("cannot read the KMS CA bundle --kms-ca {}", file.display())
            })?;
            kms_client = kms_client.with_tls(UpstreamTls::CaBundle(pem));
        }
        let enroll_token = match &args.enroll_token_file {
            Some(file) => Some(read_token_file(file)?),
            None => args.enroll_token.map(Secret::new),
        };
        let config = KmsGateway::new(kms_url, name, args.data_dir, advertise)
            .with_enroll_token(enroll_token)
            .with_kms_client_options(kms_client)
            .with_relays(Some(DialOptions::new(relays)))
            .with_options(options);
        kms_mode::serve_on(listener, config, shutdown_signal()).await?;
    }
    tracing::info!("gateway stopped");
    Ok(())
}

/// Logs go to stderr; `RUST_LOG` overrides the level (default `info`).
fn init_tracing(format: LogFormat) {
    use std::io::IsTerminal as _;
    let filter =
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().init(),
        // Colour codes only where a terminal shows them, never into a log file.
        LogFormat::Text => builder.with_ansi(std::io::stderr().is_terminal()).init(),
    }
}

/// A gateway must never advertise an unspecified address (`0.0.0.0`, `::`): CLIs would dial
/// their own machine and the certificate would name no reachable host. Nothing is derived: the
/// operator says which address CLIs reach. A usage error (exit 2) otherwise.
fn check_advertise(args: &Args) {
    use clap::CommandFactory as _;
    let problem = match &args.advertise {
        Some(advertise) => kms_mode::check_advertised_address(advertise)
            .err()
            .map(|_| {
                format!(
                    "--advertise {advertise} is unspecified (every interface), which CLIs \
                     cannot dial; give the name or address they reach this gateway at"
                )
            }),
        None => args
            .listen()
            .filter(|l| l.ip().is_unspecified())
            .map(|listen| {
                format!(
                "--listen {listen} accepts on every interface, which is not an address CLIs can \
                 dial; pass --advertise HOST:PORT with the name or address they reach this \
                 gateway at"
            )
            }),
    };
    if let Some(problem) = problem {
        Args::command()
            .error(clap::error::ErrorKind::MissingRequiredArgument, problem)
            .exit();
    }
}

/// The enrollment token a `--enroll-token-file` holds.
fn read_token_file(file: &std::path::Path) -> anyhow::Result<Secret> {
    let text = std::fs::read_to_string(file)
        .with_context(|| format!("cannot read --enroll-token-file {}", file.display()))?;
    let token = Secret::new(text.trim());
    if token.is_empty() {
        anyhow::bail!("--enroll-token-file {} is empty", file.display());
    }
    Ok(token)
}

/// Ctrl+C or SIGTERM.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kms_urls_may_be_repeated_or_comma_separated() {
        let args = Args::try_parse_from([
            "kms-pam-gateway",
            "--kms-url",
            "http://a:1,http://b:2",
            "--kms-url",
            "http://c:3",
            "--name",
            "gw1",
        ])
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(args.kms_url, ["http://a:1", "http://b:2", "http://c:3"]);
        let standalone =
            Args::try_parse_from(["kms-pam-gateway", "--config", "gw.yaml"]).map(|a| a.kms_url);
        assert!(standalone.is_ok_and(|urls| urls.is_empty()));
    }
}
