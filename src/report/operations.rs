//! Both sides of a day-2 operation in the report model (DESIGN.md, "Operations and the life of a
//! replication"): an operation batch names the configure batch it acts on and what its jobs do
//! ([`OperationSpecCount`]), each job the configure job it acts on; a configure batch lists the
//! operation batches applied to it since ([`OperationSince`]) and, per VM, what each did to its
//! replication ([`JobOperation`]). The words for an operation (what its "succeeded" is called,
//! what its parameters mean) are decided here once, for every renderer.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use super::UtcTime;
use crate::domain::{Operation, OperationSpec, SettingsChange};
use crate::queue::{Batch, BatchId, JobId, JobState, OperationRecord};

/// Another batch, as a report names it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BatchRef {
    pub id: BatchId,
    pub name: String,
    pub operation: Operation,
    pub created_at: UtcTime,
    pub operator: String,
}

impl BatchRef {
    pub fn new(b: &Batch) -> BatchRef {
        BatchRef {
            id: b.id,
            name: b.name.clone(),
            operation: b.operation,
            created_at: UtcTime(b.created_at),
            operator: b.operator.clone(),
        }
    }
}

/// One thing an operation batch's jobs do, and how many of its jobs do it: a batch made by
/// `--batch N` has one; a reconfigure from a CSV file may have one per VM.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OperationSpecCount {
    pub spec: OperationSpec,
    pub jobs: u64,
}

/// The distinct specs of `specs`, in the order they first appear.
pub(super) fn spec_counts<'a>(
    specs: impl IntoIterator<Item = &'a OperationSpec>,
) -> Vec<OperationSpecCount> {
    let mut counts: Vec<OperationSpecCount> = Vec::new();
    for spec in specs {
        match counts.iter_mut().find(|c| &c.spec == spec) {
            Some(c) => c.jobs += 1,
            None => counts.push(OperationSpecCount {
                spec: spec.clone(),
                jobs: 1,
            }),
        }
    }
    counts
}

/// An operation batch applied to a configure batch's replications since it was configured.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OperationSince {
    #[serde(flatten)]
    pub batch: BatchRef,
    /// Its jobs per state; every state is present.
    pub counts: BTreeMap<JobState, u64>,
    pub total: u64,
    pub operation_specs: Vec<OperationSpecCount>,
}

/// What one job of an operation batch did to a configure job's replication.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JobOperation {
    pub batch_id: BatchId,
    pub operation: Operation,
    pub job_id: JobId,
    pub state: JobState,
    /// Why it was skipped, failed or cancelled, in the appliance's words.
    pub reason: Option<String>,
}

/// The operation batches applied to a configure batch, oldest first, and what each did per
/// configure job (keyed by that job), oldest first.
pub(super) fn operations_since(
    records: &[OperationRecord],
) -> (Vec<OperationSince>, HashMap<JobId, Vec<JobOperation>>) {
    let mut per_job: HashMap<JobId, Vec<JobOperation>> = HashMap::new();
    let batches = records
        .iter()
        .map(|r| {
            for j in &r.jobs {
                let Some(acted_on) = j.acts_on_job else {
                    continue;
                };
                per_job.entry(acted_on).or_default().push(JobOperation {
                    batch_id: r.batch.id,
                    operation: r.batch.operation,
                    job_id: j.id,
                    state: j.state,
                    reason: j.reason.clone(),
                });
            }
            OperationSince {
                batch: BatchRef::new(&r.batch),
                total: r.counts.values().sum(),
                counts: r.counts.clone(),
                operation_specs: spec_counts(r.jobs.iter().filter_map(|j| j.operation.as_ref())),
            }
        })
        .collect();
    (batches, per_job)
}

/// What a job of `operation` that succeeded did: a configure's jobs `succeeded` (its
/// replication was configured, which is not protected), an unconfigure's `unconfigured`, ….
pub fn done_word(operation: Operation) -> &'static str {
    match operation {
        Operation::Configure => "succeeded",
        Operation::Unconfigure => "unconfigured",
        Operation::Reconfigure => "reconfigured",
        Operation::Pause => "paused",
        Operation::Resume => "resumed",
        Operation::Sync => "synced",
    }
}

/// A job state in the words of the batch's operation.
pub fn state_word(operation: Operation, state: JobState) -> &'static str {
    if state == JobState::Succeeded {
        done_word(operation)
    } else {
        state.as_str()
    }
}

/// What a spec does, for people: `unconfigure, keeping the replica disks on the target site`,
/// `reconfigure: RPO 15 min, network compression on`, `pause`.
pub fn describe(spec: &OperationSpec) -> String {
    match spec {
        OperationSpec::Unconfigure {
            retain_replica_disks,
            local_only,
        } => {
            if *local_only {
                // The DELETE reaches this site only: the target site's half is left for its
                // own administrators, whatever the replica disks flag said.
                return "unconfigure on the local site only (for a target site that is down); \
                        the target site keeps its replication record and replica disks"
                    .into();
            }
            if *retain_replica_disks {
                "unconfigure, keeping the replica disks on the target site".into()
            } else {
                "unconfigure, deleting the replica disks on the target site".into()
            }
        }
        OperationSpec::Reconfigure(change) => format!("reconfigure: {}", changes(change)),
        OperationSpec::Pause => "pause".into(),
        OperationSpec::Resume => "resume".into(),
        OperationSpec::Sync => "sync now".into(),
    }
}

/// What a reconfigure changes, each setting asked for; the rest stays as the replication has it.
fn changes(c: &SettingsChange) -> String {
    let on = |b: bool| if b { "on" } else { "off" };
    let mut parts = Vec::new();
    if let Some(rpo) = c.rpo {
        parts.push(format!("RPO {rpo} min"));
    }
    match (c.mpit_instances, c.mpit_days) {
        (Some(0), _) => parts.push("MPIT off".into()),
        (Some(n), Some(d)) => parts.push(format!("MPIT {n}/day × {d} d")),
        (Some(n), None) => parts.push(format!("MPIT {n}/day")),
        (None, Some(d)) => parts.push(format!("MPIT kept for {d} d")),
        (None, None) => {}
    }
    let switches = [
        ("quiescing", c.quiesce),
        ("network compression", c.network_compression),
        ("encryption (LWD)", c.lwd_encryption),
        ("auto-replicate new disks", c.auto_replicate_new_disks),
    ];
    for (name, value) in switches {
        if let Some(v) = value {
            parts.push(format!("{name} {}", on(v)));
        }
    }
    if let Some(policy) = &c.storage_policy {
        parts.push(format!("storage policy \u{201c}{policy}\u{201d}"));
    }
    match c.replication_server.as_deref() {
        Some("auto") => parts.push("automatic VR server placement".into()),
        Some(server) => parts.push(format!("VR server {server}")),
        None => {}
    }
    if parts.is_empty() {
        "nothing asked".into()
    } else {
        parts.join(", ")
    }
}

/// A spec's parameters as `key=value; key=value`, for a spreadsheet cell (`rpo=15;
/// network_compression=true`); empty for an operation without any (pause, resume, sync).
pub(crate) fn parameters(spec: &OperationSpec) -> String {
    let Ok(serde_json::Value::Object(fields)) = serde_json::to_value(spec) else {
        return String::new();
    };
    fields
        .into_iter()
        .filter(|(k, _)| k != "operation")
        .map(|(k, v)| match v {
            serde_json::Value::String(s) => format!("{k}={s}"),
            other => format!("{k}={other}"),
        })
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_operation_says_what_it_did_with_its_parameters() {
        let keep = OperationSpec::Unconfigure {
            retain_replica_disks: true,
            local_only: false,
        };
        assert_eq!(
            describe(&keep),
            "unconfigure, keeping the replica disks on the target site"
        );
        let local = OperationSpec::Unconfigure {
            retain_replica_disks: false,
            local_only: true,
        };
        assert!(describe(&local).contains("local site only"));
        assert!(describe(&local).contains("the target site keeps its replication record"));
        let change = OperationSpec::Reconfigure(SettingsChange {
            rpo: Some(15),
            network_compression: Some(true),
            storage_policy: Some("VR Gold".into()),
            ..SettingsChange::default()
        });
        assert_eq!(
            describe(&change),
            "reconfigure: RPO 15 min, network compression on, storage policy \u{201c}VR Gold\u{201d}"
        );
        assert_eq!(
            parameters(&change),
            "network_compression=true; rpo=15; storage_policy=VR Gold"
        );
        assert_eq!(
            parameters(&keep),
            "local_only=false; retain_replica_disks=true"
        );
        assert_eq!(parameters(&OperationSpec::Pause), "");
    }

    #[test]
    fn succeeded_is_said_in_the_operations_words() {
        assert_eq!(
            state_word(Operation::Unconfigure, JobState::Succeeded),
            "unconfigured"
        );
        assert_eq!(state_word(Operation::Pause, JobState::Succeeded), "paused");
        assert_eq!(state_word(Operation::Pause, JobState::Skipped), "skipped");
        assert_eq!(
            state_word(Operation::Configure, JobState::Succeeded),
            "succeeded"
        );
    }
}
