//! `vrbulk run`: drive a batch to the end (or to the end of the change window), politely.

use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use clap::Args;

use super::progress::{Progress, ProgressMode};
use super::{exit, open_batch};
use crate::config::{ConfigError, ConfigFile, Connection, ProcessEnvironment, RunSection};
use crate::queue::JobState;
use crate::runner::{self, Ending, RunOptions, RunOutcome};

#[derive(Debug, Args)]
#[command(after_help = "Examples:
  vrbulk run                                  # the newest batch
  vrbulk run --batch 3 --rate 5 --until 05:30 # gentle, and stop claiming at 05:30 local time
Ctrl-C stops claiming, lets in-flight calls finish for a few seconds and gives the rest back;
a second Ctrl-C exits at once. Either way the next `vrbulk run` resumes where this one stopped.")]
pub struct RunArgs {
    /// The batch to run [default: the newest].
    #[arg(long)]
    pub batch: Option<i64>,
    /// Requests in flight at most [default: 8, or [run] workers].
    #[arg(long)]
    pub workers: Option<usize>,
    /// Requests per second to the appliance [default: 20, or [run] rate].
    #[arg(long)]
    pub rate: Option<f64>,
    /// Requests that may go at once after a quiet spell [default: 10, or [run] burst].
    #[arg(long)]
    pub burst: Option<u32>,
    /// Attempts per job before it fails (applies to the batch's unfinished jobs).
    #[arg(long)]
    pub max_attempts: Option<u32>,
    /// Stop claiming new jobs at this time (end of the change window): `HH:MM` (local, the next
    /// one to come), `YYYY-MM-DD HH:MM` (local) or RFC 3339. Running jobs finish.
    #[arg(long, value_name = "TIME")]
    pub until: Option<String>,
    /// VMs per lookup call [default: 50].
    #[arg(long)]
    pub lookup_group: Option<usize>,
    /// Specs per configure call [default: 20].
    #[arg(long)]
    pub submit_group: Option<usize>,
    /// Seconds between task polls [default: 2].
    #[arg(long)]
    pub poll_interval: Option<f64>,
    /// How to show progress: a bar on a terminal, plain lines otherwise.
    #[arg(long, value_enum, default_value_t = ProgressMode::Auto)]
    pub progress: ProgressMode,
}

impl RunArgs {
    /// The run settings of the file alone (no flags), checked: for `config check`.
    pub fn from_file(file: &RunSection) -> Result<RunOptions, ConfigError> {
        RunArgs {
            batch: None,
            workers: None,
            rate: None,
            burst: None,
            max_attempts: None,
            until: None,
            lookup_group: None,
            submit_group: None,
            poll_interval: None,
            progress: ProgressMode::Auto,
        }
        .options(file)
    }

    /// Flags over `[run]` over the built-in defaults, checked once.
    pub fn options(&self, file: &RunSection) -> Result<RunOptions, ConfigError> {
        let d = RunOptions::default();
        let invalid = |field: &str, message: String| ConfigError::Invalid {
            field: field.to_string(),
            message,
        };
        let opts = RunOptions {
            batch: self.batch,
            workers: self.workers.or(file.workers).unwrap_or(d.workers),
            rate: self.rate.or(file.rate).unwrap_or(d.rate),
            burst: self.burst.or(file.burst).unwrap_or(d.burst),
            max_attempts: self.max_attempts.or(file.max_attempts),
            until: self
                .until
                .as_deref()
                .map(parse_until)
                .transpose()
                .map_err(|m| invalid("--until", m))?,
            lookup_group: self
                .lookup_group
                .or(file.lookup_group)
                .unwrap_or(d.lookup_group),
            submit_group: self
                .submit_group
                .or(file.submit_group)
                .unwrap_or(d.submit_group),
            poll_interval: self
                .poll_interval
                .or(file.poll_interval_seconds)
                .map(Duration::from_secs_f64)
                .unwrap_or(d.poll_interval),
            request_retries: file.request_retries.unwrap_or(d.request_retries),
            lease: file
                .lease_seconds
                .map(Duration::from_secs)
                .unwrap_or(d.lease),
            ..d
        };
        let checks: [(&str, bool, &str); 8] = [
            (
                "lease_seconds",
                opts.lease >= Duration::from_secs(1),
                "at least 1",
            ),
            (
                "workers",
                (1..=64).contains(&opts.workers),
                "between 1 and 64",
            ),
            (
                "rate",
                opts.rate > 0.0 && opts.rate <= 1000.0,
                "above 0 and at most 1000 requests/s",
            ),
            (
                "burst",
                (1..=1000).contains(&opts.burst),
                "between 1 and 1000",
            ),
            (
                "lookup_group",
                (1..=200).contains(&opts.lookup_group),
                "between 1 and 200",
            ),
            (
                "submit_group",
                (1..=100).contains(&opts.submit_group),
                "between 1 and 100",
            ),
            (
                "max_attempts",
                opts.max_attempts.is_none_or(|k| (1..=100).contains(&k)),
                "between 1 and 100",
            ),
            (
                "poll_interval",
                opts.poll_interval >= Duration::from_millis(100),
                "at least 0.1 s",
            ),
        ];
        for (field, ok, expected) in checks {
            if !ok {
                return Err(invalid(field, format!("must be {expected}")));
            }
        }
        Ok(opts)
    }
}

/// `HH:MM` (the next one, local), `YYYY-MM-DD HH:MM` (local) or an RFC 3339 instant, as Unix ms.
pub fn parse_until(text: &str) -> Result<i64, String> {
    let text = text.trim();
    let now = jiff::ZonedDateTime::now();
    let local = |dt: jiff::civil::DateTime| {
        dt.to_zoned_datetime(now.time_zone().clone())
            .map(|z| z.timestamp())
            .map_err(|e| e.to_string())
    };
    let instant = if let Ok(t) = text.parse::<jiff::Timestamp>() {
        t
    } else if let Ok(dt) = text.parse::<jiff::civil::DateTime>() {
        local(dt)?
    } else if let Ok(t) = text.parse::<jiff::civil::Time>() {
        let today = local(now.date().to_datetime(t))?;
        if today > now.timestamp() {
            today
        } else {
            today
                .checked_add(jiff::SignedDuration::from_hours(24))
                .map_err(|e| e.to_string())?
        }
    } else {
        return Err(format!(
            "`{text}`: expected HH:MM, YYYY-MM-DD HH:MM or an RFC 3339 time"
        ));
    };
    Ok(instant.as_millisecond())
}

pub async fn run(
    args: RunArgs,
    config: Option<&Path>,
    db: &Path,
    quiet: bool,
) -> anyhow::Result<u8> {
    let file = ConfigFile::load(config)?;
    let opts = args.options(&file.run)?;
    let (queue, batch) = open_batch(db, args.batch)?;
    let env = ProcessEnvironment;
    let settings = Connection::resolve(&file, &env)?.with_passwords(&env)?;
    let opts = RunOptions {
        batch: Some(batch.id),
        ..opts
    };
    let before = queue.counts(batch.id)?;
    let todo: u64 = [JobState::Pending, JobState::Running, JobState::Retryable]
        .iter()
        .map(|s| before[s])
        .sum();
    eprintln!(
        "batch {} \"{}\": {todo} jobs to do, at most {} requests/s, {} in flight",
        batch.id, batch.name, opts.rate, opts.workers
    );

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!("\nstopping: no new work; in-flight calls get a few seconds (Ctrl-C again exits at once)");
            let _ = stop_tx.send(true);
            if tokio::signal::ctrl_c().await.is_ok() {
                eprintln!(
                    "exiting now; the next `vrbulk run` resumes and checks what was in flight"
                );
                std::process::exit(i32::from(exit::INTERRUPTED));
            }
        }
    });
    let progress = Progress::start(db.to_path_buf(), batch.id, args.progress, quiet);
    let outcome = runner::run(queue, settings, opts, stop_rx).await;
    progress.finish().await;
    let outcome = outcome.with_context(|| format!("running batch {}", batch.id))?;
    print_summary(&outcome, db)?;
    Ok(outcome.exit_code())
}

/// The end of a run: counts per state, API cost, and every failure with its reason.
pub(super) fn print_summary(outcome: &RunOutcome, db: &Path) -> anyhow::Result<()> {
    let total: u64 = outcome.counts.values().sum();
    let mut table = super::table(["state", "VMs", "%"]);
    for (state, n) in outcome.counts.iter().filter(|(_, n)| **n > 0) {
        table.add_row([
            state.to_string(),
            n.to_string(),
            format!("{:.0}", *n as f64 * 100.0 / total.max(1) as f64),
        ]);
    }
    println!("{table}");
    let calls = outcome.metrics.total_calls();
    println!(
        "batch {}: {total} VMs, {calls} API calls ({:.2} per VM, {} throttled, {} re-logins) in {:.1} s",
        outcome.batch,
        calls as f64 / total.max(1) as f64,
        outcome.metrics.total().throttled,
        outcome.metrics.relogins,
        outcome.elapsed.as_secs_f64()
    );
    let queue = crate::queue::Queue::open(db)?;
    let failed: Vec<_> = queue
        .jobs(outcome.batch)?
        .into_iter()
        .filter(|j| j.state == JobState::Failed)
        .collect();
    if !failed.is_empty() {
        let mut table = super::table(["failed VM", "step", "reason"]);
        for j in &failed {
            table.add_row([
                j.vm_label().to_string(),
                j.step.to_string(),
                j.reason.clone().unwrap_or_default(),
            ]);
        }
        println!("\n{table}");
        println!(
            "fix the causes, then `vrbulk retry --batch {0} --failed` and `vrbulk run --batch {0}`",
            outcome.batch
        );
    }
    match outcome.ending {
        Ending::Done => {}
        Ending::WindowClosed => println!(
            "the change window closed: {} jobs were not started; `vrbulk run --batch {}` continues",
            outcome.counts[&JobState::Pending] + outcome.counts[&JobState::Retryable],
            outcome.batch
        ),
        Ending::Interrupted => println!(
            "interrupted: `vrbulk run --batch {}` resumes where this run stopped",
            outcome.batch
        ),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn args(extra: &[&str]) -> RunArgs {
        let cli = crate::cli::Cli::parse_from([&["vrbulk", "run"], extra].concat());
        match cli.command {
            crate::cli::Command::Run(a) => a,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn flags_win_over_the_settings_file_which_wins_over_the_defaults() {
        let file = RunSection {
            workers: Some(3),
            rate: Some(7.5),
            submit_group: Some(10),
            lease_seconds: Some(90),
            ..RunSection::default()
        };
        let opts = args(&["--rate", "2", "--max-attempts", "9"])
            .options(&file)
            .unwrap();
        assert_eq!(opts.rate, 2.0, "flag over file");
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
        let err = args(&["--workers", "0"])
            .options(&RunSection::default())
            .unwrap_err();
        assert!(err.to_string().contains("workers"), "{err}");
        let file = RunSection {
            submit_group: Some(500),
            ..RunSection::default()
        };
        assert!(args(&[])
            .options(&file)
            .unwrap_err()
            .to_string()
            .contains("submit_group"));
        assert!(args(&["--until", "soon"])
            .options(&RunSection::default())
            .is_err());
    }

    #[test]
    fn until_understands_clock_times_and_instants() {
        let now = jiff::Timestamp::now().as_millisecond();
        let next = parse_until("05:30").unwrap();
        assert!(next > now && next <= now + 24 * 3600 * 1000);
        assert_eq!(
            parse_until("2026-11-27T05:30:00Z").unwrap(),
            1_795_757_400_000
        );
        assert!(parse_until("half past five").unwrap_err().contains("HH:MM"));
    }
}
