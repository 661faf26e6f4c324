//! What is left of a configure batch's wave, as the queue knows it: the bytes each VM not yet
//! protected still has to copy (what `status` predicts from, with [`super::forecast`]), and the
//! lookup and configure calls the VMs still to send will cost (what `run --until` holds against
//! the change window). Neither asks the appliance.

use std::collections::{BTreeMap, HashMap};

use crate::queue::{Job, JobState, Protection, Readiness, Step};

use super::protection::replicated_bytes;

/// The bytes each VM not yet protected still has to copy, as far as the queue knows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BytesLeft {
    /// One entry per VM that will sync: configured and syncing, or still to be sent.
    pub per_vm: Vec<u64>,
    /// VMs still to be sent whose size nobody looked up yet: not in `per_vm`.
    pub unknown: u64,
}

/// For `jobs` of a configure batch with their protection records: a syncing replication has
/// what the appliance last said it had left (its disks' size when it did not say), a VM sent
/// but not followed yet and a VM still to be sent their disks' size. A VM protected, in
/// error, powered off, paused, removed or whose job ended otherwise has nothing coming.
pub fn bytes_left(jobs: &[Job], protection: &[Protection]) -> BytesLeft {
    let records: HashMap<_, &Protection> = protection.iter().map(|p| (p.job, p)).collect();
    let mut left = BytesLeft::default();
    for j in jobs {
        let size = j
            .checkpoint
            .disks
            .as_deref()
            .map(|d| replicated_bytes(d).max(0) as u64);
        let bytes = match records.get(&j.id) {
            Some(p) if p.readiness() != Readiness::Syncing => continue,
            Some(p) => match (p.bytes_done, p.bytes_total) {
                (Some(done), Some(total)) => Some((total - done).max(0) as u64),
                _ => size,
            },
            None if j.state == JobState::Succeeded => size,
            None if j.state.is_terminal() => continue,
            None => size,
        };
        match bytes {
            Some(b) => left.per_vm.push(b),
            None => left.unknown += 1,
        }
    }
    left
}

/// The calls a run still has to send to configure a batch's wave, its polls left aside.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WaveCalls {
    /// VMs not configured yet whose configure call is still to be sent.
    pub vms: u64,
    /// Lookup calls for the VMs not looked up yet, `lookup_group` a call per pairing: at
    /// most that many, as a run lists the inventory instead when that takes fewer.
    pub lookups: u64,
    /// Configure calls, `submit_group` specs a call per pairing.
    pub configures: u64,
}

impl WaveCalls {
    /// Every call counted.
    pub fn total(&self) -> u64 {
        self.lookups + self.configures
    }
}

/// The calls the unfinished jobs of `jobs` not yet sent still need, grouped per pairing as a
/// run groups them (a lookup or configure call never mixes pairings). Retries, the disks of a
/// VM a listing left out and the polls that follow the tasks come on top.
pub fn wave_calls(jobs: &[Job], lookup_group: usize, submit_group: usize) -> WaveCalls {
    // Per pairing as the rows name it: (not looked up, not sent).
    let mut per_pairing: BTreeMap<Option<&str>, (u64, u64)> = BTreeMap::new();
    for j in jobs
        .iter()
        .filter(|j| !j.state.is_terminal() && j.step <= Step::Submit && !j.in_doubt)
    {
        let counts = per_pairing.entry(j.spec.pairing.as_deref()).or_default();
        counts.1 += 1;
        if j.step == Step::ResolveVm && j.checkpoint.disks.is_none() {
            counts.0 += 1;
        }
    }
    let calls = |n: u64, group: usize| n.div_ceil(group.max(1) as u64);
    per_pairing
        .values()
        .fold(WaveCalls::default(), |mut w, &(lookup, send)| {
            w.vms += send;
            w.lookups += calls(lookup, lookup_group);
            w.configures += calls(send, submit_group);
            w
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queue::{Checkpoint, Queue, ReplicationSeen};
    use crate::vr::model::VmDisk;

    const GIB_KB: i64 = 1 << 20;

    fn disks(gib: i64) -> Vec<VmDisk> {
        serde_json::from_value(serde_json::json!([
            { "vm_id": "vm-1", "device_key": 2000, "label": "Hard disk 1", "capacity": gib * GIB_KB,
              "supported_for_replication": true },
            { "vm_id": "vm-1", "device_key": 2001, "label": "Hard disk 2", "capacity": 100 * GIB_KB,
              "supported_for_replication": false }
        ]))
        .unwrap()
    }

    /// Seven jobs: a, b configured (a syncing with 30 of 40 GiB copied, b protected), c
    /// configured and not followed, d failed, e looked up and waiting, f and g not looked up.
    fn wave() -> (Queue, Vec<Job>) {
        let mut q = Queue::open_in_memory().unwrap();
        let names = ["a", "b", "c", "d", "e", "f", "g"];
        let specs: Vec<_> = names.iter().map(|n| crate::queue::tests::spec(n)).collect();
        let batch = q
            .create_batch(&crate::queue::tests::new_batch(), &specs)
            .unwrap();
        let lease = std::time::Duration::from_secs(60);
        let claimed = q.claim(Some(batch), 5, "w", lease).unwrap();
        for (i, gib) in [(0, 40), (1, 20), (2, 10)] {
            let l = claimed[i].lease().unwrap();
            let c = Checkpoint {
                disks: Some(disks(gib)),
                ..Checkpoint::default()
            };
            q.checkpoint(&l, Step::ResolveTarget, &c).unwrap();
            q.succeed(&l, Some(&format!("GID-{i}")), "configured")
                .unwrap();
        }
        q.fail(&claimed[3].lease().unwrap(), "no", None).unwrap();
        let e = claimed[4].lease().unwrap();
        let c = Checkpoint {
            disks: Some(disks(5)),
            ..Checkpoint::default()
        };
        q.checkpoint(&e, Step::ResolveTarget, &c).unwrap();
        let jobs = q.jobs(batch).unwrap();
        let seen = |job: &Job, status: &str, done: i64, total: i64| ReplicationSeen {
            job: job.id,
            replication_id: format!("GID-{}", job.id),
            status: status.into(),
            configuration_state: None,
            bytes_done: Some(done << 30),
            bytes_total: Some(total << 30),
            rpo_violation: false,
            error: None,
            protected: status == "OK",
            last_sync_time: None,
            last_sync_duration: None,
            replication_server: None,
        };
        q.record_protection(&[
            seen(&jobs[0], "INITIAL_FULL_SYNC", 30, 40),
            seen(&jobs[1], "OK", 20, 20),
        ])
        .unwrap();
        let jobs = q.jobs(batch).unwrap();
        (q, jobs)
    }

    #[test]
    fn what_is_left_is_what_the_appliance_said_else_the_disks_and_nothing_for_the_ended() {
        let (q, jobs) = wave();
        let protection = q.protection(jobs[0].batch_id).unwrap();
        let left = bytes_left(&jobs, &protection);
        // a: 10 GiB left; c and e: their supported disk; f and g: not known yet.
        assert_eq!(left.per_vm, [10 << 30, 10 << 30, 5 << 30]);
        assert_eq!(left.unknown, 2);
    }

    #[test]
    fn the_calls_left_are_the_lookups_and_configures_not_sent() {
        let (_q, jobs) = wave();
        // e, f and g are still to be sent; f and g still to be looked up.
        let w = wave_calls(&jobs, 50, 20);
        assert_eq!(
            w,
            WaveCalls {
                vms: 3,
                lookups: 1,
                configures: 1,
            }
        );
        assert_eq!(w.total(), 2);
        let w = wave_calls(&jobs, 1, 2);
        assert_eq!((w.lookups, w.configures, w.total()), (2, 2, 4));
    }
}
