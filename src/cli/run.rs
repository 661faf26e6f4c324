//! `vrbulk run`: drive a batch to the end (or to the end of the change window), politely.

use crate::exit::Exit;
use std::path::Path;

use clap::Args;

use super::progress::{Progress, ProgressMode};
use crate::config::{ConfigFile, Connection, ProcessEnvironment, RunFlags};
use crate::queue::{jobs_left, Batch, Queue};
use crate::runner::{self, RunOptions};
use crate::vr::ClientSettings;

#[derive(Debug, Args)]
#[command(after_help = run_help())]
pub struct RunArgs {
    /// The batch to run [default: the newest].
    #[arg(long)]
    pub batch: Option<i64>,
    /// Requests in flight at most [default: 8, or [run] workers].
    #[arg(long)]
    pub workers: Option<usize>,
    /// Requests per minute the appliance allows one session [default: 50, or [source]
    /// requests_per_minute]; only if its admin changed the rate limiter.
    #[arg(long)]
    pub requests_per_minute: Option<u32>,
    /// Attempts per job before it fails (applies to the batch's unfinished jobs).
    #[arg(long)]
    pub max_attempts: Option<u32>,
    /// The end of the change window: no configure or other change reaches the appliance at or
    /// after it (what was sent is followed to its end; the rest waits, exit 6). `HH:MM` (local,
    /// the next one to come), `YYYY-MM-DD HH:MM` (local) or RFC 3339.
    #[arg(long, value_name = "TIME")]
    pub until: Option<String>,
    /// VMs per lookup call [default: 50].
    #[arg(long)]
    pub lookup_group: Option<usize>,
    /// Specs per configure call [default and most: 20].
    #[arg(long)]
    pub submit_group: Option<usize>,
    /// The shortest time between two task polls, in seconds [default: 2]; polls are further
    /// spaced to what the tasks take and to the rate limit.
    #[arg(long)]
    pub poll_interval: Option<f64>,
    /// Submit new VMs only while fewer than N replications of each pairing are in their initial
    /// sync (what the appliance reports, all batches counted): one run carries a whole wave at
    /// the pace the replication link can take [default: no cap, or [run] max_initial_syncs].
    #[arg(long, value_name = "N")]
    pub max_initial_syncs: Option<usize>,
    /// Which waiting VMs go first when a slot frees: input (the batch's order) or
    /// smallest-first (the most VMs protected soonest) [default: input, or [run] order].
    #[arg(long, value_name = "ORDER")]
    pub order: Option<String>,
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
  vrbulk run --max-initial-syncs 10 --order smallest-first   # a wave at the link's pace
Ctrl-C stops claiming, lets in-flight calls finish for a few seconds and gives the rest back;
a second Ctrl-C exits at once. Either way the next `vrbulk run` resumes where this one stopped.
Requests keep to the appliance's rate limit ([source] requests_per_minute, 50 by default).";
    format!("{examples}\n\n{}", Exit::help())
}

impl RunArgs {
    fn flags(&self) -> RunFlags {
        RunFlags {
            batch: self.batch,
            workers: self.workers,
            max_attempts: self.max_attempts,
            until: self.until.clone(),
            lookup_group: self.lookup_group,
            submit_group: self.submit_group,
            poll_interval: self.poll_interval,
            max_initial_syncs: self.max_initial_syncs,
            order: self.order.clone(),
            join: self.join,
        }
    }
}

pub async fn run(
    args: RunArgs,
    config: Option<&Path>,
    db: &Path,
    quiet: bool,
) -> anyhow::Result<Exit> {
    let mut file = ConfigFile::load(config)?;
    if let Some(n) = args.requests_per_minute {
        file.source.requests_per_minute = Some(n);
    }
    let opts = RunOptions {
        capacity: file.capacity()?,
        ..file.run.options(&args.flags())?
    };
    let (queue, batch) = Queue::open_batch(db, args.batch)?;
    let env = ProcessEnvironment;
    let settings = Connection::resolve(&file, &env)?.with_passwords(&env)?;
    let how = Display {
        db,
        progress: args.progress,
        quiet,
    };
    drive(queue, &batch, settings, opts, how).await
}

/// Where a run shows itself: the queue it reads progress from, and how.
pub(super) struct Display<'a> {
    pub db: &'a Path,
    pub progress: ProgressMode,
    pub quiet: bool,
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
    let budget = crate::vr::Budget::shared(&settings.url, limits);
    let progress = Progress::start(
        how.db.to_path_buf(),
        batch.id,
        Some(budget),
        how.progress,
        how.quiet,
        opts.max_initial_syncs.is_some(),
    );
    let outcome = runner::run(queue, settings, opts, stop_rx).await;
    progress.finish().await;
    // No context of our own: the line above named the batch, and the runner's errors that
    // concern it (held by another run) name it themselves.
    let outcome = outcome?;
    super::summary::print(&outcome, how.db)?;
    Ok(outcome.exit_code())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RunSection;
    use crate::runner::RunOptions;
    use clap::Parser;
    use std::time::Duration;

    fn args(extra: &[&str]) -> RunFlags {
        let cli = crate::cli::Cli::parse_from([&["vrbulk", "run"], extra].concat());
        match cli.command {
            crate::cli::Command::Run(a) => a.flags(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn flags_win_over_the_settings_file_which_wins_over_the_defaults() {
        let file = RunSection {
            workers: Some(3),
            poll_interval_seconds: Some(7.5),
            submit_group: Some(10),
            lease_seconds: Some(90),
            ..RunSection::default()
        };
        let opts = file
            .options(&args(&["--poll-interval", "2", "--max-attempts", "9"]))
            .unwrap();
        assert_eq!(opts.poll_interval, Duration::from_secs(2), "flag over file");
        assert_eq!(opts.workers, 3, "file over default");
        assert_eq!(opts.submit_group, 10);
        assert_eq!(opts.lease, Duration::from_secs(90));
        assert_eq!(opts.max_attempts, Some(9));
        assert_eq!(
            opts.lookup_group,
            RunOptions::default().lookup_group,
            "default"
        );
    }

    #[test]
    fn out_of_range_settings_are_refused_naming_the_setting() {
        let err = RunSection::default()
            .options(&args(&["--workers", "0"]))
            .unwrap_err();
        assert!(err.to_string().contains("workers"), "{err}");
        // The appliance takes at most 20 VMs in one configure call.
        let file = RunSection {
            submit_group: Some(21),
            ..RunSection::default()
        };
        let err = file.options(&args(&[])).unwrap_err().to_string();
        assert!(err.contains("submit_group"), "{err}");
        assert!(RunSection::default()
            .options(&args(&["--until", "soon"]))
            .is_err());
    }

    #[test]
    fn a_negative_or_non_finite_poll_interval_is_refused_not_a_panic() {
        for bad in [-1.0, f64::NAN, f64::INFINITY, 1e300] {
            let file = RunSection {
                poll_interval_seconds: Some(bad),
                ..RunSection::default()
            };
            let err = file.options(&RunFlags::default()).unwrap_err().to_string();
            assert!(err.contains("poll_interval"), "{bad}: {err}");
        }
    }
}
