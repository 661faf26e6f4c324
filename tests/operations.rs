//! Day-2 operations on a batch: each is an operation batch run by the same runner, acting on the
//! replications its configure batch recorded and on nothing else, with the appliance's faults,
//! its rate limits, and a replication someone else re-created in between.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use tokio::sync::watch;
use vrbulk::domain::{Operation, OperationSpec, SettingsChange};
use vrbulk::queue::{BatchId, JobState, OperationJob, Queue};
use vrbulk::runner::{self, InitialSyncs, RunOptions, RunOutcome};
use vrbulk::sim::{SimConfig, Simulator};

use crate::support::fixtures::{self, new_batch, spec};
use crate::support::harness::{normal_specs, settings_for, start, until_removed, until_synced};

fn quick() -> RunOptions {
    RunOptions {
        poll_interval: Duration::from_millis(200),
        retry_base: Duration::from_millis(100),
        retry_cap: Duration::from_secs(1),
        request_retries: 6,
        // The simulator's syncs last real hours here, and admission is not these tests'
        // subject: `auto` would wait on them between looks.
        max_initial_syncs: InitialSyncs::All,
        ..RunOptions::default()
    }
}

async fn run(db: &Path, sim: &Simulator, batch: BatchId) -> RunOutcome {
    let (_stop, stop_rx) = watch::channel(false);
    let opts = RunOptions {
        batch: Some(batch),
        ..quick()
    };
    runner::run(Queue::open(db).unwrap(), settings_for(sim), opts, stop_rx)
        .await
        .unwrap()
}

/// A configured wave of `n` normal VMs: the queue, its batch.
async fn configured_wave(sim: &Simulator, db: &Path, n: usize) -> BatchId {
    let wave = fixtures::import(db, &new_batch("wave"), &normal_specs(sim, n));
    let outcome = run(db, sim, wave).await;
    assert_eq!(outcome.counts[&JobState::Succeeded], n as u64);
    wave
}

/// An operation batch of `spec` on every configured job of `wave`.
fn operate(db: &Path, wave: BatchId, spec: &OperationSpec) -> BatchId {
    let mut q = Queue::open(db).unwrap();
    let jobs: Vec<OperationJob> = q
        .jobs(wave)
        .unwrap()
        .into_iter()
        .filter(|j| j.state == JobState::Succeeded)
        .map(|j| OperationJob {
            acts_on_job: j.id,
            spec: spec.clone(),
        })
        .collect();
    q.create_operation_batch(&new_batch("day 2"), spec.operation(), wave, &jobs)
        .unwrap()
}

/// Accepted operations per replication, as the simulator counted them.
fn operations(sim: &Simulator, op: &str) -> BTreeMap<String, u64> {
    sim.stats()
        .operations
        .into_iter()
        .filter_map(|(rep, ops)| Some((rep, *ops.get(op)?)))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_resume_sync_and_reconfigure_act_once_on_each_replication_of_the_wave() {
    let sim = start(SimConfig {
        sync_time_scale: 50_000.0,
        ..SimConfig::fast()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("q.db");
    let wave = configured_wave(&sim, &db, 6).await;
    // Their initial syncs end first: a sync of a replication in initial sync is refused.
    until_synced(&sim).await;

    for (spec, name) in [
        (OperationSpec::Pause, "pause"),
        (OperationSpec::Resume, "resume"),
        (OperationSpec::Sync, "sync"),
        (
            OperationSpec::Reconfigure(SettingsChange {
                rpo: Some(15),
                network_compression: Some(true),
                ..SettingsChange::default()
            }),
            "reconfigure",
        ),
    ] {
        let batch = operate(&db, wave, &spec);
        let outcome = run(&db, &sim, batch).await;
        let q = Queue::open(&db).unwrap();
        assert_eq!(
            outcome.counts[&JobState::Succeeded],
            6,
            "{name}: {:?}",
            q.jobs(batch)
                .unwrap()
                .iter()
                .map(|j| (&j.state, &j.reason))
                .collect::<Vec<_>>()
        );
        let counted = operations(&sim, name);
        assert_eq!(counted.len(), 6, "{name}: {counted:?}");
        assert!(
            counted.values().all(|n| *n == 1),
            "{name} twice: {counted:?}"
        );
    }
    let inv = sim.inventory();
    let q = Queue::open(&db).unwrap();
    for job in q.jobs(wave).unwrap() {
        let rep = inv
            .replications
            .iter()
            .find(|r| Some(&r.id) == job.checkpoint.replication_id.as_ref())
            .unwrap();
        assert_eq!(rep.rpo, Some(15));
        assert_eq!(rep.network_compression_enabled, Some(true));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pause_of_a_paused_replication_is_skipped_with_the_appliances_words() {
    let sim = start(SimConfig::fast()).await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("q.db");
    let wave = configured_wave(&sim, &db, 3).await;
    run(&db, &sim, operate(&db, wave, &OperationSpec::Pause)).await;
    let again = operate(&db, wave, &OperationSpec::Pause);
    let outcome = run(&db, &sim, again).await;
    assert_eq!(outcome.counts[&JobState::Skipped], 3);
    assert_eq!(outcome.exit_code().code(), 0, "a skip is no failure");
    let q = Queue::open(&db).unwrap();
    for job in q.jobs(again).unwrap() {
        let reason = job.reason.unwrap();
        assert!(reason.contains("refused the pause now"), "{reason}");
        assert!(reason.contains("paused"), "{reason}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undo_removes_only_what_the_batch_configured_and_leaves_a_newer_replication_alone() {
    let sim = start(SimConfig {
        fail_rate: 0.05,
        ..SimConfig::fast()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("q.db");
    let wave = configured_wave(&sim, &db, 8).await;
    let q = Queue::open(&db).unwrap();
    let jobs = q.jobs(wave).unwrap();
    // Someone removes one replication by hand and configures the VM again: its new replication
    // is not the wave's.
    let (replaced, replaced_rep) = {
        let j = &jobs[0];
        (
            j.vm_label().to_string(),
            j.checkpoint.replication_id.clone().unwrap(),
        )
    };
    {
        let client = vrbulk::vr::Client::connect(settings_for(&sim))
            .await
            .unwrap();
        let inv = sim.inventory();
        client.remote_login(&inv.pairing_id).await.unwrap();
        client
            .unconfigure_replication(&inv.pairing_id, &replaced_rep, false)
            .await
            .unwrap();
        until_removed(&sim, &[&replaced_rep]).await;
        let again = fixtures::import(&db, &new_batch("by hand"), &[spec(&replaced)]);
        assert_eq!(run(&db, &sim, again).await.counts[&JobState::Succeeded], 1);
    }
    let outsider = sim
        .inventory()
        .replications
        .iter()
        .find(|r| {
            r.name.as_deref() == Some(replaced.as_str()) || r.vm_id == jobs[0].checkpoint.vm_id
        })
        .unwrap()
        .id
        .clone();

    let undo = operate(
        &db,
        wave,
        &OperationSpec::Unconfigure {
            retain_replica_disks: true,
            local_only: false,
        },
    );
    let outcome = run(&db, &sim, undo).await;
    assert_eq!(outcome.counts[&JobState::Succeeded], 7);
    assert_eq!(outcome.counts[&JobState::Skipped], 1);
    let q = Queue::open(&db).unwrap();
    let skipped = q
        .jobs(undo)
        .unwrap()
        .into_iter()
        .find(|j| j.state == JobState::Skipped)
        .unwrap();
    assert_eq!(skipped.vm_label(), replaced);
    let reason = skipped.reason.unwrap();
    assert!(
        reason.contains(&outsider) && reason.contains("left alone"),
        "{reason}"
    );
    // The newer replication is still there; the wave's others are gone, each unconfigured once.
    let inv = sim.inventory();
    assert!(inv.replications.iter().any(|r| r.id == outsider));
    let undone = operations(&sim, "unconfigure");
    assert_eq!(undone.len(), 8, "the seven and the one removed by hand");
    assert!(undone.values().all(|n| *n == 1), "{undone:?}");
    assert!(!undone.contains_key(&outsider));
    assert_eq!(sim.stats().replica_disks_retained.len(), 7);
    assert_eq!(q.batch(undo).unwrap().operation, Operation::Unconfigure);
}
