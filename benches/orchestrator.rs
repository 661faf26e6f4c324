//! Measured run of the orchestrator at the appliance's real limits (issue "Appliance-true
//! traffic"): N VMs against a simulator that enforces the DR REST API rate limiter at its
//! defaults (50 requests a session, 100 an address, per fixed 60 s window, no `Retry-After`) and
//! takes 20 s per configure task. For N = 300, 1000 and 2000 it prints, side by side from one
//! run, the API calls, 429s and wall time of `vrbulk run` against the lower bound of DESIGN.md,
//! and what a naive per-VM script would cost: its calls per VM are counted once, for 300 VMs
//! against the simulator without the limiter, and the time those calls need at 50 a minute is
//! printed for each N (not waited out).
//!
//! `cargo bench --bench orchestrator` (`-- 300 1000` for other sizes). It takes about six
//! minutes, almost all of it the appliance's windows.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use tokio::sync::watch;
use vrbulk::domain::{JobSpec, VmRef};
use vrbulk::domain::{Placement, ReplicationSettings};
use vrbulk::queue::{InputKind, JobState, NewBatch, Queue};
use vrbulk::runner::{self, RunOptions};
use vrbulk::secret::Secret;
use vrbulk::sim::{RateLimits, SimConfig, Simulator, VmKind};
use vrbulk::vr::model::TaskStatus;
use vrbulk::vr::{ApiVersion, Client, ClientSettings, Credentials, Filter, Limits, TlsTrust};
use vrbulk::workflow::build_spec;

const TASK_SECONDS: f64 = 20.0;
const LOOKUP_GROUP: usize = 50;
const SUBMIT_GROUP: usize = 20;
/// How often the naive script asks about its task.
const NAIVE_POLL: Duration = Duration::from_secs(5);

fn sim_config(n: usize, limits: Option<RateLimits>) -> SimConfig {
    SimConfig {
        vms: n,
        task_seconds: TASK_SECONDS,
        tls: false,
        limits,
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
        timeout: Duration::from_secs(60),
        page_size: 1000,
        source: who.clone(),
        target: who,
        limits: sim.limits(),
    }
}

struct Measured {
    calls: u64,
    throttled: u64,
    wall: Duration,
    configured: usize,
    peak_session: u32,
}

/// DESIGN.md: `C_min = 7 + ⌈N/50⌉ + ⌈N/20⌉ + polls`, here one poll round of the whole wave
/// (a page of 1000 tasks a call); then `60 s × ⌊(C_min − 1)/50⌋ + T_task`.
fn lower_bound(n: usize) -> (u64, Duration) {
    let calls = 7 + n.div_ceil(LOOKUP_GROUP) + n.div_ceil(SUBMIT_GROUP) + n.div_ceil(1000);
    let limits = Limits::APPLIANCE;
    let windows = (calls as u64 - 1) / u64::from(limits.per_session);
    let wall = limits.window * windows as u32 + Duration::from_secs_f64(TASK_SECONDS);
    (calls as u64, wall)
}

#[tokio::main]
async fn main() {
    let sizes: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let sizes = if sizes.is_empty() {
        vec![300, 1000, 2000]
    } else {
        sizes
    };
    println!(
        "orchestrator benchmark: the appliance's rate limiter at its defaults (50 per session, \
         100 per address, 60 s windows, no Retry-After), {TASK_SECONDS} s configure tasks"
    );

    let naive = measure_naive(300).await;
    let naive_per_vm = naive.calls as f64 / 300.0;
    println!(
        "naive per-VM script, counted for 300 VMs without the limiter: {} calls ({naive_per_vm:.2} \
         per VM), {} configured, {:.1} s",
        naive.calls,
        naive.configured,
        naive.wall.as_secs_f64()
    );

    println!();
    println!(
        "| N | strategy | API calls | calls per VM | 429s | peak per session and 60 s | wall time | × lower bound | configured |"
    );
    println!("|---:|---|---:|---:|---:|---:|---:|---:|---:|");
    let mut met = true;
    for &n in &sizes {
        let m = measure_vrbulk(n).await;
        let (lower_calls, lower_wall) = lower_bound(n);
        let ratio = m.wall.as_secs_f64() / lower_wall.as_secs_f64();
        met &= m.throttled == 0 && ratio <= 1.25;
        println!(
            "| {n} | vrbulk run | {} | {:.3} | {} | {} | {:.1} s | {ratio:.2} | {} |",
            m.calls,
            m.calls as f64 / n as f64,
            m.throttled,
            m.peak_session,
            m.wall.as_secs_f64(),
            m.configured
        );
        println!(
            "| {n} | lower bound (DESIGN.md) | {lower_calls} | {:.3} | 0 | | {:.1} s | 1.00 | |",
            lower_calls as f64 / n as f64,
            lower_wall.as_secs_f64()
        );
        let naive_calls = (naive_per_vm * n as f64).ceil();
        let naive_wall = naive_calls / Limits::APPLIANCE.per_second();
        println!(
            "| {n} | naive per-VM script (at 50 a minute, not waited out) | {naive_calls:.0} | {naive_per_vm:.3} | | | {:.0} s ({:.1} h) | {:.1} | |",
            naive_wall,
            naive_wall / 3600.0,
            naive_wall / lower_wall.as_secs_f64()
        );
    }
    println!(
        "\ntargets: zero 429s at every N, wall time within 1.25x the lower bound: {}",
        if met { "met" } else { "MISSED" }
    );
}

/// Every source VM of the inventory, onto a healthy datastore.
fn jobs(sim: &Simulator) -> Vec<JobSpec> {
    sim.inventory()
        .vms
        .iter()
        .map(|v| JobSpec {
            line: None,
            vm: VmRef {
                name: Some(v.vm.name.clone()),
                id: None,
            },
            pairing: None,
            target_datastore: "ds-gold-01".into(),
            storage_policy: Some("VR Gold".into()),
            replication_server: None,
            settings: ReplicationSettings::default(),
            change_ticket: None,
            notes: None,
        })
        .collect()
}

async fn measure_vrbulk(n: usize) -> Measured {
    let sim = Simulator::start(sim_config(n, Some(RateLimits::APPLIANCE)))
        .await
        .expect("simulator");
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("bench.db");
    let mut q = Queue::open(&db).expect("queue");
    q.create_batch(
        &NewBatch {
            name: "bench".into(),
            operator: "bench".into(),
            host: "bench".into(),
            input_kind: InputKind::Csv,
            input_path: None,
            input_sha256: None,
            settings: serde_json::json!({}),
            max_attempts: 5,
        },
        &jobs(&sim),
    )
    .expect("batch");
    let (_stop, stop_rx) = watch::channel(false);
    let opts = RunOptions {
        lookup_group: LOOKUP_GROUP,
        submit_group: SUBMIT_GROUP,
        ..RunOptions::default()
    };
    let started = Instant::now();
    let outcome = runner::run(q, settings(&sim), opts, stop_rx)
        .await
        .expect("the run completes");
    let wall = started.elapsed();
    let stats = sim.stats();
    Measured {
        calls: stats.calls.values().sum(),
        throttled: stats.status_429,
        wall,
        configured: outcome.counts[&JobState::Succeeded] as usize,
        peak_session: stats
            .limiter
            .peak_in_any_window
            .get("session")
            .copied()
            .unwrap_or(0),
    }
}

/// What a one-shot script does: per VM a lookup, a disks call, one POST, then polling its task.
async fn measure_naive(n: usize) -> Measured {
    let sim = Simulator::start(sim_config(n, None))
        .await
        .expect("simulator");
    let inv = sim.inventory();
    let client = Client::connect(settings(&sim)).await.expect("login");
    let started = Instant::now();
    client
        .remote_login(&inv.pairing_id)
        .await
        .expect("remote login");
    let ds = client
        .datastores(&inv.pairing_id, &inv.remote_vc.id)
        .await
        .expect("datastores")
        .into_iter()
        .find(|d| d.name == "ds-gold-01")
        .expect("ds-gold-01");
    let placement = Placement {
        target_vc_id: inv.remote_vc.id.clone(),
        datastore_id: ds.id,
        storage_policy_id: None,
        replication_server_id: None,
    };
    let client = Arc::new(client);
    let names: Vec<String> = inv
        .vms
        .iter()
        .filter(|v| !matches!(v.kind, VmKind::Template | VmKind::AlreadyReplicated))
        .map(|v| v.vm.name.clone())
        .collect();
    let configured = join_all(names.into_iter().map(|name| {
        let (client, placement, inv) = (client.clone(), placement.clone(), inv.clone());
        async move {
            let filter = Filter::new("name", [name]);
            let vm = client
                .vms(&inv.pairing_id, &inv.local_vc.id, false, Some(&filter))
                .await
                .ok()?
                .pop()?;
            let disks = client
                .vm_disks(&inv.pairing_id, &inv.local_vc.id, &vm.id)
                .await
                .ok()?;
            let vm = vrbulk::vr::model::VirtualMachine {
                disks: Some(disks),
                ..vm
            };
            let (spec, _) = build_spec(&vm, &placement, &ReplicationSettings::default());
            let task = client
                .configure_replications(&inv.pairing_id, &[spec])
                .await
                .ok()?
                .pop()?;
            loop {
                tokio::time::sleep(NAIVE_POLL).await;
                if let Ok(t) = client.task(&task.id).await {
                    if t.status.is_finished() {
                        return (t.status == TaskStatus::Success).then_some(());
                    }
                }
            }
        }
    }))
    .await
    .into_iter()
    .flatten()
    .count();
    let wall = started.elapsed();
    let stats = sim.stats();
    Measured {
        calls: stats.calls.values().sum(),
        throttled: stats.status_429,
        wall,
        configured,
        peak_session: 0,
    }
}
