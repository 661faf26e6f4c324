//! Admitting a wave at the pace the replication link can carry (`run --max-initial-syncs N`):
//! new VMs are submitted only while fewer than N replications of the pairing are in their initial
//! sync, counted from what the appliance reports (its whole replication list, so other batches
//! and other tools count too) plus this run's own submits that the list does not show yet.
//! Configuring hundreds of VMs at once makes every initial sync crawl (DESIGN.md, "Operations and
//! the life of a replication"); a steady pace protects the first VMs sooner and the wave no later.
//!
//! The same list, read once a round, also tells where this batch's configured VMs stand: it
//! records their protection, as `watch` does, and serves the round's verify. Only a configure
//! batch admits: no other kind of work starts an initial sync.

use std::collections::{HashMap, HashSet};

use tokio::time::Instant;

use super::held::HeldJob;
use super::{RunError, RunOptions, Runner, SubmitOrder};
use crate::queue::{Job, JobId, JobState, ReplicationSeen, Step};
use crate::vr::error::error_chain;
use crate::vr::model::{ConfigureReplicationSpec, ReplicationInfo};
use crate::workflow::protection::{in_initial_sync, replicated_bytes, seen};
use crate::workflow::spec::spec_bytes;
use crate::workflow::Discovery;

/// A pairing's replications as the appliance listed them in one round.
#[derive(Debug, Clone)]
struct Census {
    taken: Instant,
    /// VM ids whose replication is configuring or in its initial sync.
    in_sync: HashSet<String>,
    by_vm: HashMap<String, ReplicationInfo>,
}

impl Census {
    fn of(replications: Vec<ReplicationInfo>) -> Census {
        let in_sync = replications
            .iter()
            .filter(|r| in_initial_sync(r))
            .filter_map(|r| r.vm_id.clone())
            .collect();
        Census {
            taken: Instant::now(),
            in_sync,
            by_vm: replications
                .into_iter()
                .filter_map(|r| Some((r.vm_id.clone()?, r)))
                .collect(),
        }
    }
}

/// A configure run's admission: the latest census of each pairing, and the batch's configured
/// VMs whose protection each census records.
#[derive(Debug, Default)]
pub(super) struct Admission {
    censuses: HashMap<String, Census>,
    /// The batch's configured VMs (by VM id), with the bytes their initial sync copies.
    configured: HashMap<String, (JobId, Option<i64>)>,
}

impl Admission {
    /// The admission of a configure batch whose jobs are `jobs`: those that succeeded before
    /// this run are followed too.
    pub fn of(jobs: &[Job]) -> Admission {
        let configured = jobs
            .iter()
            .filter(|j| j.state == JobState::Succeeded)
            .filter_map(|j| {
                let bytes = j.checkpoint.disks.as_deref().map(replicated_bytes);
                Some((j.checkpoint.vm_id.clone()?, (j.id, bytes)))
            })
            .collect();
        Admission {
            censuses: HashMap::new(),
            configured,
        }
    }

    /// Whether this run admits at a pace.
    pub fn admits(opts: &RunOptions) -> bool {
        opts.max_initial_syncs.is_some()
    }

    /// A held job was configured: its protection is recorded from the next census on.
    pub fn configured(&mut self, a: &HeldJob) {
        if let Some(vm) = &a.checkpoint.vm_id {
            let bytes = a.checkpoint.disks.as_deref().map(replicated_bytes);
            self.configured.insert(vm.clone(), (a.job.id, bytes));
        }
    }

    /// Lists the pairing's replications (all of them: the cap counts what the appliance
    /// reports) and records what it says of this batch's configured VMs. `None` when the read
    /// failed (it is tried again next round) or was abandoned.
    pub async fn take_census(
        &mut self,
        run: &mut Runner,
        disc: &Discovery,
    ) -> Result<Option<()>, RunError> {
        let pairing = disc.pairing_id().to_string();
        let Some(listed) = run
            .stop
            .guarded(run.client.replications(&pairing, None))
            .await
        else {
            return Ok(None);
        };
        let census = match listed {
            Ok(reps) => Census::of(reps),
            Err(e) => {
                tracing::warn!(pairing = %pairing, error = %error_chain(&e), "could not count the initial syncs");
                return Ok(None);
            }
        };
        let seen_now: Vec<ReplicationSeen> = self
            .configured
            .iter()
            .filter_map(|(vm, (job, bytes))| Some(seen(*job, census.by_vm.get(vm)?, *bytes)))
            .collect();
        if !seen_now.is_empty() {
            run.db.run(move |q| q.record_protection(&seen_now)).await?;
        }
        self.censuses.insert(pairing, census);
        Ok(Some(()))
    }

    /// Of `ready`, the jobs to submit now on the pairing, in the run's order; the others wait.
    /// The pairing's first census is taken here.
    pub async fn admit(
        &mut self,
        run: &mut Runner,
        disc: &Discovery,
        mut ready: Vec<(JobId, ConfigureReplicationSpec)>,
    ) -> Result<Vec<(JobId, ConfigureReplicationSpec)>, RunError> {
        let Some(cap) = run.opts.max_initial_syncs else {
            return Ok(ready);
        };
        if !self.censuses.contains_key(disc.pairing_id()) {
            self.take_census(run, disc).await?;
        }
        let Some(census) = self.censuses.get(disc.pairing_id()) else {
            return Ok(Vec::new());
        };
        // This run's submits that the list may not show yet count as syncing too.
        let mut in_sync: HashSet<&str> = census.in_sync.iter().map(String::as_str).collect();
        for a in run.held.values().filter(|a| is_in_flight(a, census)) {
            if let Some(vm) = a.checkpoint.vm_id.as_deref() {
                in_sync.insert(vm);
            }
        }
        let slots = cap.saturating_sub(in_sync.len());
        if run.opts.order == SubmitOrder::SmallestFirst {
            ready.sort_by_key(|(id, spec)| (spec_bytes(spec), *id));
        }
        ready.truncate(slots);
        Ok(ready)
    }

    /// The replications of `vm_ids` as a census of the pairing taken since `round` lists them:
    /// a verify in the same round needs no call of its own.
    pub fn fresh(
        &self,
        pairing: &str,
        round: Instant,
        vm_ids: &[String],
    ) -> Option<HashMap<String, ReplicationInfo>> {
        let census = self.censuses.get(pairing).filter(|c| c.taken >= round)?;
        Some(
            vm_ids
                .iter()
                .filter_map(|vm| Some((vm.clone(), census.by_vm.get(vm)?.clone())))
                .collect(),
        )
    }
}

/// A held job whose configure was sent and whose replication the census does not show syncing
/// or done yet.
fn is_in_flight(a: &HeldJob, census: &Census) -> bool {
    let sent = a.in_doubt || matches!(a.step, Step::AwaitTask | Step::Verify);
    sent && a
        .checkpoint
        .vm_id
        .as_ref()
        .is_none_or(|vm| !census.by_vm.contains_key(vm))
}
