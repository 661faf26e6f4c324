//! The runner's phases, each one pass over the held jobs that are at its step: network work for
//! all of them together first (guarded against Ctrl-C), then their results written one by one.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use futures_util::future::join_all;

use super::{Active, RunError, Runner};
use crate::queue::{JobId, Step};
use crate::vr::model::{
    ConfigurationState, ConfigureReplicationSpec, Task, TaskStatus, VirtualMachine,
};
use crate::vr::{ApiError, Client, ErrorClass, Filter};
use crate::workflow::{
    decide, lookup_vms, plan_configure, vm_key, Decision, Discovery, DiscoveryError,
};

/// Ids per task poll or replication check: one page of the server's default size.
const IDS_PER_CALL: usize = 100;

/// Passes over a job whose task succeeded before its missing replication fails it.
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
            if let Some(Err(reason)) = self.discoveries.get(&key) {
                let reason = reason.clone();
                for id in self.held_with(&key) {
                    self.fail(id, &reason, None)?;
                }
                continue;
            }
            let found = self
                .guarded(Discovery::run(&self.client, &self.pairings, key.as_deref()))
                .await;
            let Some(found) = found else { return Ok(()) };
            match found {
                Ok(d) => {
                    let summary = serde_json::to_value(d.summary()).unwrap_or_default();
                    crate::runner::lock(&self.queue).record_discovery(
                        self.batch,
                        &d.pairing.pairing_id,
                        &summary,
                    )?;
                    tracing::info!(pairing = %d.pairing.pairing_id, remote = %d.remote_vc_name, "discovered");
                    self.discoveries.insert(key, Ok(Arc::new(d)));
                }
                Err(e) => {
                    let transient = e.api_error().is_some_and(|a| {
                        a.class().is_retryable() || a.class() == ErrorClass::Session
                    });
                    let ids = self.held_with(&key);
                    match (&e, e.api_error()) {
                        (DiscoveryError::Api { .. }, Some(api)) if transient => {
                            self.setback_all(ids, api)?;
                        }
                        _ => {
                            let reason = e.to_string();
                            self.discoveries.insert(key, Err(reason.clone()));
                            for id in ids {
                                self.fail(id, &reason, e.api_error().and_then(ApiError::status))?;
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
        for (disc, ids) in self.by_pairing(|a| a.in_doubt) {
            let vm_ids = self.vm_ids(&ids);
            let work = async {
                let reps = replications_of(&self.client, &disc, &vm_ids).await?;
                let tasks = tasks_of_vms(&self.client, &vm_ids).await?;
                Ok::<_, ApiError>((reps, tasks))
            };
            let Some(result) = self.guarded(work).await else {
                return Ok(());
            };
            let (reps, tasks) = match result {
                Ok(r) => r,
                Err(e) => {
                    self.setback_all(ids, &e)?;
                    continue;
                }
            };
            for id in ids {
                let vm = self.active[&id]
                    .checkpoint
                    .vm_id
                    .clone()
                    .unwrap_or_default();
                let Some(a) = self.active.get_mut(&id) else {
                    continue;
                };
                a.in_doubt = false;
                // A live or finished task says the most; a replication without one is judged by
                // `verify`, from its configuration state.
                match (tasks.get(&vm), reps.get(&vm)) {
                    (Some(t), _) if t.status == TaskStatus::Error => {
                        let reason = t
                            .error_text()
                            .unwrap_or_else(|| "the configure task failed".into());
                        a.checkpoint.task_id = Some(t.id.clone());
                        self.fail(id, &reason, None)?;
                    }
                    (Some(t), _) if t.status != TaskStatus::Cancelled => {
                        a.checkpoint.task_id = Some(t.id.clone());
                        a.step = if t.status == TaskStatus::Success {
                            Step::Verify
                        } else {
                            Step::AwaitTask
                        };
                        tracing::info!(job = id, task = %t.id, "in doubt: the configure call had reached the server; following its task");
                        let a = a.clone();
                        self.save(&a)?;
                    }
                    (_, Some(rep)) => {
                        tracing::info!(job = id, replication = %rep.id, "in doubt: the VM has its replication; verifying it");
                        a.step = Step::Verify;
                        let a = a.clone();
                        self.save(&a)?;
                    }
                    _ => {
                        // Nothing reached the server: submit again.
                        a.step = Step::Submit;
                        let a = a.clone();
                        self.save(&a)?;
                    }
                }
            }
        }
        Ok(())
    }

    /// Looks up the VMs of jobs at `resolve_vm` (in groups) and decides each: configure, skip or
    /// fail. Jobs resumed at `resolve_target` rebuild their VM from the checkpoint.
    pub(super) async fn resolve(&mut self) -> Result<(), RunError> {
        for (disc, ids) in self
            .by_pairing(|a| !a.in_doubt && matches!(a.step, Step::ResolveVm | Step::ResolveTarget))
        {
            let needs_lookup: Vec<JobId> = ids
                .iter()
                .copied()
                .filter(|id| {
                    let a = &self.active[id];
                    a.step == Step::ResolveVm || a.checkpoint.disks.is_none()
                })
                .collect();
            let lookups = if needs_lookup.is_empty() {
                HashMap::new()
            } else {
                let refs: Vec<_> = needs_lookup
                    .iter()
                    .map(|id| &self.active[id].job.spec.vm)
                    .collect();
                let work = lookup_vms(&self.client, &disc, &refs, self.opts.lookup_group);
                let Some(result) = self.guarded(work).await else {
                    return Ok(());
                };
                match result {
                    Ok(l) => l,
                    Err(e) => {
                        self.setback_all(needs_lookup, &e)?;
                        continue;
                    }
                }
            };
            let mut ready = Vec::new();
            for id in ids {
                let a = &self.active[&id];
                let decision = match lookups.get(&vm_key(&a.job.spec.vm)) {
                    Some(lookup) => decide(&a.job.spec, lookup, &disc),
                    None => {
                        let vm = vm_from_checkpoint(a);
                        if let Some(r) = disc.replications.get(&vm.id) {
                            Decision::Skip {
                                vm_id: Some(vm.id.clone()),
                                reason: format!("already replicated: {}", r.id),
                                replication_id: Some(r.id.clone()),
                            }
                        } else {
                            match disc.placement(&a.job.spec) {
                                Ok(p) => plan_configure(vm, p, &a.job.spec.settings),
                                Err(reason) => Decision::Fail {
                                    vm_id: Some(vm.id),
                                    reason,
                                },
                            }
                        }
                    }
                };
                let Some(a) = self.active.get_mut(&id) else {
                    continue;
                };
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
                        a.checkpoint.vm_id = Some(vm.id.clone());
                        a.checkpoint.disks = vm.disks.clone();
                        a.checkpoint.placement = Some(placement);
                        a.spec = Some(*spec);
                        ready.push(id);
                    }
                    Decision::Skip {
                        vm_id,
                        reason,
                        replication_id,
                    } => {
                        a.checkpoint.vm_id = vm_id;
                        a.checkpoint.replication_id = replication_id.clone();
                        self.skip(id, &reason, replication_id.as_deref())?;
                    }
                    Decision::Fail { vm_id, reason } => {
                        a.checkpoint.vm_id = vm_id;
                        self.fail(id, &reason, None)?;
                    }
                }
            }
            // Two checkpoints, as the steps are two: the VM found, then its target.
            for step in [Step::ResolveTarget, Step::Submit] {
                for id in &ready {
                    if let Some(a) = self.active.get_mut(id) {
                        if a.step < step {
                            a.step = step;
                        }
                    }
                }
                self.save_many(ready.iter().filter_map(|id| self.active.get(id)))?;
            }
        }
        Ok(())
    }

    /// Sends the specs of jobs at `submit`, up to G per call. Each group is written ahead as in
    /// doubt; a group the server rejects (400) is split until the bad spec stands alone.
    pub(super) async fn submit(&mut self) -> Result<(), RunError> {
        for (disc, ids) in self.by_pairing(|a| !a.in_doubt && a.step == Step::Submit) {
            let mut batch = Vec::new();
            for id in ids {
                let Some(a) = self.active.get_mut(&id) else {
                    continue;
                };
                if a.spec.is_none() {
                    let vm = vm_from_checkpoint(a);
                    match a
                        .checkpoint
                        .placement
                        .clone()
                        .map(|p| plan_configure(vm, p, &a.job.spec.settings))
                    {
                        Some(Decision::Configure { spec, .. }) => a.spec = Some(*spec),
                        _ => {
                            a.step = Step::ResolveVm;
                            continue;
                        }
                    }
                }
                a.in_doubt = true;
                if let Some(spec) = a.spec.clone() {
                    batch.push((id, spec));
                }
            }
            if batch.is_empty() {
                continue;
            }
            self.save_many(batch.iter().filter_map(|(id, _)| self.active.get(id)))?;
            let groups: Vec<Vec<(JobId, ConfigureReplicationSpec)>> = batch
                .chunks(self.opts.submit_group.max(1))
                .map(<[_]>::to_vec)
                .collect();
            let pairing = disc.pairing.pairing_id.clone();
            let work = join_all(
                groups
                    .into_iter()
                    .map(|g| submit_group(&self.client, &pairing, g)),
            );
            let Some(results) = self.guarded(work).await else {
                return Ok(());
            };
            let mut accepted = Vec::new();
            for (id, outcome) in results.into_iter().flatten() {
                match outcome {
                    Submitted::Task(task) => {
                        if let Some(a) = self.active.get_mut(&id) {
                            a.in_doubt = false;
                            a.checkpoint.task_id = Some(task.id.clone());
                            a.step = Step::AwaitTask;
                            accepted.push(id);
                        }
                    }
                    Submitted::Rejected(e) => {
                        if let Some(a) = self.active.get_mut(&id) {
                            a.in_doubt = false;
                        }
                        let reason = e.server_message().unwrap_or_default().to_string();
                        self.fail(
                            id,
                            &format!("the server refused the spec: {reason}"),
                            e.status(),
                        )?;
                    }
                    Submitted::Unknown(e) => self.setback(id, &e)?,
                }
            }
            self.save_many(accepted.iter().filter_map(|id| self.active.get(id)))?;
            self.last_poll = Some(std::time::Instant::now());
        }
        Ok(())
    }

    /// Follows the outstanding tasks together: `GET /tasks` filtered by their ids, and
    /// `GET /tasks/{id}` for any the recent list no longer holds.
    pub(super) async fn poll_tasks(&mut self) -> Result<(), RunError> {
        let due = self
            .last_poll
            .is_none_or(|t| t.elapsed() >= self.opts.poll_interval);
        let waiting: Vec<(JobId, String)> = self
            .active
            .values()
            .filter(|a| a.step == Step::AwaitTask)
            .filter_map(|a| Some((a.job.id, a.checkpoint.task_id.clone()?)))
            .collect();
        if !due || waiting.is_empty() {
            return Ok(());
        }
        self.last_poll = Some(std::time::Instant::now());
        let ids: Vec<String> = waiting.iter().map(|(_, t)| t.clone()).collect();
        let client = &self.client;
        let work = async {
            let mut found: HashMap<String, Result<Task, Arc<ApiError>>> = HashMap::new();
            let pages = join_all(ids.chunks(IDS_PER_CALL).map(|chunk| async move {
                (
                    chunk,
                    client
                        .tasks(Some(&Filter::new("id", chunk.iter().cloned())))
                        .await,
                )
            }))
            .await;
            let mut missing = Vec::new();
            for (chunk, page) in pages {
                match page {
                    Ok(tasks) => {
                        for t in tasks {
                            found.insert(t.id.clone(), Ok(t));
                        }
                        missing.extend(chunk.iter().filter(|id| !found.contains_key(*id)).cloned());
                    }
                    Err(e) => {
                        let e = Arc::new(e);
                        for id in chunk {
                            found.insert(id.clone(), Err(e.clone()));
                        }
                    }
                }
            }
            let singles = join_all(missing.iter().map(|id| client.task(id))).await;
            for (id, t) in missing.into_iter().zip(singles) {
                found.insert(id, t.map_err(Arc::new));
            }
            found
        };
        let Some(mut found) = self.guarded(work).await else {
            return Ok(());
        };
        for (job, task_id) in waiting {
            match found.remove(&task_id) {
                Some(Ok(task)) => match task.status {
                    TaskStatus::Success => {
                        if let Some(a) = self.active.get_mut(&job) {
                            a.step = Step::Verify;
                            let a = a.clone();
                            self.save(&a)?;
                        }
                    }
                    TaskStatus::Error => {
                        let reason = task
                            .error_text()
                            .unwrap_or_else(|| "the configure task failed".into());
                        self.fail(job, &reason, None)?;
                    }
                    TaskStatus::Cancelled => {
                        self.fail(
                            job,
                            &format!("task {} was cancelled on the server", task.id),
                            None,
                        )?;
                    }
                    _ => {
                        if let Some(a) = self.active.get_mut(&job) {
                            a.poll_failures = 0;
                        }
                    }
                },
                Some(Err(e)) if e.status() == Some(404) => {
                    // The server forgot the task: find out from the VM itself what happened.
                    if let Some(a) = self.active.get_mut(&job) {
                        a.in_doubt = true;
                        a.step = Step::Submit;
                        let a = a.clone();
                        self.save(&a)?;
                    }
                }
                Some(Err(e)) => {
                    let failures = self.active.get_mut(&job).map(|a| {
                        a.poll_failures += 1;
                        a.poll_failures
                    });
                    // The task goes on without us; only a server that stays unreachable
                    // costs the job an attempt (it resumes polling the same task).
                    if failures.is_some_and(|f| f >= 5) {
                        self.setback(job, &e)?;
                    }
                }
                None => {}
            }
        }
        Ok(())
    }

    /// Confirms that each job whose task succeeded now has its replication.
    pub(super) async fn verify(&mut self) -> Result<(), RunError> {
        for (disc, ids) in self.by_pairing(|a| a.step == Step::Verify) {
            let vm_ids = self.vm_ids(&ids);
            let Some(result) = self
                .guarded(replications_of(&self.client, &disc, &vm_ids))
                .await
            else {
                return Ok(());
            };
            let reps = match result {
                Ok(r) => r,
                Err(e) => {
                    self.setback_all(ids, &e)?;
                    continue;
                }
            };
            for id in ids {
                let vm = self.active[&id]
                    .checkpoint
                    .vm_id
                    .clone()
                    .unwrap_or_default();
                match reps.get(&vm) {
                    Some(rep) if rep.configuration_state == Some(ConfigurationState::Error) => {
                        let why = rep
                            .configuration_error
                            .as_ref()
                            .and_then(|e| e.message.clone())
                            .unwrap_or_else(|| "configuration state ERROR".into());
                        self.fail(id, &format!("replication {}: {why}", rep.id), None)?;
                    }
                    Some(rep)
                        if rep.configuration_state != Some(ConfigurationState::InProgress) =>
                    {
                        let rep_id = rep.id.clone();
                        if let Some(a) = self.active.get_mut(&id) {
                            a.checkpoint.replication_id = Some(rep_id.clone());
                        }
                        self.succeed(
                            id,
                            Some(&rep_id),
                            &format!("replication {rep_id} configured"),
                        )?;
                    }
                    found => {
                        // Not listed yet, or still being configured: look again at the next pass.
                        let tries = self.active.get_mut(&id).map(|a| {
                            a.verify_tries += 1;
                            a.verify_tries
                        });
                        if found.is_none() && tries.is_some_and(|t| t >= VERIFY_TRIES) {
                            self.fail(id, "the task succeeded, but the server lists no replication for the VM", None)?;
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// Held jobs that match, grouped by their pairing's discovery (jobs of a pairing not yet
    /// discovered are left for the next pass).
    fn by_pairing(&self, matches: impl Fn(&Active) -> bool) -> Vec<(Arc<Discovery>, Vec<JobId>)> {
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

    fn setback_all(&mut self, ids: Vec<JobId>, error: &ApiError) -> Result<(), RunError> {
        ids.into_iter().try_for_each(|id| self.setback(id, error))
    }

    /// The resolved VM ids of these held jobs.
    fn vm_ids(&self, ids: &[JobId]) -> Vec<String> {
        ids.iter()
            .filter_map(|id| self.active[id].checkpoint.vm_id.clone())
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

enum Submitted {
    Task(Box<Task>),
    /// The server refused this spec alone (400): nothing was created.
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
            Err(e) if e.class() == ErrorClass::Permanent => {
                let e = Arc::new(e);
                group
                    .into_iter()
                    .map(|(id, _)| (id, Submitted::Rejected(e.clone())))
                    .collect()
            }
            Err(e) => {
                let e = Arc::new(e);
                group
                    .into_iter()
                    .map(|(id, _)| (id, Submitted::Unknown(e.clone())))
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
                Some(t) => (id, Submitted::Task(Box::new(t))),
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

/// Replications of these VMs, by VM id, `IDS_PER_CALL` ids per call.
async fn replications_of(
    client: &Client,
    disc: &Discovery,
    vm_ids: &[String],
) -> Result<HashMap<String, crate::vr::model::ReplicationInfo>, ApiError> {
    let pages = futures_util::future::try_join_all(vm_ids.chunks(IDS_PER_CALL).map(|chunk| {
        let filter = Filter::new("vm_id", chunk.iter().cloned());
        async move {
            client
                .replications(&disc.pairing.pairing_id, Some(&filter))
                .await
        }
    }))
    .await?;
    Ok(pages
        .into_iter()
        .flatten()
        .filter_map(|r| Some((r.vm_id.clone()?, r)))
        .collect())
}

/// The newest recent task of each of these VMs (the task's `entity` is the VM).
async fn tasks_of_vms(
    client: &Client,
    vm_ids: &[String],
) -> Result<HashMap<String, Task>, ApiError> {
    let pages = futures_util::future::try_join_all(vm_ids.chunks(IDS_PER_CALL).map(|chunk| {
        let filter = Filter::new("entity", chunk.iter().cloned());
        async move { client.tasks(Some(&filter)).await }
    }))
    .await?;
    let mut newest: HashMap<String, Task> = HashMap::new();
    for t in pages.into_iter().flatten() {
        let Some(vm) = t.entity.clone() else { continue };
        let newer = newest
            .get(&vm)
            .is_none_or(|old| t.queued_time.unwrap_or(0) >= old.queued_time.unwrap_or(0));
        if newer {
            newest.insert(vm, t);
        }
    }
    Ok(newest)
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
    use crate::secret::Secret;
    use crate::sim::{SimConfig, Simulator, VmKind};
    use crate::vr::{ApiVersion, ClientSettings, Credentials, TlsTrust};
    use crate::workflow::{build_spec, Placement, ReplicationSettings};

    #[tokio::test]
    async fn a_group_with_one_bad_spec_is_split_until_only_that_one_fails() {
        let sim = Simulator::start(SimConfig {
            tls: false,
            ..SimConfig::default()
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
                Submitted::Task(_) => tasks += 1,
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
