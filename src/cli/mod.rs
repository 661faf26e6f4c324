//! Command-line definitions (clap derive) and dispatch. Each subcommand lives in its own file
//! with its arguments and its `run`; the logic they call lives in the library modules.

mod apply;
mod batches;
mod cancel;
mod completions;
mod config_cmd;
mod demo;
mod diff;
mod export;
mod import;
mod init;
mod inventory;
mod link;
pub mod logging;
mod monitor;
mod notify;
mod operate;
mod pause;
mod plan;
mod posture;
mod progress;
mod reconfigure;
mod report;
mod retry;
mod run;
mod simulate;
mod status;
mod summary;
mod undo;
mod watch;

use crate::exit::Exit;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::config::ConfigError;
use crate::domain::OperationSpec;
use crate::input::{Defaults, InputErrors};
use crate::queue::QueueError;
use crate::report::OutputRefused;
use crate::runner::RunError;
use crate::vr::ApiError;
use crate::workflow::day2::PrepareError;
use crate::workflow::import::ImportError;
use crate::workflow::inventory::InventoryError;
use crate::workflow::plan::ChooseError;
use crate::workflow::retry::RetryError;
use crate::workflow::{ConnectError, LoginFailed, PairingError};

#[derive(Debug, Parser)]
#[command(
    name = "vrbulk",
    version,
    about = "Protect hundreds of VMs with vSphere Replication in one audited, resumable batch",
    after_help = format!(
        "Start with `vrbulk demo`: it runs the whole workflow against a built-in simulator.\n\n{}",
        Exit::help()
    )
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

    /// List every problem of a bad input (CSV, flags, selection), not only the first 50.
    #[arg(long, global = true)]
    pub all_errors: bool,

    /// Format of the log files in logs/ beside the DB (stderr stays text).
    #[arg(long, global = true, value_enum, default_value_t = logging::LogFormat::Text)]
    pub log_format: logging::LogFormat,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the whole workflow against the built-in simulator, start to finish.
    Demo(demo::DemoArgs),
    /// Serve a simulated vSphere Replication appliance (for trying vrbulk out and for tests).
    Simulate(simulate::SimulateArgs),
    /// Dry run: what `run` would do with each VM of a batch, configuring nothing.
    Plan(plan::PlanArgs),
    /// Configure replication for the jobs of a batch; resumable, rate-limited.
    Run(run::RunArgs),
    /// Turn a CSV, or a name pattern over the live inventory, into a batch of jobs.
    Import(import::ImportArgs),
    /// Look at the source inventory: `inventory export` writes a CSV template.
    #[command(
        subcommand,
        after_help = "Example:\n  vrbulk inventory export --pairing vc-site-b.corp.local -o wave-1.csv"
    )]
    Inventory(inventory::InventoryCommand),
    /// Check the settings file and, with --connect, the connection to both sites.
    #[command(
        subcommand,
        after_help = "Example:\n  VRBULK_PASSWORD=… vrbulk config check --connect"
    )]
    Config(config_cmd::ConfigCommand),
    /// Show where a batch stands: jobs per state and step, retries, jobs in doubt, last errors.
    Status(status::StatusArgs),
    /// List the batches of the queue: operation, tickets, jobs by state, where each stands.
    Batches(batches::BatchesArgs),
    /// Follow a batch's replications through their initial sync until every VM is protected.
    Watch(watch::WatchArgs),
    /// Requeue the failed (and, with --cancelled, the cancelled) jobs of a batch.
    Retry(retry::RetryArgs),
    /// Cancel the jobs of a batch that have not started; running ones finish.
    Cancel(cancel::CancelArgs),
    /// Write a commented vrbulk.toml and an example vms.csv into the current folder.
    Init(init::InitArgs),
    /// Print a shell completion script (bash, zsh, fish, powershell).
    Completions(completions::CompletionsArgs),
    /// Write the report of a batch for change management: Markdown, HTML, CSV or JSON.
    Report(report::ReportArgs),
    /// Remove the replications a batch configured (all, or the VMs --vm names); asks first.
    Undo(undo::UndoArgs),
    /// Change settings of the replications a batch configured: flags for all, or a CSV per VM.
    Reconfigure(reconfigure::ReconfigureArgs),
    /// Pause the replications a batch configured (for storage maintenance, say).
    #[command(after_help = "Examples:
  vrbulk pause --batch 3 --plan
  vrbulk pause --batch 3 --vm 'db-*'
Interrupted, the same command again resumes it; `vrbulk resume --batch 3` undoes it.")]
    Pause(pause::StateArgs),
    /// Resume the paused replications a batch configured.
    #[command(after_help = "Examples:
  vrbulk resume --batch 3 --plan
  vrbulk resume --batch 3 --vm 'db-*'
Interrupted, the same command again resumes it.")]
    Resume(pause::StateArgs),
    /// Sync the replications a batch configured now (before a cutover, say).
    #[command(after_help = "Examples:
  vrbulk sync --batch 3 --plan      # which replications can sync now, which cannot and why
  vrbulk sync --batch 3
Interrupted, the same command again resumes it.")]
    Sync(pause::StateArgs),
    /// Write what the appliance protects now: `export --desired` writes a desired-state file.
    Export(export::ExportArgs),
    /// Compare a desired-state file with the appliance: per VM, what `apply` would do.
    Diff(diff::DiffArgs),
    /// Make the appliance as a desired-state file says: configure, reconfigure (and with
    /// --allow-remove undo) in resumable batches.
    Apply(apply::ApplyArgs),
    /// Follow the replications after the wave: findings (behind RPO, error, paused, removed,
    /// uncovered VMs) recorded in the queue, a digest of each cycle's changes to the channels.
    Monitor(monitor::MonitorArgs),
    /// Notification channels: `notify test` sends one message to each and says which worked.
    #[command(subcommand, after_help = "Example:\n  vrbulk notify test")]
    Notify(notify::NotifyCommand),
}

/// The replication settings flags, and the change ticket of the jobs without one.
#[derive(Debug, Clone, Default, Args)]
pub struct Profile {
    #[command(flatten)]
    pub settings: Defaults,
    /// Change ticket recorded for every job without one.
    #[arg(long)]
    pub change_ticket: Option<String>,
}

impl Profile {
    /// These flags over `base`: a flag given wins.
    pub fn over(&self, base: &Defaults) -> Defaults {
        self.settings.over(base)
    }
}

pub use crate::operator::who;

/// A plain-text table (Markdown-shaped, so it pastes into tickets as is).
pub fn table<const N: usize>(header: [&str; N]) -> comfy_table::Table {
    let mut table = comfy_table::Table::new();
    table.load_style(comfy_table::presets::ASCII_MARKDOWN);
    table.set_header(header);
    table
}

/// `1 VM`, `7 VMs`: `n` and the word that goes with it.
pub fn count(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// Runs one command to its exit code.
pub fn run(mut cli: Cli) -> anyhow::Result<Exit> {
    // The demo keeps its queue, and so its logs, in its own folder.
    if let Command::Demo(args) = &mut cli.command {
        cli.db = args
            .dir
            .get_or_insert_with(demo::default_dir)
            .join("vrbulk.db");
    }
    // Held to the end of the process: dropping it flushes the log file.
    let _log_guard = logging::init(&logging::LogSetup::for_cli(&cli));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let globals = operate::Globals {
        config: cli.config.as_deref(),
        db: &cli.db,
        quiet: cli.quiet,
    };
    let outcome = runtime.block_on(async {
        match cli.command {
            Command::Demo(args) => demo::run(args, cli.quiet).await,
            Command::Simulate(args) => simulate::run(args).await,
            Command::Plan(args) => plan::run(args, cli.config.as_deref(), &cli.db).await,
            Command::Run(args) => run::run(args, cli.config.as_deref(), &cli.db, cli.quiet).await,
            Command::Import(args) => import::run(args, cli.config.as_deref(), &cli.db).await,
            Command::Inventory(cmd) => inventory::run(cmd, cli.config.as_deref()).await,
            Command::Config(cmd) => config_cmd::run(cmd, cli.config.as_deref()).await,
            Command::Status(args) => status::run(args, &cli.db),
            Command::Batches(args) => batches::run(args, &cli.db),
            Command::Watch(args) => watch::run(args, cli.config.as_deref(), &cli.db).await,
            Command::Retry(args) => retry::run(args, &cli.db),
            Command::Cancel(args) => cancel::run(args, &cli.db),
            Command::Init(args) => init::run(args),
            Command::Completions(args) => completions::run(args),
            Command::Report(args) => report::run(args, &cli.db),
            Command::Undo(args) => undo::run(args, globals).await,
            Command::Reconfigure(args) => reconfigure::run(args, globals).await,
            Command::Pause(args) => pause::run(OperationSpec::Pause, args, globals).await,
            Command::Resume(args) => pause::run(OperationSpec::Resume, args, globals).await,
            Command::Sync(args) => pause::run(OperationSpec::Sync, args, globals).await,
            Command::Export(args) => export::run(args, cli.config.as_deref(), &cli.db).await,
            Command::Diff(args) => diff::run(args, cli.config.as_deref(), &cli.db).await,
            Command::Apply(args) => apply::run(args, globals).await,
            Command::Monitor(args) => monitor::run(args, cli.config.as_deref(), &cli.db).await,
            Command::Notify(cmd) => notify::run(cmd, cli.config.as_deref(), &cli.db).await,
        }
    });
    match outcome {
        Err(err) if cli.all_errors => every_problem(err),
        other => other,
    }
}

/// `--all-errors`: every problem of a bad input, where the error's own message lists the first
/// [`PROBLEMS_SHOWN`](crate::input::PROBLEMS_SHOWN); any other error goes on as it is.
fn every_problem(err: anyhow::Error) -> anyhow::Result<Exit> {
    use std::io::Write as _;
    let found = err.chain().find_map(|cause| {
        cause
            .downcast_ref::<InputErrors>()
            .or(match cause.downcast_ref::<PrepareError>() {
                Some(PrepareError::Input(errors)) => Some(errors),
                _ => None,
            })
            .or(match cause.downcast_ref::<ImportError>() {
                Some(ImportError::Input(errors)) => Some(errors),
                _ => None,
            })
            .or(match cause.downcast_ref::<RetryError>() {
                Some(RetryError::Input(errors)) => Some(errors),
                _ => None,
            })
    });
    let Some(errors) = found else {
        return Err(err);
    };
    // Buffered: a million problems are a million lines.
    let mut out = std::io::BufWriter::new(std::io::stderr().lock());
    writeln!(out, "error: {}", errors.every())?;
    out.flush()?;
    Ok(Exit::Usage)
}

/// What the operator does about a failure, when its cause says: for a refused login, which
/// setting holds the credential it refused.
pub fn hint_for(err: &anyhow::Error) -> Option<String> {
    let refused = err
        .chain()
        .find_map(|cause| match cause.downcast_ref::<ApiError>() {
            Some(ApiError::CredentialsRefused(r)) => Some(r),
            _ => None,
        })?;
    let how = match refused.site {
        crate::vr::Site::Source => {
            "set the source site's password in VRBULK_PASSWORD (or type it at the prompt); its \
             user is [source] user in vrbulk.toml, or VRBULK_USER"
        }
        crate::vr::Site::Target { .. } => {
            "set the target site's password in VRBULK_REMOTE_PASSWORD (without it, \
             VRBULK_PASSWORD is used for both sites); its user is [target] user in vrbulk.toml, \
             or VRBULK_REMOTE_USER"
        }
    };
    Some(format!(
        "hint: {how}. vrbulk sent this login once and will not repeat it in this command, so \
         that a wrong password does not lock the account"
    ))
}

/// Maps a failure to the operator contract's exit code, by the type of its causes: bad input 2,
/// no connection, no login or a server that keeps failing 3, anything else 1.
pub fn exit_code_for(err: &anyhow::Error) -> Exit {
    err.chain().find_map(exit_of).unwrap_or(Exit::JobsFailed)
}

/// The exit code `cause` decides, if it decides one. A library error that says an inner
/// error's words as its own (`#[error(transparent)]`) hides that error from the chain, so it
/// is looked through here.
fn exit_of(cause: &(dyn std::error::Error + 'static)) -> Option<Exit> {
    if let Some(e) = cause.downcast_ref::<ImportError>() {
        return match e {
            ImportError::Input(_) | ImportError::Read { .. } => Some(Exit::Usage),
            ImportError::Inventory(inner) => exit_of(inner.as_ref()),
            ImportError::Queue(inner) => exit_of(inner),
            ImportError::Check(_) => None,
        };
    }
    if let Some(e) = cause.downcast_ref::<RetryError>() {
        return match e {
            RetryError::Input(_) => Some(Exit::Usage),
            RetryError::Queue(inner) => exit_of(inner),
        };
    }
    if let Some(e) = cause.downcast_ref::<InventoryError>() {
        return match e {
            InventoryError::Connect(inner) => exit_of(inner),
            InventoryError::Pairing(_) => Some(Exit::Usage),
            InventoryError::TargetLogin(_) => Some(Exit::Connect),
            _ => None,
        };
    }
    if let Some(e) = cause.downcast_ref::<ConnectError>() {
        return Some(match e {
            ConnectError::Settings(_) => Exit::Usage,
            ConnectError::Login(_) => Exit::Connect,
        });
    }
    if cause.downcast_ref::<ConfigError>().is_some()
        || cause.downcast_ref::<InputErrors>().is_some()
        || cause.downcast_ref::<PairingError>().is_some()
        || matches!(
            cause.downcast_ref::<ChooseError>(),
            Some(ChooseError::Nothing(_))
        )
        || cause.downcast_ref::<undo::NotConfirmed>().is_some()
        || cause.downcast_ref::<apply::NotConfirmed>().is_some()
        || cause.downcast_ref::<init::Exists>().is_some()
        || cause.downcast_ref::<OutputRefused>().is_some()
        || cause
            .downcast_ref::<PrepareError>()
            .is_some_and(PrepareError::is_operators)
        || matches!(
            cause.downcast_ref::<QueueError>(),
            Some(
                QueueError::TooNew { .. }
                    | QueueError::TooOld { .. }
                    | QueueError::NotAQueue { .. }
                    | QueueError::NoSuchBatch(_)
                    | QueueError::UnknownBatch { .. }
                    | QueueError::NoQueue { .. }
                    | QueueError::Empty { .. }
                    | QueueError::Refused(_)
                    | QueueError::AlreadyQueued(_)
            )
        )
        || matches!(
            cause.downcast_ref::<RunError>(),
            Some(RunError::Held { .. })
        )
    {
        return Some(Exit::Usage);
    }
    if cause.downcast_ref::<LoginFailed>().is_some()
        || matches!(
            cause.downcast_ref::<RunError>(),
            Some(RunError::Login(_) | RunError::Pairings(_) | RunError::Credentials { .. })
        )
    {
        return Some(Exit::Connect);
    }
    let api = cause.downcast_ref::<ApiError>()?;
    Some(match api {
        ApiError::Connect { .. }
        | ApiError::Timeout { .. }
        | ApiError::Untrusted(_)
        | ApiError::CredentialsRefused(_)
        | ApiError::Setup(_) => Exit::Connect,
        // The server kept failing after the retries: it cannot be worked with now.
        _ if api.class() == crate::vr::ErrorClass::Transient => Exit::Connect,
        _ => Exit::JobsFailed,
    })
}
