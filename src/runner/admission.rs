//! Admitting a wave at the pace the replication link can carry (`run --max-initial-syncs N`):
//! new VMs are submitted only while fewer than N replications of the pairing are in their initial
//! sync, counted from what the appliance reports (its whole replication list, so other batches
//! and other tools count too) plus this run's own submits that the list does not show yet.
//! Configuring hundreds of VMs at once makes every initial sync crawl (DESIGN.md, "Operations and
//! the life of a replication"); a steady pace protects the first VMs sooner and the wave no later.
//!
//! The same list, read once a round, also tells where this batch's configured VMs stand: it
//! records their protection, as `watch` does, and serves the round's verify.

use std::collections::{HashMap, HashSet};
use std::str::FromStr;

use tokio::time::Instant;

use super::{Active, RunError, Runner};
use crate::queue::{JobId, ReplicationSeen, Step};
use crate::vr::error::error_chain;
use crate::vr::model::{ConfigureReplicationSpec, ReplicationInfo};
use crate::workflow::protection::{in_initial_sync, seen};
use crate::workflow::spec::spec_bytes;
use crate::workflow::Discovery;

/// Which waiting VMs go first when a slot frees.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SubmitOrder {
    /// As the batch was imported.
    #[default]
    Input,
    /// The fewest bytes to copy first: the most VMs protected soonest.
    SmallestFirst,
}

impl SubmitOrder {
    pub fn as_str(self) -> &'static str {
        match self {
            SubmitOrder::Input => "input",
            SubmitOrder::SmallestFirst => "smallest-first",
        }
    }
}

impl FromStr for SubmitOrder {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "input" => Ok(SubmitOrder::Input),
            "smallest-first" | "smallest_first" => Ok(SubmitOrder::SmallestFirst),
            other => Err(format!("`{other}`: expected input or smallest-first")),
        }
    }
}

/// A pairing's replications as the appliance listed them in one round.
#[derive(Debug, Clone)]
pub(super) struct Census {
    pub taken: Instant,
    /// VM ids whose replication is configuring or in its initial sync.
    pub in_sync: HashSet<String>,
    pub by_vm: HashMap<String, ReplicationInfo>,
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

impl Runner {
    /// Whether this run admits at a pace. A local-only removal starts no sync, and the census
    /// would need the target site it runs without.
    pub(super) fn admitting(&self) -> bool {
        self.opts.max_initial_syncs.is_some() && !self.local_only
    }

    /// Held jobs ready to submit that wait for a slot.
    pub(super) fn waiting_for_admission(&self) -> usize {
        if !self.admitting() {
            return 0;
        }
        self.active
            .values()
            .filter(|a| !a.in_doubt && a.step == Step::Submit)
            .count()
    }

    /// Lists the pairing's replications (all of them: the cap counts what the appliance
    /// reports) and records what it says of this batch's configured VMs. `None` when the read
    /// failed (it is tried again next round) or was abandoned.
    pub(super) async fn take_census(&mut self, disc: &Discovery) -> Result<Option<()>, RunError> {
        let pairing = disc.pairing_id().to_string();
        let Some(listed) = self.guarded(self.client.replications(&pairing, None)).await else {
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
            self.db.run(move |q| q.record_protection(&seen_now)).await?;
        }
        self.censuses.insert(pairing, census);
        Ok(Some(()))
    }

    /// Of `ready`, the jobs to submit now on `pairing`, in the run's order; the others wait.
    pub(super) fn admit(
        &self,
        pairing: &str,
        mut ready: Vec<(JobId, ConfigureReplicationSpec)>,
    ) -> Vec<(JobId, ConfigureReplicationSpec)> {
        let Some(cap) = self.opts.max_initial_syncs else {
            return ready;
        };
        let Some(census) = self.censuses.get(pairing) else {
            return Vec::new();
        };
        // This run's submits that the list may not show yet count as syncing too.
        let mut in_sync: HashSet<&str> = census.in_sync.iter().map(String::as_str).collect();
        for a in self.active.values().filter(|a| is_in_flight(a, census)) {
            if let Some(vm) = a.checkpoint.vm_id.as_deref() {
                in_sync.insert(vm);
            }
        }
        let slots = cap.saturating_sub(in_sync.len());
        if self.opts.order == SubmitOrder::SmallestFirst {
            ready.sort_by_key(|(id, spec)| (spec_bytes(spec), *id));
        }
        ready.truncate(slots);
        ready
    }
}

/// A held job whose configure was sent and whose replication the census does not show syncing
/// or done yet.
fn is_in_flight(a: &Active, census: &Census) -> bool {
    let sent = a.in_doubt || matches!(a.step, Step::AwaitTask | Step::Verify);
    sent && a
        .checkpoint
        .vm_id
        .as_ref()
        .is_none_or(|vm| !census.by_vm.contains_key(vm))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_order_is_read_from_its_words() {
        assert_eq!("smallest-first".parse(), Ok(SubmitOrder::SmallestFirst));
        assert_eq!(" Input ".parse(), Ok(SubmitOrder::Input));
        assert!("largest-first".parse::<SubmitOrder>().is_err());
    }
}
