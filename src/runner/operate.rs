//! The runner's phases for an operation batch (unconfigure, reconfigure, pause, resume, sync):
//! each job acts on the replication its configure batch recorded, and on nothing else.
//!
//! - resolve: the pairing's replication list (one call per 1000) tells whether that replication
//!   is still there; gone, or replaced by one someone else configured since, the job is skipped
//!   and says so. A reconfigure reads the replication's disks (one call each: the spec wants
//!   them all back) and builds its body from the replication as it is; the bodies are saved a
//!   few at a time, so that a run killed while reading loses only the reads under way, and a
//!   resumed job sends its saved body without reading anything again.
//! - submit: one call per job (the API has no bulk form), written ahead as in doubt.
//!   A refusal for the replication's state is a skip with the appliance's words, not a failure.
//! - reconcile: an in-doubt job asks first whether its operation shows (an unconfigured
//!   replication is gone, a paused one paused…), then for a task of that operation on the VM,
//!   and only then sends again (a sync asked twice syncs twice, harmlessly).
//!
//! Task polls and the verify that ends each job are the configure's own (`phases`). A local-only
//! removal reads no list at all: `local_only` takes its resolve, reconcile and verify.

use std::collections::HashMap;
use std::sync::Arc;

use futures_util::future::join_all;
use tokio::time::Instant;

use super::{Active, RunError, Runner};
use crate::domain::{Operation, OperationSpec};
use crate::queue::{JobId, Step};
use crate::vr::model::{ReconfigureReplicationSpec, ReplicationInfo, Task, TaskStatus};
use crate::vr::{ApiError, Client, ErrorClass};
use crate::workflow::operations::{effect, reconfigure_spec, Effect};
use crate::workflow::reads::tasks_of_vms;
use crate::workflow::Discovery;

impl Runner {
    /// The job's operation; an operation batch's job always has one.
    fn op_of(a: &Active) -> OperationSpec {
        a.job.operation.clone().unwrap_or(OperationSpec::Sync)
    }

    /// Finds each held job's replication in the pairing's list, and builds a reconfigure's body.
    pub(super) async fn resolve_operations(&mut self) -> Result<(), RunError> {
        if self.local_only {
            return self.resolve_local_removals().await;
        }
        for (disc, ids) in self
            .by_pairing(|a| !a.in_doubt && matches!(a.step, Step::ResolveVm | Step::ResolveTarget))
        {
            if self.stopping() {
                break;
            }
            let Some(by_vm) = self.replication_list(&disc, &ids).await? else {
                continue;
            };
            let mut ready = Vec::new();
            for id in ids {
                let Some(a) = self.active.get(&id) else {
                    continue;
                };
                let ours = a.checkpoint.replication_id.clone().unwrap_or_default();
                let vm = a.checkpoint.vm_id.clone().unwrap_or_default();
                match by_vm.get(&vm) {
                    Some(rep) if rep.id == ours => ready.push((id, rep.clone())),
                    Some(rep) => {
                        let reason = format!(
                            "the VM's replication is now {}, not {ours} that batch {} configured: \
                             left alone",
                            rep.id,
                            self.acts_on.unwrap_or_default()
                        );
                        self.skip(id, reason, None).await?;
                    }
                    None => {
                        let reason = format!("replication {ours} no longer exists");
                        self.skip(id, reason, None).await?;
                    }
                }
            }
            if self.operation != Operation::Reconfigure {
                let ready: Vec<JobId> = ready.into_iter().map(|(id, _)| id).collect();
                self.ready_to_submit(&ready).await?;
                continue;
            }
            // As many reads at a time as may be in flight; each lot's bodies saved before the
            // next lot is read.
            for lot in ready.chunks(self.opts.workers.max(1)) {
                if self.stopping() {
                    break;
                }
                let built = self.build_reconfigures(&disc, lot.to_vec()).await?;
                self.ready_to_submit(&built).await?;
            }
        }
        Ok(())
    }

    /// Reads the disks of each replication to reconfigure and builds its body; a job whose body
    /// cannot be built (a policy or server the target site lacks) fails with the reason.
    async fn build_reconfigures(
        &mut self,
        disc: &Arc<Discovery>,
        found: Vec<(JobId, ReplicationInfo)>,
    ) -> Result<Vec<JobId>, RunError> {
        let pairing = disc.pairing_id().to_string();
        let client = self.client.clone();
        let reads = join_all(
            found
                .iter()
                .map(|(_, rep)| client.replication_disks(&pairing, &rep.id)),
        );
        let Some(disks) = self.guarded(reads).await else {
            return Ok(Vec::new());
        };
        let mut ready = Vec::new();
        for ((id, rep), disks) in found.into_iter().zip(disks) {
            let disks = match disks {
                Ok(d) => d,
                Err(e) => {
                    self.setback(id, &e).await?;
                    continue;
                }
            };
            let Some(a) = self.active.get(&id) else {
                continue;
            };
            let OperationSpec::Reconfigure(change) = Self::op_of(a) else {
                continue;
            };
            match reconfigure_spec(&rep, &disks, &change, disc) {
                Ok(spec) => {
                    if let Some(a) = self.active.get_mut(&id) {
                        a.checkpoint.reconfigure = Some(spec);
                    }
                    ready.push(id);
                }
                Err(reason) => self.fail(id, reason, None).await?,
            }
        }
        Ok(ready)
    }

    /// Sends each held job's operation, one call each, written ahead as in doubt.
    pub(super) async fn submit_operations(&mut self) -> Result<(), RunError> {
        for (disc, ids) in self.by_pairing(|a| !a.in_doubt && a.step == Step::Submit) {
            if self.stopping() {
                break;
            }
            let mut sends = Vec::new();
            // One call each, and only what the budget lets go now (see `submit`).
            let room = self.sendable();
            for id in ids {
                if sends.len() == room {
                    break;
                }
                let Some(a) = self.active.get_mut(&id) else {
                    continue;
                };
                let op = Self::op_of(a);
                // A reconfigure saved at submit by an older vrbulk has no body: read it again.
                if matches!(op, OperationSpec::Reconfigure(_)) && a.checkpoint.reconfigure.is_none()
                {
                    a.step = Step::ResolveVm;
                    continue;
                }
                a.in_doubt = true;
                let replication = a.checkpoint.replication_id.clone().unwrap_or_default();
                sends.push((id, replication, op, a.checkpoint.reconfigure.clone()));
            }
            if sends.is_empty() {
                continue;
            }
            let written: Vec<JobId> = sends.iter().map(|(id, ..)| *id).collect();
            self.save_many(&written).await?;
            let (client, pairing) = (self.client.clone(), disc.pairing_id().to_string());
            let work = join_all(
                sends
                    .iter()
                    .map(|(_, rep, op, body)| send(&client, &pairing, rep, op, body.as_ref())),
            );
            let Some(results) = self.guarded(work).await else {
                return Ok(());
            };
            let mut accepted = Vec::new();
            for ((id, replication, op, _), result) in sends.into_iter().zip(results) {
                match result {
                    Ok(task) => {
                        if let Some(a) = self.active.get_mut(&id) {
                            a.in_doubt = false;
                            a.checkpoint.task_id = Some(task.id.clone());
                            a.step = Step::AwaitTask;
                            a.submitted = Some(Instant::now());
                            self.pacer.submitted(Instant::now());
                            accepted.push(id);
                        }
                    }
                    Err(e) => self.refused(id, &replication, &op, &e).await?,
                }
            }
            self.save_many(&accepted).await?;
        }
        Ok(())
    }

    /// An operation the appliance did not take: gone or in the wrong state is a skip with its
    /// words, a refused body a failure, anything whose effect is unknown stays in doubt.
    async fn refused(
        &mut self,
        id: JobId,
        replication: &str,
        op: &OperationSpec,
        e: &ApiError,
    ) -> Result<(), RunError> {
        let words = e.server_message().unwrap_or_default().to_string();
        let answered_no = matches!(e, ApiError::Status(_)) && e.class() == ErrorClass::Permanent;
        if !answered_no {
            return self.setback(id, e).await;
        }
        if let Some(a) = self.active.get_mut(&id) {
            a.in_doubt = false;
        }
        let operation = op.operation();
        match e.status() {
            Some(404) => {
                let reason = format!("replication {replication} no longer exists: {words}");
                self.skip(id, reason, None).await
            }
            // Only a reconfigure has a body the appliance could find wrong; any other refusal
            // is about the replication's state.
            Some(400 | 409) if operation != Operation::Reconfigure || is_state_refusal(e) => {
                let reason = format!("the appliance refused the {operation} now: {words}");
                self.skip(id, reason, None).await
            }
            status => {
                let reason = format!("the appliance refused the {operation}: {words}");
                self.fail(id, reason, status).await
            }
        }
    }

    /// In-doubt jobs of an operation batch: has the operation shown, is a task of it under way,
    /// or did nothing reach the appliance?
    pub(super) async fn reconcile_operations(&mut self) -> Result<(), RunError> {
        if self.local_only {
            return self.reconcile_local_removals().await;
        }
        for (disc, ids) in self.in_doubt_by_pairing() {
            if self.stopping() {
                break;
            }
            let Some(by_vm) = self.replication_list(&disc, &ids).await? else {
                continue;
            };
            let vm_ids = self.vm_ids(&ids);
            let client = self.client.clone();
            let work = async move { tasks_of_vms(&client, &vm_ids).await };
            let Some(tasks) = self.fetch(&ids, work).await? else {
                continue;
            };
            for id in ids {
                self.settle_operation(id, &by_vm, &tasks).await?;
            }
        }
        Ok(())
    }

    async fn settle_operation(
        &mut self,
        id: JobId,
        by_vm: &HashMap<String, ReplicationInfo>,
        tasks: &HashMap<String, Task>,
    ) -> Result<(), RunError> {
        let Some(a) = self.active.get_mut(&id) else {
            return Ok(());
        };
        a.in_doubt = false;
        let op = Self::op_of(a);
        let vm = a.checkpoint.vm_id.clone().unwrap_or_default();
        let ours = a.checkpoint.replication_id.clone().unwrap_or_default();
        let task = tasks.get(&vm).filter(|t| is_task_of(t, &op));
        match (effect(&op, &ours, by_vm.get(&vm)), task) {
            (Effect::Done, _) => a.step = Step::Verify,
            (Effect::Gone, _) => {
                let reason = format!("replication {ours} no longer exists");
                return self.skip(id, reason, None).await;
            }
            (Effect::NotYet, Some(t)) if !t.status.is_finished() => {
                tracing::info!(job = id, task = %t.id, "in doubt: the {} had reached the appliance; following its task", op.operation());
                a.checkpoint.task_id = Some(t.id.clone());
                a.submitted = Some(Instant::now());
                a.step = Step::AwaitTask;
                self.pacer.submitted(Instant::now());
            }
            // Its task ended between the two reads (the list was read before it did): verify.
            // A task of this kind older than the batch is someone else's; a minute allows for
            // the appliance's clock.
            (Effect::NotYet, Some(t))
                if t.status == TaskStatus::Success
                    && t.start_time.unwrap_or_default() >= a.job.created_at - 60_000 =>
            {
                tracing::info!(job = id, task = %t.id, "in doubt: the {} had reached the appliance and its task succeeded; verifying", op.operation());
                a.checkpoint.task_id = Some(t.id.clone());
                a.step = Step::Verify;
            }
            (Effect::NotYet, Some(t)) if t.status == TaskStatus::Error => {
                a.checkpoint.task_id = Some(t.id.clone());
                let reason = t
                    .error_text()
                    .unwrap_or_else(|| format!("the {} task failed", op.operation()));
                return self.fail(id, reason, None).await;
            }
            // Nothing reached the appliance, or it cannot be told (a sync): send again.
            _ => a.step = Step::Submit,
        }
        self.save_many(&[id]).await
    }

    /// The pairing's replications by VM id: one list for every job of the group (one call per
    /// 1000); `None` when it could not be read (the jobs were set back) or was abandoned.
    async fn replication_list(
        &mut self,
        disc: &Arc<Discovery>,
        ids: &[JobId],
    ) -> Result<Option<HashMap<String, ReplicationInfo>>, RunError> {
        let (client, pairing) = (self.client.clone(), disc.pairing_id().to_string());
        let work = async move { client.replications(&pairing, None).await };
        Ok(self.fetch(ids, work).await?.map(|reps| {
            reps.into_iter()
                .filter_map(|r| Some((r.vm_id.clone()?, r)))
                .collect()
        }))
    }
}

/// One operation call.
async fn send(
    client: &Client,
    pairing: &str,
    replication: &str,
    op: &OperationSpec,
    reconfigure: Option<&ReconfigureReplicationSpec>,
) -> Result<Task, ApiError> {
    match op {
        OperationSpec::Unconfigure {
            retain_replica_disks,
            local_only: false,
        } => {
            client
                .unconfigure_replication(pairing, replication, *retain_replica_disks)
                .await
        }
        OperationSpec::Unconfigure {
            retain_replica_disks,
            local_only: true,
        } => {
            client
                .destroy_replication(pairing, replication, *retain_replica_disks)
                .await
        }
        OperationSpec::Reconfigure(_) => match reconfigure {
            Some(body) => {
                client
                    .reconfigure_replication(pairing, replication, body)
                    .await
            }
            None => Err(ApiError::Decode {
                method: "POST".into(),
                path: "/reconfigure".into(),
                detail: "no reconfigure body was built".into(),
            }),
        },
        OperationSpec::Pause => client.pause_replication(pairing, replication).await,
        OperationSpec::Resume => client.resume_replication(pairing, replication).await,
        OperationSpec::Sync => client.sync_replication(pairing, replication).await,
    }
}

/// Whether a refusal is about the replication's state rather than the body sent.
fn is_state_refusal(e: &ApiError) -> bool {
    match e {
        ApiError::Status(s) => s
            .error_code
            .as_deref()
            .is_some_and(|c| c.contains("STATE") || c.contains("IN_PROGRESS")),
        _ => false,
    }
}

/// Whether `task` is one of `op`: its description names it, as the appliance's task
/// descriptions do (`…UnconfigureReplicationTask`, `…DestroyReplicationTask`, …).
fn is_task_of(task: &Task, op: &OperationSpec) -> bool {
    let wanted = match op {
        OperationSpec::Unconfigure {
            local_only: true, ..
        } => "destroy",
        other => other.operation().as_str(),
    };
    task.description_id
        .as_deref()
        .is_some_and(|d| d.to_ascii_lowercase().contains(wanted))
}
