//! The runner's phases, each one pass over the held jobs that are at its step: network work for
//! all of them together first (guarded against Ctrl-C), then their results written.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::join_all;
use tokio::time::Instant;

use super::pacing::Sighting;
use super::{now_ms, Active, RunError, Runner};
use crate::domain::{Operation, OperationSpec};
use crate::queue::{JobId, Step};
use crate::vr::error::error_chain;
use crate::vr::model::{
    ConfigurationState, ConfigureReplicationSpec, ReplicationInfo, Task, TaskStatus, VirtualMachine,
};
use crate::vr::{ApiError, Client, ErrorClass};
use crate::workflow::operations::Effect;
use crate::workflow::reads::{replications_of, tasks_by_id, tasks_of_vms};
use crate::workflow::spec::spec_bytes;
use crate::workflow::{
    decide, lookup_vms, plan_configure, vm_key, Decision, Discovery, Full, VmLookup,
};

/// Rounds in which a job whose task succeeded may be missing from the replications before that
/// fails it.
const VERIFY_TRIES: u32 = 5;

impl Runner {
    /// Discovers each pairing the held jobs name, once per run.
    pub(super) async fn discover(&mut self) -> Result<(), RunError> {
        let mut keys: Vec<Option<String>> = self
            .active
            .values()
            .map(Active::pairing_key)
            .filter(|k| !matches!(self.discoveries.get(k), Some(Ok(_))))
            .collect();
        keys.sort();
        keys.dedup();
        for key in keys {
            if self.stopping() {
                break;
            }
            if let Some(Err(e)) = self.discoveries.get(&key) {
                let reason = error_chain(e.as_ref());
                for id in self.held_with(&key) {
                    self.fail(id, reason.clone(), None).await?;
                }
                continue;
            }
            let found = if self.local_only {
                Some(Discovery::local(&self.pairings, key.as_deref()))
            } else {
                self.guarded(Discovery::run(&self.client, &self.pairings, key.as_deref()))
                    .await
            };
            let Some(found) = found else { return Ok(()) };
            match found {
                Ok(d) => {
                    let summary = serde_json::to_value(d.summary()).unwrap_or_default();
                    let (batch, pairing) = (self.batch, d.pairing.pairing_id.clone());
                    self.db
                        .run(move |q| q.record_discovery(batch, &pairing, &summary))
                        .await?;
                    tracing::info!(pairing = %d.pairing.pairing_id, remote = %d.remote_vc_name, "discovered");
                    self.room.add(&d);
                    self.discoveries.insert(key, Ok(Arc::new(d)));
                }
                Err(e) => {
                    let ids = self.held_with(&key);
                    match e.api_error() {
                        Some(api) if api.class() != ErrorClass::Permanent => {
                            self.setback_all(ids, api).await?;
                        }
                        _ => {
                            let reason = error_chain(&e);
                            let status = e.api_error().and_then(ApiError::status);
                            self.discoveries.insert(key, Err(Arc::new(e)));
                            for id in ids {
                                self.fail(id, reason.clone(), status).await?;
                            }
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// In-doubt jobs: their configure call may have reached the server. Ask it before anything
    /// is sent again: a replication means it did, a live task is followed, none means it did not.
    pub(super) async fn reconcile(&mut self) -> Result<(), RunError> {
        for (disc, ids) in self.in_doubt_by_pairing() {
            if self.stopping() {
                break;
            }
            let vm_ids = self.vm_ids(&ids);
            let client = self.client.clone();
            let work = async move {
                let reps =
                    replications_of(&client, disc.pairing_id(), &vm_ids, disc.size_with(&vm_ids))
                        .await?;
                let tasks = tasks_of_vms(&client, &vm_ids).await?;
                Ok((reps, tasks))
            };
            let Some((reps, tasks)) = self.fetch(&ids, work).await? else {
                continue;
            };
            for id in ids {
                self.settle_in_doubt(id, &reps, &tasks).await?;
            }
        }
        Ok(())
    }

    async fn settle_in_doubt(
        &mut self,
        id: JobId,
        reps: &HashMap<String, ReplicationInfo>,
        tasks: &HashMap<String, Task>,
    ) -> Result<(), RunError> {
        let Some(a) = self.active.get_mut(&id) else {
            return Ok(());
        };
        let vm = a.checkpoint.vm_id.clone().unwrap_or_default();
        a.in_doubt = false;
        // A live or finished task says the most; a replication without one is judged by
        // `verify`, from its configuration state.
        match (tasks.get(&vm), reps.get(&vm)) {
            (Some(t), _) if t.status == TaskStatus::Error => {
                a.checkpoint.task_id = Some(t.id.clone());
                if self.placed_again(id, t).await? {
                    return Ok(());
                }
                let reason = task_failure(t);
                return self.fail(id, reason, None).await;
            }
            (Some(t), _) if t.status != TaskStatus::Cancelled => {
                a.checkpoint.task_id = Some(t.id.clone());
                a.step = if t.status == TaskStatus::Success {
                    Step::Verify
                } else {
                    a.submitted = Some(Instant::now());
                    self.pacer.submitted(Instant::now());
                    Step::AwaitTask
                };
                tracing::info!(job = id, task = %t.id, "in doubt: the configure call had reached the server; following its task");
            }
            (_, Some(rep)) => {
                tracing::info!(job = id, replication = %rep.id, "in doubt: the VM has its replication; verifying it");
                a.step = Step::Verify;
            }
            // Nothing reached the server: submit again.
            _ => a.step = Step::Submit,
        }
        self.save_many(&[id]).await
    }

    /// Looks up the VMs of jobs at `resolve_vm` (in groups) and decides each: configure, skip or
    /// fail. Jobs resumed at `resolve_target` rebuild their VM from the checkpoint.
    pub(super) async fn resolve(&mut self) -> Result<(), RunError> {
        for (disc, ids) in self
            .by_pairing(|a| !a.in_doubt && matches!(a.step, Step::ResolveVm | Step::ResolveTarget))
        {
            if self.stopping() {
                break;
            }
            let Some(lookups) = self.look_up(&disc, &ids).await? else {
                continue;
            };
            let mut ready = Vec::new();
            for id in ids {
                let Some(a) = self.active.get(&id) else {
                    continue;
                };
                match self.room.admit(decision(a, &lookups, &disc)) {
                    Decision::Configure {
                        vm,
                        placement,
                        spec,
                        excluded,
                    } => {
                        if !excluded.is_empty() {
                            tracing::info!(job = id, vm = %vm.name, "disks not replicated (unsupported): {}", excluded.join(", "));
                        }
                        if let Some(a) = self.active.get_mut(&id) {
                            a.checkpoint.vm_id = Some(vm.id.clone());
                            a.checkpoint.disks = vm.disks.clone();
                            a.checkpoint.placement = Some(placement);
                            a.spec = Some(*spec);
                            a.holds_room = true;
                            ready.push(id);
                        }
                    }
                    Decision::Skip {
                        vm_id,
                        reason,
                        replication_id,
                    } => {
                        if let Some(a) = self.active.get_mut(&id) {
                            a.checkpoint.vm_id = vm_id;
                            a.checkpoint.replication_id = replication_id.clone();
                        }
                        self.skip(id, reason, replication_id).await?;
                    }
                    Decision::Fail { vm_id, reason } => {
                        if let Some(a) = self.active.get_mut(&id) {
                            a.checkpoint.vm_id = vm_id;
                        }
                        self.fail(id, reason, None).await?;
                    }
                }
            }
            self.ready_to_submit(&ready).await?;
        }
        Ok(())
    }

    /// The VMs of the jobs that need a lookup, by [`vm_key`]; `None` when the lookup failed
    /// (the jobs were set back) or was abandoned.
    async fn look_up(
        &mut self,
        disc: &Arc<Discovery>,
        ids: &[JobId],
    ) -> Result<Option<HashMap<String, VmLookup>>, RunError> {
        let needs: Vec<JobId> = ids
            .iter()
            .copied()
            .filter(|id| {
                let a = &self.active[id];
                a.step == Step::ResolveVm || a.checkpoint.disks.is_none()
            })
            .collect();
        if needs.is_empty() {
            return Ok(Some(HashMap::new()));
        }
        let refs: Vec<_> = needs
            .iter()
            .map(|id| self.active[id].job.spec.vm.clone())
            .collect();
        let (client, disc, group) = (self.client.clone(), disc.clone(), self.opts.lookup_group);
        let work = async move {
            let refs: Vec<_> = refs.iter().collect();
            lookup_vms(&client, &disc, &refs, group).await
        };
        self.fetch(&needs, work).await
    }

    /// Sends the specs of jobs at `submit`, up to G per call. Each group is written ahead as in
    /// doubt; a group the server rejects (400) is split until the bad spec stands alone.
    pub(super) async fn submit(&mut self) -> Result<(), RunError> {
        for (disc, ids) in self.by_pairing(|a| !a.in_doubt && a.step == Step::Submit) {
            if self.stopping() {
                break;
            }
            let mut ready = Vec::new();
            for id in ids {
                let Some(a) = self.active.get_mut(&id) else {
                    continue;
                };
                if a.spec.is_none() {
                    match rebuilt_spec(a) {
                        Some(spec) => a.spec = Some(spec),
                        None => {
                            a.step = Step::ResolveVm;
                            continue;
                        }
                    }
                }
                if let Some(spec) = a.spec.clone() {
                    ready.push((id, spec));
                }
            }
            if ready.is_empty() {
                continue;
            }
            if self.admitting() && !self.censuses.contains_key(disc.pairing_id()) {
                self.take_census(&disc).await?;
            }
            let mut batch = self.admit(disc.pairing_id(), ready);
            // Only what the budget lets go now: a submit left waiting for the appliance's next
            // window could go out after the change window closed. The rest goes next pass.
            batch.truncate(self.sendable() * self.opts.submit_group.max(1));
            if batch.is_empty() {
                continue;
            }
            for (id, _) in &batch {
                if let Some(a) = self.active.get_mut(id) {
                    a.in_doubt = true;
                }
            }
            let written: Vec<JobId> = batch.iter().map(|(id, _)| *id).collect();
            self.save_many(&written).await?;
            let pairing = disc.pairing.pairing_id.clone();
            let work = join_all(
                batch
                    .chunks(self.opts.submit_group.max(1))
                    .map(|g| submit_group(&self.client, &pairing, g.to_vec())),
            );
            let Some(results) = self.guarded(work).await else {
                return Ok(());
            };
            let mut accepted = Vec::new();
            // A failed call's jobs, by the error they share: set back together.
            let mut unknown: Vec<(Arc<ApiError>, Vec<JobId>)> = Vec::new();
            for (id, outcome) in results.into_iter().flatten() {
                match outcome {
                    Submitted::Task(task, at) => {
                        if let Some(a) = self.active.get_mut(&id) {
                            a.in_doubt = false;
                            a.checkpoint.task_id = Some(task.id.clone());
                            a.step = Step::AwaitTask;
                            a.submitted = Some(at);
                            self.pacer.submitted(at);
                            accepted.push(id);
                        }
                    }
                    Submitted::Rejected(e) => {
                        if let Some(a) = self.active.get_mut(&id) {
                            a.in_doubt = false;
                        }
                        self.unplace(id);
                        let reason = e.server_message().unwrap_or_default();
                        self.fail(
                            id,
                            format!("the server refused the spec: {reason}"),
                            e.status(),
                        )
                        .await?;
                    }
                    // In doubt (saved so before the call): the next attempt asks the server.
                    Submitted::Unknown(e) => {
                        match unknown.iter_mut().find(|(u, _)| Arc::ptr_eq(u, &e)) {
                            Some((_, ids)) => ids.push(id),
                            None => unknown.push((e, vec![id])),
                        }
                    }
                }
            }
            self.save_many(&accepted).await?;
            for (e, ids) in unknown {
                self.setback_all(ids, &e).await?;
            }
        }
        Ok(())
    }

    /// A round of following, when the pacer says one is due: the outstanding tasks, then the
    /// jobs whose task succeeded.
    pub(super) async fn follow(&mut self) -> Result<(), RunError> {
        let now = Instant::now();
        let following = self
            .active
            .values()
            .any(|a| matches!(a.step, Step::AwaitTask | Step::Verify) && !a.in_doubt);
        let waiting = self.waiting_for_admission();
        // A job reconciled straight to `verify` has no round planned yet.
        if !(following || waiting > 0) || (self.pacer.next().is_some() && !self.pacer.due(now)) {
            return Ok(());
        }
        let calls_before = self.client.metrics().total_calls();
        let mut settled = self.poll_tasks().await?;
        if self.admitting() && !self.stopping() {
            for (disc, _) in self.by_pairing(|a| !a.in_doubt && a.step >= Step::Submit) {
                self.take_census(&disc).await?;
            }
        }
        if !self.stopping() {
            settled += self.verify(now).await?;
        }
        let cost = self.client.metrics().total_calls() - calls_before;
        let outstanding: Vec<Sighting> = self
            .active
            .values()
            .filter(|a| a.step == Step::AwaitTask && !a.in_doubt)
            .map(|a| Sighting {
                submitted: a.submitted.unwrap_or(now),
                progress: a.previous_progress.zip(a.progress),
            })
            .collect();
        let verifying = self
            .active
            .values()
            .filter(|a| a.step == Step::Verify)
            .count();
        // Jobs waiting for an admission slot do not compete with the round: they wait on it.
        let admitting = self.admitting();
        let work_waiting = self.active.values().any(|a| {
            !a.in_doubt && (a.step < Step::Submit || (a.step == Step::Submit && !admitting))
        });
        self.pacer.after_round(
            Instant::now(),
            &outstanding,
            verifying + self.waiting_for_admission(),
            settled,
            cost as u32,
            work_waiting,
        );
        Ok(())
    }

    /// Follows the outstanding tasks together; returns how many jobs moved on.
    async fn poll_tasks(&mut self) -> Result<usize, RunError> {
        let now = Instant::now();
        let waiting: Vec<(JobId, String)> = self
            .active
            .values()
            .filter(|a| a.step == Step::AwaitTask && !a.in_doubt && a.due(now))
            .filter_map(|a| Some((a.job.id, a.checkpoint.task_id.clone()?)))
            .collect();
        if waiting.is_empty() {
            return Ok(0);
        }
        let ids: Vec<String> = waiting.iter().map(|(_, t)| t.clone()).collect();
        let Some(mut found) = self.guarded(tasks_by_id(&self.client, &ids)).await else {
            return Ok(0);
        };
        let mut settled = 0;
        for (job, task_id) in waiting {
            match found.remove(&task_id) {
                Some(Ok(task)) => settled += usize::from(self.saw_task(job, &task).await?),
                Some(Err(e)) if e.status() == Some(404) => {
                    // The server forgot the task: find out from the VM itself what happened.
                    if let Some(a) = self.active.get_mut(&job) {
                        a.in_doubt = true;
                        a.step = Step::Submit;
                    }
                    self.save_many(&[job]).await?;
                    settled += 1;
                }
                Some(Err(e)) => {
                    let failures = self.active.get_mut(&job).map(|a| {
                        a.poll_failures += 1;
                        a.poll_failures
                    });
                    // The task goes on without us; only a server that stays unreachable sends
                    // the job back to the queue (it resumes polling the same task).
                    if failures.is_some_and(|f| f >= 5) {
                        self.setback(job, &e).await?;
                    }
                }
                None => {}
            }
        }
        Ok(settled)
    }

    /// What a poll saw of one job's task; whether the job moved on.
    async fn saw_task(&mut self, job: JobId, task: &Task) -> Result<bool, RunError> {
        if let (Some(q), Some(c)) = (task.queued_time, task.complete_time) {
            self.pacer
                .finished(Duration::from_millis(c.saturating_sub(q).max(0) as u64));
        }
        match task.status {
            TaskStatus::Success => {
                if let Some(a) = self.active.get_mut(&job) {
                    a.step = Step::Verify;
                }
                self.save_many(&[job]).await?;
            }
            TaskStatus::Error => {
                self.unplace(job);
                if !self.placed_again(job, task).await? {
                    self.fail(job, task_failure(task), None).await?;
                }
            }
            TaskStatus::Cancelled => {
                self.unplace(job);
                let reason = format!("task {} was cancelled on the server", task.id);
                self.fail(job, reason, None).await?;
            }
            _ => {
                if let Some(a) = self.active.get_mut(&job) {
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

    /// Confirms that each job whose task succeeded now has its replication; returns how many
    /// jobs ended. A census taken in this round (`round` began then) answers without a call.
    async fn verify(&mut self, round: Instant) -> Result<usize, RunError> {
        if self.local_only {
            return self.confirm_local_removals().await;
        }
        let mut settled = 0;
        for (disc, ids) in self.by_pairing(|a| a.step == Step::Verify && !a.in_doubt) {
            if self.stopping() {
                break;
            }
            let vm_ids = self.vm_ids(&ids);
            let fresh = self
                .censuses
                .get(disc.pairing_id())
                .filter(|c| c.taken >= round)
                .map(|c| {
                    vm_ids
                        .iter()
                        .filter_map(|vm| Some((vm.clone(), c.by_vm.get(vm)?.clone())))
                        .collect::<HashMap<_, _>>()
                });
            let reps = match fresh {
                Some(reps) => reps,
                None => {
                    let client = self.client.clone();
                    let work = async move {
                        replications_of(
                            &client,
                            disc.pairing_id(),
                            &vm_ids,
                            disc.size_with(&vm_ids),
                        )
                        .await
                    };
                    let Some(reps) = self.fetch(&ids, work).await? else {
                        continue;
                    };
                    reps
                }
            };
            for id in ids {
                settled += usize::from(self.verify_one(id, &reps).await?);
            }
        }
        Ok(settled)
    }

    /// Judges one job by its replication; whether it ended.
    async fn verify_one(
        &mut self,
        id: JobId,
        reps: &HashMap<String, ReplicationInfo>,
    ) -> Result<bool, RunError> {
        if self.operation != Operation::Configure {
            return self.verify_operation(id, reps).await;
        }
        let Some(a) = self.active.get_mut(&id) else {
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
                self.fail(id, reason, None).await?;
            }
            Some(rep) if rep.configuration_state != Some(ConfigurationState::InProgress) => {
                a.checkpoint.replication_id = Some(rep.id.clone());
                self.succeed(id, rep.id.clone()).await?;
            }
            found => {
                // Not listed yet, or still being configured: look again at the next round.
                a.verify_tries += 1;
                if found.is_none() && a.verify_tries >= VERIFY_TRIES {
                    let reason =
                        "the task succeeded, but the server lists no replication for the VM";
                    self.fail(id, reason.into(), None).await?;
                    return Ok(true);
                }
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Judges an operation job by its replication now; whether it ended.
    async fn verify_operation(
        &mut self,
        id: JobId,
        reps: &HashMap<String, ReplicationInfo>,
    ) -> Result<bool, RunError> {
        let Some(a) = self.active.get_mut(&id) else {
            return Ok(false);
        };
        let op = a.job.operation.clone().unwrap_or(OperationSpec::Sync);
        let ours = a.checkpoint.replication_id.clone().unwrap_or_default();
        let vm = a.checkpoint.vm_id.clone().unwrap_or_default();
        match crate::workflow::operations::effect_after_task(&op, &ours, reps.get(&vm)) {
            Effect::Done => self.succeed(id, ours).await?,
            Effect::Gone => {
                let reason = format!(
                    "replication {ours} disappeared while the {} was under way",
                    op.operation()
                );
                self.fail(id, reason, None).await?;
            }
            Effect::NotYet => {
                a.verify_tries += 1;
                if a.verify_tries >= VERIFY_TRIES {
                    let reason = format!(
                        "the {} task succeeded, but replication {ours} does not show it",
                        op.operation()
                    );
                    self.fail(id, reason, None).await?;
                    return Ok(true);
                }
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// A configure this run placed did not happen: its room goes back for the VMs after it.
    fn unplace(&mut self, id: JobId) {
        let Some(a) = self.active.get_mut(&id) else {
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
    async fn placed_again(&mut self, id: JobId, task: &Task) -> Result<bool, RunError> {
        self.unplace(id);
        let Some(a) = self.active.get(&id) else {
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
            self.db.run(move |q| q.learn_limit(&learnt)).await?;
        }
        let auto = a.job.spec.places_automatically();
        if !matches!(full, Full::Server { .. }) || !auto {
            return Ok(false);
        }
        let Some(mut a) = self.active.remove(&id) else {
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
            saves.push(crate::queue::Save {
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
        self.db
            .run(move |q| {
                q.save_all(&saves)?;
                q.defer(&a.lease, now_ms(), &message, None)
            })
            .await?;
        Ok(true)
    }

    /// Runs `work` for the held jobs `ids`: its output, or `None` when it was abandoned after
    /// Ctrl-C or failed (then the jobs were set back).
    pub(super) async fn fetch<T>(
        &mut self,
        ids: &[JobId],
        work: impl Future<Output = Result<T, ApiError>>,
    ) -> Result<Option<T>, RunError> {
        match self.guarded(work).await {
            None => Ok(None),
            Some(Ok(found)) => Ok(Some(found)),
            Some(Err(e)) => {
                self.setback_all(ids.to_vec(), &e).await?;
                Ok(None)
            }
        }
    }

    /// Calls the appliance's budget lets go at once now.
    pub(super) fn sendable(&self) -> usize {
        self.client.budget().free_now() as usize
    }

    /// Held jobs that match, grouped by their pairing's discovery (jobs of a pairing not yet
    /// discovered, and jobs set back for a while, are left for a later pass).
    pub(super) fn by_pairing(
        &self,
        matches: impl Fn(&Active) -> bool,
    ) -> Vec<(Arc<Discovery>, Vec<JobId>)> {
        let now = Instant::now();
        self.grouped(|a| a.due(now) && matches(a))
    }

    /// The in-doubt jobs of each pairing where one of them is due: the others ride along in
    /// the same lookup, instead of costing one of their own a moment later, and the ones that
    /// did not reach the appliance go out again together, in full groups.
    pub(super) fn in_doubt_by_pairing(&self) -> Vec<(Arc<Discovery>, Vec<JobId>)> {
        let now = Instant::now();
        let mut groups = self.grouped(|a| a.in_doubt);
        groups.retain(|(_, ids)| ids.iter().any(|id| self.active[id].due(now)));
        groups
    }

    fn grouped(&self, matches: impl Fn(&Active) -> bool) -> Vec<(Arc<Discovery>, Vec<JobId>)> {
        let mut groups: BTreeMap<String, (Arc<Discovery>, Vec<JobId>)> = BTreeMap::new();
        for a in self.active.values().filter(|a| matches(a)) {
            if let Some(Ok(disc)) = self.discoveries.get(&a.pairing_key()) {
                groups
                    .entry(disc.pairing.pairing_id.clone())
                    .or_insert_with(|| (disc.clone(), Vec::new()))
                    .1
                    .push(a.job.id);
            }
        }
        groups.into_values().collect()
    }

    /// The resolved VM ids of these held jobs.
    pub(super) fn vm_ids(&self, ids: &[JobId]) -> Vec<String> {
        ids.iter()
            .filter_map(|id| self.active.get(id)?.checkpoint.vm_id.clone())
            .collect()
    }

    /// Held jobs that name the pairing `key`.
    fn held_with(&self, key: &Option<String>) -> Vec<JobId> {
        self.active
            .values()
            .filter(|a| &a.pairing_key() == key)
            .map(|a| a.job.id)
            .collect()
    }
}

/// What to do with a held job at `resolve_*`: from its lookup, or, resumed at `resolve_target`,
/// from the VM its checkpoint holds.
fn decision(a: &Active, lookups: &HashMap<String, VmLookup>, disc: &Discovery) -> Decision {
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
fn rebuilt_spec(a: &Active) -> Option<ConfigureReplicationSpec> {
    let placement = a.checkpoint.placement.clone()?;
    match plan_configure(vm_from_checkpoint(a), placement, &a.job.spec.settings) {
        Decision::Configure { spec, .. } => Some(*spec),
        _ => None,
    }
}

/// The server's words for a failed task.
fn task_failure(task: &Task) -> String {
    task.error_text()
        .unwrap_or_else(|| format!("task {} failed", task.id))
}

enum Submitted {
    /// Accepted: the task, and when its answer came (a group waiting for the budget may be
    /// answered long after the first).
    Task(Box<Task>, Instant),
    /// The server refused this spec alone (4xx): nothing was created.
    Rejected(Arc<ApiError>),
    /// The call failed in a way that leaves its effect unknown.
    Unknown(Arc<ApiError>),
}

type Submission<'a> =
    std::pin::Pin<Box<dyn std::future::Future<Output = Vec<(JobId, Submitted)>> + Send + 'a>>;

/// One configure call; a 400 splits the group in halves, down to the spec that is at fault.
fn submit_group<'a>(
    client: &'a Client,
    pairing: &'a str,
    group: Vec<(JobId, ConfigureReplicationSpec)>,
) -> Submission<'a> {
    Box::pin(async move {
        let specs: Vec<ConfigureReplicationSpec> = group.iter().map(|(_, s)| s.clone()).collect();
        match client.configure_replications(pairing, &specs).await {
            Ok(tasks) => match_tasks(group, tasks),
            Err(e) if e.status() == Some(400) && group.len() > 1 => {
                let mut group = group;
                let second = group.split_off(group.len() / 2);
                let (a, b) = tokio::join!(
                    submit_group(client, pairing, group),
                    submit_group(client, pairing, second)
                );
                a.into_iter().chain(b).collect()
            }
            Err(e) => {
                // Only an answer that says no (a 4xx) proves nothing was created; an answer
                // that cannot be read may well be a 2xx.
                let refused =
                    matches!(e, ApiError::Status(_)) && e.class() == ErrorClass::Permanent;
                let e = Arc::new(e);
                group
                    .into_iter()
                    .map(|(id, _)| {
                        let outcome = if refused {
                            Submitted::Rejected(e.clone())
                        } else {
                            Submitted::Unknown(e.clone())
                        };
                        (id, outcome)
                    })
                    .collect()
            }
        }
    })
}

/// Tasks come back one per spec, in order; the task's entity, when given, must be the VM.
fn match_tasks(
    group: Vec<(JobId, ConfigureReplicationSpec)>,
    tasks: Vec<Task>,
) -> Vec<(JobId, Submitted)> {
    let in_order = tasks.len() == group.len()
        && group
            .iter()
            .zip(&tasks)
            .all(|((_, s), t)| t.entity.as_deref().is_none_or(|e| e == s.vm_id));
    let mut by_entity: HashMap<String, Task> = if in_order {
        HashMap::new()
    } else {
        tasks
            .iter()
            .filter_map(|t| Some((t.entity.clone()?, t.clone())))
            .collect()
    };
    let mut in_order_tasks = tasks.into_iter();
    group
        .into_iter()
        .map(|(id, spec)| {
            let task = if in_order {
                in_order_tasks.next()
            } else {
                by_entity.remove(&spec.vm_id)
            };
            match task {
                Some(t) => (id, Submitted::Task(Box::new(t), Instant::now())),
                None => (
                    id,
                    Submitted::Unknown(Arc::new(ApiError::Decode {
                        method: "POST".into(),
                        path: "/replications".into(),
                        detail: format!("no task in the answer for VM {}", spec.vm_id),
                    })),
                ),
            }
        })
        .collect()
}

fn vm_from_checkpoint(a: &Active) -> VirtualMachine {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Placement, ReplicationSettings};
    use crate::secret::Secret;
    use crate::sim::{SimConfig, Simulator, VmKind};
    use crate::vr::{ApiVersion, ClientSettings, Credentials, TlsTrust};
    use crate::workflow::build_spec;

    #[tokio::test]
    async fn a_group_with_one_bad_spec_is_split_until_only_that_one_fails() {
        let sim = Simulator::start(SimConfig {
            tls: false,
            ..SimConfig::fast()
        })
        .await
        .unwrap();
        let inv = sim.inventory();
        let who = Credentials {
            user: "administrator@vsphere.local".into(),
            password: Secret::new("VMware1!"),
        };
        let client = Client::connect(ClientSettings {
            url: sim.url().parse().unwrap(),
            api_version: ApiVersion::V2,
            trust: TlsTrust::Verify,
            timeout: std::time::Duration::from_secs(5),
            page_size: 100,
            source: who.clone(),
            target: who,
            limits: sim.limits(),
        })
        .await
        .unwrap();
        client.remote_login(&inv.pairing_id).await.unwrap();
        let placement = Placement {
            target_vc_id: inv.remote_vc.id.clone(),
            datastore_id: inv.datastores[0].id.clone(),
            storage_policy_id: None,
            replication_server_id: None,
        };
        let group: Vec<(JobId, ConfigureReplicationSpec)> = inv
            .vms
            .iter()
            .filter(|v| v.kind == VmKind::Normal)
            .take(5)
            .enumerate()
            .map(|(i, vm)| {
                let (mut spec, _) = build_spec(&vm.vm, &placement, &ReplicationSettings::default());
                if i == 3 {
                    spec.rpo = 2;
                }
                (i as JobId, spec)
            })
            .collect();

        let results = submit_group(&client, &inv.pairing_id, group).await;

        let mut tasks = 0;
        for (id, outcome) in &results {
            match outcome {
                Submitted::Task(..) => tasks += 1,
                Submitted::Rejected(e) => {
                    assert_eq!(*id, 3);
                    assert!(e.server_message().unwrap().contains("rpo"), "{e}");
                }
                Submitted::Unknown(e) => panic!("job {id}: {e}"),
            }
        }
        assert_eq!((results.len(), tasks), (5, 4));
        let stats = sim.stats();
        assert_eq!(stats.configure_attempts.len(), 4);
        // 5 ✗ -> 2 ✓ + 3 ✗ -> 1 ✓ + 2 ✗ -> 1 ✗ + 1 ✓: seven calls, each half split again
        // only while it still holds the bad spec.
        assert_eq!(stats.calls.get("configureReplication"), Some(&7));
    }
}
