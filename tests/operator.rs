//! What an operator sees: the demo end to end, plain progress without control characters when
//! the output is not a terminal, and flags winning over the settings file.

use std::fs;

use vrbulk::queue::{JobState, Queue};

use crate::support::cmd::Cmd;
use crate::support::fixtures::config_for;
use crate::support::harness::start;

/// A `PATH` without `vrbulk` on it, as in a fresh clone before `cargo install`.
const PATH_WITHOUT_VRBULK: &str = "/usr/bin:/bin";

#[test]
fn the_demo_runs_the_whole_job_and_leaves_a_queue_that_agrees_with_its_summary() {
    // Run as a newcomer does in a clone: from its folder, without `vrbulk` on PATH.
    let dir = tempfile::tempdir().unwrap();
    let ran = Cmd::new()
        .current_dir(dir.path())
        .env("PATH", PATH_WITHOUT_VRBULK)
        .args(["demo", "--task-seconds", "0.2"])
        .assert_exit(0)
        .stdout_contains("1. A simulated vSphere Replication appliance")
        .stdout_contains("3. Plan")
        .stdout_contains("| succeeded | 36")
        // The run's own advice for its two failures: the datastore is full, so another one.
        .stdout_contains("next steps (on batch 1):")
        .stdout_contains("--target-datastore OTHER")
        .stdout_contains("the throughput below reads that much too high");
    assert!(
        ran.stdout().contains("no VM configured twice: true"),
        "{}",
        ran.stdout()
    );
    // The folder .gitignore covers, in the current folder, as the README says.
    let folders: Vec<_> = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        folders.len() == 1 && folders[0].starts_with("vrbulk-demo-"),
        "{folders:?}"
    );
    let demo = dir.path().join(&folders[0]);

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

#[test]
fn the_commands_the_demo_suggests_run_as_printed_without_vrbulk_on_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let ran = Cmd::new()
        .current_dir(dir.path())
        .env("PATH", PATH_WITHOUT_VRBULK)
        .args(["demo", "--dir", "my demo", "--task-seconds", "0.2"])
        .args(["--sync-time-scale", "1000000"])
        .assert_exit(0)
        .stdout_contains("`cargo install --path .`");
    let stdout = ran.stdout();
    let inspect: Vec<&str> = stdout
        .lines()
        .skip_while(|l| !l.contains("inspect them"))
        .skip_while(|l| !l.starts_with("     "))
        .take_while(|l| l.starts_with("     "))
        .map(str::trim)
        .collect();
    assert_eq!(inspect.len(), 3, "{stdout}");
    for line in inspect {
        assert!(!line.starts_with("vrbulk "), "{line}");
        // Pasted into a shell in the folder the demo ran in.
        let out = std::process::Command::new("sh")
            .args(["-c", line])
            .current_dir(dir.path())
            .env("PATH", PATH_WITHOUT_VRBULK)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "`{line}` failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        if line.ends_with(" status") {
            let shown = String::from_utf8_lossy(&out.stdout);
            assert!(shown.contains("\"demo wave 1\""), "{shown}");
        }
    }
    assert!(dir.path().join("my demo/report.html").is_file());
}

#[tokio::test]
async fn a_run_without_a_terminal_prints_plain_progress_and_no_control_characters() {
    let sim = start(vrbulk::sim::SimConfig {
        task_seconds: 0.2,
        ..vrbulk::sim::SimConfig::fast()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    // Every VM at once: the syncs here last real hours, and the progress line is the subject.
    let config = config_for(&sim, dir.path(), "[run]\nmax_initial_syncs = \"all\"\n");
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
