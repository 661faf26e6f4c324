//! The work of an operation batch (unconfigure, reconfigure, pause, resume, sync):
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
//!   replication is gone, a paused one paused…), then for a task of that operation on the VM
//!   queued since the batch was created (an older one is someone else's), and only then sends
//!   again (a sync asked twice syncs twice, harmlessly).
//!
//! Task polls are every kind's (`tasks`). A local-only removal reads no list at all: `local_only`
//! is its own kind, and shares only the submit and the task-based settling here.

use std::collections::HashMap;
use std::sync::Arc;

use futures_util::future::join_all;
use tokio::time::Instant;

use super::held::HeldJob;
use super::tasks::VERIFY_TRIES;
use super::work::Work;
use super::{RunError, RunOptions, Runner};
use crate::domain::{Operation, OperationSpec};
use crate::queue::{BatchId, JobId, Step};
use crate::vr::model::{ReconfigureReplicationSpec, ReplicationInfo, Task, TaskStatus};
use crate::vr::{ApiError, Client, ErrorClass};
use crate::workflow::operations::{effect, effect_after_task, reconfigure_spec, Effect};
use crate::workflow::reads::tasks_of_vms;
use crate::workflow::Discovery;

/// A task older than this before the batch was created is not the batch's: the appliance's
/// clock and ours may differ by that much.
const CLOCK_SKEW_MS: i64 = 60_000;

/// An operation batch's work: `operation` on the replications batch `acts_on` configured.
pub(super) struct Operate {
    operation: Operation,
    acts_on: Option<BatchId>,
}

impl Operate {
    pub fn new(operation: Operation, acts_on: Option<BatchId>) -> Operate {
        Operate { operation, acts_on }
    }
}

impl Work for Operate {
    fn calls_per_job(&self, _opts: &RunOptions) -> f64 {
        match self.operation {
            // Its disks are read first, then the call.
            Operation::Reconfigure => 2.0,
            _ => 1.0,
        }
    }

    /// In-doubt jobs: has the operation shown, is a task of it under way, or did nothing reach
    /// the appliance?
    async fn reconcile(&mut self, run: &mut Runner) -> Result<(), RunError> {
        for (disc, ids) in run.in_doubt_by_pairing() {
            if run.stop.stopping() {
                break;
            }
            let Some(by_vm) = replication_list(run, &disc, &ids).await? else {
                continue;
            };
            let Some(tasks) = tasks_of(run, &ids).await? else {
                continue;
            };
            for id in ids {
                settle(run, id, &by_vm, &tasks).await?;
            }
        }
        Ok(())
    }

    /// Finds each held job's replication in the pairing's list, and builds a reconfigure's body.
    async fn resolve(&mut self, run: &mut Runner) -> Result<(), RunError> {
        for (disc, ids) in run.by_pairing(HeldJob::to_resolve) {
            if run.stop.stopping() {
                break;
            }
            let Some(by_vm) = replication_list(run, &disc, &ids).await? else {
                continue;
            };
            let ready = self.still_there(run, ids, &by_vm).await?;
            if self.operation != Operation::Reconfigure {
                let ready: Vec<JobId> = ready.into_iter().map(|(id, _)| id).collect();
                run.ready_to_submit(&ready).await?;
                continue;
            }
            // As many reads at a time as may be in flight; each lot's bodies saved before the
            // next lot is read.
            for lot in ready.chunks(run.opts.workers.max(1)) {
                if run.stop.stopping() {
                    break;
                }
                let built = build_reconfigures(run, &disc, lot.to_vec()).await?;
                run.ready_to_submit(&built).await?;
            }
        }
        Ok(())
    }

    async fn submit(&mut self, run: &mut Runner) -> Result<(), RunError> {
        submit(run).await
    }

    /// Judges each job whose task succeeded by its replication now.
    async fn verify(&mut self, run: &mut Runner, _round: Instant) -> Result<usize, RunError> {
        let mut settled = 0;
        for (disc, ids) in run.by_pairing(HeldJob::to_verify) {
            if run.stop.stopping() {
                break;
            }
            let Some(reps) = run.replications_of(&disc, &ids).await? else {
                continue;
            };
            for id in ids {
                settled += usize::from(self.verify_one(run, id, &reps).await?);
            }
        }
        Ok(settled)
    }
}

impl Operate {
    /// The jobs of `ids` whose replication is still the one their configure batch recorded,
    /// with it; the others are skipped, saying why.
    async fn still_there(
        &self,
        run: &mut Runner,
        ids: Vec<JobId>,
        by_vm: &HashMap<String, ReplicationInfo>,
    ) -> Result<Vec<(JobId, ReplicationInfo)>, RunError> {
        let mut ready = Vec::new();
        for id in ids {
            let Some(a) = run.held.get(&id) else {
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
                    run.skip(id, reason, None).await?;
                }
                None => {
                    let reason = format!("replication {ours} no longer exists");
                    run.skip(id, reason, None).await?;
                }
            }
        }
        Ok(ready)
    }

    /// Judges an operation job by its replication now; whether it ended.
    async fn verify_one(
        &self,
        run: &mut Runner,
        id: JobId,
        reps: &HashMap<String, ReplicationInfo>,
    ) -> Result<bool, RunError> {
        let Some(a) = run.held.get_mut(&id) else {
            return Ok(false);
        };
        let op = a.operation();
        let ours = a.checkpoint.replication_id.clone().unwrap_or_default();
        let vm = a.checkpoint.vm_id.clone().unwrap_or_default();
        match effect_after_task(&op, &ours, reps.get(&vm)) {
            Effect::Done => run.succeed(id, ours, self.done()).await?,
            Effect::Gone => {
                let reason = format!(
                    "replication {ours} disappeared while the {} was under way",
                    op.operation()
                );
                run.fail(id, reason, None).await?;
            }
            Effect::NotYet => {
                a.verify_tries += 1;
                if a.verify_tries >= VERIFY_TRIES {
                    let reason = format!(
                        "the {} task succeeded, but replication {ours} does not show it",
                        op.operation()
                    );
                    run.fail(id, reason, None).await?;
                    return Ok(true);
                }
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// What a job that succeeded did to its replication.
    fn done(&self) -> &'static str {
        match self.operation {
            Operation::Unconfigure => "unconfigured",
            Operation::Reconfigure => "reconfigured",
            Operation::Pause => "paused",
            Operation::Resume => "resumed",
            Operation::Sync => "synced",
            Operation::Configure => "configured",
        }
    }
}

/// Reads the disks of each replication to reconfigure and builds its body; a job whose body
/// cannot be built (a policy or server the target site lacks) fails with the reason.
async fn build_reconfigures(
    run: &mut Runner,
    disc: &Arc<Discovery>,
    found: Vec<(JobId, ReplicationInfo)>,
) -> Result<Vec<JobId>, RunError> {
    let pairing = disc.pairing_id().to_string();
    let client = run.client.clone();
    let reads = join_all(
        found
            .iter()
            .map(|(_, rep)| client.replication_disks(&pairing, &rep.id)),
    );
    let Some(disks) = run.stop.guarded(reads).await else {
        return Ok(Vec::new());
    };
    let mut ready = Vec::new();
    for ((id, rep), disks) in found.into_iter().zip(disks) {
        let disks = match disks {
            Ok(d) => d,
            Err(e) => {
                run.setback(id, &e).await?;
                continue;
            }
        };
        let Some(a) = run.held.get(&id) else {
            continue;
        };
        let OperationSpec::Reconfigure(change) = a.operation() else {
            continue;
        };
        match reconfigure_spec(&rep, &disks, &change, disc) {
            Ok(spec) => {
                if let Some(a) = run.held.get_mut(&id) {
                    a.checkpoint.reconfigure = Some(spec);
                }
                ready.push(id);
            }
            Err(reason) => run.fail(id, reason, None).await?,
        }
    }
    Ok(ready)
}

/// One operation call a job makes: its replication, and a reconfigure's body.
struct Call {
    id: JobId,
    replication: String,
    op: OperationSpec,
    body: Option<ReconfigureReplicationSpec>,
}

/// Sends each held job's operation, one call each (the API has no bulk form), written ahead
/// as in doubt; only what the budget lets go now (see the configure's submit).
pub(super) async fn submit(run: &mut Runner) -> Result<(), RunError> {
    for (disc, ids) in run.by_pairing(HeldJob::ready_to_send) {
        if run.stop.stopping() {
            break;
        }
        let sends = sends_of(run, &ids, run.sendable());
        if sends.is_empty() {
            continue;
        }
        let written: Vec<JobId> = sends.iter().map(|s| s.id).collect();
        run.write_ahead(&written).await?;
        let calls = sends
            .iter()
            .map(|s| send(&run.client, disc.pairing_id(), s));
        let Some(answers) = run.stop.guarded(join_all(calls)).await else {
            return Ok(());
        };
        let mut accepted = Vec::new();
        for (s, answer) in sends.iter().zip(answers) {
            match answer {
                Ok(task) => {
                    if run.follow_task(s.id, &task.id, Instant::now()) {
                        accepted.push(s.id);
                    }
                }
                Err(e) => refused(run, s, &e).await?,
            }
        }
        run.save_many(&accepted).await?;
    }
    Ok(())
}

/// Up to `room` of these held jobs' operations. A reconfigure saved at submit by an older
/// vrbulk has no body: it goes back to have it read again.
fn sends_of(run: &mut Runner, ids: &[JobId], room: usize) -> Vec<Call> {
    let mut sends = Vec::new();
    for id in ids {
        if sends.len() == room {
            break;
        }
        let Some(a) = run.held.get_mut(id) else {
            continue;
        };
        let op = a.operation();
        if matches!(op, OperationSpec::Reconfigure(_)) && a.checkpoint.reconfigure.is_none() {
            a.step = Step::ResolveVm;
            continue;
        }
        sends.push(Call {
            id: *id,
            replication: a.checkpoint.replication_id.clone().unwrap_or_default(),
            op,
            body: a.checkpoint.reconfigure.clone(),
        });
    }
    sends
}

/// An operation the appliance did not take: gone or in the wrong state is a skip with its
/// words, a refused body a failure, anything whose effect is unknown stays in doubt.
async fn refused(run: &mut Runner, s: &Call, e: &ApiError) -> Result<(), RunError> {
    let words = e.server_message().unwrap_or_default().to_string();
    let answered_no = matches!(e, ApiError::Status(_)) && e.class() == ErrorClass::Permanent;
    if !answered_no {
        return run.setback(s.id, e).await;
    }
    run.answered_no(s.id);
    let operation = s.op.operation();
    match e.status() {
        Some(404) => {
            let reason = format!("replication {} no longer exists: {words}", s.replication);
            run.skip(s.id, reason, None).await
        }
        // Only a reconfigure has a body the appliance could find wrong; any other refusal
        // is about the replication's state.
        Some(400 | 409) if operation != Operation::Reconfigure || is_state_refusal(e) => {
            let reason = format!("the appliance refused the {operation} now: {words}");
            run.skip(s.id, reason, None).await
        }
        status => {
            let reason = format!("the appliance refused the {operation}: {words}");
            run.fail(s.id, reason, status).await
        }
    }
}

/// An in-doubt operation job, from its replication (`by_vm`) and the VM's tasks.
async fn settle(
    run: &mut Runner,
    id: JobId,
    by_vm: &HashMap<String, ReplicationInfo>,
    tasks: &HashMap<String, Task>,
) -> Result<(), RunError> {
    let Some(a) = run.held.get_mut(&id) else {
        return Ok(());
    };
    let op = a.operation();
    let vm = a.checkpoint.vm_id.clone().unwrap_or_default();
    let ours = a.checkpoint.replication_id.clone().unwrap_or_default();
    match effect(&op, &ours, by_vm.get(&vm)) {
        Effect::Done => {
            a.in_doubt = false;
            a.step = Step::Verify;
            run.save_many(&[id]).await
        }
        Effect::Gone => {
            a.in_doubt = false;
            let reason = format!("replication {ours} no longer exists");
            run.skip(id, reason, None).await
        }
        // Nothing shows yet: the task says whether it reached the appliance (a sync, which
        // shows nothing, is told by its task alone).
        Effect::NotYet => settle_by_task(run, id, tasks).await,
    }
}

/// An in-doubt job, judged by the VM's task of the job's operation asked since its batch was
/// created: under way it is followed, succeeded it is verified, failed it fails in the task's
/// words; without one, nothing reached the appliance and it is sent again. A task of the same
/// kind older than the batch is someone else's.
pub(super) async fn settle_by_task(
    run: &mut Runner,
    id: JobId,
    tasks: &HashMap<String, Task>,
) -> Result<(), RunError> {
    let Some(a) = run.held.get_mut(&id) else {
        return Ok(());
    };
    a.in_doubt = false;
    let op = a.operation();
    let since = a.job.created_at - CLOCK_SKEW_MS;
    let vm = a.checkpoint.vm_id.clone().unwrap_or_default();
    let what = what(&op);
    let task = tasks
        .get(&vm)
        .filter(|t| is_task_of(t, &op) && queued_since(t, since));
    match task {
        Some(t) if !t.status.is_finished() => {
            tracing::info!(job = id, task = %t.id, "in doubt: the {what} had reached the appliance; following its task");
            run.follow_task(id, &t.id, Instant::now());
        }
        Some(t) if t.status == TaskStatus::Success => {
            tracing::info!(job = id, task = %t.id, "in doubt: the {what} had reached the appliance and its task succeeded; verifying");
            a.checkpoint.task_id = Some(t.id.clone());
            a.step = Step::Verify;
        }
        Some(t) if t.status == TaskStatus::Error => {
            a.checkpoint.task_id = Some(t.id.clone());
            let reason = t
                .error_text()
                .unwrap_or_else(|| format!("the {what} task failed"));
            return run.fail(id, reason, None).await;
        }
        // Nothing reached the appliance (or its task was cancelled): send again.
        _ => a.step = Step::Submit,
    }
    run.save_many(&[id]).await
}

/// The VMs' latest tasks of these held jobs; `None` when they could not be read (the jobs were
/// set back) or the read was abandoned.
pub(super) async fn tasks_of(
    run: &mut Runner,
    ids: &[JobId],
) -> Result<Option<HashMap<String, Task>>, RunError> {
    let vm_ids = run.held.vm_ids(ids);
    let client = run.client.clone();
    let work = async move { tasks_of_vms(&client, &vm_ids).await };
    run.fetch(ids, work).await
}

/// The pairing's replications by VM id: one list for every job of the group (one call per
/// 1000); `None` when it could not be read (the jobs were set back) or was abandoned.
async fn replication_list(
    run: &mut Runner,
    disc: &Arc<Discovery>,
    ids: &[JobId],
) -> Result<Option<HashMap<String, ReplicationInfo>>, RunError> {
    let (client, pairing) = (run.client.clone(), disc.pairing_id().to_string());
    let work = async move { client.replications(&pairing, None).await };
    Ok(run.fetch(ids, work).await?.map(|reps| {
        reps.into_iter()
            .filter_map(|r| Some((r.vm_id.clone()?, r)))
            .collect()
    }))
}

/// One operation call.
async fn send(client: &Client, pairing: &str, s: &Call) -> Result<Task, ApiError> {
    let replication = s.replication.as_str();
    match &s.op {
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
        OperationSpec::Reconfigure(_) => match &s.body {
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

/// The operation in the operator's words: a local-only removal is no unconfigure of both halves.
fn what(op: &OperationSpec) -> &'static str {
    match op {
        OperationSpec::Unconfigure {
            local_only: true, ..
        } => "local-only removal",
        other => other.operation().as_str(),
    }
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
        let removal = OperationSpec::Unconfigure {
            retain_replica_disks: false,
            local_only: true,
        };
        assert!(queued_since(&task(destroy, Some(since), None), since));
        assert!(!queued_since(&task(destroy, Some(since - 1), None), since));
        assert!(queued_since(&task(destroy, None, Some(since + 5)), since));
        assert!(!queued_since(&task(destroy, None, None), since));
        assert!(is_task_of(&task(destroy, None, None), &removal));
        assert!(!is_task_of(
            &task("com.vmware.vr.UnconfigureReplicationTask", None, None),
            &removal
        ));
    }
}
