//! `vrbulk inventory export` against the simulator: what it says of a VM's replication is in
//! the spec's words, as the appliance listed it.

use std::time::Duration;

use tokio::sync::watch;
use vrbulk::queue::Queue;
use vrbulk::runner::{self, RunOptions};
use vrbulk::sim::{SimConfig, VmKind};

use crate::support::cmd::Cmd;
use crate::support::fixtures::{self, config_for, new_batch, spec};
use crate::support::harness::{client_for, settings_for, start};
use crate::support::wait::eventually;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_names_a_configuration_state_as_the_spec_spells_it() {
    // Tasks of 8 s: the replication is listed `IN_PROGRESS` from 2 s to 8 s after its submit.
    let sim = start(SimConfig {
        task_seconds: 8.0,
        ..SimConfig::fast()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("q.db");
    let vm = sim
        .inventory()
        .vms
        .iter()
        .find(|v| v.kind == VmKind::Normal)
        .unwrap()
        .vm
        .clone();
    let batch = fixtures::import(&db, &new_batch("one"), &[spec(&vm.name)]);
    let (_stop, stop_rx) = watch::channel(false);
    let run = tokio::spawn(runner::run(
        Queue::open(&db).unwrap(),
        settings_for(&sim),
        RunOptions {
            batch: Some(batch),
            poll_interval: Duration::from_millis(200),
            ..RunOptions::default()
        },
        stop_rx,
    ));

    // The appliance's own listing says when the configure task is running.
    let client = client_for(&sim).await;
    let pairing = client.pairings().await.unwrap()[0].pairing_id.clone();
    client.remote_login(&pairing).await.unwrap();
    let listed = eventually(
        Duration::from_secs(20),
        "the replication to be listed",
        async || {
            let reps = client.replications(&pairing, None).await.unwrap();
            reps.iter()
                .find(|r| r.vm_id.as_deref() == Some(vm.id.as_str()))
                .and_then(|r| r.configuration_state)
        },
    )
    .await;
    assert_eq!(
        serde_json::to_value(listed).unwrap(),
        "IN_PROGRESS",
        "listed while its task runs"
    );

    let config = config_for(&sim, dir.path(), "");
    let export = dir.path().join("export.csv");
    let (config2, export2) = (config.clone(), export.clone());
    tokio::task::spawn_blocking(move || {
        Cmd::new()
            .env("VRBULK_PASSWORD", "VMware1!")
            .config(&config2)
            .args([
                "inventory".as_ref(),
                "export".as_ref(),
                "-o".as_ref(),
                export2.as_os_str(),
            ])
            .assert_exit(0)
    })
    .await
    .unwrap();
    let text = std::fs::read_to_string(&export).unwrap();
    let row = text
        .lines()
        .find(|l| l.starts_with(&format!("{},", vm.name)))
        .unwrap();
    // Still running when the export read it (the task is far from its 8 s): the spec's
    // spelling, never the Rust name upper-cased.
    assert!(row.contains("IN_PROGRESS)"), "{row}");
    assert!(!text.contains("INPROGRESS"), "{text}");
    run.await.unwrap().unwrap();
}
