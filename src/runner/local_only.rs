//! The runner's phases for a local-only removal (`vrbulk undo --local-only`), which must work
//! while the target site is down: that is what `DELETE …/replications/{id}` is for. Nothing here
//! needs the target site, so nothing here reads what only it can answer (its login, its lists,
//! the pairing's replication list):
//!
//! - discovery is [`Discovery::local`]: the pairing, from the pairing list the run already has.
//! - resolve: nothing to look up. Each job acts on the replication id its configure job recorded
//!   (the checkpoint), so a replication someone configured for the VM since has another id and
//!   is never touched; one already gone answers the `DELETE` with 404, a skip (`operate`'s
//!   `refused`, as for every operation).
//! - submit and the task polls are the other operations' own (`operate`, `phases`): tasks are
//!   the appliance's, not the pairing's.
//! - verify: the job is done when its task succeeds; there is no list to confirm it by.
//! - reconcile: an in-doubt job asks the VM's tasks for a destroy task queued since the batch was
//!   created (a minute allowing for the appliance's clock); none means the `DELETE` did not
//!   reach the appliance, and it is sent again: a second `DELETE` of a removed replication is a
//!   404, so nothing is removed twice.
//!
//! Every other operation batch, an undo that removes both halves included, keeps `operate`'s
//! path, which reads the replication list first.

use std::collections::HashMap;

use tokio::time::Instant;

use super::{RunError, Runner};
use crate::domain::{Operation, OperationSpec};
use crate::queue::{Job, JobId, Step};
use crate::vr::model::{Task, TaskStatus};
use crate::workflow::reads::tasks_of_vms;

/// Whether a batch's jobs all remove their replication on this site only: such a batch never
/// needs the target site.
pub(super) fn removes_locally(operation: Operation, jobs: &[Job]) -> bool {
    operation == Operation::Unconfigure
        && !jobs.is_empty()
        && jobs.iter().all(|j| {
            matches!(
                j.operation,
                Some(OperationSpec::Unconfigure {
                    local_only: true,
                    ..
                })
            )
        })
}

/// A task older than this before the batch was created is not the batch's: the appliance's
/// clock and ours may differ by that much.
const CLOCK_SKEW_MS: i64 = 60_000;

impl Runner {
    /// Held jobs at `resolve_*` go straight to `submit`: their replication id is recorded, and
    /// nothing about it can be read without the target site.
    pub(super) async fn resolve_local_removals(&mut self) -> Result<(), RunError> {
        for (_, ids) in self
            .by_pairing(|a| !a.in_doubt && matches!(a.step, Step::ResolveVm | Step::ResolveTarget))
        {
            let mut ready = Vec::new();
            for id in ids {
                let recorded = self
                    .active
                    .get(&id)
                    .and_then(|a| a.checkpoint.replication_id.as_deref())
                    .is_some_and(|r| !r.is_empty());
                if recorded {
                    ready.push(id);
                } else {
                    let reason = "its configure job recorded no replication id".to_string();
                    self.fail(id, reason, None).await?;
                }
            }
            self.ready_to_submit(&ready).await?;
        }
        Ok(())
    }

    /// In-doubt jobs: did their `DELETE` reach the appliance? The VM's tasks say; the
    /// replication list, which needs the target site, is not read.
    pub(super) async fn reconcile_local_removals(&mut self) -> Result<(), RunError> {
        for (_, ids) in self.in_doubt_by_pairing() {
            if self.stopping() {
                break;
            }
            let vm_ids = self.vm_ids(&ids);
            let client = self.client.clone();
            let work = async move { tasks_of_vms(&client, &vm_ids).await };
            let Some(tasks) = self.fetch(&ids, work).await? else {
                continue;
            };
            for id in ids {
                self.settle_local_removal(id, &tasks).await?;
            }
        }
        Ok(())
    }

    async fn settle_local_removal(
        &mut self,
        id: JobId,
        tasks: &HashMap<String, Task>,
    ) -> Result<(), RunError> {
        let Some(a) = self.active.get_mut(&id) else {
            return Ok(());
        };
        a.in_doubt = false;
        let vm = a.checkpoint.vm_id.clone().unwrap_or_default();
        let since = a.job.created_at - CLOCK_SKEW_MS;
        let task = tasks
            .get(&vm)
            .filter(|t| is_destroy(t) && queued_since(t, since));
        match task {
            Some(t) if !t.status.is_finished() => {
                tracing::info!(job = id, task = %t.id, "in doubt: the local-only removal had reached the appliance; following its task");
                a.checkpoint.task_id = Some(t.id.clone());
                a.submitted = Some(Instant::now());
                a.step = Step::AwaitTask;
                self.pacer.submitted(Instant::now());
            }
            Some(t) if t.status == TaskStatus::Success => {
                tracing::info!(job = id, task = %t.id, "in doubt: the local-only removal had reached the appliance and its task succeeded");
                a.checkpoint.task_id = Some(t.id.clone());
                a.step = Step::Verify;
            }
            Some(t) if t.status == TaskStatus::Error => {
                a.checkpoint.task_id = Some(t.id.clone());
                let reason = t
                    .error_text()
                    .unwrap_or_else(|| "the local-only removal task failed".to_string());
                return self.fail(id, reason, None).await;
            }
            // Nothing reached the appliance (or its task was cancelled): send again.
            _ => a.step = Step::Submit,
        }
        self.save_many(&[id]).await
    }

    /// Jobs whose removal task succeeded are done; returns how many.
    pub(super) async fn confirm_local_removals(&mut self) -> Result<usize, RunError> {
        let done: Vec<(JobId, String)> = self
            .active
            .values()
            .filter(|a| a.step == Step::Verify && !a.in_doubt)
            .map(|a| {
                let replication = a.checkpoint.replication_id.clone().unwrap_or_default();
                (a.job.id, replication)
            })
            .collect();
        for (id, replication) in &done {
            self.succeed(*id, replication.clone()).await?;
        }
        Ok(done.len())
    }
}

/// Whether `task` is a local-only removal: the appliance's description names it
/// (`…DestroyReplicationTask`).
fn is_destroy(task: &Task) -> bool {
    task.description_id
        .as_deref()
        .is_some_and(|d| d.to_ascii_lowercase().contains("destroy"))
}

/// Whether `task` was queued at or after `since` (Unix ms). A task still queued has no start
/// time yet: its queued time is what says when it was asked for.
fn queued_since(task: &Task, since: i64) -> bool {
    task.queued_time
        .or(task.start_time)
        .is_some_and(|at| at >= since)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(description: &str, queued: Option<i64>, started: Option<i64>) -> Task {
        serde_json::from_value(serde_json::json!({
            "id": "HTask:1",
            "description_id": description,
            "entity": "vm-1",
            "status": "QUEUED",
            "queued_time": queued,
            "start_time": started,
        }))
        .unwrap()
    }

    #[test]
    fn only_a_destroy_task_queued_since_the_batch_counts_as_the_jobs_own() {
        let since = 1_000_000;
        let destroy = "com.vmware.vr.DestroyReplicationTask";
        assert!(queued_since(&task(destroy, Some(since), None), since));
        assert!(!queued_since(&task(destroy, Some(since - 1), None), since));
        assert!(queued_since(&task(destroy, None, Some(since + 5)), since));
        assert!(!queued_since(&task(destroy, None, None), since));
        assert!(is_destroy(&task(destroy, None, None)));
        assert!(!is_destroy(&task(
            "com.vmware.vr.UnconfigureReplicationTask",
            None,
            None
        )));
    }
}
