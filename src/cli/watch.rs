//! `vrbulk watch`: follow a batch's replications through their initial sync until every VM is
//! protected, with progress in bytes, throughput and time left; `--once` for cron and scripts.

use crate::exit::Exit;
use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use clap::Args;

use super::open_batch;
use crate::config::{ConfigFile, Connection, ProcessEnvironment};
use crate::queue::{Job, Readiness};
use crate::runner::follow::{self, Round, WatchOptions, WatchOutcome};
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
    let (queue, batch) = open_batch(db, args.batch)?;
    let jobs = queue.jobs(batch.id)?;
    let env = ProcessEnvironment;
    let settings = Connection::resolve(&file, &env)?.with_passwords(&env)?;
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

/// `protected 12/40, syncing 25 (1.2 TiB of 3.4 TiB, 118.0 MiB/s, about 5h 20m left), …`
pub fn progress_line(r: &Round) -> String {
    let t = &r.tally;
    let mut parts = vec![format!(
        "protected {}/{}",
        t.count(Readiness::Protected),
        t.configured
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
    for (readiness, words) in [
        (Readiness::NotActive, "powered off, waiting"),
        (Readiness::Error, "in error"),
    ] {
        if t.count(readiness) > 0 {
            parts.push(format!("{words} {}", t.count(readiness)));
        }
    }
    parts.join(", ")
}

/// The end: counts, then every VM that is not protected, with the reason in the appliance's
/// words, then what to do next.
fn print_state(outcome: &WatchOutcome, jobs: &[Job]) {
    let Some(r) = &outcome.last else {
        println!(
            "batch {}: no VM is configured yet; `vrbulk run --batch {0}` configures them",
            outcome.batch
        );
        return;
    };
    println!("{}", progress_line(r));
    let name = |job: i64| {
        jobs.iter()
            .find(|j| j.id == job)
            .map_or_else(|| format!("job {job}"), |j| j.vm_label().to_string())
    };
    let waiting: Vec<_> = r
        .records
        .iter()
        .filter(|p| p.readiness() != Readiness::Protected)
        .collect();
    if !waiting.is_empty() {
        let mut table = super::table(["VM", "state", "status", "copied", "detail"]);
        for p in waiting {
            let state = match p.readiness() {
                Readiness::NotActive => "powered off, waiting",
                other => other.as_str(),
            };
            let copied = match (p.bytes_done, p.bytes_total) {
                (Some(d), Some(t)) => format!("{} of {}", bytes(d), bytes(t)),
                _ => String::new(),
            };
            table.add_row([
                name(p.job),
                state.to_string(),
                p.status.clone(),
                copied,
                p.error.clone().unwrap_or_default(),
            ]);
        }
        println!("\n{table}");
    }
    let rpo = r.tally.rpo_violation;
    if rpo > 0 {
        println!("{rpo} protected VMs are behind their RPO now");
    }
    match outcome.exit_code() {
        Exit::Ok => println!(
            "every configured VM of batch {} is protected",
            outcome.batch
        ),
        Exit::ReplicationError => println!(
            "some replications are in error: fix the cause the appliance names, then reconfigure \
             them (or undo and configure them again)"
        ),
        Exit::NotProtected if r.settled() => println!(
            "the powered-off VMs replicate once they are powered on; `vrbulk watch --batch {}` \
             follows them then",
            outcome.batch
        ),
        Exit::NotProtected => println!("`vrbulk watch --batch {}` follows them on", outcome.batch),
        _ => println!(
            "interrupted: `vrbulk watch --batch {}` follows them on",
            outcome.batch
        ),
    }
}
