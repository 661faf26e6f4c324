//! `vrbulk watch`: follow a batch's replications through their initial sync until every VM is
//! protected, with progress in bytes, throughput and time left, and the jobs a run has not
//! configured yet; `--once` for cron and scripts.

use crate::exit::Exit;
use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use clap::Args;

use crate::config::{ConfigFile, Connection, ProcessEnvironment};
use crate::queue::{BatchId, Job, Queue, Readiness};
use crate::runner::follow::{self, Round, WatchEnding, WatchOptions, WatchOutcome};
use crate::timefmt::span;
use crate::units::bytes;

#[derive(Debug, Args)]
#[command(after_help = format!("Examples:
  vrbulk watch                     the newest batch, until its VMs are protected
  vrbulk watch --batch 3 --once    where batch 3 stands now (for cron and scripts)

{}", Exit::help()))]
pub struct WatchArgs {
    /// The batch [default: the newest].
    #[arg(long)]
    pub batch: Option<i64>,
    /// Print where the replications stand now and exit.
    #[arg(long)]
    pub once: bool,
    /// Seconds between two looks at the replications [default: 15].
    #[arg(long, default_value_t = 15.0)]
    pub interval: f64,
}

pub async fn run(args: WatchArgs, config: Option<&Path>, db: &Path) -> anyhow::Result<Exit> {
    anyhow::ensure!(
        args.interval.is_finite() && (0.1..=3600.0).contains(&args.interval),
        crate::config::ConfigError::Invalid {
            field: "--interval".into(),
            message: format!(
                "must be between 0.1 and 3600 seconds, got {}",
                args.interval
            ),
        }
    );
    let file = ConfigFile::load(config)?;
    let (queue, asked) = Queue::open_batch(db, args.batch)?;
    let followed = follow::configure_batch_of(&queue, asked.id)?;
    if followed != asked.id {
        eprintln!(
            "batch {} ({}) acts on the replications of batch {followed}: following batch \
             {followed}",
            asked.id, asked.operation
        );
    }
    let batch = queue.batch(followed)?;
    let jobs = queue.jobs(batch.id)?;
    let env = ProcessEnvironment;
    let settings = Connection::resolve(&file, &env)?.with_passwords(&env)?;
    crate::queue::ledger::share_budget(db, &settings.url, settings.limits);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            let _ = stop_tx.send(true);
        }
    });
    let opts = WatchOptions {
        batch: batch.id,
        interval: Duration::from_secs_f64(args.interval),
        once: args.once,
    };
    let outcome = follow::watch(queue, settings, opts, stop_rx, |round| {
        if !args.once {
            eprintln!("{}", progress_line(round));
        }
    })
    .await
    .with_context(|| format!("watching batch {}", batch.id))?;
    print_state(&outcome, &jobs);
    Ok(outcome.exit_code())
}

/// `protected 12/40, syncing 25 (1.2 TiB of 3.4 TiB, 118.0 MiB/s, about 5h 20m left), …; 60 jobs
/// not configured yet: a run works on them (host:pid:run)`
pub fn progress_line(r: &Round) -> String {
    let t = &r.tally;
    if t.configured == 0 {
        return if r.unended > 0 {
            not_configured_yet(r)
        } else {
            "no VM of the batch was configured".into()
        };
    }
    let mut parts = vec![format!(
        "protected {}/{}",
        t.count(Readiness::Protected),
        t.still_configured()
    )];
    let syncing = t.count(Readiness::Syncing) + t.not_followed;
    if syncing > 0 {
        let pace = match (r.throughput, r.eta) {
            (Some(speed), Some(eta)) => format!(
                ", {}/s, about {} left",
                bytes(speed as i64),
                span(eta.as_millis() as i64)
            ),
            _ => String::new(),
        };
        parts.push(format!(
            "syncing {syncing} ({} of {}{pace})",
            bytes(t.sync_bytes_done),
            bytes(t.sync_bytes_total)
        ));
    }
    let counted = [
        (Readiness::NotActive, "powered off, waiting".to_string()),
        (Readiness::Paused, format!("paused ({})", t.paused_words())),
        (Readiness::Error, "in error".to_string()),
        (
            Readiness::Missing,
            "no longer exist (removed outside vrbulk)".to_string(),
        ),
        (
            Readiness::Unconfigured,
            format!("unconfigured ({})", t.unconfigured_words()),
        ),
    ];
    for (readiness, words) in counted {
        if t.count(readiness) > 0 {
            parts.push(format!("{words} {}", t.count(readiness)));
        }
    }
    let mut line = parts.join(", ");
    if r.unended > 0 {
        line.push_str(&format!("; {}", not_configured_yet(r)));
    }
    line
}

/// `60 jobs not configured yet: a run works on them (host:pid:run)`, or that no run does.
fn not_configured_yet(r: &Round) -> String {
    let jobs = super::count(r.unended as usize, "job", "jobs");
    if r.runs.is_empty() {
        format!("{jobs} not configured yet, and no run works on them")
    } else {
        let them = if r.unended == 1 { "it" } else { "them" };
        format!(
            "{jobs} not configured yet: a run works on {them} ({})",
            r.runs.join(", ")
        )
    }
}

/// Rows the table of VMs that are not protected shows before it leaves the rest to the report.
const TABLE_ROWS: usize = 25;

/// The end: counts, then every VM that is not protected (problems first), with the reason in
/// the appliance's words, then what to do next, one line per cause.
fn print_state(outcome: &WatchOutcome, jobs: &[Job]) {
    let batch = outcome.batch;
    let Some(r) = &outcome.last else {
        println!("interrupted before the first look: `vrbulk watch --batch {batch}` follows them");
        return;
    };
    println!("{}", progress_line(r));
    let name = |job: i64| {
        jobs.iter()
            .find(|j| j.id == job)
            .map_or_else(|| format!("job {job}"), |j| j.vm_label().to_string())
    };
    let mut waiting: Vec<_> = r
        .records
        .iter()
        .filter(|p| {
            !matches!(
                p.readiness(),
                Readiness::Protected | Readiness::Unconfigured
            )
        })
        .collect();
    // What needs someone first (in error, removed, paused, powered off), the syncing last.
    let rank = |r: Readiness| match r {
        Readiness::Error => 0,
        Readiness::Missing => 1,
        Readiness::Paused => 2,
        Readiness::NotActive => 3,
        _ => 4,
    };
    waiting.sort_by_key(|p| (rank(p.readiness()), p.job));
    if !waiting.is_empty() {
        let mut table = super::table(["VM", "state", "status", "copied", "detail"]);
        for p in waiting.iter().take(TABLE_ROWS) {
            let state = match p.readiness() {
                Readiness::NotActive => "powered off, waiting".to_string(),
                _ => p.readiness_words(),
            };
            let copied = match (p.bytes_done, p.bytes_total) {
                (Some(d), Some(t)) => format!("{} of {}", bytes(d), bytes(t)),
                _ => String::new(),
            };
            table.add_row([
                name(p.job),
                state,
                p.status.clone(),
                copied,
                p.error.clone().unwrap_or_default(),
            ]);
        }
        println!("\n{table}");
        if waiting.len() > TABLE_ROWS {
            println!(
                "… and {} more not protected yet: `vrbulk report --batch {batch}` lists every VM",
                waiting.len() - TABLE_ROWS
            );
        }
    }
    let rpo = r.tally.rpo_violation;
    if rpo > 0 {
        println!("{rpo} protected VMs are behind their RPO now");
    }
    if outcome.ending == WatchEnding::Interrupted {
        println!("interrupted: `vrbulk watch --batch {batch}` follows them on");
        return;
    }
    for line in next_steps(r, batch) {
        println!("{line}");
    }
}

/// What the last round leaves to do, one line per cause; the end of a batch that is done.
fn next_steps(r: &Round, batch: BatchId) -> Vec<String> {
    let t = &r.tally;
    if r.all_protected() && t.configured == 0 {
        return vec![format!(
            "every job of batch {batch} has ended and none of them configured a VM: `vrbulk \
             status --batch {batch}` says why"
        )];
    }
    if r.all_protected() && t.still_configured() == 0 {
        return vec![format!(
            "every job of batch {batch} has ended and every replication it configured was \
             unconfigured since ({})",
            t.unconfigured_words()
        )];
    }
    if r.all_protected() {
        let removed = if t.count(Readiness::Unconfigured) > 0 {
            format!(
                " ({} {} since)",
                super::count(
                    t.count(Readiness::Unconfigured) as usize,
                    "replication was unconfigured",
                    "replications were unconfigured"
                ),
                t.unconfigured_words()
            )
        } else {
            String::new()
        };
        return vec![format!(
            "every job of batch {batch} has ended and every configured VM is protected{removed}"
        )];
    }
    let mut steps = Vec::new();
    if t.count(Readiness::Error) > 0 {
        steps.push(
            "some replications are in error: fix the cause the appliance names, then reconfigure \
             them (or undo and configure them again)"
                .to_string(),
        );
    }
    let missing = t.count(Readiness::Missing);
    if missing > 0 {
        let (exist, them, vms) = if missing == 1 {
            ("replication no longer exists", "it", "that VM")
        } else {
            ("replications no longer exist", "them", "those VMs")
        };
        steps.push(format!(
            "{missing} {exist} on the appliance and no vrbulk batch removed {them}: someone \
             removed {them} outside vrbulk; import and run {vms} again to protect {them}"
        ));
    }
    if r.unended > 0 {
        steps.push(if r.runs.is_empty() {
            format!(
                "{}: `vrbulk run --batch {batch}` configures them, then `vrbulk watch --batch \
                 {batch}`",
                not_configured_yet(r)
            )
        } else {
            format!("a run still works on the batch: `vrbulk watch --batch {batch}` follows it until it ends")
        });
    }
    if t.count(Readiness::Paused) > 0 {
        steps.push(format!(
            "the paused replications ({}) replicate once resumed: `vrbulk resume --batch {batch}`",
            t.paused_words()
        ));
    }
    if t.count(Readiness::NotActive) > 0 {
        steps.push(format!(
            "the powered-off VMs replicate once they are powered on; `vrbulk watch --batch {batch}` \
             follows them then"
        ));
    }
    if t.count(Readiness::Syncing) + t.not_followed > 0 {
        steps.push(format!("`vrbulk watch --batch {batch}` follows them on"));
    }
    steps
}
