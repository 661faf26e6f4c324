//! The kind of work a batch does to its VMs, as the run's loop sees it: the same steps for
//! every kind, each kind doing them its own way.
//!
//! | kind | resolve | submit | reconcile (in doubt) | verify |
//! |---|---|---|---|---|
//! | [`Configure`](super::configure) | VM lookups in groups, placement | up to 20 specs a call | the VM's replication and tasks | the replication listed |
//! | [`Operate`](super::operate) | the pairing's replication list | one call a job | the operation's effect, then its task | the effect shows |
//! | [`LocalRemoval`](super::local_only) | nothing to read | one `DELETE` a job | the VM's tasks | its task succeeded |
//!
//! Each step is one pass over the held jobs at that step, pairing by pairing; what the kinds
//! share (discovery, task polls, the pace, writing a job's end) is the [`Runner`]'s.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

use super::{RunError, RunOptions, Runner};
use crate::queue::JobId;
use crate::vr::model::{Task, TaskStatus};
use crate::workflow::Discovery;

/// A kind of work, step by step. The futures are `Send`: a run is spawned like any task.
pub(super) trait Work: Send {
    /// Calls a job costs the appliance, on average, from its lookup to its end: how many jobs
    /// a lease's share of the budget can carry ([`Runner::held_at_most`]).
    fn calls_per_job(&self, opts: &RunOptions) -> f64;

    /// Whether the work may ask the target site anything (a local-only removal runs while it
    /// is down).
    fn asks_target_site(&self) -> bool {
        true
    }

    /// What the work keeps of a pairing just discovered.
    fn discovered(&mut self, _disc: &Discovery) {}

    /// Whether jobs ready to submit wait for an admission slot rather than for the budget.
    fn admits(&self, _opts: &RunOptions) -> bool {
        false
    }

    /// When jobs waiting for an admission slot should be looked at again (`None`: soon),
    /// `lead` before a slot frees.
    fn next_look(&self, _lead: Duration) -> Option<Instant> {
        None
    }

    /// Settles the in-doubt jobs (their change may have reached the appliance) from what the
    /// appliance says, before anything is sent again.
    fn reconcile(&mut self, run: &mut Runner) -> impl Future<Output = Result<(), RunError>> + Send;

    /// Finds what each job at `resolve_*` acts on, and moves it on to `submit`, or ends it.
    fn resolve(&mut self, run: &mut Runner) -> impl Future<Output = Result<(), RunError>> + Send;

    /// Sends the changes of the jobs at `submit`, written ahead as in doubt.
    fn submit(&mut self, run: &mut Runner) -> impl Future<Output = Result<(), RunError>> + Send;

    /// Judges the jobs whose task succeeded; how many ended. `round` is when this round of
    /// following began.
    fn verify(
        &mut self,
        run: &mut Runner,
        round: Instant,
    ) -> impl Future<Output = Result<usize, RunError>> + Send;

    /// A job's task failed or was cancelled on the appliance: by default the job fails in its
    /// words.
    fn task_failed(
        &mut self,
        run: &mut Runner,
        id: JobId,
        task: &Task,
    ) -> impl Future<Output = Result<(), RunError>> + Send {
        async move { run.fail(id, task_failure(task), None).await }
    }
}

/// The server's words for a task that failed or was cancelled.
pub(super) fn task_failure(task: &Task) -> String {
    if task.status == TaskStatus::Cancelled {
        return format!("task {} was cancelled on the server", task.id);
    }
    task.error_text()
        .unwrap_or_else(|| format!("task {} failed", task.id))
}
