//! Following the tasks the appliance runs for the held jobs, whatever the kind of work: one
//! round at a time when the pacer says one is due, each round one poll for every outstanding
//! task, then the kind's verify of the jobs whose task succeeded, then the next round planned.

use std::collections::HashMap;
use std::time::Duration;

use tokio::time::Instant;

use super::work::Work;
use super::{RunError, Runner};
use crate::queue::{JobId, Step};
use crate::vr::model::{ReplicationInfo, Task, TaskStatus};
use crate::workflow::reads::{replications_of, tasks_by_id};
use crate::workflow::Discovery;

/// Polls in a row that may fail before a job goes back to the queue.
const POLL_FAILURES: u32 = 5;

/// Rounds in which a job whose task succeeded may not show its change yet (its replication not
/// listed, its operation not seen) before that fails it.
pub(super) const VERIFY_TRIES: u32 = 5;

impl Runner {
    /// A round of following, when the pacer says one is due: the outstanding tasks, then the
    /// jobs whose task succeeded.
    pub(super) async fn round(&mut self, work: &mut impl Work) -> Result<(), RunError> {
        let now = Instant::now();
        let admitting = work.admits(&self.opts);
        let following = self
            .held
            .values()
            .any(|a| matches!(a.step, Step::AwaitTask | Step::Verify) && !a.in_doubt);
        let for_a_slot = admitting && self.held.values().any(|a| a.ready_to_send());
        // A job reconciled straight to `verify` has no round planned yet.
        if !(following || for_a_slot) || (self.pacer.next().is_some() && !self.pacer.due(now)) {
            return Ok(());
        }
        let calls_before = self.client.metrics().total_calls();
        let mut settled = self.poll_tasks(work).await?;
        if !self.stop.stopping() {
            settled += work.verify(self, now).await?;
        }
        let cost = self.client.metrics().total_calls() - calls_before;
        let look = admitting.then(|| work.next_look(self.pacer.lead()));
        self.plan_round(now, settled, cost as u32, look);
        Ok(())
    }

    /// Follows the outstanding tasks together; returns how many jobs moved on.
    async fn poll_tasks(&mut self, work: &mut impl Work) -> Result<usize, RunError> {
        let now = Instant::now();
        let waiting: Vec<(JobId, String)> = self
            .held
            .values()
            .filter(|a| a.step == Step::AwaitTask && !a.in_doubt && a.due(now))
            .filter_map(|a| Some((a.job.id, a.checkpoint.task_id.clone()?)))
            .collect();
        if waiting.is_empty() {
            return Ok(0);
        }
        let ids: Vec<String> = waiting.iter().map(|(_, t)| t.clone()).collect();
        let Some(mut found) = self.stop.guarded(tasks_by_id(&self.client, &ids)).await else {
            return Ok(0);
        };
        let mut settled = 0;
        for (job, task_id) in waiting {
            match found.remove(&task_id) {
                Some(Ok(task)) => settled += usize::from(self.saw_task(work, job, &task).await?),
                Some(Err(e)) if e.status() == Some(404) => {
                    // The server forgot the task: find out from the VM itself what happened.
                    if let Some(a) = self.held.get_mut(&job) {
                        a.in_doubt = true;
                        a.step = Step::Submit;
                    }
                    self.save_many(&[job]).await?;
                    settled += 1;
                }
                Some(Err(e)) => {
                    let failures = self.held.get_mut(&job).map(|a| {
                        a.poll_failures += 1;
                        a.poll_failures
                    });
                    // The task goes on without us; only a server that stays unreachable sends
                    // the job back to the queue (it resumes polling the same task).
                    if failures.is_some_and(|f| f >= POLL_FAILURES) {
                        self.setback(job, &e).await?;
                    }
                }
                None => {}
            }
        }
        Ok(settled)
    }

    /// What a poll saw of one job's task; whether the job moved on.
    async fn saw_task(
        &mut self,
        work: &mut impl Work,
        job: JobId,
        task: &Task,
    ) -> Result<bool, RunError> {
        if let (Some(q), Some(c)) = (task.queued_time, task.complete_time) {
            self.pacer
                .finished(Duration::from_millis(c.saturating_sub(q).max(0) as u64));
        }
        match task.status {
            TaskStatus::Success => {
                if let Some(a) = self.held.get_mut(&job) {
                    a.step = Step::Verify;
                }
                self.save_many(&[job]).await?;
            }
            TaskStatus::Error | TaskStatus::Cancelled => work.task_failed(self, job, task).await?,
            _ => {
                if let Some(a) = self.held.get_mut(&job) {
                    a.poll_failures = 0;
                    if let Some(p) = task.progress {
                        a.previous_progress = a.progress;
                        a.progress = Some((Instant::now(), p));
                    }
                }
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// The replications of these held jobs' VMs, by VM id; `None` when the read failed (the
    /// jobs were set back) or was abandoned.
    pub(super) async fn replications_of(
        &mut self,
        disc: &Discovery,
        ids: &[JobId],
    ) -> Result<Option<HashMap<String, ReplicationInfo>>, RunError> {
        let vm_ids = self.held.vm_ids(ids);
        let client = self.client.clone();
        let size = disc.size_with(&vm_ids);
        let pairing = disc.pairing_id().to_string();
        let work = async move { replications_of(&client, &pairing, &vm_ids, size).await };
        self.fetch(ids, work).await
    }
}
