//! Reports of day-2 operations: golden files for an operation batch's report and for the
//! configure batch it acted on (which lists the operations applied since), in every format,
//! built through the library with an injected clock like the other report fixtures; the
//! reconfigure's words; and the effective settings of a run that recorded them.

use std::path::Path;

use serde_json::{json, Value};
use vrbulk::domain::{Operation, OperationSpec, SettingsChange};
use vrbulk::queue::{JobState, NewBatch, OperationJob, Queue, Step};
use vrbulk::report::{Format, Report};
use vrbulk::vr::OpUsage;

use crate::report::{assert_golden, disks, new_batch, queue_at, row, spec, vm, Driver, GIB_KB, T0};

/// How one job of an operation batch ends.
enum Outcome {
    Done,
    Skip(&'static str),
    Fail(&'static str, Option<u16>),
}

impl Driver<'_> {
    /// Creates a batch of `spec` on every job of `wave` that `acts_on` keeps, as `vrbulk undo`,
    /// `reconfigure`, `pause`, … do.
    fn operation(&mut self, wave: i64, name: &str, spec: &OperationSpec) -> i64 {
        self.tick(600);
        let jobs: Vec<OperationJob> = self
            .q
            .jobs(wave)
            .unwrap()
            .into_iter()
            .filter(|j| j.state == JobState::Succeeded)
            .map(|j| OperationJob {
                acts_on_job: j.id,
                spec: spec.clone(),
            })
            .collect();
        let batch = NewBatch {
            input_kind: vrbulk::queue::InputKind::Inventory,
            input_path: None,
            input_sha256: None,
            settings: json!({"acts_on": wave, "vm": ["*"]}),
            ..new_batch(name)
        };
        self.q
            .create_operation_batch(&batch, spec.operation(), wave, &jobs)
            .unwrap()
    }

    /// Runs each job of operation batch `batch` to `outcomes`, in job order, each with its task.
    fn operated(&mut self, batch: i64, task: u32, outcomes: &[Outcome]) {
        let run = format!("run-op-{batch}");
        self.q
            .start_run(&run, batch, &format!("jump02:5151:{run}"), "run", None)
            .unwrap();
        self.q
            .record_discovery(
                batch,
                "8a5b2f3e-pairing-0001",
                &json!({"local_vc": "vc-site-a.corp.local", "remote_vc": "vc-site-b.corp.local"}),
            )
            .unwrap();
        let operation = self.q.batch(batch).unwrap().operation;
        for (i, outcome) in outcomes.iter().enumerate() {
            let lease = self.claim(batch);
            let mut c = self.q.job(lease.job).unwrap().checkpoint;
            let replication = c.replication_id.clone().unwrap_or_default();
            self.tick(1);
            for step in [Step::ResolveTarget, Step::Submit] {
                self.q.checkpoint(&lease, step, &c).unwrap();
            }
            match outcome {
                Outcome::Done => {
                    self.tick(2);
                    c.task_id = Some(format!("HTask:{operation}-{:04}", task + i as u32));
                    self.q.checkpoint(&lease, Step::AwaitTask, &c).unwrap();
                    self.tick(20);
                    self.q.checkpoint(&lease, Step::Verify, &c).unwrap();
                    self.tick(1);
                    let done = vrbulk::report::done_word(operation);
                    self.q
                        .succeed(
                            &lease,
                            Some(&replication),
                            &format!("replication {replication} {done}"),
                        )
                        .unwrap();
                }
                Outcome::Skip(reason) => self.q.skip(&lease, reason, None).unwrap(),
                Outcome::Fail(reason, status) => self.q.fail(&lease, reason, *status).unwrap(),
            }
        }
        let sent = outcomes.len() as u64;
        let usage = [
            ("getReplications", 1),
            ("getTaskInfo", sent + 2),
            (&*format!("{operation}Replication"), sent),
        ]
        .into_iter()
        .map(|(op, calls)| {
            let u = OpUsage {
                calls,
                ..OpUsage::default()
            };
            (op.to_string(), u)
        })
        .collect();
        self.q.add_api_usage(batch, &usage).unwrap();
        self.tick(1);
        self.q.finish_run(&run, "done", 0).unwrap();
    }
}

/// The golden waves of day-2 operations. Batch 1 configures four VMs; batch 2 sets their RPO to
/// 15 minutes with network compression; batch 3 pauses them (web-04 was paused already, so the
/// appliance refused and the job was skipped); batch 4 undoes the wave keeping the replica
/// disks: app-01 and db-03 unconfigured, app-02 left alone because someone re-created its
/// replication since, web-04 refused by the appliance.
fn operations_fixture(path: &Path) -> (Queue, [i64; 4]) {
    let (mut q, now) = queue_at(path);
    let names = ["app-01", "app-02", "db-03", "web-04"];
    let specs: Vec<_> = names
        .iter()
        .enumerate()
        .map(|(i, n)| spec(i, row(n, "ds-gold-01")))
        .collect();
    let wave = q
        .create_batch(&new_batch("wave 3 | app tier"), &specs)
        .unwrap();
    let mut d = Driver {
        q: &mut q,
        now: &now,
    };
    d.tick(60);
    d.q.start_run("run-1", wave, crate::report::OWNER, "run", None)
        .unwrap();
    for n in 1..=4u32 {
        let disk = disks(&vm(3000 + n), &[("Hard disk 1", 20 * GIB_KB, true)]);
        d.replicated(wave, &vm(3000 + n), disk, 30 + n);
    }
    d.q.finish_run("run-1", "done", 0).unwrap();

    let rpo = OperationSpec::Reconfigure(SettingsChange {
        rpo: Some(15),
        network_compression: Some(true),
        ..SettingsChange::default()
    });
    let reconfigure = d.operation(wave, "rpo 15 for the cutover", &rpo);
    d.operated(
        reconfigure,
        100,
        &[Outcome::Done, Outcome::Done, Outcome::Done, Outcome::Done],
    );

    let pause = d.operation(wave, "pause: storage maintenance", &OperationSpec::Pause);
    d.operated(
        pause,
        200,
        &[
            Outcome::Done,
            Outcome::Done,
            Outcome::Done,
            Outcome::Skip(
                "the appliance refused the pause now: Cannot pause replication 'web-04' \
                 (GID-0034): the operation is not allowed in the current state (PAUSED): the \
                 replication is already paused.",
            ),
        ],
    );

    let keep = OperationSpec::Unconfigure {
        retain_replica_disks: true,
        local_only: false,
    };
    let undo = d.operation(wave, "undo wave 3 | <rollback>", &keep);
    d.operated(
        undo,
        300,
        &[
            Outcome::Done,
            Outcome::Skip(
                "the VM's replication is now GID-9002, not GID-0032 that batch 1 configured: \
                 left alone",
            ),
            Outcome::Done,
            Outcome::Fail(
                "the appliance refused the unconfigure: Cannot unconfigure replication 'web-04' \
                 (GID-0034): a sync operation is in progress (task HTask:sync-0007).",
                Some(409),
            ),
        ],
    );
    (q, [wave, reconfigure, pause, undo])
}

/// The moment the operations' golden reports are made: a day after the wave's import.
const OPERATIONS_REPORT_AT: i64 = T0 + 86_400_000;

pub(crate) fn operations_reports() -> (Report, Report, Queue, [i64; 4], tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let (q, batches) = operations_fixture(&dir.path().join("q.db"));
    let wave = Report::load(&q, batches[0], OPERATIONS_REPORT_AT).unwrap();
    let undo = Report::load(&q, batches[3], OPERATIONS_REPORT_AT).unwrap();
    (wave, undo, q, batches, dir)
}

#[test]
fn every_format_of_an_operation_batch_matches_its_golden_file() {
    let (_, undo, ..) = operations_reports();
    for format in Format::ALL {
        assert_golden(
            &format!("operation.{format}"),
            &undo.render(format).unwrap(),
        );
    }
}

#[test]
fn every_format_of_a_configure_batch_with_operations_since_matches_its_golden_file() {
    let (wave, ..) = operations_reports();
    for format in Format::ALL {
        assert_golden(
            &format!("operations_since.{format}"),
            &wave.render(format).unwrap(),
        );
    }
}

#[test]
fn an_operation_batch_says_what_it_did_and_names_the_batch_it_acted_on() {
    let (_, undo, q, [wave, ..], _dir) = operations_reports();
    let md = undo.render(Format::Md).unwrap();
    assert!(md.starts_with("# Unconfigure report: batch 4"), "{md}");
    assert!(
        md.contains("2 unconfigured, 1 skipped, 1 failed, 0 cancelled"),
        "{md}"
    );
    assert!(
        md.contains("unconfigure, keeping the replica disks on the target site"),
        "{md}"
    );
    assert!(md.contains("left alone"), "{md}");
    let doc: Value = serde_json::from_str(&undo.render(Format::Json).unwrap()).unwrap();
    assert_eq!(doc["batch"]["operation"], "unconfigure");
    let configured = q.batch(wave).unwrap();
    assert_eq!(doc["batch"]["acts_on"]["id"], wave);
    assert_eq!(doc["batch"]["acts_on"]["name"], configured.name.as_str());
    assert_eq!(
        doc["batch"]["operation_specs"],
        json!([{"spec": {"operation": "unconfigure", "retain_replica_disks": true,
                          "local_only": false}, "jobs": 4}])
    );
    // Each job names the configure job whose replication it acted on.
    let configure_jobs: Vec<i64> = q.jobs(wave).unwrap().iter().map(|j| j.id).collect();
    let acted_on: Vec<i64> = doc["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["acts_on_job"].as_i64().unwrap())
        .collect();
    assert_eq!(acted_on, configure_jobs);
    assert_eq!(doc["summary"]["protection"]["configured"], 0);
    assert_eq!(doc["summary"]["replicated_capacity_bytes"], 0);
    assert_eq!(doc["operations_since"], json!([]));
}

#[test]
fn a_configure_batch_lists_every_operation_applied_since_in_every_format() {
    let (wave, _, q, [_, reconfigure, pause, undo], _dir) = operations_reports();
    let doc: Value = serde_json::from_str(&wave.render(Format::Json).unwrap()).unwrap();
    let since = doc["operations_since"].as_array().unwrap();
    let listed: Vec<(i64, &str)> = since
        .iter()
        .map(|o| (o["id"].as_i64().unwrap(), o["operation"].as_str().unwrap()))
        .collect();
    assert_eq!(
        listed,
        [
            (reconfigure, "reconfigure"),
            (pause, "pause"),
            (undo, "unconfigure")
        ]
    );
    for (o, batch) in since.iter().zip([reconfigure, pause, undo]) {
        for (state, n) in q.counts(batch).unwrap() {
            assert_eq!(o["counts"][state.as_str()], n, "batch {batch} {state}");
        }
    }
    // Per VM too: app-02's replication was reconfigured, paused, and left alone by the undo.
    let app02 = &doc["jobs"][1]["operations_since"];
    let states: Vec<&str> = app02
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["state"].as_str().unwrap())
        .collect();
    assert_eq!(states, ["succeeded", "succeeded", "skipped"]);

    let md = wave.render(Format::Md).unwrap();
    assert!(md.contains("## Operations since"), "{md}");
    assert!(md.contains("2 unconfigured, 1 skipped, 1 failed"), "{md}");
    let html = wave.render(Format::Html).unwrap();
    assert!(html.contains("Operations since"));
    let csv = wave.render(Format::Csv).unwrap();
    assert!(
        csv.contains(&format!(
            "{reconfigure} reconfigure succeeded; {pause} pause succeeded; {undo} unconfigure skipped"
        )),
        "{csv}"
    );
}

#[test]
fn a_reconfigure_report_says_what_it_changed() {
    let (_, _, q, [_, reconfigure, ..], _dir) = operations_reports();
    let report = Report::load(&q, reconfigure, OPERATIONS_REPORT_AT).unwrap();
    assert_eq!(report.batch.operation, Operation::Reconfigure);
    let md = report.render(Format::Md).unwrap();
    assert!(
        md.contains("reconfigure: RPO 15 min, network compression on"),
        "{md}"
    );
    assert!(md.contains("4 reconfigured"), "{md}");
    let csv = report.render(Format::Csv).unwrap();
    assert!(csv.contains("network_compression=true; rpo=15"), "{csv}");
}

#[test]
fn the_effective_settings_show_what_each_run_used_when_it_recorded_that_and_never_a_secret() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q.db");
    let (mut q, now) = queue_at(&path);
    let wave = q
        .create_batch(
            &new_batch("wave 5"),
            &[spec(0, row("app-01", "ds-gold-01"))],
        )
        .unwrap();
    let d = Driver {
        q: &mut q,
        now: &now,
    };
    d.tick(60);
    d.q.start_run("run-1", wave, "jump01:4242:run-1", "run", None)
        .unwrap();
    d.q.finish_run("run-1", "window closed", 0).unwrap();
    d.tick(60);
    d.q.start_run("run-2", wave, "jump03:777:run-2", "run", None)
        .unwrap();
    d.q.finish_run("run-2", "done", 0).unwrap();
    // What the runner is to record (a migration of its own adds the column): run-1 did, run-2
    // is from a vrbulk that did not. A key the report does not know, even one that names a
    // secret, never reaches it.
    let recorded = json!({
        "url": "https://vr01.corp.local:8043",
        "api_version": "v2",
        "tls_trust": "thumbprint",
        "tls_anchor": "AB:CD:EF",
        "requests_per_session": 50,
        "requests_per_ip": 100,
        "rate_window_ms": 60_000,
        "workers": 8,
        "lookup_group": 50,
        "submit_group": 20,
        "max_attempts": 3,
        "request_retries": 4,
        "poll_interval_ms": 2000,
        "lease_ms": 60_000,
        "max_initial_syncs": 10,
        "order": "smallest-first",
        "until": T0 + 2 * 3_600_000,
        "password": "VMware1!",
    });
    let db = rusqlite::Connection::open(&path).unwrap();
    db.execute(
        "UPDATE runs SET settings_json = ? WHERE id = 'run-1'",
        [recorded.to_string()],
    )
    .unwrap();

    let report = Report::load(&q, wave, OPERATIONS_REPORT_AT).unwrap();
    let md = report.render(Format::Md).unwrap();
    for line in [
        "| Ran on | jump01 (pid 4242) | jump03 (pid 777) |",
        "| Appliance | https://vr01.corp.local:8043 (API v2) | not recorded |",
        "| TLS trust | pinned SHA-256 thumbprint AB:CD:EF | not recorded |",
        "| Request budget | 50 requests per session, 100 per client IP, per 1m 00s | not recorded |",
        "| Workers | 8 | not recorded |",
        "| Lookup / submit group | 50 / 20 | not recorded |",
        "| Attempts | 3 per job; 4 quick retries per request | not recorded |",
        "| Admission | at most 10 initial syncs at once, smallest-first order | not recorded |",
        "| Change window | until 2024-06-01 10:00:00 UTC | not recorded |",
    ] {
        assert!(md.contains(line), "{line}\n{md}");
    }
    assert!(!md.contains("did not record"), "{md}");
    let doc: Value = serde_json::from_str(&report.render(Format::Json).unwrap()).unwrap();
    let used = &doc["runs"]["list"][0]["settings"];
    assert_eq!(used["url"], "https://vr01.corp.local:8043");
    assert_eq!(used["until"], "2024-06-01T10:00:00.000Z");
    assert!(doc["runs"]["list"][1]["settings"].is_null());
    for format in Format::ALL {
        let text = report.render(format).unwrap();
        assert!(!text.contains("VMware1!"), "{format} shows a password");
    }
}
