//! `vrbulk run`: claims the jobs of a batch and drives them, many at a time, through
//! `resolve_vm` → `resolve_target` → `submit` → `await_task` → `verify`.
//!
//! The appliance is the bottleneck, so the runner works in groups: discovery once per pairing,
//! VM lookups with many `filter=` values per call, up to G specs per configure call, one task
//! poll for all outstanding tasks. Every request goes through the client's shared token bucket
//! and in-flight cap. Each step's result is saved before the next starts; a submit is written
//! ahead as "in doubt" and reconciled with the server before anything is sent again, so a VM is
//! never configured twice, whatever kills the process.

mod phases;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use thiserror::Error;
use tokio::sync::watch;

use crate::queue::{BatchId, Checkpoint, Job, JobId, JobState, Lease, Queue, QueueError, Step};
use crate::vr::model::{ConfigureReplicationSpec, Pairing};
use crate::vr::{
    ApiError, Client, ClientMetrics, ClientSettings, ErrorClass, Politeness, RetryPolicy,
};
use crate::workflow::Discovery;

/// The knobs of one run (flags and `[run]` of vrbulk.toml).
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub batch: Option<BatchId>,
    /// Requests in flight at most.
    pub workers: usize,
    /// Requests per second to the appliance, shared by everything this run sends.
    pub rate: f64,
    pub burst: u32,
    /// Overrides the batch's attempts per job.
    pub max_attempts: Option<u32>,
    /// Unix ms after which no new job is claimed (the end of the change window).
    pub until: Option<i64>,
    /// VM names or ids per lookup call.
    pub lookup_group: usize,
    /// Specs per configure call.
    pub submit_group: usize,
    pub poll_interval: Duration,
    pub lease: Duration,
    /// Jobs held at once.
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
            rate: 20.0,
            burst: 10,
            max_attempts: None,
            until: None,
            lookup_group: 50,
            submit_group: 20,
            poll_interval: Duration::from_secs(2),
            lease: Duration::from_secs(60),
            window: 1000,
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
    pub elapsed: Duration,
}

impl RunOutcome {
    /// The operator contract: 0 all done, 1 some failed, 130 interrupted.
    pub fn exit_code(&self) -> u8 {
        match self.ending {
            Ending::Interrupted => 130,
            _ if self.counts.get(&JobState::Failed).copied().unwrap_or(0) > 0 => 1,
            _ => 0,
        }
    }
}

#[derive(Debug, Error)]
pub enum RunError {
    #[error(transparent)]
    Queue(#[from] QueueError),

    #[error("logging in: {0}")]
    Login(#[source] ApiError),

    #[error("listing the pairings: {0}")]
    Pairings(#[source] ApiError),

    #[error("the job queue holds no batch: import one first (vrbulk import FILE.csv)")]
    NoBatch,
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
    poll_failures: u32,
    verify_tries: u32,
}

impl Active {
    fn pairing_key(&self) -> Option<String> {
        self.job.spec.pairing.clone()
    }
}

type Shared = Arc<Mutex<Queue>>;

struct Runner {
    queue: Shared,
    client: Client,
    opts: RunOptions,
    batch: BatchId,
    owner: String,
    pairings: Vec<Pairing>,
    discoveries: HashMap<Option<String>, Result<Arc<Discovery>, String>>,
    active: BTreeMap<JobId, Active>,
    stop: watch::Receiver<bool>,
    last_poll: Option<Instant>,
    flushed: ClientMetrics,
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
    let mut queue = queue;
    let batch = match opts.batch {
        Some(b) => queue.batch(b)?.id,
        None => queue.latest_batch()?.ok_or(RunError::NoBatch)?.id,
    };
    if let Some(k) = opts.max_attempts {
        queue.set_max_attempts(batch, k)?;
    }
    let rescued = queue.rescue()?;
    if !rescued.is_empty() {
        tracing::warn!(
            batch,
            jobs = rescued.len(),
            "rescued jobs whose worker stopped"
        );
    }
    let (_, host) = crate::operator::who();
    let run_id = format!("{:x}", fastrand::u64(..));
    let owner = format!("{host}:{}:{run_id}", std::process::id());
    queue.start_run(&run_id, batch, &owner, "run")?;

    let politeness = Politeness::new(
        opts.rate,
        opts.burst,
        opts.workers,
        RetryPolicy::patient(opts.request_retries),
    );
    let client = Client::with_politeness(settings, politeness).map_err(RunError::Login)?;
    let queue: Shared = Arc::new(Mutex::new(queue));
    let start = async {
        client.login().await.map_err(RunError::Login)?;
        client.pairings().await.map_err(RunError::Pairings)
    };
    let pairings = match start.await {
        Ok(p) => p,
        Err(e) => {
            lock(&queue).finish_run(&run_id, &format!("could not start: {e}"), 0)?;
            return Err(e);
        }
    };

    let heartbeat = {
        let queue = queue.clone();
        let (owner, lease) = (owner.clone(), opts.lease);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(lease / 3);
            loop {
                tick.tick().await;
                if let Err(e) = lock(&queue).heartbeat(&owner, lease) {
                    tracing::warn!(error = %e, "lease heartbeat failed");
                }
            }
        })
    };

    let mut runner = Runner {
        queue: queue.clone(),
        client,
        opts,
        batch,
        owner,
        pairings,
        discoveries: HashMap::new(),
        active: BTreeMap::new(),
        stop,
        last_poll: None,
        flushed: ClientMetrics::default(),
    };
    // Every log line of the run carries its batch.
    let ending = tracing::Instrument::instrument(
        runner.drive(),
        tracing::info_span!("run", batch, run = %run_id),
    )
    .await;
    heartbeat.abort();
    let ending = match ending {
        Ok(e) => e,
        Err(e) => {
            runner.release_all("run stopped by an error");
            lock(&queue)
                .finish_run(&run_id, &format!("error: {e}"), 0)
                .ok();
            return Err(e);
        }
    };
    if ending == Ending::Interrupted {
        runner.release_all("interrupted (Ctrl-C): given back for the next run");
    }
    runner.flush_usage();
    runner.client.logout().await.ok();
    let metrics = runner.client.metrics();
    let mut q = lock(&queue);
    q.finish_run(
        &run_id,
        match ending {
            Ending::Done => "done",
            Ending::WindowClosed => "window closed",
            Ending::Interrupted => "interrupted",
        },
        metrics.relogins,
    )?;
    Ok(RunOutcome {
        batch,
        ending,
        counts: q.counts(batch)?,
        metrics,
        elapsed: started.elapsed(),
    })
}

impl Runner {
    async fn drive(&mut self) -> Result<Ending, RunError> {
        loop {
            if self.stopping() {
                return Ok(Ending::Interrupted);
            }
            let now = self.now();
            let closed = self.opts.until.is_some_and(|u| now >= u);
            if !closed && self.active.len() < self.opts.window {
                let want = self.opts.window - self.active.len();
                let claimed = lock(&self.queue).claim(
                    Some(self.batch),
                    want,
                    &self.owner,
                    self.opts.lease,
                )?;
                for job in claimed {
                    self.hold(job);
                }
            }
            if self.active.is_empty() {
                if closed {
                    return Ok(Ending::WindowClosed);
                }
                let (due, elsewhere) = {
                    let mut q = lock(&self.queue);
                    q.rescue()?;
                    (
                        q.next_due(self.batch)?,
                        q.held_elsewhere(self.batch, &self.owner)?,
                    )
                };
                let wake = match (due, elsewhere) {
                    (None, None) => return Ok(Ending::Done),
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
                continue;
            }

            let before = self.progress_marker();
            // After Ctrl-C only the phase already under way gets its grace period.
            self.discover().await?;
            if !self.stopping() {
                self.reconcile().await?;
            }
            if !self.stopping() {
                self.resolve().await?;
            }
            if !self.stopping() {
                self.submit().await?;
            }
            if !self.stopping() {
                self.poll_tasks().await?;
            }
            if !self.stopping() {
                self.verify().await?;
            }
            self.flush_usage();
            if self.progress_marker() == before {
                let next_poll = self
                    .last_poll
                    .map(|t| {
                        (t + self.opts.poll_interval).saturating_duration_since(Instant::now())
                    })
                    .unwrap_or(self.opts.poll_interval);
                self.sleep(next_poll.clamp(Duration::from_millis(10), Duration::from_secs(1)))
                    .await;
            }
        }
    }

    fn hold(&mut self, job: Job) {
        let Some(lease) = job.lease() else { return };
        tracing::info!(job = job.id, vm = job.vm_label(), step = %job.step, attempt = job.attempt, "claimed");
        self.active.insert(
            job.id,
            Active {
                lease,
                step: job.step,
                checkpoint: job.checkpoint.clone(),
                in_doubt: job.in_doubt,
                spec: None,
                poll_failures: 0,
                verify_tries: 0,
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

    fn now(&self) -> i64 {
        lock(&self.queue).now()
    }

    fn release_all(&mut self, why: &str) {
        let mut q = lock(&self.queue);
        for a in std::mem::take(&mut self.active).into_values() {
            if let Err(e) = q.release(&a.lease, why) {
                tracing::warn!(job = a.job.id, error = %e, "could not release the job");
            }
        }
    }

    /// Adds what the client spent since the last flush to the batch's tally.
    fn flush_usage(&mut self) {
        let now = self.client.metrics();
        let delta: BTreeMap<String, crate::vr::OpUsage> = now
            .ops
            .iter()
            .map(|(op, u)| {
                let before = self.flushed.ops.get(op).copied().unwrap_or_default();
                (
                    op.clone(),
                    crate::vr::OpUsage {
                        calls: u.calls - before.calls,
                        throttled: u.throttled - before.throttled,
                        server_errors: u.server_errors - before.server_errors,
                        retries: u.retries - before.retries,
                    },
                )
            })
            .collect();
        match lock(&self.queue).add_api_usage(self.batch, &delta) {
            Ok(()) => self.flushed = now,
            Err(e) => tracing::warn!(error = %e, "could not record API usage"),
        }
    }

    // ---- ending a job -------------------------------------------------------------------

    fn succeed(
        &mut self,
        id: JobId,
        replication_id: Option<&str>,
        message: &str,
    ) -> Result<(), RunError> {
        if let Some(a) = self.active.remove(&id) {
            tracing::info!(
                job = id,
                vm = a.job.vm_label(),
                replication = replication_id,
                "{message}"
            );
            self.save(&a)?;
            lock(&self.queue).succeed(&a.lease, replication_id, message)?;
        }
        Ok(())
    }

    fn skip(
        &mut self,
        id: JobId,
        reason: &str,
        replication_id: Option<&str>,
    ) -> Result<(), RunError> {
        if let Some(a) = self.active.remove(&id) {
            tracing::info!(job = id, vm = a.job.vm_label(), "skipped: {reason}");
            self.save(&a)?;
            lock(&self.queue).skip(&a.lease, reason, replication_id)?;
        }
        Ok(())
    }

    fn fail(&mut self, id: JobId, reason: &str, status: Option<u16>) -> Result<(), RunError> {
        if let Some(a) = self.active.remove(&id) {
            tracing::info!(job = id, vm = a.job.vm_label(), step = %a.step, "failed: {reason}");
            self.save(&a)?;
            lock(&self.queue).fail(&a.lease, reason, status)?;
        }
        Ok(())
    }

    /// A failure worth another attempt later: permanent ones fail the job at once.
    fn setback(&mut self, id: JobId, error: &ApiError) -> Result<(), RunError> {
        if !error.class().is_retryable() && error.class() != ErrorClass::Session {
            return self.fail(id, &error.to_string(), error.status());
        }
        let Some(a) = self.active.remove(&id) else {
            return Ok(());
        };
        self.save(&a)?;
        let exp = self
            .opts
            .retry_base
            .saturating_mul(2u32.saturating_pow(a.lease.attempt.saturating_sub(1)))
            .min(self.opts.retry_cap);
        let wait = error.retry_after().unwrap_or(exp.mul_f64(fastrand::f64()));
        let at = self.now() + wait.as_millis() as i64;
        let message = error.to_string();
        let state = lock(&self.queue).retry_later(&a.lease, at, &message, error.status())?;
        tracing::info!(job = id, vm = a.job.vm_label(), step = %a.step, next = ?state, "{message}");
        Ok(())
    }

    /// Writes a held job's step and checkpoint (with its in-doubt mark).
    fn save(&self, a: &Active) -> Result<(), RunError> {
        self.save_many([a])
    }

    fn save_many<'a>(&self, jobs: impl IntoIterator<Item = &'a Active>) -> Result<(), RunError> {
        let saves: Vec<_> = jobs
            .into_iter()
            .map(|a| crate::queue::Save {
                lease: a.lease.clone(),
                step: a.step,
                checkpoint: a.checkpoint.clone(),
                in_doubt: Some(a.in_doubt),
            })
            .collect();
        lock(&self.queue).save_all(&saves)?;
        Ok(())
    }
}

/// Resolves once Ctrl-C (or the caller) asked the run to stop.
async fn stopped(mut stop: watch::Receiver<bool>) {
    // The guard `wait_for` returns must not live across an await: it is not Send.
    let _ = stop.wait_for(|s| *s).await.map(|_| ());
}

// A poisoned lock means a panic elsewhere mid-write; SQLite rolled that transaction back, so
// the queue is still consistent.
fn lock(q: &Shared) -> std::sync::MutexGuard<'_, Queue> {
    q.lock().unwrap_or_else(|p| p.into_inner())
}
