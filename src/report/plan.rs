//! The "plan" report: what `vrbulk plan` found would happen to each unfinished job of a batch
//! (configure where, skip or fail and why) and the appliance's capacity it counted by, in the
//! same formats as a batch report so it can be attached to the change request before anything
//! is configured.

use serde::Serialize;

use super::{BatchHeader, UtcTime};
use crate::queue::{Batch, Job};
use crate::workflow::{PlanAction, PlanCapacity, PlanRow};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct PlanCounts {
    pub configure: u64,
    pub skip: u64,
    pub fail: u64,
}

/// A dry run of a batch, ready to render.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlanReport {
    pub generated_at: UtcTime,
    pub batch: BatchHeader,
    pub counts: PlanCounts,
    /// Jobs with at least one warning (for example a datastore that looks short of space).
    pub warnings: u64,
    /// Capacity of everything that would be configured, in bytes.
    pub capacity_bytes: i64,
    /// API calls the plan cost (all reads; nothing is configured).
    pub api_calls: u64,
    /// The appliance's capacity the plan counted room by, when the plan says.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub capacity: Option<PlanCapacity>,
    /// In job order.
    pub jobs: Vec<PlanRow>,
    /// Per pairing the VMs to configure go over: when they would be protected, by what a run
    /// of this queue measured of its link (issue 19).
    pub link: Vec<super::WaveForecast>,
}

impl PlanReport {
    /// The plan of `batch`: `rows` as the planner decided them, `jobs` the batch's jobs (for
    /// the header's change tickets), made at `now` (Unix ms).
    pub fn new(
        batch: &Batch,
        jobs: &[Job],
        mut rows: Vec<PlanRow>,
        api_calls: u64,
        now: i64,
    ) -> PlanReport {
        rows.sort_by_key(|r| r.job_id);
        let mut counts = PlanCounts::default();
        for row in &rows {
            match row.action {
                PlanAction::Configure => counts.configure += 1,
                PlanAction::Skip => counts.skip += 1,
                PlanAction::Fail => counts.fail += 1,
            }
        }
        PlanReport {
            generated_at: UtcTime(now),
            batch: BatchHeader::new(batch, jobs),
            counts,
            warnings: rows.iter().filter(|r| !r.warnings.is_empty()).count() as u64,
            capacity_bytes: rows
                .iter()
                .filter(|r| r.action == PlanAction::Configure)
                .map(|r| r.capacity_bytes)
                .sum(),
            api_calls,
            capacity: None,
            jobs: rows,
            link: Vec::new(),
        }
    }

    /// The plan with the capacity it counted room by.
    pub fn with_capacity(self, capacity: PlanCapacity) -> PlanReport {
        PlanReport {
            capacity: Some(capacity),
            ..self
        }
    }

    /// The plan with its prediction of the wave's syncs, per pairing.
    pub fn with_link(self, link: Vec<super::WaveForecast>) -> PlanReport {
        PlanReport { link, ..self }
    }

    pub fn count(&self, action: PlanAction) -> u64 {
        match action {
            PlanAction::Configure => self.counts.configure,
            PlanAction::Skip => self.counts.skip,
            PlanAction::Fail => self.counts.fail,
        }
    }
}
