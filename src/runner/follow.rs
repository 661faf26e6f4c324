//! `vrbulk watch`: follows the replications a batch configured until they are protected. Each
//! round reads the replications of the batch's configured VMs with grouped calls (filtered by VM,
//! or the pairing's whole list when that is cheaper), records what the appliance says in the
//! queue's protection record (status changes into its log), and hands a [`Round`] to the caller
//! to show. It ends when nothing is syncing any more: every VM protected, in error, or powered
//! off (a powered-off VM is not waited for: it syncs once someone powers it on).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use super::{stopped, Db, RunError};
use crate::exit::Exit;
use crate::queue::{
    BatchId, JobId, JobState, Protection, Queue, Readiness, ReadinessCounts, ReplicationSeen,
};
use crate::vr::{Client, ClientSettings, Politeness};
use crate::workflow::choose_pairing;
use crate::workflow::protection::{replicated_bytes, seen};
use crate::workflow::reads::replications_of;

#[derive(Debug, Clone)]
pub struct WatchOptions {
    pub batch: BatchId,
    /// The shortest time between two rounds; the appliance's budget may space them further.
    pub interval: Duration,
    /// One round, then the answer.
    pub once: bool,
}

/// Why watching ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WatchEnding {
    /// Nothing is syncing any more (or `--once`).
    Settled,
    /// Ctrl-C.
    Interrupted,
}

/// What one round saw, for the caller to show.
#[derive(Debug, Clone, PartialEq)]
pub struct Round {
    /// The configured VMs by readiness, with the bytes of those still syncing.
    pub tally: ReadinessCounts,
    /// Bytes a second over the last rounds; `None` until two rounds have seen progress.
    pub throughput: Option<f64>,
    /// How long the syncing VMs still need at that pace.
    pub eta: Option<Duration>,
    /// Every configured VM's record, in job order.
    pub records: Vec<Protection>,
}

impl Round {
    /// Every configured VM is protected.
    pub fn all_protected(&self) -> bool {
        self.tally.count(Readiness::Protected) == self.tally.configured
    }

    /// Nothing is left to wait for: each VM is protected, in error or powered off.
    pub fn settled(&self) -> bool {
        self.tally.not_followed == 0 && self.tally.count(Readiness::Syncing) == 0
    }
}

#[derive(Debug, Clone)]
pub struct WatchOutcome {
    pub batch: BatchId,
    pub ending: WatchEnding,
    /// The last round; `None` when the batch has no configured VM.
    pub last: Option<Round>,
}

impl WatchOutcome {
    /// The operator contract of `watch`: every configured VM protected, some replication in
    /// error, or not all protected yet (still syncing, or powered off and waiting).
    pub fn exit_code(&self) -> Exit {
        if self.ending == WatchEnding::Interrupted {
            return Exit::Interrupted;
        }
        match &self.last {
            None => Exit::Ok,
            Some(r) if r.tally.count(Readiness::Error) > 0 => Exit::ReplicationError,
            Some(r) if r.all_protected() => Exit::Ok,
            Some(_) => Exit::NotProtected,
        }
    }
}

/// A configured job to follow.
#[derive(Debug, Clone)]
struct Target {
    job: JobId,
    vm_id: String,
    pairing: Option<String>,
    /// What its initial sync copies, by its disks.
    bytes: Option<i64>,
}

/// Follows the configured VMs of `opts.batch` until nothing syncs any more, `--once`, or `stop`;
/// `show` sees every round.
pub async fn watch(
    queue: Queue,
    settings: ClientSettings,
    opts: WatchOptions,
    stop: watch::Receiver<bool>,
    mut show: impl FnMut(&Round),
) -> Result<WatchOutcome, RunError> {
    let db = Db(Arc::new(Mutex::new(queue)));
    let batch = opts.batch;
    let targets: Vec<Target> = db
        .run(move |q| {
            Ok(q.jobs(batch)?
                .into_iter()
                .filter(|j| j.state == JobState::Succeeded)
                .filter_map(|j| {
                    Some(Target {
                        job: j.id,
                        vm_id: j.checkpoint.vm_id.clone()?,
                        pairing: j.spec.pairing.clone(),
                        bytes: j.checkpoint.disks.as_deref().map(replicated_bytes),
                    })
                })
                .collect())
        })
        .await?;
    if targets.is_empty() {
        return Ok(WatchOutcome {
            batch,
            ending: WatchEnding::Settled,
            last: None,
        });
    }
    let client =
        Client::with_politeness(settings, Politeness::standard()).map_err(RunError::Login)?;
    client.login().await.map_err(RunError::Login)?;
    let pairings = client.pairings().await.map_err(RunError::Pairings)?;
    // Each pairing the jobs name, resolved once, with its remote login.
    let mut groups: HashMap<String, Vec<&Target>> = HashMap::new();
    for t in &targets {
        let pairing =
            choose_pairing(&pairings, t.pairing.as_deref()).map_err(RunError::NoPairing)?;
        groups
            .entry(pairing.pairing_id.clone())
            .or_default()
            .push(t);
    }
    for pairing in groups.keys() {
        client
            .remote_login(pairing)
            .await
            .map_err(RunError::Login)?;
    }

    let mut pace = Pace::default();
    let mut flushed = client.metrics();
    let ending = loop {
        let round = tokio::select! {
            r = follow_round(&client, &db, &groups, batch) => r?,
            _ = stopped(stop.clone()) => break WatchEnding::Interrupted,
        };
        let round = pace.judge(round, &targets);
        show(&round);
        let usage = client.metrics();
        let delta = usage.since(&flushed).ops;
        db.run(move |q| q.add_api_usage(batch, &delta)).await?;
        flushed = usage;
        if opts.once || round.settled() {
            pace.last = Some(round);
            break WatchEnding::Settled;
        }
        pace.last = Some(round);
        tokio::select! {
            _ = tokio::time::sleep(opts.interval) => {}
            _ = stopped(stop.clone()) => break WatchEnding::Interrupted,
        }
    };
    if client.budget().free_now() > 0 {
        client.logout().await.ok();
    }
    Ok(WatchOutcome {
        batch,
        ending,
        last: pace.last,
    })
}

/// One round: the replications of every group, recorded; the batch's records read back.
async fn follow_round(
    client: &Client,
    db: &Db,
    groups: &HashMap<String, Vec<&Target>>,
    batch: BatchId,
) -> Result<Vec<Protection>, RunError> {
    let mut seen_now: Vec<ReplicationSeen> = Vec::new();
    for (pairing, targets) in groups {
        let vm_ids: Vec<String> = targets.iter().map(|t| t.vm_id.clone()).collect();
        let reps = match replications_of(client, pairing, &vm_ids, vm_ids.len()).await {
            Ok(r) => r,
            // The appliance is not answering: this round says nothing new, the next asks again.
            Err(e) if e.class().is_retryable() => {
                tracing::warn!(pairing = %pairing, error = %e, "could not read the replications");
                continue;
            }
            Err(e) => return Err(RunError::Follow(e)),
        };
        for t in targets {
            match reps.get(&t.vm_id) {
                Some(rep) => seen_now.push(seen(t.job, rep, t.bytes)),
                None => seen_now.push(gone(t)),
            }
        }
    }
    db.run(move |q| {
        for c in q.record_protection(&seen_now)? {
            tracing::info!(job = c.job, from = ?c.from_status, to = %c.to_status, "{}", c.message.as_deref().unwrap_or(""));
        }
        q.protection(batch)
    })
    .await
}

/// A configured VM the appliance no longer lists: someone removed its replication.
fn gone(t: &Target) -> ReplicationSeen {
    ReplicationSeen {
        job: t.job,
        replication_id: String::new(),
        status: "UNKNOWN".into(),
        configuration_state: None,
        bytes_done: None,
        bytes_total: None,
        rpo_violation: false,
        error: Some(format!(
            "the appliance no longer lists a replication for VM {}",
            t.vm_id
        )),
        protected: false,
    }
}

/// Throughput and time left, smoothed over rounds so that one fast or slow round does not
/// swing the estimate.
#[derive(Debug, Default)]
struct Pace {
    /// Bytes copied in all (syncing and done) at the previous round.
    previous: Option<(Instant, i64)>,
    rate: Option<f64>,
    last: Option<Round>,
}

/// Weight of the newest round in the smoothed throughput.
const SMOOTHING: f64 = 0.3;

impl Pace {
    /// The round of `records`, the configured VMs being `targets`.
    fn judge(&mut self, records: Vec<Protection>, targets: &[Target]) -> Round {
        let now = Instant::now();
        let tally = ReadinessCounts::tally(targets.iter().map(|t| t.job), &records);
        // Everything copied so far, done syncs included: its growth is the pace.
        let copied: i64 = records.iter().filter_map(|p| p.bytes_done).sum();
        if let Some((at, before)) = self.previous {
            let secs = now.duration_since(at).as_secs_f64();
            if secs > 0.0 && copied >= before {
                let sample = (copied - before) as f64 / secs;
                self.rate = Some(match self.rate {
                    Some(r) => r + SMOOTHING * (sample - r),
                    None => sample,
                });
            }
        }
        self.previous = Some((now, copied));
        let left = (tally.sync_bytes_total - tally.sync_bytes_done).max(0) as f64;
        let eta = self
            .rate
            .filter(|r| *r > 0.0)
            .map(|r| Duration::from_secs_f64((left / r).min(1e9)));
        Round {
            tally,
            throughput: self.rate,
            eta,
            records,
        }
    }
}
