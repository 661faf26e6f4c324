//! `vrbulk run`: drive a batch to the end (or to the end of the change window), politely.

use crate::exit::Exit;
use std::path::Path;

use clap::Args;

use super::progress::{Progress, ProgressMode};
use crate::config::{ConfigFile, ProcessEnvironment};
use crate::domain::Operation;
use crate::queue::{jobs_left, Batch, Queue};
use crate::runner::{self, RunOptions};
use crate::settings::RunSettings;
use crate::vr::ClientSettings;
use crate::workflow::wave::wave_calls;

#[derive(Debug, Args)]
#[command(after_help = run_help())]
pub struct RunArgs {
    /// The batch to run [default: the newest].
    #[arg(long)]
    pub batch: Option<i64>,
    #[command(flatten)]
    pub settings: RunSettings,
    /// Work on a batch that another live run is working on, sharing its jobs through the
    /// queue (without it, vrbulk says who holds the batch and stops).
    #[arg(long)]
    pub join: bool,
    /// How to show progress: a bar on a terminal, plain lines otherwise.
    #[arg(long, value_enum, default_value_t = ProgressMode::Auto)]
    pub progress: ProgressMode,
}

/// The examples and the exit codes `run --help` ends with.
fn run_help() -> String {
    let examples = "Examples:
  vrbulk run                                  # the newest batch
  vrbulk run --batch 3 --until 05:30          # nothing changes on the appliance after 05:30
  vrbulk run --max-initial-syncs 10           # at most 10 initial syncs (default: auto, measured)
Ctrl-C stops claiming, lets in-flight calls finish for a few seconds and gives the rest back;
a second Ctrl-C exits at once. Either way the next `vrbulk run` resumes where this one stopped.
Requests keep to the appliance's rate limit ([source] requests_per_minute, 50 by default).";
    format!("{examples}\n\n{}", Exit::help())
}

pub async fn run(
    args: RunArgs,
    config: Option<&Path>,
    db: &Path,
    quiet: bool,
) -> anyhow::Result<Exit> {
    let env = ProcessEnvironment;
    let file = ConfigFile::load(config)?;
    // The batch named first: a wrong `--batch` is the operator's first mistake to hear of.
    let (queue, batch) = Queue::open_batch(db, args.batch)?;
    let setup = file.for_run(&env, &args.settings)?;
    let opts = RunOptions {
        join: args.join,
        ..setup.options
    };
    let settings = setup.connection.with_passwords(&env)?;
    let how = Display {
        db,
        progress: args.progress,
        quiet,
        notify: &file.notify,
    };
    drive(queue, &batch, settings, opts, how).await
}

/// Where a run shows itself: the queue it reads progress from, and how.
pub(super) struct Display<'a> {
    pub db: &'a Path,
    pub progress: ProgressMode,
    pub quiet: bool,
    /// Where the end of the run is told.
    pub notify: &'a crate::notify::NotifySettings,
}

/// Runs `batch` to its end (or to Ctrl-C, or the end of the change window), showing progress,
/// then the summary; the exit code of the operator contract. Every command that runs a batch
/// runs it here, so that they stop, resume and report alike.
pub(super) async fn drive(
    queue: Queue,
    batch: &Batch,
    settings: ClientSettings,
    opts: RunOptions,
    how: Display<'_>,
) -> anyhow::Result<Exit> {
    let limits = settings.limits;
    let opts = RunOptions {
        batch: Some(batch.id),
        ..opts
    };
    let before = queue.counts(batch.id)?;
    let todo = jobs_left(&before);
    eprintln!(
        "batch {} \"{}\": {todo} jobs to do, at most {} requests per {} s (the appliance's rate \
         limit), {} in flight",
        batch.id,
        batch.name,
        limits.quota(),
        limits.window.as_secs_f64(),
        opts.workers
    );
    if let Some(until) = opts
        .until
        .filter(|_| batch.operation == Operation::Configure)
    {
        let calls = wave_calls(&queue.jobs(batch.id)?, opts.lookup_group, opts.submit_group);
        let now = crate::queue::system_clock()();
        eprintln!(
            "{}",
            super::link::window_words(
                until,
                now,
                calls,
                limits.quota(),
                limits.window,
                opts.max_initial_syncs.caps()
            )
        );
    }

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let id = batch.id;
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!("\nstopping: no new work; in-flight calls get a few seconds (Ctrl-C again exits at once)");
            let _ = stop_tx.send(true);
            if tokio::signal::ctrl_c().await.is_ok() {
                eprintln!(
                    "exiting now; `vrbulk run --batch {id}` resumes and checks what was in flight"
                );
                std::process::exit(i32::from(Exit::Interrupted.code()));
            }
        }
    });
    crate::queue::ledger::share_budget(how.db, &settings.url, limits);
    let budget = crate::vr::Budget::shared(&settings.url, limits);
    let progress = Progress::start(
        how.db.to_path_buf(),
        batch.id,
        Some(budget),
        how.progress,
        how.quiet,
        opts.max_initial_syncs,
    );
    let outcome = runner::run(queue, settings, opts, stop_rx).await;
    progress.finish().await;
    super::notify::after_run(how.db, how.notify, batch, &outcome).await;
    // No context of our own: the line above named the batch, and the runner's errors that
    // concern it (held by another run) name it themselves.
    let outcome = outcome?;
    super::summary::print(&outcome, how.db)?;
    Ok(outcome.exit_code())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::SubmitOrder;
    use clap::Parser;

    fn parsed(extra: &[&str]) -> Result<RunArgs, clap::Error> {
        let cli = crate::cli::Cli::try_parse_from([&["vrbulk", "run"], extra].concat())?;
        match cli.command {
            crate::cli::Command::Run(a) => Ok(a),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn flags_are_typed_where_they_are_parsed() {
        let args = parsed(&[
            "--order",
            "Smallest_First",
            "--until",
            "2026-11-27T05:30:00Z",
            "--poll-interval",
            "2.5",
        ])
        .unwrap();
        assert_eq!(args.settings.order, Some(Ok(SubmitOrder::SmallestFirst)));
        assert_eq!(args.settings.until, Some(1_795_757_400_000));
        assert_eq!(args.settings.poll_interval_seconds, Some(2.5));
        assert_eq!(args.settings.workers, None, "a flag not given is not said");
        for (flag, bad) in [("--until", "soon"), ("--order", "largest-first")] {
            let err = parsed(&[flag, bad]).unwrap_err();
            assert_eq!(err.exit_code(), 2, "a usage error: {err}");
            assert!(err.to_string().contains(flag), "{err}");
        }
        let err = parsed(&["--until", "soon"]).unwrap_err().to_string();
        assert!(err.contains("expected HH:MM"), "{err}");
    }
}
