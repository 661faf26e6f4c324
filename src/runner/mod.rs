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
//!
//! Here: what `run` promises its caller (its options, outcome and errors) and how a run starts
//! and ends. The rest, one concern a file:
//!
//! - the kinds of work and their steps: `work` (the steps), `configure` (with `admission`, the
//!   pace of initial syncs), `operate` (day-2 operations), `local_only` (`undo --local-only`);
//! - what a run holds, whatever its work: `held` (the claimed jobs), `sites` (each pairing and
//!   its discovery), [`pacing`] (how many jobs, when to poll, the ETA), `stop` (Ctrl-C);
//! - what every kind shares: `drive` (the loop), `tasks` (following the appliance's tasks),
//!   `ending` (writing each job's steps and end to the queue);
//! - [`follow`]: `vrbulk watch`, following a batch's replications until they are protected.

mod admission;
mod configure;
mod drive;
mod ending;
pub mod follow;
mod held;
mod local_only;
mod operate;
pub mod pacing;
mod sites;
mod stop;
mod tasks;
mod work;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use thiserror::Error;
use tokio::sync::watch;
use tokio::time::Instant;
use tracing::Instrument;

use self::admission::Admission;
use self::configure::Configure;
use self::drive::CancelWatch;
use self::held::Held;
use self::local_only::LocalRemoval;
use self::operate::Operate;
use self::pacing::Pacer;
use self::sites::Sites;
use self::stop::Stop;
use crate::domain::Operation;
use crate::exit::Exit;
use crate::queue::{Batch, BatchId, Begun, Holder, Job, JobState, Queue, QueueError, RunStart};
use crate::vr::error::error_chain;
use crate::vr::model::Pairing;
use crate::vr::{
    ApiError, BudgetStats, Client, ClientMetrics, ClientSettings, Politeness, RetryPolicy, TlsTrust,
};
use crate::workflow::{appliance_version, Capacity};

use crate::settings::UsedSettings;
pub use crate::settings::{InitialSyncs, RunOptions, SubmitOrder};

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
        crate::queue::jobs_left(&self.counts)
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

    /// Another run works on the batch (holds jobs of it, or has just started on it): two runs
    /// share a batch only when asked to.
    #[error(
        "batch {batch} is being worked on: {}. If that run is alive, let it finish or add \
         --join to help it; if it died, the batch is free again once its lease ends",
        holders.iter().map(held_by).collect::<Vec<_>>().join("; ")
    )]
    Held {
        batch: BatchId,
        holders: Vec<Holder>,
    },

    #[error(transparent)]
    NoPairing(crate::workflow::PairingError),

    /// A site refused its user: the run stopped at that one refused login, and gave back every
    /// job it held without counting an attempt.
    #[error(
        "a refused login ended the run{}: no job was failed or counted for it",
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
            "{} has just started and holds no job yet (it counts as working on the batch until {until})",
            h.owner
        )
    } else {
        format!("{} holds {} jobs (lease until {until})", h.owner, h.jobs)
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

/// What a run holds while it works, whatever the kind of its work: the queue and the appliance,
/// its options, the jobs it holds, what it knows of each pairing, its pace and the stop signal.
/// The kinds of work ([`work::Work`]) do their steps with it.
struct Runner {
    db: Db,
    client: Client,
    opts: RunOptions,
    batch: BatchId,
    /// The lease owner its claims are made as (`host:pid:run`).
    owner: String,
    stop: Stop,
    held: Held,
    sites: Sites,
    pacer: Pacer,
    cancels: CancelWatch,
    /// What the client had spent when the batch's tally was last written.
    flushed: ClientMetrics,
    /// A site refused its user's credentials: the run stops.
    refused: Option<crate::vr::CredentialsRefused>,
}

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
    let StartUp {
        pairings,
        room,
        jobs,
    } = match start_up(&client, &db, &opts, &run_id, &batch).await {
        Ok(s) => s,
        Err(e) => {
            let outcome = format!("could not start: {}", error_chain(&e));
            let id = run_id.clone();
            db.run(move |q| q.finish_run(&id, &outcome, 0)).await?;
            return Err(e);
        }
    };
    let (operation, acts_on, batch) = (batch.operation, batch.acts_on, batch.id);
    let heartbeat = heartbeat(db.clone(), owner.clone(), opts.lease);
    let mut runner = Runner {
        db,
        client,
        pacer: Pacer::new(opts.poll_interval, limits),
        opts,
        batch,
        owner,
        stop: Stop::new(stop),
        held: Held::default(),
        sites: Sites::new(pairings),
        cancels: CancelWatch::new(),
        flushed: ClientMetrics::default(),
        refused: None,
    };
    // Every log line of the run carries its batch.
    let span = tracing::info_span!("run", batch, run = %run_id);
    let ending = match operation {
        Operation::Configure => {
            // Its VMs configured before this run are followed to protected too.
            let mut work = Configure::new(room, Admission::of(&jobs, run_id.clone()));
            runner.drive(&mut work).instrument(span).await
        }
        _ if local_only::removes_locally(operation, &jobs) => {
            runner.drive(&mut LocalRemoval).instrument(span).await
        }
        _ => {
            let mut work = Operate::new(operation, acts_on);
            runner.drive(&mut work).instrument(span).await
        }
    };
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
    recorded: UsedSettings,
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
            Ok(*batch)
        }
        Begun::NoBatch => Err(RunError::NoBatch),
        Begun::Held { batch, holders } => Err(RunError::Held { batch, holders }),
    }
}

/// What this run uses, for the report's "Effective settings": never a secret.
fn recorded_settings(settings: &ClientSettings, opts: &RunOptions) -> UsedSettings {
    let (trust, anchor) = match &settings.trust {
        TlsTrust::Verify => ("system", None),
        TlsTrust::VerifyWithCa(path) => ("ca_file", Some(path.display().to_string())),
        TlsTrust::Pinned(thumbprint) => ("thumbprint", Some(thumbprint.to_string())),
        TlsTrust::Insecure => ("insecure", None),
    };
    UsedSettings {
        url: Some(settings.url.as_str().trim_end_matches('/').to_string()),
        api_version: Some(settings.api_version.as_str().to_string()),
        tls_trust: Some(trust.to_string()),
        tls_anchor: anchor,
        requests_per_session: Some(settings.limits.per_session),
        requests_per_ip: Some(settings.limits.per_ip),
        rate_window_ms: Some(u64::try_from(settings.limits.window.as_millis()).unwrap_or(u64::MAX)),
        max_attempts: opts.max_attempts,
        run: opts.clone(),
        capacity: None,
    }
}

/// What a run learns before it claims anything.
struct StartUp {
    pairings: Vec<Pairing>,
    /// Room on the target sites by the appliance's capacity, counted with what earlier
    /// refusals taught.
    room: Capacity,
    /// The batch's jobs as the run found them.
    jobs: Vec<Job>,
}

/// Logs in, lists the pairings, learns the appliance's capacity (its figures follow its
/// version, known now; recorded with the settings of a run that places VMs) and reads the
/// batch's jobs. A run that fails here records that it could not start.
async fn start_up(
    client: &Client,
    db: &Db,
    opts: &RunOptions,
    run_id: &str,
    batch: &Batch,
) -> Result<StartUp, RunError> {
    let pairings = connect(client).await?;
    let capacity = crate::workflow::applied(
        &opts.capacity,
        appliance_version(client, &pairings).await.as_deref(),
    );
    let (id, of) = (run_id.to_string(), batch.id);
    let recorded = (batch.operation == Operation::Configure).then(|| capacity.clone());
    let (learnt, jobs) = db
        .run(move |q| {
            if let Some(c) = &recorded {
                q.record_run_capacity(&id, c)?;
            }
            Ok((q.learnt_limits()?, q.jobs(of)?))
        })
        .await?;
    Ok(StartUp {
        pairings,
        room: Capacity::new(capacity, &learnt),
        jobs,
    })
}

/// Logs in and lists the pairings: what every later step needs.
async fn connect(client: &Client) -> Result<Vec<Pairing>, RunError> {
    client.login().await.map_err(RunError::Login)?;
    client.pairings().await.map_err(RunError::Pairings)
}

/// Logs out, only with a free slot: a logout must not keep the command waiting for the
/// appliance's next window, and the appliance ends an idle session by itself.
async fn logout(client: &Client) {
    if client.budget().free_now() > 0 {
        client.logout().await.ok();
    }
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
                logout(&self.client).await;
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
        logout(&self.client).await;
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
            taken: self.held.taken(),
            unsent,
            last_change_at,
            window_closed_at: self.opts.until,
        })
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
}

/// Unix milliseconds, as the queue keeps time.
fn now_ms() -> i64 {
    crate::queue::system_clock()()
}
