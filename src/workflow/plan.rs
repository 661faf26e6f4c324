//! Planning a batch: what `run` would do with each unfinished job (configure where, skip or
//! fail and why), found with the same discovery, grouped lookups and capacity count, without
//! configuring anything. `vrbulk plan` prints it; the report renders it for the change request.
//!
//! Which batch: the one named, or the newest configure batch with jobs left ([`batch_to_plan`]),
//! never a day-2 operation batch (`--plan` of its own command previews that) nor a batch whose
//! jobs all ended: a plan of nothing, "0 to configure", would pass a script's gate and say
//! nothing true ([`NothingToPlan`], exit 2).

use std::collections::BTreeMap;

use serde::Serialize;
use thiserror::Error;

use super::day2::{a_command, command_word};
use super::{
    appliance_version, applied, decide, lookup_vms, vm_key, Capacity, Decision, Discovery,
    DiscoveryError, VmLookup,
};
use crate::domain::{AppliedLimits, CapacityLimits, JobSpec, Operation};
use crate::queue::{jobs_left, Batch, Job, JobState, LearntLimit, Queue, QueueError};
use crate::vr::{ApiError, Client, ErrorClass};

/// Why a plan could not be made. A server that failed to answer says nothing about the VMs, so
/// it is never turned into a verdict on them.
#[derive(Debug, Error)]
pub enum PlanError {
    #[error("listing the pairings")]
    Pairings(#[source] ApiError),

    #[error(transparent)]
    Discovery(DiscoveryError),

    #[error("looking up the VMs on vCenter {vcenter}")]
    Lookup {
        vcenter: String,
        #[source]
        source: ApiError,
    },

    #[error("{}", super::discovery::target_login(.pairing, .source))]
    RemoteLogin {
        pairing: String,
        #[source]
        source: ApiError,
    },

    #[error("listing the replications of pairing {pairing}")]
    Replications {
        pairing: String,
        #[source]
        source: ApiError,
    },
}

/// Why there is no plan to make: nothing is sent, exit 2.
#[derive(Debug, Error)]
pub enum NothingToPlan {
    #[error(
        "nothing to plan: batch {id} \"{name}\" is {what} batch of batch {of}, and `plan` \
         previews what `run` would configure; `vrbulk {word} --batch {of} --plan` previews a \
         day-2 operation",
        id = .batch.id,
        name = .batch.name,
        what = a_command(.batch.operation),
        word = command_word(.batch.operation),
        of = .batch.acts_on.unwrap_or_default(),
    )]
    NotConfigure { batch: Batch },

    #[error(
        "nothing to plan: every job of batch {id} \"{name}\" has ended ({ended}){hint}",
        id = .batch.id,
        name = .batch.name,
        hint = retry_hint(.batch.id, *.failed),
    )]
    Ended {
        batch: Batch,
        ended: String,
        failed: u64,
    },

    #[error(
        "nothing to plan: no configure batch has jobs left (the newest, batch {id} \"{name}\": \
         {ended}){hint}; `vrbulk import FILE` adds a batch",
        id = .newest.id,
        name = .newest.name,
        hint = retry_hint(.newest.id, *.failed),
    )]
    NoneLeft {
        newest: Batch,
        ended: String,
        failed: u64,
    },

    #[error("nothing to plan: the queue holds no configure batch; `vrbulk import FILE` adds one")]
    NoConfigureBatch,
}

fn retry_hint(batch: i64, failed: u64) -> String {
    if failed == 0 {
        return String::new();
    }
    format!("; `vrbulk retry --batch {batch}` queues its failed jobs again, then `plan` shows them")
}

/// Why `plan` could not choose a batch.
#[derive(Debug, Error)]
pub enum ChooseError {
    #[error(transparent)]
    Nothing(Box<NothingToPlan>),

    // The queue's error names the queue: this says only the step.
    #[error("choosing the batch to plan")]
    Queue(#[source] QueueError),
}

impl From<NothingToPlan> for ChooseError {
    fn from(n: NothingToPlan) -> Self {
        ChooseError::Nothing(Box::new(n))
    }
}

impl From<QueueError> for ChooseError {
    fn from(e: QueueError) -> Self {
        ChooseError::Queue(e)
    }
}

/// The batch a plan previews, and how it was chosen.
#[derive(Debug, Clone)]
pub struct PlanTarget {
    pub batch: Batch,
    /// `None` when the operator named it; else why this one (the batches passed over).
    pub chosen_because: Option<String>,
}

/// `named` when it is a configure batch with jobs left; without one, the newest such batch.
/// Anything else is [`NothingToPlan`], in words that say what the queue holds.
pub fn batch_to_plan(queue: &Queue, named: Option<Batch>) -> Result<PlanTarget, ChooseError> {
    if let Some(batch) = named {
        if batch.operation != Operation::Configure {
            return Err(NothingToPlan::NotConfigure { batch }.into());
        }
        let counts = queue.counts(batch.id)?;
        if jobs_left(&counts) == 0 {
            return Err(NothingToPlan::Ended {
                ended: ended(&counts),
                failed: failed_jobs(&counts),
                batch,
            }
            .into());
        }
        return Ok(PlanTarget {
            batch,
            chosen_because: None,
        });
    }
    let mut passed_over = Vec::new();
    let mut newest_ended = None;
    for batch in queue.batches()?.into_iter().rev() {
        if batch.operation != Operation::Configure {
            passed_over.push(format!(
                "{} \"{}\" (a day-2 operation)",
                batch.id, batch.name
            ));
            continue;
        }
        let counts = queue.counts(batch.id)?;
        if jobs_left(&counts) > 0 {
            let mut because = "the newest configure batch with jobs left".to_string();
            if !passed_over.is_empty() {
                because.push_str(&format!("; newer: {}", shortened(&passed_over)));
            }
            return Ok(PlanTarget {
                batch,
                chosen_because: Some(because),
            });
        }
        passed_over.push(format!("{} \"{}\" (ended)", batch.id, batch.name));
        newest_ended.get_or_insert((batch, counts));
    }
    Err(match newest_ended {
        Some((newest, counts)) => NothingToPlan::NoneLeft {
            ended: ended(&counts),
            failed: failed_jobs(&counts),
            newest,
        },
        None => NothingToPlan::NoConfigureBatch,
    }
    .into())
}

fn failed_jobs(counts: &BTreeMap<JobState, u64>) -> u64 {
    counts.get(&JobState::Failed).copied().unwrap_or(0)
}

/// `298 succeeded, 2 skipped`: the ended jobs by state, the empty states left out.
fn ended(counts: &BTreeMap<JobState, u64>) -> String {
    let said: Vec<String> = counts
        .iter()
        .filter(|(s, n)| s.is_terminal() && **n > 0)
        .map(|(s, n)| format!("{n} {s}"))
        .collect();
    if said.is_empty() {
        "no jobs".into()
    } else {
        said.join(", ")
    }
}

/// The first three, then how many more.
fn shortened(items: &[String]) -> String {
    let mut shown = items.iter().take(3).cloned().collect::<Vec<_>>().join(", ");
    if items.len() > 3 {
        shown.push_str(&format!(" and {} more", items.len() - 3));
    }
    shown
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
    /// The VM's data disks that would replicate: the VM home entry the spec also carries (its
    /// configuration files) is not a disk, and an unsupported disk is in `excluded_disks`.
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
    /// Each pairing discovered, by id: its target vCenter and the jobs planned over it.
    pub pairings: BTreeMap<String, (String, Vec<i64>)>,
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
    let mut over_pairing: BTreeMap<String, (String, Vec<i64>)> = BTreeMap::new();
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
        let over = over_pairing
            .entry(disc.pairing_id().to_string())
            .or_insert_with(|| (disc.remote_vc_name.clone(), Vec::new()));
        over.1.extend(group.iter().map(|j| j.id));
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
        pairings: over_pairing,
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
            p.disks = spec
                .disks
                .iter()
                .filter(|d| d.enabled_for_replication && !d.vm_disk.is_vm_home())
                .count();
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
            Err(DiscoveryError::Pairing(refused)) => {
                let message = refused.to_string();
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
