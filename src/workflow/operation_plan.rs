//! Planning a day-2 operation (`--plan`): what it would do to each replication a configure
//! batch recorded, without creating a batch or sending any change. It reads each pairing's
//! replications in one list, as the runner does, and says per VM: act; skip (the replication is
//! gone, or replaced by one someone else configured since: the runner's own verdicts, in its
//! words); or would be refused (what the appliance refuses in the replication's state, a
//! storage policy or VR server the target site lacks, more point-in-time copies than it keeps).
//! `day2` chose the targets; the CLI prints the rows.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use super::day2::Target;
use super::operations::refusal;
use super::protection::status_name;
use super::{choose_pairing, Discovery, PlanError};
use crate::domain::{Operation, OperationSpec, SettingsChange};
use crate::queue::{BatchId, JobId};
use crate::vr::model::{Pairing, ReplicationInfo};
use crate::vr::{Client, ErrorClass};

/// What the operation would do to one replication.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Act,
    Skip,
    /// The appliance (or the target site) would refuse it.
    Refused,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Act => "act",
            Verdict::Skip => "skip",
            Verdict::Refused => "refused",
        }
    }
}

/// One replication's planned fate.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OperationPlanRow {
    /// The configure job that recorded the replication.
    pub job_id: JobId,
    pub vm_name: String,
    pub vm_id: Option<String>,
    /// The replication the configure batch recorded.
    pub replication_id: String,
    pub operation: Operation,
    pub verdict: Verdict,
    /// Why it would be skipped or refused.
    pub reason: Option<String>,
    /// The replication's status now, when it is still there.
    pub status: Option<String>,
    /// A reconfigure's settings, each as it is and as it would be: `rpo 60 -> 15`.
    pub changes: Vec<String>,
}

/// What one pairing shows, read once for all its targets.
struct Site {
    /// The pairing's replications by VM id.
    replications: HashMap<String, ReplicationInfo>,
    /// The target site's names, when a reconfigure names a policy or a VR server.
    names: Option<Discovery>,
}

/// Plans `targets` (of the configure batch `acts_on`): one replication list per pairing, plus the
/// target site's names when a reconfigure asks for a policy or a VR server. Reads only.
pub async fn plan_operation(
    client: &Client,
    acts_on: BatchId,
    targets: &[Target],
) -> Result<Vec<OperationPlanRow>, PlanError> {
    let pairings = client.pairings().await.map_err(PlanError::Pairings)?;
    let mut by_pairing: BTreeMap<Option<String>, Vec<&Target>> = BTreeMap::new();
    for t in targets {
        by_pairing
            .entry(t.job.spec.pairing.clone())
            .or_default()
            .push(t);
    }
    let mut rows = Vec::with_capacity(targets.len());
    for (key, group) in by_pairing {
        let needs_names = group.iter().any(|t| names_a_site_object(&t.spec));
        match read_site(client, &pairings, key.as_deref(), needs_names).await? {
            Ok(site) => rows.extend(group.iter().map(|t| {
                let vm = t.job.checkpoint.vm_id.as_deref().unwrap_or_default();
                plan_one(t, acts_on, site.replications.get(vm), site.names.as_ref())
            })),
            Err(reason) => rows.extend(group.iter().map(|t| {
                let mut row = row_for(t);
                row.verdict = Verdict::Refused;
                row.reason = Some(reason.clone());
                row
            })),
        }
    }
    rows.sort_by_key(|r| r.job_id);
    Ok(rows)
}

/// Whether a reconfigure names something of the target site that must exist there.
fn names_a_site_object(spec: &OperationSpec) -> bool {
    matches!(spec, OperationSpec::Reconfigure(c)
        if c.storage_policy.is_some() || c.replication_server.is_some())
}

/// The pairing's replications (and names): `Ok(Err(reason))` when the pairing itself refuses
/// every target (no such pairing, a login the target site denies), an error when the appliance
/// did not answer, which says nothing about the VMs.
async fn read_site(
    client: &Client,
    pairings: &[Pairing],
    wanted: Option<&str>,
    needs_names: bool,
) -> Result<Result<Site, String>, PlanError> {
    if needs_names {
        return match Discovery::run(client, pairings, wanted).await {
            Ok(d) => Ok(Ok(Site {
                replications: d.replications.clone(),
                names: Some(d),
            })),
            Err(e)
                if e.api_error()
                    .is_some_and(|a| a.class() != ErrorClass::Permanent) =>
            {
                Err(PlanError::Discovery(e))
            }
            Err(e) => Ok(Err(crate::vr::error::error_chain(&e))),
        };
    }
    let pairing = match choose_pairing(pairings, wanted) {
        Ok(p) => p,
        Err(refused) => return Ok(Err(refused.to_string())),
    };
    let id = &pairing.pairing_id;
    // The replication list reads the target site too: within one vCenter the local session
    // reaches it already.
    if pairing.local_vc_server.id != pairing.remote_vc_server.id {
        if let Err(e) = client.remote_login(id).await {
            if e.class() != ErrorClass::Permanent {
                return Err(PlanError::RemoteLogin {
                    pairing: id.clone(),
                    source: e,
                });
            }
            return Ok(Err(format!(
                "logging in to the target site of pairing {id}: {}",
                crate::vr::error::error_chain(&e)
            )));
        }
    }
    let list = client
        .replications(id, None)
        .await
        .map_err(|source| PlanError::Replications {
            pairing: id.clone(),
            source,
        })?;
    Ok(Ok(Site {
        replications: list
            .into_iter()
            .filter_map(|r| Some((r.vm_id.clone()?, r)))
            .collect(),
        names: None,
    }))
}

/// What the operation would do to one target, given the replication its VM has now (`found`)
/// and, for a reconfigure that names them, the target site's names.
pub fn plan_one(
    target: &Target,
    acts_on: BatchId,
    found: Option<&ReplicationInfo>,
    names: Option<&Discovery>,
) -> OperationPlanRow {
    let mut row = row_for(target);
    let ours = target.replication_id();
    // The runner's verdicts in its words: it acts on the replication the batch recorded only.
    let skip = match found {
        None => Some(format!("replication {ours} no longer exists")),
        Some(rep) if rep.id != ours => Some(format!(
            "the VM's replication is now {}, not {ours} that batch {acts_on} configured: left alone",
            rep.id
        )),
        Some(_) => None,
    };
    let Some(rep) = found.filter(|_| skip.is_none()) else {
        row.verdict = Verdict::Skip;
        row.reason = skip;
        return row;
    };
    row.status = Some(status_name(rep));
    let mut refused = refusal(target.spec.operation(), rep);
    if let OperationSpec::Reconfigure(change) = &target.spec {
        row.changes = changes(change, rep);
        refused = refused.or_else(|| reconfigure_refusal(change, rep, names));
    }
    if let Some(why) = refused {
        row.verdict = Verdict::Refused;
        row.reason = Some(why);
    }
    row
}

/// A row that acts, as far as the configure job tells.
fn row_for(target: &Target) -> OperationPlanRow {
    OperationPlanRow {
        job_id: target.job.id,
        vm_name: target.vm_name().to_string(),
        vm_id: target.job.checkpoint.vm_id.clone(),
        replication_id: target.replication_id().to_string(),
        operation: target.spec.operation(),
        verdict: Verdict::Act,
        reason: None,
        status: None,
        changes: Vec::new(),
    }
}

/// Why a reconfigure of `rep` could not be built or would be refused: a name the target site
/// lacks, or more point-in-time copies than vSphere Replication keeps once the replication's own
/// values fill in what the change leaves out.
fn reconfigure_refusal(
    change: &SettingsChange,
    rep: &ReplicationInfo,
    names: Option<&Discovery>,
) -> Option<String> {
    if let Some(site) = names {
        let policy = change
            .storage_policy
            .as_deref()
            .map(|p| site.storage_policy_id(p).map(drop));
        let server = change
            .replication_server
            .as_deref()
            .map(|s| site.replication_server_id(s).map(drop));
        if let Some(Err(why)) = policy.into_iter().chain(server).find(Result::is_err) {
            return Some(why);
        }
    }
    let now = |v: Option<i32>| v.and_then(|n| u32::try_from(n).ok());
    let instances = change
        .mpit_instances
        .or_else(|| now(rep.mpit_instances))
        .unwrap_or(0);
    let days = change.mpit_days.or_else(|| now(rep.mpit_days)).unwrap_or(1);
    crate::input::mpit_problem(instances, days)
}

/// Each setting `change` names, as `rep` has it and as it would be.
fn changes(change: &SettingsChange, rep: &ReplicationInfo) -> Vec<String> {
    let on_off = |b: bool| if b { "on" } else { "off" }.to_string();
    let bool_now = |v: Option<bool>| v.map(on_off);
    let int_now = |v: Option<i32>| v.map(|n| n.to_string());
    let mut lines = Vec::new();
    let mut show = |what: &str, now: Option<String>, want: String| {
        lines.push(match now {
            Some(now) if now == want => format!("{what} {want} (as it is)"),
            Some(now) => format!("{what} {now} -> {want}"),
            None => format!("{what} -> {want}"),
        });
    };
    if let Some(rpo) = change.rpo {
        show("rpo", rep.rpo.map(|r| r.to_string()), rpo.to_string());
    }
    if let Some(n) = change.mpit_instances {
        show("mpit_instances", int_now(rep.mpit_instances), n.to_string());
    }
    if let Some(n) = change.mpit_days {
        show("mpit_days", int_now(rep.mpit_days), n.to_string());
    }
    for (what, want, now) in [
        ("quiesce", change.quiesce, rep.quiescing_enabled),
        (
            "network_compression",
            change.network_compression,
            rep.network_compression_enabled,
        ),
        (
            "lwd_encryption",
            change.lwd_encryption,
            rep.encryption_enabled,
        ),
        (
            "auto_replicate_new_disks",
            change.auto_replicate_new_disks,
            rep.auto_replicate_new_disks_enabled,
        ),
    ] {
        if let Some(want) = want {
            show(what, bool_now(now), on_off(want));
        }
    }
    if let Some(policy) = &change.storage_policy {
        show("storage_policy", None, policy.clone());
    }
    if let Some(server) = &change.replication_server {
        show(
            "replication_server",
            rep.replication_server_name.clone(),
            server.clone(),
        );
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{JobSpec, VmRef};
    use crate::queue::{Checkpoint, Job, JobState, Step};
    use crate::vr::model::{CompoundReplicationStatus, ConfigurationState, ReplicationStatus};

    fn target(spec: OperationSpec) -> Target {
        Target {
            job: Job {
                id: 7,
                batch_id: 3,
                spec: JobSpec {
                    line: Some(2),
                    vm: VmRef {
                        name: Some("app-1".into()),
                        id: None,
                    },
                    pairing: None,
                    target_datastore: "ds".into(),
                    storage_policy: None,
                    replication_server: None,
                    settings: Default::default(),
                    change_ticket: None,
                    notes: None,
                },
                state: JobState::Succeeded,
                step: Step::Verify,
                attempt: 1,
                max_attempts: 5,
                scheduled_at: 0,
                lease_owner: None,
                lease_expires_at: None,
                in_doubt: false,
                checkpoint: Checkpoint {
                    vm_id: Some("VirtualMachine:vm-1:vc".into()),
                    replication_id: Some("GID-1".into()),
                    ..Checkpoint::default()
                },
                reason: None,
                last_error: None,
                last_http_status: None,
                created_at: 0,
                started_at: None,
                finished_at: None,
                updated_at: 0,
                acts_on_job: None,
                operation: None,
            },
            spec,
        }
    }

    fn replication(id: &str, status: ReplicationStatus) -> ReplicationInfo {
        ReplicationInfo {
            id: id.into(),
            vm_id: Some("VirtualMachine:vm-1:vc".into()),
            status: Some(CompoundReplicationStatus {
                status: Some(status),
                rpo_violation: Some(false),
            }),
            configuration_state: Some(ConfigurationState::Ok),
            rpo: Some(60),
            mpit_instances: Some(4),
            mpit_days: Some(3),
            ..ReplicationInfo::default()
        }
    }

    const UNDO: OperationSpec = OperationSpec::Unconfigure {
        retain_replica_disks: false,
        local_only: false,
    };

    #[test]
    fn a_replication_still_there_is_acted_on() {
        let ok = replication("GID-1", ReplicationStatus::Ok);
        let row = plan_one(&target(UNDO), 3, Some(&ok), None);
        assert_eq!(row.verdict, Verdict::Act);
        assert_eq!(row.replication_id, "GID-1");
        assert_eq!(row.status.as_deref(), Some("OK"));
    }

    #[test]
    fn gone_or_replaced_by_someone_elses_is_skipped_in_the_runners_words() {
        let row = plan_one(&target(UNDO), 3, None, None);
        assert_eq!(row.verdict, Verdict::Skip);
        assert_eq!(
            row.reason.as_deref(),
            Some("replication GID-1 no longer exists")
        );
        let theirs = replication("GID-9", ReplicationStatus::Ok);
        let row = plan_one(&target(UNDO), 3, Some(&theirs), None);
        assert_eq!(row.verdict, Verdict::Skip);
        assert_eq!(
            row.reason.as_deref(),
            Some(
                "the VM's replication is now GID-9, not GID-1 that batch 3 configured: left alone"
            )
        );
    }

    #[test]
    fn what_the_appliance_refuses_in_the_replications_state_is_said() {
        let paused = replication("GID-1", ReplicationStatus::Paused);
        let row = plan_one(&target(OperationSpec::Pause), 3, Some(&paused), None);
        assert_eq!(row.verdict, Verdict::Refused);
        assert!(row.reason.unwrap().contains("already paused"));
    }

    #[test]
    fn a_reconfigure_shows_each_change_and_checks_mpit_with_the_replications_values() {
        let ok = replication("GID-1", ReplicationStatus::Ok);
        let change = SettingsChange {
            rpo: Some(15),
            network_compression: Some(true),
            mpit_instances: Some(4),
            ..SettingsChange::default()
        };
        let row = plan_one(
            &target(OperationSpec::Reconfigure(change)),
            3,
            Some(&ok),
            None,
        );
        assert_eq!(row.verdict, Verdict::Act);
        assert_eq!(
            row.changes,
            [
                "rpo 60 -> 15",
                "mpit_instances 4 (as it is)",
                "network_compression -> on"
            ]
        );
        // The replication keeps three days: ten a day would be 30 copies, more than 24.
        let change = SettingsChange {
            mpit_instances: Some(10),
            ..SettingsChange::default()
        };
        let row = plan_one(
            &target(OperationSpec::Reconfigure(change)),
            3,
            Some(&ok),
            None,
        );
        assert_eq!(row.verdict, Verdict::Refused);
        assert!(row.reason.unwrap().contains("10 a day for 3 days is 30"));
    }
}
