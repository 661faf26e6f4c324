//! A kill is never a verdict: runs killed outright (SIGKILL) before they sent anything spend no
//! job's attempt, hold back no more jobs than they could work on, and a resumed run does not
//! read again what a killed one had read. Judged by the simulator's record of what it received.

use std::path::Path;
use std::time::Duration;

use vrbulk::queue::{JobState, Queue};
use vrbulk::sim::Simulator;

use crate::support::cmd::{spawn, Cmd};
use crate::support::fixtures::config_for;
use crate::support::harness::{configured_wave, sim_limited, start};
use crate::support::wait::eventually;

/// How many requests of operation `op` the simulator has received.
fn received(sim: &Simulator, op: &str) -> usize {
    sim.stats().journal.iter().filter(|r| r.op == op).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_kills_of_a_reconfigure_while_it_reads_fail_no_job_and_what_was_read_is_kept() {
    const VMS: usize = 30;
    const WORKERS: usize = 4;
    // Eight requests a session per 2 s: reading thirty replications' disks takes several
    // windows, long enough to kill the run in the middle of it, again and again.
    let sim = start(sim_limited(60, 8)).await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("q.db");
    let wave = configured_wave(&sim, &db, VMS).await;
    let config = config_for(
        &sim,
        dir.path(),
        &format!(
            "\n[run]\nworkers = {WORKERS}\nmax_attempts = 3\npoll_interval_seconds = 0.2\n\
             lease_seconds = 1\n"
        ),
    );
    let wave_arg = wave.to_string();
    let first: [&str; 5] = ["reconfigure", "--batch", &wave_arg, "--rpo", "15"];
    let resume: [&str; 3] = ["run", "--batch", "2"];

    let mut kills = 0;
    for round in 0..5 {
        let reads_before = received(&sim, "getReplicatedVmDisks");
        let args: &[&str] = if round == 0 { &first } else { &resume };
        let mut child = spawn(&db, &config, args);
        // Kill it once it is reading disks again (a previous run's leases end first).
        eventually(
            Duration::from_secs(20),
            format!("round {round}: the run to read disks again"),
            async || received(&sim, "getReplicatedVmDisks") >= reads_before + 2,
        )
        .await;
        child.kill().unwrap();
        child.wait().unwrap();
        assert_eq!(
            received(&sim, "reconfigureReplication"),
            0,
            "round {round}: the kill came before anything was sent"
        );
        kills += 1;
    }
    assert_eq!(kills, 5);
    let reads_under_kills = received(&sim, "getReplicatedVmDisks");

    let (db2, config2) = (db.clone(), config.clone());
    let ran = tokio::task::spawn_blocking(move || {
        Cmd::new()
            .env("VRBULK_PASSWORD", "VMware1!")
            .db(&db2)
            .config(&config2)
            .args(["run", "--batch", "2", "--progress", "plain"])
            .run()
    })
    .await
    .unwrap();
    assert_eq!(ran.output.status.code(), Some(0), "{}", ran.stderr());

    // The appliance's record: every replication of the wave reconfigured exactly once.
    let stats = sim.stats();
    let q = Queue::open(&db).unwrap();
    for job in q.jobs(wave).unwrap() {
        let replication = job.checkpoint.replication_id.unwrap();
        assert_eq!(
            stats.operations[&replication].get("reconfigure"),
            Some(&1),
            "{replication}"
        );
    }
    let jobs = q.jobs(2).unwrap();
    assert!(
        jobs.iter().all(|j| j.state == JobState::Succeeded),
        "{:?}",
        q.counts(2)
    );
    // Each disk list read once, but for the reads in flight at each kill (a few, not a whole
    // batch's).
    let reads = received(&sim, "getReplicatedVmDisks");
    assert!(
        reads <= VMS + 5 * WORKERS,
        "{reads} disk reads for {VMS} VMs ({reads_under_kills} under the kills)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_run_holds_back_no_more_jobs_than_its_budget_could_work_on() {
    let sim = start(sim_limited(200, 6)).await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("q.db");
    let wave = configured_wave(&sim, &db, 150).await;
    let config = config_for(&sim, dir.path(), "\n[run]\nlease_seconds = 4\n");
    let wave_arg = wave.to_string();
    let mut child = spawn(&db, &config, &["pause", "--batch", &wave_arg]);
    let held = |db: &Path| {
        Queue::open(db)
            .ok()
            .and_then(|q| q.counts(2).ok())
            .map_or(0, |c| c[&JobState::Running])
    };
    eventually(
        Duration::from_secs(20),
        "the pause run to hold jobs",
        async || held(&db) > 0,
    )
    .await;
    child.kill().unwrap();
    child.wait().unwrap();
    // A pause is one call a job: six calls a 2 s window, over a 4 s lease, is twelve jobs; a
    // run holds at least a lookup group's worth (50), never all 150.
    let held = held(&db);
    assert!(
        (1..=50).contains(&held),
        "{held} jobs held by the killed run"
    );
}
