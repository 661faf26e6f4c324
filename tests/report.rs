//! Reports: golden files for every format of a fixed batch built through the library with an
//! injected clock, the JSON checked job by job against the queue, a batch still in progress, the
//! `report` and `plan --format` commands, and the HTML page rendered by a real browser.
//!
//! `VRBULK_BLESS=1 cargo test report` rewrites the golden files in `tests/golden/`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use vrbulk::domain::{JobSpec, Operation, OperationSpec, VmRef};
use vrbulk::domain::{Placement, ReplicationSettings};
use vrbulk::queue::{
    Checkpoint, JobState, Lease, LinkSample, MeasuredLink, NewBatch, OperationJob, Queue,
    Readiness, ReplicationSeen, Step,
};
use vrbulk::report::{Format, PlanReport, Report, WaveForecast};
use vrbulk::sim::{SimConfig, Simulator};
use vrbulk::vr::model::VmDisk;
use vrbulk::vr::OpUsage;
use vrbulk::workflow::{PlanAction, PlanRow};

use crate::support::cmd::Cmd;
use crate::support::fixtures::{self, config_for};
use crate::support::harness::start;
use crate::support::wait::eventually_blocking;

pub(crate) const LEASE: Duration = Duration::from_secs(300);
/// 2024-06-01 08:00:00 UTC.
pub(crate) const T0: i64 = 1_717_228_800_000;
pub(crate) const OWNER: &str = "jump01:4242:run-1";
pub(crate) const GIB_KB: i64 = 1024 * 1024;

pub(crate) struct Row {
    name: Option<&'static str>,
    id: Option<&'static str>,
    datastore: &'static str,
    policy: Option<&'static str>,
    rpo: u32,
    mpit: (u32, u32),
    ticket: Option<&'static str>,
    notes: Option<&'static str>,
}

pub(crate) fn row(name: &'static str, datastore: &'static str) -> Row {
    Row {
        name: Some(name),
        id: None,
        datastore,
        policy: None,
        rpo: 60,
        mpit: (0, 0),
        ticket: Some("CHG0002"),
        notes: None,
    }
}

pub(crate) fn spec(i: usize, r: Row) -> JobSpec {
    JobSpec {
        line: Some(i as u64 + 2),
        vm: VmRef {
            name: r.name.map(str::to_owned),
            id: r.id.map(str::to_owned),
        },
        pairing: Some("vc-site-b.corp.local".into()),
        target_datastore: r.datastore.into(),
        storage_policy: r.policy.map(str::to_owned),
        replication_server: None,
        settings: ReplicationSettings {
            rpo: r.rpo,
            mpit_instances: r.mpit.0,
            mpit_days: r.mpit.1,
            ..ReplicationSettings::default()
        },
        change_ticket: r.ticket.map(str::to_owned),
        notes: r.notes.map(str::to_owned),
    }
}

pub(crate) fn new_batch(name: &str) -> NewBatch {
    NewBatch {
        operator: "ops-jane".into(),
        input_path: Some("waves/wave-1.csv".into()),
        input_sha256: Some("3f".repeat(32)),
        settings: json!({"rpo": 60, "disk_format": "SAME_AS_SOURCE", "max_attempts": 2}),
        max_attempts: 2,
        ..fixtures::new_batch(name)
    }
}

/// A queue whose clock the test moves by hand.
pub(crate) fn queue_at(path: &Path) -> (Queue, Arc<AtomicI64>) {
    fixtures::queue_at(path, T0)
}

pub(crate) fn disks(vm: &str, data: &[(&str, i64, bool)]) -> Vec<VmDisk> {
    let mut all = vec![json!({"vm_id": vm, "is_vm_home": true, "supported_for_replication": true})];
    for (i, (label, kb, ok)) in data.iter().enumerate() {
        all.push(json!({
            "vm_id": vm,
            "device_key": 2000 + i,
            "label": label,
            "capacity": kb,
            "supported_for_replication": ok,
        }));
    }
    serde_json::from_value(Value::Array(all)).unwrap()
}

fn placement() -> Placement {
    Placement {
        target_vc_id: "vc-b-uuid".into(),
        datastore_id: "datastore-11".into(),
        storage_policy_id: None,
        replication_server_id: None,
    }
}

/// Drives one claimed job through the workflow's checkpoints, a few seconds apart.
pub(crate) struct Driver<'a> {
    pub(crate) q: &'a mut Queue,
    pub(crate) now: &'a AtomicI64,
}

impl Driver<'_> {
    pub(crate) fn tick(&self, seconds: i64) {
        self.now.fetch_add(seconds * 1000, Ordering::SeqCst);
    }

    pub(crate) fn claim(&mut self, batch: i64) -> Lease {
        self.tick(2);
        let jobs = self.q.claim(Some(batch), 1, OWNER, LEASE).unwrap();
        jobs[0].lease().unwrap()
    }

    fn resolved(&mut self, lease: &Lease, vm: &str, d: Vec<VmDisk>) -> Checkpoint {
        self.tick(3);
        let c = Checkpoint {
            vm_id: Some(vm.into()),
            disks: Some(d),
            ..Checkpoint::default()
        };
        self.q.checkpoint(lease, Step::ResolveTarget, &c).unwrap();
        c
    }

    fn submitted(&mut self, lease: &Lease, mut c: Checkpoint, task: &str) -> Checkpoint {
        self.tick(4);
        c.placement = Some(placement());
        self.q.checkpoint(lease, Step::Submit, &c).unwrap();
        self.tick(5);
        c.task_id = Some(task.into());
        self.q.checkpoint(lease, Step::AwaitTask, &c).unwrap();
        c
    }

    pub(crate) fn replicated(&mut self, batch: i64, vm: &str, d: Vec<VmDisk>, n: u32) {
        let lease = self.claim(batch);
        let c = self.resolved(&lease, vm, d);
        let c = self.submitted(&lease, c, &format!("HmsTask-{n:04}"));
        self.tick(40);
        self.q.checkpoint(&lease, Step::Verify, &c).unwrap();
        self.tick(3);
        self.q
            .succeed(
                &lease,
                Some(&format!("GID-{n:04}")),
                "replication configured",
            )
            .unwrap();
    }
}

pub(crate) fn vm(n: u32) -> String {
    format!("VirtualMachine:vm-{n}:4f1c2e0a-6d3b-4a57-9d8e-1b2c3d4e5f60")
}

/// The fixed batch of the golden files: every final state, two failures of one cause, a
/// retry that gave up, a VM named only by id, a Ctrl-C'd run and a cancel, with text that
/// needs escaping in every format.
fn fixture(path: &Path) -> (Queue, i64) {
    let (mut q, now) = queue_at(path);
    let rows = vec![
        Row {
            policy: Some("VR Gold"),
            rpo: 15,
            mpit: (3, 1),
            ticket: Some("CHG0001"),
            notes: Some("web tier | frontend"),
            ..row("app-001", "ds-gold-01")
        },
        Row {
            ticket: Some("CHG0001"),
            notes: Some("<script>alert(\"x\")</script> & *more*\nsecond line"),
            ..row("app-002", "ds-gold-01")
        },
        row("db-003", "ds-full-01"),
        row("db-004", "ds-full-01"),
        row("ghost-005", "ds-silver-01"),
        row("bad-006", "ds-silver-01"),
        row("flaky-007", "ds-bronze-01"),
        row("tmpl-008", "ds-silver-01"),
        Row {
            ticket: None,
            ..row("old-009", "ds-silver-01")
        },
        Row {
            name: None,
            id: Some("VirtualMachine:vm-1010:4f1c2e0a-6d3b-4a57-9d8e-1b2c3d4e5f60"),
            ticket: Some("=HYPERLINK(\"x\")"),
            ..row("", "ds-bronze-01")
        },
        row("late-011", "ds-gold-01"),
    ];
    let specs: Vec<JobSpec> = rows
        .into_iter()
        .enumerate()
        .map(|(i, r)| spec(i, r))
        .collect();
    let batch = q
        .create_batch(&new_batch("wave 1 | east <DC-A>"), &specs)
        .unwrap();

    let mut d = Driver {
        q: &mut q,
        now: &now,
    };
    d.tick(60);
    d.q.start_run("run-1", batch, OWNER, "run", None).unwrap();
    d.tick(1);
    d.q.record_discovery(
        batch,
        "8a5b2f3e-pairing-0001",
        &json!({
            "pairing_id": "8a5b2f3e-pairing-0001",
            "local_vc": "vc-site-a.corp.local",
            "remote_vc": "vc-site-b.corp.local",
            "target_vrms_id": "vrms-b",
            "replication_servers": ["vrs-target-01"],
            "datastores": ["ds-gold-01", "ds-full-01"],
            "storage_policies": ["VR Gold"],
            "existing_replications": 1,
        }),
    )
    .unwrap();

    // app-001: a data disk the server cannot replicate stays out.
    d.replicated(
        batch,
        &vm(1001),
        disks(
            &vm(1001),
            &[
                ("Hard disk 1", 40 * GIB_KB, true),
                ("NVMe disk 1", 100 * GIB_KB, false),
            ],
        ),
        1,
    );
    d.replicated(
        batch,
        &vm(1002),
        disks(&vm(1002), &[("Hard disk 1", 20 * GIB_KB, true)]),
        2,
    );
    for (n, need) in [(3, "40.0"), (4, "64.5")] {
        let lease = d.claim(batch);
        let c = d.resolved(
            &lease,
            &vm(1000 + n),
            disks(&vm(1000 + n), &[("Hard disk 1", 40 * GIB_KB, true)]),
        );
        d.submitted(&lease, c, &format!("HmsTask-{n:04}"));
        d.tick(20);
        d.q.fail(
            &lease,
            &format!(
                "Insufficient disk space on datastore 'ds-full-01': 12.0 GiB free, {need} GiB required"
            ),
            None,
        )
        .unwrap();
    }
    let lease = d.claim(batch);
    d.tick(1);
    d.q.fail(
        &lease,
        "VM `ghost-005` not found on vc-site-a.corp.local",
        None,
    )
    .unwrap();
    let lease = d.claim(batch);
    let c = d.resolved(
        &lease,
        &vm(1006),
        disks(&vm(1006), &[("Hard disk 1", GIB_KB, true)]),
    );
    d.tick(4);
    d.q.checkpoint(&lease, Step::Submit, &c).unwrap();
    d.tick(1);
    d.q.fail(
        &lease,
        "the server refused the spec: VR-0042 target_datastore_id: datastore-11 is read-only",
        Some(400),
    )
    .unwrap();
    // flaky-007: one 503 now, another after the others, then it gives up.
    let flaky = d.claim(batch);
    d.tick(2);
    let flaky_again = d.now.load(Ordering::SeqCst) + 120_000;
    d.q.retry_later(
        &flaky,
        flaky_again,
        "GET /tasks/HmsTask-0007: HTTP 503: Service Unavailable",
        Some(503),
    )
    .unwrap();
    let lease = d.claim(batch);
    d.resolved(&lease, &vm(1008), Vec::new());
    d.tick(1);
    d.q.skip(
        &lease,
        "not suitable for replication: VM is a template",
        None,
    )
    .unwrap();
    let lease = d.claim(batch);
    d.tick(1);
    d.q.skip(
        &lease,
        "already replicated: GID-0009 (OK)",
        Some("GID-0009"),
    )
    .unwrap();
    d.replicated(
        batch,
        &vm(1010),
        disks(&vm(1010), &[("Hard disk 1", 10 * GIB_KB, true)]),
        10,
    );

    // Past flaky-007's retry time both it and late-011 are due: flaky-007 gives up, late-011
    // is given back by a Ctrl-C.
    d.tick(150);
    let both = d.q.claim(Some(batch), 2, OWNER, LEASE).unwrap();
    let (late, flaky) = (both[0].lease().unwrap(), both[1].lease().unwrap());
    assert_eq!(flaky.job, both[1].id);
    d.tick(6);
    let ended =
        d.q.retry_later(
            &flaky,
            0,
            "GET /tasks/HmsTask-0007: HTTP 503: Service Unavailable",
            Some(503),
        )
        .unwrap();
    assert_eq!(ended, JobState::Failed);
    d.q.release(&late, "interrupted (Ctrl-C): given back for the next run")
        .unwrap();
    let usage: BTreeMap<String, OpUsage> = [
        ("configureReplication", 2, 0, 0, 0),
        ("getTaskInfo", 14, 1, 2, 2),
        ("getVms", 3, 0, 0, 0),
        ("login", 2, 0, 0, 0),
    ]
    .into_iter()
    .map(|(op, calls, throttled, server_errors, retries)| {
        (
            op.to_string(),
            OpUsage {
                calls,
                throttled,
                server_errors,
                retries,
            },
        )
    })
    .collect();
    d.q.add_api_usage(batch, &usage).unwrap();
    d.tick(1);
    d.q.finish_run("run-1", "interrupted", 1).unwrap();

    d.tick(600);
    d.q.cancel(batch, "cancelled by the operator: change window closed")
        .unwrap();
    d.tick(30);
    d.q.start_run("run-2", batch, "jump01:4343:run-2", "run", None)
        .unwrap();
    d.tick(2);
    d.q.finish_run("run-2", "done", 0).unwrap();
    (q, batch)
}

/// What `watch` saw of one replication: on VR server `vrs-b-01`, as the appliance says.
fn seen(job: i64, status: &str, bytes: Option<(i64, i64)>, protected: bool) -> ReplicationSeen {
    ReplicationSeen {
        job,
        replication_id: format!("GID-{job:04}"),
        status: status.into(),
        configuration_state: Some("OK".into()),
        bytes_done: bytes.map(|b| b.0 << 30),
        bytes_total: bytes.map(|b| b.1 << 30),
        rpo_violation: false,
        error: None,
        protected,
        last_sync_time: None,
        last_sync_duration: None,
        replication_server: Some("vrs-b-01".into()),
    }
}

/// The golden batch of protection: eleven VMs configured and one not found, then followed for
/// two hours until every readiness is there. web-02, web-01 and db-03 became protected (db-03
/// has since fallen behind its RPO), app-04 and app-05 are still in their initial sync, old-06
/// is powered off, bad-07 is in error (in words that need escaping), lab-08 was paused by a
/// pause batch, tmp-09 was removed outside vrbulk, old-10 was unconfigured by an undo batch,
/// and new-12 was configured after the last sighting, so it is not followed yet. The
/// appliance says when each protected one's first sync ended: 75 s before vrbulk looked.
fn protection_fixture(path: &Path) -> (Queue, i64) {
    let (mut q, now) = queue_at(path);
    let names = [
        "web-01", "web-02", "db-03", "app-04", "app-05", "old-06", "bad-07", "lab-08", "tmp-09",
        "old-10", "ghost-11", "new-12",
    ];
    let specs: Vec<JobSpec> = names
        .into_iter()
        .enumerate()
        .map(|(i, name)| {
            let rpo = if name == "db-03" { 15 } else { 60 };
            spec(
                i,
                Row {
                    rpo,
                    ..row(name, "ds-gold-01")
                },
            )
        })
        .collect();
    let batch = q
        .create_batch(&new_batch("wave 2 | protect"), &specs)
        .unwrap();
    let mut d = Driver {
        q: &mut q,
        now: &now,
    };
    d.tick(60);
    d.q.start_run("run-1", batch, OWNER, "run", None).unwrap();
    let sizes = [40, 20, 60, 80, 120, 30, 30, 50, 10, 20];
    for (n, gib) in (1..=10).zip(sizes) {
        let disk = disks(&vm(2000 + n), &[("Hard disk 1", gib * GIB_KB, true)]);
        d.replicated(batch, &vm(2000 + n), disk, n);
    }
    let lease = d.claim(batch);
    d.tick(1);
    d.q.fail(
        &lease,
        "VM `ghost-11` not found on vc-site-a.corp.local",
        None,
    )
    .unwrap();

    let mut watch = |minutes: i64, seen: &[ReplicationSeen]| {
        d.tick(minutes * 60);
        let at = d.now.load(Ordering::SeqCst);
        let seen: Vec<ReplicationSeen> = seen
            .iter()
            .map(|s| ReplicationSeen {
                last_sync_time: s.protected.then_some(at - 75_000),
                last_sync_duration: s.protected.then_some(11 * 60),
                ..s.clone()
            })
            .collect();
        d.q.record_protection(&seen).unwrap();
    };
    watch(
        2,
        &[
            seen(1, "INITIAL_FULL_SYNC", Some((5, 40)), false),
            seen(2, "INITIAL_FULL_SYNC", Some((8, 20)), false),
            seen(3, "INITIAL_FULL_SYNC", Some((2, 60)), false),
            seen(4, "INITIAL_FULL_SYNC", Some((1, 80)), false),
            seen(5, "CONFIGURING", None, false),
            seen(6, "NOT_ACTIVE", None, false),
            seen(7, "INITIAL_FULL_SYNC", Some((0, 30)), false),
            seen(8, "INITIAL_FULL_SYNC", Some((10, 50)), false),
            seen(9, "INITIAL_FULL_SYNC", Some((9, 10)), false),
            seen(10, "INITIAL_FULL_SYNC", Some((4, 20)), false),
        ],
    );
    let error = ReplicationSeen {
        configuration_state: Some("ERROR".into()),
        error: Some("Disk 'Hard disk 1' | not found on <datastore-12>".into()),
        ..seen(7, "ERROR", Some((3, 30)), false)
    };
    watch(
        14,
        &[
            seen(1, "INITIAL_FULL_SYNC", Some((21, 40)), false),
            seen(2, "OK", Some((20, 20)), true),
            error.clone(),
            seen(8, "OK", Some((50, 50)), true),
            seen(9, "OK", Some((10, 10)), true),
            seen(10, "OK", Some((20, 20)), true),
        ],
    );
    watch(
        15,
        &[
            seen(1, "OK", Some((40, 40)), true),
            seen(5, "INITIAL_FULL_SYNC", Some((10, 120)), false),
        ],
    );
    watch(30, &[seen(3, "OK", Some((60, 60)), true)]);
    // What admission measured of the link meanwhile: the cap grew while the throughput rose,
    // and came back when it stopped rising.
    let link = [
        (12, 1, 2, 118.0, 1200),
        (16, 2, 2, 350.0, 1100),
        (22, 4, 4, 610.0, 900),
        (30, 6, 6, 770.0, 650),
        (38, 8, 8, 765.5, 420),
        (48, 6, 6, 742.0, 260),
        (60, 3, 6, 420.0, 90),
        (70, 1, 6, 118.25, 0),
    ];
    for (minute, in_sync, cap, mbps, gib_left) in link {
        d.q.record_link_sample(&LinkSample {
            run_id: "run-1".into(),
            pairing_id: "pairing-a-b".into(),
            at: T0 + minute * 60_000,
            span_ms: 60_000,
            in_sync,
            cap: Some(cap),
            mbps,
            pace_mbps: mbps.min(120.0),
            bytes_left: gib_left * GIB_KB * 1024,
        })
        .unwrap();
    }
    d.q.finish_run("run-1", "done", 0).unwrap();

    // Day 2: batch 2 pauses lab-08, batch 3 unconfigures old-10.
    let mut operate = |operation: Operation, spec: OperationSpec, job: i64, done: &str| {
        d.tick(60);
        let b =
            d.q.create_operation_batch(
                &new_batch("day 2"),
                operation,
                batch,
                &[OperationJob {
                    acts_on_job: job,
                    spec,
                }],
            )
            .unwrap();
        let lease = d.claim(b);
        d.tick(20);
        d.q.succeed(&lease, Some(&format!("GID-{job:04}")), done)
            .unwrap();
    };
    operate(Operation::Pause, OperationSpec::Pause, 8, "paused");
    operate(
        Operation::Unconfigure,
        OperationSpec::Unconfigure {
            retain_replica_disks: false,
            local_only: false,
        },
        10,
        "unconfigured",
    );

    // The last pass sees every replication it follows: db-03 fell behind its RPO, lab-08 is
    // paused, and tmp-09 is no longer listed (nobody asked vrbulk to remove it).
    let mut watch = |minutes: i64, seen: &[ReplicationSeen]| {
        d.tick(minutes * 60);
        d.q.record_protection(seen).unwrap();
    };
    watch(
        29,
        &[
            seen(1, "OK", Some((40, 40)), true),
            seen(2, "OK", Some((20, 20)), true),
            ReplicationSeen {
                rpo_violation: true,
                ..seen(3, "RPO_VIOLATION", Some((60, 60)), false)
            },
            seen(4, "INITIAL_FULL_SYNC", Some((30, 80)), false),
            seen(5, "INITIAL_FULL_SYNC", Some((40, 120)), false),
            seen(6, "NOT_ACTIVE", None, false),
            error,
            seen(8, "PAUSED", Some((50, 50)), false),
            ReplicationSeen {
                replication_server: None,
                ..seen(9, "NOT_LISTED", None, false)
            },
        ],
    );
    // new-12 is configured by a later run that nothing has followed since.
    d.tick(60);
    d.q.start_run("run-2", batch, OWNER, "run", None).unwrap();
    let disk = disks(&vm(2012), &[("Hard disk 1", 10 * GIB_KB, true)]);
    d.replicated(batch, &vm(2012), disk, 12);
    d.q.finish_run("run-2", "done", 0).unwrap();
    (q, batch)
}

/// The moment the protection golden reports are made: three hours after import.
const PROTECTION_REPORT_AT: i64 = T0 + 3 * 3_600_000;

fn protection_report() -> (Report, Queue, i64, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let (q, batch) = protection_fixture(&dir.path().join("q.db"));
    let report = Report::load(&q, batch, PROTECTION_REPORT_AT).unwrap();
    (report, q, batch, dir)
}

/// The moment the golden reports are made: an hour after import.
const REPORT_AT: i64 = T0 + 3_600_000;

fn golden_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name)
}

/// Compares `actual` with the golden file, showing a unified diff on mismatch;
/// `VRBULK_BLESS=1` rewrites the file instead.
pub(crate) fn assert_golden(name: &str, actual: &str) {
    let path = golden_path(name);
    if std::env::var("VRBULK_BLESS").as_deref() == Ok("1") {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; run `VRBULK_BLESS=1 cargo test report` to create it",
            path.display()
        )
    });
    if expected != actual {
        let diff = similar::TextDiff::from_lines(expected.as_str(), actual)
            .unified_diff()
            .context_radius(2)
            .header(&format!("{name} (golden)"), &format!("{name} (rendered)"))
            .to_string();
        panic!(
            "{name} differs from its golden file (VRBULK_BLESS=1 rewrites it after review):\n{diff}"
        );
    }
}

fn fixture_report() -> (Report, Queue, i64, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let (q, batch) = fixture(&dir.path().join("q.db"));
    let report = Report::load(&q, batch, REPORT_AT).unwrap();
    (report, q, batch, dir)
}

#[test]
fn every_format_of_a_finished_batch_matches_its_golden_file() {
    let (report, ..) = fixture_report();
    for format in Format::ALL {
        let text = report.render(format).unwrap();
        assert_golden(&format!("report.{format}"), &text);
    }
}

#[test]
fn every_format_of_a_batch_followed_to_protection_matches_its_golden_file() {
    let (report, ..) = protection_report();
    for format in Format::ALL {
        let text = report.render(format).unwrap();
        assert_golden(&format!("protection.{format}"), &text);
    }
}

fn plan_fixture(q: &Queue, batch: i64) -> PlanReport {
    let jobs = q.jobs(batch).unwrap();
    let row = |i: usize, action: PlanAction| PlanRow {
        job_id: jobs[i].id,
        vm_name: jobs[i].vm_label().to_string(),
        vm_id: Some(vm(1001 + i as u32)),
        action,
        reason: None,
        target_site: None,
        target_datastore: jobs[i].spec.target_datastore.clone(),
        storage_policy: jobs[i].spec.storage_policy.clone(),
        replication_server: None,
        disks: 0,
        excluded_disks: Vec::new(),
        capacity_bytes: 0,
        warnings: Vec::new(),
        change_ticket: jobs[i].spec.change_ticket.clone(),
        notes: jobs[i].spec.notes.clone(),
    };
    let rows = vec![
        PlanRow {
            disks: 3,
            excluded_disks: vec!["NVMe disk 1".into()],
            capacity_bytes: 40 << 30,
            warnings: vec!["not replicated (unsupported): NVMe disk 1".into()],
            ..row(0, PlanAction::Configure)
        },
        PlanRow {
            reason: Some("datastore 'ds-full-01' has 12.0 GiB free; this VM needs 40.0 GiB".into()),
            ..row(2, PlanAction::Fail)
        },
        PlanRow {
            vm_id: None,
            reason: Some("VM `ghost-005` not found on vc-site-a.corp.local".into()),
            ..row(4, PlanAction::Fail)
        },
        PlanRow {
            reason: Some("not suitable for replication: VM is a template".into()),
            ..row(7, PlanAction::Skip)
        },
    ];
    // One pairing a run of this queue measured, one that no run did.
    let measured = MeasuredLink {
        pairing_id: "pairing-a-b".into(),
        run_id: "run-1".into(),
        run_started_at: T0 - 86_400_000,
        mbps: 940.0,
        at: T0 - 80_000_000,
        in_sync: 9,
        pace_mbps: 160.0,
        samples: 120,
    };
    let gib = |n: u64| n << 30;
    let link = vec![
        WaveForecast::of(
            "pairing-a-b",
            Some("vc-site-b.corp.local"),
            &[gib(40), gib(20), gib(60), gib(80)],
            Some(measured),
        ),
        WaveForecast::of("pairing-a-c", Some("vc <site-c>"), &[gib(10)], None),
    ];
    PlanReport::new(&q.batch(batch).unwrap(), &jobs, rows, 9, REPORT_AT).with_link(link)
}

#[test]
fn every_format_of_a_plan_matches_its_golden_file() {
    let (_, q, batch, _dir) = fixture_report();
    let plan = plan_fixture(&q, batch);
    for format in Format::ALL {
        let text = plan.render(format).unwrap();
        assert_golden(&format!("plan.{format}"), &text);
    }
}

#[test]
fn the_json_report_agrees_with_the_queue_job_by_job_and_count_by_count() {
    let (report, q, batch, _dir) = fixture_report();
    let doc: Value = serde_json::from_str(&report.render(Format::Json).unwrap()).unwrap();
    assert_eq!(doc["schema_version"], 2);
    assert_eq!(doc["kind"], "batch");
    let b = q.batch(batch).unwrap();
    assert_eq!(doc["batch"]["id"], b.id);
    assert_eq!(doc["batch"]["name"], b.name.as_str());
    assert_eq!(doc["batch"]["input_sha256"], json!(b.input_sha256));
    assert_eq!(doc["batch"]["settings"], b.settings);

    let counts = q.counts(batch).unwrap();
    let json_counts = doc["summary"]["counts"].as_object().unwrap();
    assert_eq!(
        json_counts.len(),
        JobState::ALL.len(),
        "every state present"
    );
    for (state, n) in &counts {
        assert_eq!(json_counts[state.as_str()], *n, "count of {state}");
    }
    assert_eq!(doc["summary"]["total"], counts.values().sum::<u64>());
    let failed = counts[&JobState::Failed];
    let grouped: u64 = doc["failures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["count"].as_u64().unwrap())
        .sum();
    assert_eq!(grouped, failed, "every failed job is in one group");

    let jobs = q.jobs(batch).unwrap();
    let rows = doc["jobs"].as_array().unwrap();
    assert_eq!(rows.len(), jobs.len());
    for (job, row) in jobs.iter().zip(rows) {
        let at = |ms: Option<i64>| {
            ms.map(|ms| {
                jiff::Timestamp::from_millisecond(ms)
                    .unwrap()
                    .strftime("%Y-%m-%dT%H:%M:%S%.3fZ")
                    .to_string()
            })
        };
        let expected = json!({
            "job_id": job.id,
            "vm_name": job.vm_label(),
            "vm_id": job.checkpoint.vm_id.clone().or_else(|| job.spec.vm.id.clone()),
            "state": job.state.as_str(),
            "step": job.step.as_str(),
            "reason": job.reason,
            "last_error": job.last_error,
            "http_status": job.last_http_status,
            "replication_id": job.checkpoint.replication_id,
            "task_id": job.checkpoint.task_id,
            "attempts": job.attempt,
            "in_doubt": job.in_doubt,
            "started_at": at(job.started_at),
            "finished_at": at(job.finished_at),
            "change_ticket": job.spec.change_ticket,
            "notes": job.spec.notes,
            "target_datastore": job.spec.target_datastore,
            "storage_policy": job.spec.storage_policy,
            "rpo_minutes": job.spec.settings.rpo,
        });
        for (key, value) in expected.as_object().unwrap() {
            assert_eq!(&row[key], value, "job {} {key}", job.id);
        }
    }
    let capacity: i64 = jobs
        .iter()
        .filter(|j| j.state == JobState::Succeeded)
        .flat_map(|j| j.checkpoint.disks.iter().flatten())
        .filter(|d| d.supported_for_replication != Some(false))
        .filter_map(|d| d.capacity)
        .sum::<i64>()
        * 1024;
    assert_eq!(doc["summary"]["replicated_capacity_bytes"], capacity);
    assert_eq!(capacity, 70 << 30);
    let usage = q.api_usage(batch).unwrap();
    assert_eq!(
        doc["summary"]["api_total"]["calls"],
        usage.values().map(|u| u.calls).sum::<u64>()
    );
    assert_eq!(doc["summary"]["relogins"], 1);
    assert_eq!(doc["runs"]["count"], 2);
}

#[test]
fn the_json_report_agrees_with_the_queue_on_every_replication() {
    let (report, q, batch, _dir) = protection_report();
    let doc: Value = serde_json::from_str(&report.render(Format::Json).unwrap()).unwrap();
    assert_eq!(
        doc["schema_version"], 2,
        "readiness gained values and protected_at is the appliance's time: version 2"
    );
    let at = |ms: i64| {
        jiff::Timestamp::from_millisecond(ms)
            .unwrap()
            .strftime("%Y-%m-%dT%H:%M:%S%.3fZ")
            .to_string()
    };

    let counts = q.readiness_counts(batch).unwrap();
    let summary = &doc["summary"]["protection"];
    assert_eq!(summary["configured"], counts.configured);
    assert_eq!(summary["not_followed"], counts.not_followed);
    assert_eq!(summary["rpo_violation"], counts.rpo_violation);
    assert_eq!(summary["sync_copied_bytes"], counts.sync_bytes_done);
    assert_eq!(summary["sync_total_bytes"], counts.sync_bytes_total);
    assert_eq!(summary["last_seen_at"], json!(counts.last_seen_at.map(at)));
    for readiness in Readiness::ALL {
        let key = serde_json::to_value(readiness).unwrap();
        let key = key.as_str().unwrap();
        assert_eq!(summary["counts"][key], counts.count(readiness), "{key}");
        assert!(
            counts.count(readiness) > 0,
            "the fixture has every readiness: {key}"
        );
    }

    let records = q.protection(batch).unwrap();
    let rows = doc["jobs"].as_array().unwrap();
    let followed: Vec<&Value> = rows.iter().filter(|r| !r["protection"].is_null()).collect();
    assert_eq!(followed.len(), records.len());
    for p in &records {
        let row = rows.iter().find(|r| r["job_id"] == p.job).unwrap();
        // When it became protected is the appliance's time where it said.
        let protected = p.protected_at.map(|seen| p.synced_at.unwrap_or(seen));
        let expected = json!({
            "readiness": serde_json::to_value(p.readiness()).unwrap(),
            "unconfigured_by": p.operated.unconfigured_by,
            "paused_by": p.paused_by(),
            "replication_id": p.replication_id,
            "status": p.status,
            "configuration_state": p.configuration_state,
            "configured_at": at(p.configured_at),
            "protected_at": protected.map(at),
            "protected_at_source": p.protected_at.map(|_| {
                if p.synced_at.is_some() { "appliance" } else { "observed" }
            }),
            "first_seen_protected_at": p.protected_at.map(at),
            "synced_at": p.synced_at.map(at),
            "initial_sync_duration_ms": p.sync_duration_s.map(|s| s * 1000),
            "replication_server": p.replication_server,
            "time_to_protected_ms": protected.map(|t| (t - p.configured_at).max(0)),
            "copied_bytes": p.bytes_done,
            "total_bytes": p.bytes_total,
            "rpo_violation": p.rpo_violation,
            "error": p.error,
            "seen_at": at(p.updated_at),
        });
        assert_eq!(row["protection"], expected, "job {}", p.job);
    }
    for entry in doc["timeline"].as_array().unwrap() {
        let job = entry["job_id"].as_i64().unwrap();
        let events: Vec<Value> = q
            .replication_events(job)
            .unwrap()
            .into_iter()
            .map(|e| {
                json!({
                    "at": at(e.at),
                    "from_status": e.from_status,
                    "to_status": e.to_status,
                    "message": e.message,
                })
            })
            .collect();
        assert_eq!(entry["replication_events"], json!(events), "job {job}");
    }
}

#[test]
fn the_json_report_holds_the_link_series_the_queue_recorded_and_the_html_charts_it() {
    let (report, q, batch, _dir) = protection_report();
    let doc: Value = serde_json::from_str(&report.render(Format::Json).unwrap()).unwrap();
    let recorded = q.link_samples(batch).unwrap();
    assert!(!recorded.is_empty());
    let link = doc["link"].as_array().unwrap();
    assert_eq!(link.len(), 1, "one pairing");
    assert_eq!(link[0]["pairing_id"], "pairing-a-b");
    let rfc3339 = |ms: i64| vrbulk::report::UtcTime(ms).rfc3339();
    let expected: Vec<Value> = recorded
        .iter()
        .map(|s| {
            json!({
                "at": rfc3339(s.at), "span_ms": s.span_ms, "run_id": s.run_id,
                "in_sync": s.in_sync, "cap": s.cap, "mbps": s.mbps,
                "pace_mbps": s.pace_mbps, "bytes_left": s.bytes_left,
            })
        })
        .collect();
    assert_eq!(link[0]["samples"], json!(expected));
    let best = recorded.iter().map(|s| s.mbps).fold(0.0, f64::max);
    assert_eq!(link[0]["peak_mbps"], json!(best));
    assert_eq!(link[0]["cap_min"], json!(2));
    assert_eq!(link[0]["cap_max"], json!(8));

    // The chart is drawn by vrbulk itself: one point per measurement, nothing fetched.
    let html = report.render(Format::Html).unwrap();
    let section = html
        .split("<section id=\"link\">")
        .nth(1)
        .and_then(|s| s.split("</section>").next())
        .expect("a link section");
    assert_eq!(section.matches("<circle").count(), recorded.len());
    assert_eq!(section.matches("<path").count(), 3, "Mbit/s, syncs, cap");
    assert!(!html.contains("<script") && !html.contains("src=\"http"));

    // A batch no run measured says nothing of a link.
    let (plain, ..) = fixture_report();
    assert!(plain.link.is_empty());
    assert!(!plain.render(Format::Html).unwrap().contains("id=\"link\""));
    assert!(!plain
        .render(Format::Md)
        .unwrap()
        .contains("Replication link"));
}

#[test]
fn configured_vms_nothing_has_followed_are_not_called_protected() {
    let (report, ..) = fixture_report();
    let p = &report.summary.protection;
    assert_eq!((p.configured, p.not_followed), (3, 3));
    assert!(report.jobs.iter().all(|j| j.protection.is_none()));
    let says = "3 VMs were configured and their replications have not been followed since, so \
                this report cannot say whether any is protected:";
    let md = report.render(Format::Md).unwrap();
    assert!(
        md.contains(&format!(
            "{says} `vrbulk watch --batch 1` follows them until they are."
        )),
        "{md}"
    );
    assert!(!md.contains("ready for cutover"), "{md}");
    let html = report.render(Format::Html).unwrap();
    assert!(
        html.contains(&format!(
            "{says} <code>vrbulk watch --batch 1</code> follows them until they are."
        )),
        "html says so"
    );
    let csv = report.render(Format::Csv).unwrap();
    assert_eq!(csv.matches(",not_followed,").count(), 3, "{csv}");
}

#[test]
fn a_report_of_a_batch_still_running_says_where_it_stands() {
    let dir = tempfile::tempdir().unwrap();
    let (mut q, now) = queue_at(&dir.path().join("q.db"));
    let specs: Vec<JobSpec> = ["a", "b", "c", "d"]
        .iter()
        .enumerate()
        .map(|(i, n)| spec(i, row(n, "ds-gold-01")))
        .collect();
    let batch = q.create_batch(&new_batch("wave 2"), &specs).unwrap();
    q.start_run("run-1", batch, OWNER, "run", None).unwrap();
    let mut d = Driver {
        q: &mut q,
        now: &now,
    };
    d.replicated(
        batch,
        &vm(1),
        disks(&vm(1), &[("Hard disk 1", GIB_KB, true)]),
        1,
    );
    let running = d.claim(batch);
    d.resolved(&running, &vm(2), Vec::new());
    d.tick(10);

    let report = Report::load(&q, batch, now.load(Ordering::SeqCst)).unwrap();
    assert!(report.progress.in_progress);
    assert_eq!((report.progress.done, report.progress.total), (1, 4));
    let md = report.render(Format::Md).unwrap();
    assert!(
        md.contains("**In progress: 1 of 4 done.**") && md.contains("2 pending, 1 running"),
        "{md}"
    );
    let html = report.render(Format::Html).unwrap();
    assert!(html.contains("In progress: 1 of 4 done."), "html says so");
    let doc: Value = serde_json::from_str(&report.render(Format::Json).unwrap()).unwrap();
    assert_eq!(
        doc["progress"],
        json!({"in_progress": true, "done": 1, "total": 4})
    );
    let unfinished = &doc["timeline"][1];
    assert!(unfinished["started_at"].is_string() && unfinished["ended_at"].is_null());
    // A run that has not ended counts until the newest event.
    assert!(doc["runs"]["wall_time_ms"].as_i64().unwrap() > 0);
    assert!(doc["runs"]["last_outcome"].is_null());
}

#[test]
fn the_report_command_writes_each_format_and_picks_it_from_the_extension() {
    let (_, q, _, dir) = fixture_report();
    let db = q.path().to_path_buf();
    drop(q);
    let out = Cmd::new()
        .args(["--db".as_ref(), db.as_os_str(), "report".as_ref()])
        .assert_exit(0)
        .stdout();
    assert!(out.starts_with("# Replication report: batch 1"), "{out}");
    for (file, first) in [
        ("r.html", "<!DOCTYPE html>"),
        ("r.csv", "job_id,input_line,vm_name"),
        ("r.json", "{"),
        ("r.md", "# Replication report"),
    ] {
        let path = dir.path().join(file);
        Cmd::new()
            .args([
                "--db".as_ref(),
                db.as_os_str(),
                "report".as_ref(),
                "-o".as_ref(),
                path.as_os_str(),
            ])
            .assert_exit(0);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with(first), "{file}: {}", &text[..40]);
    }
    let json = Cmd::new()
        .db(&db)
        .args(["report", "--batch", "1", "--format", "json"])
        .assert_exit(0)
        .stdout();
    let doc: Value = serde_json::from_str(&json).unwrap();
    assert_eq!(doc["batch"]["id"], 1);
    Cmd::new()
        .db(&db)
        .args(["report", "--format", "pdf"])
        .assert_exit(2)
        .stderr_contains("md, html, csv or json");
    Cmd::new()
        .db(&db)
        .args(["report", "--batch", "9"])
        .assert_exit(2)
        .stderr_contains("--batch 9");
}

#[test]
fn report_to_a_file_it_cannot_write_is_refused_and_nothing_is_written() {
    let (_, q, _, dir) = fixture_report();
    let db = q.path().to_path_buf();
    drop(q);
    // Issue 13: `-o x.pdf` used to write Markdown into x.pdf.
    let pdf = dir.path().join("x.pdf");
    Cmd::new()
        .db(&db)
        .args(["report".as_ref(), "-o".as_ref(), pdf.as_os_str()])
        .assert_exit(2)
        .stderr_contains("vrbulk writes md, html, csv or json, not `.pdf`");
    assert!(!pdf.exists(), "nothing written");
    let json = dir.path().join("r.json");
    Cmd::new()
        .db(&db)
        .args([
            "report".as_ref(),
            "--format".as_ref(),
            "html".as_ref(),
            "-o".as_ref(),
            json.as_os_str(),
        ])
        .assert_exit(2)
        .stderr_contains("names a json file but --format is html");
    assert!(!json.exists(), "nothing written");
    // Said outright, a format goes into a file of any name.
    let txt = dir.path().join("notes.txt");
    Cmd::new()
        .db(&db)
        .args([
            "report".as_ref(),
            "--format".as_ref(),
            "md".as_ref(),
            "-o".as_ref(),
            txt.as_os_str(),
        ])
        .assert_exit(0);
    assert!(std::fs::read_to_string(&txt)
        .unwrap()
        .starts_with("# Replication report"));
}

#[tokio::test]
async fn plan_writes_its_dry_run_through_the_report_renderers() {
    let sim: Simulator = start(SimConfig::fast()).await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("q.db");
    let specs: Vec<JobSpec> = sim
        .inventory()
        .vms
        .iter()
        .take(6)
        .enumerate()
        .map(|(i, v)| JobSpec {
            vm: VmRef {
                name: Some(v.vm.name.clone()),
                id: None,
            },
            ..spec(i, row("x", "ds-gold-01"))
        })
        .collect();
    Queue::open(&db)
        .unwrap()
        .create_batch(&new_batch("plan me"), &specs)
        .unwrap();
    let config = config_for(&sim, dir.path(), "");
    let out = dir.path().join("plan.html");
    let (db2, out2) = (db.clone(), out.clone());
    tokio::task::spawn_blocking(move || {
        Cmd::new()
            .env("VRBULK_PASSWORD", "VMware1!")
            .db(&db2)
            .config(&config)
            .args(["plan".as_ref(), "-o".as_ref(), out2.as_os_str()])
            .assert_exit(0);
        let json = Cmd::new()
            .env("VRBULK_PASSWORD", "VMware1!")
            .db(&db2)
            .config(&config)
            .args(["plan", "--format", "json"])
            .assert_exit(0)
            .stdout();
        let doc: Value = serde_json::from_str(&json).unwrap();
        assert_eq!(doc["schema_version"], 2);
        assert_eq!(doc["kind"], "plan");
        assert_eq!(doc["jobs"].as_array().unwrap().len(), 6);
        assert_eq!(doc["batch"]["change_tickets"], json!(["CHG0002"]));
    })
    .await
    .unwrap();
    let html = std::fs::read_to_string(&out).unwrap();
    assert!(
        html.starts_with("<!DOCTYPE html>") && html.contains("Dry run: nothing was configured")
    );
    assert_eq!(sim.stats().calls.get("configureReplication"), None);
}

/// A batch of `n` jobs in every final state, for the browser and the aggregated timeline.
fn big_batch(path: &Path, n: usize) -> (Queue, i64) {
    let (mut q, now) = queue_at(path);
    let specs: Vec<JobSpec> = (0..n)
        .map(|i| {
            let name: &'static str = Box::leak(format!("vm-{i:05}").into_boxed_str());
            spec(i, row(name, "ds-gold-01"))
        })
        .collect();
    let batch = q.create_batch(&new_batch("big"), &specs).unwrap();
    for i in 0..n {
        now.fetch_add(1_000 + (i as i64 % 7) * 300, Ordering::SeqCst);
        let lease = q.claim(Some(batch), 1, OWNER, LEASE).unwrap()[0]
            .lease()
            .unwrap();
        match i % 10 {
            0 => q.fail(&lease, &format!("VM `vm-{i:05}` not found on vc-a"), None),
            1 => q.skip(&lease, "already replicated: GID-1 (OK)", None),
            _ => q.succeed(&lease, Some("GID-x"), "replication configured"),
        }
        .unwrap();
    }
    // Then the initial syncs: most end one after another, a few are still copying, one VM in
    // ten is powered off and one in twenty in error.
    let configured: Vec<i64> = q
        .jobs(batch)
        .unwrap()
        .iter()
        .filter(|j| j.state == JobState::Succeeded)
        .map(|j| j.id)
        .collect();
    for (k, job) in configured.iter().enumerate() {
        now.fetch_add(20_000, Ordering::SeqCst);
        let sighting = match k % 20 {
            3 | 13 => seen(*job, "NOT_ACTIVE", None, false),
            7 => ReplicationSeen {
                error: Some("Datastore ds-gold-01 is inaccessible".into()),
                ..seen(*job, "ERROR", Some((2, 40)), false)
            },
            _ if k * 5 > configured.len() * 4 => {
                seen(*job, "INITIAL_FULL_SYNC", Some((10, 40)), false)
            }
            _ => seen(*job, "OK", Some((40, 40)), true),
        };
        q.record_protection(&[sighting]).unwrap();
    }
    (q, batch)
}

#[test]
fn many_jobs_make_an_aggregated_timeline() {
    let dir = tempfile::tempdir().unwrap();
    let (q, batch) = big_batch(&dir.path().join("q.db"), 300);
    let html = Report::load(&q, batch, T0 + 86_400_000)
        .unwrap()
        .render(Format::Html)
        .unwrap();
    assert!(html.contains("300 jobs are too many for one bar each"));
}

/// Names the browser the browser tests use, instead of looking for one (a path that is no file
/// counts as no browser: how to see a test skip on a machine that has one).
const BROWSER_VAR: &str = "VRBULK_TEST_BROWSER";

/// Chromium: where [`BROWSER_VAR`] says, else where Debian installs it or on PATH.
fn find_browser() -> Option<PathBuf> {
    if let Some(named) = std::env::var_os(BROWSER_VAR) {
        return Some(PathBuf::from(named)).filter(|p| p.is_file());
    }
    let fixed = PathBuf::from("/usr/bin/chromium");
    if fixed.is_file() {
        return Some(fixed);
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join("chromium"))
            .find(|p| p.is_file())
    })
}

/// The browser for test `test`; without one, says the test is skipped where `cargo test` shows
/// it, or fails under CI (which installs one: `.ci/run`). libtest has no way for a test to skip
/// itself at run time, and an `#[ignore]` decided at build time would take a build script for
/// the whole crate, run again whenever a browser comes or goes. So the line goes to the
/// process's stderr itself, past the capture that hides a passing test's `eprintln!`; the test
/// still counts as passed.
fn browser_or_skip(test: &str) -> Option<PathBuf> {
    use std::io::Write as _;
    let found = find_browser();
    if found.is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI is set but no browser was found ({BROWSER_VAR}, /usr/bin/chromium or chromium \
             on PATH): .ci/run installs Debian's chromium"
        );
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED {test}: no chromium ({BROWSER_VAR}, /usr/bin/chromium or on PATH); \
             `apt-get install chromium` to run it"
        );
    }
    found
}

/// A child process that is killed and reaped when dropped: a test that fails while the
/// browser runs leaves none behind.
struct Reaped(std::process::Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Takes a headless screenshot of `page`; returns the PNG and what the browser logged.
fn screenshot(browser: &Path, page: &Path, dir: &Path) -> (PathBuf, String) {
    let png = dir.join(format!(
        "{}.png",
        page.file_stem().unwrap().to_string_lossy()
    ));
    let profile = tempfile::tempdir().unwrap();
    let log = dir.join("chromium.log");
    let mut child = Reaped(
        Command::new(browser)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-dev-shm-usage",
                "--hide-scrollbars",
                "--enable-logging=stderr",
                "--v=0",
                "--virtual-time-budget=3000",
                "--window-size=1200,1600",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg(format!("--screenshot={}", png.display()))
            .arg(format!("file://{}", page.display()))
            .stdout(std::fs::File::create(dir.join("chromium.out")).unwrap())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("chromium starts"),
    );
    eventually_blocking(
        Duration::from_secs(120),
        format!("chromium to screenshot {}", page.display()),
        || child.0.try_wait().unwrap().is_some(),
    );
    (png, std::fs::read_to_string(&log).unwrap_or_default())
}

/// Share of pixels that are not (nearly) white.
fn ink(png: &Path) -> (f64, u32, u32) {
    let mut decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(png).unwrap()));
    decoder.set_transformations(png::Transformations::normalize_to_color8());
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let frame = reader.next_frame(&mut buf).unwrap();
    let channels = frame.color_type.samples();
    let pixels = &buf[..frame.buffer_size()];
    let total = pixels.len() / channels;
    let inked = pixels
        .chunks(channels)
        .filter(|p| p.iter().take(3.min(channels)).any(|c| *c < 235))
        .count();
    (inked as f64 / total as f64, frame.width, frame.height)
}

#[test]
fn the_html_report_renders_in_a_real_browser_without_console_errors() {
    let Some(browser) =
        browser_or_skip("report::the_html_report_renders_in_a_real_browser_without_console_errors")
    else {
        return;
    };
    let out = tempfile::tempdir().unwrap();
    let (report, q, batch, _dir) = fixture_report();
    let small = out.path().join("report.html");
    std::fs::write(&small, report.render(Format::Html).unwrap()).unwrap();
    let plan = out.path().join("plan.html");
    std::fs::write(&plan, plan_fixture(&q, batch).render(Format::Html).unwrap()).unwrap();
    let (protection, ..) = protection_report();
    let protected = out.path().join("protection.html");
    std::fs::write(&protected, protection.render(Format::Html).unwrap()).unwrap();
    let (big_q, big) = big_batch(&out.path().join("big.db"), 400);
    let large = out.path().join("large.html");
    let html = Report::load(&big_q, big, T0 + 86_400_000)
        .unwrap()
        .render(Format::Html)
        .unwrap();
    std::fs::write(&large, html).unwrap();
    let (wave, undo, ..) = crate::report_operations::operations_reports();
    let since = out.path().join("operations_since.html");
    std::fs::write(&since, wave.render(Format::Html).unwrap()).unwrap();
    let operation = out.path().join("operation.html");
    std::fs::write(&operation, undo.render(Format::Html).unwrap()).unwrap();

    for page in [&small, &plan, &protected, &large, &since, &operation] {
        let html = std::fs::read_to_string(page).unwrap();
        assert!(!html.contains("<script"), "no script at all");
        assert!(
            !html.contains("http://") && !html.contains("https://"),
            "nothing fetched from the network"
        );
        assert!(
            !html.contains(" src=") && !html.contains("<link"),
            "no external asset"
        );

        let (png, log) = screenshot(&browser, page, out.path());
        assert!(
            png.is_file(),
            "no screenshot of {}; log:\n{log}",
            page.display()
        );
        let (share, w, h) = ink(&png);
        assert_eq!((w, h), (1200, 1600), "screenshot size");
        assert!(
            share > 0.02,
            "{} looks blank: {:.2}% of pixels are not white",
            page.display(),
            share * 100.0
        );
        let console: Vec<&str> = log
            .lines()
            .filter(|l| l.contains("CONSOLE") || l.contains("Uncaught"))
            .collect();
        assert!(
            console.is_empty(),
            "{} logged to the console:\n{}",
            page.display(),
            console.join("\n")
        );
        if let Some(keep) = std::env::var_os("VRBULK_KEEP_SCREENSHOTS") {
            let keep = PathBuf::from(keep);
            std::fs::create_dir_all(&keep).unwrap();
            std::fs::copy(&png, keep.join(png.file_name().unwrap())).unwrap();
            std::fs::copy(page, keep.join(page.file_name().unwrap())).unwrap();
        }
    }
}

/// A wave with the appliance's real id shapes (replication `GID-<uuid>`, task `HTask:<uuid>`),
/// long names and long reasons, and the undo of it: what a VM table must fit on one screen.
fn wide_fixture(path: &Path) -> (Queue, i64, i64) {
    let (mut q, now) = queue_at(path);
    let uuid = |n: u32| format!("4c8a7f1e-3b2d-4e5f-9a8b-7c6d5e4f{n:04}");
    let specs: Vec<JobSpec> = (0..6)
        .map(|i| {
            let name: &'static str =
                Box::leak(format!("erp-production-database-node-{i:02}").into_boxed_str());
            let r = Row {
                policy: Some("VR Gold Encrypted Tier 1 (stretched)"),
                mpit: (24, 10),
                ticket: Some("CHG0012345-emergency"),
                notes: Some("owner: finance platform team; cutover window Saturday 02:00"),
                ..row(name, "dr-vmfs-tier1-gold-datastore-01")
            };
            spec(i, r)
        })
        .collect();
    let wave = q.create_batch(&new_batch("wide wave"), &specs).unwrap();
    let mut d = Driver {
        q: &mut q,
        now: &now,
    };
    for n in 0..6u32 {
        let lease = d.claim(wave);
        let labels: Vec<(&str, i64, bool)> = vec![
            ("Hard disk 1", 200 * GIB_KB, true),
            ("Hard disk 2", 500 * GIB_KB, true),
            ("Hard disk 3", 900 * GIB_KB, true),
            ("NVMe disk 1", 100 * GIB_KB, false),
        ];
        let c = d.resolved(&lease, &vm(4000 + n), disks(&vm(4000 + n), &labels));
        let c = d.submitted(&lease, c, &format!("HTask:{}", uuid(n)));
        d.tick(30);
        if n == 5 {
            d.q.fail(
                &lease,
                "Insufficient disk space on datastore 'dr-vmfs-tier1-gold-datastore-01': 120.4 \
                 GiB free, 1.6 TiB required for virtual machine 'erp-production-database-node-05'",
                None,
            )
            .unwrap();
            continue;
        }
        d.q.checkpoint(&lease, Step::Verify, &c).unwrap();
        d.q.succeed(&lease, Some(&format!("GID-{}", uuid(n))), "configured")
            .unwrap();
    }
    let jobs: Vec<vrbulk::queue::OperationJob> =
        d.q.jobs(wave)
            .unwrap()
            .iter()
            .filter(|j| j.state == JobState::Succeeded)
            .map(|j| vrbulk::queue::OperationJob {
                acts_on_job: j.id,
                spec: vrbulk::domain::OperationSpec::Unconfigure {
                    retain_replica_disks: true,
                    local_only: false,
                },
            })
            .collect();
    let undo =
        d.q.create_operation_batch(
            &new_batch("undo wide wave"),
            vrbulk::domain::Operation::Unconfigure,
            wave,
            &jobs,
        )
        .unwrap();
    for n in 0..5u32 {
        let lease = d.claim(undo);
        let mut c = d.q.job(lease.job).unwrap().checkpoint;
        for step in [Step::ResolveTarget, Step::Submit] {
            d.q.checkpoint(&lease, step, &c).unwrap();
        }
        c.task_id = Some(format!("HTask:{}", uuid(100 + n)));
        d.q.checkpoint(&lease, Step::AwaitTask, &c).unwrap();
        d.tick(10);
        if n == 4 {
            d.q.skip(
                &lease,
                "the VM's replication is now GID-9f8e7d6c-5b4a-3928-1706-f5e4d3c2b1a0, not \
                 GID-4c8a7f1e-3b2d-4e5f-9a8b-7c6d5e4f0004 that batch 1 configured: left alone",
                None,
            )
            .unwrap();
            continue;
        }
        d.q.checkpoint(&lease, Step::Verify, &c).unwrap();
        let rep = c.replication_id.clone();
        d.q.succeed(&lease, rep.as_deref(), "unconfigured").unwrap();
    }
    (q, wave, undo)
}

/// How wide `page` lays out in a 1280 px browser window: the page's own width, and each
/// horizontally scrolling table (`.scroll`) that overflows, as `section:content/box`. The
/// report has no script; a copy gets one that measures and writes the result in the title.
fn layout_at_1280(browser: &Path, page: &str, dir: &Path) -> (u32, Vec<String>) {
    let measure = "<script>window.addEventListener('load', () => { const over = \
        [...document.querySelectorAll('.scroll')].filter(e => e.scrollWidth > e.clientWidth + 1)\
        .map(e => e.parentElement.id + ':' + e.scrollWidth + '/' + e.clientWidth); \
        document.title = 'LAYOUT ' + document.documentElement.scrollWidth + ' ' + \
        over.join(' '); });</script>";
    let copy = dir.join("measured.html");
    std::fs::write(&copy, page.replace("</body>", &format!("{measure}</body>"))).unwrap();
    let profile = tempfile::tempdir().unwrap();
    let out = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-dev-shm-usage",
            "--window-size=1280,900",
            "--virtual-time-budget=3000",
            "--dump-dom",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(format!("file://{}", copy.display()))
        .output()
        .expect("chromium starts");
    let dom = String::from_utf8_lossy(&out.stdout);
    let title = dom
        .split("<title>LAYOUT ")
        .nth(1)
        .and_then(|t| t.split("</title>").next())
        .unwrap_or_else(|| panic!("no measurement in the page:\n{dom}"));
    let mut parts = title.split_whitespace();
    let width = parts.next().unwrap().parse().unwrap();
    (width, parts.map(str::to_owned).collect())
}

#[test]
fn the_html_vm_tables_fit_a_1280_px_screen_with_real_ids_and_long_names() {
    let Some(browser) = browser_or_skip(
        "report::the_html_vm_tables_fit_a_1280_px_screen_with_real_ids_and_long_names",
    ) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (q, wave, undo) = wide_fixture(&dir.path().join("q.db"));
    for batch in [wave, undo] {
        let html = Report::load(&q, batch, REPORT_AT)
            .unwrap()
            .render(Format::Html)
            .unwrap();
        let (width, overflowing) = layout_at_1280(&browser, &html, dir.path());
        assert!(
            overflowing.is_empty(),
            "batch {batch}: tables scroll sideways at 1280 px: {overflowing:?}"
        );
        assert!(width <= 1280, "batch {batch}: the page is {width} px wide");
    }
}
