//! `kms-pam gateway create|list|show|assign|unassign|update|revoke`. Gateways belong to the
//! organisation; an organisation admin says which projects may use each one and which API
//! server URLs its resources may have (docs/cli.md, "Gateway scope").

use std::process::ExitCode;

use clap::{Args, Subcommand};

use kms_pam::kms::api::{Gateway, GatewayStatus, UpdateGateway};

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
        /// A project whose resources may use it (repeatable); without any: `default`.
        #[arg(long = "assign", value_name = "PROJECT")]
        assign: Vec<String>,
    },
    /// List gateways: address, how CLIs reach each (directly, through which relays, up or
    /// down), online/offline/revoked, last heartbeat, audit key fingerprint, the projects that
    /// may use each.
    List,
    /// Show a gateway, how CLIs reach it, the projects that may use it and its URL allow-list.
    Show {
        /// Gateway name.
        name: String,
    },
    /// Let projects' resources use a gateway (organisation admin).
    Assign {
        /// Gateway name.
        name: String,
        /// Project names.
        #[arg(value_name = "PROJECT", required = true)]
        projects: Vec<String>,
    },
    /// Take a gateway away from projects (organisation admin): no new resources or sessions
    /// there; open sessions run to their end.
    Unassign {
        /// Gateway name.
        name: String,
        /// Project names.
        #[arg(value_name = "PROJECT", required = true)]
        projects: Vec<String>,
    },
    /// Limit the API server URLs of a gateway's resources (organisation admin).
    Update {
        /// Gateway name.
        name: String,
        /// An allowed URL host (repeatable; the list given replaces the old one): a host name,
        /// *.SUFFIX, an IP address or a CIDR, optionally with :PORT ([IPv6]:PORT).
        #[arg(
            long = "allow-url-host",
            value_name = "PATTERN",
            required_unless_present = "clear_allow_list"
        )]
        allow_url_host: Vec<String>,
        /// Remove the allow-list: any URL again.
        #[arg(long, conflicts_with = "allow_url_host")]
        clear_allow_list: bool,
    },
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
        GatewayCommand::Create { name, assign } => {
            let created = client.gateways().create_for(&name, &assign).await?;
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
            let mut table = Table::new(&[
                "NAME",
                "ADDRESS",
                "REACH",
                "STATUS",
                "LAST HEARTBEAT",
                "AUDIT KEY",
                "PROJECTS",
            ]);
            for gateway in gateways {
                let reach = reach(&gateway);
                let key = gateway.audit_key.map(|k| k.fingerprint());
                table.row(vec![
                    gateway.name,
                    output::or_dash(gateway.address.as_deref()),
                    reach,
                    gateway.status.to_string(),
                    output::ago(gateway.last_heartbeat),
                    output::or_dash(key.as_deref()),
                    listed(&gateway.projects, "-"),
                ]);
            }
            table.print("No gateways found.")?;
        }
        GatewayCommand::Show { name } => {
            let gateway = client.gateways().get(&name).await?;
            show(&globals, &gateway)?;
        }
        GatewayCommand::Assign { name, projects } => {
            let mut gateway = None;
            for project in &projects {
                gateway = Some(client.gateways().assign(&name, project).await?);
            }
            if let Some(gateway) = gateway {
                show(&globals, &gateway)?;
            }
        }
        GatewayCommand::Unassign { name, projects } => {
            let mut gateway = None;
            for project in &projects {
                gateway = Some(client.gateways().unassign(&name, project).await?);
            }
            if let Some(gateway) = gateway {
                show(&globals, &gateway)?;
            }
        }
        GatewayCommand::Update {
            name,
            allow_url_host,
            clear_allow_list,
        } => {
            let change = UpdateGateway {
                allowed_url_hosts: Some(if clear_allow_list {
                    Vec::new()
                } else {
                    allow_url_host
                }),
            };
            let gateway = client.gateways().update(&name, &change).await?;
            show(&globals, &gateway)?;
        }
        GatewayCommand::Revoke { name } => {
            let gateway = client.gateways().revoke(&name).await?;
            if globals.json() {
                output::print_json(&gateway)?;
                return Ok(ExitCode::SUCCESS);
            }
            output::print(&format!(
                "Revoked gateway {name}: its token is refused and its sessions were ended. To \
                 bring it back, run `kms-pam gateway create {name}` and enroll it again with \
                 the new token (and a fresh data directory).\n"
            ))?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `show`, and the answer of a change: the gateway as KMS now holds it.
fn show(globals: &Globals, gateway: &Gateway) -> anyhow::Result<()> {
    if globals.json() {
        return output::print_json(gateway);
    }
    let key = gateway.audit_key.as_ref().map(|k| k.fingerprint());
    output::print(&format!(
        "Name:            {}\nStatus:          {}\nAddress:         {}\nReach:           {}\n\
         Last heartbeat:  {}\nAudit key:       {}\nProjects:        {}\nURL allow-list:  {}\n",
        gateway.name,
        gateway.status,
        output::or_dash(gateway.address.as_deref()),
        reach(gateway),
        output::ago(gateway.last_heartbeat),
        output::or_dash(key.as_deref()),
        listed(&gateway.projects, "none (no project may use it)"),
        listed(&gateway.allowed_url_hosts, "none (any URL)"),
    ))
}

/// How CLIs reach the gateway, as its last heartbeat said: `direct`, `relays r1:443 (up), …`,
/// `direct + relays …`; `-` for a gateway not enrolled (pending, revoked).
fn reach(gateway: &Gateway) -> String {
    match gateway.status {
        GatewayStatus::Pending | GatewayStatus::Revoked => "-".to_owned(),
        _ => gateway.reach.to_string(),
    }
}

fn listed(items: &[String], empty: &str) -> String {
    if items.is_empty() {
        empty.to_owned()
    } else {
        items.join(", ")
    }
}
