//! The work of a local-only removal (`vrbulk undo --local-only`), which must work
//! while the target site is down: that is what `DELETE …/replications/{id}` is for. Nothing here
//! needs the target site, so nothing here reads what only it can answer (its login, its lists,
//! the pairing's replication list):
//!
//! - discovery is [`crate::workflow::Discovery::local`]: the pairing, from the pairing list the
//!   run already has.
//! - resolve: nothing to look up. Each job acts on the replication id its configure job recorded
//!   (the checkpoint), so a replication someone configured for the VM since has another id and
//!   is never touched; one already gone answers the `DELETE` with 404, a skip (`operate`'s
//!   `refused`, as for every operation).
//! - submit is the other operations' own (`operate`), and so are the task polls (`tasks`): tasks
//!   are the appliance's, not the pairing's.
//! - verify: the job is done when its task succeeds; there is no list to confirm it by.
//! - reconcile: an in-doubt job asks the VM's tasks for a destroy task queued since the batch was
//!   created (a minute allowing for the appliance's clock); none means the `DELETE` did not
//!   reach the appliance, and it is sent again: a second `DELETE` of a removed replication is a
//!   404, so nothing is removed twice.
//!
//! Every other operation batch, an undo that removes both halves included, is `operate`'s work,
//! which reads the replication list first.

use tokio::time::Instant;

use super::held::HeldJob;
use super::operate::{settle_by_task, tasks_of};
use super::work::Work;
use super::{RunError, RunOptions, Runner};
use crate::domain::{Operation, OperationSpec};
use crate::queue::Job;

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

/// A local-only removal's work.
pub(super) struct LocalRemoval;

impl Work for LocalRemoval {
    fn calls_per_job(&self, _opts: &RunOptions) -> f64 {
        1.0
    }

    fn asks_target_site(&self) -> bool {
        false
    }

    /// In-doubt jobs: did their `DELETE` reach the appliance? The VM's tasks say; the
    /// replication list, which needs the target site, is not read.
    async fn reconcile(&mut self, run: &mut Runner) -> Result<(), RunError> {
        for (_, ids) in run.in_doubt_by_pairing() {
            if run.stop.stopping() {
                break;
            }
            let Some(tasks) = tasks_of(run, &ids).await? else {
                continue;
            };
            for id in ids {
                settle_by_task(run, id, &tasks).await?;
            }
        }
        Ok(())
    }

    /// Held jobs at `resolve_*` go straight to `submit`: their replication id is recorded, and
    /// nothing about it can be read without the target site.
    async fn resolve(&mut self, run: &mut Runner) -> Result<(), RunError> {
        for (_, ids) in run.by_pairing(HeldJob::to_resolve) {
            let mut ready = Vec::new();
            for id in ids {
                let recorded = run
                    .held
                    .get(&id)
                    .and_then(|a| a.checkpoint.replication_id.as_deref())
                    .is_some_and(|r| !r.is_empty());
                if recorded {
                    ready.push(id);
                } else {
                    let reason = "its configure job recorded no replication id".to_string();
                    run.fail(id, reason, None).await?;
                }
            }
            run.ready_to_submit(&ready).await?;
        }
        Ok(())
    }

    async fn submit(&mut self, run: &mut Runner) -> Result<(), RunError> {
        super::operate::submit(run).await
    }

    /// Jobs whose removal task succeeded are done: there is no list to confirm it by.
    async fn verify(&mut self, run: &mut Runner, _round: Instant) -> Result<usize, RunError> {
        let done = run.held.ids(HeldJob::to_verify);
        for id in &done {
            let replication = run.held[id]
                .checkpoint
                .replication_id
                .clone()
                .unwrap_or_default();
            run.succeed(*id, replication, "removed on this site only")
                .await?;
        }
        Ok(done.len())
    }
}
