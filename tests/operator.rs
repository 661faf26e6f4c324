//! What an operator sees: the demo end to end, plain progress without control characters when
//! the output is not a terminal, and flags winning over the settings file.

use std::fs;

use vrbulk::queue::{JobState, Queue};

use crate::support::cmd::Cmd;
use crate::support::fixtures::config_for;
use crate::support::harness::start;

#[test]
fn the_demo_runs_the_whole_job_and_leaves_a_queue_that_agrees_with_its_summary() {
    let dir = tempfile::tempdir().unwrap();
    let demo = dir.path().join("demo");
    let ran = Cmd::new()
        .args([
            "demo".as_ref(),
            "--dir".as_ref(),
            demo.as_os_str(),
            "--task-seconds".as_ref(),
            "0.2".as_ref(),
        ])
        .assert_exit(0)
        .stdout_contains("1. A simulated vSphere Replication appliance")
        .stdout_contains("3. Plan")
        .stdout_contains("| succeeded | 36");
    assert!(
        ran.stdout().contains("no VM configured twice: true"),
        "{}",
        ran.stdout()
    );

    let q = Queue::open(&demo.join("vrbulk.db")).unwrap();
    let batch = q.latest_batch().unwrap().unwrap();
    let counts = q.counts(batch.id).unwrap();
    assert_eq!(
        (
            counts[&JobState::Succeeded],
            counts[&JobState::Skipped],
            counts[&JobState::Failed]
        ),
        (36, 2, 2)
    );
    assert!(q
        .jobs(batch.id)
        .unwrap()
        .iter()
        .all(|j| j.state.is_terminal()));
    assert!(fs::read_to_string(demo.join("vrbulk.toml"))
        .unwrap()
        .contains("thumbprint"));
}

#[tokio::test]
async fn a_run_without_a_terminal_prints_plain_progress_and_no_control_characters() {
    let sim = start(vrbulk::sim::SimConfig {
        task_seconds: 0.2,
        ..vrbulk::sim::SimConfig::fast()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let config = config_for(&sim, dir.path(), "");
    let db = dir.path().join("q.db");
    let samples = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("samples/vms.csv");
    tokio::task::spawn_blocking(move || {
        let base = || {
            Cmd::new()
                .env("VRBULK_PASSWORD", "VMware1!")
                .db(&db)
                .config(&config)
        };
        base()
            .args(["import".as_ref(), samples.as_os_str()])
            .assert_exit(0);
        let ran = base().args(["run"]).assert_exit(1);
        let (out, err) = (ran.stdout(), ran.stderr());
        assert!(
            err.contains("0/40 VMs ended, eta: measuring: waiting 40"),
            "{err}"
        );
        assert!(err.contains("40/40 VMs ended, eta 0 s"), "{err}");
        for text in [&out, &err] {
            assert!(
                !text.chars().any(|c| c.is_control() && c != '\n'),
                "control characters in:\n{text:?}"
            );
        }
    })
    .await
    .unwrap();
}
