//! Day-2 operations on one replication: `unconfigure`, `reconfigure`, `pause`, `resume`, `sync`
//! (`POST …/replications/{id}/actions/…`) and `destroy` (`DELETE …/replications/{id}`), plus the
//! replication's disks (`GET …/replications/{id}/disks`).
//!
//! Each accepted operation answers 202 with its task (the spec's `TaskDrResponseEntity`) and
//! changes the replication when that task ends, as a configure does. It owns the refusals too:
//! an unknown id is 404; a replication being configured, one with an operation in flight, or one
//! in a state the operation does not apply to is 400 (the spec documents no 409), in the words of
//! vSphere's "the operation is not allowed in the current state".

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde_json::Value;

use super::error::ApiError;
use super::handlers::{json_body, pairing_site, rejected, require_remote, ReqCtx};
use super::inventory::SiteRef;
use super::lifecycle::replica_disks;
use super::listing::ListQuery;
use super::replication::{Fault, ReplicaDisk, SimReplication, Transfer};
use super::state::{SimState, Work, World};
use super::validate::{self, AcceptedReconfigure};
use crate::vr::model::{
    DatastorePathData, ReplicatedVmDisk, ReplicationInfo, ReplicationServerInfo, ReplicationStatus,
    Task,
};

/// A day-2 operation, with what it needs when its task ends.
#[derive(Debug, Clone)]
pub(crate) enum Operation {
    Unconfigure {
        retain_replica_disks: bool,
    },
    /// Removes the replication on the local site only (for a remote site that is down).
    Destroy {
        retain_replica_disks: bool,
    },
    Reconfigure(Box<AcceptedReconfigure>),
    Pause,
    Resume,
    Sync,
}

impl Operation {
    /// The operation's name in refusals and in `SimStats::operations`.
    pub fn name(&self) -> &'static str {
        match self {
            Operation::Unconfigure { .. } => "unconfigure",
            Operation::Destroy { .. } => "destroy",
            Operation::Reconfigure(_) => "reconfigure",
            Operation::Pause => "pause",
            Operation::Resume => "resume",
            Operation::Sync => "sync",
        }
    }

    pub fn description_id(&self) -> &'static str {
        match self {
            Operation::Unconfigure { .. } => "com.vmware.vr.UnconfigureReplicationTask",
            Operation::Destroy { .. } => "com.vmware.vr.DestroyReplicationTask",
            Operation::Reconfigure(_) => "com.vmware.vr.ReconfigureReplicationTask",
            Operation::Pause => "com.vmware.vr.PauseReplicationTask",
            Operation::Resume => "com.vmware.vr.ResumeReplicationTask",
            Operation::Sync => "com.vmware.vr.SyncReplicationTask",
        }
    }

    fn retains_replica_disks(&self) -> bool {
        matches!(
            self,
            Operation::Unconfigure {
                retain_replica_disks: true
            } | Operation::Destroy {
                retain_replica_disks: true
            }
        )
    }
}

// ---- routes ----

pub(super) async fn unconfigure(
    State(state): State<SimState>,
    Extension(ctx): Extension<ReqCtx>,
    Path((pairing_id, id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let retain_replica_disks = retain_replica_disks(&ctx)?;
    act(&state, &ctx, &pairing_id, &id, true, |_| {
        Ok(Operation::Unconfigure {
            retain_replica_disks,
        })
    })
}

/// `DELETE`: cleans up the local site only, meant for when the remote site is down; so, unlike
/// every other operation here, it needs no remote login.
pub(super) async fn destroy(
    State(state): State<SimState>,
    Extension(ctx): Extension<ReqCtx>,
    Path((pairing_id, id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let retain_replica_disks = retain_replica_disks(&ctx)?;
    act(&state, &ctx, &pairing_id, &id, false, |_| {
        Ok(Operation::Destroy {
            retain_replica_disks,
        })
    })
}

pub(super) async fn pause(
    State(state): State<SimState>,
    Extension(ctx): Extension<ReqCtx>,
    Path((pairing_id, id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    act(&state, &ctx, &pairing_id, &id, true, |_| {
        Ok(Operation::Pause)
    })
}

pub(super) async fn resume(
    State(state): State<SimState>,
    Extension(ctx): Extension<ReqCtx>,
    Path((pairing_id, id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    act(&state, &ctx, &pairing_id, &id, true, |_| {
        Ok(Operation::Resume)
    })
}

pub(super) async fn sync(
    State(state): State<SimState>,
    Extension(ctx): Extension<ReqCtx>,
    Path((pairing_id, id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    act(&state, &ctx, &pairing_id, &id, true, |_| {
        Ok(Operation::Sync)
    })
}

/// The body is checked against the replication's VM (every disk listed) before its state is.
pub(super) async fn reconfigure(
    State(state): State<SimState>,
    Extension(ctx): Extension<ReqCtx>,
    Path((pairing_id, id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    act(&state, &ctx, &pairing_id, &id, true, |(w, site, r)| {
        let body = json_body(&headers, &body)?;
        validate::reconfigure_body(&body, &r.vm_id, w, site)
            .map(|spec| Operation::Reconfigure(Box::new(spec)))
            .map_err(rejected)
    })
}

/// `GET …/replications/{id}/disks`: every disk of the VM, where each replica is and how much of
/// it has been copied.
pub(super) async fn disks(
    State(state): State<SimState>,
    Extension(ctx): Extension<ReqCtx>,
    Path((pairing_id, id)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let q = ListQuery::parse(&ctx.query)?;
    let w = state.world();
    let site = pairing_site(&w, &pairing_id)?;
    require_remote(&w, &ctx, &pairing_id)?;
    let r = w
        .pairing_replication(site, &id)
        .ok_or_else(|| not_found(&id))?;
    Ok(Json(q.respond(&replicated_disks(&w, r), &ctx.self_url)))
}

/// The answer to an unknown (or not yet created) replication id.
pub(super) fn not_found(id: &str) -> ApiError {
    ApiError::not_found(format!("replication_id: no replication with id '{id}'"))
}

fn retain_replica_disks(ctx: &ReqCtx) -> Result<bool, ApiError> {
    let Some((_, v)) = ctx.query.iter().find(|(k, _)| k == "retain_replica_disks") else {
        return Ok(false);
    };
    match v.to_ascii_lowercase().as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(ApiError::bad_request(format!(
            "retain_replica_disks: must be true or false, got '{v}'"
        ))),
    }
}

/// The common path of every operation: pairing (and remote login), the replication (404 unless
/// it was configured through this pairing), the operation as `build` makes it from the request,
/// the state check, the task.
fn act(
    state: &SimState,
    ctx: &ReqCtx,
    pairing_id: &str,
    id: &str,
    remote: bool,
    build: impl FnOnce((&World, SiteRef<'_>, &SimReplication)) -> Result<Operation, ApiError>,
) -> Result<Response, ApiError> {
    let mut w = state.world();
    let op = {
        let site = pairing_site(&w, pairing_id)?;
        if remote {
            require_remote(&w, ctx, pairing_id)?;
        }
        let r = w
            .pairing_replication(site, id)
            .ok_or_else(|| not_found(id))?;
        build((&w, site, r))?
    };
    let task = w.accept_operation(id, op)?;
    Ok((StatusCode::ACCEPTED, Json(task)).into_response())
}

// ---- state ----

impl World {
    /// Starts `op` on the replication `id` (listed), unless its state refuses it.
    fn accept_operation(&mut self, id: &str, op: Operation) -> Result<Task, ApiError> {
        let r = self.listed_replication(id).ok_or_else(|| not_found(id))?;
        if let Some(why) = refusal(self, r, &op) {
            self.stats.count_refused(id, op.name());
            return Err(why);
        }
        let (vm_id, vm_name) = (r.vm_id.clone(), r.vm_name.clone());
        self.stats.count_operation(id, op.name());
        if op.retains_replica_disks() {
            self.stats.replica_disks_retained.push(id.to_string());
        }
        let task = self.new_task(&vm_id, &vm_name, id, Work::Operation(op));
        let answer = self.task_json(&task);
        let index = self.add_task(task);
        if let Some(r) = self.replications.get_mut(id) {
            r.operation = Some(index);
        }
        Ok(answer)
    }
}

/// Why `op` cannot start on `r` now, in the appliance's kind of words.
fn refusal(w: &World, r: &SimReplication, op: &Operation) -> Option<ApiError> {
    let subject = format!(
        "Cannot {} replication '{}' ({})",
        op.name(),
        r.vm_name,
        r.info.id
    );
    let busy = |why: String| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "OPERATION_IN_PROGRESS",
            format!("{subject}: {why}"),
        )
    };
    if let Some(task) = r.configuring.and_then(|i| w.task_at(i)) {
        return Some(busy(format!(
            "its configuration is in progress (task {}).",
            task.id
        )));
    }
    if let Some(task) = r.operation.and_then(|i| w.task_at(i)) {
        let other = match &task.work {
            Work::Operation(o) => o.name(),
            Work::Configure { .. } => "configure",
        };
        return Some(busy(format!(
            "a {other} operation is in progress (task {}).",
            task.id
        )));
    }
    let status = r.status(w.at(r));
    let why = match op {
        Operation::Pause if r.paused => "the replication is already paused".to_string(),
        Operation::Resume if !r.paused => "the replication is not paused".to_string(),
        Operation::Sync => match status {
            ReplicationStatus::Ok | ReplicationStatus::RpoViolation => return None,
            _ => why_no_sync(r, status),
        },
        _ => return None,
    };
    Some(ApiError::new(
        StatusCode::BAD_REQUEST,
        "INVALID_REPLICATION_STATE",
        format!(
            "{subject}: the operation is not allowed in the current state ({}): {why}.",
            status_name(status)
        ),
    ))
}

fn why_no_sync(r: &SimReplication, status: ReplicationStatus) -> String {
    match (status, &r.transfer, &r.fault) {
        (ReplicationStatus::InitialFullSync, Some(t), _) => format!(
            "the initial full sync is in progress ({} of {} bytes copied)",
            t.done.floor(),
            t.total.round()
        ),
        (ReplicationStatus::FullSync, ..) => "a full sync is in progress".into(),
        (ReplicationStatus::Paused, ..) => "the replication is paused; resume it first".into(),
        (ReplicationStatus::NotActive, ..) => "the virtual machine is powered off".into(),
        (ReplicationStatus::Error, _, Some(f)) => {
            let (Fault::Configuration(e) | Fault::Group(e)) = f;
            format!(
                "the replication is in error: {}",
                e.message.as_deref().unwrap_or("unknown error")
            )
        }
        _ => "a sync is in progress".into(),
    }
}

/// The spec's spelling of a status (`INITIAL_FULL_SYNC`).
fn status_name(status: ReplicationStatus) -> String {
    serde_json::to_value(status)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_else(|| format!("{status:?}"))
}

// ---- effects ----

/// What `op` does to the replication `id` when its task ends.
pub(crate) fn apply(w: &mut World, id: &str, op: &Operation) {
    match op {
        Operation::Unconfigure { .. } | Operation::Destroy { .. } => {
            w.replications.remove(id);
            return;
        }
        Operation::Reconfigure(spec) => reconfigure_now(w, id, spec),
        Operation::Pause | Operation::Resume => {
            if let Some(r) = w.replications.get_mut(id) {
                r.paused = matches!(op, Operation::Pause);
            }
        }
        Operation::Sync => sync_now(w, id),
    }
    if let Some(r) = w.replications.get_mut(id) {
        r.operation = None;
    }
}

/// A sync has copied what changed since the last one (taken as 0.1 % of the enabled disks), ran
/// while its task was RUNNING, and ends any RPO violation, current or to come.
fn sync_now(w: &mut World, id: &str) {
    let clock = w.life.clock;
    let last_sync_time = w.life.epoch_ms(clock);
    let running = w.task_seconds * 0.75 * w.life.scale;
    let Some(r) = w.replications.get_mut(id) else {
        return;
    };
    r.info.last_sync_time = last_sync_time;
    r.info.last_sync_duration = Some(running.round() as i64);
    r.info.last_sync_size = Some((r.enabled_bytes() / 1000) as i64);
    r.rpo_violated_from = None;
    r.rpo_fate = false;
}

/// The new settings and disks. A fault is cleared: reconfiguring is how an appliance's
/// configuration is repaired.
fn reconfigure_now(w: &mut World, id: &str, spec: &AcceptedReconfigure) {
    let server = spec
        .target_replication_server_id
        .as_deref()
        .and_then(|sid| w.inv.replication_server(sid))
        .cloned();
    let vm = w.replications.get(id).and_then(|r| w.inv.vm(&r.vm_id));
    let disks = replica_disks(vm, &spec.disks);
    let Some(r) = w.replications.get_mut(id) else {
        return;
    };
    apply_settings(&mut r.info, spec, server);
    change_disks(r, disks);
    r.fault = None;
    let initial_total = r
        .transfer
        .as_ref()
        .filter(|t| t.initial)
        .map(|t| t.total as u64);
    if let (Some(bytes), Some(line)) = (initial_total, w.stats.replications.get_mut(id)) {
        line.bytes = bytes;
    }
}

/// Optional settings left out keep their value, as does the VR server when none is named.
fn apply_settings(
    info: &mut ReplicationInfo,
    spec: &AcceptedReconfigure,
    server: Option<ReplicationServerInfo>,
) {
    info.rpo = Some(spec.rpo);
    info.quiescing_enabled = spec.quiesce.or(info.quiescing_enabled);
    info.network_compression_enabled = Some(spec.network_compression);
    info.encryption_enabled = Some(spec.lwd_encryption);
    info.auto_replicate_new_disks_enabled = Some(spec.auto_replicate_new_disks);
    info.mpit_enabled = Some(spec.mpit_enabled);
    info.mpit_instances = spec.mpit_enabled.then_some(spec.mpit_instances).flatten();
    info.mpit_days = spec
        .mpit_enabled
        .then_some(spec.mpit_days.or(Some(1)))
        .flatten();
    if let Some(s) = server {
        info.replication_server_name = s.name;
        info.target_replication_server_uuid = s.uuid;
    }
}

/// Disks newly enabled are copied in full (with the initial sync if it still runs, in a full
/// sync of their own otherwise); disks no longer enabled leave the copy, with their share of
/// what was copied.
fn change_disks(r: &mut SimReplication, disks: Vec<ReplicaDisk>) {
    let enabled =
        |list: &[ReplicaDisk], key: i32| list.iter().any(|d| d.device_key == key && d.enabled);
    let added: u64 = disks
        .iter()
        .filter(|d| d.enabled && !enabled(&r.disks, d.device_key))
        .map(|d| d.bytes)
        .sum();
    let removed: u64 = r
        .disks
        .iter()
        .filter(|d| d.enabled && !enabled(&disks, d.device_key))
        .map(|d| d.bytes)
        .sum();
    r.disks = disks;
    match &mut r.transfer {
        Some(t) => {
            let kept = (t.total - removed as f64).max(0.0);
            t.done = if t.total > 0.0 {
                t.done * kept / t.total
            } else {
                0.0
            };
            t.total = kept + added as f64;
        }
        None if added > 0 => {
            r.transfer = Some(Transfer {
                initial: false,
                total: added as f64,
                done: 0.0,
                started: None,
            });
        }
        None => {}
    }
}

/// The spec's `ReplicatedVmDisk` for every disk of the replication's VM. A replica's usage is
/// its share of the initial full sync's progress while that runs, its whole size after.
fn replicated_disks(w: &World, r: &SimReplication) -> Vec<ReplicatedVmDisk> {
    let Some(vm) = w.inv.vm(&r.vm_id) else {
        return Vec::new();
    };
    let copied = match &r.transfer {
        Some(t) if t.initial && t.total > 0.0 => t.done / t.total,
        Some(t) if t.initial => 0.0,
        _ => 1.0,
    };
    vm.disks()
        .iter()
        .filter_map(|d| {
            let replica = r
                .disks
                .iter()
                .find(|x| Some(x.device_key) == d.device_key)?;
            let on = replica.enabled;
            let policy = replica
                .storage_policy_id
                .as_ref()
                .and_then(|id| w.inv.storage_policy(id))
                .map(|p| p.storage_policy_name.clone());
            Some(ReplicatedVmDisk {
                vm_disk: d.clone(),
                replicated: Some(on),
                destination_path: on.then(|| DatastorePathData {
                    datastore_id: replica.datastore_id.clone(),
                    datastore_name: w
                        .inv
                        .datastore(&replica.datastore_id)
                        .map(|x| x.name.clone()),
                    path: Some(format!("{}/", r.vm_name)),
                    filename: d.source_path.as_ref().and_then(|p| p.filename.clone()),
                }),
                destination_storage_policy_id: replica.storage_policy_id.clone().filter(|_| on),
                destination_storage_policy_name: policy.filter(|_| on),
                replica_disk_usage: on.then_some((replica.bytes as f64 * copied) as i64),
            })
        })
        .collect()
}
