//! `vrbulk run`: claims the jobs of a batch and drives them, many at a time, through
//! `resolve_vm` → `resolve_target` → `submit` → `await_task` → `verify`.
//!
//! The appliance is the bottleneck (50 requests a minute by default), so the runner works in
//! groups: discovery once per pairing, VM lookups with many `filter=` values per call (or one
//! listing of the whole inventory when that is cheaper), up to 20 specs per configure call, one
//! task poll for all outstanding tasks, timed by [`pacing`]. Every request goes through the
//! appliance's budget and the client's in-flight cap. Each step's result is saved before the next
//! starts; a submit is written ahead as "in doubt" and reconciled with the server before anything
//! is sent again, so a VM is never configured twice, whatever kills the process. Once a configure
//! may have reached the server, only the server's own word (a failed task, a replication in
//! error) fails the job: a read that fails leaves it in doubt for a later attempt.

mod admission;
pub mod follow;
mod local_only;
mod operate;
mod pacing;
mod phases;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use thiserror::Error;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::domain::{CapacityLimits, Operation};
use crate::exit::Exit;
use crate::queue::{
    Batch, BatchId, Begun, Checkpoint, Holder, Job, JobId, JobState, Lease, Queue, QueueError,
    RunSettings, RunStart, Step,
};
use crate::vr::error::error_chain;
use crate::vr::model::{ConfigureReplicationSpec, Pairing};
use crate::vr::{
    ApiError, BudgetStats, Client, ClientMetrics, ClientSettings, ErrorClass, Politeness,
    RetryPolicy, TlsTrust,
};
use crate::workflow::protection::replicated_bytes;
use crate::workflow::{appliance_version, Capacity, Discovery, DiscoveryError};

pub use admission::SubmitOrder;

/// The knobs of one run (flags and `[run]` of vrbulk.toml).
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub batch: Option<BatchId>,
    /// Requests in flight at most.
    pub workers: usize,
    /// Overrides the batch's attempts per job.
    pub max_attempts: Option<u32>,
    /// Unix ms after which no new job is claimed (the end of the change window).
    pub until: Option<i64>,
    /// VM names or ids per lookup call.
    pub lookup_group: usize,
    /// Specs per configure call (the appliance takes at most 20).
    pub submit_group: usize,
    /// The shortest gap between two task polls.
    pub poll_interval: Duration,
    /// Submit new VMs only while fewer replications of the pairing are in their initial sync.
    pub max_initial_syncs: Option<usize>,
    /// Which waiting VMs go first when admission frees a slot.
    pub order: SubmitOrder,
    /// Work on a batch another live run holds, sharing its jobs through the queue.
    pub join: bool,
    /// `[limits]`: the appliance's capacity where set; the rest follows its version.
    pub capacity: CapacityLimits,
    pub lease: Duration,
    /// Jobs held at once (the appliance holds at most 2000 replications).
    pub window: usize,
    /// Quick retries inside one request.
    pub request_retries: u32,
    /// Job-level backoff: full jitter over `retry_base * 2^(attempt-1)`, at most `retry_cap`.
    pub retry_base: Duration,
    pub retry_cap: Duration,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            batch: None,
            workers: 8,
            max_attempts: None,
            until: None,
            lookup_group: 50,
            submit_group: 20,
            poll_interval: Duration::from_secs(2),
            max_initial_syncs: None,
            order: SubmitOrder::Input,
            join: false,
            capacity: CapacityLimits::default(),
            lease: Duration::from_secs(60),
            window: 2000,
            request_retries: 4,
            retry_base: Duration::from_secs(5),
            retry_cap: Duration::from_secs(300),
        }
    }
}

/// Why a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// No job of the batch is left to do.
    Done,
    /// `--until` passed; the jobs not started are still pending.
    WindowClosed,
    /// Ctrl-C: running jobs were given back.
    Interrupted,
}

#[derive(Debug, Clone)]
pub struct RunOutcome {
    pub batch: BatchId,
    pub ending: Ending,
    pub counts: BTreeMap<JobState, u64>,
    pub metrics: ClientMetrics,
    /// What the appliance's budget did during this run: requests paced, refused (429).
    pub budget: BudgetStats,
    pub elapsed: Duration,
    /// Jobs this run worked on (a resumed batch's others had ended before it).
    pub taken: u64,
    /// Unfinished jobs whose change was never sent: a next run starts them from scratch.
    pub unsent: u64,
    /// When this run's last change (configure or day-2 action) left, Unix ms.
    pub last_change_at: Option<i64>,
    /// The end of the change window (`--until`), Unix ms.
    pub window_closed_at: Option<i64>,
}

impl RunOutcome {
    /// Jobs the run left for later: not started, or given back.
    pub fn left(&self) -> u64 {
        [JobState::Pending, JobState::Retryable, JobState::Running]
            .iter()
            .map(|s| self.counts.get(s).copied().unwrap_or(0))
            .sum()
    }

    /// The change window closing with work left wins over failures: the batch is not finished.
    pub fn exit_code(&self) -> Exit {
        match self.ending {
            Ending::Interrupted => Exit::Interrupted,
            Ending::WindowClosed if self.left() > 0 => Exit::WindowClosed,
            _ if self.counts.get(&JobState::Failed).copied().unwrap_or(0) > 0 => Exit::JobsFailed,
            _ => Exit::Ok,
        }
    }
}

#[derive(Debug, Error)]
pub enum RunError {
    #[error(transparent)]
    Queue(#[from] QueueError),

    #[error("logging in")]
    Login(#[source] ApiError),

    #[error("listing the pairings")]
    Pairings(#[source] ApiError),

    #[error("the job queue holds no batch: import one first (vrbulk import FILE.csv)")]
    NoBatch,

    #[error("a job queue operation stopped unexpectedly")]
    Worker(#[source] tokio::task::JoinError),

    #[error("reading the replications")]
    Follow(#[source] ApiError),

    /// Another run holds jobs of the batch: two runs share a batch only when asked to.
    #[error(
        "batch {batch} is being worked on: {}. If that run is alive, let it finish or add \
         --join to help it; if it died, its jobs come back when its lease ends",
        holders.iter().map(held_by).collect::<Vec<_>>().join("; ")
    )]
    Held {
        batch: BatchId,
        holders: Vec<Holder>,
    },

    #[error("{0}")]
    NoPairing(String),

    /// A site refused its user: the run stopped at that one refused login, and gave back every
    /// job it held without counting an attempt.
    #[error(
        "stopped at the first refused login{}; no job was failed or counted for it",
        at.as_deref().map(|site| format!(" (at {site})")).unwrap_or_default()
    )]
    Credentials {
        /// The target site's vCenter, by name, when the pairing says it.
        at: Option<String>,
        #[source]
        source: ApiError,
    },
}

/// One holder in [`RunError::Held`]'s words.
fn held_by(h: &Holder) -> String {
    let until = crate::timefmt::utc(h.until);
    if h.jobs == 0 {
        format!(
            "{} has just started and holds no job yet (counted until {until})",
            h.owner
        )
    } else {
        format!("{} holds {} jobs (lease until {until})", h.owner, h.jobs)
    }
}

/// A job this run holds, with what it has learnt so far.
#[derive(Debug, Clone)]
struct Active {
    job: Job,
    lease: Lease,
    step: Step,
    checkpoint: Checkpoint,
    in_doubt: bool,
    spec: Option<ConfigureReplicationSpec>,
    /// Whether this run placed the job and holds its room (see [`Capacity`]).
    holds_room: bool,
    /// When this run submitted the job's task, or took over the job with its task.
    submitted: Option<Instant>,
    /// The task's progress as the last two polls saw it.
    progress: Option<(Instant, i32)>,
    previous_progress: Option<(Instant, i32)>,
    poll_failures: u32,
    verify_tries: u32,
    /// Set back after a failed read (or a call whose outcome is unknown) while this run keeps
    /// it: left alone until then.
    not_before: Option<Instant>,
    /// Setbacks in a row while held, for the backoff.
    setbacks: u32,
}

impl Active {
    fn pairing_key(&self) -> Option<String> {
        self.job.spec.pairing.clone()
    }

    /// Whether a configure call may have reached the server: from here on, only the server's own
    /// word (a failed task, a replication in error) may fail the job.
    fn past_submit(&self) -> bool {
        self.in_doubt || self.step >= Step::AwaitTask
    }

    /// Whether a setback's wait is over.
    fn due(&self, now: Instant) -> bool {
        self.not_before.is_none_or(|t| t <= now)
    }
}

/// The queue, used from the runner's async code: every call runs on the blocking pool, so a slow
/// disk or a busy lock never stalls the requests in flight.
#[derive(Clone)]
struct Db(Arc<Mutex<Queue>>);

impl Db {
    async fn run<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Queue) -> Result<R, QueueError> + Send + 'static,
    ) -> Result<R, RunError> {
        let queue = self.0.clone();
        // A poisoned lock means a panic elsewhere mid-write; SQLite rolled that transaction
        // back, so the queue is still consistent.
        let result = tokio::task::spawn_blocking(move || {
            f(&mut queue.lock().unwrap_or_else(|p| p.into_inner()))
        })
        .await
        .map_err(RunError::Worker)?;
        Ok(result?)
    }
}

struct Runner {
    db: Db,
    client: Client,
    /// What the batch does to its VMs, and for an operation batch the batch it acts on.
    operation: Operation,
    acts_on: Option<BatchId>,
    /// The batch removes replications on this site only (`undo --local-only`): it runs with
    /// the target site down, so it never asks anything of it (see [`local_only`]).
    local_only: bool,
    opts: RunOptions,
    batch: BatchId,
    owner: String,
    pairings: Vec<Pairing>,
    discoveries: HashMap<Option<String>, Result<Arc<Discovery>, Arc<DiscoveryError>>>,
    /// Room left on the target sites, spent as this run places VMs.
    room: Capacity,
    /// Every job this run has held.
    taken: HashSet<JobId>,
    active: BTreeMap<JobId, Active>,
    stop: watch::Receiver<bool>,
    pacer: pacing::Pacer,
    flushed: ClientMetrics,
    /// The latest replication list of each pairing, when admitting.
    censuses: HashMap<String, admission::Census>,
    /// When this run began (Unix ms): a cancel asked before it is not for it.
    started_at: i64,
    last_cancel_check: Instant,
    /// The batch's configured VMs (by VM id), with the bytes their initial sync copies: their
    /// protection is recorded from each census.
    configured: HashMap<String, (JobId, Option<i64>)>,
    /// A site refused its user's credentials: the run stops.
    refused: Option<crate::vr::CredentialsRefused>,
}

/// How long in-flight calls may finish after Ctrl-C before they are abandoned.
const GRACE: Duration = Duration::from_secs(5);

/// Runs a batch until it is done, the window closes or `stop` turns true.
pub async fn run(
    queue: Queue,
    settings: ClientSettings,
    opts: RunOptions,
    stop: watch::Receiver<bool>,
) -> Result<RunOutcome, RunError> {
    let started = Instant::now();
    let limits = settings.limits;
    let politeness = Politeness::new(opts.workers, RetryPolicy::patient(opts.request_retries));
    let client = Client::with_politeness(settings.clone(), politeness).map_err(RunError::Login)?;
    client.close_changes_at(opts.until);
    let budget_before = client.budget().status().stats;
    let (_, host) = crate::operator::who();
    let run_id = format!("{:x}", fastrand::u64(..));
    let owner = format!("{host}:{}:{run_id}", std::process::id());
    let db = Db(Arc::new(Mutex::new(queue)));
    let recorded = recorded_settings(&settings, &opts);
    let batch = begin(&db, &opts, &run_id, &owner, recorded).await?;
    let (operation, acts_on, batch) = (batch.operation, batch.acts_on, batch.id);
    let pairings = match connect(&client).await {
        Ok(p) => p,
        Err(e) => {
            let outcome = format!("could not start: {}", error_chain(&e));
            let id = run_id.clone();
            db.run(move |q| q.finish_run(&id, &outcome, 0)).await?;
            return Err(e);
        }
    };
    // The appliance's capacity follows its version, known now: counted with what earlier
    // refusals taught, and recorded with the settings of a run that places VMs.
    let capacity = crate::workflow::applied(
        &opts.capacity,
        appliance_version(&client, &pairings).await.as_deref(),
    );
    let id = run_id.clone();
    let recorded = (operation == Operation::Configure).then(|| capacity.clone());
    let learnt = db
        .run(move |q| {
            if let Some(c) = &recorded {
                q.record_run_capacity(&id, c)?;
            }
            q.learnt_limits()
        })
        .await?;
    // An operation batch's jobs act on replications another batch configured: only a configure
    // batch's own are followed to protected.
    let (configured, local_only) = db
        .run(move |q| {
            let jobs = q.jobs(batch)?;
            let local_only = local_only::removes_locally(operation, &jobs);
            let configured = jobs
                .into_iter()
                .filter(|j| j.state == JobState::Succeeded && operation == Operation::Configure)
                .filter_map(|j| {
                    let bytes = j.checkpoint.disks.as_deref().map(replicated_bytes);
                    Some((j.checkpoint.vm_id.clone()?, (j.id, bytes)))
                })
                .collect();
            Ok((configured, local_only))
        })
        .await?;
    let heartbeat = heartbeat(db.clone(), owner.clone(), opts.lease);
    let mut runner = Runner {
        db,
        client,
        operation,
        acts_on,
        local_only,
        pacer: pacing::Pacer::new(opts.poll_interval, limits),
        opts,
        batch,
        owner,
        pairings,
        discoveries: HashMap::new(),
        room: Capacity::new(capacity, &learnt),
        taken: HashSet::new(),
        active: BTreeMap::new(),
        stop,
        flushed: ClientMetrics::default(),
        censuses: HashMap::new(),
        configured,
        started_at: now_ms(),
        last_cancel_check: Instant::now(),
        refused: None,
    };
    // Every log line of the run carries its batch.
    let ending = tracing::Instrument::instrument(
        runner.drive(),
        tracing::info_span!("run", batch, run = %run_id),
    )
    .await;
    heartbeat.abort();
    runner.finish(ending, run_id, started, budget_before).await
}

/// Picks the batch, applies `--max-attempts`, rescues what a dead run left and records this run,
/// or refuses to start while another run works on the batch: one transaction.
async fn begin(
    db: &Db,
    opts: &RunOptions,
    run_id: &str,
    owner: &str,
    recorded: RunSettings,
) -> Result<Batch, RunError> {
    let start = RunStart {
        run_id: run_id.to_string(),
        owner: owner.to_string(),
        batch: opts.batch,
        max_attempts: opts.max_attempts,
        join: opts.join,
        lease: opts.lease,
        settings: recorded,
    };
    // A run that died on this host is waited out (its lease ends); a live one, or one on
    // another host, is asked about first.
    let begun = db
        .run(move |q| q.begin_run(&start, &crate::operator::liveness_here()))
        .await?;
    match begun {
        Begun::Started { batch, rescued } => {
            if !rescued.is_empty() {
                tracing::warn!(
                    batch = batch.id,
                    jobs = rescued.len(),
                    "rescued jobs whose worker stopped"
                );
            }
            Ok(batch)
        }
        Begun::NoBatch => Err(RunError::NoBatch),
        Begun::Held { batch, holders } => Err(RunError::Held { batch, holders }),
    }
}

/// What this run uses, for the report's "Effective settings": never a secret.
fn recorded_settings(settings: &ClientSettings, opts: &RunOptions) -> RunSettings {
    let (trust, anchor) = match &settings.trust {
        TlsTrust::Verify => ("system", None),
        TlsTrust::VerifyWithCa(path) => ("ca_file", Some(path.display().to_string())),
        TlsTrust::Pinned(thumbprint) => ("thumbprint", Some(thumbprint.to_string())),
        TlsTrust::Insecure => ("insecure", None),
    };
    let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    let count = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
    RunSettings {
        url: Some(settings.url.as_str().trim_end_matches('/').to_string()),
        api_version: Some(settings.api_version.as_str().to_string()),
        tls_trust: Some(trust.to_string()),
        tls_anchor: anchor,
        requests_per_session: Some(settings.limits.per_session),
        requests_per_ip: Some(settings.limits.per_ip),
        rate_window_ms: Some(ms(settings.limits.window)),
        workers: Some(count(opts.workers)),
        lookup_group: Some(count(opts.lookup_group)),
        submit_group: Some(count(opts.submit_group)),
        max_attempts: opts.max_attempts,
        request_retries: Some(opts.request_retries),
        poll_interval_ms: Some(ms(opts.poll_interval)),
        lease_ms: Some(ms(opts.lease)),
        max_initial_syncs: opts.max_initial_syncs.map(count),
        order: Some(opts.order.as_str().to_string()),
        until: opts.until,
        capacity: None,
    }
}

/// Logs in and lists the pairings: what every later step needs.
async fn connect(client: &Client) -> Result<Vec<Pairing>, RunError> {
    client.login().await.map_err(RunError::Login)?;
    client.pairings().await.map_err(RunError::Pairings)
}

/// Renews the leases `owner` holds, a third of a lease apart, until aborted.
fn heartbeat(db: Db, owner: String, lease: Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(lease / 3);
        loop {
            tick.tick().await;
            let owner = owner.clone();
            if let Err(e) = db.run(move |q| q.heartbeat(&owner, lease)).await {
                tracing::warn!(error = %error_chain(&e), "lease heartbeat failed");
            }
        }
    })
}

impl Runner {
    async fn drive(&mut self) -> Result<Ending, RunError> {
        loop {
            if self.stopping() {
                return Ok(Ending::Interrupted);
            }
            if let Some(refused) = self.refused.take() {
                let at = match &refused.site {
                    crate::vr::Site::Target { pairing_id } => self
                        .pairings
                        .iter()
                        .find(|p| &p.pairing_id == pairing_id)
                        .and_then(|p| p.remote_vc_server.name.clone()),
                    crate::vr::Site::Source => None,
                };
                return Err(RunError::Credentials {
                    at,
                    source: ApiError::CredentialsRefused(Box::new(refused)),
                });
            }
            let now = now_ms();
            let closed = self.opts.until.is_some_and(|u| now >= u);
            self.obey_cancel().await?;
            if closed {
                // No submit starts after the window: what was not sent goes back to the queue.
                self.release(
                    |a| !a.past_submit(),
                    "the change window closed before it was sent: given back",
                )
                .await;
            } else {
                self.claim_more().await?;
            }
            if self.active.is_empty() {
                if let Some(ending) = self.idle(now, closed).await? {
                    return Ok(ending);
                }
                continue;
            }
            let before = self.progress_marker();
            self.pass().await?;
            if self.progress_marker() == before {
                self.sleep(self.until_something_to_do()).await;
            }
        }
    }

    /// How long nothing can move: until the next round of polls, or the budget's next free slot
    /// when jobs wait to be sent; a second at most, to see a stop or a closing window soon.
    fn until_something_to_do(&self) -> Duration {
        let now = Instant::now();
        let round = self.pacer.next();
        let ready = self
            .active
            .values()
            .any(|a| !a.in_doubt && a.step == Step::Submit);
        let slot = ready
            .then(|| self.client.budget().status().next_slot)
            .flatten();
        let set_back = self.active.values().filter_map(|a| a.not_before).min();
        [round, slot, set_back]
            .into_iter()
            .flatten()
            .min()
            .map_or(Duration::from_secs(1), |t| t.saturating_duration_since(now))
            .clamp(Duration::from_millis(10), Duration::from_secs(1))
    }

    /// `vrbulk cancel` asked while this run works: the held jobs not sent yet are cancelled (those
    /// sent are followed to their end). Looked at once a second at most.
    async fn obey_cancel(&mut self) -> Result<(), RunError> {
        if self.last_cancel_check.elapsed() < Duration::from_secs(1) {
            return Ok(());
        }
        self.last_cancel_check = Instant::now();
        let (batch, since) = (self.batch, self.started_at);
        let Some(why) = self
            .db
            .run(move |q| q.cancel_requested(batch, since))
            .await?
        else {
            return Ok(());
        };
        let unsent: Vec<Lease> = self
            .active
            .values()
            .filter(|a| !a.past_submit())
            .map(|a| a.lease.clone())
            .collect();
        if unsent.is_empty() {
            return Ok(());
        }
        for lease in &unsent {
            self.active.remove(&lease.job);
        }
        tracing::info!(batch, jobs = unsent.len(), "cancelled while running: {why}");
        self.db
            .run(move |q| {
                for lease in &unsent {
                    q.cancel_held(lease, &why)?;
                }
                Ok(())
            })
            .await
    }

    /// Claims due jobs up to [`Runner::held_at_most`].
    async fn claim_more(&mut self) -> Result<(), RunError> {
        let most = self.held_at_most();
        if self.active.len() >= most {
            return Ok(());
        }
        let want = most - self.active.len();
        let (batch, owner, lease) = (self.batch, self.owner.clone(), self.opts.lease);
        let claimed = self
            .db
            .run(move |q| q.claim(Some(batch), want, &owner, lease))
            .await?;
        for job in claimed {
            self.hold(job);
        }
        Ok(())
    }

    /// Jobs held at once: what the appliance's budget lets this run work through within one
    /// lease, so that a run killed outright holds no more jobs back (until their lease ends)
    /// than it could have worked on. Never fewer than a lookup group (full groups keep calls
    /// few), never more than `window`.
    fn held_at_most(&self) -> usize {
        let limits = self.client.budget().limits();
        let calls = f64::from(limits.quota()) * self.opts.lease.as_secs_f64()
            / limits.window.as_secs_f64().max(0.001);
        let per_job = match self.operation {
            Operation::Configure => {
                1.0 / self.opts.lookup_group.max(1) as f64
                    + 1.0 / self.opts.submit_group.max(1) as f64
            }
            // Its disks are read first, then the call.
            Operation::Reconfigure => 2.0,
            _ => 1.0,
        };
        ((calls / per_job) as usize)
            .max(self.opts.lookup_group)
            .min(self.opts.window)
    }

    /// Nothing held: the run is over, or waits (a bounded while) for jobs due later or held by
    /// another run.
    async fn idle(&mut self, now: i64, closed: bool) -> Result<Option<Ending>, RunError> {
        let (batch, owner) = (self.batch, self.owner.clone());
        let (due, elsewhere) = self
            .db
            .run(move |q| {
                q.rescue()?;
                Ok((q.next_due(batch)?, q.held_elsewhere(batch, &owner)?))
            })
            .await?;
        let wake = match (due, elsewhere) {
            (None, None) => return Ok(Some(Ending::Done)),
            // The window ended a run with work left only if there is some.
            _ if closed => return Ok(Some(Ending::WindowClosed)),
            (Some(d), None) => d,
            (None, Some(e)) => e,
            (Some(d), Some(e)) => d.min(e),
        };
        if elsewhere.is_some_and(|e| e <= wake) {
            tracing::info!(
                batch = self.batch,
                "waiting for jobs another run holds (or held, if it died: their lease expires in {} s)",
                (wake - now).max(0) / 1000
            );
        }
        let wake = self.opts.until.map_or(wake, |u| wake.min(u));
        self.sleep(Duration::from_millis((wake - now).clamp(10, 1000) as u64))
            .await;
        Ok(None)
    }

    /// One pass of every phase over the held jobs. After Ctrl-C only the phase already under
    /// way gets its grace period.
    async fn pass(&mut self) -> Result<(), RunError> {
        self.discover().await?;
        let configure = self.operation == Operation::Configure;
        if !self.stopping() {
            if configure {
                self.reconcile().await?;
            } else {
                self.reconcile_operations().await?;
            }
        }
        if !self.stopping() {
            if configure {
                self.resolve().await?;
            } else {
                self.resolve_operations().await?;
            }
        }
        if !self.stopping() {
            if configure {
                self.submit().await?;
            } else {
                self.submit_operations().await?;
            }
        }
        if !self.stopping() {
            self.follow().await?;
        }
        self.flush_usage().await;
        Ok(())
    }

    /// Gives back what an interrupted or failed run holds, records how the run ended, and
    /// counts the batch's jobs; `started` and `budget_before` were taken as the run began.
    async fn finish(
        &mut self,
        ending: Result<Ending, RunError>,
        run_id: String,
        started: Instant,
        budget_before: BudgetStats,
    ) -> Result<RunOutcome, RunError> {
        let ending = match ending {
            Ok(e) => e,
            Err(e) => {
                self.release_all("run stopped by an error").await;
                self.logout().await;
                let outcome = format!("error: {}", error_chain(&e));
                self.db
                    .run(move |q| q.finish_run(&run_id, &outcome, 0))
                    .await
                    .ok();
                return Err(e);
            }
        };
        if ending == Ending::Interrupted {
            self.release_all("interrupted (Ctrl-C): given back for the next run")
                .await;
        }
        self.flush_usage().await;
        self.logout().await;
        let metrics = self.client.metrics();
        let (batch, relogins, last_change_at) =
            (self.batch, metrics.relogins, metrics.last_change_at);
        let (counts, unsent) = self
            .db
            .run(move |q| {
                let outcome = match ending {
                    Ending::Done => "done",
                    Ending::WindowClosed => "window closed",
                    Ending::Interrupted => "interrupted",
                };
                q.finish_run(&run_id, outcome, relogins)?;
                Ok((q.counts(batch)?, q.unsent(batch)?))
            })
            .await?;
        Ok(RunOutcome {
            batch,
            ending,
            counts,
            metrics,
            budget: self.client.budget().status().stats.since(&budget_before),
            elapsed: started.elapsed(),
            taken: self.taken.len() as u64,
            unsent,
            last_change_at,
            window_closed_at: self.opts.until,
        })
    }

    /// Only with a free slot: a logout must not keep the run waiting for the next window, and
    /// the appliance ends an idle session by itself.
    async fn logout(&self) {
        if self.client.budget().free_now() > 0 {
            self.client.logout().await.ok();
        }
    }

    fn hold(&mut self, job: Job) {
        let Some(lease) = job.lease() else { return };
        self.taken.insert(job.id);
        tracing::info!(job = job.id, vm = job.vm_label(), step = %job.step, attempt = job.attempt, "claimed");
        // A job taken over with its task in flight is followed like one just submitted.
        let submitted = (job.step == Step::AwaitTask).then(Instant::now);
        if let Some(at) = submitted {
            self.pacer.submitted(at);
        }
        self.active.insert(
            job.id,
            Active {
                lease,
                step: job.step,
                checkpoint: job.checkpoint.clone(),
                in_doubt: job.in_doubt,
                spec: None,
                holds_room: false,
                submitted,
                progress: None,
                previous_progress: None,
                poll_failures: 0,
                verify_tries: 0,
                not_before: None,
                setbacks: 0,
                job,
            },
        );
    }

    /// Changes whenever any held job moves: the loop sleeps only when nothing did.
    fn progress_marker(&self) -> Vec<(JobId, Step, bool)> {
        self.active
            .values()
            .map(|a| (a.job.id, a.step, a.in_doubt))
            .collect()
    }

    fn stopping(&self) -> bool {
        *self.stop.borrow()
    }

    async fn sleep(&mut self, d: Duration) {
        tokio::select! {
            _ = tokio::time::sleep(d) => {}
            _ = stopped(self.stop.clone()) => {}
        }
    }

    /// Runs network work; after Ctrl-C it gets [`GRACE`] to finish, then is abandoned (`None`).
    async fn guarded<F: std::future::Future>(&self, work: F) -> Option<F::Output> {
        tokio::pin!(work);
        tokio::select! {
            out = &mut work => Some(out),
            _ = stopped(self.stop.clone()) => tokio::time::timeout(GRACE, work).await.ok(),
        }
    }

    async fn release_all(&mut self, why: &'static str) {
        self.release(|_| true, why).await;
    }

    /// Gives the held jobs that match back to the queue (their attempt not counted).
    async fn release(&mut self, which: impl Fn(&Active) -> bool, why: &'static str) {
        let ids: Vec<JobId> = self
            .active
            .values()
            .filter(|a| which(a))
            .map(|a| a.job.id)
            .collect();
        if ids.is_empty() {
            return;
        }
        let leases: Vec<Lease> = ids
            .iter()
            .filter_map(|id| self.active.remove(id))
            .map(|a| a.lease)
            .collect();
        let released = self
            .db
            .run(move |q| {
                for lease in &leases {
                    if let Err(e) = q.release(lease, why) {
                        tracing::warn!(job = lease.job, error = %error_chain(&e), "could not release the job");
                    }
                }
                Ok(())
            })
            .await;
        if let Err(e) = released {
            tracing::warn!(error = %error_chain(&e), "could not release the jobs");
        }
    }

    /// Adds what the client spent since the last flush to the batch's tally.
    async fn flush_usage(&mut self) {
        let now = self.client.metrics();
        let delta = now.since(&self.flushed);
        let batch = self.batch;
        match self
            .db
            .run(move |q| q.add_api_usage(batch, &delta.ops))
            .await
        {
            Ok(()) => self.flushed = now,
            Err(e) => tracing::warn!(error = %error_chain(&e), "could not record API usage"),
        }
    }

    // ---- ending a job -------------------------------------------------------------------

    async fn succeed(&mut self, id: JobId, replication_id: String) -> Result<(), RunError> {
        let Some(a) = self.active.remove(&id) else {
            return Ok(());
        };
        if self.operation == Operation::Configure {
            if let Some(vm) = &a.checkpoint.vm_id {
                let bytes = a.checkpoint.disks.as_deref().map(replicated_bytes);
                self.configured.insert(vm.clone(), (id, bytes));
            }
        }
        let done = match self.operation {
            Operation::Configure => "configured",
            Operation::Unconfigure if self.local_only => "removed on this site only",
            Operation::Unconfigure => "unconfigured",
            Operation::Reconfigure => "reconfigured",
            Operation::Pause => "paused",
            Operation::Resume => "resumed",
            Operation::Sync => "synced",
        };
        let message = format!("replication {replication_id} {done}");
        tracing::info!(job = id, vm = a.job.vm_label(), replication = %replication_id, "{message}");
        let save = a.save();
        self.db
            .run(move |q| {
                q.save_all(&[save])?;
                q.succeed(&a.lease, Some(&replication_id), &message)
            })
            .await?;
        Ok(())
    }

    async fn skip(
        &mut self,
        id: JobId,
        reason: String,
        replication_id: Option<String>,
    ) -> Result<(), RunError> {
        let Some(a) = self.active.remove(&id) else {
            return Ok(());
        };
        tracing::info!(job = id, vm = a.job.vm_label(), "skipped: {reason}");
        let save = a.save();
        self.db
            .run(move |q| {
                q.save_all(&[save])?;
                q.skip(&a.lease, &reason, replication_id.as_deref())
            })
            .await?;
        Ok(())
    }

    /// Fails a job in the server's words. Only for what the server said of this VM, or for
    /// what was found before anything was sent.
    async fn fail(
        &mut self,
        id: JobId,
        reason: String,
        status: Option<u16>,
    ) -> Result<(), RunError> {
        let Some(a) = self.active.remove(&id) else {
            return Ok(());
        };
        tracing::info!(job = id, vm = a.job.vm_label(), step = %a.step, "failed: {reason}");
        let save = a.save();
        self.db
            .run(move |q| {
                q.save_all(&[save])?;
                q.fail(&a.lease, &reason, status)
            })
            .await?;
        Ok(())
    }

    /// A failure worth another attempt later; see [`Runner::setback_all`].
    async fn setback(&mut self, id: JobId, error: &ApiError) -> Result<(), RunError> {
        self.setback_all(vec![id], error).await
    }

    /// Jobs that met the same failure together. Permanent ones fail at once, unless a job's
    /// change may have reached the server: then nothing but the server's word fails it, and it
    /// comes back (in doubt, or at its step) however often reading the truth fails. One wait
    /// for them all, so that they come back together and go on in one lookup and full groups,
    /// not one by one: a job that may have reached the server stays held by this run until
    /// then (the next reconcile settles every one of a moment at once); the others go back to
    /// the queue, due together.
    pub(super) async fn setback_all(
        &mut self,
        ids: Vec<JobId>,
        error: &ApiError,
    ) -> Result<(), RunError> {
        match error {
            // Nothing more is sent: the run stops and gives the jobs back as they are.
            ApiError::CredentialsRefused(refused) => {
                self.refused.get_or_insert_with(|| (**refused).clone());
                return Ok(());
            }
            // Not sent: the jobs go back to the queue for the next window, their attempts not
            // counted.
            ApiError::WindowClosed { .. } => {
                for id in &ids {
                    if let Some(a) = self.active.get_mut(id) {
                        a.in_doubt = false;
                    }
                }
                self.save_many(&ids).await?;
                self.release(
                    |a| ids.contains(&a.job.id),
                    "the change window closed before it was sent: given back",
                )
                .await;
                return Ok(());
            }
            _ => {}
        }
        let class = error.class();
        let retryable = class.is_retryable() || class == ErrorClass::Session;
        let setbacks = ids
            .iter()
            .filter_map(|id| self.active.get(id))
            .map(|a| a.setbacks.max(a.lease.attempt.saturating_sub(1)))
            .max()
            .unwrap_or(0);
        let wait = error.retry_after().unwrap_or_else(|| {
            crate::vr::client::full_jitter(self.opts.retry_base, self.opts.retry_cap, setbacks)
        });
        let message = error_chain(error);
        let mut kept = Vec::new();
        for id in ids {
            let Some(a) = self.active.get_mut(&id) else {
                continue;
            };
            let past_submit = a.past_submit();
            if !retryable && !past_submit {
                self.fail(id, message.clone(), error.status()).await?;
                continue;
            }
            if past_submit && retryable {
                a.not_before = Some(Instant::now() + wait);
                a.setbacks += 1;
                tracing::info!(job = id, vm = a.job.vm_label(), step = %a.step, in_doubt = a.in_doubt, wait_ms = wait.as_millis() as u64, "{message}");
                kept.push(a.lease.clone());
                continue;
            }
            let Some(a) = self.active.remove(&id) else {
                continue;
            };
            let at = now_ms() + wait.as_millis() as i64;
            let status = error.status();
            // Throttling waited out for so long is still the appliance's pace, not the job's
            // fault.
            let may_fail = !past_submit && class != ErrorClass::Throttled;
            let save = a.save();
            let (vm, step) = (a.job.vm_label().to_string(), a.step);
            let text = message.clone();
            let state = self
                .db
                .run(move |q| {
                    q.save_all(&[save])?;
                    if may_fail {
                        q.retry_later(&a.lease, at, &text, status)
                    } else {
                        q.defer(&a.lease, at, &text, status)
                    }
                })
                .await?;
            tracing::info!(job = id, vm, step = %step, next = ?state, "{message}");
        }
        if !kept.is_empty() {
            let note = format!("{message}; asked again on the appliance before anything is sent");
            let status = error.status();
            self.db
                .run(move |q| q.note_all(&kept, &note, status))
                .await?;
        }
        Ok(())
    }

    /// Moves resolved jobs on to `submit`, with two checkpoints as the steps are two (the VM
    /// found, then its target): the state machine takes one step at a time. A job already
    /// further on stays where it is.
    async fn ready_to_submit(&mut self, ready: &[JobId]) -> Result<(), RunError> {
        for step in [Step::ResolveTarget, Step::Submit] {
            for id in ready {
                if let Some(a) = self.active.get_mut(id) {
                    a.step = a.step.max(step);
                }
            }
            self.save_many(ready).await?;
        }
        Ok(())
    }

    /// Writes the step and checkpoint (with the in-doubt mark) of these held jobs, in one
    /// transaction.
    async fn save_many(&self, ids: &[JobId]) -> Result<(), RunError> {
        let saves: Vec<_> = ids
            .iter()
            .filter_map(|id| self.active.get(id))
            .map(Active::save)
            .collect();
        if !saves.is_empty() {
            self.db.run(move |q| q.save_all(&saves)).await?;
        }
        Ok(())
    }
}

impl Active {
    fn save(&self) -> crate::queue::Save {
        crate::queue::Save {
            lease: self.lease.clone(),
            step: self.step,
            checkpoint: self.checkpoint.clone(),
            in_doubt: Some(self.in_doubt),
        }
    }
}

/// Unix milliseconds, as the queue keeps time.
fn now_ms() -> i64 {
    crate::queue::system_clock()()
}

/// Resolves once Ctrl-C (or the caller) asked the run to stop.
async fn stopped(mut stop: watch::Receiver<bool>) {
    // The guard `wait_for` returns must not live across an await: it is not Send.
    let _ = stop.wait_for(|s| *s).await.map(|_| ());
}
