//! The job queue through its public operations: claims, leases and rescue, fencing of stale
//! workers, retries, cancel and requeue, concurrent claimers (threads and processes), and
//! schema upgrades.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use vrbulk::domain::JobSpec;
use vrbulk::queue::{
    Checkpoint, JobState, Lease, NewBatch, Queue, QueueError, QueuedVm, Readiness, ReplicationSeen,
    Save, Step,
};

use crate::support::fixtures;
use crate::support::wait::eventually_blocking;

const LEASE: Duration = Duration::from_secs(30);

fn new_batch(max_attempts: u32) -> NewBatch {
    NewBatch {
        input_path: Some("vms.csv".into()),
        input_sha256: Some("ab".repeat(32)),
        settings: serde_json::json!({"rpo": 60}),
        max_attempts,
        ..fixtures::new_batch("wave 1")
    }
}

/// A queue whose clock the test moves by hand.
fn queue_at(path: &Path) -> (Queue, Arc<AtomicI64>) {
    fixtures::queue_at(path, 1_000_000)
}

fn with_jobs(q: &mut Queue, n: usize, max_attempts: u32) -> i64 {
    let specs: Vec<JobSpec> = fixtures::specs(n)
        .into_iter()
        .map(|s| JobSpec {
            change_ticket: Some("CHG0001".into()),
            ..s
        })
        .collect();
    q.create_batch(&new_batch(max_attempts), &specs).unwrap()
}

/// Saves `checkpoint` at each step from the job's first up to `to`, as a worker does.
fn advance(q: &mut Queue, lease: &Lease, to: Step, checkpoint: &Checkpoint) {
    for step in Step::ALL.into_iter().skip(1).take_while(|s| *s <= to) {
        q.checkpoint(lease, step, checkpoint).unwrap();
    }
}

#[test]
fn claims_hand_out_due_jobs_oldest_first_and_never_twice() {
    let dir = tempfile::tempdir().unwrap();
    let (mut q, _) = queue_at(&dir.path().join("q.db"));
    let batch = with_jobs(&mut q, 5, 3);
    let first = q.claim(Some(batch), 3, "a", LEASE).unwrap();
    let second = q.claim(Some(batch), 3, "b", LEASE).unwrap();
    let names: Vec<_> = first
        .iter()
        .chain(&second)
        .map(|j| j.vm_label().to_string())
        .collect();
    assert_eq!(
        names,
        ["vm-0000", "vm-0001", "vm-0002", "vm-0003", "vm-0004"]
    );
    assert!(first
        .iter()
        .all(|j| j.state == JobState::Running && j.attempt == 1));
    assert!(q.claim(Some(batch), 3, "c", LEASE).unwrap().is_empty());
    let counts = q.counts(batch).unwrap();
    assert_eq!(counts.len(), JobState::ALL.len(), "every state present");
    assert_eq!(counts[&JobState::Running], 5);
}

#[test]
fn a_stale_worker_cannot_overwrite_a_newer_attempt() {
    let dir = tempfile::tempdir().unwrap();
    let (mut q, now) = queue_at(&dir.path().join("q.db"));
    let batch = with_jobs(&mut q, 1, 3);
    let stale = q.claim(Some(batch), 1, "worker-a", LEASE).unwrap()[0]
        .lease()
        .unwrap();

    now.fetch_add(LEASE.as_millis() as i64 + 1, Ordering::SeqCst);
    assert_eq!(q.rescue().unwrap(), [stale.job]);
    let fresh = q.claim(Some(batch), 1, "worker-b", LEASE).unwrap()[0]
        .lease()
        .unwrap();
    // The stale worker sent nothing, so its attempt was given back: the same number, another
    // worker's lease.
    assert_eq!(fresh.attempt, 1);

    let err = q.succeed(&stale, Some("GID-1"), "done").unwrap_err();
    assert!(
        matches!(err, QueueError::LostLease { attempt: 1, .. }),
        "{err}"
    );
    let err = q
        .checkpoint(&stale, Step::Submit, &Checkpoint::default())
        .unwrap_err();
    assert!(matches!(err, QueueError::LostLease { .. }), "{err}");

    q.succeed(&fresh, Some("GID-2"), "replication configured")
        .unwrap();
    let job = q.job(fresh.job).unwrap();
    assert_eq!(job.state, JobState::Succeeded);
    assert_eq!(job.checkpoint.replication_id.as_deref(), Some("GID-2"));
    let events: Vec<_> = q
        .events(job.id)
        .unwrap()
        .iter()
        .map(|e| format!("{:?}->{}", e.from_state.map(|s| s.as_str()), e.to_state))
        .collect();
    assert_eq!(
        events,
        [
            "None->pending",
            "Some(\"pending\")->running",
            "Some(\"running\")->retryable",
            "Some(\"retryable\")->running",
            "Some(\"running\")->succeeded"
        ]
    );
}

#[test]
fn heartbeats_keep_a_lease_from_being_rescued() {
    let dir = tempfile::tempdir().unwrap();
    let (mut q, now) = queue_at(&dir.path().join("q.db"));
    let batch = with_jobs(&mut q, 2, 3);
    q.claim(Some(batch), 2, "alive", LEASE).unwrap();
    now.fetch_add(LEASE.as_millis() as i64 - 1, Ordering::SeqCst);
    assert_eq!(q.heartbeat("alive", LEASE).unwrap(), 2);
    now.fetch_add(10, Ordering::SeqCst);
    assert!(q.rescue().unwrap().is_empty());
}

#[test]
fn a_rescued_job_spends_its_attempt_only_if_its_request_may_have_been_sent() {
    let dir = tempfile::tempdir().unwrap();
    let (mut q, now) = queue_at(&dir.path().join("q.db"));
    let batch = with_jobs(&mut q, 3, 1);
    let jobs = q.claim(Some(batch), 3, "w", LEASE).unwrap();
    let checkpoint = Checkpoint {
        vm_id: Some("VirtualMachine:vm-1:x".into()),
        ..Checkpoint::default()
    };
    // One written ahead as in doubt (its configure may have left), one ready to send but not
    // sent, one still reading.
    let sent = jobs[0].lease().unwrap();
    advance(&mut q, &sent, Step::Submit, &checkpoint);
    q.save_all(&[Save {
        lease: sent.clone(),
        step: Step::Submit,
        checkpoint: checkpoint.clone(),
        in_doubt: Some(true),
    }])
    .unwrap();
    let ready = jobs[1].lease().unwrap();
    advance(&mut q, &ready, Step::Submit, &checkpoint);
    now.fetch_add(LEASE.as_millis() as i64 + 1, Ordering::SeqCst);
    assert_eq!(q.rescue().unwrap().len(), 3);

    // max_attempts = 1 and its one attempt spent: the configure may have reached the server,
    // so only the server's truth may end it. It waits, in doubt, to be reconciled.
    let job = q.job(sent.job).unwrap();
    assert_eq!(
        (job.state, job.in_doubt, job.attempt),
        (JobState::Retryable, true, 1)
    );
    assert_eq!(job.checkpoint.vm_id, checkpoint.vm_id);
    assert!(job
        .last_error
        .unwrap()
        .contains("may have reached the appliance"));
    // The others sent nothing: their attempt comes back, whatever step they were at, and
    // what they had read stays.
    for (lease, step) in [
        (&ready, Step::Submit),
        (&jobs[2].lease().unwrap(), Step::ResolveVm),
    ] {
        let job = q.job(lease.job).unwrap();
        assert_eq!(
            (job.state, job.in_doubt, job.attempt, job.step),
            (JobState::Retryable, false, 0, step)
        );
        assert!(job.last_error.unwrap().contains("before sending anything"));
    }
    assert_eq!(q.job(ready.job).unwrap().checkpoint.vm_id, checkpoint.vm_id);
}

#[test]
fn a_job_whose_configure_may_have_been_sent_is_deferred_never_failed() {
    let dir = tempfile::tempdir().unwrap();
    let (mut q, _) = queue_at(&dir.path().join("q.db"));
    let batch = with_jobs(&mut q, 1, 1);
    let lease = q.claim(Some(batch), 1, "w", LEASE).unwrap()[0]
        .lease()
        .unwrap();
    let at = q.now() + 5_000;
    let state = q
        .defer(&lease, at, "GET /tasks: HTTP 503: busy", Some(503))
        .unwrap();
    assert_eq!(
        state,
        JobState::Retryable,
        "out of attempts, yet not failed"
    );
    let job = q.job(lease.job).unwrap();
    assert_eq!(job.state, JobState::Retryable);
    assert!(job.reason.is_none());
    assert_eq!(
        job.last_error.as_deref(),
        Some("GET /tasks: HTTP 503: busy")
    );
}

#[test]
fn transient_failures_retry_later_until_the_attempts_are_spent() {
    let dir = tempfile::tempdir().unwrap();
    let (mut q, now) = queue_at(&dir.path().join("q.db"));
    let batch = with_jobs(&mut q, 1, 2);
    let lease = q.claim(Some(batch), 1, "w", LEASE).unwrap()[0]
        .lease()
        .unwrap();
    let at = q.now() + 5_000;
    let state = q
        .retry_later(&lease, at, "HTTP 503: busy", Some(503))
        .unwrap();
    assert_eq!(state, JobState::Retryable);
    assert!(
        q.claim(Some(batch), 1, "w", LEASE).unwrap().is_empty(),
        "not due yet"
    );

    now.fetch_add(5_000, Ordering::SeqCst);
    let lease = q.claim(Some(batch), 1, "w", LEASE).unwrap()[0]
        .lease()
        .unwrap();
    let state = q
        .retry_later(&lease, q.now(), "HTTP 503: still busy", Some(503))
        .unwrap();
    assert_eq!(state, JobState::Failed);
    let job = q.job(lease.job).unwrap();
    assert_eq!(
        job.reason.as_deref(),
        Some("gave up after 2 attempts; last error: HTTP 503: still busy")
    );
    assert_eq!(job.last_http_status, Some(503));
}

#[test]
fn a_released_job_is_due_again_without_spending_an_attempt() {
    let dir = tempfile::tempdir().unwrap();
    let (mut q, _) = queue_at(&dir.path().join("q.db"));
    let batch = with_jobs(&mut q, 1, 1);
    let lease = q.claim(Some(batch), 1, "w", LEASE).unwrap()[0]
        .lease()
        .unwrap();
    q.release(&lease, "interrupted (Ctrl-C)").unwrap();
    let again = q.claim(Some(batch), 1, "w", LEASE).unwrap();
    assert_eq!(again[0].attempt, 1);
}

#[test]
fn checkpoints_survive_reopening_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q.db");
    let (mut q, _) = queue_at(&path);
    let batch = with_jobs(&mut q, 1, 3);
    let lease = q.claim(Some(batch), 1, "w", LEASE).unwrap()[0]
        .lease()
        .unwrap();
    let checkpoint = Checkpoint {
        vm_id: Some("VirtualMachine:vm-7:x".into()),
        disks: Some(vec![]),
        placement: None,
        task_id: Some("HTask:1".into()),
        replication_id: None,
        reconfigure: None,
    };
    advance(&mut q, &lease, Step::AwaitTask, &checkpoint);
    drop(q);
    let (q, _) = queue_at(&path);
    let job = q.job(lease.job).unwrap();
    assert_eq!(job.step, Step::AwaitTask);
    assert_eq!(job.checkpoint, checkpoint);
}

#[test]
fn cancel_takes_what_has_not_started_and_retry_requeues_the_failed() {
    let dir = tempfile::tempdir().unwrap();
    let (mut q, _) = queue_at(&dir.path().join("q.db"));
    let batch = with_jobs(&mut q, 4, 3);
    let claimed = q.claim(Some(batch), 2, "w", LEASE).unwrap();
    let failed = claimed[0].lease().unwrap();
    q.fail(&failed, "HTTP 400: rpo out of range", Some(400))
        .unwrap();

    assert_eq!(q.cancel(batch, "cancelled by ops").unwrap(), 2);
    let counts = q.counts(batch).unwrap();
    assert_eq!(
        (
            counts[&JobState::Cancelled],
            counts[&JobState::Running],
            counts[&JobState::Failed]
        ),
        (2, 1, 1)
    );

    assert_eq!(
        q.requeue(batch, &[JobState::Failed], "retry --failed")
            .unwrap(),
        1
    );
    let job = q.job(failed.job).unwrap();
    assert_eq!(
        (job.state, job.attempt, job.step),
        (JobState::Pending, 0, Step::ResolveVm)
    );
    assert_eq!(job.reason, None);
    assert_eq!(job.finished_at, None);
    assert_eq!(
        q.requeue(batch, &[JobState::Failed, JobState::Cancelled], "retry")
            .unwrap(),
        2
    );
    assert!(matches!(
        q.cancel(999, "x"),
        Err(QueueError::NoSuchBatch(999))
    ));
}

#[test]
fn a_batch_naming_a_vm_of_an_unfinished_batch_is_refused_whole() {
    let dir = tempfile::tempdir().unwrap();
    let (mut q, _) = queue_at(&dir.path().join("q.db"));
    let batch = with_jobs(&mut q, 2, 3);
    let lease = q.claim(Some(batch), 1, "w", LEASE).unwrap()[0]
        .lease()
        .unwrap();
    q.succeed(&lease, None, "ok").unwrap();

    // vm-0000 has finished, vm-0001 has not; vm-0001 is named by id in the new batch.
    let mut by_id = fixtures::spec("other-name");
    by_id.vm.id = Some("vm-0001".into());
    by_id.line = Some(3);
    let specs = [fixtures::spec("vm-0000"), by_id, fixtures::spec("vm-0009")];
    let err = q.create_batch(&new_batch(3), &specs).unwrap_err();
    let QueueError::AlreadyQueued(vms) = &err else {
        panic!("{err}");
    };
    assert_eq!(
        vms,
        &[QueuedVm {
            line: Some(3),
            vm: "vm-0001".into(),
            by_id: true,
            batch,
        }]
    );
    assert_eq!(
        err.to_string(),
        format!(
            "1 VM is already in an unfinished batch, so the new batch was not created: \
             `vm-0001` (batch {batch})"
        )
    );
    assert_eq!(q.batches().unwrap().len(), 1, "nothing was written");
}

#[test]
fn two_imports_at_once_cannot_both_queue_one_vm() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q.db");
    drop(queue_at(&path));
    let imports: Vec<_> = (0..4)
        .map(|_| {
            let path = path.clone();
            std::thread::spawn(move || {
                Queue::open(&path)
                    .unwrap()
                    .create_batch(&new_batch(3), &fixtures::specs(50))
                    .map_err(|e| e.to_string())
            })
        })
        .collect();
    let created = imports
        .into_iter()
        .map(|i| i.join().unwrap())
        .filter(Result::is_ok)
        .count();
    assert_eq!(created, 1);
}

#[test]
fn a_checkpoint_moves_the_step_only_as_the_step_order_allows() {
    let dir = tempfile::tempdir().unwrap();
    let (mut q, _) = queue_at(&dir.path().join("q.db"));
    let batch = with_jobs(&mut q, 1, 3);
    let lease = q.claim(Some(batch), 1, "w", LEASE).unwrap()[0]
        .lease()
        .unwrap();
    let none = Checkpoint::default();
    let err = q.checkpoint(&lease, Step::Submit, &none).unwrap_err();
    assert!(
        matches!(
            err,
            QueueError::IllegalStep {
                from: Step::ResolveVm,
                to: Step::Submit,
                ..
            }
        ),
        "{err}"
    );

    advance(&mut q, &lease, Step::AwaitTask, &none);
    // A configure call was sent: back to submit only with the in-doubt mark, never to resolving.
    let back = |in_doubt| Save {
        lease: lease.clone(),
        step: Step::Submit,
        checkpoint: none.clone(),
        in_doubt: Some(in_doubt),
    };
    assert!(q.save_all(&[back(false)]).is_err());
    assert!(q.checkpoint(&lease, Step::ResolveVm, &none).is_err());
    assert_eq!(q.job(lease.job).unwrap().step, Step::AwaitTask);
    q.save_all(&[back(true)]).unwrap();
    let job = q.job(lease.job).unwrap();
    assert_eq!((job.step, job.in_doubt), (Step::Submit, true));
    // Its task said nothing was created: the in-doubt mark is settled, and it may go back to
    // be placed again. The log says each move back as one, not as a step done.
    q.save_all(&[Save {
        step: Step::ResolveTarget,
        in_doubt: Some(false),
        ..back(false)
    }])
    .unwrap();
    let said: Vec<String> = q
        .events(lease.job)
        .unwrap()
        .into_iter()
        .rev()
        .take(2)
        .filter_map(|e| e.message)
        .collect();
    assert_eq!(
        said,
        [
            "back to resolve_target",
            "back to submit (in doubt: the server is asked before anything is sent again)"
        ]
    );
}

#[test]
fn two_threads_never_hold_the_same_job() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q.db");
    let (mut q, _) = queue_at(&path);
    with_jobs(&mut q, 400, 3);
    let workers: Vec<_> = ["t1", "t2"]
        .into_iter()
        .map(|owner| {
            let path = path.clone();
            std::thread::spawn(move || drain(&path, owner))
        })
        .collect();
    let claimed: Vec<Vec<i64>> = workers.into_iter().map(|w| w.join().unwrap()).collect();
    assert_all_claimed_once(&claimed, 400);
}

/// Claims one job at a time and completes it, until none is left; returns the job ids.
fn drain(path: &Path, owner: &str) -> Vec<i64> {
    let mut q = Queue::open(path).unwrap();
    let mut claimed = Vec::new();
    loop {
        let jobs = q.claim(None, 1, owner, LEASE).unwrap();
        let Some(job) = jobs.first() else {
            return claimed;
        };
        claimed.push(job.id);
        q.succeed(&job.lease().unwrap(), None, owner).unwrap();
        // Paced on purpose: a real worker calls the API between claims; without that pause
        // SQLite's unfair busy handler can let one claimer take every job, and the test would
        // prove nothing.
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn assert_all_claimed_once(claimed: &[Vec<i64>], total: usize) {
    let all: Vec<i64> = claimed.iter().flatten().copied().collect();
    let unique: BTreeSet<i64> = all.iter().copied().collect();
    assert_eq!(all.len(), unique.len(), "a job was claimed twice");
    assert_eq!(unique.len(), total, "a job was never claimed");
    assert!(
        claimed.iter().all(|c| !c.is_empty()),
        "one claimer got nothing: {claimed:?}"
    );
}

const CLAIMER_DB: &str = "VRBULK_TEST_CLAIMER_DB";

/// The body of the child processes of the test below, which runs it with `--ignored --exact`.
#[test]
#[ignore = "not a test of its own: the child process of two_processes_never_hold_the_same_job"]
fn claimer_child() {
    let Ok(path) = std::env::var(CLAIMER_DB) else {
        return;
    };
    // Start together, so that the two processes really contend for the same jobs.
    let go = Path::new(&path).with_extension("go");
    eventually_blocking(Duration::from_secs(30), "the parent's go", || go.exists());
    let owner = format!("pid-{}", std::process::id());
    for id in drain(Path::new(&path), &owner) {
        println!("CLAIMED {id}");
    }
}

#[test]
fn two_processes_never_hold_the_same_job() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q.db");
    let (mut q, _) = queue_at(&path);
    with_jobs(&mut q, 400, 3);
    drop(q);
    let exe = std::env::current_exe().unwrap();
    let children: Vec<_> = (0..2)
        .map(|_| {
            std::process::Command::new(&exe)
                .args([
                    "queue::claimer_child",
                    "--ignored",
                    "--exact",
                    "--nocapture",
                    "--test-threads=1",
                ])
                .env(CLAIMER_DB, &path)
                .stdout(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    std::fs::write(path.with_extension("go"), b"").unwrap();
    let claimed: Vec<Vec<i64>> = children
        .into_iter()
        .map(|c| {
            let out = c.wait_with_output().unwrap();
            assert!(out.status.success());
            String::from_utf8_lossy(&out.stdout)
                .lines()
                // The harness prints "test … " before the first line without a newline.
                .filter_map(|l| l.rsplit_once("CLAIMED ")?.1.trim().parse().ok())
                .collect()
        })
        .collect();
    assert_all_claimed_once(&claimed, 400);
}

#[test]
fn a_database_from_the_first_schema_opens_and_upgrades() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.db");
    {
        let mut conn = rusqlite::Connection::open(&path).unwrap();
        rusqlite_migration::Migrations::new(vec![rusqlite_migration::M::up(include_str!(
            "../migrations/0001_queue.sql"
        ))])
        .to_latest(&mut conn)
        .unwrap();
        conn.execute(
            "INSERT INTO batches (name, created_at, operator, host, input_kind, settings_json, \
             tool_version) VALUES ('old', 1, 'op', 'h', 'csv', '{}', '0.0.1')",
            [],
        )
        .unwrap();
    }
    let q = Queue::open(&path).unwrap();
    assert_eq!(q.schema_version().unwrap(), 11);
    assert_eq!(q.batch(1).unwrap().name, "old");
    assert!(q.runs(1).unwrap().is_empty());
    assert!(q.protection(1).unwrap().is_empty());
}

#[test]
fn a_queue_that_cannot_be_opened_says_why_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("no-such-folder").join("q.db");
    let err = anyhow::Error::new(Queue::open(&path).unwrap_err());
    let text = format!("{err:#}");
    assert!(text.starts_with("cannot open the job queue"), "{text}");
    assert_eq!(text.matches("unable to open").count(), 1, "{text}");
}

#[test]
fn a_failed_upgrade_names_the_file_and_says_sqlites_words_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("odd.db");
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        // Schema 1 by its number, but already holding a table that migration 2 creates.
        conn.execute_batch(include_str!("../migrations/0001_queue.sql"))
            .unwrap();
        conn.execute_batch("CREATE TABLE runs (id TEXT); PRAGMA user_version = 1;")
            .unwrap();
    }
    let err = Queue::open(&path).unwrap_err();
    assert!(matches!(err, QueueError::Migrate { .. }), "{err}");
    let text = format!("{:#}", anyhow::Error::new(err));
    assert!(text.starts_with("cannot upgrade the job queue"), "{text}");
    assert_eq!(text.matches("already exists").count(), 1, "{text}");
    assert_eq!(text.matches("CREATE TABLE runs").count(), 1, "{text}");
}

#[test]
fn a_database_from_a_newer_vrbulk_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("new.db");
    rusqlite::Connection::open(&path)
        .unwrap()
        .pragma_update(None, "user_version", 99)
        .unwrap();
    let err = Queue::open(&path).unwrap_err();
    assert!(matches!(err, QueueError::TooNew { found: 99, .. }), "{err}");
    assert!(err.to_string().contains("newer vrbulk"), "{err}");
}

#[test]
fn the_protection_record_keeps_the_latest_sighting_and_logs_each_status_change_once() {
    let dir = tempfile::tempdir().unwrap();
    let (mut q, now) = queue_at(&dir.path().join("q.db"));
    let batch = with_jobs(&mut q, 1, 3);
    let lease = q.claim(Some(batch), 1, "w", LEASE).unwrap()[0]
        .lease()
        .unwrap();
    q.succeed(&lease, Some("GID-1"), "replication GID-1 configured")
        .unwrap();
    let configured = q.now();
    let seen = |status: &str, done: i64, rpo: bool, protected: bool| ReplicationSeen {
        job: lease.job,
        replication_id: "GID-1".into(),
        status: status.into(),
        configuration_state: Some("OK".into()),
        bytes_done: Some(done),
        bytes_total: Some(100 << 30),
        rpo_violation: rpo,
        error: None,
        protected,
        last_sync_time: None,
        last_sync_duration: None,
        replication_server: None,
    };

    now.fetch_add(1_000, Ordering::SeqCst);
    let first = q
        .record_protection(&[seen("INITIAL_FULL_SYNC", 10 << 30, false, false)])
        .unwrap();
    assert_eq!(first.len(), 1, "the first status is logged");
    assert_eq!(first[0].from_status, None);
    // Progress alone is not a change worth the log.
    now.fetch_add(1_000, Ordering::SeqCst);
    let again = q
        .record_protection(&[seen("INITIAL_FULL_SYNC", 60 << 30, false, false)])
        .unwrap();
    assert!(again.is_empty());
    now.fetch_add(1_000, Ordering::SeqCst);
    let protected_at = q.now();
    q.record_protection(&[seen("OK", 100 << 30, false, true)])
        .unwrap();
    // Later it falls behind its RPO: still protected since then, the status says so.
    now.fetch_add(60_000, Ordering::SeqCst);
    q.record_protection(&[seen("RPO_VIOLATION", 100 << 30, true, false)])
        .unwrap();

    let p = &q.protection(batch).unwrap()[0];
    assert_eq!(p.status, "RPO_VIOLATION");
    assert!(p.rpo_violation);
    assert_eq!(p.bytes_done, Some(100 << 30));
    assert_eq!(p.configured_at, configured);
    assert_eq!(p.protected_at, Some(protected_at));
    let statuses: Vec<(Option<String>, String)> = q
        .replication_events(lease.job)
        .unwrap()
        .into_iter()
        .map(|e| (e.from_status, e.to_status))
        .collect();
    assert_eq!(
        statuses,
        [
            (None, "INITIAL_FULL_SYNC".to_string()),
            (Some("INITIAL_FULL_SYNC".into()), "OK".into()),
            (Some("OK".into()), "RPO_VIOLATION".into()),
        ]
    );
}

#[test]
fn bytes_the_appliance_stops_showing_are_kept_and_complete_once_protected() {
    let dir = tempfile::tempdir().unwrap();
    let (mut q, _) = queue_at(&dir.path().join("q.db"));
    let batch = with_jobs(&mut q, 1, 3);
    let lease = q.claim(Some(batch), 1, "w", LEASE).unwrap()[0]
        .lease()
        .unwrap();
    q.succeed(&lease, Some("GID-1"), "configured").unwrap();
    let seen = |status: &str, done: Option<i64>, total: Option<i64>, protected| ReplicationSeen {
        job: lease.job,
        replication_id: "GID-1".into(),
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
    q.record_protection(&[seen("INITIAL_FULL_SYNC", Some(30), Some(90), false)])
        .unwrap();
    // Paused mid-sync: the appliance shows no progress; what was copied stays known.
    q.record_protection(&[seen("PAUSED", None, None, false)])
        .unwrap();
    let p = &q.protection(batch).unwrap()[0];
    assert_eq!((p.bytes_done, p.bytes_total), (Some(30), Some(90)));
    q.record_protection(&[seen("OK", None, None, true)])
        .unwrap();
    let p = &q.protection(batch).unwrap()[0];
    assert_eq!((p.bytes_done, p.bytes_total), (Some(90), Some(90)));
}

#[test]
fn the_batch_record_holds_the_protection_and_status_changes_of_its_own_jobs_only() {
    let dir = tempfile::tempdir().unwrap();
    let (mut q, now) = queue_at(&dir.path().join("q.db"));
    let batch = with_jobs(&mut q, 3, 1);
    let other = q
        .create_batch(&new_batch(1), &[fixtures::spec("elsewhere-01")])
        .unwrap();
    let leases: Vec<Lease> = q
        .claim(None, 4, "w", LEASE)
        .unwrap()
        .iter()
        .map(|j| j.lease().unwrap())
        .collect();
    for lease in &leases {
        q.succeed(lease, Some(&format!("GID-{}", lease.job)), "configured")
            .unwrap();
    }
    let seen = |job, status: &str, protected| ReplicationSeen {
        job,
        replication_id: format!("GID-{job}"),
        status: status.into(),
        configuration_state: Some("OK".into()),
        bytes_done: None,
        bytes_total: None,
        rpo_violation: false,
        error: None,
        protected,
        last_sync_time: None,
        last_sync_duration: None,
        replication_server: None,
    };
    now.fetch_add(1_000, Ordering::SeqCst);
    let (first, other_job) = (leases[0].job, leases[3].job);
    q.record_protection(&[
        seen(first, "INITIAL_FULL_SYNC", false),
        seen(leases[1].job, "NOT_ACTIVE", false),
        seen(other_job, "INITIAL_FULL_SYNC", false),
    ])
    .unwrap();
    now.fetch_add(1_000, Ordering::SeqCst);
    q.record_protection(&[seen(first, "OK", true)]).unwrap();

    let record = q.record(batch).unwrap();
    let jobs: Vec<_> = record.protection.iter().map(|p| p.job).collect();
    assert_eq!(
        jobs,
        [first, leases[1].job],
        "in job order, this batch only"
    );
    let changes: Vec<_> = record
        .replication_events
        .iter()
        .map(|e| (e.job, e.to_status.as_str()))
        .collect();
    assert_eq!(
        changes,
        [
            (first, "INITIAL_FULL_SYNC"),
            (leases[1].job, "NOT_ACTIVE"),
            (first, "OK")
        ],
        "oldest first"
    );
    // The third job succeeded and has no record yet: configured, not followed.
    let counts = q.readiness_counts(batch).unwrap();
    assert_eq!((counts.configured, counts.not_followed), (3, 1));
    assert_eq!(
        Readiness::ALL.map(|r| counts.count(r)),
        [0, 1, 1, 0, 0, 0, 0],
        "syncing, protected, not active, error, paused, missing, unconfigured"
    );
    assert_eq!(
        q.readiness_counts(other).unwrap().count(Readiness::Syncing),
        1
    );
}

#[test]
fn an_operation_batch_acts_on_the_replications_its_configure_batch_recorded() {
    use vrbulk::domain::{Operation, OperationSpec};
    use vrbulk::queue::{OperationJob, OperationRefused};
    let dir = tempfile::tempdir().unwrap();
    let (mut q, _) = queue_at(&dir.path().join("q.db"));
    let wave = with_jobs(&mut q, 3, 3);
    let leases: Vec<_> = q
        .claim(Some(wave), 3, "w", LEASE)
        .unwrap()
        .iter()
        .map(|j| j.lease().unwrap())
        .collect();
    for (i, lease) in leases.iter().enumerate().take(2) {
        let checkpoint = Checkpoint {
            vm_id: Some(format!("VirtualMachine:vm-{i}:x")),
            replication_id: Some(format!("GID-{i}")),
            ..Checkpoint::default()
        };
        advance(&mut q, lease, Step::Verify, &checkpoint);
        q.succeed(lease, checkpoint.replication_id.as_deref(), "configured")
            .unwrap();
    }
    q.fail(&leases[2], "datastore full", None).unwrap();
    let undo = |job| OperationJob {
        acts_on_job: job,
        spec: OperationSpec::Unconfigure {
            retain_replica_disks: false,
            local_only: false,
        },
    };

    // Only configured jobs of that batch, and only the operation's own kind.
    let refused = |r: Result<i64, QueueError>| match r {
        Err(QueueError::Refused(why)) => why,
        other => panic!("{other:?}"),
    };
    assert!(matches!(
        refused(q.create_operation_batch(
            &new_batch(3),
            Operation::Unconfigure,
            wave,
            &[undo(leases[2].job)]
        )),
        OperationRefused::NotConfigured { .. }
    ));
    assert!(matches!(
        refused(q.create_operation_batch(
            &new_batch(3),
            Operation::Pause,
            wave,
            &[undo(leases[0].job)]
        )),
        OperationRefused::WrongOperation { .. }
    ));

    let undo_batch = q
        .create_operation_batch(
            &new_batch(3),
            Operation::Unconfigure,
            wave,
            &[undo(leases[0].job), undo(leases[1].job)],
        )
        .unwrap();
    let batch = q.batch(undo_batch).unwrap();
    assert_eq!(
        (batch.operation, batch.acts_on),
        (Operation::Unconfigure, Some(wave))
    );
    let jobs = q.jobs(undo_batch).unwrap();
    assert_eq!(jobs.len(), 2);
    for (job, lease) in jobs.iter().zip(&leases) {
        assert_eq!(job.acts_on_job, Some(lease.job));
        assert_eq!(job.state, JobState::Pending);
        assert!(
            job.checkpoint.replication_id.is_some(),
            "the id the wave recorded"
        );
        assert!(matches!(
            job.operation,
            Some(OperationSpec::Unconfigure { .. })
        ));
    }
    // A second operation on the same replications while this one is unfinished: refused.
    assert!(matches!(
        q.create_operation_batch(
            &new_batch(3),
            Operation::Unconfigure,
            wave,
            &[undo(leases[0].job)]
        ),
        Err(QueueError::AlreadyQueued(_))
    ));
    // And an operation batch is no configure batch to act on.
    assert!(matches!(
        refused(q.create_operation_batch(
            &new_batch(3),
            Operation::Unconfigure,
            undo_batch,
            &[undo(jobs[0].id)]
        )),
        OperationRefused::NotAConfigureBatch(_)
    ));
    assert_eq!(q.operations_on(wave).unwrap().len(), 1);
}
