//! The work of a configure batch: each job gives its VM a replication.
//!
//! - resolve: the VMs looked up in groups (many `filter=` values a call, or the whole inventory
//!   when that is cheaper), each decided (configure, skip, fail) and placed on the room the
//!   target sites have left ([`Capacity`]); a job resumed at `resolve_target` rebuilds its VM
//!   from the checkpoint.
//! - submit: up to 20 specs a call ([`groups`]), at the pace admission allows (`admission`).
//! - reconcile: an in-doubt job asks for the VM's replication and tasks: a replication means the
//!   configure reached the server, a live task is followed, none means it did not.
//! - verify: the job ends when the appliance lists its replication configured; a census taken in
//!   the same round answers without a call.
//!
//! A VR server the appliance refuses as full is believed for the rest of the run; a VM placed
//! `auto` goes back to be placed again (`placed_again`).

mod groups;

use std::collections::HashMap;
use std::sync::Arc;

use futures_util::future::join_all;
use tokio::time::Instant;

use self::groups::{submit_group, Submitted};
use super::admission::Admission;
use super::held::HeldJob;
use super::tasks::VERIFY_TRIES;
use super::work::{task_failure, Work};
use super::{now_ms, RunError, RunOptions, Runner};
use crate::queue::{JobId, Save, Step};
use crate::vr::model::{
    ConfigurationState, ConfigureReplicationSpec, ReplicationInfo, Task, TaskStatus, VirtualMachine,
};
use crate::vr::ApiError;
use crate::workflow::reads::{replications_of, tasks_of_vms};
use crate::workflow::spec::spec_bytes;
use crate::workflow::{
    decide, lookup_vms, plan_configure, vm_key, Capacity, Decision, Discovery, Full, VmLookup,
};

/// A configure batch's work, with the room its placements spend and the pace it admits at.
pub(super) struct Configure {
    /// Room left on the target sites, spent as this run places VMs.
    room: Capacity,
    admission: Admission,
}

impl Configure {
    pub fn new(room: Capacity, admission: Admission) -> Configure {
        Configure { room, admission }
    }
}

impl Work for Configure {
    fn calls_per_job(&self, opts: &RunOptions) -> f64 {
        1.0 / opts.lookup_group.max(1) as f64 + 1.0 / opts.submit_group.max(1) as f64
    }

    fn discovered(&mut self, disc: &Discovery) {
        self.room.add(disc);
    }

    fn admits(&self, opts: &RunOptions) -> bool {
        Admission::admits(opts)
    }

    fn next_look(&self, lead: std::time::Duration) -> Option<Instant> {
        self.admission.next_look(lead)
    }

    /// In-doubt jobs: their configure call may have reached the server. Ask it before anything
    /// is sent again.
    async fn reconcile(&mut self, run: &mut Runner) -> Result<(), RunError> {
        for (disc, ids) in run.in_doubt_by_pairing() {
            if run.stop.stopping() {
                break;
            }
            let vm_ids = run.held.vm_ids(&ids);
            let client = run.client.clone();
            let work = async move {
                let reps =
                    replications_of(&client, disc.pairing_id(), &vm_ids, disc.size_with(&vm_ids))
                        .await?;
                let tasks = tasks_of_vms(&client, &vm_ids).await?;
                Ok((reps, tasks))
            };
            let Some((reps, tasks)) = run.fetch(&ids, work).await? else {
                continue;
            };
            for id in ids {
                self.settle_in_doubt(run, id, &reps, &tasks).await?;
            }
        }
        Ok(())
    }

    /// Looks up the VMs of jobs at `resolve_vm` (in groups) and decides each: configure, skip or
    /// fail.
    async fn resolve(&mut self, run: &mut Runner) -> Result<(), RunError> {
        for (disc, ids) in run.by_pairing(HeldJob::to_resolve) {
            if run.stop.stopping() {
                break;
            }
            let Some(lookups) = look_up(run, &disc, &ids).await? else {
                continue;
            };
            let mut ready = Vec::new();
            for id in ids {
                let Some(a) = run.held.get(&id) else {
                    continue;
                };
                let decision = self.room.admit(decision(a, &lookups, &disc));
                if decided(run, id, decision).await? {
                    ready.push(id);
                }
            }
            run.ready_to_submit(&ready).await?;
        }
        Ok(())
    }

    /// Sends the specs of jobs at `submit`, up to G per call, as admission and the budget let
    /// them go. Each group is written ahead as in doubt.
    async fn submit(&mut self, run: &mut Runner) -> Result<(), RunError> {
        for (disc, ids) in run.by_pairing(HeldJob::ready_to_send) {
            if run.stop.stopping() {
                break;
            }
            let ready = specs_of(run, &ids);
            if ready.is_empty() {
                continue;
            }
            let mut sent = self.admission.admit(run, &disc, ready).await?;
            // Only what the budget lets go now: a submit left waiting for the appliance's next
            // window could go out after the change window closed. The rest goes next pass.
            sent.truncate(run.sendable() * run.opts.submit_group.max(1));
            if sent.is_empty() {
                continue;
            }
            let written: Vec<JobId> = sent.iter().map(|(id, _)| *id).collect();
            run.write_ahead(&written).await?;
            let calls = sent
                .chunks(run.opts.submit_group.max(1))
                .map(|g| submit_group(&run.client, disc.pairing_id(), g.to_vec()));
            let Some(answers) = run.stop.guarded(join_all(calls)).await else {
                return Ok(());
            };
            self.answered(run, answers.into_iter().flatten()).await?;
        }
        Ok(())
    }

    /// Confirms that each job whose task succeeded now has its replication. Under admission the
    /// round first counts each pairing's initial syncs; that census answers the verify too.
    async fn verify(&mut self, run: &mut Runner, round: Instant) -> Result<usize, RunError> {
        if Admission::admits(&run.opts) {
            for (disc, _) in run.by_pairing(|a| !a.in_doubt && a.step >= Step::Submit) {
                self.admission.take_census(run, &disc).await?;
            }
        }
        let mut settled = 0;
        for (disc, ids) in run.by_pairing(HeldJob::to_verify) {
            if run.stop.stopping() {
                break;
            }
            let vm_ids = run.held.vm_ids(&ids);
            let reps = match self.admission.fresh(disc.pairing_id(), round, &vm_ids) {
                Some(reps) => reps,
                None => match run.replications_of(&disc, &ids).await? {
                    Some(reps) => reps,
                    None => continue,
                },
            };
            for id in ids {
                settled += usize::from(self.verify_one(run, id, &reps).await?);
            }
        }
        Ok(settled)
    }

    /// A configure that failed on the appliance gives its room back; one refused for a full VR
    /// server goes to another when it was placed `auto` ([`Configure::placed_again`]).
    async fn task_failed(
        &mut self,
        run: &mut Runner,
        id: JobId,
        task: &Task,
    ) -> Result<(), RunError> {
        self.unplace(run, id);
        if task.status == TaskStatus::Error && self.placed_again(run, id, task).await? {
            return Ok(());
        }
        run.fail(id, task_failure(task), None).await
    }
}

impl Configure {
    async fn settle_in_doubt(
        &mut self,
        run: &mut Runner,
        id: JobId,
        reps: &HashMap<String, ReplicationInfo>,
        tasks: &HashMap<String, Task>,
    ) -> Result<(), RunError> {
        let Some(a) = run.held.get_mut(&id) else {
            return Ok(());
        };
        let vm = a.checkpoint.vm_id.clone().unwrap_or_default();
        a.in_doubt = false;
        // A live or finished task says the most; a replication without one is judged by
        // `verify`, from its configuration state.
        match (tasks.get(&vm), reps.get(&vm)) {
            (Some(t), _) if t.status == TaskStatus::Error => {
                a.checkpoint.task_id = Some(t.id.clone());
                if self.placed_again(run, id, t).await? {
                    return Ok(());
                }
                return run.fail(id, task_failure(t), None).await;
            }
            (Some(t), _) if t.status != TaskStatus::Cancelled => {
                tracing::info!(job = id, task = %t.id, "in doubt: the configure call had reached the server; following its task");
                if t.status == TaskStatus::Success {
                    a.checkpoint.task_id = Some(t.id.clone());
                    a.step = Step::Verify;
                } else {
                    run.follow_task(id, &t.id, Instant::now());
                }
            }
            (_, Some(rep)) => {
                tracing::info!(job = id, replication = %rep.id, "in doubt: the VM has its replication; verifying it");
                a.step = Step::Verify;
            }
            // Nothing reached the server: submit again.
            _ => a.step = Step::Submit,
        }
        run.save_many(&[id]).await
    }

    /// What the configure calls answered, job by job: a task to follow, a refusal that fails
    /// the job (and gives its room back), or an unknown outcome that leaves it in doubt. The
    /// jobs of a failed call share its error, and are set back together.
    async fn answered(
        &mut self,
        run: &mut Runner,
        answers: impl Iterator<Item = (JobId, Submitted)>,
    ) -> Result<(), RunError> {
        let mut accepted = Vec::new();
        let mut unknown: Vec<(Arc<ApiError>, Vec<JobId>)> = Vec::new();
        for (id, answer) in answers {
            match answer {
                Submitted::Task(task, at) => {
                    if run.follow_task(id, &task.id, at) {
                        accepted.push(id);
                    }
                }
                Submitted::Rejected(e) => {
                    run.answered_no(id);
                    self.unplace(run, id);
                    let reason = e.server_message().unwrap_or_default();
                    let reason = format!("the server refused the spec: {reason}");
                    run.fail(id, reason, e.status()).await?;
                }
                // In doubt (saved so before the call): the next attempt asks the server.
                Submitted::Unknown(e) => match unknown.iter_mut().find(|(u, _)| Arc::ptr_eq(u, &e))
                {
                    Some((_, ids)) => ids.push(id),
                    None => unknown.push((e, vec![id])),
                },
            }
        }
        run.save_many(&accepted).await?;
        for (e, ids) in unknown {
            run.setback_all(ids, &e).await?;
        }
        Ok(())
    }

    /// Judges one job by its replication; whether it ended.
    async fn verify_one(
        &mut self,
        run: &mut Runner,
        id: JobId,
        reps: &HashMap<String, ReplicationInfo>,
    ) -> Result<bool, RunError> {
        let Some(a) = run.held.get_mut(&id) else {
            return Ok(false);
        };
        let vm = a.checkpoint.vm_id.clone().unwrap_or_default();
        match reps.get(&vm) {
            Some(rep) if rep.configuration_state == Some(ConfigurationState::Error) => {
                let why = rep
                    .configuration_error
                    .as_ref()
                    .and_then(|e| e.message.clone())
                    .unwrap_or_else(|| "configuration state ERROR".into());
                let reason = format!("replication {}: {why}", rep.id);
                run.fail(id, reason, None).await?;
            }
            Some(rep) if rep.configuration_state != Some(ConfigurationState::InProgress) => {
                a.checkpoint.replication_id = Some(rep.id.clone());
                self.admission.configured(a);
                run.succeed(id, rep.id.clone(), "configured").await?;
            }
            found => {
                // Not listed yet, or still being configured: look again at the next round.
                a.verify_tries += 1;
                if found.is_none() && a.verify_tries >= VERIFY_TRIES {
                    let reason =
                        "the task succeeded, but the server lists no replication for the VM";
                    run.fail(id, reason.into(), None).await?;
                    return Ok(true);
                }
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// A configure this run placed did not happen: its room goes back for the VMs after it.
    fn unplace(&mut self, run: &mut Runner, id: JobId) {
        let Some(a) = run.held.get_mut(&id) else {
            return;
        };
        if !std::mem::take(&mut a.holds_room) {
            return;
        }
        if let (Some(p), Some(spec)) = (&a.checkpoint.placement, &a.spec) {
            let server = p.replication_server_id.as_deref();
            self.room
                .give_back(server, &p.datastore_id, spec_bytes(spec));
        }
    }

    /// A configure task failed. When the appliance said the VR server (or the appliance) was
    /// full, the room believes it for the rest of the run, and a server limit it taught is
    /// kept for later plans and runs. A VM placed `auto` was placed there by vrbulk, not by
    /// the operator: it goes back to be placed again on a server with room (the failed task
    /// created nothing: its own word settles the in-doubt mark the move back passes through),
    /// due at once and without using up its attempts. Whether it did.
    async fn placed_again(
        &mut self,
        run: &mut Runner,
        id: JobId,
        task: &Task,
    ) -> Result<bool, RunError> {
        self.unplace(run, id);
        let Some(a) = run.held.get(&id) else {
            return Ok(false);
        };
        let words = task_failure(task);
        let server = a
            .checkpoint
            .placement
            .as_ref()
            .and_then(|p| p.replication_server_id.clone());
        let Some(full) = self.room.refused(server.as_deref(), &words, id, now_ms()) else {
            return Ok(false);
        };
        if let Full::Server {
            learnt: Some(learnt),
        } = &full
        {
            tracing::warn!(
                "VR server '{}' takes at most {} replications, fewer than vrbulk counted by: the \
                 appliance refused VM {} onto it ({words}); it counts as full from now on, in \
                 this run and the next",
                learnt.server_name,
                learnt.replications,
                a.job.vm_label()
            );
            let learnt = learnt.clone();
            run.db.run(move |q| q.learn_limit(&learnt)).await?;
        }
        let auto = a.job.spec.places_automatically();
        if !matches!(full, Full::Server { .. }) || !auto {
            return Ok(false);
        }
        let Some(mut a) = run.held.remove(&id) else {
            return Ok(false);
        };
        let back_from = a.step;
        a.checkpoint.placement = None;
        a.checkpoint.task_id = None;
        a.spec = None;
        a.in_doubt = false;
        a.step = Step::ResolveTarget;
        let mut saves = Vec::new();
        if back_from > Step::Submit {
            saves.push(Save {
                step: Step::Submit,
                in_doubt: Some(true),
                ..a.save()
            });
        }
        saves.push(a.save());
        let message = format!(
            "{words}; the VM goes to another VR server with room (its replication_server is auto)"
        );
        tracing::info!(job = id, vm = a.job.vm_label(), "{message}");
        run.db
            .run(move |q| {
                q.save_all(&saves)?;
                q.defer(&a.lease, now_ms(), &message, None)
            })
            .await?;
        Ok(true)
    }
}

/// The VMs of the jobs that need a lookup, by [`vm_key`]; `None` when the lookup failed (the
/// jobs were set back) or was abandoned.
async fn look_up(
    run: &mut Runner,
    disc: &Arc<Discovery>,
    ids: &[JobId],
) -> Result<Option<HashMap<String, VmLookup>>, RunError> {
    let needs: Vec<JobId> = ids
        .iter()
        .copied()
        .filter(|id| {
            let a = &run.held[id];
            a.step == Step::ResolveVm || a.checkpoint.disks.is_none()
        })
        .collect();
    if needs.is_empty() {
        return Ok(Some(HashMap::new()));
    }
    let refs: Vec<_> = needs
        .iter()
        .map(|id| run.held[id].job.spec.vm.clone())
        .collect();
    let (client, disc, group) = (run.client.clone(), disc.clone(), run.opts.lookup_group);
    let work = async move {
        let refs: Vec<_> = refs.iter().collect();
        lookup_vms(&client, &disc, &refs, group).await
    };
    run.fetch(&needs, work).await
}

/// Writes what was decided of a held job at `resolve_*`: its VM and placement (whether it is
/// ready to submit), or its end.
async fn decided(run: &mut Runner, id: JobId, decision: Decision) -> Result<bool, RunError> {
    match decision {
        Decision::Configure {
            vm,
            placement,
            spec,
            excluded,
        } => {
            if !excluded.is_empty() {
                tracing::info!(job = id, vm = %vm.name, "disks not replicated (unsupported): {}", excluded.join(", "));
            }
            let Some(a) = run.held.get_mut(&id) else {
                return Ok(false);
            };
            a.checkpoint.vm_id = Some(vm.id.clone());
            a.checkpoint.disks = vm.disks.clone();
            a.checkpoint.placement = Some(placement);
            a.spec = Some(*spec);
            a.holds_room = true;
            Ok(true)
        }
        Decision::Skip {
            vm_id,
            reason,
            replication_id,
        } => {
            if let Some(a) = run.held.get_mut(&id) {
                a.checkpoint.vm_id = vm_id;
                a.checkpoint.replication_id = replication_id.clone();
            }
            run.skip(id, reason, replication_id).await?;
            Ok(false)
        }
        Decision::Fail { vm_id, reason } => {
            if let Some(a) = run.held.get_mut(&id) {
                a.checkpoint.vm_id = vm_id;
            }
            run.fail(id, reason, None).await?;
            Ok(false)
        }
    }
}

/// The specs of these held jobs at `submit`; a job resumed there rebuilds its spec from the
/// checkpoint, or, when it cannot, goes back to `resolve_vm`.
fn specs_of(run: &mut Runner, ids: &[JobId]) -> Vec<(JobId, ConfigureReplicationSpec)> {
    let mut ready = Vec::new();
    for id in ids {
        let Some(a) = run.held.get_mut(id) else {
            continue;
        };
        if a.spec.is_none() {
            a.spec = rebuilt_spec(a);
        }
        match &a.spec {
            Some(spec) => ready.push((*id, spec.clone())),
            None => a.step = Step::ResolveVm,
        }
    }
    ready
}

/// What to do with a held job at `resolve_*`: from its lookup, or, resumed at `resolve_target`,
/// from the VM its checkpoint holds.
fn decision(a: &HeldJob, lookups: &HashMap<String, VmLookup>, disc: &Discovery) -> Decision {
    if let Some(lookup) = lookups.get(&vm_key(&a.job.spec.vm)) {
        return decide(&a.job.spec, lookup, disc);
    }
    let vm = vm_from_checkpoint(a);
    if let Some(r) = disc.replications.get(&vm.id) {
        return Decision::Skip {
            vm_id: Some(vm.id.clone()),
            reason: format!("already replicated: {}", r.id),
            replication_id: Some(r.id.clone()),
        };
    }
    match disc.placement(&a.job.spec) {
        Ok(p) => plan_configure(vm, p, &a.job.spec.settings),
        Err(reason) => Decision::Fail {
            vm_id: Some(vm.id),
            reason,
        },
    }
}

/// The spec of a job resumed at `submit`, from its checkpoint.
fn rebuilt_spec(a: &HeldJob) -> Option<ConfigureReplicationSpec> {
    let placement = a.checkpoint.placement.clone()?;
    match plan_configure(vm_from_checkpoint(a), placement, &a.job.spec.settings) {
        Decision::Configure { spec, .. } => Some(*spec),
        _ => None,
    }
}

fn vm_from_checkpoint(a: &HeldJob) -> VirtualMachine {
    VirtualMachine {
        id: a.checkpoint.vm_id.clone().unwrap_or_default(),
        name: a.job.vm_label().to_string(),
        power_state: None,
        connection_state: None,
        template: None,
        managed_by_info: None,
        vr_privilege_granted: None,
        disks: a.checkpoint.disks.clone(),
    }
}
