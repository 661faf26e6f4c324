//! `vrbulk watch`: follows the replications a batch configured until they are protected. Each
//! round reads the batch again from the queue (a run may be configuring more of it, or an undo
//! removing some), then the replications of its configured VMs with grouped calls (filtered by
//! VM, or the pairing's whole list when that is cheaper), records what the appliance says in the
//! queue's protection record (status changes into its log), and hands a [`Round`] to the caller
//! to show. A VM a vrbulk undo removed is not looked for: its replication is unconfigured by
//! that batch, which is neither protected nor a fault.
//!
//! It keeps following while a live run works on the batch, however the configured VMs stand
//! (the run configures more of them), and ends once nothing changes without someone acting:
//! every VM protected, in error, removed outside vrbulk, paused or powered off, and any job
//! not configured yet waiting for a `vrbulk run`.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use super::stop::stopped;
use super::{logout, Db, RunError};
use crate::domain::Operation;
use crate::exit::Exit;
use crate::queue::{
    BatchId, JobId, JobState, Protection, Queue, Readiness, ReadinessCounts, ReplicationSeen,
    Standing,
};
use crate::vr::error::error_chain;
use crate::vr::model::Pairing;
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
    /// Nothing changes any more without someone acting (or `--once`).
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
    /// Jobs of the batch that have not ended: not configured yet.
    pub unended: u64,
    /// The live runs working on the batch (their owners), and how many jobs they hold.
    pub runs: Vec<String>,
    pub held: u64,
}

impl Round {
    /// Every job of the batch has ended and every configured VM that no undo removed is
    /// protected.
    pub fn all_protected(&self) -> bool {
        self.unended == 0 && self.tally.all_protected()
    }

    /// Nothing changes without someone acting: no live run works on the batch, and no
    /// configured VM is syncing or unseen; each is protected, in error, removed, paused or
    /// powered off.
    pub fn settled(&self) -> bool {
        self.runs.is_empty()
            && self.tally.not_followed == 0
            && self.tally.count(Readiness::Syncing) == 0
    }
}

#[derive(Debug, Clone)]
pub struct WatchOutcome {
    /// The configure batch followed (the one an operation batch acted on, when asked for one).
    pub batch: BatchId,
    pub ending: WatchEnding,
    /// The last round; `None` when interrupted before the first.
    pub last: Option<Round>,
}

impl WatchOutcome {
    /// The operator contract of `watch`: 0 only when every job of the batch has ended and
    /// every configured VM is protected; 4 when a replication is in error or was removed
    /// outside vrbulk; 5 otherwise (jobs not configured yet, syncing, paused, powered off).
    pub fn exit_code(&self) -> Exit {
        if self.ending == WatchEnding::Interrupted {
            return Exit::Interrupted;
        }
        match &self.last {
            None => Exit::NotProtected,
            Some(r) if r.tally.problems() > 0 => Exit::ReplicationError,
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
    /// The replication its configure created.
    replication_id: Option<String>,
    /// What its initial sync copies, by its disks.
    bytes: Option<i64>,
}

/// The batch as the queue has it at the start of a round.
#[derive(Debug, Clone, Default)]
struct BatchNow {
    /// Its succeeded jobs: the configured VMs, those an undo removed since included.
    configured: Vec<JobId>,
    /// The configured jobs to look for on the appliance: not removed by a vrbulk undo.
    targets: Vec<Target>,
    unended: u64,
    runs: Vec<String>,
    held: u64,
}

impl BatchNow {
    fn read(q: &Queue, batch: BatchId) -> Result<BatchNow, crate::queue::QueueError> {
        let unconfigured: HashSet<JobId> = q
            .protection(batch)?
            .iter()
            .filter(|p| p.readiness() == Readiness::Unconfigured)
            .map(|p| p.job)
            .collect();
        let jobs = q.jobs(batch)?;
        let succeeded = || jobs.iter().filter(|j| j.state == JobState::Succeeded);
        let targets = succeeded()
            .filter(|j| !unconfigured.contains(&j.id))
            .filter_map(|j| {
                Some(Target {
                    job: j.id,
                    vm_id: j.checkpoint.vm_id.clone()?,
                    pairing: j.spec.pairing.clone(),
                    replication_id: j.checkpoint.replication_id.clone(),
                    bytes: j.checkpoint.disks.as_deref().map(replicated_bytes),
                })
            })
            .collect();
        let (runs, held) = match q
            .summary(batch, &crate::operator::liveness_here())?
            .standing
        {
            Standing::Running { owners, held } => (owners, held),
            _ => (Vec::new(), 0),
        };
        Ok(BatchNow {
            configured: succeeded().map(|j| j.id).collect(),
            targets,
            unended: jobs.iter().filter(|j| !j.state.is_terminal()).count() as u64,
            runs,
            held,
        })
    }
}

/// The appliance, once there is something to look at: logged in, its pairings listed, and the
/// pairings whose target site it has logged in to.
struct Appliance {
    client: Client,
    pairings: Vec<Pairing>,
    remote: HashSet<String>,
}

impl Appliance {
    async fn connect(settings: ClientSettings) -> Result<Appliance, RunError> {
        let client =
            Client::with_politeness(settings, Politeness::standard()).map_err(RunError::Login)?;
        client.login().await.map_err(RunError::Login)?;
        let pairings = client.pairings().await.map_err(RunError::Pairings)?;
        Ok(Appliance {
            client,
            pairings,
            remote: HashSet::new(),
        })
    }

    /// `targets` by the pairing each names, each pairing's target site logged in to once.
    async fn groups<'a>(
        &mut self,
        targets: &'a [Target],
    ) -> Result<HashMap<String, Vec<&'a Target>>, RunError> {
        let mut groups: HashMap<String, Vec<&Target>> = HashMap::new();
        for t in targets {
            let pairing = choose_pairing(&self.pairings, t.pairing.as_deref())
                .map_err(RunError::NoPairing)?;
            groups
                .entry(pairing.pairing_id.clone())
                .or_default()
                .push(t);
        }
        for pairing in groups.keys() {
            if !self.remote.contains(pairing) {
                self.client
                    .remote_login(pairing)
                    .await
                    .map_err(RunError::Login)?;
                self.remote.insert(pairing.clone());
            }
        }
        Ok(groups)
    }
}

/// Follows the configured VMs of `opts.batch` until nothing changes without someone acting,
/// `--once`, or `stop`; `show` sees every round.
pub async fn watch(
    queue: Queue,
    settings: ClientSettings,
    opts: WatchOptions,
    stop: watch::Receiver<bool>,
    mut show: impl FnMut(&Round),
) -> Result<WatchOutcome, RunError> {
    let db = Db(Arc::new(Mutex::new(queue)));
    let asked = opts.batch;
    let batch = db.run(move |q| configure_batch_of(q, asked)).await?;
    let mut watcher = Watcher {
        db,
        batch,
        settings,
        appliance: None,
    };
    let mut pace = Pace::default();
    let ending = loop {
        let now = watcher.db.run(move |q| BatchNow::read(q, batch)).await?;
        let records = tokio::select! {
            r = watcher.records(&now) => r?,
            _ = stopped(stop.clone()) => break WatchEnding::Interrupted,
        };
        let round = pace.judge(records, &now);
        show(&round);
        let done = opts.once || round.settled();
        pace.last = Some(round);
        if done {
            break WatchEnding::Settled;
        }
        tokio::select! {
            _ = tokio::time::sleep(opts.interval) => {}
            _ = stopped(stop.clone()) => break WatchEnding::Interrupted,
        }
    };
    watcher.logout().await;
    Ok(WatchOutcome {
        batch,
        ending,
        last: pace.last,
    })
}

/// What `watch` works with: the queue, and the appliance once there is something to ask it.
struct Watcher {
    db: Db,
    batch: BatchId,
    settings: ClientSettings,
    appliance: Option<Appliance>,
}

impl Watcher {
    /// The batch's protection records after one round: the configured VMs looked for on the
    /// appliance (logged in to the first time there are some), the calls added to the batch's
    /// tally; with none to look for, what the queue holds says it all.
    async fn records(&mut self, now: &BatchNow) -> Result<Vec<Protection>, RunError> {
        let batch = self.batch;
        if now.targets.is_empty() {
            return self.db.run(move |q| q.protection(batch)).await;
        }
        let a = match &mut self.appliance {
            Some(a) => a,
            None => self
                .appliance
                .insert(Appliance::connect(self.settings.clone()).await?),
        };
        let groups = a.groups(&now.targets).await?;
        let flushed = a.client.metrics();
        let records = follow_round(&a.client, &self.db, &groups, batch).await?;
        let delta = a.client.metrics().since(&flushed).ops;
        self.db.run(move |q| q.add_api_usage(batch, &delta)).await?;
        Ok(records)
    }

    async fn logout(&self) {
        if let Some(a) = self.appliance.as_ref() {
            logout(&a.client).await;
        }
    }
}

/// The configure batch whose replications `batch` is about: itself, or for a day-2 operation
/// batch (an undo, a pause, …: the newest batch after one) the batch it acted on, whose
/// replications are the ones there are to follow.
pub fn configure_batch_of(q: &Queue, batch: BatchId) -> Result<BatchId, crate::queue::QueueError> {
    let b = q.batch(batch)?;
    Ok(match (b.operation, b.acts_on) {
        (Operation::Configure, _) | (_, None) => b.id,
        (_, Some(configured)) => configured,
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
                tracing::warn!(pairing = %pairing, error = %error_chain(&e), "could not read the replications");
                continue;
            }
            Err(e) => return Err(RunError::Follow(e)),
        };
        for t in targets {
            match reps.get(&t.vm_id) {
                Some(rep) => seen_now.push(seen(t.job, rep, t.bytes)),
                None => seen_now.push(ReplicationSeen::not_listed(t.job, t.replication_id.clone())),
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
    /// The round of `records`, the batch standing as `now` says.
    fn judge(&mut self, records: Vec<Protection>, now: &BatchNow) -> Round {
        let at = Instant::now();
        let tally = ReadinessCounts::tally(now.configured.iter().copied(), &records);
        // Everything copied so far, done syncs included: its growth is the pace.
        let copied: i64 = records.iter().filter_map(|p| p.bytes_done).sum();
        if let Some((then, before)) = self.previous {
            let secs = at.duration_since(then).as_secs_f64();
            if secs > 0.0 && copied >= before {
                let sample = (copied - before) as f64 / secs;
                self.rate = Some(match self.rate {
                    Some(r) => r + SMOOTHING * (sample - r),
                    None => sample,
                });
            }
        }
        self.previous = Some((at, copied));
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
            unended: now.unended,
            runs: now.runs.clone(),
            held: now.held,
        }
    }
}
