//! The operator's commands about one batch: `status` (text and `--json`, with the configured
//! VMs by readiness and how the last run ended), `retry` and `cancel`, driven through the binary
//! against a queue filled through the library, and `status` after real runs killed and
//! interrupted against the simulator.

use std::path::Path;
use std::time::Duration;

use vrbulk::queue::{JobState, Queue, ReplicationSeen};

use crate::support::cmd::{Cmd, Ran};
use crate::support::fixtures::{self, new_batch, spec, specs};
use crate::support::wait::eventually;

const LEASE: Duration = Duration::from_secs(600);

/// The number of jobs per state of [`mixed_batch`], in `JobState::ALL` order.
const MIXED: [(JobState, u64); 7] = [
    (JobState::Pending, 3),
    (JobState::Running, 2),
    (JobState::Retryable, 4),
    (JobState::Succeeded, 5),
    (JobState::Skipped, 6),
    (JobState::Failed, 1),
    (JobState::Cancelled, 7),
];

/// Batch 1 "wave 1" with 28 jobs `vm-0000`..`vm-0027` in every state, as [`MIXED`] counts them:
/// `vm-0003` failed with HTTP 400, `vm-0004`..`vm-0007` wait an hour after an HTTP 503, the
/// first three were requeued after failing, two are running.
fn mixed_batch(db: &Path) -> Queue {
    let mut q = Queue::open(db).unwrap();
    let batch = q.create_batch(&new_batch("wave 1"), &specs(28)).unwrap();
    let leases: Vec<_> = q
        .claim(Some(batch), 21, "jump01:1:run", LEASE)
        .unwrap()
        .iter()
        .map(|j| j.lease().unwrap())
        .collect();
    assert_eq!(q.cancel(batch, "cancelled by test").unwrap(), 7);
    for lease in &leases[0..3] {
        q.fail(lease, "HTTP 500: internal error", Some(500))
            .unwrap();
    }
    assert_eq!(
        q.requeue(batch, &[JobState::Failed], "requeued by test")
            .unwrap(),
        3
    );
    q.fail(
        &leases[3],
        "rpo 2 is out of range (VR_INVALID_RPO)",
        Some(400),
    )
    .unwrap();
    let later = q.now() + 3_600_000;
    for lease in &leases[4..8] {
        let to = q
            .retry_later(lease, later, "appliance busy, try later", Some(503))
            .unwrap();
        assert_eq!(to, JobState::Retryable);
    }
    for lease in &leases[8..13] {
        q.succeed(lease, Some("GID-1"), "configured").unwrap();
    }
    for lease in &leases[13..19] {
        q.skip(lease, "already replicated (GID-2)", None).unwrap();
    }
    let counts: Vec<_> = q.counts(batch).unwrap().into_iter().collect();
    assert_eq!(counts, MIXED, "the fixture itself");
    q
}

fn vrbulk(db: &Path) -> Cmd {
    Cmd::new().db(db)
}

fn state_of(q: &Queue, vm: &str) -> JobState {
    q.jobs(1)
        .unwrap()
        .into_iter()
        .find(|j| j.vm_label() == vm)
        .unwrap()
        .state
}

#[test]
fn status_shows_every_states_count_and_the_last_errors_in_the_servers_words() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("q.db");
    drop(mixed_batch(&db));

    let ran = vrbulk(&db).args(["status"]).assert_exit(0);
    let out = ran.stdout();
    assert!(
        out.starts_with("batch 1 \"wave 1\": created "),
        "header:\n{out}"
    );
    assert!(out.contains(" UTC by ops@jump01, 28 jobs\n"), "{out}");
    for (state, n) in MIXED {
        let line = format!("\n  {:<10} {n}\n", state.as_str());
        assert!(out.contains(&line), "no `{}`:\n{out}", line.trim());
    }
    for line in [
        "  pending    resolve_vm      3",
        "  running    resolve_vm      2",
        "  retryable  resolve_vm      4",
    ] {
        assert!(out.contains(line), "no `{line}`:\n{out}");
    }
    assert!(
        out.contains("oldest running: job 20 vm-0019 at resolve_vm, attempt 1"),
        "{out}"
    );
    assert!(out.contains("held by jump01:1:run until "), "{out}");
    assert!(out.contains("0 of 4 retryable due"), "{out}");
    assert!(!out.contains("in doubt"), "{out}");
    assert!(out.contains("last errors, newest first:"), "{out}");
    assert!(
        out.contains(
            "vm-0003 (failed) at resolve_vm, attempt 1, HTTP 400: rpo 2 is out of range (VR_INVALID_RPO)"
        ),
        "{out}"
    );
    assert!(
        out.contains("vm-0004 (retryable) at resolve_vm, attempt 1, HTTP 503: appliance busy"),
        "{out}"
    );
    // Requeued jobs keep their last error until they run again: 3 + 1 + 4 jobs have one.
    let errors = out.split("last errors, newest first:\n").nth(1).unwrap();
    let errors = errors.split("\n\n").next().unwrap();
    assert_eq!(errors.lines().count(), 8, "{out}");
}

#[test]
fn status_json_has_the_batch_and_every_states_count() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("q.db");
    drop(mixed_batch(&db));

    let ran = vrbulk(&db)
        .args(["status", "--batch", "1", "--json"])
        .assert_exit(0);
    let json: serde_json::Value = serde_json::from_str(&ran.stdout()).expect("stdout is JSON");
    assert_eq!(json["batch"]["id"], 1);
    assert_eq!(json["batch"]["name"], "wave 1");
    assert_eq!(json["batch"]["operator"], "ops");
    let counts = json["counts"].as_object().unwrap();
    assert_eq!(counts.len(), 7, "{counts:?}");
    for (state, n) in MIXED {
        assert_eq!(counts[state.as_str()], n, "{state}");
    }
    assert_eq!(json["total"], 28);
    assert_eq!(json["steps"]["retryable"]["resolve_vm"], 4);
    assert_eq!(json["oldest_running"]["vm"], "vm-0019");
    assert_eq!(json["retries_due"], 0);
    assert!(json["next_retry_at"].as_i64().unwrap() > json["as_of"].as_i64().unwrap());
    assert_eq!(json["in_doubt"], 0);
    let errors = json["last_errors"].as_array().unwrap();
    assert_eq!(errors.len(), 8);
    let failed = errors.iter().find(|e| e["state"] == "failed").unwrap();
    assert_eq!(failed["vm"], "vm-0003");
    assert_eq!(failed["http_status"], 400);
    assert_eq!(failed["message"], "rpo 2 is out of range (VR_INVALID_RPO)");

    let fewer = vrbulk(&db)
        .args(["status", "--json", "--errors", "2"])
        .assert_exit(0);
    let fewer: serde_json::Value = serde_json::from_str(&fewer.stdout()).unwrap();
    assert_eq!(fewer["last_errors"].as_array().unwrap().len(), 2);
}

/// Batch 1 "wave 1" of eight VMs: seven configured, followed into every readiness (two
/// protected, one of them since behind its RPO; two syncing; one powered off; one in error),
/// one configured and not followed yet, and `vm-0007` never claimed.
fn followed_batch(db: &Path) {
    let mut q = Queue::open(db).unwrap();
    let batch = q.create_batch(&new_batch("wave 1"), &specs(8)).unwrap();
    let leases: Vec<_> = q
        .claim(Some(batch), 7, "jump01:1:run", LEASE)
        .unwrap()
        .iter()
        .map(|j| j.lease().unwrap())
        .collect();
    for lease in &leases {
        q.succeed(lease, Some(&format!("GID-{}", lease.job)), "configured")
            .unwrap();
    }
    let gib = |n: i64| Some(n << 30);
    let seen = |i: usize, status: &str, done, total, protected| ReplicationSeen {
        job: leases[i].job,
        replication_id: format!("GID-{}", leases[i].job),
        status: status.into(),
        configuration_state: Some("OK".into()),
        bytes_done: done,
        bytes_total: total,
        rpo_violation: false,
        error: None,
        protected,
        last_sync_time: None,
        last_sync_duration: None,
        replication_server: None,
    };
    q.record_protection(&[
        seen(0, "OK", gib(40), gib(40), true),
        seen(1, "OK", gib(20), gib(20), true),
        seen(2, "INITIAL_FULL_SYNC", gib(10), gib(40), false),
        seen(3, "INITIAL_FULL_SYNC", gib(30), gib(60), false),
        seen(4, "NOT_ACTIVE", None, None, false),
        ReplicationSeen {
            error: Some("Datastore ds-gold-01 is inaccessible".into()),
            ..seen(5, "ERROR", None, None, false)
        },
    ])
    .unwrap();
    q.record_protection(&[ReplicationSeen {
        rpo_violation: true,
        ..seen(1, "RPO_VIOLATION", gib(20), gib(20), false)
    }])
    .unwrap();
}

#[test]
fn status_counts_the_configured_vms_by_readiness_with_what_explains_each() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("q.db");
    followed_batch(&db);

    let out = vrbulk(&db).args(["status"]).assert_exit(0).stdout();
    assert!(
        out.contains("\nprotection of the 7 configured VMs, as last seen "),
        "{out}"
    );
    for line in [
        "  syncing      2  40.0% of 100.0 GiB copied\n",
        "  protected    2  1 in RPO violation\n",
        "  not active   1  powered off, waiting\n",
        "  error        1\n",
        "  not followed 1  next: vrbulk watch --batch 1\n",
    ] {
        assert!(out.contains(line), "no `{}`:\n{out}", line.trim_end());
    }

    let json = vrbulk(&db)
        .args(["status", "--json"])
        .assert_exit(0)
        .stdout();
    let json: serde_json::Value = serde_json::from_str(&json).unwrap();
    let p = &json["protection"];
    assert_eq!(p["configured"], 7);
    assert_eq!(p["not_followed"], 1);
    assert_eq!(
        p["counts"],
        serde_json::json!({
            "syncing": 2, "protected": 2, "not_active": 1, "error": 1,
            "paused": 0, "missing": 0, "unconfigured": 0
        })
    );
    assert_eq!(p["rpo_violation"], 1);
    assert_eq!(
        (
            p["sync_bytes_done"].as_i64(),
            p["sync_bytes_total"].as_i64()
        ),
        (Some(40 << 30), Some(100 << 30))
    );
    assert!(p["last_seen_at"].as_i64().unwrap() <= json["as_of"].as_i64().unwrap());
}

#[test]
fn status_of_configured_vms_nothing_followed_says_so_and_what_to_run() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("q.db");
    drop(mixed_batch(&db));

    let out = vrbulk(&db).args(["status"]).assert_exit(0).stdout();
    assert!(
        out.contains(
            "\nprotection of the 5 configured VMs: not followed yet; next: vrbulk watch --batch 1\n"
        ),
        "{out}"
    );
    assert!(!out.contains("  protected "), "{out}");
    let json = vrbulk(&db)
        .args(["status", "--json"])
        .assert_exit(0)
        .stdout();
    let json: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(
        (
            &json["protection"]["configured"],
            &json["protection"]["not_followed"]
        ),
        (&serde_json::json!(5), &serde_json::json!(5))
    );
    assert_eq!(json["protection"]["counts"]["protected"], 0);
}

#[test]
fn status_of_a_batch_with_nothing_configured_says_nothing_of_protection() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("q.db");
    fixtures::import(&db, &new_batch("wave 1"), &specs(2));
    let out = vrbulk(&db).args(["status"]).assert_exit(0).stdout();
    assert!(!out.contains("protection"), "{out}");
    let json = vrbulk(&db)
        .args(["status", "--json"])
        .assert_exit(0)
        .stdout();
    let json: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert!(json["protection"].is_null(), "{json}");
}

#[test]
fn status_without_batch_shows_the_newest() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("q.db");
    let mut q = mixed_batch(&db);
    q.create_batch(&new_batch("wave 2"), &[spec("web-01"), spec("web-02")])
        .unwrap();
    drop(q);
    vrbulk(&db)
        .args(["status"])
        .assert_exit(0)
        .stdout_contains("batch 2 \"wave 2\"")
        .stdout_contains(", 2 jobs\n");
}

#[test]
fn retry_failed_moves_failed_jobs_back_to_pending_with_an_event() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("q.db");
    drop(mixed_batch(&db));

    vrbulk(&db)
        .args(["retry", "--failed"])
        .assert_exit(0)
        .stdout_contains("batch 1 \"wave 1\": 1 failed jobs requeued")
        .stdout_contains("next: vrbulk run --batch 1");
    let q = Queue::open(&db).unwrap();
    let job = q
        .jobs(1)
        .unwrap()
        .into_iter()
        .find(|j| j.vm_label() == "vm-0003")
        .unwrap();
    assert_eq!(
        (job.state, job.attempt, job.reason),
        (JobState::Pending, 0, None)
    );
    let event = q.events(job.id).unwrap().pop().unwrap();
    assert_eq!(
        (event.from_state, event.to_state),
        (Some(JobState::Failed), JobState::Pending)
    );
    let message = event.message.unwrap();
    assert!(
        message.starts_with("requeued by ") && message.ends_with("(vrbulk retry)"),
        "{message}"
    );
    let counts = q.counts(1).unwrap();
    assert_eq!(
        (
            counts[&JobState::Pending],
            counts[&JobState::Failed],
            counts[&JobState::Cancelled]
        ),
        (4, 0, 7)
    );
    drop(q);

    vrbulk(&db)
        .args(["retry"])
        .assert_exit(0)
        .stdout_contains("no failed jobs to retry");
    vrbulk(&db)
        .args(["retry", "--failed", "--cancelled"])
        .assert_exit(0)
        .stdout_contains("7 failed and cancelled jobs requeued (0 failed, 7 cancelled)");
    let q = Queue::open(&db).unwrap();
    assert_eq!(q.counts(1).unwrap()[&JobState::Pending], 11);
    assert_eq!(state_of(&q, "vm-0027"), JobState::Pending);
}

#[test]
fn cancel_takes_pending_and_retryable_and_leaves_running_alone() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("q.db");
    drop(mixed_batch(&db));

    vrbulk(&db)
        .args(["cancel", "--batch", "1"])
        .assert_exit(0)
        .stdout_contains("batch 1 \"wave 1\": 7 jobs that had not started cancelled")
        .stdout_contains("2 jobs are held by a run");
    let q = Queue::open(&db).unwrap();
    let counts: Vec<_> = q.counts(1).unwrap().into_iter().collect();
    assert_eq!(
        counts,
        [
            (JobState::Pending, 0),
            (JobState::Running, 2),
            (JobState::Retryable, 0),
            (JobState::Succeeded, 5),
            (JobState::Skipped, 6),
            (JobState::Failed, 1),
            (JobState::Cancelled, 14),
        ]
    );
    assert_eq!(state_of(&q, "vm-0019"), JobState::Running);
    let job = q
        .jobs(1)
        .unwrap()
        .into_iter()
        .find(|j| j.vm_label() == "vm-0004")
        .unwrap();
    assert_eq!(job.state, JobState::Cancelled);
    let reason = job.reason.unwrap();
    assert!(reason.starts_with("cancelled by "), "{reason}");
    let event = q.events(job.id).unwrap().pop().unwrap();
    assert_eq!(
        (event.from_state, event.to_state, event.message.as_deref()),
        (
            Some(JobState::Retryable),
            JobState::Cancelled,
            Some(reason.as_str())
        )
    );
}

#[test]
fn an_unknown_batch_exits_2_and_names_the_batches_there_are() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("q.db");
    drop(mixed_batch(&db));
    for command in [
        "status", "retry", "cancel", "report", "run", "plan", "watch",
    ] {
        let ran: Ran = vrbulk(&db).args([command, "--batch", "9"]).assert_exit(2);
        // The batch asked for and the batches there are, each said once.
        assert_eq!(
            ran.stderr(),
            format!(
                "error: --batch 9: no such batch in {}; its batches are: 1 \"wave 1\"\n",
                db.display()
            ),
            "{command}"
        );
        assert!(ran.stdout().is_empty(), "{command}: {}", ran.stdout());
    }
    let q = Queue::open(&db).unwrap();
    let counts: Vec<_> = q.counts(1).unwrap().into_iter().collect();
    assert_eq!(counts, MIXED);
}

#[test]
fn a_queue_without_batches_exits_2_and_says_to_import_first() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("q.db");
    drop(Queue::open(&db).unwrap());
    for command in ["status", "retry", "cancel"] {
        vrbulk(&db)
            .args([command])
            .assert_exit(2)
            .stderr_contains("holds no batch yet")
            .stderr_contains("vrbulk import");
    }

    let missing = dir.path().join("typo.db");
    vrbulk(&missing)
        .args(["status"])
        .assert_exit(2)
        .stderr_contains("there is no job queue at")
        .stderr_contains("typo.db");
    assert!(!missing.exists(), "status created a queue file");
}

#[test]
fn each_command_shows_an_example_in_its_help() {
    for (command, example) in [
        ("status", "vrbulk status --batch 3 --json"),
        ("retry", "vrbulk retry --batch 3 --cancelled"),
        ("cancel", "vrbulk cancel --batch 3"),
    ] {
        Cmd::new()
            .args([command, "--help"])
            .assert_exit(0)
            .stdout_contains("Examples:")
            .stdout_contains(example);
    }
}

#[test]
fn retry_cancelled_takes_the_cancelled_jobs_and_leaves_the_failed_ones() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("q.db");
    drop(mixed_batch(&db));
    vrbulk(&db)
        .args(["retry", "--cancelled"])
        .assert_exit(0)
        .stdout_contains("7 cancelled jobs requeued");
    let counts = Queue::open(&db).unwrap().counts(1).unwrap();
    assert_eq!(counts[&JobState::Failed], 1, "the failed job stays failed");
    assert_eq!(counts[&JobState::Cancelled], 0);
    assert_eq!(counts[&JobState::Pending], 10);
}

#[test]
fn status_after_a_run_interrupted_by_ctrl_c_says_when_what_is_left_and_how_to_resume() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("q.db");
    let (mut q, now) = fixtures::queue_at(&db, 1_764_590_400_000);
    let batch = q.create_batch(&new_batch("wave 1"), &specs(10)).unwrap();
    q.start_run("r1", batch, "jump01:4242:r1", "run", None)
        .unwrap();
    let held = q.claim(Some(batch), 4, "jump01:4242:r1", LEASE).unwrap();
    q.succeed(&held[0].lease().unwrap(), Some("GID-1"), "configured")
        .unwrap();
    now.store(1_764_590_530_000, std::sync::atomic::Ordering::SeqCst);
    // What the runner does on Ctrl-C: give the held jobs back, record the run's end.
    for job in &held[1..] {
        q.release(&job.lease().unwrap(), "interrupted (Ctrl-C): given back")
            .unwrap();
    }
    q.finish_run("r1", "interrupted", 0).unwrap();
    drop(q);

    let out = vrbulk(&db).args(["status"]).assert_exit(0).stdout();
    assert!(
        out.ends_with(
            "\nlast run: interrupted (Ctrl-C) at 2025-12-01 12:02:10 UTC (started 2025-12-01 \
             12:00:00 UTC, ran 2m 10s); its jobs were given back; 9 of 10 jobs left\n\
             next: vrbulk run --batch 1\n"
        ),
        "{out}"
    );
    let json = vrbulk(&db)
        .args(["status", "--json"])
        .assert_exit(0)
        .stdout();
    let json: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(json["standing"]["state"], "interrupted");
    assert_eq!(json["standing"]["at"], 1_764_590_530_000_i64);
    assert_eq!(json["last_run"]["outcome"], "interrupted");
    assert_eq!(
        json["counts"]["pending"], 6,
        "the status itself is still there"
    );
}

#[test]
fn status_of_a_finished_batch_says_nothing_of_its_runs_and_a_new_one_says_to_plan() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("q.db");
    let mut q = Queue::open(&db).unwrap();
    let batch = q.create_batch(&new_batch("wave 1"), &specs(2)).unwrap();
    drop(q);
    vrbulk(&db)
        .args(["status"])
        .assert_exit(0)
        .stdout_contains("\nnot run yet; 2 of 2 jobs left\nnext: vrbulk plan --batch 1");

    let mut q = Queue::open(&db).unwrap();
    q.start_run("r1", batch, "jump01:4242:r1", "run", None)
        .unwrap();
    for job in q.claim(Some(batch), 2, "jump01:4242:r1", LEASE).unwrap() {
        q.succeed(&job.lease().unwrap(), Some("GID-1"), "configured")
            .unwrap();
    }
    q.finish_run("r1", "done", 0).unwrap();
    drop(q);
    let out = vrbulk(&db).args(["status"]).assert_exit(0).stdout();
    assert!(
        !out.contains("last run") && !out.contains("vrbulk run"),
        "{out}"
    );
}

/// 120 VMs, 1 s tasks and 12 requests per 2 s session window: a run lasts long enough for a
/// signal to land in the middle of its work.
async fn slow_simulator() -> vrbulk::sim::Simulator {
    crate::support::harness::start(vrbulk::sim::SimConfig {
        vms: 120,
        task_seconds: 1.0,
        latency_ms: 20,
        limits: Some(vrbulk::sim::RateLimits {
            per_session: 12,
            ..vrbulk::sim::RateLimits::scaled(vrbulk::sim::FAST_WINDOW)
        }),
        ..vrbulk::sim::SimConfig::fast()
    })
    .await
}

/// `vrbulk run` of the newest batch as a child process, its stderr into `log`.
fn spawn_run(db: &Path, config: &Path, log: &Path) -> std::process::Child {
    std::process::Command::new(env!("CARGO_BIN_EXE_vrbulk"))
        .args([
            "--db".as_ref(),
            db.as_os_str(),
            "--config".as_ref(),
            config.as_os_str(),
            "run".as_ref(),
        ])
        .env("VRBULK_PASSWORD", "VMware1!")
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap()
}

/// Waits (20 s at most) until `ready` holds of the queue at `db`; on time out, says what the
/// run wrote to `log`.
async fn until(db: &Path, log: &Path, what: &str, ready: impl Fn(&Queue) -> bool) {
    eventually(Duration::from_secs(20), what, async || {
        if ready(&Queue::open(db).unwrap()) {
            Ok(())
        } else {
            Err(format!(
                "the run said:\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            ))
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_after_a_killed_run_says_it_died_and_after_ctrl_c_that_it_was_interrupted() {
    let sim = slow_simulator().await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("q.db");
    let names: Vec<_> = sim
        .inventory()
        .vms
        .iter()
        .map(|v| spec(&v.vm.name))
        .collect();
    let batch = fixtures::import(&db, &new_batch("wave 1"), &names);
    // Leases that outlive the killed run while the test looks (renewed every third of that,
    // so 5 s at least are left at the kill), yet let the next run take its jobs over soon.
    let config = fixtures::config_for(
        &sim,
        dir.path(),
        "\n[run]\nworkers = 4\nsubmit_group = 4\npoll_interval_seconds = 0.2\nlease_seconds = 8\n",
    );
    let held = |q: &Queue| q.counts(batch).unwrap()[&JobState::Running] > 0;

    let log = dir.path().join("run.log");
    let mut killed = spawn_run(&db, &config, &log);
    until(&db, &log, "the run to hold jobs", held).await;
    killed.kill().unwrap();
    killed.wait().unwrap();
    let out = vrbulk(&db).args(["status"]).assert_exit(0).stdout();
    let owner = format!("{}:{}:", vrbulk::operator::who().1, killed.id());
    for text in [
        "\nlast run: died: started ",
        &format!(" by {owner}"),
        "never recorded its end, and its process is gone",
        " of 120 jobs left, ",
        " of them reserved by its leases until ",
        "\nnext: vrbulk run --batch 1\n",
    ] {
        assert!(out.contains(text), "no `{text}`:\n{out}");
    }
    vrbulk(&db)
        .args(["batches"])
        .assert_exit(0)
        .stdout_contains("died");

    // The next run waits the dead one's leases out; Ctrl-C once it holds jobs of its own.
    let interrupted = spawn_run(&db, &config, &log);
    let mine = format!(":{}:", interrupted.id());
    until(&db, &log, "the next run to hold jobs of its own", |q| {
        q.holders(batch, "")
            .unwrap()
            .iter()
            .any(|h| h.owner.contains(&mine))
    })
    .await;
    // SAFETY: sending a signal to our own child process.
    unsafe {
        libc::kill(interrupted.id() as libc::pid_t, libc::SIGINT);
    }
    let ended = tokio::task::spawn_blocking(move || interrupted.wait_with_output().unwrap())
        .await
        .unwrap();
    assert_eq!(ended.status.code(), Some(130));
    let out = vrbulk(&db).args(["status"]).assert_exit(0).stdout();
    assert!(
        out.contains("\nlast run: interrupted (Ctrl-C) at "),
        "{out}"
    );
    assert!(out.ends_with("\nnext: vrbulk run --batch 1\n"), "{out}");
}
