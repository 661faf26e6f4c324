//! The day-2 operations for one VM's replication: building a reconfigure from the replication as
//! it is and the change asked for (the spec wants every disk back), telling from the replication
//! whether an operation has taken effect, and, for `plan`, whether the appliance would refuse it
//! in the state the replication is in.

use crate::domain::{Operation, OperationSpec, SettingsChange};
use crate::vr::model::{
    ConfigurationState, ConfigureReplicationVmDisk, DiskFormat, ReconfigureReplicationSpec,
    ReplicatedVmDisk, ReplicationInfo, ReplicationStatus,
};

use super::Discovery;

/// What a replication says of an operation asked for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// The operation has done what it does.
    Done,
    /// Not (yet) visible.
    NotYet,
    /// The replication is gone (someone removed it): nothing left to act on.
    Gone,
}

fn status(rep: &ReplicationInfo) -> Option<ReplicationStatus> {
    rep.status.as_ref().and_then(|s| s.status)
}

/// Whether `op` shows in `rep`, the replication `ours` as the pairing lists it now (`None`:
/// not listed). A sync leaves nothing to tell it by: never done by this alone.
pub fn effect(op: &OperationSpec, ours: &str, rep: Option<&ReplicationInfo>) -> Effect {
    let rep = rep.filter(|r| r.id == ours);
    match (op, rep) {
        (OperationSpec::Unconfigure { .. }, None) => Effect::Done,
        (OperationSpec::Unconfigure { .. }, Some(_)) => Effect::NotYet,
        (_, None) => Effect::Gone,
        (OperationSpec::Pause, Some(r)) if status(r) == Some(ReplicationStatus::Paused) => {
            Effect::Done
        }
        (OperationSpec::Resume, Some(r)) if status(r) != Some(ReplicationStatus::Paused) => {
            Effect::Done
        }
        (OperationSpec::Reconfigure(change), Some(r))
            if r.configuration_state != Some(ConfigurationState::InProgress)
                && settings_match(change, r) =>
        {
            Effect::Done
        }
        _ => Effect::NotYet,
    }
}

/// Whether `rep` has the settings `change` asks for, as far as the replication shows them.
fn settings_match(change: &SettingsChange, rep: &ReplicationInfo) -> bool {
    let same = |want: Option<bool>, have: Option<bool>| want.is_none() || want == have;
    change.rpo.is_none_or(|v| rep.rpo == Some(i64::from(v)))
        && same(change.quiesce, rep.quiescing_enabled)
        && same(change.network_compression, rep.network_compression_enabled)
        && same(change.lwd_encryption, rep.encryption_enabled)
        && same(
            change.auto_replicate_new_disks,
            rep.auto_replicate_new_disks_enabled,
        )
        && change
            .mpit_instances
            .is_none_or(|v| rep.mpit_instances.unwrap_or(0) == v as i32)
}

/// Whether `op`, whose task succeeded, shows in `rep`: as [`effect`], and a sync (which leaves
/// nothing to tell it by) is done once its task is.
pub fn effect_after_task(op: &OperationSpec, ours: &str, rep: Option<&ReplicationInfo>) -> Effect {
    match (op, rep.filter(|r| r.id == ours)) {
        (OperationSpec::Sync, Some(_)) => Effect::Done,
        _ => effect(op, ours, rep),
    }
}

/// Why the appliance would refuse `op` for `rep` in the state it is in, in the words of its own
/// refusals; `None` when it would take it. For `plan` only: a run asks the appliance itself.
pub fn refusal(op: Operation, rep: &ReplicationInfo) -> Option<String> {
    let s = status(rep);
    if rep.configuration_state == Some(ConfigurationState::InProgress)
        || s == Some(ReplicationStatus::Configuring)
    {
        return Some(format!(
            "replication {} is being configured: no {op} until that ends",
            rep.id
        ));
    }
    let paused = s == Some(ReplicationStatus::Paused);
    match op {
        Operation::Pause if paused => Some(format!("replication {} is already paused", rep.id)),
        Operation::Resume if !paused => Some(format!("replication {} is not paused", rep.id)),
        Operation::Sync
            if !matches!(
                s,
                Some(ReplicationStatus::Ok | ReplicationStatus::RpoViolation)
            ) =>
        {
            Some(format!(
                "replication {} cannot sync now: it is {}",
                rep.id,
                super::protection::status_name(rep)
            ))
        }
        _ => None,
    }
}

/// The reconfigure that changes `rep` as `change` asks and nothing else: its settings as they
/// are, with the changed ones, and every disk as `disks` lists them (the spec wants them all).
pub fn reconfigure_spec(
    rep: &ReplicationInfo,
    disks: &[ReplicatedVmDisk],
    change: &SettingsChange,
    disc: &Discovery,
) -> Result<ReconfigureReplicationSpec, String> {
    let policy = change
        .storage_policy
        .as_deref()
        .map(|name| disc.storage_policy_id(name))
        .transpose()?;
    let server = match change.replication_server.as_deref() {
        // The spec reads a null server as "place it automatically": a change that does not
        // ask for another server must name the one the replication is on.
        None => disc
            .replication_servers
            .iter()
            .find(|s| {
                (s.uuid.is_some() && s.uuid == rep.target_replication_server_uuid)
                    || (s.name.is_some() && s.name == rep.replication_server_name)
            })
            .map(|s| s.id.clone()),
        Some(name) => disc.replication_server_id(name)?,
    };
    // A disk the replication leaves out still needs a datastore: the replicated disks' one.
    let home = disks
        .iter()
        .find_map(|d| d.destination_path.as_ref().map(|p| p.datastore_id.clone()))
        .ok_or_else(|| {
            format!(
                "the appliance lists no replica disk for replication {}",
                rep.id
            )
        })?;
    let disks = disks
        .iter()
        .map(|d| {
            let replicated = d.replicated.unwrap_or(true);
            ConfigureReplicationVmDisk {
                vm_disk: d.vm_disk.clone(),
                enabled_for_replication: replicated,
                use_seeds: None,
                destination_storage_policy_id: policy
                    .clone()
                    .or_else(|| d.destination_storage_policy_id.clone()),
                // The VM home goes where the VM's replica lives: the spec wants no path for it.
                destination_path: if d.vm_disk.is_vm_home() {
                    None
                } else {
                    d.destination_path.as_ref().and_then(|p| p.path.clone())
                },
                destination_datastore_id: d
                    .destination_path
                    .as_ref()
                    .map_or_else(|| home.clone(), |p| p.datastore_id.clone()),
                destination_disk_format: DiskFormat::SameAsSource,
            }
        })
        .collect();
    let mpit_instances = change
        .mpit_instances
        .map(|v| v as i32)
        .or(rep.mpit_instances)
        .unwrap_or(0);
    let mpit_days = change.mpit_days.map(|v| v as i32).or(rep.mpit_days);
    Ok(ReconfigureReplicationSpec {
        quiesce_enabled: change.quiesce.or(rep.quiescing_enabled),
        rpo: change.rpo.map(i64::from).or(rep.rpo).unwrap_or(60),
        network_compression_enabled: change
            .network_compression
            .or(rep.network_compression_enabled)
            .unwrap_or(false),
        mpit_enabled: mpit_instances > 0,
        mpit_instances: (mpit_instances > 0).then_some(mpit_instances),
        mpit_days: if mpit_instances > 0 {
            Some(mpit_days.unwrap_or(1).max(1))
        } else {
            None
        },
        auto_replicate_new_disks: change
            .auto_replicate_new_disks
            .or(rep.auto_replicate_new_disks_enabled)
            .unwrap_or(false),
        target_replication_server_id: server,
        lwd_encryption_enabled: change
            .lwd_encryption
            .or(rep.encryption_enabled)
            .unwrap_or(false),
        vm_data_sets_replication_enabled: rep.vm_data_sets_replication_enabled,
        disks,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vr::model::CompoundReplicationStatus;

    fn replication(status: ReplicationStatus) -> ReplicationInfo {
        ReplicationInfo {
            id: "GID-1".into(),
            status: Some(CompoundReplicationStatus {
                status: Some(status),
                rpo_violation: Some(false),
            }),
            configuration_state: Some(ConfigurationState::Ok),
            rpo: Some(60),
            ..ReplicationInfo::default()
        }
    }

    #[test]
    fn each_operation_is_seen_done_by_what_it_changes() {
        let ok = replication(ReplicationStatus::Ok);
        let paused = replication(ReplicationStatus::Paused);
        let undo = OperationSpec::Unconfigure {
            retain_replica_disks: false,
            local_only: false,
        };
        assert_eq!(effect(&undo, "GID-1", None), Effect::Done);
        assert_eq!(effect(&undo, "GID-1", Some(&ok)), Effect::NotYet);
        // Someone configured the VM again: that replication is not ours.
        let theirs = ReplicationInfo {
            id: "GID-2".into(),
            ..ok.clone()
        };
        assert_eq!(effect(&undo, "GID-1", Some(&theirs)), Effect::Done);
        assert_eq!(
            effect(&OperationSpec::Pause, "GID-1", Some(&paused)),
            Effect::Done
        );
        assert_eq!(
            effect(&OperationSpec::Pause, "GID-1", Some(&ok)),
            Effect::NotYet
        );
        assert_eq!(
            effect(&OperationSpec::Resume, "GID-1", Some(&ok)),
            Effect::Done
        );
        assert_eq!(effect(&OperationSpec::Sync, "GID-1", None), Effect::Gone);
        assert_eq!(
            effect(&OperationSpec::Sync, "GID-1", Some(&ok)),
            Effect::NotYet
        );
        assert_eq!(
            effect_after_task(&OperationSpec::Sync, "GID-1", Some(&ok)),
            Effect::Done
        );
        let rpo15 = OperationSpec::Reconfigure(SettingsChange {
            rpo: Some(15),
            ..SettingsChange::default()
        });
        assert_eq!(effect(&rpo15, "GID-1", Some(&ok)), Effect::NotYet);
        let done = ReplicationInfo {
            rpo: Some(15),
            ..ok
        };
        assert_eq!(effect(&rpo15, "GID-1", Some(&done)), Effect::Done);
    }

    #[test]
    fn the_plan_tells_what_the_appliance_would_refuse() {
        let paused = replication(ReplicationStatus::Paused);
        let syncing = replication(ReplicationStatus::InitialFullSync);
        assert!(refusal(Operation::Pause, &paused)
            .unwrap()
            .contains("already paused"));
        assert!(refusal(Operation::Resume, &replication(ReplicationStatus::Ok)).is_some());
        assert!(refusal(Operation::Sync, &syncing)
            .unwrap()
            .contains("INITIAL_FULL_SYNC"));
        assert_eq!(refusal(Operation::Unconfigure, &syncing), None);
        assert_eq!(
            refusal(Operation::Sync, &replication(ReplicationStatus::Ok)),
            None
        );
    }
}
