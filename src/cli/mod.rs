//! Command-line definitions (clap derive) and dispatch. Each subcommand lives in its own file
//! with its arguments and its `run`; the logic they call lives in the library modules.

mod config_cmd;
mod demo;
mod simulate;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::config::ConfigError;
use crate::vr::ApiError;

/// Exit codes of the operator contract (DESIGN.md).
pub mod exit {
    pub const OK: u8 = 0;
    pub const JOBS_FAILED: u8 = 1;
    pub const USAGE: u8 = 2;
    pub const CONNECT: u8 = 3;
    pub const INTERRUPTED: u8 = 130;
}

#[derive(Debug, Parser)]
#[command(
    name = "vrbulk",
    version,
    about = "Protect hundreds of VMs with vSphere Replication in one audited, resumable batch",
    after_help = "Start with `vrbulk demo`: it runs the whole workflow against a built-in simulator."
)]
pub struct Cli {
    /// The job queue file.
    #[arg(long, global = true, default_value = "vrbulk.db", value_name = "PATH")]
    pub db: PathBuf,

    /// Settings file [default: ./vrbulk.toml when present].
    #[arg(long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,

    /// More detail (-v, -vv).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    /// Only errors.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the whole workflow against the built-in simulator, start to finish.
    Demo(demo::DemoArgs),
    /// Serve a simulated vSphere Replication appliance (for trying vrbulk out and for tests).
    Simulate(simulate::SimulateArgs),
    /// Check the settings file and, with --connect, the connection to both sites.
    #[command(subcommand)]
    Config(config_cmd::ConfigCommand),
}

/// Runs one command; the `u8` is the process exit code.
pub fn run(cli: Cli) -> anyhow::Result<u8> {
    init_logging(cli.verbose, cli.quiet);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        match cli.command {
            Command::Demo(args) => demo::run(args).await,
            Command::Simulate(args) => simulate::run(args).await,
            Command::Config(cmd) => config_cmd::run(cmd, cli.config.as_deref()).await,
        }
    })
}

fn init_logging(verbose: u8, quiet: bool) {
    let level = match (quiet, verbose) {
        (true, _) => "error",
        (false, 0) => "warn",
        (false, 1) => "info",
        (false, _) => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("VRBULK_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(format!("vrbulk={level}")));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// Maps a failure to the operator contract's exit code: bad input 2, no connection or login 3.
pub fn exit_code_for(err: &anyhow::Error) -> u8 {
    for cause in err.chain() {
        if cause.downcast_ref::<ConfigError>().is_some() {
            return exit::USAGE;
        }
        if let Some(api) = cause.downcast_ref::<ApiError>() {
            return match api {
                ApiError::Connect { .. } | ApiError::Timeout { .. } | ApiError::Setup(_) => {
                    exit::CONNECT
                }
                ApiError::Status { path, status, .. }
                    if (path == "/session" || path.ends_with("/remote-session"))
                        && matches!(status, 401 | 403) =>
                {
                    exit::CONNECT
                }
                _ => exit::JOBS_FAILED,
            };
        }
    }
    exit::JOBS_FAILED
}
