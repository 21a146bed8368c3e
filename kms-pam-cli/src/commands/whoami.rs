//! `kms-pam whoami`.

use std::process::ExitCode;

use clap::Args;
use kms_pam::kms::api::PrincipalKind;

use crate::globals::{Globals, KmsUrl};
use crate::output;

/// `whoami`.
#[derive(Debug, Args)]
pub(crate) struct WhoamiArgs {
    #[command(flatten)]
    kms: KmsUrl,
}

/// Runs `whoami`.
pub(crate) async fn run(args: WhoamiArgs, globals: &Globals) -> anyhow::Result<ExitCode> {
    let globals = globals.with(&args.kms);
    let client = globals.client()?;
    let me = client.whoami().await?;
    if globals.json() {
        output::print_json(&me)?;
    } else {
        let role = match (me.kind, me.admin) {
            (PrincipalKind::User, true) => "admin user",
            (PrincipalKind::User, false) => "user",
            (PrincipalKind::Gateway, _) => "gateway",
            _ => "unknown kind of principal",
        };
        let person = me
            .identity
            .as_ref()
            .map(|identity| format!(", signed in as {identity}"))
            .unwrap_or_default();
        output::print(&format!(
            "{} ({role}) at {}{person}\n",
            me.name,
            client.current_url()
        ))?;
    }
    Ok(ExitCode::SUCCESS)
}
