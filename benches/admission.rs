//! Measured admission of a wave without a guess (issue 19): `--max-initial-syncs auto` on links
//! drawn at random, against what the link could do at best and against every fixed cap.
//!
//! From a seed, `LINKS` links are drawn: bandwidth 0.2 to 10 Gbit/s, a sync's ceiling 50 to
//! 800 Mbit/s, contention from 3 to 40 syncs on, falling by different amounts past it (the
//! simulator's `LinkModel`). Each carries a wave of 300 VMs with the simulator's mix of disk
//! sizes. For each link, side by side:
//!
//! - all at once, and the best fixed cap of 1 to 40 (the strategy a tuner with hindsight would
//!   pick, best for the makespan and best for the mean, each on its own): computed exactly from
//!   the link model, smallest first, with no time lost between one sync and the next, so that
//!   they are what those strategies could do at best;
//! - `auto`: vrbulk's run (the library's `runner::run`, as `vrbulk run` calls it) against the
//!   simulator with that link, measured by the simulator's own record of when each sync ended;
//! - the two lower bounds, from `workflow::forecast` with the link's best throughput (which,
//!   with a low ceiling, needs more syncs than the threshold) and a sync's pace: the makespan is
//!   at least the bytes at that throughput and the largest VM at the pace; the mean is that of
//!   shortest remaining first on a link that would carry its best throughput with any number of
//!   syncs, each at most at the pace (the least mean any schedule could have there).
//!
//! Hours of sync pass in seconds: each link's simulator clock runs fast enough that its wave
//! takes about `WALL_TARGET` seconds (`AT_ONCE` links at a time), and the tool's own times
//! (configure tasks, the shortest poll gap) are scaled to the appliance's (10 s a task, 2 s a
//! poll). The rate limiter is off: at these clocks a 60 s window would last milliseconds.
//! `cargo bench --bench admission` (about 20 minutes; `VRBULK_BENCH_LINKS=5` for the first
//! five links, `VRBULK_BENCH_ONLY=7,13` for those; `VRBULK_BENCH_TRACE=1` for each run's
//! samples, the link's idle time, syncs by tenths of the makespan and the latest ends, by the
//! simulator's record).

use std::time::Duration;

use tokio::sync::watch;
use vrbulk::domain::{JobSpec, VmRef};
use vrbulk::queue::{InputKind, NewBatch, Queue};
use vrbulk::runner::{self, InitialSyncs, RunOptions, SubmitOrder};
use vrbulk::secret::Secret;
use vrbulk::sim::{LinkModel, Moment, SimConfig, SimStats, Simulator, VmKind};
use vrbulk::vr::{ApiVersion, ClientSettings, Credentials, TlsTrust};
use vrbulk::workflow::forecast::{makespan, protected_in, LinkRate};
use vrbulk::workflow::protection::replicated_bytes;

const LINKS: usize = 20;
const SEED: u64 = 19;
/// The wave: the simulator's VMs but its template, its powered-off VM and its replicated one.
const INVENTORY: usize = 303;
/// Wall seconds each `auto` run should take, about: a round of the tool (a census, a submit)
/// takes some milliseconds of wall time, which the clock makes some seconds of the appliance's,
/// as they are on a real one.
const WALL_TARGET: f64 = 240.0;
/// Links measured at once: the tool and the simulator mostly wait.
const AT_ONCE: usize = 5;
/// The appliance's own times, in simulated seconds.
const TASK_SECONDS: f64 = 10.0;
const POLL_SECONDS: f64 = 2.0;

/// Times to protected in simulated seconds from the first configure call, smallest first for
/// the computed strategies.
#[derive(Debug, Clone)]
struct Outcome {
    protected: Vec<f64>,
}

impl Outcome {
    fn makespan(&self) -> f64 {
        self.protected.iter().copied().fold(0.0, f64::max)
    }

    fn mean(&self) -> f64 {
        self.protected.iter().sum::<f64>() / self.protected.len().max(1) as f64
    }
}

/// What `auto` did on one link.
struct Auto {
    outcome: Outcome,
    /// The whiles no sync copied.
    gaps: Vec<Gap>,
    /// The run's recorded samples: sim seconds since the first, syncs, cap, Mbit/s, a sync's
    /// pace in Mbit/s (simulated: the run measures them on the scaled clock).
    samples: Vec<(f64, u32, Option<u32>, f64, f64)>,
    /// Simulated seconds of each sync, start and end, and its bytes, by the simulator's record.
    syncs: Vec<(f64, f64, f64)>,
    wall: Duration,
}

fn draw(rng: &mut fastrand::Rng) -> LinkModel {
    let log_uniform = |rng: &mut fastrand::Rng, lo: f64, hi: f64| {
        (lo.ln() + rng.f64() * (hi.ln() - lo.ln())).exp()
    };
    LinkModel {
        bandwidth_mbps: log_uniform(rng, 200.0, 10_000.0).round(),
        per_sync_ceiling_mbps: log_uniform(rng, 50.0, 800.0).round(),
        contention_threshold: rng.u32(3..=40),
        contention_falloff: (0.25 + rng.f64() * 1.75 * 100.0).round() / 100.0,
    }
}

/// What a cap of `cap` syncs does with no time lost between syncs: the smallest waiting VM
/// starts the instant one ends, every sync at the model's rate for the number on the link.
fn ideal(sizes: &[f64], link: &LinkModel, cap: usize) -> Outcome {
    let mut left: Vec<f64> = Vec::new();
    let mut next = 0;
    let mut now = 0.0;
    let mut protected = Vec::with_capacity(sizes.len());
    loop {
        while left.len() < cap && next < sizes.len() {
            left.push(sizes[next]);
            next += 1;
        }
        if left.is_empty() {
            break;
        }
        let rate = link.per_sync_bytes_per_second(left.len());
        let first = left.iter().copied().fold(f64::INFINITY, f64::min);
        now += first / rate;
        left.retain_mut(|l| {
            *l -= first;
            let ended = *l <= 1e-6 * first.max(1.0);
            if ended {
                protected.push(now);
            }
            !ended
        });
    }
    Outcome { protected }
}

/// The lower bounds: makespan and mean time to protected, in seconds.
fn bounds(sizes: &[f64], link: &LinkModel) -> (f64, f64) {
    let rate = LinkRate::from_mbps(link.best_mbps(), link.per_sync_mbps(1));
    let bytes: Vec<u64> = sizes.iter().map(|s| *s as u64).collect();
    let mean = Outcome {
        protected: protected_in(&bytes, rate),
    }
    .mean();
    (makespan(&bytes, rate).unwrap_or(f64::INFINITY), mean)
}

fn settings(sim: &Simulator) -> ClientSettings {
    let who = Credentials {
        user: "administrator@vsphere.local".into(),
        password: Secret::new("VMware1!"),
    };
    ClientSettings {
        url: sim.url().parse().expect("simulator URL"),
        api_version: ApiVersion::V2,
        trust: TlsTrust::Verify,
        timeout: Duration::from_secs(30),
        page_size: 1000,
        source: who.clone(),
        target: who,
        limits: sim.limits(),
    }
}

fn replicable(kind: VmKind) -> bool {
    !matches!(
        kind,
        VmKind::Template | VmKind::PoweredOff | VmKind::AlreadyReplicated
    )
}

/// The wave's VMs and the bytes each initial sync copies, by the simulator's inventory.
fn wave(sim: &Simulator) -> (Vec<JobSpec>, Vec<f64>) {
    sim.inventory()
        .vms
        .iter()
        .filter(|v| replicable(v.kind))
        .map(|v| {
            let spec = JobSpec {
                line: None,
                vm: VmRef {
                    name: Some(v.vm.name.clone()),
                    id: None,
                },
                pairing: None,
                target_datastore: "ds-gold-01".into(),
                storage_policy: None,
                replication_server: None,
                settings: Default::default(),
                change_ticket: None,
                notes: None,
            };
            (spec, replicated_bytes(v.disks()) as f64)
        })
        .unzip()
}

fn sim_config(link: LinkModel, scale: f64) -> SimConfig {
    SimConfig {
        vms: INVENTORY,
        task_seconds: (TASK_SECONDS / scale).max(0.002),
        sync_time_scale: scale,
        limits: None,
        tls: false,
        link,
        ..SimConfig::default()
    }
}

async fn auto(link: LinkModel, scale: f64) -> Auto {
    let sim = Simulator::start(sim_config(link, scale))
        .await
        .expect("simulator");
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("bench.db");
    let (jobs, _) = wave(&sim);
    let n = jobs.len();
    let batch = Queue::open(&db)
        .expect("queue")
        .create_batch(
            &NewBatch {
                name: "auto".into(),
                operator: "bench".into(),
                host: "bench".into(),
                input_kind: InputKind::Csv,
                input_path: None,
                input_sha256: None,
                settings: serde_json::json!({}),
                max_attempts: 5,
            },
            &jobs,
        )
        .expect("batch");
    let (_stop, stop_rx) = watch::channel(false);
    let opts = RunOptions {
        max_initial_syncs: InitialSyncs::Auto,
        order: SubmitOrder::SmallestFirst,
        poll_interval: Duration::from_secs_f64((POLL_SECONDS / scale).max(0.005)),
        ..RunOptions::default()
    };
    let started = std::time::Instant::now();
    runner::run(
        Queue::open(&db).expect("queue"),
        settings(&sim),
        opts,
        stop_rx,
    )
    .await
    .expect("the run completes");
    let stats = loop {
        let stats = sim.stats();
        if synced(&stats) == n {
            break stats;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let wall = started.elapsed();
    let first = stats
        .replications
        .values()
        .map(|t| t.submitted.sim_ms)
        .min()
        .unwrap_or(0);
    let recorded = Queue::open(&db)
        .expect("queue")
        .link_samples(batch)
        .expect("samples");
    let t0 = recorded.first().map_or(0, |s| s.at - s.span_ms);
    let samples = recorded
        .iter()
        .map(|s| {
            let at = (s.at - t0) as f64 / 1000.0 * scale;
            (at, s.in_sync, s.cap, s.mbps / scale, s.pace_mbps / scale)
        })
        .collect();
    let syncs = stats
        .replications
        .values()
        .filter_map(|t| Some((t.sync_started?, t.sync_ended?, t.bytes as f64)))
        .map(|(s, e, b)| {
            let sec = |m: Moment| (m.sim_ms - first) as f64 / 1000.0;
            (sec(s), sec(e), b)
        })
        .collect();
    Auto {
        gaps: gaps(&stats),
        syncs,
        outcome: Outcome {
            protected: stats
                .replications
                .values()
                .filter_map(|t| t.sync_ended)
                .map(|m| (m.sim_ms - first) as f64 / 1000.0)
                .collect(),
        },
        samples,
        wall,
    }
}

/// A while no initial sync copied, between the first start and the last end, by the
/// simulator's record.
#[derive(Debug, Clone, Copy)]
struct Gap {
    /// Simulated seconds.
    idle: f64,
    /// Wall ms from the end before it to the next sync's submit, configure's end and start.
    handover: (i64, i64, i64),
}

fn gaps(stats: &SimStats) -> Vec<Gap> {
    let mut lines: Vec<_> = stats
        .replications
        .values()
        .filter_map(|t| Some((t.sync_started?, t.sync_ended?, t)))
        .collect();
    lines.sort_by_key(|l| l.0.sim_ms);
    let mut gaps = Vec::new();
    let mut reach: Option<Moment> = None;
    for (start, end, t) in lines {
        if let Some(r) = reach.filter(|r| start.sim_ms > r.sim_ms) {
            gaps.push(Gap {
                idle: (start.sim_ms - r.sim_ms) as f64 / 1000.0,
                handover: (
                    t.submitted.at_ms - r.at_ms,
                    t.configured.at_ms - r.at_ms,
                    start.at_ms - r.at_ms,
                ),
            });
        }
        reach = Some(reach.map_or(end, |r| if end.sim_ms > r.sim_ms { end } else { r }));
    }
    gaps
}

fn synced(stats: &SimStats) -> usize {
    stats
        .replications
        .values()
        .filter(|t| t.sync_ended.is_some())
        .count()
}

/// For each tenth of `span`, the mean number of syncs copying and the link's total at that
/// many over its best, averaged over the tenth.
fn utilisation(syncs: &[(f64, f64, f64)], link: &LinkModel, span: f64) -> Vec<(f64, f64)> {
    let mut edges: Vec<(f64, i32)> = syncs
        .iter()
        .flat_map(|&(s, e, _)| [(s, 1), (e, -1)])
        .collect();
    edges.sort_by(|a, b| a.0.total_cmp(&b.0));
    let tenth = span / 10.0;
    let mut bins = vec![(0.0, 0.0); 10];
    let (mut n, mut t) = (0i32, 0.0);
    for (at, d) in edges {
        let mut from = t;
        while from < at {
            let k = ((from / tenth) as usize).min(9);
            let to = at.min((k + 1) as f64 * tenth).max(from + 1e-9);
            let w = (to - from) / tenth;
            bins[k].0 += n as f64 * w;
            bins[k].1 += link.per_sync_mbps(n as usize) * f64::from(n) / link.best_mbps() * w;
            from = to;
        }
        t = at;
        n += d;
    }
    bins
}

/// The best cap of 1..=40 by `metric`, and its outcome.
fn best_fixed(sizes: &[f64], link: &LinkModel, metric: fn(&Outcome) -> f64) -> (usize, Outcome) {
    (1..=40)
        .map(|cap| (cap, ideal(sizes, link, cap)))
        .min_by(|a, b| metric(&a.1).total_cmp(&metric(&b.1)))
        .expect("caps")
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let links = std::env::var("VRBULK_BENCH_LINKS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(LINKS);
    if let Ok(filter) = std::env::var("VRBULK_BENCH_LOG") {
        tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .init();
    }
    let only: Option<Vec<usize>> = std::env::var("VRBULK_BENCH_ONLY")
        .ok()
        .map(|v| v.split(',').filter_map(|n| n.trim().parse().ok()).collect());
    let trace = std::env::var_os("VRBULK_BENCH_TRACE").is_some();
    let mut rng = fastrand::Rng::with_seed(SEED);
    let count = only
        .as_ref()
        .and_then(|o| o.iter().max().copied())
        .unwrap_or(links);
    let drawn: Vec<(usize, LinkModel)> = (1..=count)
        .map(|i| (i, draw(&mut rng)))
        .filter(|(i, _)| only.as_ref().is_none_or(|o| o.contains(i)))
        .collect();
    // The wave's sizes do not depend on the link: one simulator tells them.
    let sizes = {
        let sim = Simulator::start(sim_config(LinkModel::default(), 1.0))
            .await
            .expect("simulator");
        let (_, mut sizes) = wave(&sim);
        sizes.sort_by(f64::total_cmp);
        sizes
    };
    println!(
        "admission benchmark: {} VMs, {:.1} TiB, {} links drawn from seed {SEED}",
        sizes.len(),
        sizes.iter().sum::<f64>() / (1u64 << 40) as f64,
        drawn.len()
    );
    println!(
        "times are simulated; x = times the lower bound; fixed caps and all-at-once computed from the link model with no time lost between syncs\n"
    );
    println!("| # | link Mbit/s | a sync | contention past | falloff | best total | makespan bound | all at once | best fixed cap (makespan) | auto makespan | auto vs best fixed | mean bound | all at once | best fixed cap (mean) | auto mean | auto vs best fixed | auto caps | wall |");
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|");
    let h = |s: f64| s / 3600.0;
    let mut missed = Vec::new();
    let permits = std::sync::Arc::new(tokio::sync::Semaphore::new(AT_ONCE));
    let runs: Vec<_> = drawn
        .iter()
        .map(|(_, link)| {
            let (link, permits) = (*link, permits.clone());
            let scale = bounds(&sizes, &link).0 / WALL_TARGET;
            tokio::spawn(async move {
                let _permit = permits.acquire_owned().await.expect("semaphore");
                auto(link, scale).await
            })
        })
        .collect();
    for ((i, link), run) in drawn.iter().zip(runs) {
        let (make_bound, mean_bound) = bounds(&sizes, link);
        let all = ideal(&sizes, link, usize::MAX);
        let (make_cap, make_best) = best_fixed(&sizes, link, Outcome::makespan);
        let (mean_cap, mean_best) = best_fixed(&sizes, link, Outcome::mean);
        let a = run.await.expect("the run");
        let (make, mean) = (a.outcome.makespan(), a.outcome.mean());
        let caps: Vec<u32> = a.samples.iter().filter_map(|s| s.2).collect();
        let caps = match (caps.iter().min(), caps.iter().max(), caps.last()) {
            (Some(lo), Some(hi), Some(last)) => format!("{lo}..{hi}, last {last}"),
            _ => "none recorded".into(),
        };
        println!(
            "| {} | {:.0} | {:.0} | {} | {:.2} | {:.0} | {:.1} h | {:.2}x | {} ({:.2}x) | {:.2}x | {:+.1} % | {:.1} h | {:.2}x | {} ({:.2}x) | {:.2}x | {:+.1} % | {} | {:.0} s |",
            i,
            link.bandwidth_mbps,
            link.per_sync_ceiling_mbps,
            link.contention_threshold,
            link.contention_falloff,
            link.best_mbps(),
            h(make_bound),
            all.makespan() / make_bound,
            make_cap,
            make_best.makespan() / make_bound,
            make / make_bound,
            100.0 * (make / make_best.makespan() - 1.0),
            h(mean_bound),
            all.mean() / mean_bound,
            mean_cap,
            mean_best.mean() / mean_bound,
            mean / mean_bound,
            100.0 * (mean / mean_best.mean() - 1.0),
            caps,
            a.wall.as_secs_f64()
        );
        if make > 1.15 * make_bound
            || mean > 1.25 * mean_bound
            || make > 1.10 * make_best.makespan()
            || mean > 1.10 * mean_best.mean()
        {
            missed.push(*i);
        }
        if trace {
            let mut handovers: Vec<_> = a.gaps.iter().map(|g| g.handover).collect();
            handovers.sort_by_key(|g| g.2);
            let at = |q: f64| handovers[((handovers.len() as f64 - 1.0) * q) as usize];
            eprintln!(
                "link {i}: the link idle {:.2} h in {} gaps (simulator's record)",
                h(a.gaps.iter().fold(0.0, |idle, g| idle + g.idle)),
                a.gaps.len()
            );
            if !handovers.is_empty() {
                eprintln!(
                    "link {i}: wall ms from the end before a gap to the next submit, configure's end, start: p10 {:?} p50 {:?} p90 {:?} max {:?}",
                    at(0.1),
                    at(0.5),
                    at(0.9),
                    at(1.0)
                );
            }
            eprintln!("link {i}: by tenths of the makespan, syncs copying on average and the link's share of its best then (simulator's record):");
            for (k, share) in utilisation(&a.syncs, link, make).iter().enumerate() {
                eprintln!(
                    "link {i}  from {:>2} %: {:.1} syncs, {:.0} % of the best",
                    k * 10,
                    share.0,
                    share.1 * 100.0
                );
            }
            let mut last = a.syncs.clone();
            last.sort_by(|x, y| y.1.total_cmp(&x.1));
            for (s, e, b) in last.iter().take(5) {
                let alone = b / link.per_sync_bytes_per_second(1);
                eprintln!(
                    "link {i}  a late end: {:.2} h to {:.2} h, {:.2} h at one sync's pace",
                    h(*s),
                    h(*e),
                    h(alone)
                );
            }
            for (at, in_sync, cap, mbps, pace) in &a.samples {
                eprintln!(
                    "link {i} at {:.2} h: {in_sync} syncing, cap {cap:?}, {mbps:.0} Mbit/s, pace {pace:.0}",
                    at / 3600.0
                );
            }
        }
    }
    println!(
        "\ntargets for auto on every link: makespan within 1.15x its bound, mean within 1.25x, never more than 10 % behind the best fixed cap: {}",
        if missed.is_empty() {
            "met".to_string()
        } else {
            format!("MISSED on links {missed:?}")
        }
    );
}
