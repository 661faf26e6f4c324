//! `vrbulk batches` through the binary: one row per batch with its operation, tickets, jobs by
//! state and where it stands, judged from a queue filled through the library, with runs whose
//! processes live (this test's own) or are gone (a child that has exited).

use std::path::Path;
use std::time::Duration;

use vrbulk::domain::OperationSpec;
use vrbulk::queue::{JobState, OperationJob, Queue};

use crate::support::cmd::Cmd;
use crate::support::fixtures::{new_batch, spec, specs};

const LEASE: Duration = Duration::from_secs(600);

/// A run owner on this host whose process lives: this test's own process.
fn live_owner() -> String {
    format!("{}:{}:live", vrbulk::operator::who().1, std::process::id())
}

/// A run owner on this host whose process has exited.
fn dead_owner() -> String {
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let pid = child.id();
    child.wait().unwrap();
    format!("{}:{pid}:dead", vrbulk::operator::who().1)
}

/// Seven batches, one per standing:
/// 1 "wave 1" finished: 3 configured, 1 failed (tickets CHG1, CHG2);
/// 2 "wave 2" interrupted by Ctrl-C with 2 of 3 left;
/// 3 "wave 3" running: a live run holds 1 job;
/// 4 "wave 4" died: its run never ended and its process is gone, 2 jobs still leased;
/// 5 "wave 5" not started; 6 "wave 6" cancelled;
/// 7 "undo 1" an unconfigure of batch 1, not started.
fn seven_batches(db: &Path) {
    let mut q = Queue::open(db).unwrap();
    let mut wave1 = specs(4);
    wave1[0].change_ticket = Some("CHG2".into());
    wave1[1].change_ticket = Some("CHG1".into());
    let b1 = q.create_batch(&new_batch("wave 1"), &wave1).unwrap();
    q.start_run("r1", b1, "elsewhere:1:r1", "run", None)
        .unwrap();
    let held = q.claim(Some(b1), 4, "elsewhere:1:r1", LEASE).unwrap();
    for job in &held[..3] {
        q.succeed(&job.lease().unwrap(), Some("GID-1"), "configured")
            .unwrap();
    }
    q.fail(&held[3].lease().unwrap(), "VM not found", Some(404))
        .unwrap();
    q.finish_run("r1", "done", 0).unwrap();

    let b2 = q
        .create_batch(&new_batch("wave 2"), &[spec("a"), spec("b"), spec("c")])
        .unwrap();
    q.start_run("r2", b2, &live_owner(), "run", None).unwrap();
    let held = q.claim(Some(b2), 3, &live_owner(), LEASE).unwrap();
    q.succeed(&held[0].lease().unwrap(), Some("GID-2"), "configured")
        .unwrap();
    for job in &held[1..] {
        q.release(&job.lease().unwrap(), "interrupted (Ctrl-C)")
            .unwrap();
    }
    q.finish_run("r2", "interrupted", 0).unwrap();

    let b3 = q
        .create_batch(&new_batch("wave 3"), &[spec("d"), spec("e")])
        .unwrap();
    q.start_run("r3", b3, &live_owner(), "run", None).unwrap();
    q.claim(Some(b3), 1, &live_owner(), LEASE).unwrap();

    let dead = dead_owner();
    let b4 = q
        .create_batch(&new_batch("wave 4"), &[spec("f"), spec("g"), spec("h")])
        .unwrap();
    q.start_run("r4", b4, &dead, "run", None).unwrap();
    q.claim(Some(b4), 2, &dead, LEASE).unwrap();

    q.create_batch(&new_batch("wave 5"), &[spec("i")]).unwrap();
    let b6 = q.create_batch(&new_batch("wave 6"), &[spec("j")]).unwrap();
    q.cancel(b6, "cancelled by test").unwrap();

    let undo: Vec<OperationJob> = q
        .jobs(b1)
        .unwrap()
        .iter()
        .filter(|j| j.state == JobState::Succeeded)
        .map(|j| OperationJob {
            acts_on_job: j.id,
            spec: OperationSpec::Unconfigure {
                retain_replica_disks: false,
                local_only: false,
            },
        })
        .collect();
    q.create_operation_batch(
        &new_batch("undo 1"),
        vrbulk::domain::Operation::Unconfigure,
        b1,
        &undo,
    )
    .unwrap();
}

/// The line of batch `id` in the plain listing.
fn row(listing: &str, id: i64) -> &str {
    listing
        .lines()
        .find(|l| l.split_whitespace().next() == Some(&id.to_string()))
        .unwrap_or_else(|| panic!("no row for batch {id}:\n{listing}"))
}

/// The cells of a plain row: columns are two spaces apart or more, words within a cell one.
fn cells(line: &str) -> Vec<&str> {
    line.split("  ")
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .collect()
}

#[test]
fn batches_lists_each_batch_with_its_operation_tickets_jobs_and_where_it_stands() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("q.db");
    seven_batches(&db);
    let ran = Cmd::new().db(&db).args(["batches"]).assert_exit(0);
    let out = ran.stdout();
    // Not a terminal: plain columns, no box drawing.
    assert!(out.starts_with("batch  name"), "{out}");
    assert!(!out.contains('│') && !out.contains('═'), "{out}");
    assert_eq!(out.lines().count(), 8, "a header and seven rows:\n{out}");

    let expected = [
        [
            "1",
            "wave 1",
            "configure",
            "CHG1, CHG2",
            "3 ok · 1 failed · 0 pending",
            "finished",
        ],
        [
            "2",
            "wave 2",
            "configure",
            "-",
            "1 ok · 0 failed · 2 pending",
            "interrupted",
        ],
        [
            "3",
            "wave 3",
            "configure",
            "-",
            "0 ok · 0 failed · 1 running · 1 pending",
            "running",
        ],
        [
            "4",
            "wave 4",
            "configure",
            "-",
            "0 ok · 0 failed · 2 running · 1 pending",
            "died",
        ],
        [
            "5",
            "wave 5",
            "configure",
            "-",
            "0 ok · 0 failed · 1 pending",
            "not started",
        ],
        [
            "6",
            "wave 6",
            "configure",
            "-",
            "0 ok · 0 failed · 1 cancelled · 0 pending",
            "cancelled",
        ],
        // The undo's jobs carry the tickets of the jobs they undo.
        [
            "7",
            "undo 1",
            "unconfigure of 1",
            "CHG1, CHG2",
            "0 ok · 0 failed · 3 pending",
            "not started",
        ],
    ];
    for (id, want) in (1..).zip(expected) {
        let mut got = cells(row(&out, id));
        // The creation time, checked below.
        got.remove(3);
        assert_eq!(got, want, "batch {id}");
    }
    // The creation time is the operator's local time, to the minute.
    let created = Queue::open(&db).unwrap().batch(1).unwrap().created_at;
    let local = jiff::Timestamp::from_millisecond(created)
        .unwrap()
        .to_zoned_datetime(jiff::tz::TimeZone::system())
        .strftime("%Y-%m-%d %H:%M")
        .to_string();
    assert!(row(&out, 1).contains(&local), "{}", row(&out, 1));
}

#[test]
fn batches_json_gives_scripts_every_batch_with_its_standing_and_counts() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("q.db");
    seven_batches(&db);
    let ran = Cmd::new()
        .db(&db)
        .args(["batches", "--json"])
        .assert_exit(0);
    let json: serde_json::Value = serde_json::from_str(&ran.stdout()).unwrap();
    let all = json.as_array().unwrap();
    let states: Vec<&str> = all
        .iter()
        .map(|b| b["standing"]["state"].as_str().unwrap())
        .collect();
    assert_eq!(
        states,
        [
            "finished",
            "interrupted",
            "running",
            "died",
            "not_started",
            "cancelled",
            "not_started"
        ]
    );
    assert_eq!(
        all[0]["change_tickets"],
        serde_json::json!(["CHG1", "CHG2"])
    );
    assert_eq!(all[0]["counts"]["failed"], 1);
    assert_eq!(all[1]["last_run"]["outcome"], "interrupted");
    assert_eq!(all[2]["standing"]["held"], 1);
    assert_eq!(all[3]["standing"]["reserved"], 2);
    assert_eq!(all[6]["batch"]["operation"], "unconfigure");
    assert_eq!(all[6]["batch"]["acts_on"], 1);
}

#[test]
fn batches_of_a_missing_queue_exits_2_and_of_an_empty_one_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("nothing.db");
    Cmd::new()
        .db(&db)
        .args(["batches"])
        .assert_exit(2)
        .stderr_contains("there is no job queue at");
    assert!(!db.exists(), "listing created a queue");

    Queue::open(&db).unwrap();
    Cmd::new()
        .db(&db)
        .args(["batches"])
        .assert_exit(0)
        .stderr_contains("holds no batch yet");
    let ran = Cmd::new()
        .db(&db)
        .args(["batches", "--json"])
        .assert_exit(0);
    assert_eq!(ran.stdout().trim(), "[]");
}
