//! One replication as the simulator keeps it ([`SimReplication`]: settings, replica disks, the
//! facts its status follows from) and the registry of them all ([`Replications`], in creation
//! order). How a record looks through the API at an instant is decided here, in one place:
//! [`SimReplication::info_at`]. How records change over time is `lifecycle`'s business, what
//! day-2 operations do to them `operations`'.

use std::collections::{BTreeMap, HashMap};

use crate::vr::model::{
    CompoundReplicationStatus, ConfigurationState, ReplicationInfo, ReplicationStatus,
    SyncProgressData, TaskError,
};

/// A disk of the replicated VM as the replication has it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ReplicaDisk {
    pub device_key: i32,
    pub enabled: bool,
    pub datastore_id: String,
    pub storage_policy_id: Option<String>,
    /// The source disk's capacity in bytes (the spec's `VmDisk.capacity` is in KiB).
    pub bytes: u64,
}

/// A full copy of disks over the link: the initial full sync, or the full sync of disks that a
/// reconfigure enabled later.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Transfer {
    pub initial: bool,
    pub total: f64,
    pub done: f64,
    /// When it first went onto the link (seconds on the world's clock).
    pub started: Option<f64>,
}

impl Transfer {
    pub fn remaining(&self) -> f64 {
        (self.total - self.done).max(0.0)
    }

    fn progress(&self) -> SyncProgressData {
        let percent = if self.total > 0.0 {
            (self.done / self.total * 100.0).floor().clamp(0.0, 100.0) as i32
        } else {
            100
        };
        SyncProgressData {
            progress: Some(percent),
            // Nothing is compared by checksum: the simulator models no seeds.
            checksum_current: Some(0),
            checksum_total: Some(0),
            transferred_current: Some(self.done.floor() as i64),
            transferred_total: Some(self.total.round() as i64),
        }
    }
}

/// Why a replication is in `ERROR` after its configure task succeeded.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Fault {
    /// `configuration_state: ERROR` with `configuration_error`.
    Configuration(TaskError),
    /// The group's own fault: configuration `OK`, `last_group_error` set.
    Group(TaskError),
}

/// A replication from the moment its configure task is accepted (listed only once the task
/// runs) until an unconfigure or destroy ends it.
#[derive(Debug, Clone)]
pub(crate) struct SimReplication {
    /// Ids and settings; the status fields are filled in by [`SimReplication::info_at`].
    pub info: ReplicationInfo,
    pub vm_id: String,
    pub vm_name: String,
    pub disks: Vec<ReplicaDisk>,
    /// Its configure task (an index into the world's tasks) until that task ends.
    pub configuring: Option<usize>,
    /// The day-2 operation task in flight, if any: one at a time.
    pub operation: Option<usize>,
    /// The VM's power state, kept here so that the link need not search the inventory.
    pub powered_on: bool,
    pub paused: bool,
    pub fault: Option<Fault>,
    pub transfer: Option<Transfer>,
    /// Falls into RPO violation one RPO after its initial sync ends.
    pub rpo_fate: bool,
    /// In RPO violation from this instant on (seconds on the world's clock) until a sync.
    pub rpo_violated_from: Option<f64>,
}

/// What a record's status depends on beyond itself, at the instant it is looked at.
#[derive(Debug, Clone, Copy)]
pub(crate) struct At {
    /// Seconds on the world's clock.
    pub t: f64,
    /// Simulated seconds per real second.
    pub scale: f64,
    /// Its sync-now task is running.
    pub syncing: bool,
}

impl SimReplication {
    pub fn configured(&self) -> bool {
        self.configuring.is_none()
    }

    /// Copying over the link right now: configured, healthy, not paused, VM powered on, data
    /// left to copy.
    pub fn on_link(&self) -> bool {
        self.configured()
            && self.fault.is_none()
            && !self.paused
            && self.powered_on
            && self.transfer.is_some()
    }

    pub fn in_rpo_violation(&self, t: f64) -> bool {
        self.rpo_violated_from.is_some_and(|from| t >= from)
    }

    /// The spec's status, the first that applies, in the order an appliance reports them.
    pub fn status(&self, at: At) -> ReplicationStatus {
        if !self.configured() {
            ReplicationStatus::Configuring
        } else if self.fault.is_some() {
            ReplicationStatus::Error
        } else if self.paused {
            ReplicationStatus::Paused
        } else if !self.powered_on {
            ReplicationStatus::NotActive
        } else if let Some(t) = &self.transfer {
            if t.initial {
                ReplicationStatus::InitialFullSync
            } else {
                ReplicationStatus::FullSync
            }
        } else if at.syncing {
            ReplicationStatus::Sync
        } else if self.in_rpo_violation(at.t) {
            ReplicationStatus::RpoViolation
        } else {
            ReplicationStatus::Ok
        }
    }

    /// The spec's `ReplicationInfo` as of `at`.
    pub fn info_at(&self, at: At) -> ReplicationInfo {
        let mut r = self.info.clone();
        let status = self.status(at);
        let violated = status == ReplicationStatus::RpoViolation;
        r.status = Some(CompoundReplicationStatus {
            status: Some(status),
            rpo_violation: Some(violated),
        });
        r.configuration_state = Some(match (&self.fault, self.configured()) {
            (_, false) => ConfigurationState::InProgress,
            (Some(Fault::Configuration(_)), true) => ConfigurationState::Error,
            _ => ConfigurationState::Ok,
        });
        r.configuration_error = match &self.fault {
            Some(Fault::Configuration(e)) => Some(e.clone()),
            _ => None,
        };
        r.last_group_error = match &self.fault {
            Some(Fault::Group(e)) => Some(e.clone()),
            _ => None,
        };
        if self.configured() {
            r.sync_progress = self.transfer.as_ref().map(Transfer::progress);
            // Simulated minutes: the time scale speeds the RPO clock up as it does the link.
            r.current_rpo_violation = Some(match self.rpo_violated_from {
                Some(from) if violated => ((at.t - from) * at.scale / 60.0).floor() as i64,
                _ => 0,
            });
        }
        r
    }

    /// Bytes of the enabled disks: what a full sync of the replication copies.
    pub fn enabled_bytes(&self) -> u64 {
        self.disks
            .iter()
            .filter(|d| d.enabled)
            .map(|d| d.bytes)
            .sum()
    }
}

/// Every replication, in the order they were created; at most one per VM.
#[derive(Debug, Default)]
pub(crate) struct Replications {
    by_seq: BTreeMap<u64, SimReplication>,
    seq_by_id: HashMap<String, u64>,
    seq_by_vm: HashMap<String, u64>,
    next_seq: u64,
}

impl Replications {
    pub fn insert(&mut self, r: SimReplication) {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.seq_by_id.insert(r.info.id.clone(), seq);
        self.seq_by_vm.insert(r.vm_id.clone(), seq);
        self.by_seq.insert(seq, r);
    }

    pub fn remove(&mut self, id: &str) -> Option<SimReplication> {
        let seq = self.seq_by_id.remove(id)?;
        let r = self.by_seq.remove(&seq)?;
        if self.seq_by_vm.get(&r.vm_id) == Some(&seq) {
            self.seq_by_vm.remove(&r.vm_id);
        }
        Some(r)
    }

    pub fn get(&self, id: &str) -> Option<&SimReplication> {
        self.seq_by_id.get(id).and_then(|s| self.by_seq.get(s))
    }

    pub fn get_mut(&mut self, id: &str) -> Option<&mut SimReplication> {
        let seq = self.seq_by_id.get(id)?;
        self.by_seq.get_mut(seq)
    }

    pub fn of_vm(&self, vm_id: &str) -> Option<&SimReplication> {
        self.seq_by_vm.get(vm_id).and_then(|s| self.by_seq.get(s))
    }

    pub fn of_vm_mut(&mut self, vm_id: &str) -> Option<&mut SimReplication> {
        let seq = self.seq_by_vm.get(vm_id)?;
        self.by_seq.get_mut(seq)
    }

    pub fn iter(&self) -> impl Iterator<Item = &SimReplication> {
        self.by_seq.values()
    }

    pub fn iter_mut(&mut self) -> impl Iterator<Item = &mut SimReplication> {
        self.by_seq.values_mut()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn replication(vm: &str) -> SimReplication {
        SimReplication {
            info: ReplicationInfo {
                id: format!("GID-{vm}"),
                ..ReplicationInfo::default()
            },
            vm_id: vm.into(),
            vm_name: vm.into(),
            disks: vec![ReplicaDisk {
                device_key: 2000,
                enabled: true,
                datastore_id: "ds".into(),
                storage_policy_id: None,
                bytes: 1000,
            }],
            configuring: None,
            operation: None,
            powered_on: true,
            paused: false,
            fault: None,
            transfer: Some(Transfer {
                initial: true,
                total: 1000.0,
                done: 250.0,
                started: Some(0.0),
            }),
            rpo_fate: false,
            rpo_violated_from: None,
        }
    }

    const AT: At = At {
        t: 10.0,
        scale: 60.0,
        syncing: false,
    };

    #[test]
    fn an_initial_sync_shows_bytes_of_total_and_its_percentage() {
        let info = replication("vm-1").info_at(AT);
        let status = info.status.unwrap();
        assert_eq!(status.status, Some(ReplicationStatus::InitialFullSync));
        assert_eq!(status.rpo_violation, Some(false));
        assert_eq!(info.configuration_state, Some(ConfigurationState::Ok));
        let p = info.sync_progress.unwrap();
        assert_eq!(
            (p.transferred_current, p.transferred_total, p.progress),
            (Some(250), Some(1000), Some(25))
        );
    }

    #[test]
    fn status_follows_the_first_fact_that_applies() {
        let mut r = replication("vm-1");
        r.powered_on = false;
        assert_eq!(r.status(AT), ReplicationStatus::NotActive);
        r.paused = true;
        assert_eq!(r.status(AT), ReplicationStatus::Paused);
        r.fault = Some(Fault::Group(TaskError::default()));
        assert_eq!(r.status(AT), ReplicationStatus::Error);
        r.configuring = Some(0);
        assert_eq!(r.status(AT), ReplicationStatus::Configuring);
    }

    #[test]
    fn an_rpo_violation_counts_simulated_minutes() {
        let mut r = replication("vm-1");
        r.transfer = None;
        r.rpo_violated_from = Some(5.0);
        let info = r.info_at(AT);
        let status = info.status.unwrap();
        assert_eq!(status.status, Some(ReplicationStatus::RpoViolation));
        assert_eq!(status.rpo_violation, Some(true));
        // 5 real seconds at 60x: 5 simulated minutes.
        assert_eq!(info.current_rpo_violation, Some(5));
        assert!(info.sync_progress.is_none());
    }

    #[test]
    fn the_registry_keeps_creation_order_and_frees_the_vm_on_removal() {
        let mut all = Replications::default();
        all.insert(replication("b"));
        all.insert(replication("a"));
        let order: Vec<_> = all.iter().map(|r| r.vm_id.as_str()).collect();
        assert_eq!(order, ["b", "a"]);
        assert!(all.remove("GID-b").is_some());
        assert!(all.of_vm("b").is_none());
        assert!(all.get("GID-a").is_some());
    }
}
