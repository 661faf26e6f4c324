//! The jobs a run holds: each claimed job with what the run has learnt of it so far (its step,
//! checkpoint, in-doubt mark, the task it follows, a setback's wait), kept in memory between
//! the writes that save it (`ending`). Every job the run ever held is remembered, for its
//! outcome's count.

use std::collections::{BTreeMap, HashSet};
use std::ops::Index;

use tokio::time::Instant;

use crate::domain::OperationSpec;
use crate::queue::{Checkpoint, Job, JobId, Lease, Save, Step};
use crate::vr::model::ConfigureReplicationSpec;

/// A job this run holds, with what it has learnt so far.
#[derive(Debug, Clone)]
pub(super) struct HeldJob {
    pub job: Job,
    pub lease: Lease,
    pub step: Step,
    pub checkpoint: Checkpoint,
    pub in_doubt: bool,
    pub spec: Option<ConfigureReplicationSpec>,
    /// Whether this run placed the job and holds its room (see [`crate::workflow::Capacity`]).
    pub holds_room: bool,
    /// When this run submitted the job's task, or took over the job with its task.
    pub submitted: Option<Instant>,
    /// The task's progress as the last two polls saw it.
    pub progress: Option<(Instant, i32)>,
    pub previous_progress: Option<(Instant, i32)>,
    pub poll_failures: u32,
    pub verify_tries: u32,
    /// Set back after a failed read (or a call whose outcome is unknown) while this run keeps
    /// it: left alone until then.
    pub not_before: Option<Instant>,
    /// Setbacks in a row while held, for the backoff.
    pub setbacks: u32,
}

impl HeldJob {
    pub fn pairing_key(&self) -> Option<String> {
        self.job.spec.pairing.clone()
    }

    /// The day-2 operation the job does; an operation batch's job always has one.
    pub fn operation(&self) -> OperationSpec {
        self.job.operation.clone().unwrap_or(OperationSpec::Sync)
    }

    /// Whether a change may have reached the server: from here on, only the server's own word
    /// (a failed task, a replication in error) may fail the job.
    pub fn past_submit(&self) -> bool {
        self.in_doubt || self.step >= Step::AwaitTask
    }

    /// Whether a setback's wait is over.
    pub fn due(&self, now: Instant) -> bool {
        self.not_before.is_none_or(|t| t <= now)
    }

    /// At `resolve_*` and not in doubt: what it acts on is to be found.
    pub fn to_resolve(&self) -> bool {
        !self.in_doubt && matches!(self.step, Step::ResolveVm | Step::ResolveTarget)
    }

    /// At `submit` and not in doubt: waiting to be sent.
    pub fn ready_to_send(&self) -> bool {
        !self.in_doubt && self.step == Step::Submit
    }

    /// At `verify` and not in doubt: its task succeeded; its change is to be seen.
    pub fn to_verify(&self) -> bool {
        !self.in_doubt && self.step == Step::Verify
    }

    /// The job's step and checkpoint as the queue is to save them, with the in-doubt mark.
    pub fn save(&self) -> Save {
        Save {
            lease: self.lease.clone(),
            step: self.step,
            checkpoint: self.checkpoint.clone(),
            in_doubt: Some(self.in_doubt),
        }
    }
}

/// The jobs held now, by id.
#[derive(Debug, Default)]
pub(super) struct Held {
    jobs: BTreeMap<JobId, HeldJob>,
    /// Every job this run has held.
    taken: HashSet<JobId>,
}

impl Held {
    /// Holds a claimed job. One taken over with its task in flight is followed like one just
    /// submitted: the instant it is followed from.
    pub fn hold(&mut self, job: Job) -> Option<Instant> {
        let lease = job.lease()?;
        self.taken.insert(job.id);
        tracing::info!(job = job.id, vm = job.vm_label(), step = %job.step, attempt = job.attempt, "claimed");
        let submitted = (job.step == Step::AwaitTask).then(Instant::now);
        self.jobs.insert(
            job.id,
            HeldJob {
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
        submitted
    }

    pub fn get(&self, id: &JobId) -> Option<&HeldJob> {
        self.jobs.get(id)
    }

    pub fn get_mut(&mut self, id: &JobId) -> Option<&mut HeldJob> {
        self.jobs.get_mut(id)
    }

    /// Lets go of a job (its end, or its return, is written by the caller).
    pub fn remove(&mut self, id: &JobId) -> Option<HeldJob> {
        self.jobs.remove(id)
    }

    pub fn values(&self) -> impl Iterator<Item = &HeldJob> {
        self.jobs.values()
    }

    pub fn len(&self) -> usize {
        self.jobs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.jobs.is_empty()
    }

    /// How many jobs this run has held in all.
    pub fn taken(&self) -> u64 {
        self.taken.len() as u64
    }

    /// The held jobs that match.
    pub fn ids(&self, which: impl Fn(&HeldJob) -> bool) -> Vec<JobId> {
        self.jobs
            .values()
            .filter(|a| which(a))
            .map(|a| a.job.id)
            .collect()
    }

    /// The resolved VM ids of these held jobs.
    pub fn vm_ids(&self, ids: &[JobId]) -> Vec<String> {
        ids.iter()
            .filter_map(|id| self.jobs.get(id)?.checkpoint.vm_id.clone())
            .collect()
    }

    /// What the queue is to save of these held jobs.
    pub fn saves(&self, ids: &[JobId]) -> Vec<Save> {
        ids.iter()
            .filter_map(|id| self.jobs.get(id))
            .map(HeldJob::save)
            .collect()
    }

    /// Changes whenever any held job moves: the run's loop sleeps only when nothing did.
    pub fn progress_marker(&self) -> Vec<(JobId, Step, bool)> {
        self.jobs
            .values()
            .map(|a| (a.job.id, a.step, a.in_doubt))
            .collect()
    }
}

impl Index<&JobId> for Held {
    type Output = HeldJob;

    fn index(&self, id: &JobId) -> &HeldJob {
        &self.jobs[id]
    }
}
