//! Measured admission of a wave (issue "From configured to protected"): 300 VMs with the
//! simulator's mix of disk sizes over one replication link (1 Gbit/s, 200 Mbit/s a sync, total
//! throughput falling past 10 concurrent initial syncs), side by side from one run:
//!
//! - (a) every VM configured at once (`vrbulk run`),
//! - (b) `--max-initial-syncs 10 --order smallest-first`,
//! - (c) the same cap in input order,
//!
//! each against two lower bounds the benchmark computes from the VMs' sizes: the makespan is at
//! least total bytes / bandwidth; with sizes sorted ascending s1 ≤ … ≤ sn, the k-th VM cannot be
//! protected before max(sk / ceiling, (s1 + … + sk) / bandwidth), whose mean bounds the mean time
//! to protected.
//!
//! Hours of sync pass in seconds: the simulator's clock runs `SCALE` times as fast as the wall
//! clock, for the tool as much as for the link (every time below is simulated). (a) needs no
//! reaction from the tool and runs at a faster clock so that its week of syncing ends in a
//! couple of minutes. The rate limiter is off: at these clocks a 60 s window would last
//! milliseconds. `cargo bench --bench admission` (about ten minutes).

use std::time::Duration;

use tokio::sync::watch;
use vrbulk::domain::{JobSpec, VmRef};
use vrbulk::queue::{InputKind, NewBatch, Queue};
use vrbulk::runner::{self, RunOptions, SubmitOrder};
use vrbulk::secret::Secret;
use vrbulk::sim::{LinkModel, SimConfig, SimStats, Simulator, VmKind};
use vrbulk::vr::{ApiVersion, ClientSettings, Credentials, TlsTrust};

const VMS: usize = 300;
/// Simulated seconds per wall second for the capped runs, and for (a).
const SCALE: f64 = 3000.0;
const SCALE_ALL_AT_ONCE: f64 = 60_000.0;
const CAP: usize = 10;

struct Scenario {
    name: &'static str,
    scale: f64,
    cap: Option<usize>,
    order: SubmitOrder,
}

/// Times to protected in simulated seconds, from the first configure call, and what each VM's
/// initial sync copied.
struct Measured {
    protected: Vec<f64>,
    bytes: Vec<u64>,
    wall: Duration,
}

impl Measured {
    fn quantile(&self, q: f64) -> f64 {
        let mut t = self.protected.clone();
        t.sort_by(f64::total_cmp);
        let k = ((q * t.len() as f64).ceil() as usize).clamp(1, t.len());
        t[k - 1]
    }

    fn mean(&self) -> f64 {
        self.protected.iter().sum::<f64>() / self.protected.len() as f64
    }
}

fn sim_config(scale: f64) -> SimConfig {
    SimConfig {
        vms: VMS,
        task_seconds: 0.1,
        sync_time_scale: scale,
        limits: None,
        tls: false,
        link: LinkModel::default(),
        ..SimConfig::default()
    }
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

/// The VMs that sync: not templates, not already replicated, not powered off.
fn wave(sim: &Simulator) -> Vec<JobSpec> {
    sim.inventory()
        .vms
        .iter()
        .filter(|v| v.kind == VmKind::Normal || v.kind == VmKind::UnsupportedDisk)
        .map(|v| JobSpec {
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
        })
        .collect()
}

async fn measure(s: &Scenario) -> Measured {
    let sim = Simulator::start(sim_config(s.scale))
        .await
        .expect("simulator");
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("bench.db");
    let jobs = wave(&sim);
    let n = jobs.len();
    Queue::open(&db)
        .expect("queue")
        .create_batch(
            &NewBatch {
                name: s.name.into(),
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
        max_initial_syncs: s.cap,
        order: s.order,
        poll_interval: Duration::from_millis(100),
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
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let wall = started.elapsed();
    let first = stats
        .replications
        .values()
        .map(|t| t.submitted.sim_ms)
        .min()
        .unwrap_or(0);
    Measured {
        protected: stats
            .replications
            .values()
            .filter_map(|t| t.sync_ended)
            .map(|m| (m.sim_ms - first) as f64 / 1000.0)
            .collect(),
        bytes: stats.replications.values().map(|t| t.bytes).collect(),
        wall,
    }
}

fn synced(stats: &SimStats) -> usize {
    stats
        .replications
        .values()
        .filter(|t| t.sync_ended.is_some())
        .count()
}

/// The two lower bounds, in seconds: makespan, and mean time to protected.
fn bounds(bytes: &[u64], link: &LinkModel) -> (f64, f64) {
    let bandwidth = link.total_mbps(1) * 125_000.0;
    let ceiling = link.per_sync_mbps(1) * 125_000.0;
    let mut sizes: Vec<f64> = bytes.iter().map(|b| *b as f64).collect();
    sizes.sort_by(f64::total_cmp);
    let makespan = sizes.iter().sum::<f64>() / bandwidth;
    let mut sum = 0.0;
    let mean = sizes
        .iter()
        .map(|s| {
            sum += s;
            (s / ceiling).max(sum / bandwidth)
        })
        .sum::<f64>()
        / sizes.len() as f64;
    (makespan, mean)
}

#[tokio::main]
async fn main() {
    let scenarios = [
        Scenario {
            name: "(a) all at once",
            scale: SCALE_ALL_AT_ONCE,
            cap: None,
            order: SubmitOrder::Input,
        },
        Scenario {
            name: "(b) --max-initial-syncs 10, smallest-first",
            scale: SCALE,
            cap: Some(CAP),
            order: SubmitOrder::SmallestFirst,
        },
        Scenario {
            name: "(c) --max-initial-syncs 10, input order",
            scale: SCALE,
            cap: Some(CAP),
            order: SubmitOrder::Input,
        },
    ];
    let link = LinkModel::default();
    let mut measured = Vec::new();
    for s in &scenarios {
        measured.push(measure(s).await);
    }
    let bytes = &measured[1].bytes;
    let (makespan_bound, mean_bound) = bounds(bytes, &link);
    println!(
        "admission benchmark: {} VMs, {:.1} TiB, link {} Mbit/s, {} Mbit/s a sync, contention past {} syncs",
        bytes.len(),
        bytes.iter().sum::<u64>() as f64 / (1u64 << 40) as f64,
        link.bandwidth_mbps,
        link.per_sync_ceiling_mbps,
        link.contention_threshold
    );
    println!("times are simulated hours from the first configure call\n");
    println!("| strategy | first protected | 50 % | 100 % (makespan) | × bound | mean to protected | × bound | wall |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    let h = |s: f64| s / 3600.0;
    let mut results = Vec::new();
    for (s, m) in scenarios.iter().zip(&measured) {
        let (make, mean) = (m.quantile(1.0), m.mean());
        println!(
            "| {} | {:.1} h | {:.1} h | {:.1} h | {:.2} | {:.1} h | {:.2} | {:.0} s |",
            s.name,
            h(m.quantile(0.0)),
            h(m.quantile(0.5)),
            h(make),
            make / makespan_bound,
            h(mean),
            mean / mean_bound,
            m.wall.as_secs_f64()
        );
        results.push((make, mean));
    }
    println!(
        "| lower bounds | | | {:.1} h | 1.00 | {:.1} h | 1.00 | |",
        h(makespan_bound),
        h(mean_bound)
    );
    let (a, b) = (results[0], results[1]);
    let met = b.0 <= 1.10 * makespan_bound && b.1 <= 1.25 * mean_bound && b.0 < a.0 && b.1 < a.1;
    println!(
        "\ntargets for (b): makespan within 1.10x its bound, mean within 1.25x, better than (a) on both: {}",
        if met { "met" } else { "MISSED" }
    );
}
