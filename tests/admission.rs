//! `--max-initial-syncs auto`, the default: a run finds how many initial syncs the link carries
//! best while the wave flows. Judged by the simulator's own record of when each sync went onto
//! the link and came off it, not by what vrbulk says it did.

use std::path::Path;
use std::time::Duration;

use tokio::sync::watch;
use vrbulk::queue::{JobState, Queue};
use vrbulk::runner::{self, InitialSyncs, RunOptions};
use vrbulk::sim::{LinkModel, SimConfig, SimStats};

use crate::support::fixtures::{self, new_batch};
use crate::support::harness::{normal_specs, settings_for, start, until_synced};

/// 1 Gbit/s, 200 Mbit/s a sync, contention past 8: five syncs fill the link; a flood of 30
/// would get a fifth of it. The appliance's sizes, four thousand times as fast.
fn link_of_five(vms: usize) -> SimConfig {
    SimConfig {
        vms,
        task_seconds: 0.1,
        sync_time_scale: 4000.0,
        link: LinkModel {
            contention_threshold: 8,
            ..LinkModel::default()
        },
        ..SimConfig::fast()
    }
}

/// How many syncs were on the link over time, by the simulator's record: each step, from the
/// simulated instant it began, with the count from then on.
fn on_the_link(stats: &SimStats) -> Vec<(u64, i64)> {
    let mut events: Vec<(u64, i64)> = stats
        .replications
        .values()
        .filter_map(|t| Some([(t.sync_started?.sim_ms, 1), (t.sync_ended?.sim_ms, -1)]))
        .flatten()
        .collect();
    // An end before a start at the same instant: a slot handed on is not two syncs at once.
    events.sort();
    let mut n = 0;
    events
        .into_iter()
        .map(|(at, d)| {
            n += d;
            (at, n)
        })
        .collect()
}

/// The mean number of syncs on the link between two simulated instants, weighted by time.
fn mean_between(steps: &[(u64, i64)], from: u64, to: u64) -> f64 {
    let mut sum = 0.0;
    for pair in steps.windows(2) {
        let (a, n) = pair[0];
        let b = pair[1].0;
        let (a, b) = (a.max(from), b.min(to));
        if b > a {
            sum += n as f64 * (b - a) as f64;
        }
    }
    sum / (to - from) as f64
}

async fn run_default(db: &Path, sim: &vrbulk::sim::Simulator, batch: i64) -> runner::RunOutcome {
    let (_stop, stop_rx) = watch::channel(false);
    let opts = RunOptions {
        batch: Some(batch),
        poll_interval: Duration::from_millis(100),
        ..RunOptions::default()
    };
    assert_eq!(opts.max_initial_syncs, InitialSyncs::Auto, "the default");
    runner::run(Queue::open(db).unwrap(), settings_for(sim), opts, stop_rx)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_starts_with_one_sync_grows_while_each_runs_at_its_pace_and_holds_below_the_knee() {
    let sim = start(link_of_five(33)).await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("q.db");
    let batch = fixtures::import(&db, &new_batch("wave"), &normal_specs(&sim, 28));
    let outcome = run_default(&db, &sim, batch).await;
    assert_eq!(outcome.counts[&JobState::Succeeded], 28);
    until_synced(&sim).await;
    let stats = sim.stats();
    assert!(stats.configured_more_than_once.is_empty());
    assert_eq!(stats.status_429, 0, "the census polls kept to the budget");
    let steps = on_the_link(&stats);
    let samples = Queue::open(&db).unwrap().link_samples(batch).unwrap();
    eprintln!("{steps:?}");
    for s in &samples {
        eprintln!(
            "{} span {} in_sync {} cap {:?} mbps {:.0} pace {:.0}",
            s.at, s.span_ms, s.in_sync, s.cap, s.mbps, s.pace_mbps
        );
    }
    assert_eq!(steps[0].1, 1, "the first sync went alone");
    let peak = steps.iter().map(|(_, n)| *n).max().unwrap();
    // A probe past the knee now and then, never the flood (all 28 at once).
    assert!(peak <= 10, "{peak} at once");
    // Over the middle of the wave the link carried about five syncs: its knee, found.
    let (start, end) = (steps[0].0, steps[steps.len() - 1].0);
    let span = end - start;
    let middle = mean_between(&steps, start + span / 5, end - span / 3);
    assert!(
        (4.0..=7.0).contains(&middle),
        "{middle:.1} syncs on the link on average over the middle of the wave: {steps:?}"
    );
    // The run recorded what it measured: the link at about 1 Gbit/s once full, and the caps it
    // went through from one sync up.
    let caps: Vec<u32> = samples.iter().filter_map(|s| s.cap).collect();
    assert!(caps.len() >= 5, "{samples:?}");
    assert!(
        caps.contains(&2) && caps.iter().any(|c| *c >= 5),
        "{caps:?}"
    );
    let best = samples.iter().map(|s| s.mbps).fold(0.0, f64::max);
    // The simulated link's speed, in wall time: its hours pass 4000 times as fast.
    let full = 1000.0 * 4000.0;
    // Intervals of a fifth of a second, timed by the client's clock: a few per cent either way.
    assert!(
        best > 0.8 * full && best < 1.15 * full,
        "{best:.0} Mbit/s measured at best, the link carries {full:.0}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_admits_every_vm_at_once() {
    let sim = start(link_of_five(20)).await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("q.db");
    let specs = normal_specs(&sim, 15);
    let batch = fixtures::import(&db, &new_batch("wave"), &specs);
    let (_stop, stop_rx) = watch::channel(false);
    let opts = RunOptions {
        batch: Some(batch),
        poll_interval: Duration::from_millis(100),
        max_initial_syncs: InitialSyncs::All,
        ..RunOptions::default()
    };
    runner::run(Queue::open(&db).unwrap(), settings_for(&sim), opts, stop_rx)
        .await
        .unwrap();
    until_synced(&sim).await;
    let steps = on_the_link(&sim.stats());
    let peak = steps.iter().map(|(_, n)| *n).max().unwrap();
    assert!(peak >= 14, "all at once: {peak} syncs at the peak");
}
