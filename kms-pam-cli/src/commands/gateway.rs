//! `kms-pam gateway create|list|revoke`. Gateways belong to the organisation and may serve
//! resources of several projects.

use std::process::ExitCode;

use clap::{Args, Subcommand};

use crate::globals::{Globals, KmsUrl};
use crate::output::{self, Table};

/// `gateway ...`.
#[derive(Debug, Args)]
pub(crate) struct GatewayArgs {
    #[command(flatten)]
    kms: KmsUrl,
    #[command(subcommand)]
    command: GatewayCommand,
}

#[derive(Debug, Subcommand)]
enum GatewayCommand {
    /// Register a gateway and print its one-time enrollment token (valid 1 h). For a revoked
    /// gateway: a new enrollment token, to enroll it again.
    Create {
        /// Gateway name.
        name: String,
    },
    /// List gateways: address, online/offline/revoked, last heartbeat, audit key fingerprint.
    List,
    /// Revoke a gateway: its token is refused, its sessions end and their tunnels are cut.
    Revoke {
        /// Gateway name.
        name: String,
    },
}

/// Runs `gateway ...`.
pub(crate) async fn run(args: GatewayArgs, globals: &Globals) -> anyhow::Result<ExitCode> {
    let globals = globals.with(&args.kms);
    let client = globals.client()?;
    match args.command {
        GatewayCommand::Create { name } => {
            let created = client.gateways().create(&name).await?;
            if globals.json() {
                output::print_json(&created)?;
                return Ok(ExitCode::SUCCESS);
            }
            output::print(&format!(
                "Created gateway {name}. Enrollment token (one use, valid until {}):\n\n  {}\n\n\
                 Start the gateway where it can reach the Kubernetes API server:\n\n  \
                 kms-pam-gateway --kms-url {} --name {name} --listen 0.0.0.0:8443 \
                 --advertise HOST:8443 --enroll-token {} --data-dir /var/lib/kms-pam-gateway\n",
                output::time(created.expires_at),
                created.enrollment_token.expose(),
                client.base_url(),
                created.enrollment_token.expose(),
            ))?;
        }
        GatewayCommand::List => {
            let gateways = client.gateways().list().await?;
            if globals.json() {
                output::print_json(&gateways)?;
                return Ok(ExitCode::SUCCESS);
            }
            let mut table =
                Table::new(&["NAME", "ADDRESS", "STATUS", "LAST HEARTBEAT", "AUDIT KEY"]);
            for gateway in gateways {
                let key = gateway.audit_key.map(|k| k.fingerprint());
                table.row(vec![
                    gateway.name,
                    output::or_dash(gateway.address.as_deref()),
                    gateway.status.to_string(),
                    output::ago(gateway.last_heartbeat),
                    output::or_dash(key.as_deref()),
                ]);
            }
            table.print("No gateways found.")?;
        }
        GatewayCommand::Revoke { name } => {
            let gateway = client.gateways().revoke(&name).await?;
            if globals.json() {
                output::print_json(&gateway)?;
                return Ok(ExitCode::SUCCESS);
            }
            output::print(&format!(
                "Revoked gateway {name}: its token is refused and its sessions were ended. To                  bring it back, run `kms-pam gateway create {name}` and enroll it again with                  the new token (and a fresh data directory).\n"
            ))?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
