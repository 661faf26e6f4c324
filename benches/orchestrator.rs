//! Measured run of the orchestrator (issue 4): N VMs against the simulator with 20 ms latency,
//! a 50 requests/s server limit and 1 s tasks. Prints, side by side from one run, the API calls
//! per VM and the wall time of `vrbulk run`, of a naive per-VM script (lookup, disks, one POST
//! per VM, per-task polling), and the lower bound of DESIGN.md. `cargo bench --bench orchestrator`
//! (`-- 200` for another N).

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use tokio::sync::watch;
use vrbulk::input::{JobSpec, VmRef};
use vrbulk::queue::{InputKind, NewBatch, Queue};
use vrbulk::runner::{self, RunOptions};
use vrbulk::secret::Secret;
use vrbulk::sim::{SimConfig, Simulator, VmKind};
use vrbulk::vr::model::TaskStatus;
use vrbulk::vr::{
    ApiVersion, Client, ClientSettings, Credentials, Filter, Politeness, RetryPolicy, TlsTrust,
};
use vrbulk::workflow::{build_spec, Placement, ReplicationSettings};

const LATENCY_MS: u64 = 20;
const RATE: f64 = 50.0;
const TASK_SECONDS: f64 = 1.0;
const LOOKUP_GROUP: usize = 50;
const SUBMIT_GROUP: usize = 20;
const IDS_PER_POLL: usize = 100;

fn sim_config(n: usize) -> SimConfig {
    SimConfig {
        vms: n,
        latency_ms: LATENCY_MS,
        rate: Some(RATE),
        task_seconds: TASK_SECONDS,
        tls: false,
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
        page_size: 100,
        source: who.clone(),
        target: who,
    }
}

struct Measured {
    calls: u64,
    throttled: u64,
    wall: Duration,
    configured: usize,
}

#[tokio::main]
async fn main() {
    let n: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(500);
    println!(
        "orchestrator benchmark: {n} VMs, {LATENCY_MS} ms latency, {RATE} requests/s, {TASK_SECONDS} s tasks"
    );

    let vrbulk = measure_vrbulk(n).await;
    let naive = measure_naive(n).await;

    // DESIGN.md: 7 + N/g_lookup + N/g_submit + polls; one poll round over all tasks.
    let nf = n as f64;
    let lower_calls = 7.0
        + (nf / LOOKUP_GROUP as f64).ceil()
        + (nf / SUBMIT_GROUP as f64).ceil()
        + (nf / IDS_PER_POLL as f64).ceil();
    // The calls at the server's rate, then the last task's own time.
    let lower_wall = Duration::from_secs_f64(lower_calls / RATE + TASK_SECONDS);

    println!();
    println!(
        "| strategy | API calls | calls per VM | 429s | wall time | × lower bound | configured |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for (name, m) in [("vrbulk run", &vrbulk), ("naive per-VM script", &naive)] {
        println!(
            "| {name} | {} | {:.3} | {} | {:.2} s | {:.2} | {} |",
            m.calls,
            m.calls as f64 / nf,
            m.throttled,
            m.wall.as_secs_f64(),
            m.wall.as_secs_f64() / lower_wall.as_secs_f64(),
            m.configured
        );
    }
    println!(
        "| lower bound (DESIGN.md) | {lower_calls:.0} | {:.3} | 0 | {:.2} s | 1.00 | |",
        lower_calls / nf,
        lower_wall.as_secs_f64()
    );
    println!(
        "\ntargets: at most 0.2 calls per VM ({}), wall time within 1.25x the lower bound ({})",
        if vrbulk.calls as f64 / nf <= 0.2 {
            "met"
        } else {
            "MISSED"
        },
        if vrbulk.wall.as_secs_f64() <= 1.25 * lower_wall.as_secs_f64() {
            "met"
        } else {
            "MISSED"
        }
    );
}

/// Every source VM of the inventory that VR can replicate, onto a healthy datastore.
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
    let sim = Simulator::start(sim_config(n)).await.expect("simulator");
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
        rate: RATE,
        burst: 10,
        workers: 8,
        lookup_group: LOOKUP_GROUP,
        submit_group: SUBMIT_GROUP,
        poll_interval: Duration::from_millis(500),
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
        configured: outcome.counts[&vrbulk::queue::JobState::Succeeded] as usize,
    }
}

/// What a one-shot script does: per VM a lookup, a disks call, one POST, then polling its task.
async fn measure_naive(n: usize) -> Measured {
    let sim = Simulator::start(sim_config(n)).await.expect("simulator");
    let inv = sim.inventory();
    let politeness = Politeness::new(RATE, 10, 8, RetryPolicy::patient(8));
    let client = Client::with_politeness(settings(&sim), politeness).expect("client");
    let started = Instant::now();
    client.login().await.expect("login");
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
                tokio::time::sleep(Duration::from_millis(500)).await;
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
    }
}
