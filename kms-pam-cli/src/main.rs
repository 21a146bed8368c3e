//! `kms-pam`: the user's side of just-in-time kubectl access (docs/cli.md).

mod cli;
mod commands;
mod config;
mod globals;
mod output;
mod secret_input;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    init_tracing(cli.command.is_long_running_service(), cli.log_format);
    quiet_panics();
    // The servers (`server`, `dev`) use every core; the other commands serve one user, and
    // `pam access` runs its loopback proxy on this one thread: no cross-thread wake-ups and
    // ~4 % fewer instructions per proxied request (docs/performance.md).
    let mut builder = if cli.command.is_long_running_service() {
        tokio::runtime::Builder::new_multi_thread()
    } else {
        tokio::runtime::Builder::new_current_thread()
    };
    let runtime = match builder.enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => return report(&anyhow::anyhow!("cannot start the async runtime: {e}")),
    };
    match runtime.block_on(commands::run(cli)) {
        Ok(code) => code,
        Err(e) => report(&e),
    }
}

/// One line on stderr: messages may quote what others typed (a name, a reason), so control
/// characters, line breaks included, are spelled out.
fn report(error: &anyhow::Error) -> ExitCode {
    eprintln!("error: {}", output::inert(&format!("{error:#}")));
    ExitCode::FAILURE
}

/// Logs go to stderr; `RUST_LOG` overrides the level. Servers log at `info`, the interactive
/// commands only warnings, so their own output stays readable.
fn init_tracing(service: bool, format: cli::LogFormat) {
    use std::io::IsTerminal as _;
    use tracing_subscriber::EnvFilter;
    let default = if service { "info" } else { "warn" };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    match format {
        cli::LogFormat::Json => builder.json().init(),
        // Colour codes only where a terminal shows them, never into a log file.
        cli::LogFormat::Text => builder.with_ansi(std::io::stderr().is_terminal()).init(),
    }
}

/// A bug must still end in one line on stderr, not a backtrace.
fn quiet_panics() {
    std::panic::set_hook(Box::new(|info| {
        let message = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".to_owned());
        eprintln!("error: internal error (please report this): {message}");
    }));
}
