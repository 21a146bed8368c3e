//! `kms-pam pam resource update NAME`: change a resource's API server URL, gateway, TLS
//! settings or recording policy, keeping its accounts and grants.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::bail;
use clap::{ArgAction, Args};
use kms_pam::audit::recording::UnrecordedStreams;
use kms_pam::kms::api::UpdateResource;

use super::{describe, parse_size, read_ca_bundle};
use crate::globals::Globals;
use crate::output;

/// `pam resource update NAME [--url URL] [--gateway GW] [--ssl-verify BOOL] [--ca-cert FILE |
/// --no-ca-cert] [recording flags]`: only what is given changes.
#[derive(Debug, Args)]
pub(crate) struct UpdateArgs {
    /// Resource name.
    pub name: String,
    /// New Kubernetes API server URL (https://HOST:PORT).
    #[arg(long, value_name = "URL")]
    pub url: Option<String>,
    /// New gateway to reach it through.
    #[arg(long, value_name = "GW")]
    pub gateway: Option<String>,
    /// Verify the API server's certificate (--ssl-verify=false disables it; avoid).
    #[arg(long, value_name = "BOOL", action = ArgAction::Set)]
    pub ssl_verify: Option<bool>,
    /// New CA bundle (PEM) to verify the API server with, instead of the system roots.
    #[arg(long, value_name = "FILE", conflicts_with = "no_ca_cert")]
    pub ca_cert: Option<PathBuf>,
    /// Remove the CA bundle: verify the API server with the system roots.
    #[arg(long)]
    pub no_ca_cert: bool,
    /// Streams the gateway cannot record: refused (deny) or let through unrecorded (allow).
    #[arg(long, value_name = "POLICY")]
    pub unrecorded_streams: Option<UnrecordedStreams>,
    /// Bytes of an exec/attach stream recorded, all channels together.
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub recording_max_bytes: Option<u64>,
    /// Bytes of what the user typed recorded per stream, past the recording cap too.
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub recording_input_max_bytes: Option<u64>,
}

impl UpdateArgs {
    fn changes_recording(&self) -> bool {
        self.unrecorded_streams.is_some()
            || self.recording_max_bytes.is_some()
            || self.recording_input_max_bytes.is_some()
    }
}

/// Runs `pam resource update`.
pub(crate) async fn run(args: UpdateArgs, globals: &Globals) -> anyhow::Result<ExitCode> {
    let ca_cert = match (&args.ca_cert, args.no_ca_cert) {
        (Some(path), _) => Some(read_ca_bundle(path)?),
        (None, true) => Some(String::new()),
        (None, false) => None,
    };
    let nothing = args.url.is_none()
        && args.gateway.is_none()
        && args.ssl_verify.is_none()
        && ca_cert.is_none()
        && !args.changes_recording();
    if nothing {
        bail!(
            "nothing to change for resource {}: give --url, --gateway, --ssl-verify, --ca-cert, \
             --no-ca-cert or a recording flag",
            args.name
        );
    }
    let client = globals.client()?;
    // The API replaces the whole recording policy: start from the resource's.
    let recording = if args.changes_recording() {
        let mut policy = client.resources().get(&args.name).await?.recording;
        if let Some(streams) = args.unrecorded_streams {
            policy = policy.with_unrecorded_streams(streams);
        }
        if let Some(max) = args.recording_max_bytes {
            policy = policy.with_max_bytes(Some(max));
        }
        if let Some(max) = args.recording_input_max_bytes {
            policy = policy.with_max_input_bytes(Some(max));
        }
        Some(policy)
    } else {
        None
    };
    if args.ssl_verify == Some(false) {
        eprintln!(
            "warning: the API server's certificate will not be verified for {}; anyone on the \
             path between the gateway and the cluster can read and change its traffic",
            args.name
        );
    }
    let request = UpdateResource {
        url: args.url,
        gateway: args.gateway,
        ssl_verify: args.ssl_verify,
        ca_cert,
        recording,
    };
    let resource = client.resources().update(&args.name, &request).await?;
    if globals.json() {
        output::print_json(&resource)?;
    } else {
        output::print(&format!(
            "Updated resource {}; its accounts and grants are kept, and sessions already open \
             keep running as they were opened.\n{}",
            output::inert(&resource.name),
            describe(&resource)
        ))?;
    }
    Ok(ExitCode::SUCCESS)
}
