//! `kms-pam relay …`: the relay of outbound-only gateways (docs/cli.md, "Relays").
//!
//! `relay certificate` gets a relay its serving certificate from KMS (organisation admin): the
//! relay's key is made here and never leaves this machine; KMS signs its public key for the
//! hosts given and names the relay `kms-pam://relay/NAME`, which CLIs and gateways require of a
//! relay.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Args, Subcommand};
use serde::Serialize;

use kms_pam::kms::api::IssueRelayCertificate;
use kms_pam::tls::generate_csr;

use crate::globals::{Globals, KmsUrl};
use crate::output;

/// The relay's private key, in the `--out` directory.
pub(crate) const KEY_FILE: &str = "relay.key";
/// The relay's certificate, in the `--out` directory.
pub(crate) const CERT_FILE: &str = "relay.crt";
/// The KMS CA, in the `--out` directory: the relay checks session and gateway certificates
/// with it.
pub(crate) const CA_FILE: &str = "kms-ca.crt";

/// `relay ...`.
#[derive(Debug, Args)]
pub(crate) struct RelayArgs {
    #[command(subcommand)]
    pub(crate) command: RelayCommand,
}

/// The `relay` subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum RelayCommand {
    /// Get a relay's certificate from KMS (organisation admin): makes the relay's key here and
    /// writes DIR/relay.key (mode 0600), DIR/relay.crt and DIR/kms-ca.crt. The certificate is
    /// valid 90 days; run it again before then.
    Certificate(CertificateArgs),
    /// Run a relay on the certificate `relay certificate` wrote: gateways dial in with their
    /// identity, CLIs with their session certificate, and the relay joins them, carrying only
    /// ciphertext. SIGTERM drains (docs/relay.md).
    Serve(super::relay_serve::RelayServeArgs),
}

impl RelayCommand {
    /// Whether this runs a service (and should log like one).
    pub(crate) fn is_service(&self) -> bool {
        matches!(self, Self::Serve(_))
    }
}

/// `relay certificate`.
#[derive(Debug, Args)]
pub(crate) struct CertificateArgs {
    #[command(flatten)]
    kms: KmsUrl,
    /// The relay's name, written into its certificate as kms-pam://relay/NAME (1-63 letters,
    /// digits, '-', '_' or '.').
    #[arg(long, value_name = "NAME")]
    name: String,
    /// A DNS name or IP address CLIs and gateways dial the relay at (repeatable).
    #[arg(long = "host", value_name = "HOST", required = true)]
    hosts: Vec<String>,
    /// Where to write the key and the certificates (created with mode 0700 if missing).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
}

/// Runs `relay ...`.
pub(crate) async fn run(args: RelayArgs, globals: &Globals) -> anyhow::Result<ExitCode> {
    match args.command {
        RelayCommand::Certificate(args) => certificate(args, globals).await,
        RelayCommand::Serve(args) => super::relay_serve::run(args).await,
    }
}

/// What `relay certificate -o json` prints.
#[derive(Serialize)]
struct Written<'a> {
    relay: &'a str,
    hosts: &'a [String],
    key: &'a Path,
    certificate: &'a Path,
    ca_certificate: &'a Path,
    not_after: String,
}

async fn certificate(args: CertificateArgs, globals: &Globals) -> anyhow::Result<ExitCode> {
    let client = globals.with(&args.kms).client()?;
    let (key, csr) = generate_csr(&args.name).context("cannot make the relay's key")?;
    let request = IssueRelayCertificate {
        name: args.name.clone(),
        names: args.hosts.clone(),
        csr,
    };
    let issued = client.relays().issue_certificate(&request).await?;
    let (key_path, cert_path, ca_path) = (
        args.out.join(KEY_FILE),
        args.out.join(CERT_FILE),
        args.out.join(CA_FILE),
    );
    kms_pam::fsutil::create_private_dir(&args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;
    write(&key_path, key.expose_secret(), 0o600)?;
    write(&cert_path, &issued.certificate, 0o644)?;
    write(&ca_path, &issued.ca_certificate, 0o644)?;
    if globals.json() {
        output::print_json(&Written {
            relay: &args.name,
            hosts: &args.hosts,
            key: &key_path,
            certificate: &cert_path,
            ca_certificate: &ca_path,
            not_after: kms_pam::time::format_rfc3339(issued.not_after),
        })?;
        return Ok(ExitCode::SUCCESS);
    }
    output::print(&format!(
        "Relay {} certified for {}, valid until {}:\n  {}  its private key (mode 0600; it never \
         left this machine)\n  {}  its certificate\n  {}  the KMS CA (it checks session and \
         gateway certificates with it)\nRun this again before then for a new key and \
         certificate.\n",
        args.name,
        args.hosts.join(", "),
        output::time(issued.not_after),
        key_path.display(),
        cert_path.display(),
        ca_path.display(),
    ))?;
    Ok(ExitCode::SUCCESS)
}

/// Replaces `path` with `text` (a new file renamed over it), ending with `mode`.
fn write(path: &Path, text: &str, mode: u32) -> anyhow::Result<()> {
    kms_pam::fsutil::replace_file(path, text.as_bytes(), mode)
        .with_context(|| format!("cannot write {}", path.display()))
}
