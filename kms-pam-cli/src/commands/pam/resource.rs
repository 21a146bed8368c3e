//! `kms-pam pam resource create|update|list|show|delete`.

mod update;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context as _};
use clap::{ArgAction, Args, Subcommand, ValueEnum};
use kms_pam::audit::recording::UnrecordedStreams;
use kms_pam::kms::api::{CreateResource, RecordingPolicy, Resource};

use crate::globals::{Globals, KmsUrl};
use crate::output::{self, Table};

/// `pam resource ...`.
#[derive(Debug, Args)]
pub(crate) struct ResourceArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: ResourceCommand,
}

/// The `pam resource` commands. `create` and `update` have no KMS `--url`: there it names the API
/// server.
#[derive(Debug, Subcommand)]
pub(crate) enum ResourceCommand {
    /// Register a cluster (admin). The KMS URL goes before `pam` here: `kms-pam --url KMS pam …`.
    Create(CreateArgs),
    /// Change a resource (admin): only what is given changes; its accounts and grants stay.
    /// The KMS URL goes before `pam` here too.
    Update(update::UpdateArgs),
    /// List resources.
    List {
        #[command(flatten)]
        kms: KmsUrl,
    },
    /// Show one resource.
    Show {
        /// Resource name.
        name: String,
        #[command(flatten)]
        kms: KmsUrl,
    },
    /// Delete a resource with its accounts and grants (admin); sessions stay as history.
    Delete {
        /// Resource name.
        name: String,
        #[command(flatten)]
        kms: KmsUrl,
    },
}

/// The kinds of resources.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum ResourceKind {
    /// A Kubernetes API server.
    Kubernetes,
}

/// `pam resource create kubernetes NAME --url URL --gateway GW [--ssl-verify=false] [--ca-cert FILE]`.
#[derive(Debug, Args)]
pub(crate) struct CreateArgs {
    /// Resource kind.
    #[arg(value_enum)]
    pub kind: ResourceKind,
    /// Resource name.
    pub name: String,
    /// The Kubernetes API server URL (https://HOST:PORT).
    #[arg(long, value_name = "URL")]
    pub url: String,
    /// The gateway that reaches it.
    #[arg(long, value_name = "GW")]
    pub gateway: String,
    /// Verify the API server's certificate (--ssl-verify=false disables it; avoid).
    #[arg(long, value_name = "BOOL", default_value_t = true, action = ArgAction::Set)]
    pub ssl_verify: bool,
    /// CA bundle (PEM) to verify the API server with, instead of the system roots.
    #[arg(long, value_name = "FILE")]
    pub ca_cert: Option<PathBuf>,
    /// Streams the gateway cannot record (SPDY exec/attach, port-forward, other upgrades):
    /// refused with a message saying why (deny, the default), or let through unrecorded (allow).
    #[arg(long, value_name = "POLICY", default_value = "deny")]
    pub unrecorded_streams: UnrecordedStreams,
    /// Bytes of an exec/attach stream recorded, all channels together (default: the
    /// gateway's, 1MiB). Sizes: 4096, 64KiB, 1MiB, 2GiB.
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub recording_max_bytes: Option<u64>,
    /// Bytes of what the user typed (stdin, resize) recorded per stream, past the recording
    /// cap too (default: the gateway's, 8MiB).
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub recording_input_max_bytes: Option<u64>,
}

/// `4096`, `64KiB`, `1MiB`, `2GiB` (K, M, G and KB, MB, GB read as powers of 1024 too).
fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let digits = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(digits);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("expected a size such as 4096, 64KiB or 1MiB, got {text:?}"))?;
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        other => return Err(format!("unknown size unit {other:?}; use KiB, MiB or GiB")),
    };
    number
        .checked_mul(1 << shift)
        .ok_or_else(|| format!("{text} is too large"))
}

/// Runs `pam resource ...`.
pub(crate) async fn run(args: ResourceArgs, globals: &Globals) -> anyhow::Result<ExitCode> {
    match args.command {
        ResourceCommand::Create(create) => self::create(create, globals).await,
        ResourceCommand::Update(args) => update::run(args, globals).await,
        ResourceCommand::List { kms } => list(&globals.with(&kms)).await,
        ResourceCommand::Show { name, kms } => {
            let globals = globals.with(&kms);
            let resource = globals.client()?.resources().get(&name).await?;
            if globals.json() {
                output::print_json(&resource)?;
            } else {
                output::print(&describe(&resource))?;
            }
            Ok(ExitCode::SUCCESS)
        }
        ResourceCommand::Delete { name, kms } => {
            globals
                .with(&kms)
                .client()?
                .resources()
                .delete(&name)
                .await?;
            output::print(&format!(
                "Deleted resource {name} with its accounts and grants.\n"
            ))?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn create(args: CreateArgs, globals: &Globals) -> anyhow::Result<ExitCode> {
    let ca_cert = args.ca_cert.as_deref().map(read_ca_bundle).transpose()?;
    if !args.ssl_verify {
        eprintln!(
            "warning: the API server's certificate will not be verified for {}; anyone on the \
             path between the gateway and the cluster can read and change its traffic",
            args.name
        );
    }
    let client = globals.client()?;
    let request = CreateResource {
        kind: match args.kind {
            ResourceKind::Kubernetes => kms_pam::kms::api::ResourceKind::Kubernetes,
        },
        name: args.name,
        url: args.url,
        gateway: args.gateway,
        ssl_verify: args.ssl_verify,
        ca_cert,
        recording: RecordingPolicy::default()
            .with_unrecorded_streams(args.unrecorded_streams)
            .with_max_bytes(args.recording_max_bytes)
            .with_max_input_bytes(args.recording_input_max_bytes),
    };
    let resource = client.resources().create(&request).await?;
    if globals.json() {
        output::print_json(&resource)?;
    } else {
        output::print(&format!(
            "Created resource {} ({}) behind gateway {}.\n",
            resource.name, resource.url, resource.gateway
        ))?;
    }
    Ok(ExitCode::SUCCESS)
}

fn read_ca_bundle(path: &std::path::Path) -> anyhow::Result<String> {
    let pem = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read CA bundle {}", path.display()))?;
    if !pem.contains("-----BEGIN CERTIFICATE-----") {
        bail!("{} holds no PEM certificate", path.display());
    }
    Ok(pem)
}

async fn list(globals: &Globals) -> anyhow::Result<ExitCode> {
    let resources = globals.client()?.resources().list().await?;
    if globals.json() {
        output::print_json(&resources)?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut table = Table::new(&["NAME", "KIND", "URL", "GATEWAY", "TLS"]);
    for resource in resources {
        let tls = tls_mode(&resource).to_owned();
        table.row(vec![
            resource.name,
            resource.kind.to_string(),
            resource.url,
            resource.gateway,
            tls,
        ]);
    }
    table.print("No resources found.")?;
    Ok(ExitCode::SUCCESS)
}

fn tls_mode(resource: &Resource) -> &'static str {
    // Resources stored before plain HTTP was refused: the gateway will not use them.
    if !resource.url.starts_with("https://") {
        return "none (not https; refused)";
    }
    match (resource.ssl_verify, resource.ca_cert.is_some()) {
        (false, _) => "not verified",
        (true, true) => "CA bundle",
        (true, false) => "system roots",
    }
}

fn describe(resource: &Resource) -> String {
    format!(
        "Name:       {}\nKind:       {}\nURL:        {}\nGateway:    {}\nTLS:        {}\n\
         Recording:  {}\nCreated:    {}\n",
        output::inert(&resource.name),
        resource.kind,
        output::inert(&resource.url),
        output::inert(&resource.gateway),
        tls_mode(resource),
        recording(&resource.recording),
        output::time(resource.created_at)
    )
}

/// `unrecordable streams refused; caps: gateway default, input 16MiB`.
fn recording(policy: &RecordingPolicy) -> String {
    let streams = match policy.unrecorded_streams {
        UnrecordedStreams::Allow => "unrecordable streams allowed (unrecorded)",
        _ => "unrecordable streams refused",
    };
    let cap =
        |n: Option<u64>| n.map_or_else(|| "gateway default".to_owned(), |n| format!("{n} bytes"));
    format!(
        "{streams}; cap {}, input cap {}",
        cap(policy.max_bytes),
        cap(policy.max_input_bytes)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resource(url: &str, ssl_verify: bool, ca_cert: Option<&str>) -> Resource {
        Resource {
            name: "prod".into(),
            kind: kms_pam::kms::api::ResourceKind::Kubernetes,
            url: url.into(),
            gateway: "gw-1".into(),
            ssl_verify,
            ca_cert: ca_cert.map(str::to_owned),
            created_at: std::time::SystemTime::UNIX_EPOCH,
            recording: RecordingPolicy::default(),
        }
    }

    #[test]
    fn tls_column_says_what_the_gateway_does() {
        assert_eq!(
            tls_mode(&resource("https://k:6443", true, None)),
            "system roots"
        );
        assert_eq!(
            tls_mode(&resource("https://k:6443", true, Some("PEM"))),
            "CA bundle"
        );
        assert_eq!(
            tls_mode(&resource("https://k:6443", false, None)),
            "not verified"
        );
        // A plain-HTTP resource stored before such URLs were refused is no "system roots".
        assert_eq!(
            tls_mode(&resource("http://k:8080", true, None)),
            "none (not https; refused)"
        );
    }

    #[test]
    fn sizes_read_with_binary_units() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("64KiB"), Ok(64 << 10));
        assert_eq!(parse_size("1MiB"), Ok(1 << 20));
        assert_eq!(parse_size("2g"), Ok(2 << 30));
        assert!(parse_size("1.5MiB").is_err());
        assert!(parse_size("10 parsecs").is_err());
        assert!(parse_size("").is_err());
    }
}
