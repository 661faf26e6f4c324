//! `vrbulk monitor`: follow the replications of the chosen batches (every configure batch with a
//! configured VM by default) and record what goes wrong as findings, with a digest of each
//! cycle's changes to the notification channels; `--once` for cron.

use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use clap::Args;

use crate::config::{ConfigFile, Connection, ProcessEnvironment};
use crate::exit::Exit;
use crate::monitor::{self, Cycle, MonitorOptions};
use crate::queue::{BatchId, Queue};

#[derive(Debug, Args)]
#[command(after_help = format!("Examples:
  vrbulk monitor                   every configured batch, a cycle every [monitor] interval
  vrbulk monitor --batch 3 --once  one cycle of batch 3 (for cron)

Grace and hold times are in [monitor] of vrbulk.toml; channels in [[notify.*]].
Exit: 0 no open finding, 4 open findings, 3 no connection (or a batch that could not be
read in the last cycle), 2 bad settings.

{}", Exit::help()))]
pub struct MonitorArgs {
    /// A batch to follow (repeat for several) [default: every configure batch with a
    /// configured VM].
    #[arg(long = "batch", value_name = "ID")]
    pub batches: Vec<BatchId>,
    /// Also every other replication of the appliance, on every pairing (recorded as
    /// "outside vrbulk's batches": behind RPO, error, paused, not active).
    #[arg(long)]
    pub all: bool,
    /// One cycle, then exit.
    #[arg(long)]
    pub once: bool,
    /// Seconds between cycles [default: [monitor] interval, or 300].
    #[arg(long)]
    pub interval: Option<f64>,
}

pub async fn run(args: MonitorArgs, config: Option<&Path>, db: &Path) -> anyhow::Result<Exit> {
    let file = ConfigFile::load(config)?;
    if let Some(i) = args.interval {
        anyhow::ensure!(
            i.is_finite() && (0.1..=86_400.0).contains(&i),
            crate::config::ConfigError::Invalid {
                field: "--interval".into(),
                message: format!("must be between 0.1 and 86400 seconds, got {i}"),
            }
        );
    }
    let mut queue = Queue::open(db)?;
    let env = ProcessEnvironment;
    let settings = Connection::resolve(&file, &env)?.with_passwords(&env)?;
    crate::queue::ledger::share_budget(db, &settings.url, settings.limits);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            let _ = stop_tx.send(true);
        }
    });
    let opts = MonitorOptions {
        batches: args.batches.clone(),
        all: args.all,
        interval: args
            .interval
            .map(Duration::from_secs_f64)
            .unwrap_or_else(|| file.monitor.interval()),
        once: args.once,
    };
    let mut last_open = 0;
    let mut unread = false;
    monitor::monitor(
        &mut queue,
        settings,
        &file.monitor,
        &file.notify,
        opts,
        stop_rx,
        |cycle| {
            last_open = cycle.open;
            unread = !cycle.unread.is_empty();
            println!("{}", line(cycle));
            for c in &cycle.changes {
                println!("  {}", crate::notify::FindingNote::of(c).line());
            }
        },
    )
    .await
    .context("monitoring")?;
    Ok(if last_open > 0 {
        Exit::ReplicationError
    } else if unread {
        // Nothing open is not "all well" when a batch could not be read.
        Exit::Connect
    } else {
        Exit::Ok
    })
}

/// `2026-12-06T23:00:00Z batches 1, 3: 300 replications, 3 opened, 1 cleared, 14 open; 1
/// notification sent`
fn line(c: &Cycle) -> String {
    let batches: Vec<String> = c.batches.iter().map(|b| batch_words(*b)).collect();
    let opened = c.changes.iter().filter(|x| x.change == "opened").count();
    let cleared = c.changes.len() - opened;
    let mut out = format!(
        "{} {}: {} replications looked at, {opened} opened, {cleared} cleared, {} open",
        crate::timefmt::utc(now_ms()),
        batches.join(", "),
        c.replications,
        c.open
    );
    for (b, why) in &c.unread {
        out.push_str(&format!("; {} not read this cycle: {why}", batch_words(*b)));
    }
    if c.delivered > 0 || c.undelivered > 0 {
        out.push_str(&format!(
            "; notifications: {} sent, {} failed (retried later)",
            c.delivered, c.undelivered
        ));
    }
    out
}

/// `batch 3`, or for `--all` the replications outside every batch.
fn batch_words(b: BatchId) -> String {
    match b {
        crate::monitor::APPLIANCE => "the rest of the appliance".to_string(),
        b => format!("batch {b}"),
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
