//! Starting the in-process simulator, a client pinned to its certificate, and a configured
//! wave on it.

use std::path::Path;
use std::time::Duration;

use tokio::sync::watch;
use vrbulk::domain::JobSpec;
use vrbulk::queue::{JobState, Queue};
use vrbulk::runner::{self, InitialSyncs, RunOptions};
use vrbulk::secret::Secret;
use vrbulk::sim::{RateLimits, SimConfig, Simulator, VmKind, FAST_WINDOW};
use vrbulk::vr::{ApiVersion, Client, ClientSettings, Credentials, Thumbprint, TlsTrust};

use super::fixtures::{self, new_batch, spec};
use super::wait::{eventually, none_left};

/// A small, fast simulator: HTTPS, 40 VMs, tasks that finish in 0.3 s, the appliance's rate
/// limits over 2 s windows.
pub fn sim_config() -> SimConfig {
    SimConfig::fast()
}

/// [`sim_config`] with `vms` VMs whose appliance takes only `per_session` requests a session per
/// (fast) window: requests wait for slots, as on a busy appliance.
pub fn sim_limited(vms: usize, per_session: u32) -> SimConfig {
    SimConfig {
        vms,
        limits: Some(RateLimits {
            per_session,
            ..RateLimits::scaled(FAST_WINDOW)
        }),
        ..SimConfig::fast()
    }
}

pub async fn start(cfg: SimConfig) -> Simulator {
    Simulator::start(cfg).await.expect("simulator starts")
}

/// Settings that trust the simulator by its thumbprint.
pub fn settings_for(sim: &Simulator) -> ClientSettings {
    let cfg = SimConfig::default();
    let credentials = Credentials {
        user: cfg.user,
        password: Secret::new(cfg.password),
    };
    let trust = match sim.thumbprint() {
        Some(t) => TlsTrust::Pinned(Thumbprint::parse(t).expect("simulator thumbprint parses")),
        None => TlsTrust::Verify,
    };
    ClientSettings {
        url: sim.url().parse().expect("simulator URL"),
        api_version: ApiVersion::V2,
        trust,
        timeout: Duration::from_secs(10),
        page_size: 100,
        source: credentials.clone(),
        target: credentials,
        limits: sim.limits(),
    }
}

pub async fn client_for(sim: &Simulator) -> Client {
    Client::connect(settings_for(sim)).await.expect("login")
}

/// Jobs for the first `n` normal VMs of `sim` (onto `ds-gold-01`, as [`spec`] makes them).
pub fn normal_specs(sim: &Simulator, n: usize) -> Vec<JobSpec> {
    let specs: Vec<_> = sim
        .inventory()
        .vms
        .iter()
        .filter(|v| v.kind == VmKind::Normal)
        .take(n)
        .map(|v| spec(&v.vm.name))
        .collect();
    assert_eq!(specs.len(), n, "the simulator has {n} normal VMs");
    specs
}

/// Configures `n` normal VMs of `sim` as a new batch of the queue at `db`, with the library's
/// runner: the wave a day-2 command acts on.
pub async fn configured_wave(sim: &Simulator, db: &Path, n: usize) -> i64 {
    let batch = fixtures::import(db, &new_batch("wave"), &normal_specs(sim, n));
    // Every VM at once: the wave is the setting of a day-2 test, not its subject.
    let opts = RunOptions {
        batch: Some(batch),
        poll_interval: Duration::from_millis(200),
        max_initial_syncs: InitialSyncs::All,
        ..RunOptions::default()
    };
    let (_stop, stop_rx) = watch::channel(false);
    let outcome = runner::run(Queue::open(db).unwrap(), settings_for(sim), opts, stop_rx)
        .await
        .unwrap();
    assert_eq!(outcome.counts[&JobState::Succeeded], n as u64);
    batch
}

/// Waits until every replication `sim` has created has ended its initial sync, by its own
/// record: a sync of a replication still in its initial sync is refused.
pub async fn until_synced(sim: &Simulator) {
    eventually(
        Duration::from_secs(30),
        "every replication's initial sync to end",
        async || {
            let syncing: Vec<String> = sim
                .stats()
                .replications
                .into_iter()
                .filter_map(|(id, t)| t.sync_ended.is_none().then_some(id))
                .collect();
            none_left(&syncing)
        },
    )
    .await;
}

/// Waits until `sim` no longer has any of `replications`: their unconfigure (or destroy) tasks,
/// sent by the test, have ended.
pub async fn until_removed(sim: &Simulator, replications: &[&str]) {
    eventually(
        Duration::from_secs(30),
        format!("{replications:?} to be removed"),
        async || {
            let there: Vec<String> = sim
                .inventory()
                .replications
                .into_iter()
                .filter_map(|r| replications.contains(&r.id.as_str()).then_some(r.id))
                .collect();
            none_left(&there)
        },
    )
    .await;
}
