//! The `plinth` command line: key generation, the plugin author's tools (scaffold,
//! build, pack, verify, inspect, call) and, in later modules, the server and
//! operator commands. Errors are reported as `error: …` with their causes; nothing
//! here panics on bad input.

pub mod jobs;
mod keys;
mod plugin;
mod scaffold;
mod serve;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Plinth — a multi-tenant CRM platform whose every feature is a WebAssembly plugin.
#[derive(Debug, Parser)]
#[command(name = "plinth", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    /// How log lines are written: `text` (one line per event, control characters
    /// escaped) or `json` (one object per line).
    #[arg(long, global = true, value_enum, default_value_t, env = "PLINTH_LOG_FORMAT")]
    log_format: crate::logging::LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create an Ed25519 publisher key: writes the private key (mode 0600), prints the
    /// public key and its key id.
    Keygen(keys::KeygenArgs),
    /// Tools for plugin authors: scaffold, build, pack, verify, inspect and call plugins.
    #[command(subcommand)]
    Plugin(plugin::PluginCommand),
    /// Run the server (127.0.0.1:8080, SQLite in ./plinth-data unless told otherwise).
    Serve(serve::ServeArgs),
    /// Operator tasks on the server's database: tenants, operator tokens.
    #[command(subcommand)]
    Admin(serve::AdminCommand),
    /// Follow background jobs on a server.
    #[command(subcommand)]
    Jobs(jobs::JobsCommand),
}

/// Exit codes beyond 0/1, so scripts can tell outcomes apart.
pub(crate) mod exit {
    /// A package is intact but its signature was not checked (no key given).
    pub const UNVERIFIED: u8 = 3;
}

/// Parse arguments, run the command, print errors with their causes.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    crate::logging::init(cli.log_format);
    let result = match cli.command {
        Command::Keygen(args) => keys::keygen(args),
        Command::Plugin(cmd) => plugin::run(cmd),
        Command::Serve(args) => serve::serve(args),
        Command::Admin(cmd) => serve::admin(cmd),
        Command::Jobs(cmd) => jobs::run(cmd),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Run a future on a fresh tokio runtime (for commands that need async).
pub(crate) fn block_on<F: std::future::Future>(future: F) -> anyhow::Result<F::Output> {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    Ok(rt.block_on(future))
}
