//! Judging a configured VM's replication from what the appliance says of it: the record the
//! queue keeps (status, initial-sync bytes, RPO health, the appliance's words for a fault) and
//! whether the VM is protected. DESIGN.md: a VM is protected when its replication is `OK`, not in
//! RPO violation, and has had a sync since it was configured. A replication vrbulk configured
//! has had no sync before, so any `last_sync_time` is one since.
//!
//! One reading of that: a replication first seen already behind its RPO after its sync ended
//! (a short RPO, a slow look) was `OK` in between: it counts as protected from that sighting,
//! with its RPO violation flagged, rather than as still syncing, which it is not.
//!
//! When it became protected is the appliance's to say, not the moment vrbulk looked: the
//! sighting carries its `last_sync_time` and `last_sync_duration`, which the record keeps from
//! the first sighting after the sync, and the VR server the appliance put it on.

use crate::queue::{JobId, ReplicationSeen};
use crate::vr::model::{spec_name, ConfigurationState, ReplicationInfo, ReplicationStatus, VmDisk};

/// The status as the appliance words it (`INITIAL_FULL_SYNC`, `OK`, …).
pub fn status_name(rep: &ReplicationInfo) -> String {
    rep.status
        .as_ref()
        .and_then(|s| s.status)
        .and_then(spec_name)
        .unwrap_or_else(|| "UNKNOWN".into())
}

/// Bytes an initial sync of these disks copies: the disks VR can replicate (capacities are in
/// KiB). What the record shows when the appliance no longer says (a sync that ended before it
/// was seen).
pub fn replicated_bytes(disks: &[VmDisk]) -> i64 {
    disks
        .iter()
        .filter(|d| d.supported_for_replication != Some(false))
        .filter_map(|d| d.capacity)
        .sum::<i64>()
        * 1024
}

/// What `rep`, the replication of `job`, says: the record to keep. `bytes` is what its initial
/// sync copies by the job's own disks, for when the appliance shows no progress.
pub fn seen(job: JobId, rep: &ReplicationInfo, bytes: Option<i64>) -> ReplicationSeen {
    let status = rep.status.as_ref().and_then(|s| s.status);
    let rpo_violation = rep.status.as_ref().and_then(|s| s.rpo_violation) == Some(true)
        || rep.current_rpo_violation.is_some_and(|m| m > 0);
    let config_error = rep.configuration_state == Some(ConfigurationState::Error);
    let error = if config_error {
        Some(fault_words(rep.configuration_error.as_ref()))
    } else if matches!(
        status,
        Some(ReplicationStatus::Error | ReplicationStatus::ErrorRpoViolation)
    ) {
        Some(fault_words(rep.last_group_error.as_ref()))
    } else {
        None
    };
    let progress = rep.sync_progress.as_ref();
    ReplicationSeen {
        job,
        replication_id: rep.id.clone(),
        status: status_name(rep),
        configuration_state: rep.configuration_state.and_then(spec_name),
        bytes_done: progress.and_then(|p| p.transferred_current),
        bytes_total: progress.and_then(|p| p.transferred_total).or(bytes),
        rpo_violation,
        protected: error.is_none()
            && rep.last_sync_time > 0
            && matches!(
                status,
                Some(
                    ReplicationStatus::Ok
                        | ReplicationStatus::RpoViolation
                        | ReplicationStatus::Sync
                        | ReplicationStatus::SyncRpoViolation
                )
            ),
        error,
        last_sync_time: Some(rep.last_sync_time).filter(|t| *t > 0),
        last_sync_duration: rep.last_sync_duration.filter(|d| *d >= 0),
        replication_server: rep.replication_server_name.clone(),
    }
}

/// Whether the appliance counts `rep` in its initial sync (or about to start it): what an
/// admission cap counts.
pub fn in_initial_sync(rep: &ReplicationInfo) -> bool {
    matches!(
        rep.status.as_ref().and_then(|s| s.status),
        Some(ReplicationStatus::InitialFullSync | ReplicationStatus::Configuring)
    )
}

fn fault_words(fault: Option<&crate::vr::model::TaskError>) -> String {
    fault
        .and_then(|f| f.message.clone())
        .unwrap_or_else(|| "the appliance reports the replication in error".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vr::model::{CompoundReplicationStatus, SyncProgressData, TaskError};

    fn replication(status: ReplicationStatus) -> ReplicationInfo {
        ReplicationInfo {
            id: "GID-1".into(),
            status: Some(CompoundReplicationStatus {
                status: Some(status),
                rpo_violation: Some(false),
            }),
            configuration_state: Some(ConfigurationState::Ok),
            ..ReplicationInfo::default()
        }
    }

    #[test]
    fn protected_means_a_sync_since_the_configure_and_no_fault() {
        let syncing = ReplicationInfo {
            sync_progress: Some(SyncProgressData {
                transferred_current: Some(10),
                transferred_total: Some(40),
                ..SyncProgressData::default()
            }),
            ..replication(ReplicationStatus::InitialFullSync)
        };
        let s = seen(7, &syncing, None);
        assert_eq!(
            (s.status.as_str(), s.bytes_done, s.bytes_total, s.protected),
            ("INITIAL_FULL_SYNC", Some(10), Some(40), false)
        );
        assert!(in_initial_sync(&syncing));

        let synced = ReplicationInfo {
            last_sync_time: 1_796_000_000_000,
            last_sync_duration: Some(3600),
            replication_server_name: Some("vrs-target-02".into()),
            ..replication(ReplicationStatus::Ok)
        };
        let s = seen(7, &synced, None);
        assert!(s.protected);
        // The appliance's own times and placement travel with the sighting.
        assert_eq!(
            (
                s.last_sync_time,
                s.last_sync_duration,
                s.replication_server.as_deref()
            ),
            (Some(1_796_000_000_000), Some(3600), Some("vrs-target-02"))
        );
        assert_eq!(
            seen(7, &syncing, None).last_sync_time,
            None,
            "0: no sync yet"
        );
        // OK, but never synced: configured only.
        assert!(!seen(7, &replication(ReplicationStatus::Ok), None).protected);
        let behind = ReplicationInfo {
            current_rpo_violation: Some(12),
            ..replication(ReplicationStatus::RpoViolation)
        };
        // Never synced: configured, not protected, whatever the RPO says.
        let s = seen(7, &behind, None);
        assert!(s.rpo_violation && !s.protected);
        // Synced, then behind: it was OK in between; protected, the violation flagged.
        let s = seen(
            7,
            &ReplicationInfo {
                last_sync_time: 1_796_000_000_000,
                ..behind
            },
            Some(40),
        );
        assert!(s.rpo_violation && s.protected);
        // The sync ended before anyone looked: the job's own disks say what it copied.
        assert_eq!(s.bytes_total, Some(40));
    }

    #[test]
    fn a_fault_is_told_in_the_appliances_words() {
        let broken = ReplicationInfo {
            last_group_error: Some(TaskError {
                message: Some("Disk 2 of the VM is inaccessible".into()),
                details: None,
            }),
            ..replication(ReplicationStatus::Error)
        };
        assert_eq!(
            seen(1, &broken, None).error.as_deref(),
            Some("Disk 2 of the VM is inaccessible")
        );
        let misconfigured = ReplicationInfo {
            configuration_state: Some(ConfigurationState::Error),
            configuration_error: Some(TaskError {
                message: Some("Datastore ds-1 not found".into()),
                details: None,
            }),
            ..replication(ReplicationStatus::Configuring)
        };
        assert_eq!(
            seen(1, &misconfigured, None).error.as_deref(),
            Some("Datastore ds-1 not found")
        );
        assert_eq!(
            seen(1, &replication(ReplicationStatus::NotActive), None).error,
            None
        );
    }
}
