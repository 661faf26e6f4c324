//! `vrbulk run` against the simulator: a large batch under errors, throttling and expiring
//! sessions ends as the simulator's truth dictates; crashes and Ctrl-C lose nothing and never
//! configure a VM twice; a bad spec in a group sinks only itself.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::sync::watch;
use vrbulk::domain::ReplicationSettings;
use vrbulk::domain::{JobSpec, VmRef};
use vrbulk::queue::{Job, JobState, NewBatch, Queue};
use vrbulk::runner::{self, Ending, InitialSyncs, RunOptions, RunOutcome, SubmitOrder};
use vrbulk::sim::{Inventory, RateLimits, SimConfig, Simulator, VmKind, FAST_WINDOW};
use vrbulk::vr::ClientSettings;

use crate::support::bounds::{call_bound, peak_refusals, refusals_per_window};
use crate::support::cmd::Cmd;
use crate::support::fixtures::{self, config_for, new_batch};
use crate::support::harness::{configured_wave, normal_specs, settings_for, sim_limited, start};
use crate::support::wait::eventually;

/// One job per source VM: most onto healthy datastores, every seventh onto the full one.
fn jobs_for(inv: &Inventory) -> Vec<JobSpec> {
    let datastores = ["ds-gold-01", "ds-silver-01", "ds-bronze-01"];
    inv.vms
        .iter()
        .enumerate()
        .map(|(i, vm)| JobSpec {
            line: Some(i as u64 + 2),
            vm: VmRef {
                name: Some(vm.vm.name.clone()),
                id: None,
            },
            pairing: Some("vc-site-b.corp.local".into()),
            target_datastore: if i % 7 == 3 && vm.kind == VmKind::Normal {
                "ds-full-01".into()
            } else {
                datastores[i % 3].into()
            },
            storage_policy: (i % 2 == 0).then(|| "VR Gold".to_string()),
            replication_server: (i % 5 == 0).then(|| "vrs-target-02".to_string()),
            settings: ReplicationSettings {
                rpo: [15, 30, 60, 240][i % 4],
                mpit_instances: (i % 4 == 1) as u32 * 3,
                mpit_days: (i % 4 == 1) as u32,
                ..ReplicationSettings::default()
            },
            change_ticket: Some("CHG0042".into()),
            notes: None,
        })
        .collect()
}

pub(crate) fn import(db: &Path, jobs: &[JobSpec]) -> i64 {
    let batch = NewBatch {
        operator: "test".into(),
        host: "test".into(),
        max_attempts: 8,
        ..new_batch("test")
    };
    fixtures::import(db, &batch, jobs)
}

/// `dir/q.db` with one job per VM of the simulator: the database and the batch.
fn import_all(sim: &Simulator, dir: &Path) -> (PathBuf, i64) {
    let db = dir.join("q.db");
    let batch = import(&db, &jobs_for(&sim.inventory()));
    (db, batch)
}

/// One `runner::run` over the queue at `db` that nobody stops.
pub(crate) async fn run_once(db: &Path, sim: &Simulator, opts: RunOptions) -> RunOutcome {
    let (_stop, stop_rx) = watch::channel(false);
    runner::run(Queue::open(db).unwrap(), settings_for(sim), opts, stop_rx)
        .await
        .unwrap()
}

/// Options for tests of the queue's mechanics (placement, retries, kills, windows): every VM
/// admitted at once, in the batch's order, so that each test knows which VM goes where. Admission
/// has its own tests (`admission`, `protection`), and the binary's tests run its default.
pub(crate) fn quick_options() -> RunOptions {
    RunOptions {
        max_initial_syncs: InitialSyncs::All,
        order: SubmitOrder::Input,
        workers: 4,
        poll_interval: Duration::from_millis(200),
        retry_base: Duration::from_millis(100),
        retry_cap: Duration::from_secs(1),
        request_retries: 6,
        ..RunOptions::default()
    }
}

/// Every job ended as the simulator's truth says it must, with its proper reason.
fn assert_matches_truth(jobs: &[Job], sim: &Simulator) {
    let inv = sim.inventory();
    let kinds: HashMap<&str, VmKind> = inv
        .vms
        .iter()
        .map(|v| (v.vm.name.as_str(), v.kind))
        .collect();
    for job in jobs {
        let kind = kinds[job.vm_label()];
        let reason = job.reason.as_deref().unwrap_or("");
        match (kind, job.spec.target_datastore.as_str()) {
            (VmKind::Template, _) => {
                assert_eq!(job.state, JobState::Skipped, "{}", job.vm_label());
                assert!(reason.contains("template"), "{reason}");
            }
            (VmKind::AlreadyReplicated, _) => {
                assert_eq!(job.state, JobState::Skipped, "{}", job.vm_label());
                assert!(reason.contains("already replicated"), "{reason}");
                assert!(job.checkpoint.replication_id.is_some());
            }
            // Found full before anything was sent, not by a task on the appliance.
            (_, "ds-full-01") => {
                assert_eq!(job.state, JobState::Failed, "{}", job.vm_label());
                assert!(
                    reason.starts_with("datastore 'ds-full-01' has 1.2 GiB free; this VM needs"),
                    "{reason}"
                );
            }
            _ => {
                assert_eq!(
                    job.state,
                    JobState::Succeeded,
                    "{} {:?}",
                    job.vm_label(),
                    job
                );
                let rep = job.checkpoint.replication_id.as_deref().unwrap();
                assert!(
                    inv.replications.iter().any(|r| r.id == rep),
                    "{rep} not on the server"
                );
            }
        }
    }
    let stats = sim.stats();
    assert!(
        stats.configured_more_than_once.is_empty(),
        "configured twice: {:?}",
        stats.configured_more_than_once
    );
}

/// The limiter's record of a run: nothing refused, and no session or address ever over its
/// quota in any window-long interval, wherever the server's windows fall.
fn assert_within_quota(sim: &Simulator) {
    let stats = sim.stats();
    let limits = sim.limits();
    assert_eq!(stats.status_429, 0, "{:?}", stats.limiter);
    let peak = &stats.limiter.peak_in_any_window;
    assert!(peak["session"] <= limits.per_session, "{peak:?}");
    assert!(peak["ip"] <= limits.per_ip, "{peak:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_hundred_vms_at_the_appliances_limits_are_never_refused() {
    // The appliance's quotas over 2 s windows, and the first boundary 0.7 s after the start.
    let sim = start(SimConfig {
        vms: 300,
        limits: Some(RateLimits {
            offset: Duration::from_millis(1300),
            ..RateLimits::scaled(FAST_WINDOW)
        }),
        ..SimConfig::fast()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let (db, batch) = import_all(&sim, dir.path());
    let outcome = run_once(&db, &sim, quick_options()).await;

    assert_eq!(outcome.ending, Ending::Done);
    let jobs = Queue::open(&db).unwrap().jobs(batch).unwrap();
    assert_eq!(jobs.len(), 300);
    assert_matches_truth(&jobs, &sim);
    assert_within_quota(&sim);
    assert_eq!(outcome.budget.refusals, 0);
    // The appliance's count against DESIGN.md's lower bound, with one poll round of the wave's
    // tasks (pages of `page_size`). Half as much again covers what the formula leaves out and
    // a healthy run still makes: the logout, the pairing's replications read by discovery and,
    // in groups, to verify what was configured, and a poll round or two while the last tasks
    // run. A cascade of small groups or of polls goes far past it.
    let stats = sim.stats();
    let configured = stats.replications.len();
    let polls = configured.div_ceil(settings_for(&sim).page_size as usize);
    let bound = call_bound(300, polls) as f64 * 1.5;
    eprintln!(
        "{} calls for 300 VMs, a bound of {bound}: {:?}",
        stats.journal.len(),
        stats.calls
    );
    assert!(stats.journal.len() as f64 <= bound, "{:?}", stats.calls);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quotas_lower_than_configured_slow_the_run_down_but_fail_no_job() {
    // The client keeps to the appliance's defaults (50 a session, 100 an address); this
    // appliance's admin allows 20 and 40, and says nothing of when to come back. Sessions
    // expire and 5 % of the calls fail on top.
    let sim = start(SimConfig {
        vms: 200,
        task_seconds: 0.4,
        fail_rate: 0.05,
        session_ttl: Some(Duration::from_millis(1500)),
        limits: Some(RateLimits {
            per_session: 20,
            per_ip: 40,
            ..RateLimits::scaled(FAST_WINDOW)
        }),
        ..SimConfig::fast()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let (db, batch) = import_all(&sim, dir.path());
    let mut settings = settings_for(&sim);
    settings.limits = RateLimits::scaled(FAST_WINDOW).client_limits();
    let (_stop, stop_rx) = watch::channel(false);
    let outcome = runner::run(
        Queue::open(&db).unwrap(),
        settings,
        quick_options(),
        stop_rx,
    )
    .await
    .unwrap();

    assert_eq!(outcome.ending, Ending::Done);
    let q = Queue::open(&db).unwrap();
    let jobs = q.jobs(batch).unwrap();
    assert_eq!(jobs.len(), 200);
    assert_matches_truth(&jobs, &sim);
    assert_eq!(
        outcome.exit_code().code(),
        1,
        "the full-datastore VMs failed"
    );
    for job in &jobs {
        let events = q.events(job.id).unwrap();
        assert!(
            events.iter().all(|e| e.http_status != Some(429)
                && !e.message.as_deref().unwrap_or("").contains("HTTP 429")),
            "{}: {events:?}",
            job.vm_label()
        );
    }

    let stats = sim.stats();
    assert!(
        stats.status_429 > 0,
        "the server never throttled: {stats:?}"
    );
    assert!(
        stats.status_5xx > 0,
        "no server error was injected: {stats:?}"
    );
    assert!(outcome.metrics.relogins > 0, "sessions never expired");
    assert_eq!(outcome.budget.refusals, stats.status_429);
    // Refusals find the quota and the window's boundary, then stop: never more in one window
    // than the budget's design allows (the requests in flight, then one window of probes), far
    // from a ban's worth.
    let peak = peak_refusals(&stats.journal, FAST_WINDOW);
    let allowed = refusals_per_window(quick_options().workers);
    eprintln!(
        "{} refusals, at most {peak} in one window (the design allows {allowed}): {:?}",
        stats.status_429, stats.limiter
    );
    assert!(peak <= allowed, "{:?}", stats.limiter);
    let usage = q.api_usage(batch).unwrap();
    assert!(usage["configureReplication"].calls >= 10, "{usage:?}");
    assert_eq!(
        usage.values().map(|u| u.throttled).sum::<u64>(),
        stats.status_429
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_configure_answer_that_cannot_be_read_is_reconciled_not_failed() {
    let sim = start(SimConfig {
        vms: 30,
        ..SimConfig::fast()
    })
    .await;
    sim.garble_next_configure_answer(2);
    let dir = tempfile::tempdir().unwrap();
    let (db, batch) = import_all(&sim, dir.path());
    let opts = RunOptions {
        submit_group: 4,
        ..quick_options()
    };
    run_once(&db, &sim, opts).await;
    let jobs = Queue::open(&db).unwrap().jobs(batch).unwrap();
    assert_matches_truth(&jobs, &sim);
    let reconciled = jobs
        .iter()
        .filter(|j| j.attempt > 1 && j.state == JobState::Succeeded)
        .count();
    assert!(reconciled >= 2, "the garbled groups were taken up again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_gives_jobs_back_and_the_next_run_finishes_without_duplicates() {
    let sim = start(SimConfig {
        vms: 60,
        task_seconds: 0.6,
        latency_ms: 5,
        ..SimConfig::fast()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let (db, batch) = import_all(&sim, dir.path());

    let (stop, stop_rx) = watch::channel(false);
    let first = tokio::spawn(runner::run(
        Queue::open(&db).unwrap(),
        settings_for(&sim),
        RunOptions {
            submit_group: 5,
            ..quick_options()
        },
        stop_rx,
    ));
    // Ctrl-C in the middle of the work: once the appliance has accepted the first configures.
    eventually(
        Duration::from_secs(20),
        "the run's first configures",
        async || !sim.stats().configure_attempts.is_empty(),
    )
    .await;
    stop.send(true).unwrap();
    let outcome = tokio::time::timeout(Duration::from_secs(8), first)
        .await
        .expect("stops within the grace period")
        .unwrap()
        .unwrap();
    assert_eq!(outcome.ending, Ending::Interrupted);
    assert_eq!(outcome.exit_code().code(), 130);
    assert_eq!(
        outcome.counts[&JobState::Running],
        0,
        "every lease was given back"
    );

    let outcome = run_once(&db, &sim, quick_options()).await;
    assert_eq!(outcome.ending, Ending::Done);
    assert_matches_truth(&Queue::open(&db).unwrap().jobs(batch).unwrap(), &sim);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_configure_answer_lost_after_the_server_acted_is_reconciled_not_resubmitted() {
    let sim = start(SimConfig {
        vms: 30,
        ..SimConfig::fast()
    })
    .await;
    sim.fail_next_configure_after_commit(2);
    let dir = tempfile::tempdir().unwrap();
    let (db, batch) = import_all(&sim, dir.path());
    let opts = RunOptions {
        submit_group: 4,
        ..quick_options()
    };
    run_once(&db, &sim, opts).await;
    let q = Queue::open(&db).unwrap();
    let jobs = q.jobs(batch).unwrap();
    assert_matches_truth(&jobs, &sim);
    // The appliance acted on both calls whose answers were lost: their VMs were settled from
    // its record (their tasks followed), never sent again.
    let reconciled = jobs
        .iter()
        .filter(|j| j.state == JobState::Succeeded)
        .filter(|j| {
            q.events(j.id)
                .unwrap()
                .iter()
                .any(|e| e.message.as_deref().is_some_and(|m| m.contains("HTTP 500")))
        })
        .count();
    assert!(
        reconciled >= 2,
        "the jobs whose answer was lost were taken up again"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_window_that_has_closed_claims_nothing() {
    let sim = start(SimConfig::fast()).await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("q.db");
    let batch = import(&db, &jobs_for(&sim.inventory())[..5]);
    let opts = RunOptions {
        until: Some(0),
        ..quick_options()
    };
    let outcome = run_once(&db, &sim, opts).await;
    assert_eq!(outcome.ending, Ending::WindowClosed);
    assert_eq!(outcome.counts[&JobState::Pending], 5);
    assert!(sim.stats().configure_attempts.is_empty());
    let _ = batch;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_configure_reaches_the_appliance_after_the_window_even_when_submits_wait_for_slots() {
    // The appliance takes four requests a session per 2 s window; vrbulk is told twelve, so
    // its submits meet refusals (429) and wait for the appliance's next windows, past the close.
    let sim = start(sim_limited(300, 4)).await;
    let dir = tempfile::tempdir().unwrap();
    let (db, batch) = import_all(&sim, dir.path());
    let until = vrbulk::queue::system_clock()() + 6_000;
    let mut settings = settings_for(&sim);
    settings.limits.per_session = 12;
    let opts = RunOptions {
        until: Some(until),
        ..quick_options()
    };
    let (_stop, stop_rx) = watch::channel(false);
    let outcome = runner::run(Queue::open(&db).unwrap(), settings, opts, stop_rx)
        .await
        .unwrap();

    // The appliance's record: every change it accepted arrived before the window closed.
    let stats = sim.stats();
    let changes: Vec<_> = stats.accepted_changes().collect();
    assert!(
        !changes.is_empty(),
        "some configures went in the window: {:?}",
        stats.journal
    );
    let late: Vec<_> = changes.iter().filter(|r| r.at_ms >= until).collect();
    assert!(late.is_empty(), "accepted after the window: {late:?}");
    assert!(
        stats.status_429 > 0,
        "the submits did wait for the appliance's slots"
    );

    assert_eq!(outcome.ending, Ending::WindowClosed);
    assert_eq!(outcome.exit_code().code(), 6, "{:?}", outcome.counts);
    assert!(outcome.last_change_at.is_some_and(|t| t < until));
    // What the run calls unsent is what the appliance never received, and it waits, unharmed
    // (no attempt spent, not in doubt), for the next window.
    let q = Queue::open(&db).unwrap();
    let jobs = q.jobs(batch).unwrap();
    let unfinished: Vec<&Job> = jobs.iter().filter(|j| !j.state.is_terminal()).collect();
    assert!(
        !unfinished.is_empty(),
        "the window closed before the batch was done"
    );
    let sent_vms: std::collections::HashSet<&str> = stats
        .configure_attempts
        .keys()
        .map(String::as_str)
        .collect();
    let never_received = unfinished
        .iter()
        .filter(|j| {
            j.checkpoint
                .vm_id
                .as_deref()
                .is_none_or(|vm| !sent_vms.contains(vm))
        })
        .count() as u64;
    assert_eq!(outcome.unsent, never_received);
    assert_eq!(outcome.left(), unfinished.len() as u64);
    assert!(unfinished
        .iter()
        .all(|j| j.state != JobState::Running && !j.in_doubt && j.attempt == 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_during_a_run_stops_every_job_not_yet_sent_within_seconds() {
    let sim = start(sim_limited(120, 6)).await;
    let dir = tempfile::tempdir().unwrap();
    let (db, batch) = import_all(&sim, dir.path());
    let (_stop, stop_rx) = watch::channel(false);
    let opts = RunOptions {
        submit_group: 4,
        ..quick_options()
    };
    let running = tokio::spawn(runner::run(
        Queue::open(&db).unwrap(),
        settings_for(&sim),
        opts,
        stop_rx,
    ));
    // Once the run holds the batch and has sent some of it.
    eventually(
        Duration::from_secs(20),
        "the run's first replications",
        async || !sim.stats().replications.is_empty(),
    )
    .await;
    let db2 = db.clone();
    let asked = vrbulk::queue::system_clock()();
    tokio::task::spawn_blocking(move || {
        Cmd::new()
            .db(&db2)
            .args(["cancel", "--batch", &batch.to_string()])
            .assert_exit(0)
            .stdout_contains("cancels those it has not sent");
    })
    .await
    .unwrap();
    let outcome = tokio::time::timeout(Duration::from_secs(15), running)
        .await
        .expect("the run ends soon after the cancel")
        .unwrap()
        .unwrap();
    let cancelled = outcome.counts[&JobState::Cancelled];
    assert!(cancelled > 50, "{:?}", outcome.counts);
    assert_eq!(outcome.counts[&JobState::Running], 0);
    // Nothing was sent once the run had seen the request (it looks once a second).
    let late: Vec<_> = sim
        .stats()
        .replications
        .into_values()
        .filter(|t| t.submitted.at_ms > asked + 1_500)
        .collect();
    assert!(late.is_empty(), "{late:?}");
    // Every VM the appliance configured ended as such in the queue: what was sent was followed.
    let q = Queue::open(&db).unwrap();
    let configured = sim.stats().configure_attempts.len() as u64;
    let failed_unsent = q
        .jobs(batch)
        .unwrap()
        .iter()
        .filter(|j| j.state == JobState::Failed && j.checkpoint.task_id.is_none())
        .count() as u64;
    assert_eq!(
        outcome.counts[&JobState::Succeeded] + outcome.counts[&JobState::Failed],
        configured + failed_unsent
    );
    let reason = q
        .jobs(batch)
        .unwrap()
        .into_iter()
        .find(|j| j.state == JobState::Cancelled)
        .and_then(|j| j.reason)
        .unwrap();
    assert!(reason.contains("cancelled by"), "{reason}");
}

/// A settings file for the simulator, with a short lease so that a killed run's jobs come back
/// quickly.
/// The binary's settings for the mechanics tests: every VM at once, as [`quick_options`] (the
/// syncs here last real hours).
fn write_config(sim: &Simulator, dir: &Path) -> PathBuf {
    config_for(
        sim,
        dir,
        "\n[run]\nworkers = 4\nsubmit_group = 4\npoll_interval_seconds = 0.2\nlease_seconds = 1\n\
         max_initial_syncs = \"all\"\n",
    )
}

/// 120 VMs, 1 s tasks, 20 ms latency and 12 requests per 2 s session window: a run lasts long
/// enough that a kill or an interrupt lands in the middle of the work.
async fn slow_simulator() -> Simulator {
    start(SimConfig {
        vms: 120,
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

/// `vrbulk run` as a child process, its output captured.
fn spawn_run(db: &Path, config: &Path) -> std::process::Child {
    std::process::Command::new(env!("CARGO_BIN_EXE_vrbulk"))
        .args([
            "--db".as_ref(),
            db.as_os_str(),
            "--config".as_ref(),
            config.as_os_str(),
            "run".as_ref(),
        ])
        .env("VRBULK_PASSWORD", "VMware1!")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

/// Waits until a run holds jobs of `batch`: work is under way.
async fn until_running(db: &Path, batch: i64) {
    eventually(
        Duration::from_secs(20),
        "a run to hold jobs of the batch",
        async || Queue::open(db).unwrap().counts(batch).unwrap()[&JobState::Running] > 0,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_killed_at_random_moments_resumes_without_losing_or_duplicating_anything() {
    let sim = slow_simulator().await;
    let dir = tempfile::tempdir().unwrap();
    let (db, batch) = import_all(&sim, dir.path());
    let config = write_config(&sim, dir.path());

    let events = |db: &Path| -> usize {
        let q = Queue::open(db).unwrap();
        // Steps done and jobs finished: claims and rescues come in lumps and say nothing.
        q.jobs(batch)
            .unwrap()
            .iter()
            .flat_map(|j| q.events(j.id).unwrap())
            .filter(|e| {
                e.message.as_deref().is_some_and(|m| m.starts_with("step "))
                    || matches!(
                        e.to_state,
                        JobState::Succeeded | JobState::Skipped | JobState::Failed
                    )
            })
            .count()
    };
    let mut rng = fastrand::Rng::with_seed(7);
    let mut killed_mid_work = 0;
    for round in 0..5 {
        let mut child = spawn_run(&db, &config);
        // Kill once the run has moved jobs a random amount further: a moment inside the work,
        // whatever the machine's speed.
        let target = events(&db) + rng.usize(1..60);
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while events(&db) < target && std::time::Instant::now() < deadline {
            if child.try_wait().unwrap().is_some() {
                break;
            }
            // Paced on purpose, not waiting for anything: a random step between looks moves the
            // kill off the lumps progress comes in. Past the deadline, or once the run has
            // ended, it is killed anyway: that round proves nothing, and the count of kills
            // that hit running jobs below says so.
            tokio::time::sleep(Duration::from_millis(rng.u64(5..40))).await;
        }
        // SIGKILL: no chance to release anything.
        child.kill().ok();
        child.wait().unwrap();
        let counts = Queue::open(&db).unwrap().counts(batch).unwrap();
        eprintln!(
            "round {round}: killed at {} events: {counts:?}",
            events(&db)
        );
        if counts[&JobState::Running] > 0 {
            killed_mid_work += 1;
        }
    }
    // Progress comes in lumps (a whole group's checkpoint at once), so on a fast machine the
    // last rounds may find the work done; two kills inside it are the least that proves resume.
    assert!(
        killed_mid_work >= 2,
        "only {killed_mid_work} kills hit running jobs"
    );

    let db2 = db.clone();
    let config2 = config.clone();
    let code = tokio::task::spawn_blocking(move || {
        Cmd::new()
            .env("VRBULK_PASSWORD", "VMware1!")
            .db(&db2)
            .config(&config2)
            .args(["run"])
            .run()
            .output
            .status
            .code()
    })
    .await
    .unwrap();
    assert_eq!(code, Some(1), "the full-datastore VMs fail; nothing else");

    let q = Queue::open(&db).unwrap();
    let jobs = q.jobs(batch).unwrap();
    assert_eq!(jobs.len(), 120, "no job lost");
    assert!(
        jobs.iter().all(|j| j.state.is_terminal()),
        "{:?}",
        q.counts(batch)
    );
    assert_matches_truth(&jobs, &sim);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_corrects_the_failed_vms_it_is_told_to_and_says_what_it_changed() {
    let sim = start(SimConfig {
        vms: 40,
        ..SimConfig::fast()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let (db, batch) = import_all(&sim, dir.path());
    run_once(&db, &sim, quick_options()).await;
    let failed: Vec<Job> = Queue::open(&db)
        .unwrap()
        .jobs(batch)
        .unwrap()
        .into_iter()
        .filter(|j| j.state == JobState::Failed)
        .collect();
    assert!(failed.len() >= 2, "{failed:?}");
    let fixed = failed[0].vm_label().to_string();

    let db2 = db.clone();
    let ran = tokio::task::spawn_blocking(move || {
        // A correction that the input rules refuse changes nothing.
        Cmd::new()
            .db(&db2)
            .args(["retry", "--failed", "--rpo", "1"])
            .assert_exit(2)
            .stderr_contains("--rpo: expected minutes between 5 and 1440, got 1");
        Cmd::new()
            .db(&db2)
            .args(["retry", "--failed", "--vm", &fixed.to_uppercase()])
            .args([
                "--target-datastore",
                "ds-gold-01",
                "--change-ticket",
                "CHG0043",
            ])
            .assert_exit(0)
            .stdout_contains("1 failed jobs requeued, with the corrections")
            .stdout()
    })
    .await
    .unwrap();
    assert!(
        ran.contains(&format!("vrbulk run --batch {batch}")),
        "{ran}"
    );

    let queue = Queue::open(&db).unwrap();
    let requeued = queue.job(failed[0].id).unwrap();
    assert_eq!(requeued.state, JobState::Pending);
    assert_eq!(requeued.spec.target_datastore, "ds-gold-01");
    assert_eq!(requeued.spec.change_ticket.as_deref(), Some("CHG0043"));
    let said = queue
        .events(failed[0].id)
        .unwrap()
        .pop()
        .unwrap()
        .message
        .unwrap();
    assert!(
        said.contains("corrected: target_datastore ds-full-01 -> ds-gold-01")
            && said.contains("change_ticket CHG0042 -> CHG0043"),
        "{said}"
    );
    assert_eq!(queue.job(failed[1].id).unwrap().state, JobState::Failed);

    run_once(&db, &sim, quick_options()).await;
    let queue = Queue::open(&db).unwrap();
    let done = queue.job(failed[0].id).unwrap();
    assert_eq!(done.state, JobState::Succeeded, "{done:?}");
    let rep = done.checkpoint.replication_id.clone().unwrap();
    let inv = sim.inventory();
    assert!(inv.replications.iter().any(|r| r.id == rep));
    assert_eq!(
        queue.counts(batch).unwrap()[&JobState::Failed],
        failed.len() as u64 - 1
    );
    // Its first placement was refused before anything was sent: configured once.
    assert!(sim.stats().configured_more_than_once.is_empty());
    // The report files the correction as a change by the operator.
    let report =
        vrbulk::report::Report::load(&queue, batch, vrbulk::queue::system_clock()()).unwrap();
    let md = report.render(vrbulk::report::Format::Md).unwrap();
    let section = &md[md.find("## Changes by the operator").unwrap()..];
    assert!(
        section.contains(&format!("| {} | requeued by ", done.vm_label())),
        "{section}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&report.render(vrbulk::report::Format::Json).unwrap()).unwrap();
    let action = json["operator_actions"][0]["action"].as_str().unwrap();
    assert!(
        action.contains("corrected: target_datastore ds-full-01 -> ds-gold-01"),
        "{action}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_run_on_a_held_batch_says_who_holds_it_and_joins_only_when_told() {
    let sim = slow_simulator().await;
    let dir = tempfile::tempdir().unwrap();
    let (db, batch) = import_all(&sim, dir.path());
    let config = write_config(&sim, dir.path());
    let first = spawn_run(&db, &config);
    until_running(&db, batch).await;
    let (db2, config2, first_pid) = (db.clone(), config.clone(), first.id());
    tokio::task::spawn_blocking(move || {
        let ran = Cmd::new()
            .env("VRBULK_PASSWORD", "VMware1!")
            .db(&db2)
            .config(&config2)
            .args(["run"])
            .assert_exit(2)
            .stderr_contains("is being worked on")
            .stderr_contains("--join");
        // The batch is named once in the error, not once by the command and again by the
        // runner ('running batch 1: batch 1 is being worked on').
        let error = ran.error_line();
        assert!(
            error.starts_with(&format!("error: batch {batch} is being worked on: ")),
            "{error}"
        );
        assert_eq!(
            error.matches(&format!("batch {batch}")).count(),
            1,
            "{error}"
        );
        assert!(
            ran.stderr().contains(&format!(":{first_pid}:")),
            "{}",
            ran.stderr()
        );
        // Told to help, it shares the work through the queue.
        Cmd::new()
            .env("VRBULK_PASSWORD", "VMware1!")
            .db(&db2)
            .config(&config2)
            .args(["run", "--join"])
            .assert_exit(1);
    })
    .await
    .unwrap();
    let out = tokio::task::spawn_blocking(move || first.wait_with_output().unwrap())
        .await
        .unwrap();
    assert!(matches!(out.status.code(), Some(0 | 1)), "{out:?}");
    assert_matches_truth(&Queue::open(&db).unwrap().jobs(batch).unwrap(), &sim);
}

// The refusal used to be advice: two runs starting at once both found no job held (neither had
// claimed yet) and both went on, sharing the batch unasked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn of_two_runs_started_at_once_on_one_batch_only_one_works_on_it() {
    for round in 0..3 {
        // Slow answers: each run's login takes long enough for the other to start meanwhile,
        // before either holds a job.
        let sim = start(SimConfig {
            vms: 12,
            latency_ms: 150,
            ..SimConfig::fast()
        })
        .await;
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("q.db");
        let batch = import(&db, &normal_specs(&sim, 6));
        let started = |db: PathBuf, settings: ClientSettings| async move {
            let (_stop, stop_rx) = watch::channel(false);
            runner::run(
                Queue::open(&db).unwrap(),
                settings,
                quick_options(),
                stop_rx,
            )
            .await
        };
        let (a, b) = tokio::join!(
            tokio::spawn(started(db.clone(), settings_for(&sim))),
            tokio::spawn(started(db.clone(), settings_for(&sim)))
        );
        let (done, refused) = match (a.unwrap(), b.unwrap()) {
            (Ok(done), Err(refused)) | (Err(refused), Ok(done)) => (done, refused),
            other => panic!("round {round}: {other:?}"),
        };
        assert_eq!(done.ending, Ending::Done);
        assert!(
            matches!(&refused, runner::RunError::Held { batch: b, holders } if *b == batch && holders.len() == 1),
            "{refused:?}"
        );
        assert!(
            refused
                .to_string()
                .contains("has just started and holds no job yet"),
            "{refused}"
        );
        // The appliance's record: the refused run never logged in, and every VM was configured
        // once, by the one run.
        let stats = sim.stats();
        assert_eq!(stats.logins, 1, "round {round}");
        assert_eq!(stats.configure_attempts.len(), 6);
        assert!(stats.configure_attempts.values().all(|n| *n == 1));
        assert!(stats.configured_more_than_once.is_empty());
        assert_eq!(Queue::open(&db).unwrap().runs(batch).unwrap().len(), 1);
    }
}

#[tokio::test]
async fn a_wrong_password_exits_3_with_the_reason() {
    let sim = start(SimConfig::fast()).await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("q.db");
    import(&db, &jobs_for(&sim.inventory())[..2]);
    let config = write_config(&sim, dir.path());
    tokio::task::spawn_blocking(move || {
        Cmd::new()
            .env("VRBULK_PASSWORD", "not-it")
            .db(&db)
            .config(&config)
            .args(["run"])
            .assert_exit(3)
            .stderr_contains("HTTP 401");
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn plan_shows_what_would_happen_and_configures_nothing() {
    let sim = start(SimConfig::fast()).await;
    let dir = tempfile::tempdir().unwrap();
    let (db, _) = import_all(&sim, dir.path());
    let config = write_config(&sim, dir.path());
    let out = tokio::task::spawn_blocking(move || {
        Cmd::new()
            .env("VRBULK_PASSWORD", "VMware1!")
            .db(&db)
            .config(&config)
            .args(["plan", "--json"])
            // Some VMs would fail: the ones onto the full datastore.
            .assert_exit(1)
            .stdout()
    })
    .await
    .unwrap();
    let planned: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap();
    let action = |name: &str| {
        planned
            .iter()
            .find(|p| p["vm_name"] == name)
            .map(|p| p["action"].as_str().unwrap().to_string())
            .unwrap()
    };
    assert_eq!(action("tmpl-rhel9-golden"), "skip");
    assert_eq!(action("legacy-erp-01"), "skip");
    assert_eq!(action("db-nvme-01"), "configure");
    let nvme = planned
        .iter()
        .find(|p| p["vm_name"] == "db-nvme-01")
        .unwrap();
    assert_eq!(nvme["excluded_disks"].as_array().unwrap().len(), 1);
    for p in planned
        .iter()
        .filter(|p| p["target_datastore"] == "ds-full-01")
    {
        assert_eq!(p["action"], "fail", "{p}");
        assert!(
            p["reason"].as_str().unwrap().contains("1.2 GiB free"),
            "{p}"
        );
    }
    // Placed automatically, VMs spread over both target VR servers, and the plan says where.
    let auto: Vec<&str> = planned
        .iter()
        .filter_map(|p| p["replication_server"].as_str())
        .filter(|s| s.ends_with(" (auto)"))
        .collect();
    assert!(auto.contains(&"vrs-target-01 (auto)") && auto.contains(&"vrs-target-02 (auto)"));
    assert!(
        sim.stats().configure_attempts.is_empty(),
        "plan configured something"
    );
    assert_eq!(sim.stats().calls.get("configureReplication"), None);
}

#[tokio::test]
async fn vms_that_would_overfill_the_vr_servers_fail_in_the_plan_and_are_never_sent() {
    // One VM of room left on each target VR server (the legacy VM's replication is on the
    // first).
    let sim = start(SimConfig {
        replications_elsewhere: vec![198, 199],
        ..SimConfig::fast()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("q.db");
    let jobs: Vec<JobSpec> = ["app-001", "app-002", "db-003", "app-004"]
        .iter()
        .map(|name| fixtures::spec(name))
        .collect();
    let batch = import(&db, &jobs);
    let config = write_config(&sim, dir.path());
    let db2 = db.clone();
    let out = tokio::task::spawn_blocking(move || {
        Cmd::new()
            .env("VRBULK_PASSWORD", "VMware1!")
            .db(&db2)
            .config(&config)
            .args(["plan", "--json"])
            .assert_exit(1)
            .stdout()
    })
    .await
    .unwrap();
    let planned: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap();
    let servers: Vec<_> = planned
        .iter()
        .map(|p| p["replication_server"].clone())
        .collect();
    assert_eq!(servers[0], "vrs-target-01 (auto)", "{planned:?}");
    assert_eq!(servers[1], "vrs-target-02 (auto)", "{planned:?}");
    for p in &planned[2..] {
        assert_eq!(p["action"], "fail");
        assert_eq!(
            p["reason"],
            "every connected VR server of the target site holds 200 replications counting the \
             2 VMs placed before this one, the most one takes (VR 8.8's documented figure)"
        );
    }

    run_once(&db, &sim, quick_options()).await;
    let jobs = Queue::open(&db).unwrap().jobs(batch).unwrap();
    let states: Vec<_> = jobs.iter().map(|j| j.state).collect();
    assert_eq!(
        states,
        [
            JobState::Succeeded,
            JobState::Succeeded,
            JobState::Failed,
            JobState::Failed
        ]
    );
    // The choice is the job's: its placement names the server it went to.
    let inv = sim.inventory();
    assert_eq!(
        jobs[0]
            .checkpoint
            .placement
            .as_ref()
            .unwrap()
            .replication_server_id,
        Some(inv.replication_servers[0].id.clone())
    );
    assert_eq!(sim.stats().configure_attempts.len(), 2);
}

#[tokio::test]
async fn a_batch_of_vms_replicated_before_is_skipped_without_a_call_per_vm() {
    let sim = start(SimConfig::fast()).await;
    let dir = tempfile::tempdir().unwrap();
    let (db, _) = import_all(&sim, dir.path());
    run_once(&db, &sim, quick_options()).await;
    let before = sim.stats().calls;
    // The same VMs again (a second wave file that overlaps the first).
    let again = import(&db, &jobs_for(&sim.inventory()));
    let outcome = run_once(&db, &sim, quick_options()).await;
    let calls = sim.stats().calls;
    let spent = |op: &str| calls.get(op).unwrap_or(&0) - before.get(op).unwrap_or(&0);
    assert_eq!(spent("configureReplication"), 0);
    // Only the VMs that are not replicated and cannot be (the template, the NVMe one) are
    // asked why.
    assert!(
        spent("getVmCapability") <= 2,
        "{}",
        spent("getVmCapability")
    );
    let jobs = Queue::open(&db).unwrap().jobs(again).unwrap();
    let replicated = jobs
        .iter()
        .filter(|j| {
            j.reason
                .as_deref()
                .is_some_and(|r| r.starts_with("already replicated"))
        })
        .count();
    assert!(
        replicated >= 30,
        "{replicated} of {}: {:?}",
        jobs.len(),
        outcome.counts
    );
}

#[tokio::test]
async fn a_run_records_the_settings_it_used_for_the_report_and_never_a_secret() {
    let sim = start(SimConfig::fast()).await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("q.db");
    let batch = import(&db, &jobs_for(&sim.inventory())[..3]);
    run_once(&db, &sim, quick_options()).await;
    let q = Queue::open(&db).unwrap();
    let runs = q.runs(batch).unwrap();
    let used = runs[0].settings.as_ref().unwrap();
    assert_eq!(used.url.as_deref(), Some(sim.url()));
    assert_eq!(used.tls_trust.as_deref(), Some("thumbprint"));
    assert_eq!(used.tls_anchor.as_deref(), sim.thumbprint());
    assert_eq!(used.run.workers, 4);
    assert_eq!(used.run.poll_interval, quick_options().poll_interval);
    assert_eq!(used.max_attempts, Some(8));
    assert_eq!(used.requests_per_session, Some(sim.limits().per_session));
    let report = vrbulk::report::Report::load(&q, batch, vrbulk::queue::system_clock()()).unwrap();
    for format in [vrbulk::report::Format::Md, vrbulk::report::Format::Json] {
        let text = report.render(format).unwrap();
        assert!(text.contains(sim.url()), "{text}");
        assert!(!text.contains("VMware1!"), "a password in the report");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigint_to_the_binary_exits_130_and_gives_every_job_back() {
    let sim = slow_simulator().await;
    let dir = tempfile::tempdir().unwrap();
    let (db, batch) = import_all(&sim, dir.path());
    let config = write_config(&sim, dir.path());
    let child = spawn_run(&db, &config);
    // Interrupt once work is under way.
    until_running(&db, batch).await;
    // SAFETY: sending a signal to our own child process.
    unsafe {
        libc::kill(child.id() as libc::pid_t, libc::SIGINT);
    }
    let started = std::time::Instant::now();
    let out = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(130),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "stopped within the grace period"
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("VMs not finished (nothing was lost"));
    let counts = Queue::open(&db).unwrap().counts(batch).unwrap();
    assert_eq!(
        counts[&JobState::Running],
        0,
        "every lease given back: {counts:?}"
    );
    // The last progress line shows where the jobs are, not a finished bar.
    let ended: u64 = counts
        .iter()
        .filter(|(s, _)| s.is_terminal())
        .map(|(_, n)| n)
        .sum();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let last = stderr.lines().rfind(|l| l.contains("VMs ended")).unwrap();
    assert!(
        last.starts_with(&format!("{ended}/120 VMs ended")),
        "{last}"
    );
    assert!(ended < 120, "{counts:?}");

    let (_stop, stop_rx) = watch::channel(false);
    runner::run(
        Queue::open(&db).unwrap(),
        settings_for(&sim),
        quick_options(),
        stop_rx,
    )
    .await
    .unwrap();
    assert_matches_truth(&Queue::open(&db).unwrap().jobs(batch).unwrap(), &sim);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_is_one_refused_login_per_site_and_fails_no_job() {
    let sim = start(SimConfig {
        vms: 60,
        pairings: 2,
        ..SimConfig::fast()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let (db, batch) = import_all(&sim, dir.path());
    let config = config_for(&sim, dir.path(), "");
    // Each site's password wrong in turn, each run twice: a second run asks each site again
    // (once), and neither spends an attempt of any job.
    for (variable, site, runs) in [
        ("VRBULK_REMOTE_PASSWORD", sim.inventory().pairing_id, 2),
        ("VRBULK_PASSWORD", "source".to_string(), 2),
    ] {
        let before = sim.stats().refused_logins.len();
        for _ in 0..runs {
            let (db, config) = (db.clone(), config.clone());
            let ran = tokio::task::spawn_blocking(move || {
                let cmd = Cmd::new()
                    .env("VRBULK_PASSWORD", "VMware1!")
                    .env(variable, "wrong")
                    .db(&db)
                    .config(&config);
                cmd.args(["run", "--progress", "plain"]).assert_exit(3)
            })
            .await
            .unwrap();
            let stderr = ran.stderr();
            assert!(
                stderr.contains("refused the login of administrator@vsphere.local"),
                "{stderr}"
            );
            assert!(stderr.contains("hint: set the"), "{stderr}");
            assert!(stderr.contains(variable), "names the setting: {stderr}");
        }
        let refused = sim.stats().refused_logins;
        let new: Vec<_> = refused[before..].iter().collect();
        assert_eq!(new.len(), runs, "one refused login per run: {new:?}");
        assert!(new.iter().all(|r| r.site == site), "{new:?}");
    }
    // The appliance received no change, and the queue holds every job as it was imported.
    assert_eq!(sim.stats().accepted_changes().count(), 0);
    let jobs = Queue::open(&db).unwrap().jobs(batch).unwrap();
    assert!(
        jobs.iter()
            .all(|j| !j.state.is_terminal() && j.state != JobState::Running && j.attempt == 0),
        "{:?}",
        Queue::open(&db).unwrap().counts(batch)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_unavailable_login_is_retried_by_every_command_that_connects() {
    let sim = start(SimConfig::fast()).await;
    let dir = tempfile::tempdir().unwrap();
    let (db, _) = import_all(&sim, dir.path());
    // All at once: the syncs here last real hours, and logging in is the subject.
    let config = config_for(&sim, dir.path(), "[run]\nmax_initial_syncs = \"all\"\n");
    let export = dir.path().join("inventory.csv").display().to_string();
    // `plan` and `run` exit 1: every seventh VM is aimed at the full datastore.
    let commands: [(&[&str], i32); 4] = [
        (&["config", "check", "--connect"], 0),
        (&["plan"], 1),
        (&["inventory", "export", "-o", &export], 0),
        (&["run", "--progress", "plain"], 1),
    ];
    for (args, expected) in commands {
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        sim.fail_next_login(1, 503);
        let before = sim.stats().journal.len();
        let (db, config, shown) = (db.clone(), config.clone(), args.clone());
        let code = tokio::task::spawn_blocking(move || {
            Cmd::new()
                .env("VRBULK_PASSWORD", "VMware1!")
                .db(&db)
                .config(&config)
                .args(&shown)
                .run()
                .output
                .status
                .code()
        })
        .await
        .unwrap();
        assert_eq!(code, Some(expected), "{args:?}");
        let logins: Vec<u16> = sim.stats().journal[before..]
            .iter()
            .filter(|r| r.op == "login")
            .map(|r| r.status)
            .collect();
        assert_eq!(logins[..2], [503, 200], "{args:?}: {logins:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_cost_their_retries_not_a_cascade_of_small_groups() {
    // 206 healthy VMs; 5 % of the calls answered 500 or 503 (with `Retry-After: 1`); sessions
    // that end every 20 s and tasks of 20 s. Time runs five times as fast (a 60 s window lasts
    // 12 s), no faster: the appliance's `Retry-After` is a whole second whatever the clock.
    // Which calls the faults hit depends on the order requests arrive in, so three seeds.
    const VMS: usize = 206;
    let window = Duration::from_secs(12);
    let scale = window.as_secs_f64() / 60.0;
    let bound = call_bound(VMS, 4);
    let (mut ratios, mut faults) = (Vec::new(), 0);
    for seed in 1..=3 {
        let sim = start(SimConfig {
            vms: 300,
            seed,
            task_seconds: 20.0 * scale,
            fail_rate: 0.05,
            session_ttl: Some(Duration::from_secs_f64(20.0 * scale)),
            limits: Some(RateLimits::scaled(window)),
            ..SimConfig::fast()
        })
        .await;
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("q.db");
        import(&db, &normal_specs(&sim, VMS));
        let opts = RunOptions {
            poll_interval: Duration::from_secs_f64(2.0 * scale),
            ..quick_options()
        };
        // Pages of 1000, as vrbulk asks for by default.
        let settings = ClientSettings {
            page_size: 1000,
            ..settings_for(&sim)
        };
        let (_stop, stop_rx) = watch::channel(false);
        let outcome = runner::run(Queue::open(&db).unwrap(), settings, opts, stop_rx)
            .await
            .unwrap();
        assert_eq!(
            outcome.counts[&JobState::Succeeded],
            VMS as u64,
            "{:?}",
            outcome.counts
        );
        // The appliance's record: what it received, each VM configured once.
        let stats = sim.stats();
        assert!(stats.configured_more_than_once.is_empty());
        faults += stats.status_5xx;
        eprintln!(
            "seed {seed}: {} calls ({} answered 5xx) for a bound of {bound}: {:?}",
            stats.journal.len(),
            stats.status_5xx,
            stats.calls
        );
        ratios.push(stats.journal.len() as f64 / bound as f64);
    }
    assert!(faults > 0, "faults were injected");
    let mean = ratios.iter().sum::<f64>() / ratios.len() as f64;
    assert!(mean <= 1.5, "{ratios:?} times the bound");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_day2_command_sends_no_change_after_its_window_even_when_its_calls_wait_for_slots() {
    // Six requests a session per 2 s; vrbulk is told twelve: its pauses meet refusals and
    // wait for the appliance's next windows, past the close.
    let sim = start(sim_limited(50, 6)).await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("q.db");
    let wave = configured_wave(&sim, &db, 30).await;
    let config = config_for(&sim, dir.path(), "\n[run]\nlease_seconds = 1\n");
    let config_text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("requests_per_minute = 6\n", "requests_per_minute = 12\n");
    std::fs::write(&config, config_text).unwrap();
    let until = vrbulk::queue::system_clock()() + 6_000;
    let until_arg = jiff::Timestamp::from_millisecond(until)
        .unwrap()
        .to_string();
    let before = sim.stats().journal.len();

    let pause = |args: Vec<String>| {
        let (db, config) = (db.clone(), config.clone());
        tokio::task::spawn_blocking(move || {
            Cmd::new()
                .env("VRBULK_PASSWORD", "VMware1!")
                .db(&db)
                .config(&config)
                .args(args)
                .run()
        })
    };
    let args = [
        "pause",
        "--batch",
        &wave.to_string(),
        "--until",
        &until_arg,
        "--progress",
        "plain",
    ];
    let ran = pause(args.iter().map(|a| a.to_string()).collect())
        .await
        .unwrap();
    assert_eq!(ran.output.status.code(), Some(6), "{}", ran.stderr());
    assert!(ran.stdout().contains("not sent"), "{}", ran.stdout());

    // The appliance's record: every pause it accepted arrived before the window closed.
    let stats = sim.stats();
    let sent: Vec<_> = stats.journal[before..]
        .iter()
        .filter(|r| r.accepted_change())
        .collect();
    assert!(
        sent.iter()
            .all(|r| r.op == "pauseReplication" && r.at_ms < until),
        "{sent:?}"
    );
    let t0 = stats.journal[before].at_ms;
    let timeline: Vec<_> = stats.journal[before..]
        .iter()
        .map(|r| (r.at_ms - t0, r.op.as_str(), r.status))
        .collect();
    assert!(
        !sent.is_empty() && sent.len() < 30,
        "{} of 30 paused in the window, which closed at {}: {timeline:?}",
        sent.len(),
        until - t0
    );
    assert!(
        stats.status_429 > 0,
        "the pauses did wait for the appliance's slots"
    );

    // The next window: the rest, each replication paused once.
    let rest = ["run", "--batch", "2", "--progress", "plain"];
    let ran = pause(rest.iter().map(|a| a.to_string()).collect())
        .await
        .unwrap();
    assert_eq!(ran.output.status.code(), Some(0), "{}", ran.stderr());
    let stats = sim.stats();
    let paused = stats
        .operations
        .values()
        .filter(|ops| ops.get("pause") == Some(&1))
        .count();
    assert_eq!(paused, 30);
    assert!(stats
        .operations
        .values()
        .all(|ops| ops.get("pause").is_none_or(|n| *n == 1)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_window_that_closes_while_the_last_tasks_run_ends_a_finished_batch_as_done() {
    let sim = start(SimConfig {
        task_seconds: 2.5,
        ..SimConfig::fast()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("q.db");
    import(&db, &normal_specs(&sim, 10));
    let until = vrbulk::queue::system_clock()() + 2_000;
    let opts = RunOptions {
        until: Some(until),
        ..quick_options()
    };
    let outcome = run_once(&db, &sim, opts).await;
    // Every configure went in before the close, and its task ended after it.
    let stats = sim.stats();
    assert_eq!(stats.accepted_changes().count(), 1);
    assert!(stats
        .replications
        .values()
        .all(|t| t.submitted.at_ms < until && t.configured.at_ms >= until));
    assert_eq!(outcome.counts[&JobState::Succeeded], 10);
    assert_eq!(
        outcome.ending,
        Ending::Done,
        "nothing is left for a next window"
    );
    assert_eq!(outcome.exit_code().code(), 0);
}
