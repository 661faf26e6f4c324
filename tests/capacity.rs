//! The appliance's capacity as the appliance has it: figures that follow its release
//! (`[limits]` where set), and a VR server that the appliance says is full believed over any
//! figure: `auto` VMs placed again on a server with room, the server's real limit kept for
//! the next plan. Judged by the simulator's record: which server each replication is on, the
//! configure tasks it refused, how often each VM was configured.

use std::path::Path;

use vrbulk::domain::{FigureSource, JobSpec};
use vrbulk::queue::{JobState, NewBatch, Queue};
use vrbulk::sim::{SimConfig, Simulator, VmKind};

use crate::run::{quick_options, run_once};
use crate::support::cmd::Cmd;
use crate::support::fixtures::{self, config_for, new_batch};
use crate::support::harness::start;

/// The names of the simulator's first `n` ordinary VMs (replicable, on healthy datastores).
fn ordinary_vms(sim: &Simulator, n: usize) -> Vec<String> {
    sim.inventory()
        .vms
        .iter()
        .filter(|v| v.kind == VmKind::Normal)
        .take(n)
        .map(|v| v.vm.name.clone())
        .collect()
}

/// Imports `specs` as a batch of one attempt per job: a job placed again must not need a
/// second.
fn import_one_attempt(db: &Path, name: &str, specs: &[JobSpec]) -> i64 {
    let batch = NewBatch {
        max_attempts: 1,
        ..new_batch(name)
    };
    fixtures::import(db, &batch, specs)
}

/// `vrbulk plan` of the newest batch through the binary: (exit code, stdout) of the table, and
/// the JSON rows.
async fn plan(db: &Path, config: &Path) -> (i32, String, Vec<serde_json::Value>) {
    let (db, config) = (db.to_path_buf(), config.to_path_buf());
    tokio::task::spawn_blocking(move || {
        let table = Cmd::new()
            .env("VRBULK_PASSWORD", "VMware1!")
            .db(&db)
            .config(&config)
            .args(["plan"])
            .run();
        let json = Cmd::new()
            .env("VRBULK_PASSWORD", "VMware1!")
            .db(&db)
            .config(&config)
            .args(["plan", "--json"])
            .run();
        let rows = serde_json::from_str(&json.stdout()).unwrap();
        (
            table.output.status.code().unwrap_or(-1),
            table.stdout(),
            rows,
        )
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn a_server_full_below_the_figure_is_learnt_auto_vms_go_elsewhere_and_the_next_plan_counts_it_full(
) {
    // vrs-target-01 takes 3 replications, not 200, and its count does not say so: it holds
    // the legacy VM's and one other VM's. vrs-target-02 is empty.
    let sim = start(SimConfig {
        max_replications_by_server: vec![3],
        replications_elsewhere: vec![1],
        ..SimConfig::fast()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("q.db");
    let names = ordinary_vms(&sim, 10);
    // Six placed by vrbulk, the seventh named onto the first server by the operator.
    let mut specs: Vec<JobSpec> = names[..6].iter().map(|n| fixtures::spec(n)).collect();
    specs.push(JobSpec {
        replication_server: Some("vrs-target-01".into()),
        ..fixtures::spec(&names[6])
    });
    let batch = import_one_attempt(&db, "wave 1", &specs);

    let outcome = run_once(&db, &sim, quick_options()).await;

    // The simulator's record: vrbulk spread the VMs by the room it counted (the fifth went to
    // the first server as its third), and the appliance refused that one and the named one.
    let stats = sim.stats();
    let refused: Vec<(&str, Option<&str>)> = stats
        .configure_failures
        .iter()
        .map(|f| (f.vm_name.as_str(), f.server.as_deref()))
        .collect();
    assert_eq!(refused.len(), 2, "{refused:?}");
    assert!(refused.contains(&(names[4].as_str(), Some("vrs-target-01"))));
    assert!(refused.contains(&(names[6].as_str(), Some("vrs-target-01"))));
    // The auto VM was configured once more, on the other server; nothing configured twice.
    assert!(stats.configured_more_than_once.is_empty(), "{stats:?}");
    let vm_id = |name: &str| sim.inventory().vm_by_name(name).unwrap().vm.id.clone();
    assert_eq!(stats.configure_attempts[&vm_id(&names[4])], 2);
    assert_eq!(stats.configure_attempts[&vm_id(&names[6])], 1);
    let on = |name: &str| {
        stats
            .replications
            .values()
            .filter(|r| r.vm_name == name)
            .map(|r| r.server.clone().unwrap_or_default())
            .collect::<Vec<_>>()
    };
    assert_eq!(on(&names[4]), ["vrs-target-02"]);
    assert_eq!(on(&names[2]), ["vrs-target-01"]);
    for name in &names[..6] {
        assert_eq!(on(name).len(), 1, "{name}");
    }
    assert!(on(&names[6]).is_empty());

    // The jobs agree: six configured, in one attempt of the batch's one; the named one failed
    // in the appliance's words.
    let jobs = Queue::open(&db).unwrap().jobs(batch).unwrap();
    let states: Vec<JobState> = jobs.iter().map(|j| j.state).collect();
    assert_eq!(states[..6], [JobState::Succeeded; 6], "{outcome:?}");
    assert_eq!(states[6], JobState::Failed);
    assert_eq!(
        jobs[6].reason.as_deref(),
        Some(
            "The vSphere Replication server 'vrs-target-01' has reached the maximum number of \
             replications (3) (Choose another vSphere Replication server, or register a new one.)"
        )
    );
    let moved = Queue::open(&db).unwrap().events(jobs[4].id).unwrap();
    assert!(
        moved.iter().any(|e| e.to_state == JobState::Retryable
            && e.message.as_deref().is_some_and(|m| m.contains(
                "the VM goes to another VR server with room (its replication_server is auto)"
            ))),
        "{moved:?}"
    );
    // What was learnt is kept.
    let learnt = Queue::open(&db).unwrap().learnt_limits().unwrap();
    assert_eq!(learnt.len(), 1, "{learnt:?}");
    assert_eq!(
        (learnt[0].server_name.as_str(), learnt[0].replications),
        ("vrs-target-01", 3)
    );

    // The next plan counts the first server full at 3, whatever its count says: an auto VM
    // goes to the second, a VM named onto the first would fail, and nothing is sent.
    let next = vec![
        fixtures::spec(&names[7]),
        JobSpec {
            replication_server: Some("vrs-target-01".into()),
            ..fixtures::spec(&names[8])
        },
    ];
    import_one_attempt(&db, "wave 2", &next);
    let config = config_for(&sim, dir.path(), "");
    let before = sim.stats().configure_attempts.len();
    let (code, table, rows) = plan(&db, &config).await;
    assert_eq!(code, 1, "{table}");
    assert_eq!(
        rows[0]["replication_server"], "vrs-target-02 (auto)",
        "{rows:?}"
    );
    assert_eq!(rows[1]["action"], "fail");
    let reason = rows[1]["reason"].as_str().unwrap();
    assert!(
        reason.starts_with(
            "VR server 'vrs-target-01' on vc-site-b.corp.local already holds 3 replications, \
             the most it takes (learnt "
        ),
        "{reason}"
    );
    assert!(
        table.contains(
            "capacity counted by (VR 8.8.0): 200 per VR server, 2000 per appliance, 1000 \
             within one vCenter (each VR 8.8's documented figure)"
        ),
        "{table}"
    );
    assert!(
        table.contains("VR server 'vrs-target-01' counted full at 3 replications: the appliance refused a VM onto it at "),
        "{table}"
    );
    assert_eq!(sim.stats().configure_attempts.len(), before);
}

#[tokio::test]
async fn a_vm_in_doubt_whose_task_the_full_server_refused_is_placed_again_when_reconciled() {
    // vrs-target-01 holds the legacy VM's replication and takes no more; vrs-target-02 holds
    // two, so vrbulk sends the VM to the first. The answer to its configure call is lost.
    let sim = start(SimConfig {
        max_replications_by_server: vec![1],
        replications_elsewhere: vec![0, 2],
        ..SimConfig::fast()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("q.db");
    let name = ordinary_vms(&sim, 1).remove(0);
    let batch = import_one_attempt(&db, "in doubt", &[fixtures::spec(&name)]);
    sim.fail_next_configure_after_commit(1);

    run_once(&db, &sim, quick_options()).await;

    let stats = sim.stats();
    assert_eq!(stats.configure_failures.len(), 1, "{stats:?}");
    assert_eq!(
        stats.configure_failures[0].server.as_deref(),
        Some("vrs-target-01")
    );
    let vm = sim.inventory().vm_by_name(&name).unwrap().vm.id.clone();
    assert_eq!(stats.configure_attempts[&vm], 2);
    assert!(stats.configured_more_than_once.is_empty());
    let servers: Vec<_> = stats
        .replications
        .values()
        .filter(|r| r.vm_id == vm)
        .map(|r| r.server.clone())
        .collect();
    assert_eq!(servers, [Some("vrs-target-02".to_string())]);
    let jobs = Queue::open(&db).unwrap().jobs(batch).unwrap();
    assert_eq!(jobs[0].state, JobState::Succeeded, "{jobs:?}");
}

#[tokio::test]
async fn a_vr_9_appliance_is_counted_full_at_its_documented_400_unless_limits_say_more() {
    // Three VR servers with room, but 398 replications of other VMs and the legacy VM's: room
    // for one more on a VR 9.0 appliance.
    let sim = start(SimConfig {
        vms: 201,
        replications_elsewhere: vec![150, 150, 98],
        ..SimConfig::fast().with_version("9.0.2")
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("q.db");
    let names = ordinary_vms(&sim, 3);
    let specs: Vec<JobSpec> = names.iter().map(|n| fixtures::spec(n)).collect();
    let batch = import_one_attempt(&db, "wave", &specs);
    let config = config_for(&sim, dir.path(), "");

    let (code, table, rows) = plan(&db, &config).await;
    assert_eq!(code, 1, "{table}");
    assert_eq!(rows[0]["action"], "configure", "{rows:?}");
    for r in &rows[1..] {
        assert_eq!(
            r["reason"],
            "the appliance holds 399 replications and the VM placed before this one, 400 in \
             all, the most it takes (400, VR 9.0's documented figure)"
        );
    }
    assert!(
        table.contains("capacity counted by (VR 9.0.2): 200 per VR server (assumed: VR 9.0 documents none), 400 per appliance (VR 9.0's documented figure)"),
        "{table}"
    );

    // The run sends only the VM that fits, and records what it counted by.
    run_once(&db, &sim, quick_options()).await;
    let stats = sim.stats();
    assert_eq!(stats.configure_attempts.len(), 1, "{stats:?}");
    assert!(stats.configure_failures.is_empty());
    let q = Queue::open(&db).unwrap();
    let states: Vec<JobState> = q.jobs(batch).unwrap().iter().map(|j| j.state).collect();
    assert_eq!(
        states,
        [JobState::Succeeded, JobState::Failed, JobState::Failed]
    );
    let used = q.runs(batch).unwrap()[0].settings.clone().unwrap();
    let capacity = used.capacity.unwrap();
    assert_eq!(capacity.vr_version.as_deref(), Some("9.0.2"));
    assert_eq!(
        (
            capacity.replications_per_appliance.value,
            capacity.replications_per_appliance.from
        ),
        (400, FigureSource::Documented)
    );

    // An appliance configured for more: [limits] says so, and the plan believes it.
    let config = config_for(
        &sim,
        dir.path(),
        "\n[limits]\nreplications_per_appliance = 4000\n",
    );
    fixtures::import(&db, &new_batch("more"), &[fixtures::spec(&names[1])]);
    let (code, table, rows) = plan(&db, &config).await;
    assert_eq!(
        (code, &rows[0]["action"]),
        (0, &"configure".into()),
        "{table}"
    );
    assert!(
        table.contains("4000 per appliance (set in [limits])"),
        "{table}"
    );
    // And `config check --connect` says where each figure comes from.
    let check = config.clone();
    let out = tokio::task::spawn_blocking(move || {
        Cmd::new()
            .env("VRBULK_PASSWORD", "VMware1!")
            .config(&check)
            .args(["config", "check", "--connect"])
            .assert_exit(0)
            .stdout()
    })
    .await
    .unwrap();
    assert!(out.contains("  appliance    4000 (set)"), "{out}");
    assert!(
        out.contains(
            "limits         VR 9.0.2: 200 per VR server (assumed: VR 9.0 documents none), 4000 \
             per appliance (set in [limits])"
        ),
        "{out}"
    );
}
