//! The day-2 commands through the binary (`undo`, `reconfigure`, `pause`, `resume`, `sync`)
//! against the simulator: each acts once on each replication of the batch it names, under
//! faults, and never on anything outside it; `--vm` picks; `--plan` sends nothing and creates no
//! batch; undo asks first and refuses without a terminal; bad input is refused whole; an undo
//! killed at random moments and resumed with `vrbulk run` unconfigures nothing twice; a
//! local-only undo goes through with the target site down, killed and resumed too, and asks
//! nothing of that site.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use tokio::sync::watch;
use vrbulk::domain::{JobSpec, Operation};
use vrbulk::queue::{system_clock, BatchId, JobState, Liveness, NewBatch, Queue, Standing};
use vrbulk::runner::{self, InitialSyncs, RunOptions};
use vrbulk::sim::{RateLimits, SimConfig, Simulator, VmKind, FAST_WINDOW};

use crate::support::cmd::Ran;
use crate::support::fixtures::{self, new_batch, spec};
use crate::support::harness::{settings_for, start, until_removed, until_synced};
use crate::support::site::Site;
use crate::support::wait::eventually;

impl Site {
    fn batches(&self) -> usize {
        Queue::open(&self.db).unwrap().batches().unwrap().len()
    }

    /// The replication each configured job of `batch` recorded.
    fn replications(&self, batch: BatchId) -> BTreeMap<String, String> {
        Queue::open(&self.db)
            .unwrap()
            .jobs(batch)
            .unwrap()
            .into_iter()
            .filter(|j| j.state == JobState::Succeeded)
            .map(|j| {
                (
                    j.vm_label().to_string(),
                    j.checkpoint.replication_id.unwrap(),
                )
            })
            .collect()
    }
}

fn code(ran: &Ran) -> Option<i32> {
    ran.output.status.code()
}

/// `ran` ended with `expected`, or the test says why not.
#[track_caller]
fn assert_code(ran: &Ran, expected: i32) {
    assert_eq!(
        code(ran),
        Some(expected),
        "stdout:\n{}\nstderr:\n{}",
        ran.stdout(),
        ran.stderr()
    );
}

/// `n` normal VMs of the simulator, skipping the first `skip`.
fn normal_vms(sim: &Simulator, skip: usize, n: usize) -> Vec<String> {
    sim.inventory()
        .vms
        .iter()
        .filter(|v| v.kind == VmKind::Normal)
        .skip(skip)
        .take(n)
        .map(|v| v.vm.name.clone())
        .collect()
}

/// Imports and configures `names` as batch `name` with the library's runner: the waves the
/// commands act on.
async fn configure(sim: &Simulator, site: &Site, name: &str, names: &[String]) -> BatchId {
    let specs: Vec<JobSpec> = names.iter().map(|n| spec(n)).collect();
    let batch = NewBatch {
        max_attempts: 8,
        ..new_batch(name)
    };
    let id = fixtures::import(&site.db, &batch, &specs);
    let outcome = run_to_end(sim, site, id).await;
    assert_eq!(
        outcome.counts[&JobState::Succeeded],
        names.len() as u64,
        "{name} configured"
    );
    id
}

/// Runs batch `id` with the library's runner until it ends; a configure batch's VMs all at once
/// (the wave is the setting of a day-2 test, not its subject, and its syncs last real hours).
async fn run_to_end(sim: &Simulator, site: &Site, id: BatchId) -> runner::RunOutcome {
    let opts = RunOptions {
        batch: Some(id),
        max_initial_syncs: InitialSyncs::All,
        poll_interval: Duration::from_millis(200),
        retry_base: Duration::from_millis(100),
        retry_cap: Duration::from_secs(1),
        request_retries: 6,
        ..RunOptions::default()
    };
    let (_stop, stop_rx) = watch::channel(false);
    runner::run(
        Queue::open(&site.db).unwrap(),
        settings_for(sim),
        opts,
        stop_rx,
    )
    .await
    .unwrap()
}

/// Accepted operations `op` per replication, as the simulator counted them.
fn operations(sim: &Simulator, op: &str) -> BTreeMap<String, u64> {
    sim.stats()
        .operations
        .into_iter()
        .filter_map(|(rep, ops)| Some((rep, *ops.get(op)?)))
        .collect()
}

/// Every replication the simulator saw any operation on.
fn touched(sim: &Simulator) -> BTreeSet<String> {
    sim.stats().operations.into_keys().collect()
}

/// `op` was accepted exactly once for each of `reps`, and for nothing else.
#[track_caller]
fn assert_once_each(sim: &Simulator, op: &str, reps: &BTreeSet<String>) {
    let counted = operations(sim, op);
    let keys: BTreeSet<String> = counted.keys().cloned().collect();
    assert_eq!(&keys, reps, "{op}: {counted:?}");
    assert!(counted.values().all(|n| *n == 1), "{op} twice: {counted:?}");
}

/// The newest batch of the queue, which must be a `operation` batch acting on `acts_on`.
fn newest(site: &Site, operation: Operation, acts_on: BatchId) -> BatchId {
    let q = Queue::open(&site.db).unwrap();
    let b = q.latest_batch().unwrap().unwrap();
    assert_eq!((b.operation, b.acts_on), (operation, Some(acts_on)));
    b.id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_command_acts_once_on_each_replication_of_its_batch_under_faults_and_on_nothing_else()
{
    let sim = start(SimConfig {
        fail_rate: 0.05,
        sync_time_scale: 50_000.0,
        ..SimConfig::fast()
    })
    .await;
    let site = Site::new(&sim);
    let names = normal_vms(&sim, 0, 6);
    let wave = configure(&sim, &site, "wave", &names).await;
    let other = configure(&sim, &site, "other wave", &normal_vms(&sim, 6, 3)).await;
    let ours: BTreeSet<String> = site.replications(wave).into_values().collect();
    let theirs: BTreeSet<String> = site.replications(other).into_values().collect();
    // Their initial syncs end first: a sync of a replication in initial sync is refused.
    until_synced(&sim).await;
    let wave_arg = wave.to_string();

    // --vm: an exact name and a pattern pick two of the six.
    let picked: BTreeSet<String> = [&names[1], &names[4]]
        .iter()
        .map(|n| site.replications(wave)[*n].clone())
        .collect();
    let pattern = format!("?{}", &names[4][1..]);
    for command in ["pause", "resume"] {
        let ran = site
            .vrbulk(&[
                command,
                "--batch",
                &wave_arg,
                "--vm",
                &names[1],
                "--vm",
                &pattern,
                "--progress",
                "none",
            ])
            .await;
        assert_code(&ran, 0);
        assert!(
            ran.stdout().contains("2 replications of batch"),
            "{}",
            ran.stdout()
        );
        assert_once_each(&sim, command, &picked);
        assert!(
            ran.stderr().contains("`vrbulk run --batch"),
            "{}",
            ran.stderr()
        );
    }

    for (args, op) in [
        (vec!["sync"], "sync"),
        (
            vec![
                "reconfigure",
                "--rpo",
                "15",
                "--network-compression",
                "true",
            ],
            "reconfigure",
        ),
        (vec!["undo", "--yes"], "unconfigure"),
    ] {
        let mut args = args;
        args.extend(["--batch", &wave_arg, "--progress", "none"]);
        let ran = site.vrbulk(&args).await;
        assert_code(&ran, 0);
        assert_once_each(&sim, op, &ours);
    }

    let summary = Queue::open(&site.db).unwrap();
    let undo = newest(&site, Operation::Unconfigure, wave);
    assert_eq!(summary.counts(undo).unwrap()[&JobState::Succeeded], 6);
    let inv = sim.inventory();
    assert!(inv.replications.iter().all(|r| !ours.contains(&r.id)));
    assert!(theirs
        .iter()
        .all(|id| inv.replications.iter().any(|r| &r.id == id)));
    assert!(
        touched(&sim).is_disjoint(&theirs),
        "another batch's replications were touched: {:?}",
        sim.stats().operations
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_sends_nothing_creates_no_batch_and_says_what_would_be_skipped_or_refused() {
    let sim = start(SimConfig::fast()).await;
    let site = Site::new(&sim);
    let names = normal_vms(&sim, 0, 4);
    let wave = configure(&sim, &site, "wave", &names).await;
    let reps = site.replications(wave);
    let wave_arg = wave.to_string();
    // One replication removed by hand; another VM unconfigured and configured again by someone
    // else; a third paused (by vrbulk: a batch of its own).
    let client = crate::support::harness::client_for(&sim).await;
    let pairing = sim.inventory().pairing_id;
    client.remote_login(&pairing).await.unwrap();
    for vm in [&names[0], &names[1]] {
        client
            .unconfigure_replication(&pairing, &reps[vm], false)
            .await
            .unwrap();
    }
    until_removed(&sim, &[&reps[&names[0]], &reps[&names[1]]]).await;
    configure(&sim, &site, "by hand", &names[1..2]).await;
    let pause = site
        .vrbulk(&[
            "pause",
            "--batch",
            &wave_arg,
            "--vm",
            &names[2],
            "--progress",
            "none",
        ])
        .await;
    assert_code(&pause, 0);
    let before = sim.stats();
    let batches = site.batches();

    for command in ["undo", "pause", "resume", "sync"] {
        let ran = site
            .vrbulk(&[command, "--batch", &wave_arg, "--plan", "--json"])
            .await;
        let rows: Vec<serde_json::Value> = serde_json::from_str(&ran.stdout())
            .unwrap_or_else(|e| panic!("{command}: {e}: {}{}", ran.stdout(), ran.stderr()));
        let verdict = |vm: &str| {
            let row = rows.iter().find(|r| r["vm_name"] == vm).unwrap();
            (
                row["verdict"].as_str().unwrap().to_string(),
                row["reason"].as_str().unwrap_or_default().to_string(),
            )
        };
        let (gone, why) = verdict(&names[0]);
        assert_eq!(gone, "skip", "{command}");
        assert!(why.contains("no longer exists"), "{why}");
        let (replaced, why) = verdict(&names[1]);
        assert_eq!(replaced, "skip", "{command}");
        assert!(why.contains("left alone"), "{why}");
        let (paused, why) = verdict(&names[2]);
        match command {
            "pause" => {
                assert_eq!(paused, "refused");
                assert!(why.contains("already paused"), "{why}");
                assert_code(&ran, 1);
            }
            "sync" => {
                assert_eq!(paused, "refused");
                assert_code(&ran, 1);
            }
            _ => assert_eq!(paused, "act", "{command}: {why}"),
        }
        if command == "resume" {
            assert_eq!(verdict(&names[3]).0, "refused", "not paused");
        }
    }
    let ran = site
        .vrbulk(&["reconfigure", "--batch", &wave_arg, "--rpo", "15", "--plan"])
        .await;
    assert_code(&ran, 0);
    assert!(ran.stdout().contains("rpo 60 -> 15"), "{}", ran.stdout());
    let ran = site.vrbulk(&["undo", "--batch", &wave_arg, "--plan"]).await;
    assert!(
        ran.stdout()
            .contains("2 to undo, 2 to skip, 0 would be refused"),
        "{}",
        ran.stdout()
    );

    let after = sim.stats();
    assert_eq!(
        after.operations, before.operations,
        "a plan changed something"
    );
    assert_eq!(site.batches(), batches, "a plan created a batch");
    for changing in [
        "unconfigureReplication",
        "reconfigureReplication",
        "pauseReplication",
        "resumeReplication",
        "syncReplication",
        "destroyReplication",
    ] {
        assert_eq!(
            after.calls.get(changing),
            before.calls.get(changing),
            "{changing}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undo_without_a_terminal_refuses_unless_told_yes_and_removes_only_its_batchs() {
    let sim = start(SimConfig::fast()).await;
    let site = Site::new(&sim);
    let wave = configure(&sim, &site, "wave", &normal_vms(&sim, 0, 3)).await;
    let other = configure(&sim, &site, "other", &normal_vms(&sim, 3, 2)).await;
    let wave_arg = wave.to_string();
    let batches = site.batches();

    let refused = site
        .vrbulk(&["undo", "--batch", &wave_arg, "--keep-replica-disks"])
        .await;
    assert_code(&refused, 2);
    assert!(
        refused.stderr().contains("no terminal"),
        "{}",
        refused.stderr()
    );
    assert!(refused.stderr().contains("--yes"), "{}", refused.stderr());
    // It showed what it would have removed.
    for rep in site.replications(wave).values() {
        assert!(
            refused.stdout().contains(rep.as_str()),
            "{}",
            refused.stdout()
        );
    }
    assert!(sim.stats().operations.is_empty());
    assert_eq!(site.batches(), batches, "nothing written");

    let ran = site
        .vrbulk(&[
            "undo",
            "--batch",
            &wave_arg,
            "--keep-replica-disks",
            "--yes",
            "--progress",
            "none",
        ])
        .await;
    assert_code(&ran, 0);
    assert!(
        ran.stdout()
            .contains("3 replications of batch 1 unconfigured (removed on both sites)"),
        "{}",
        ran.stdout()
    );
    let ours: BTreeSet<String> = site.replications(wave).into_values().collect();
    assert_once_each(&sim, "unconfigure", &ours);
    let retained: BTreeSet<String> = sim.stats().replica_disks_retained.into_iter().collect();
    assert_eq!(retained, ours);
    let theirs: BTreeSet<String> = site.replications(other).into_values().collect();
    assert!(touched(&sim).is_disjoint(&theirs));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_local_only_undo_deletes_on_this_site_and_warns_that_the_target_keeps_its_half() {
    let sim = start(SimConfig::fast()).await;
    let site = Site::new(&sim);
    let wave = configure(&sim, &site, "wave", &normal_vms(&sim, 0, 2)).await;
    let ran = site
        .vrbulk(&[
            "undo",
            "--batch",
            &wave.to_string(),
            "--local-only",
            "--yes",
            "--progress",
            "none",
        ])
        .await;
    assert_code(&ran, 0);
    assert!(
        ran.stderr().contains("the target site keeps its half"),
        "{}",
        ran.stderr()
    );
    assert!(
        ran.stdout().contains("removed on this site only"),
        "{}",
        ran.stdout()
    );
    let ours: BTreeSet<String> = site.replications(wave).into_values().collect();
    assert_once_each(&sim, "destroy", &ours);
    assert!(operations(&sim, "unconfigure").is_empty());
}

/// Calls of `operation_id` the simulator has counted so far.
fn calls(sim: &Simulator, operation_id: &str) -> u64 {
    sim.stats().calls.get(operation_id).copied().unwrap_or(0)
}

/// What only the target site answers: its login and the pairing's replication list.
const TARGET_SITE_CALLS: [&str; 2] = ["createRemoteSession", "getAllReplications"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_local_only_undo_goes_through_with_the_target_site_down_and_removes_only_its_batchs() {
    let sim = start(SimConfig::fast()).await;
    let site = Site::new(&sim);
    let names = normal_vms(&sim, 0, 4);
    let wave = configure(&sim, &site, "wave", &names).await;
    let other = configure(&sim, &site, "other", &normal_vms(&sim, 4, 2)).await;
    let recorded = site.replications(wave);
    // Someone else unconfigured the first VM and configured it again: a replication of another
    // id, which the undo must leave alone.
    let client = crate::support::harness::client_for(&sim).await;
    let pairing = sim.inventory().pairing_id;
    client.remote_login(&pairing).await.unwrap();
    client
        .unconfigure_replication(&pairing, &recorded[&names[0]], false)
        .await
        .unwrap();
    until_removed(&sim, &[&recorded[&names[0]]]).await;
    let by_hand = configure(&sim, &site, "by hand", &names[..1]).await;
    let newer = site.replications(by_hand)[&names[0]].clone();
    let theirs: BTreeSet<String> = site.replications(other).into_values().collect();
    let ours: BTreeSet<String> = names[1..].iter().map(|n| recorded[n].clone()).collect();
    sim.set_target_down(true);
    // The plan needs the replication list, which only the target site answers: it says so,
    // and that the undo does not need it.
    let batches = site.batches();
    let plan = site
        .vrbulk(&[
            "undo",
            "--batch",
            &wave.to_string(),
            "--local-only",
            "--plan",
        ])
        .await;
    assert_ne!(code(&plan), Some(0), "{}", plan.stdout());
    assert!(
        plan.stderr().contains("REMOTE_SITE_UNREACHABLE")
            && plan.stderr().contains("the undo itself does not need it"),
        "{}",
        plan.stderr()
    );
    assert_eq!(site.batches(), batches, "a plan created a batch");
    let before: Vec<u64> = TARGET_SITE_CALLS.iter().map(|c| calls(&sim, c)).collect();

    let ran = site
        .vrbulk(&[
            "undo",
            "--batch",
            &wave.to_string(),
            "--local-only",
            "--yes",
            "--progress",
            "none",
        ])
        .await;

    assert_code(&ran, 0);
    for said in [
        "the target site keeps its half, to be cleaned up there",
        "removed on this site only",
    ] {
        assert!(ran.stdout().contains(said), "{said}: {}", ran.stdout());
    }
    let after: Vec<u64> = TARGET_SITE_CALLS.iter().map(|c| calls(&sim, c)).collect();
    assert_eq!(
        before, after,
        "the undo asked the target site: {TARGET_SITE_CALLS:?}"
    );
    assert_once_each(&sim, "destroy", &ours);
    let by_hand_unconfigure = BTreeSet::from([recorded[&names[0]].clone()]);
    assert_once_each(&sim, "unconfigure", &by_hand_unconfigure);
    let inv = sim.inventory();
    assert!(inv.replications.iter().all(|r| !ours.contains(&r.id)));
    for kept in theirs.iter().chain([&newer]) {
        assert!(
            inv.replications.iter().any(|r| &r.id == kept),
            "{kept} was removed"
        );
    }
    let undo = newest(&site, Operation::Unconfigure, wave);
    let jobs = Queue::open(&site.db).unwrap().jobs(undo).unwrap();
    for j in &jobs {
        if j.vm_label() == names[0] {
            assert_eq!(j.state, JobState::Skipped, "{:?}", j.reason);
            assert!(
                j.reason
                    .as_deref()
                    .unwrap_or_default()
                    .contains("no longer exists"),
                "{:?}",
                j.reason
            );
        } else {
            assert_eq!(
                j.state,
                JobState::Succeeded,
                "{}: {:?}",
                j.vm_label(),
                j.reason
            );
        }
    }

    // With the target site up, an undo that removes both halves still reads the list first.
    sim.set_target_down(false);
    let ran = site
        .vrbulk(&[
            "undo",
            "--batch",
            &other.to_string(),
            "--yes",
            "--progress",
            "none",
        ])
        .await;
    assert_code(&ran, 0);
    assert!(
        calls(&sim, "getAllReplications") > after[1],
        "no list was read"
    );
    let unconfigured: BTreeSet<String> = theirs.union(&by_hand_unconfigure).cloned().collect();
    assert_once_each(&sim, "unconfigure", &unconfigured);
    assert!(touched(&sim).is_disjoint(&BTreeSet::from([newer])));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconfigure_input_is_refused_whole_with_every_problem_and_nothing_sent() {
    let sim = start(SimConfig::fast()).await;
    let site = Site::new(&sim);
    let names = normal_vms(&sim, 0, 3);
    let wave = configure(&sim, &site, "wave", &names).await;
    let wave_arg = wave.to_string();
    let csv = site.db.with_file_name("changes.csv");
    std::fs::write(
        &csv,
        format!(
            "vm_name,target_datastore,rpo,mpit_instances,quiesce\n\
             {0},ds-gold-01,2,,\n\
             {1},,,30,maybe\n\
             not-in-the-wave,,15,,\n\
             {2},,,,\n\
             {0},,15,,\n",
            names[0], names[1], names[2]
        ),
    )
    .unwrap();
    let before = sim.stats();
    let batches = site.batches();
    let csv_arg = csv.to_str().unwrap();

    let ran = site
        .vrbulk(&["reconfigure", csv_arg, "--batch", &wave_arg])
        .await;
    assert_code(&ran, 2);
    let expected = [
        "7 problems in the input",
        "line 2, column target_datastore: a reconfigure cannot move replica disks",
        "line 2, column rpo: expected minutes between 5 and 1440, got \"2\"",
        "line 3, column quiesce: expected one of true/false",
        "line 3, column mpit_instances: vSphere Replication keeps at most 24 point-in-time copies",
        "line 4, column vm_name: batch 1 has no VM `not-in-the-wave`",
        "line 5: nothing to change",
        "line 6, column vm_name: VM",
    ];
    for problem in expected {
        assert!(
            ran.stderr().contains(problem),
            "{problem}:\n{}",
            ran.stderr()
        );
    }

    // Flags: out of range, and no such batch, in one go.
    let ran = site
        .vrbulk(&[
            "reconfigure",
            "--batch",
            "9",
            "--rpo",
            "2",
            "--mpit-instances",
            "30",
        ])
        .await;
    assert_code(&ran, 2);
    for problem in [
        "--rpo: expected minutes",
        "--mpit-instances: vSphere",
        "--batch 9: no such batch",
    ] {
        assert!(
            ran.stderr().contains(problem),
            "{problem}:\n{}",
            ran.stderr()
        );
    }
    let ran = site.vrbulk(&["reconfigure", "--batch", &wave_arg]).await;
    assert_code(&ran, 2);
    assert!(
        ran.stderr().contains("nothing to change"),
        "{}",
        ran.stderr()
    );
    let ran = site
        .vrbulk(&["pause", "--batch", &wave_arg, "--vm", "nothing-*"])
        .await;
    assert_code(&ran, 2);
    assert!(
        ran.stderr().contains("--vm nothing-*: matches no VM"),
        "{}",
        ran.stderr()
    );

    let after = sim.stats();
    assert_eq!(
        after.calls, before.calls,
        "a refused request sent something"
    );
    assert_eq!(site.batches(), batches, "a refused request created a batch");

    // A valid file changes each VM as its row says, and only that.
    std::fs::write(
        &csv,
        format!("vm_name,rpo,quiesce\n{},15,\n{},,yes\n", names[0], names[2]),
    )
    .unwrap();
    let ran = site
        .vrbulk(&[
            "reconfigure",
            csv_arg,
            "--batch",
            &wave_arg,
            "--progress",
            "none",
        ])
        .await;
    assert_code(&ran, 0);
    let reps = site.replications(wave);
    let inv = sim.inventory();
    let rep = |vm: &str| inv.replications.iter().find(|r| r.id == reps[vm]).unwrap();
    assert_eq!(rep(&names[0]).rpo, Some(15));
    assert_eq!(rep(&names[2]).rpo, Some(60));
    assert_eq!(rep(&names[2]).quiescing_enabled, Some(true));
    let changed: BTreeSet<String> = [&reps[&names[0]], &reps[&names[2]]]
        .into_iter()
        .cloned()
        .collect();
    assert_once_each(&sim, "reconfigure", &changed);
    let record = Queue::open(&site.db)
        .unwrap()
        .latest_batch()
        .unwrap()
        .unwrap();
    assert_eq!(record.input_kind, "csv");
    assert!(record.input_sha256.is_some());
}

/// 80 VMs, 1 s tasks, 20 ms latency and 12 requests per 2 s session window: an undo lasts long
/// enough that a kill lands in the middle of the work.
async fn slow_simulator() -> Simulator {
    start(SimConfig {
        vms: 80,
        task_seconds: 1.0,
        latency_ms: 20,
        limits: Some(RateLimits {
            per_session: 12,
            ..RateLimits::scaled(FAST_WINDOW)
        }),
        ..SimConfig::fast()
    })
    .await
}

/// Steps done and jobs finished by the operation batches of `db`: claims and rescues come in
/// lumps and say nothing.
fn progress(db: &Path) -> usize {
    let q = Queue::open(db).unwrap();
    q.batches()
        .unwrap()
        .iter()
        .filter(|b| b.operation != Operation::Configure)
        .flat_map(|b| q.jobs(b.id).unwrap())
        .flat_map(|j| q.events(j.id).unwrap())
        .filter(|e| {
            e.message.as_deref().is_some_and(|m| m.starts_with("step "))
                || matches!(
                    e.to_state,
                    JobState::Succeeded | JobState::Skipped | JobState::Failed
                )
        })
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_undo_killed_at_random_moments_and_resumed_unconfigures_each_replication_once() {
    let sim = slow_simulator().await;
    let site = Site::new(&sim);
    let waves = waves(&sim, &site, 40).await;
    let wave_arg = waves.wave.to_string();

    undo_killed_at_random_moments(&site, &wave_arg, &[], 12, Again::Run, 5).await;

    // Every job did its work once: an in-doubt unconfigure is never sent again.
    resume_to_the_end(&site, waves.wave, 40).await;
    assert_once_each(&sim, "unconfigure", &waves.ours);
    assert_only_ours_gone(&sim, &waves);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_local_only_undo_killed_and_resumed_with_the_target_site_down_removes_each_once() {
    let sim = slow_simulator().await;
    let site = Site::new(&sim);
    let waves = waves(&sim, &site, 40).await;
    let wave_arg = waves.wave.to_string();
    sim.set_target_down(true);
    let before: Vec<u64> = TARGET_SITE_CALLS.iter().map(|c| calls(&sim, c)).collect();

    undo_killed_at_random_moments(&site, &wave_arg, &["--local-only"], 21, Again::Run, 5).await;

    resume_to_the_end(&site, waves.wave, 40).await;
    // Each removed once, in-doubt ones included; nothing asked of the target site.
    assert_once_each(&sim, "destroy", &waves.ours);
    let after: Vec<u64> = TARGET_SITE_CALLS.iter().map(|c| calls(&sim, c)).collect();
    assert_eq!(
        before, after,
        "the undo asked the target site: {TARGET_SITE_CALLS:?}"
    );
    assert_only_ours_gone(&sim, &waves);
}

/// An in-doubt operation reads the pairing's replications, then the VM's tasks; when its task
/// ends between the two reads, the list says "not yet" and the task says SUCCESS. That is the
/// job's own work done: it is verified, never sent again (a second unconfigure would be
/// answered 404, a second reconfigure or sync applied twice). Here the appliance's rate limit
/// puts the second read a window after the first, past the task's end, every time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_in_doubt_unconfigure_whose_task_ends_between_two_reads_is_not_sent_again() {
    use vrbulk::domain::OperationSpec;
    use vrbulk::queue::{OperationJob, Save, Step};

    let sim = start(SimConfig {
        task_seconds: 1.0,
        ..SimConfig::fast()
    })
    .await;
    let site = Site::new(&sim);
    let wave = configure(&sim, &site, "wave", &normal_vms(&sim, 0, 1)).await;
    // An undo whose run died right after it sent the unconfigure: its job is in doubt at submit.
    // It died a minute ago, its lease long run out.
    let (mut q, _) = fixtures::queue_at(&site.db, system_clock()() - 60_000);
    let configured = q.jobs(wave).unwrap().remove(0);
    let spec = OperationSpec::Unconfigure {
        retain_replica_disks: false,
        local_only: false,
    };
    let undo = q
        .create_operation_batch(
            &new_batch("undo"),
            Operation::Unconfigure,
            wave,
            &[OperationJob {
                acts_on_job: configured.id,
                spec,
            }],
        )
        .unwrap();
    let job = q
        .claim(Some(undo), 1, "a run that died", Duration::from_millis(100))
        .unwrap()
        .remove(0);
    for step in [Step::ResolveTarget, Step::Submit] {
        let save = Save {
            lease: job.lease().unwrap(),
            step,
            checkpoint: job.checkpoint.clone(),
            in_doubt: Some(step == Step::Submit),
        };
        q.save_all(&[save]).unwrap();
    }
    drop(q);
    let client = crate::support::harness::client_for(&sim).await;
    let pairing = sim.inventory().pairing_id;
    client.remote_login(&pairing).await.unwrap();
    let replication = configured.checkpoint.replication_id.clone().unwrap();
    client
        .unconfigure_replication(&pairing, &replication, false)
        .await
        .unwrap();

    // The next run: login, pairings and discovery (eight calls), the replication list (the
    // ninth, while the task runs), then the tasks (the tenth: a window later, the task done).
    let mut settings = settings_for(&sim);
    settings.limits.per_session = 9;
    let opts = RunOptions {
        batch: Some(undo),
        poll_interval: Duration::from_millis(200),
        ..RunOptions::default()
    };
    let (_stop, stop_rx) = watch::channel(false);
    let outcome = runner::run(Queue::open(&site.db).unwrap(), settings, opts, stop_rx)
        .await
        .unwrap();
    let job = Queue::open(&site.db).unwrap().jobs(undo).unwrap().remove(0);
    assert_eq!(
        sim.stats().calls.get("unconfigureReplication"),
        Some(&1),
        "the unconfigure was sent again; the job ended {:?}: {:?}",
        job.state,
        job.reason
    );
    assert_eq!(outcome.counts[&JobState::Succeeded], 1, "{:?}", job.reason);
}

/// A local-only undo whose run died with two removals in doubt, one that had reached the
/// appliance and one that had not: the next run, with the target site down, asks the VMs' tasks
/// (not the replication list, which it cannot read), follows the first and sends the second.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_doubt_local_only_removals_are_settled_by_the_vms_tasks_with_the_target_site_down() {
    use vrbulk::domain::OperationSpec;
    use vrbulk::queue::{OperationJob, Save, Step};

    let sim = start(SimConfig::fast()).await;
    let site = Site::new(&sim);
    let wave = configure(&sim, &site, "wave", &normal_vms(&sim, 0, 2)).await;
    // The undo's run died a minute ago, its leases long run out.
    let (mut q, _) = fixtures::queue_at(&site.db, system_clock()() - 60_000);
    let configured = q.jobs(wave).unwrap();
    let spec = OperationSpec::Unconfigure {
        retain_replica_disks: false,
        local_only: true,
    };
    let jobs: Vec<OperationJob> = configured
        .iter()
        .map(|j| OperationJob {
            acts_on_job: j.id,
            spec: spec.clone(),
        })
        .collect();
    let undo = q
        .create_operation_batch(&new_batch("undo"), Operation::Unconfigure, wave, &jobs)
        .unwrap();
    let held = q
        .claim(Some(undo), 2, "a run that died", Duration::from_millis(100))
        .unwrap();
    for job in &held {
        for step in [Step::ResolveTarget, Step::Submit] {
            let save = Save {
                lease: job.lease().unwrap(),
                step,
                checkpoint: job.checkpoint.clone(),
                in_doubt: Some(step == Step::Submit),
            };
            q.save_all(&[save]).unwrap();
        }
    }
    drop(q);
    // The first job's DELETE reached the appliance before the run died; the second's did not.
    let reached = held[0].checkpoint.replication_id.clone().unwrap();
    let client = crate::support::harness::client_for(&sim).await;
    let pairing = sim.inventory().pairing_id;
    client
        .destroy_replication(&pairing, &reached, false)
        .await
        .unwrap();
    sim.set_target_down(true);
    let lists_before = calls(&sim, "getAllReplications");

    let opts = RunOptions {
        batch: Some(undo),
        poll_interval: Duration::from_millis(200),
        ..RunOptions::default()
    };
    let (_stop, stop_rx) = watch::channel(false);
    let outcome = runner::run(
        Queue::open(&site.db).unwrap(),
        settings_for(&sim),
        opts,
        stop_rx,
    )
    .await
    .unwrap();

    let jobs = Queue::open(&site.db).unwrap().jobs(undo).unwrap();
    assert_eq!(
        outcome.counts[&JobState::Succeeded],
        2,
        "{:?}",
        jobs.iter().map(|j| &j.reason).collect::<Vec<_>>()
    );
    let ours: BTreeSet<String> = site.replications(wave).into_values().collect();
    assert_once_each(&sim, "destroy", &ours);
    assert_eq!(
        calls(&sim, "destroyReplication"),
        2,
        "a removal was sent twice"
    );
    assert_eq!(calls(&sim, "getAllReplications"), lists_before);
    let inv = sim.inventory();
    assert!(inv.replications.iter().all(|r| !ours.contains(&r.id)));
}

/// A null `target_replication_server_id` means "place it automatically" in the spec: a
/// reconfigure that does not ask for another VR server sends the replication's own, so that an
/// RPO change never moves it.
#[test]
fn a_reconfigure_that_names_no_vr_server_keeps_the_replications_own() {
    use vrbulk::domain::SettingsChange;
    use vrbulk::vr::model::{Pairing, ReplicatedVmDisk, ReplicationInfo, ReplicationServerInfo};
    use vrbulk::workflow::operations::reconfigure_spec;
    use vrbulk::workflow::Discovery;

    let pairing: Pairing = serde_json::from_value(serde_json::json!({
        "pairing_id": "p-1",
        "local_vc_server": {"id": "vc-a"},
        "remote_vc_server": {"id": "vc-b", "name": "vc-site-b"},
    }))
    .unwrap();
    let server: ReplicationServerInfo = serde_json::from_value(serde_json::json!({
        "id": "HmsRemoteHbrServer:HBRSRV-2",
        "uuid": "HBRSRV-2",
        "name": "vrs-target-02",
        "connected": true,
    }))
    .unwrap();
    let disks: Vec<ReplicatedVmDisk> = serde_json::from_value(serde_json::json!([{
        "vm_disk": {"vm_id": "VirtualMachine:vm-1:vc-a", "device_key": 2000, "is_vm_home": false},
        "replicated": true,
        "destination_path": {"datastore_id": "ds-1", "path": "app-1/app-1.vmdk"},
    }]))
    .unwrap();
    let replication = ReplicationInfo {
        id: "GID-1".into(),
        rpo: Some(60),
        replication_server_name: Some("vrs-target-02".into()),
        target_replication_server_uuid: Some("HBRSRV-2".into()),
        ..ReplicationInfo::default()
    };
    let site = Discovery {
        pairing,
        local_vc_id: "vc-a".into(),
        remote_vc_id: "vc-b".into(),
        remote_vc_name: "vc-site-b".into(),
        target_vrms_id: "vrms-b".into(),
        replication_servers: vec![server],
        datastores: Vec::new(),
        storage_policies: Vec::new(),
        replications: Default::default(),
    };
    let rpo = SettingsChange {
        rpo: Some(15),
        ..SettingsChange::default()
    };
    let body = reconfigure_spec(&replication, &disks, &rpo, &site).unwrap();
    assert_eq!(body.rpo, 15);
    assert_eq!(
        body.target_replication_server_id.as_deref(),
        Some("HmsRemoteHbrServer:HBRSRV-2"),
        "an RPO change leaves the VR server to automatic placement"
    );
}

/// How a killed undo is taken up again.
#[derive(Clone, Copy, PartialEq)]
enum Again {
    /// `vrbulk run --batch <undo batch>`.
    Run,
    /// The same `undo` command.
    SameCommand,
}

/// A wave of VMs to act on, and another batch's five beside it that nothing may touch.
struct Waves {
    names: Vec<String>,
    wave: BatchId,
    ours: BTreeSet<String>,
    theirs: BTreeSet<String>,
}

/// Configures `n` VMs as batch "wave" and the next five as "other".
async fn waves(sim: &Simulator, site: &Site, n: usize) -> Waves {
    let names = normal_vms(sim, 0, n);
    let wave = configure(sim, site, "wave", &names).await;
    let other = configure(sim, site, "other", &normal_vms(sim, n, 5)).await;
    Waves {
        names,
        wave,
        ours: site.replications(wave).into_values().collect(),
        theirs: site.replications(other).into_values().collect(),
    }
}

/// Runs the newest undo of `wave` to its end, which must see all its `n` jobs succeed.
async fn resume_to_the_end(site: &Site, wave: BatchId, n: usize) {
    let undo = newest(site, Operation::Unconfigure, wave);
    let ran = site
        .vrbulk(&["run", "--batch", &undo.to_string(), "--progress", "none"])
        .await;
    assert_code(&ran, 0);
    let jobs = Queue::open(&site.db).unwrap().jobs(undo).unwrap();
    assert_eq!(jobs.len(), n);
    for j in &jobs {
        assert_eq!(
            j.state,
            JobState::Succeeded,
            "{}: {:?}",
            j.vm_label(),
            j.reason
        );
    }
}

/// The appliance's record: none of the wave's replications is left, and the other batch's
/// five are all there, untouched.
fn assert_only_ours_gone(sim: &Simulator, waves: &Waves) {
    assert!(touched(sim).is_disjoint(&waves.theirs));
    let inv = sim.inventory();
    assert!(inv.replications.iter().all(|r| !waves.ours.contains(&r.id)));
    assert_eq!(
        inv.replications
            .iter()
            .filter(|r| waves.theirs.contains(&r.id))
            .count(),
        5
    );
}

/// Starts `undo --batch WAVE EXTRA…` and SIGKILLs it after a random number of jobs have moved,
/// then takes the undo up again (`again`) and kills that too, `rounds` times in all: at least
/// two of the kills must land on running jobs, or the test proves nothing.
async fn undo_killed_at_random_moments(
    site: &Site,
    wave: &str,
    extra: &[&str],
    seed: u64,
    again: Again,
    rounds: usize,
) {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut killed_mid_work = 0;
    for round in 0..rounds {
        // The first round creates the undo batch; the next ones resume it, as an operator would.
        let undo = Queue::open(&site.db)
            .unwrap()
            .batches()
            .unwrap()
            .into_iter()
            .find(|b| b.operation == Operation::Unconfigure);
        // Progress comes in lumps (a pass's checkpoints at once): on a loaded machine a kill
        // may land late. A quarter of the batch is kept for what comes after the kills.
        if let Some(b) = &undo {
            let counts = counts(site, b.id);
            let left = counts[&JobState::Pending]
                + counts[&JobState::Running]
                + counts[&JobState::Retryable];
            let all: u64 = counts.values().sum();
            if left * 4 < all {
                break;
            }
        }
        let mut child = match &undo {
            Some(b) if again == Again::Run => {
                site.spawn(&["run", "--batch", &b.id.to_string(), "--progress", "none"])
            }
            _ => {
                let mut args = vec!["undo", "--batch", wave];
                args.extend_from_slice(extra);
                args.extend(["--yes", "--progress", "none"]);
                site.spawn(&args)
            }
        };
        let target = progress(&site.db) + rng.usize(1..40);
        let deadline = std::time::Instant::now() + Duration::from_secs(15);
        while progress(&site.db) < target && std::time::Instant::now() < deadline {
            if child.try_wait().unwrap().is_some() {
                break;
            }
            // Paced on purpose, not waiting for anything: a random step between looks moves the
            // kill off the lumps progress comes in. Past the deadline (the run did less than the
            // target), or once the run has ended, it is killed anyway: a round proves nothing
            // then, and the count of kills that hit running jobs below says so.
            tokio::time::sleep(Duration::from_millis(rng.u64(5..40))).await;
        }
        // SIGKILL: no chance to release anything.
        child.kill().ok();
        child.wait().unwrap();
        if let Some(b) = undo {
            let counts = Queue::open(&site.db).unwrap().counts(b.id).unwrap();
            eprintln!(
                "round {round}: killed at {}: {counts:?}",
                progress(&site.db)
            );
            if counts[&JobState::Running] > 0 {
                killed_mid_work += 1;
            }
        }
    }
    assert!(
        killed_mid_work >= 2,
        "only {killed_mid_work} kills hit running jobs"
    );
}

/// Jobs of `batch` per state, from the queue.
fn counts(site: &Site, batch: BatchId) -> BTreeMap<JobState, u64> {
    Queue::open(&site.db).unwrap().counts(batch).unwrap()
}

/// Waits (with a deadline) until `done` holds for the queue's counts of `batch`.
async fn wait_for(
    site: &Site,
    batch: BatchId,
    what: &str,
    done: impl Fn(&BTreeMap<JobState, u64>) -> bool,
) {
    eventually(Duration::from_secs(60), what, async || {
        let now = counts(site, batch);
        if done(&now) {
            Ok(())
        } else {
            Err(format!("{now:?}"))
        }
    })
    .await;
}

/// The replications the simulator created for `names`, by its own record.
fn created_for(sim: &Simulator, names: &[String]) -> BTreeSet<String> {
    sim.stats()
        .replications
        .into_iter()
        .filter(|(_, r)| names.contains(&r.vm_name))
        .map(|(id, _)| id)
        .collect()
}

/// Issue 17: `undo --batch 1 --yes` while `run` was still configuring batch 1 covered the 3
/// VMs configured so far, exited 0 and said nothing of the others. It is refused now, naming
/// them and why, and `--wait` waits for the run and then undoes every replication the batch
/// created: judged by the simulator's record of what it created and what it unconfigured.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_undo_while_the_batch_is_still_being_configured_is_refused_and_with_wait_covers_it_all()
{
    // 4 requests per 2 s and 2 VMs per configure call: 12 VMs take the run several seconds.
    let sim = start(SimConfig {
        vms: 60,
        task_seconds: 1.0,
        limits: Some(RateLimits {
            per_session: 4,
            ..RateLimits::scaled(FAST_WINDOW)
        }),
        ..SimConfig::fast()
    })
    .await;
    let site = Site::new(&sim);
    let other_names = normal_vms(&sim, 12, 3);
    configure(&sim, &site, "other", &other_names).await;
    let names = normal_vms(&sim, 0, 12);
    let specs: Vec<JobSpec> = names.iter().map(|n| spec(n)).collect();
    let wave = fixtures::import(
        &site.db,
        &NewBatch {
            max_attempts: 8,
            ..new_batch("wave")
        },
        &specs,
    );
    let wave_arg = wave.to_string();
    let mut run = site.spawn(&[
        "run",
        "--batch",
        &wave_arg,
        "--submit-group",
        "2",
        // Every VM as soon as the budget lets it: the syncs here last real hours.
        "--max-initial-syncs",
        "all",
        "--progress",
        "none",
    ]);
    wait_for(&site, wave, "some configured", |c| {
        c[&JobState::Succeeded] >= 2
    })
    .await;
    let batches = site.batches();

    let refused = site.vrbulk(&["undo", "--batch", &wave_arg, "--yes"]).await;
    let left = counts(&site, wave);
    assert!(
        left[&JobState::Succeeded] < 12,
        "the run ended before the undo was tried: {left:?}"
    );
    assert_code(&refused, 2);
    let said = refused.stderr();
    assert!(
        said.contains("still being configured by a live run"),
        "{said}"
    );
    assert!(said.contains("Not covered: "), "{said}");
    assert!(
        said.contains("--wait") && said.contains("--only-finished"),
        "{said}"
    );
    assert!(
        said.contains(names.last().unwrap().as_str()) || said.contains(" more"),
        "{said}"
    );
    assert_eq!(site.batches(), batches, "a refused undo created a batch");
    assert!(
        sim.stats()
            .journal
            .iter()
            .all(|r| r.op != "unconfigureReplication"),
        "a refused undo sent something"
    );

    let waited = site
        .vrbulk(&[
            "undo",
            "--batch",
            &wave_arg,
            "--yes",
            "--wait",
            "--progress",
            "none",
        ])
        .await;
    assert_code(&waited, 0);
    assert!(
        waited.stderr().contains("waiting: batch"),
        "{}",
        waited.stderr()
    );
    assert_eq!(run.wait().unwrap().code(), Some(0), "the configure run");
    // Every replication the configure batch created, by the appliance's own record, was
    // unconfigured once; the other wave's were not touched.
    let created = created_for(&sim, &names);
    assert_eq!(created.len(), 12, "{created:?}");
    assert_once_each(&sim, "unconfigure", &created);
    assert!(touched(&sim).is_disjoint(&created_for(&sim, &other_names)));
}

/// `--only-finished` acts on what the batch configured so far, names what it leaves out, and
/// records it on the operation batch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_finished_pauses_what_is_configured_and_names_the_vms_left_out() {
    let sim = start(SimConfig::fast()).await;
    let site = Site::new(&sim);
    let names = normal_vms(&sim, 0, 4);
    // Two VMs aimed at a datastore the target site lacks fail; `retry` queues them again.
    let mut specs: Vec<JobSpec> = names.iter().map(|n| spec(n)).collect();
    for s in &mut specs[2..] {
        s.target_datastore = "no-such-datastore".into();
    }
    let wave = fixtures::import(&site.db, &new_batch("wave"), &specs);
    run_to_end(&sim, &site, wave).await;
    let requeued = Queue::open(&site.db)
        .unwrap()
        .requeue(wave, &[JobState::Failed], "retry")
        .unwrap();
    assert_eq!(requeued, 2);
    let wave_arg = wave.to_string();
    let refused = site.vrbulk(&["pause", "--batch", &wave_arg]).await;
    assert_code(&refused, 2);
    let why = format!("not configured yet (batch {wave} had jobs queued again since its last run)");
    assert!(refused.stderr().contains(&why), "{}", refused.stderr());
    assert!(
        refused.stderr().contains("vrbulk run --batch"),
        "{}",
        refused.stderr()
    );
    // A plan shows the configured ones and names the others.
    let plan = site
        .vrbulk(&["pause", "--batch", &wave_arg, "--plan"])
        .await;
    assert_code(&plan, 0);
    assert!(plan.stdout().contains("2 to pause"), "{}", plan.stdout());
    assert!(
        plan.stderr()
            .starts_with(&format!("note: 2 VMs of batch {wave} are {why}")),
        "{}",
        plan.stderr()
    );

    let ran = site
        .vrbulk(&[
            "pause",
            "--batch",
            &wave_arg,
            "--only-finished",
            "--progress",
            "none",
        ])
        .await;
    assert_code(&ran, 0);
    assert!(
        ran.stderr().contains(&format!(
            "leaves out 2 VMs of batch {wave}, {why}: {}, {}",
            names[2], names[3]
        )),
        "{}",
        ran.stderr()
    );
    let paused: BTreeSet<String> = site.replications(wave).into_values().collect();
    assert_eq!(paused.len(), 2);
    assert_once_each(&sim, "pause", &paused);
    let pause = newest(&site, Operation::Pause, wave);
    let record = Queue::open(&site.db).unwrap().batch(pause).unwrap();
    assert_eq!(record.settings["only_finished"], true);
    assert_eq!(
        record.settings["left_out"],
        serde_json::json!([names[2], names[3]])
    );
}

/// Issue 17: after a killed `undo`, the same `undo --batch 1 --yes` printed a line per VM ("VM
/// has an unfinished job in batch 2 …") and did nothing. The same command resumes its own batch
/// now, with one line that says so; killed five times at random moments and run again each
/// time, it unconfigures every replication the batch created exactly once, by the simulator's
/// record, through one undo batch. The same command asked otherwise is refused with what
/// differs, and one whose batch a live run works on is left to it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_undo_run_again_after_a_kill_resumes_its_batch_and_unconfigures_each_once() {
    let sim = slow_simulator().await;
    let site = Site::new(&sim);
    // 60 VMs and four kills: the kills cannot reach the end, so work is left to resume.
    let waves = waves(&sim, &site, 60).await;
    let Waves {
        ref names,
        wave,
        ref ours,
        ..
    } = waves;
    let wave_arg = wave.to_string();

    undo_killed_at_random_moments(&site, &wave_arg, &[], 7, Again::SameCommand, 4).await;
    let undo = newest(&site, Operation::Unconfigure, wave);
    let left = counts(&site, undo);
    assert!(
        left[&JobState::Pending] + left[&JobState::Running] + left[&JobState::Retryable] > 0,
        "the kills left nothing to resume"
    );
    let undo_arg = undo.to_string();

    // Asked otherwise: refused in one line that says what differs and how to go on.
    let sent = sim.stats().journal.len();
    let differs = site
        .vrbulk(&[
            "undo",
            "--batch",
            &wave_arg,
            "--keep-replica-disks",
            "--yes",
        ])
        .await;
    assert_code(&differs, 2);
    let said = differs.stderr();
    assert!(
        said.contains("--keep-replica-disks: false in batch")
            && said.contains(&format!("vrbulk run --batch {undo}"))
            && said.contains(&format!("vrbulk cancel --batch {undo}")),
        "{said}"
    );
    assert_eq!(said.lines().count(), 1, "{said}");
    assert!(
        sim.stats().journal[sent..].is_empty(),
        "a refused undo asked the appliance"
    );

    // While a live run works on it, the same command leaves it to that run.
    let mut live = site.spawn(&["run", "--batch", &undo_arg, "--progress", "none"]);
    let pid = format!(":{}:", live.id());
    let liveness = |owner: &str| {
        if owner.contains(&pid) {
            Liveness::Alive
        } else {
            Liveness::Gone
        }
    };
    eventually(
        Duration::from_secs(20),
        "the live run to work on the undo",
        async || {
            let standing = Queue::open(&site.db)
                .unwrap()
                .summary(undo, &liveness)
                .unwrap()
                .standing;
            match standing {
                Standing::Running { .. } => Ok(()),
                other => Err(format!("{other:?}")),
            }
        },
    )
    .await;
    let held = site.vrbulk(&["undo", "--batch", &wave_arg, "--yes"]).await;
    assert!(
        live.try_wait().unwrap().is_none(),
        "the live run ended first"
    );
    assert_code(&held, 2);
    assert!(
        held.stderr().contains("is running now"),
        "{}",
        held.stderr()
    );
    live.kill().ok();
    live.wait().unwrap();

    let ran = site
        .vrbulk(&["undo", "--batch", &wave_arg, "--yes", "--progress", "none"])
        .await;
    assert_code(&ran, 0);
    let first = ran.stderr().lines().next().unwrap_or_default().to_string();
    assert!(
        first.starts_with(&format!("resuming batch {undo} \"undo of batch {wave}\" (")),
        "{}",
        ran.stderr()
    );
    assert!(!ran.stderr().contains("unfinished job"), "{}", ran.stderr());
    let q = Queue::open(&site.db).unwrap();
    let undos: Vec<_> = q
        .batches()
        .unwrap()
        .into_iter()
        .filter(|b| b.operation == Operation::Unconfigure)
        .collect();
    assert_eq!(undos.len(), 1, "one undo batch, resumed");
    assert!(q
        .jobs(undo)
        .unwrap()
        .iter()
        .all(|j| j.state == JobState::Succeeded));
    assert_once_each(&sim, "unconfigure", ours);
    assert_eq!(&created_for(&sim, names), ours);
    assert!(touched(&sim).is_disjoint(&waves.theirs));
}

/// The same for the other day-2 commands: a killed `pause` run again resumes its batch and
/// pauses each replication once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_pause_run_again_after_a_kill_resumes_its_batch() {
    let sim = slow_simulator().await;
    let site = Site::new(&sim);
    let names = normal_vms(&sim, 0, 30);
    let wave = configure(&sim, &site, "wave", &names).await;
    let ours: BTreeSet<String> = site.replications(wave).into_values().collect();
    let wave_arg = wave.to_string();
    let args = [
        "pause",
        "--batch",
        &wave_arg,
        "--vm",
        "*",
        "--progress",
        "none",
    ];
    let mut child = site.spawn(&args);
    eventually(
        Duration::from_secs(30),
        "the pause to move ten steps",
        async || progress(&site.db) >= 10,
    )
    .await;
    child.kill().ok();
    child.wait().unwrap();
    let pause = newest(&site, Operation::Pause, wave);
    assert!(
        counts(&site, pause)[&JobState::Succeeded] < 30,
        "killed too late"
    );

    let ran = site.vrbulk(&args).await;
    assert_code(&ran, 0);
    assert!(
        ran.stderr()
            .starts_with(&format!("resuming batch {pause} \"pause of batch {wave}\"")),
        "{}",
        ran.stderr()
    );
    assert_eq!(site.batches(), 2, "the wave and one pause batch");
    assert_once_each(&sim, "pause", &ours);
}

/// Issue 17: `plan` without `--batch` planned the newest batch, an undo already done, and
/// passed a script's gate with "0 to configure". It plans the newest configure batch with jobs
/// left and names it with why on its first line; a day-2 batch or a batch with nothing left is
/// "nothing to plan" (exit 2). A plan configures nothing: the simulator's record says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_without_a_batch_plans_the_newest_configure_batch_with_jobs_left_never_an_undo() {
    let sim = start(SimConfig::fast()).await;
    let site = Site::new(&sim);
    let wave = configure(&sim, &site, "wave", &normal_vms(&sim, 0, 3)).await;
    let next = normal_vms(&sim, 3, 4);
    let specs: Vec<JobSpec> = next.iter().map(|n| spec(n)).collect();
    let wave2 = fixtures::import(&site.db, &new_batch("wave 2"), &specs);
    let undone = site
        .vrbulk(&[
            "undo",
            "--batch",
            &wave.to_string(),
            "--yes",
            "--progress",
            "none",
        ])
        .await;
    assert_code(&undone, 0);
    let undo = newest(&site, Operation::Unconfigure, wave);
    let configured = sim.stats().configure_attempts;

    let plan = site.vrbulk(&["plan"]).await;
    assert_code(&plan, 0);
    let first = plan.stdout().lines().next().unwrap_or_default().to_string();
    assert!(
        first.starts_with(&format!(
            "plan for batch {wave2} \"wave 2\" (the newest configure batch with jobs left; newer: \
             {undo} \"undo of batch {wave}\" (a day-2 operation)): 4 to configure, 0 to skip, 0 \
             would fail ("
        )),
        "{first}"
    );
    for vm in &next {
        assert!(plan.stdout().contains(vm.as_str()), "{}", plan.stdout());
    }
    let json = site.vrbulk(&["plan", "--json"]).await;
    assert_code(&json, 0);
    assert!(
        json.stderr()
            .starts_with(&format!("planning batch {wave2} \"wave 2\" (the newest")),
        "{}",
        json.stderr()
    );
    let rows: Vec<serde_json::Value> = serde_json::from_str(&json.stdout()).unwrap();
    assert_eq!(rows.len(), 4);

    let named = site.vrbulk(&["plan", "--batch", &undo.to_string()]).await;
    assert_code(&named, 2);
    assert!(
        named.stderr().contains(&format!(
            "nothing to plan: batch {undo} \"undo of batch {wave}\" is an undo batch of batch \
             {wave}"
        )) && named
            .stderr()
            .contains(&format!("vrbulk undo --batch {wave} --plan")),
        "{}",
        named.stderr()
    );
    let ended = site.vrbulk(&["plan", "--batch", &wave.to_string()]).await;
    assert_code(&ended, 2);
    assert!(
        ended.stderr().contains(&format!(
            "every job of batch {wave} \"wave\" has ended (3 succeeded)"
        )),
        "{}",
        ended.stderr()
    );

    run_to_end(&sim, &site, wave2).await;
    let nothing = site.vrbulk(&["plan"]).await;
    assert_code(&nothing, 2);
    assert!(
        nothing.stderr().contains(&format!(
            "nothing to plan: no configure batch has jobs left (the newest, batch {wave2} \"wave \
             2\": 4 succeeded)"
        )),
        "{}",
        nothing.stderr()
    );
    assert!(nothing.stdout().is_empty(), "{}", nothing.stdout());
    // The plans configured nothing: only the run of wave 2 did.
    let after = sim.stats().configure_attempts;
    let new: Vec<&String> = after
        .keys()
        .filter(|vm| !configured.contains_key(*vm))
        .collect();
    assert_eq!(new.len(), 4, "{new:?}");
}
