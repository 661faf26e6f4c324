//! Planning a batch: what `run` would do with each unfinished job (configure where, skip or
//! fail and why), found with the same discovery, grouped lookups and capacity count, without
//! configuring anything. `vrbulk plan` prints it; the report renders it for the change request.

use std::collections::BTreeMap;

use serde::Serialize;
use thiserror::Error;

use super::{
    appliance_version, applied, decide, lookup_vms, vm_key, Capacity, Decision, Discovery,
    DiscoveryError, VmLookup,
};
use crate::domain::{AppliedLimits, CapacityLimits, JobSpec};
use crate::queue::{Job, LearntLimit};
use crate::vr::{ApiError, Client, ErrorClass};

/// Why a plan could not be made. A server that failed to answer says nothing about the VMs, so
/// it is never turned into a verdict on them.
#[derive(Debug, Error)]
pub enum PlanError {
    #[error("the plan is incomplete: listing the pairings")]
    Pairings(#[source] ApiError),

    #[error("the plan is incomplete")]
    Discovery(#[source] DiscoveryError),

    #[error("the plan is incomplete: looking up the VMs on vCenter {vcenter}")]
    Lookup {
        vcenter: String,
        #[source]
        source: ApiError,
    },

    #[error("the plan is incomplete: logging in to the target site of pairing {pairing}")]
    RemoteLogin {
        pairing: String,
        #[source]
        source: ApiError,
    },

    #[error("the plan is incomplete: listing the replications of pairing {pairing}")]
    Replications {
        pairing: String,
        #[source]
        source: ApiError,
    },
}

/// What `run` would do with one VM.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PlanAction {
    Configure,
    Skip,
    Fail,
}

impl PlanAction {
    pub const ALL: [PlanAction; 3] = [PlanAction::Configure, PlanAction::Skip, PlanAction::Fail];

    pub fn as_str(self) -> &'static str {
        match self {
            PlanAction::Configure => "configure",
            PlanAction::Skip => "skip",
            PlanAction::Fail => "fail",
        }
    }
}

/// One job's planned fate.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlanRow {
    pub job_id: i64,
    pub vm_name: String,
    pub vm_id: Option<String>,
    pub action: PlanAction,
    /// Why the VM would be skipped or fail.
    pub reason: Option<String>,
    /// The target site's vCenter (the pairing's remote one): with several pairings, where the
    /// row's datastore is. The pairing the row names when it was not found; left out of the
    /// JSON when the row names none and none was found.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_site: Option<String>,
    pub target_datastore: String,
    pub storage_policy: Option<String>,
    pub replication_server: Option<String>,
    /// Disks in the configure spec (the VM home included).
    pub disks: usize,
    /// Disk labels the server reports as unsupported, left out.
    pub excluded_disks: Vec<String>,
    /// Capacity of the disks that would replicate, in bytes.
    pub capacity_bytes: i64,
    pub warnings: Vec<String>,
    pub change_ticket: Option<String>,
    pub notes: Option<String>,
}

/// What `plan` found: each unfinished job's fate, and the capacity it counted by.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// In job order.
    pub rows: Vec<PlanRow>,
    pub capacity: PlanCapacity,
}

/// The appliance's capacity a plan counted by: the figures and where they came from, and the
/// VR server limits that earlier refusals taught and that still count.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlanCapacity {
    pub limits: AppliedLimits,
    pub learnt: Vec<LearntLimit>,
}

/// What `run` would do with each unfinished job, found with the same grouped calls, counting
/// room as `run` would: by `limits` (`[limits]`, else the appliance's version's figures) and
/// what the appliance taught before (`learnt`).
pub async fn plan_jobs(
    client: &Client,
    jobs: &[Job],
    lookup_group: usize,
    limits: &CapacityLimits,
    learnt: &[LearntLimit],
) -> Result<Plan, PlanError> {
    let pairings = client.pairings().await.map_err(PlanError::Pairings)?;
    let version = appliance_version(client, &pairings).await;
    let mut by_pairing: BTreeMap<Option<String>, Vec<&Job>> = BTreeMap::new();
    for j in jobs.iter().filter(|j| !j.state.is_terminal()) {
        by_pairing
            .entry(j.spec.pairing.clone())
            .or_default()
            .push(j);
    }
    let mut planned = Vec::new();
    // In job order within a pairing: the first VMs get the room, as they would in the run.
    let mut room = Capacity::new(applied(limits, version.as_deref()), learnt);
    for (key, group) in by_pairing {
        let disc = match Discovery::run(client, &pairings, key.as_deref()).await {
            Ok(d) => d,
            // A server that failed to answer says nothing about the VMs: no verdict on them.
            Err(e)
                if e.api_error()
                    .is_some_and(|a| a.class() != ErrorClass::Permanent) =>
            {
                return Err(PlanError::Discovery(e));
            }
            Err(e) => {
                let reason = crate::vr::error::error_chain(&e);
                planned.extend(group.iter().map(|j| failed(j, reason.clone())));
                continue;
            }
        };
        let refs: Vec<_> = group.iter().map(|j| &j.spec.vm).collect();
        let lookups = lookup_vms(client, &disc, &refs, lookup_group)
            .await
            .map_err(|source| PlanError::Lookup {
                vcenter: disc.local_vc_id.clone(),
                source,
            })?;
        room.add(&disc);
        for j in group {
            let lookup = &lookups[&vm_key(&j.spec.vm)];
            planned.push(plan_one(
                j,
                room.admit(decide(&j.spec, lookup, &disc)),
                &disc,
            ));
        }
    }
    planned.sort_by_key(|p| p.job_id);
    let capacity = PlanCapacity {
        limits: room.limits().clone(),
        learnt: room.learnt_in_force().into_iter().cloned().collect(),
    };
    Ok(Plan {
        rows: planned,
        capacity,
    })
}

/// The row of one job, from what `run` would decide for it.
fn plan_one(job: &Job, decision: Decision, disc: &Discovery) -> PlanRow {
    let mut p = failed(job, String::new());
    p.target_site = Some(disc.remote_vc_name.clone());
    match decision {
        Decision::Configure {
            vm,
            excluded,
            spec,
            placement,
        } => {
            p.action = PlanAction::Configure;
            p.reason = None;
            p.vm_id = Some(vm.id.clone());
            if let Some(id) = &placement.replication_server_id {
                let name = disc.replication_server_name(id);
                p.replication_server = Some(if job.spec.places_automatically() {
                    format!("{name} (auto)")
                } else {
                    name.to_string()
                });
            }
            p.disks = spec.disks.len();
            p.capacity_bytes = super::spec::spec_bytes(&spec);
            if !excluded.is_empty() {
                p.warnings.push(format!(
                    "not replicated (unsupported): {}",
                    excluded.join(", ")
                ));
            }
            p.excluded_disks = excluded;
        }
        Decision::Skip { vm_id, reason, .. } => {
            p.action = PlanAction::Skip;
            p.vm_id = vm_id;
            p.reason = Some(reason);
        }
        Decision::Fail { vm_id, reason } => {
            p.vm_id = vm_id;
            p.reason = Some(reason);
        }
    }
    p
}

/// A row that says the job would fail, for `reason`.
fn failed(job: &Job, reason: String) -> PlanRow {
    PlanRow {
        job_id: job.id,
        vm_name: job.vm_label().to_string(),
        vm_id: job.spec.vm.id.clone(),
        action: PlanAction::Fail,
        reason: Some(reason),
        target_site: job.spec.pairing.clone(),
        target_datastore: job.spec.target_datastore.clone(),
        storage_policy: job.spec.storage_policy.clone(),
        replication_server: job.spec.replication_server.clone(),
        disks: 0,
        excluded_disks: Vec::new(),
        capacity_bytes: 0,
        warnings: Vec::new(),
        change_ticket: job.spec.change_ticket.clone(),
        notes: job.spec.notes.clone(),
    }
}

/// A name in an input row that the live inventory does not know: the row's line, its column
/// and why, in the words `plan` would fail the VM with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InventoryProblem {
    pub line: Option<u64>,
    pub column: &'static str,
    pub message: String,
}

/// Checks every name the rows give against the live inventory (`import --check`): the
/// pairing, the VM (found, and only one by that name), the target datastore, storage policy
/// and VR server, with the plan's own discovery and grouped lookups. A VM that cannot be
/// replicated or already is is not a problem of the input: `run` skips it.
pub async fn check_names(
    client: &Client,
    rows: &[JobSpec],
    lookup_group: usize,
) -> Result<Vec<InventoryProblem>, PlanError> {
    let pairings = client.pairings().await.map_err(PlanError::Pairings)?;
    let mut by_pairing: BTreeMap<Option<String>, Vec<&JobSpec>> = BTreeMap::new();
    for r in rows {
        by_pairing.entry(r.pairing.clone()).or_default().push(r);
    }
    let mut problems = Vec::new();
    for (key, group) in by_pairing {
        let disc = match Discovery::run(client, &pairings, key.as_deref()).await {
            Ok(d) => d,
            Err(DiscoveryError::Pairing(message)) => {
                problems.extend(group.iter().map(|r| InventoryProblem {
                    line: r.line,
                    column: "pairing",
                    message: message.clone(),
                }));
                continue;
            }
            Err(e) => return Err(PlanError::Discovery(e)),
        };
        let refs: Vec<_> = group.iter().map(|r| &r.vm).collect();
        let lookups = lookup_vms(client, &disc, &refs, lookup_group)
            .await
            .map_err(|source| PlanError::Lookup {
                vcenter: disc.local_vc_id.clone(),
                source,
            })?;
        for row in group {
            let lookup = &lookups[&vm_key(&row.vm)];
            if matches!(lookup, VmLookup::NotFound | VmLookup::Ambiguous(_)) {
                if let Decision::Fail { reason, .. } = decide(row, lookup, &disc) {
                    let column = if row.vm.id.is_some() {
                        "vm_id"
                    } else {
                        "vm_name"
                    };
                    problems.push(InventoryProblem {
                        line: row.line,
                        column,
                        message: reason,
                    });
                    continue;
                }
            }
            let datastore_only = JobSpec {
                storage_policy: None,
                replication_server: None,
                ..row.clone()
            };
            let checks = [
                (
                    "target_datastore",
                    disc.placement(&datastore_only).map(drop),
                ),
                (
                    "storage_policy",
                    row.storage_policy
                        .as_deref()
                        .map_or(Ok(()), |p| disc.storage_policy_id(p).map(drop)),
                ),
                (
                    "replication_server",
                    row.replication_server
                        .as_deref()
                        .map_or(Ok(()), |s| disc.replication_server_id(s).map(drop)),
                ),
            ];
            for (column, check) in checks {
                if let Err(message) = check {
                    problems.push(InventoryProblem {
                        line: row.line,
                        column,
                        message,
                    });
                }
            }
        }
    }
    problems.sort_by_key(|p| p.line);
    Ok(problems)
}
