//! `kms-pam pam access RESOURCE/ACCOUNT [-- COMMAND ...]`: the library's
//! [`open_session`](kms_pam::access::open_session) plus what only a terminal program does —
//! printing, signals and the child command.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use anyhow::Context as _;
use clap::Args;
use kms_pam::access::{open_session, AccessError, AccessRequest, AccessSession, SessionEnd};
use kms_pam::kms::api::ErrorCode;
use kms_pam::kube::kubeconfig::{
    default_kubeconfig_path, default_session_path_in, remove_stale_session_file, KubeconfigTarget,
};

use super::account_ref::AccountRef;
use crate::globals::{Globals, KmsUrl};
use crate::output;

/// Exit code of a command that could not be started, as shells use it.
const COMMAND_NOT_RUN: u8 = 127;
/// Exit code after SIGTERM, as shells report it.
const TERMINATED_BY_SIGTERM: u8 = 128 + 15;

/// `pam access RESOURCE/ACCOUNT [--duration 1h] [--port 0] [--reason TEXT] [--kubeconfig PATH]
/// [--merge] [-- COMMAND [ARGS...]]`.
#[derive(Debug, Args)]
pub(crate) struct AccessArgs {
    /// RESOURCE/ACCOUNT.
    target: AccountRef,
    /// How long the session lasts.
    #[arg(long, value_name = "DURATION", default_value = "1h", value_parser = kms_pam::time::parse_duration)]
    duration: Duration,
    /// Local proxy port on 127.0.0.1; 0 picks a free one.
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// Why you need access (kept with the session).
    #[arg(long, value_name = "TEXT")]
    reason: Option<String>,
    /// Where to write the session kubeconfig (default ~/.kube/kms-pam/RESOURCE-ACCOUNT.yaml, or
    /// ~/.kube/kms-pam/PROJECT/… outside `default`); with --merge, the kubeconfig to merge into
    /// (default ~/.kube/config).
    #[arg(long, value_name = "PATH")]
    kubeconfig: Option<PathBuf>,
    /// Add the session's context to your kubeconfig and make it current, until the session ends.
    #[arg(long)]
    merge: bool,
    /// Run this command with KUBECONFIG set, end the session when it exits, exit with its code.
    #[arg(last = true, value_name = "COMMAND")]
    command: Vec<OsString>,
    #[command(flatten)]
    kms: KmsUrl,
}

/// How serving ended.
enum Outcome {
    /// Ctrl+C or SIGTERM while serving.
    Interrupted,
    /// The session stopped by itself.
    Stopped(SessionEnd),
    /// The command exited with this code.
    CommandExited(u8),
    /// The command could not be started.
    CommandNotRun(anyhow::Error),
    /// The session stopped while the command ran; the command was killed.
    CommandCut(SessionEnd),
    /// SIGTERM while the command ran; the command was killed.
    CommandTerminated,
}

/// Runs `pam access`.
pub(crate) async fn run(args: AccessArgs, globals: &Globals) -> anyhow::Result<ExitCode> {
    let client = globals.with(&args.kms).client()?;
    let target = target(&args, client.project())?;
    if let KubeconfigTarget::File(path) = &target {
        if remove_stale_session_file(path).await? {
            eprintln!(
                "Removed {}, left by an earlier session to {} that did not end cleanly.",
                path.display(),
                args.target
            );
        }
    }
    let mut request =
        AccessRequest::new(&args.target.resource, &args.target.account, args.duration)
            .with_port(args.port)
            .with_kubeconfig(target);
    request.reason = args.reason.clone();
    let mut signals = Signals::new()?;
    // A single sign-on login's token may end during the session: the broker renews it.
    let broker = crate::commands::sso_login::RenewingBroker::new(client.clone(), globals)?;
    let access = open_session(&broker, request).await?;
    let command_mode = !args.command.is_empty();
    let banner = banner(&access, &args);
    if command_mode {
        eprint!("{banner}");
    } else if let Err(e) = output::print(&banner) {
        // The session is open: it must still be served and closed properly.
        tracing::warn!(error = %e, "cannot print the session details");
    }
    let outcome = if command_mode {
        run_command(&access, &args.command, &mut signals).await
    } else {
        serve(&access, &mut signals).await
    };
    let id = access.id().clone();
    let merged = args.merge;
    let closed = access.close().await;
    // A command can finish on its own because the gateway cut it (a watch ends when the session
    // is terminated) before the termination is seen here: the final status tells.
    let cut_short = match (&outcome, &closed) {
        (Outcome::CommandExited(_), Ok(summary)) => {
            SessionEnd::of(&summary.session).filter(|end| !end.is_normal())
        }
        _ => None,
    };
    let refused_already = matches!(
        outcome,
        Outcome::Stopped(SessionEnd::TokenRefused) | Outcome::CommandCut(SessionEnd::TokenRefused)
    );
    let mut code = report(outcome);
    if let Some(end) = cut_short {
        eprintln!(
            "error: session {id}: {}; the command was cut short",
            end.describe()
        );
        code = ExitCode::FAILURE;
    }
    if let Err(AccessError::Kms(error)) = &closed {
        if error.code() == Some(ErrorCode::Unauthenticated) {
            // The token was refused mid-session: KMS ended the session when it took access away.
            if !refused_already {
                eprintln!(
                    "error: session {id}: {}",
                    SessionEnd::TokenRefused.describe()
                );
            }
            eprintln!("KMS said: {error}");
            return Ok(ExitCode::FAILURE);
        }
    }
    match closed {
        Ok(summary) => {
            let cleaned = if merged {
                "merged kubeconfig entries removed"
            } else {
                "kubeconfig removed"
            };
            eprintln!(
                "Session {id} {} after {}; {cleaned}.",
                summary.session.session.status,
                output::duration(Duration::from_secs(summary.duration.as_secs()))
            );
            Ok(code)
        }
        Err(e) => {
            eprintln!(
                "error: closing session {id}: {}",
                output::inert(&e.to_string())
            );
            Ok(if code == ExitCode::SUCCESS {
                ExitCode::FAILURE
            } else {
                code
            })
        }
    }
}

fn target(args: &AccessArgs, project: Option<&str>) -> anyhow::Result<KubeconfigTarget> {
    let AccountRef { resource, account } = &args.target;
    Ok(match (&args.kubeconfig, args.merge) {
        (Some(path), false) => KubeconfigTarget::File(path.clone()),
        (None, false) => {
            KubeconfigTarget::File(default_session_path_in(project, resource, account)?)
        }
        (Some(path), true) => KubeconfigTarget::Merge(path.clone()),
        (None, true) => KubeconfigTarget::Merge(default_kubeconfig_path()?),
    })
}

fn banner(access: &AccessSession, args: &AccessArgs) -> String {
    let session = &access.session().session;
    let left = session
        .expires_at
        .duration_since(SystemTime::now())
        .unwrap_or_default();
    let path = access
        .kubeconfig_path()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    let mut text = format!(
        "Session {} to {} via gateway {} is active until {} ({}).\nLocal proxy: {}\n",
        session.id,
        args.target,
        session.gateway,
        output::time(session.expires_at),
        output::duration(Duration::from_secs(left.as_secs())),
        access.server_url(),
    );
    if args.merge {
        text.push_str(&format!(
            "Context {} merged into {path} and made current.\n",
            access.context()
        ));
    }
    if args.command.is_empty() {
        if !args.merge {
            text.push_str(&format!("\n  export KUBECONFIG={path}\n"));
        } else {
            text.push('\n');
        }
        text.push_str("  kubectl get pods\n\nPress Ctrl+C to end the session.\n");
    }
    text
}

/// Serves until Ctrl+C, SIGTERM, or the session stops by itself.
async fn serve(access: &AccessSession, signals: &mut Signals) -> Outcome {
    tokio::select! {
        _ = signals.next() => Outcome::Interrupted,
        end = access.wait_ended() => Outcome::Stopped(end),
    }
}

/// Runs the command with `KUBECONFIG` set until it exits, the session stops, or SIGTERM. Ctrl+C
/// reaches the command from the terminal; this process keeps serving it meanwhile.
async fn run_command(
    access: &AccessSession,
    command: &[OsString],
    signals: &mut Signals,
) -> Outcome {
    let Some((program, rest)) = command.split_first() else {
        return Outcome::CommandExited(0);
    };
    let mut child = tokio::process::Command::new(program);
    child.args(rest).kill_on_drop(true);
    if let Some(path) = access.kubeconfig_path() {
        child.env("KUBECONFIG", path);
    }
    let mut child = match child.spawn() {
        Ok(child) => child,
        Err(e) => {
            let error =
                anyhow::Error::new(e).context(format!("cannot run {}", program.to_string_lossy()));
            return Outcome::CommandNotRun(error);
        }
    };
    loop {
        tokio::select! {
            status = child.wait() => return match status {
                Ok(status) => Outcome::CommandExited(exit_code(status)),
                Err(e) => Outcome::CommandNotRun(anyhow::Error::new(e).context("waiting for the command failed")),
            },
            caught = signals.next() => match caught {
                Caught::Interrupt => continue,
                Caught::Terminate => {
                    let _ = child.kill().await;
                    return Outcome::CommandTerminated;
                }
            },
            end = access.wait_ended() => {
                let _ = child.kill().await;
                return Outcome::CommandCut(end);
            }
        }
    }
}

/// Prints what ended the session when it was not the user, and picks the exit code.
fn report(outcome: Outcome) -> ExitCode {
    match outcome {
        Outcome::Interrupted => ExitCode::SUCCESS,
        Outcome::Stopped(end) if end.is_normal() => {
            eprintln!("{}.", capitalized(end.describe()));
            ExitCode::SUCCESS
        }
        Outcome::Stopped(end) => {
            eprintln!("error: {}", end.describe());
            ExitCode::FAILURE
        }
        Outcome::CommandExited(code) => ExitCode::from(code),
        Outcome::CommandNotRun(e) => {
            eprintln!("error: {}", output::inert(&format!("{e:#}")));
            ExitCode::from(COMMAND_NOT_RUN)
        }
        Outcome::CommandCut(end) => {
            eprintln!("error: {}; the command was stopped", end.describe());
            ExitCode::FAILURE
        }
        Outcome::CommandTerminated => ExitCode::from(TERMINATED_BY_SIGTERM),
    }
}

fn capitalized(text: &str) -> String {
    let mut chars = text.chars();
    chars
        .next()
        .map(|c| c.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

/// A command's exit status as this process's exit code (128 + N for signal N, as shells do).
fn exit_code(status: std::process::ExitStatus) -> u8 {
    if let Some(code) = status.code() {
        return u8::try_from(code & 0xff).unwrap_or(1);
    }
    #[cfg(unix)]
    if let Some(signal) = std::os::unix::process::ExitStatusExt::signal(&status) {
        return u8::try_from((128 + signal) & 0xff).unwrap_or(1);
    }
    1
}

/// A signal that asks this process to stop.
enum Caught {
    Interrupt,
    Terminate,
}

/// SIGINT and SIGTERM, listened to from before the session opens, so neither can kill this
/// process before it has ended the session and removed the kubeconfig.
struct Signals {
    #[cfg(unix)]
    interrupt: tokio::signal::unix::Signal,
    #[cfg(unix)]
    terminate: tokio::signal::unix::Signal,
}

impl Signals {
    fn new() -> anyhow::Result<Self> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            Ok(Self {
                interrupt: signal(SignalKind::interrupt()).context("cannot listen for Ctrl+C")?,
                terminate: signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?,
            })
        }
        #[cfg(not(unix))]
        Ok(Self {})
    }

    async fn next(&mut self) -> Caught {
        #[cfg(unix)]
        tokio::select! {
            Some(()) = self.interrupt.recv() => Caught::Interrupt,
            Some(()) = self.terminate.recv() => Caught::Terminate,
            else => std::future::pending().await,
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
            Caught::Interrupt
        }
    }
}
