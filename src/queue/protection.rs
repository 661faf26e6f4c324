//! The protection record of configured jobs: what the appliance last said of each job's
//! replication (status, initial-sync bytes, RPO health, the VR server it lives on, and in its own
//! words when its first sync ended and how long that took), when vrbulk first saw the VM
//! protected, and an append-only log of the replication's status changes (not of every progress
//! tick). `run` and `watch` write it; `status` and the report read it. Whether a sighting means
//! "protected" is the workflow's judgement, handed in; where a configured VM stands is
//! [`Protection::readiness`], and [`ReadinessCounts::tally`] counts a batch by it.
//!
//! The record is read together with what vrbulk's own day-2 batches did to each replication
//! since ([`Operated`]): a replication an undo removed is "unconfigured by batch N", not a
//! fault, even if nothing looked at it since; one the appliance stopped listing while no batch
//! of vrbulk's removed it is [`Readiness::Missing`], a problem; a pause or resume that took
//! effect after the last sighting says more than that sighting.

use std::collections::{BTreeMap, BTreeSet};

use rusqlite::{params, OptionalExtension};
use serde::Serialize;

use super::{BatchId, JobId, Queue, Result};
use crate::domain::Operation;

/// The status vrbulk records when the appliance no longer lists a replication it was
/// following: vrbulk's word, not the spec's (the appliance has nothing to say of it any more).
pub const NOT_LISTED: &str = "NOT_LISTED";

/// What the queue last recorded of one job's replication (times in Unix ms).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Protection {
    pub job: JobId,
    pub replication_id: String,
    /// The spec's `ReplicationStatus`, in the appliance's words.
    pub status: String,
    pub configuration_state: Option<String>,
    pub bytes_done: Option<i64>,
    pub bytes_total: Option<i64>,
    pub rpo_violation: bool,
    /// The appliance's words when the replication is in error.
    pub error: Option<String>,
    /// When the job's configure succeeded (or, for a replication found later, first seen).
    pub configured_at: i64,
    /// The first time vrbulk saw it protected (vrbulk's clock); kept when it later falls
    /// behind its RPO.
    pub protected_at: Option<i64>,
    pub updated_at: i64,
    /// When the appliance says its first sync ended: its `last_sync_time` at the first sighting
    /// after that sync (Unix ms, the appliance's clock).
    pub synced_at: Option<i64>,
    /// How long that sync took, by the appliance (`last_sync_duration`, seconds).
    pub sync_duration_s: Option<i64>,
    /// The VR server the appliance put it on (`replication_server_name`), as last seen.
    pub replication_server: Option<String>,
    /// What vrbulk's own day-2 batches did to it since.
    pub operated: Operated,
    /// Something looked at it: `false` for a replication a vrbulk undo removed before `run`
    /// or `watch` ever saw it (its record holds only what the queue knows: the job's
    /// replication, configure time, and the undo).
    pub seen: bool,
}

/// What vrbulk's own operation batches did to one configured job's replication: what its
/// record alone cannot say (nothing may have looked since).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Operated {
    /// The unconfigure batch that removed it (its job succeeded: the appliance's task did).
    pub unconfigured_by: Option<BatchId>,
    /// An unconfigure batch whose job on it has not ended yet.
    pub unconfiguring_by: Option<BatchId>,
    /// The newest pause or resume of it that took effect.
    pub pause: Option<PauseMark>,
    /// A pause batch whose job on it has not ended yet (the appliance may show it paused
    /// before vrbulk has recorded its job done).
    pub pausing_by: Option<BatchId>,
}

/// A pause or resume that took effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PauseMark {
    /// A pause (else a resume).
    pub paused: bool,
    pub batch: BatchId,
    /// When its job succeeded (Unix ms).
    pub at: i64,
}

/// Where a configured VM stands, in the operator's words: what `status`, `watch` and the report
/// count and list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Readiness {
    /// Configured, not yet protected: being configured, or in its initial sync.
    Syncing,
    /// Seen protected (OK after a sync). It stays protected while it later falls behind its
    /// RPO; [`Protection::rpo_violation`] says so.
    Protected,
    /// The VM is powered off: nothing replicates until it is powered on.
    NotActive,
    /// The replication is in error, in the appliance's words.
    Error,
    /// Paused (by a vrbulk batch, or outside vrbulk): nothing replicates until a resume; not
    /// protected.
    Paused,
    /// The appliance no longer lists it and no vrbulk batch removed it: removed outside
    /// vrbulk, a problem.
    Missing,
    /// A vrbulk undo (an unconfigure batch) removed it: neither protected nor a fault.
    Unconfigured,
}

impl Readiness {
    pub const ALL: [Readiness; 7] = [
        Readiness::Syncing,
        Readiness::Protected,
        Readiness::NotActive,
        Readiness::Error,
        Readiness::Paused,
        Readiness::Missing,
        Readiness::Unconfigured,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Readiness::Syncing => "syncing",
            Readiness::Protected => "protected",
            Readiness::NotActive => "not active",
            Readiness::Error => "error",
            Readiness::Paused => "paused",
            Readiness::Missing => "no longer exists",
            Readiness::Unconfigured => "unconfigured",
        }
    }

    /// A problem to fix (`watch` exits 4): in error, or removed outside vrbulk.
    pub fn is_problem(self) -> bool {
        matches!(self, Readiness::Error | Readiness::Missing)
    }
}

impl Protection {
    pub fn readiness(&self) -> Readiness {
        if self.operated.unconfigured_by.is_some() {
            Readiness::Unconfigured
        } else if self.status == NOT_LISTED {
            Readiness::Missing
        } else if self.error.is_some()
            || self.status.starts_with("ERROR")
            || self.configuration_state.as_deref() == Some("ERROR")
        {
            Readiness::Error
        } else if self.paused() {
            Readiness::Paused
        } else if self.status.starts_with("NOT_ACTIVE") {
            Readiness::NotActive
        } else if self.protected_at.is_some() {
            Readiness::Protected
        } else {
            Readiness::Syncing
        }
    }

    /// Paused: by vrbulk's newest pause or resume when it took effect after the last sighting,
    /// else by what that sighting said.
    fn paused(&self) -> bool {
        match self.operated.pause {
            Some(mark) if mark.at > self.updated_at => mark.paused,
            _ => self.status == "PAUSED",
        }
    }

    /// The batch that paused it, when it is paused by vrbulk (not outside it): the newest
    /// pause that took effect, or one under way.
    pub fn paused_by(&self) -> Option<BatchId> {
        if self.readiness() != Readiness::Paused {
            return None;
        }
        self.operated
            .pausing_by
            .or(self.operated.pause.filter(|m| m.paused).map(|m| m.batch))
    }

    /// Where it stands in the operator's words, with who did it: `unconfigured by batch 4`,
    /// `paused by batch 5`, `paused outside vrbulk`, `no longer exists (removed outside
    /// vrbulk)`; the readiness's own word otherwise.
    pub fn readiness_words(&self) -> String {
        match self.readiness() {
            Readiness::Unconfigured => match self.operated.unconfigured_by {
                Some(b) => format!("unconfigured by batch {b}"),
                None => "unconfigured".into(),
            },
            Readiness::Paused => match self.paused_by() {
                Some(b) => format!("paused by batch {b}"),
                None => "paused outside vrbulk".into(),
            },
            Readiness::Missing => match self.operated.unconfiguring_by {
                Some(b) => format!("no longer exists (batch {b} is unconfiguring it)"),
                None => "no longer exists (removed outside vrbulk)".into(),
            },
            other => other.as_str().into(),
        }
    }

    /// When it became protected by the best clock there is: the appliance's end of its first
    /// sync when it said, else the moment vrbulk first saw it protected.
    pub fn protected_since(&self) -> Option<i64> {
        self.protected_at.map(|seen| self.synced_at.unwrap_or(seen))
    }
}

/// Where the configured VMs of a batch stand, counted by [`Readiness`]: what `status` shows and
/// the report's summary says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReadinessCounts {
    /// Configured jobs: those that succeeded, and any other whose replication has a record.
    pub configured: u64,
    /// Configured jobs whose replication has not been seen since (no record yet).
    pub not_followed: u64,
    /// Jobs with a record, per readiness; every readiness is present.
    pub counts: BTreeMap<Readiness, u64>,
    /// Protected VMs whose replication is now behind its RPO.
    pub rpo_violation: u64,
    /// Bytes copied of bytes to copy, over the VMs still syncing whose appliance said both.
    pub sync_bytes_done: i64,
    pub sync_bytes_total: i64,
    /// The newest sighting of any of them (Unix ms); `None` when none was seen.
    pub last_seen_at: Option<i64>,
    /// Unconfigured VMs per batch that unconfigured them.
    pub unconfigured_by: BTreeMap<BatchId, u64>,
    /// Paused VMs per batch that paused them; the other paused ones were paused outside vrbulk.
    pub paused_by: BTreeMap<BatchId, u64>,
}

impl ReadinessCounts {
    /// Counts `records` by readiness; `configured` names the jobs that succeeded, so that one
    /// without a record counts as not followed yet.
    pub fn tally(
        configured: impl IntoIterator<Item = JobId>,
        records: &[Protection],
    ) -> ReadinessCounts {
        let mut jobs: BTreeSet<JobId> = configured.into_iter().collect();
        let mut counts: BTreeMap<Readiness, u64> = Readiness::ALL.map(|r| (r, 0)).into();
        let (mut rpo_violation, mut sync_bytes_done, mut sync_bytes_total) = (0, 0i64, 0i64);
        let (mut unconfigured_by, mut paused_by) = (BTreeMap::new(), BTreeMap::new());
        for p in records {
            jobs.insert(p.job);
            let readiness = p.readiness();
            *counts.entry(readiness).or_default() += 1;
            match readiness {
                Readiness::Protected if p.rpo_violation => rpo_violation += 1,
                Readiness::Unconfigured => {
                    if let Some(b) = p.operated.unconfigured_by {
                        *unconfigured_by.entry(b).or_default() += 1;
                    }
                }
                Readiness::Paused => {
                    if let Some(b) = p.paused_by() {
                        *paused_by.entry(b).or_default() += 1;
                    }
                }
                Readiness::Syncing => {
                    if let (Some(done), Some(total)) = (p.bytes_done, p.bytes_total) {
                        // An appliance that reports more copied than there is to copy is
                        // done, not over 100 %.
                        sync_bytes_done = sync_bytes_done.saturating_add(done.min(total));
                        sync_bytes_total = sync_bytes_total.saturating_add(total);
                    }
                }
                _ => {}
            }
        }
        let configured = jobs.len() as u64;
        ReadinessCounts {
            configured,
            not_followed: configured.saturating_sub(records.len() as u64),
            counts,
            rpo_violation,
            sync_bytes_done,
            sync_bytes_total,
            last_seen_at: records
                .iter()
                .filter(|p| p.seen)
                .map(|p| p.updated_at)
                .max(),
            unconfigured_by,
            paused_by,
        }
    }

    /// VMs of `readiness`.
    pub fn count(&self, readiness: Readiness) -> u64 {
        self.counts.get(&readiness).copied().unwrap_or(0)
    }

    /// Configured VMs whose replication no vrbulk undo removed since: the ones that ought to
    /// be protected.
    pub fn still_configured(&self) -> u64 {
        self.configured
            .saturating_sub(self.count(Readiness::Unconfigured))
    }

    /// Every configured VM that no undo removed is protected (and no record is missing).
    pub fn all_protected(&self) -> bool {
        self.not_followed == 0 && self.count(Readiness::Protected) == self.still_configured()
    }

    /// VMs in error or removed outside vrbulk.
    pub fn problems(&self) -> u64 {
        Readiness::ALL
            .iter()
            .filter(|r| r.is_problem())
            .map(|r| self.count(*r))
            .sum()
    }

    /// Who paused the paused VMs: `by batch 5`, `2 by batch 5, 1 outside vrbulk`, `outside
    /// vrbulk`.
    pub fn paused_words(&self) -> String {
        by_batches(
            &self.paused_by,
            self.count(Readiness::Paused),
            "outside vrbulk",
        )
    }

    /// Who unconfigured the unconfigured VMs: `by batch 4`, `3 by batch 4, 2 by batch 6`.
    pub fn unconfigured_words(&self) -> String {
        by_batches(
            &self.unconfigured_by,
            self.count(Readiness::Unconfigured),
            "by no batch on record",
        )
    }
}

/// `by batch 5` when one batch did all `total`, else each batch's share, and what is left
/// said as `rest`.
fn by_batches(per_batch: &BTreeMap<BatchId, u64>, total: u64, rest: &str) -> String {
    let done: u64 = per_batch.values().sum();
    let left = total.saturating_sub(done);
    match (per_batch.len(), left) {
        (0, _) => rest.to_string(),
        (1, 0) => format!(
            "by batch {}",
            per_batch.keys().next().copied().unwrap_or_default()
        ),
        _ => {
            let mut parts: Vec<String> = per_batch
                .iter()
                .map(|(b, n)| format!("{n} by batch {b}"))
                .collect();
            if left > 0 {
                parts.push(format!("{left} {rest}"));
            }
            parts.join(", ")
        }
    }
}

/// What was just seen of one job's replication. Bytes the appliance no longer shows (a sync
/// that ended) keep their last value; a protected replication has copied all of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicationSeen {
    pub job: JobId,
    pub replication_id: String,
    pub status: String,
    pub configuration_state: Option<String>,
    pub bytes_done: Option<i64>,
    pub bytes_total: Option<i64>,
    pub rpo_violation: bool,
    pub error: Option<String>,
    /// The workflow judged the VM protected by what was seen.
    pub protected: bool,
    /// The appliance's `last_sync_time` (Unix ms, its clock), when it has had a sync.
    pub last_sync_time: Option<i64>,
    /// The appliance's `last_sync_duration`, in seconds.
    pub last_sync_duration: Option<i64>,
    /// The VR server the appliance says it lives on (`replication_server_name`).
    pub replication_server: Option<String>,
}

impl ReplicationSeen {
    /// A configured VM the appliance no longer lists although no vrbulk undo removed it:
    /// someone removed its replication outside vrbulk.
    pub fn not_listed(job: JobId, replication_id: Option<String>) -> ReplicationSeen {
        ReplicationSeen {
            job,
            replication_id: replication_id.unwrap_or_default(),
            status: NOT_LISTED.into(),
            configuration_state: None,
            bytes_done: None,
            bytes_total: None,
            rpo_violation: false,
            error: None,
            protected: false,
            last_sync_time: None,
            last_sync_duration: None,
            replication_server: None,
        }
    }
}

/// One change of a replication's status, as the log keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicationEvent {
    pub job: JobId,
    pub at: i64,
    /// `None` for the first status seen.
    pub from_status: Option<String>,
    pub to_status: String,
    pub message: Option<String>,
}

impl Queue {
    /// Records what was seen of these replications, in one transaction. A status that changed
    /// (or the first one) goes into the log; the returned events are those changes.
    pub fn record_protection(&mut self, seen: &[ReplicationSeen]) -> Result<Vec<ReplicationEvent>> {
        let now = self.now();
        let tx = self.write_tx()?;
        let mut changes = Vec::new();
        for s in seen {
            let before: Option<String> = tx
                .query_row(
                    "SELECT status FROM protection WHERE job_id = ?",
                    [s.job],
                    |r| r.get(0),
                )
                .optional()?;
            tx.prepare_cached(
                "INSERT INTO protection (job_id, replication_id, status, configuration_state, \
                 bytes_done, bytes_total, rpo_violation, error, configured_at, protected_at, \
                 updated_at, synced_at, sync_duration_s, replication_server) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, \
                         COALESCE((SELECT finished_at FROM jobs WHERE id = ?1), ?10), \
                         CASE WHEN ?9 THEN ?10 END, ?10, CASE WHEN ?9 THEN ?11 END, \
                         CASE WHEN ?9 THEN ?12 END, ?13) \
                 ON CONFLICT (job_id) DO UPDATE SET replication_id = ?2, status = ?3, \
                 configuration_state = ?4, \
                 bytes_done = COALESCE(?5, CASE WHEN ?9 THEN COALESCE(?6, bytes_total) END, \
                                       bytes_done), \
                 bytes_total = COALESCE(?6, bytes_total), \
                 rpo_violation = ?7, error = ?8, \
                 protected_at = COALESCE(protected_at, CASE WHEN ?9 THEN ?10 END), \
                 synced_at = CASE WHEN synced_at IS NULL AND ?9 THEN ?11 ELSE synced_at END, \
                 sync_duration_s = CASE WHEN synced_at IS NULL AND ?9 THEN ?12 \
                                        ELSE sync_duration_s END, \
                 replication_server = COALESCE(?13, replication_server), \
                 updated_at = ?10",
            )?
            .execute(params![
                s.job,
                s.replication_id,
                s.status,
                s.configuration_state,
                s.bytes_done,
                s.bytes_total,
                s.rpo_violation,
                s.error,
                s.protected,
                now,
                s.last_sync_time,
                s.last_sync_duration,
                s.replication_server,
            ])?;
            if before.as_deref() != Some(s.status.as_str()) {
                let event = ReplicationEvent {
                    job: s.job,
                    at: now,
                    from_status: before,
                    to_status: s.status.clone(),
                    message: Some(describe(s)),
                };
                tx.prepare_cached(
                    "INSERT INTO replication_events (job_id, at, from_status, to_status, message) \
                     VALUES (?, ?, ?, ?, ?)",
                )?
                .execute(params![
                    event.job,
                    event.at,
                    event.from_status,
                    event.to_status,
                    event.message
                ])?;
                changes.push(event);
            }
        }
        tx.commit()?;
        Ok(changes)
    }

    /// The protection record of every configured job of `batch` that has one, and of every
    /// one a vrbulk undo removed (seen or not), each with what vrbulk's day-2 batches did to it;
    /// in job order.
    pub fn protection(&self, batch: BatchId) -> Result<Vec<Protection>> {
        let operated = self.operated(batch)?;
        let mut stmt = self.conn.prepare_cached(
            "SELECT j.id, COALESCE(p.replication_id, j.replication_id, ''), \
             COALESCE(p.status, ''), p.configuration_state, p.bytes_done, p.bytes_total, \
             COALESCE(p.rpo_violation, 0), p.error, \
             COALESCE(p.configured_at, j.finished_at, j.updated_at), p.protected_at, \
             COALESCE(p.updated_at, j.finished_at, j.updated_at), p.synced_at, \
             p.sync_duration_s, p.replication_server, p.job_id IS NOT NULL \
             FROM jobs j LEFT JOIN protection p ON p.job_id = j.id \
             WHERE j.batch_id = ?1 AND (p.job_id IS NOT NULL OR j.id IN ( \
                 SELECT o.acts_on_job FROM jobs o JOIN batches b ON b.id = o.batch_id \
                 WHERE b.acts_on = ?1 AND b.operation = 'unconfigure' \
                 AND o.state = 'succeeded')) \
             ORDER BY j.id",
        )?;
        let rows = stmt.query_map([batch], |r| {
            Ok(Protection {
                job: r.get(0)?,
                replication_id: r.get(1)?,
                status: r.get(2)?,
                configuration_state: r.get(3)?,
                bytes_done: r.get(4)?,
                bytes_total: r.get(5)?,
                rpo_violation: r.get(6)?,
                error: r.get(7)?,
                configured_at: r.get(8)?,
                protected_at: r.get(9)?,
                updated_at: r.get(10)?,
                synced_at: r.get(11)?,
                sync_duration_s: r.get(12)?,
                replication_server: r.get(13)?,
                operated: Operated::default(),
                seen: r.get(14)?,
            })
        })?;
        let mut records = rows.collect::<rusqlite::Result<Vec<Protection>>>()?;
        for p in &mut records {
            if let Some(o) = operated.get(&p.job) {
                p.operated = o.clone();
            }
        }
        Ok(records)
    }

    /// What the operation batches on `batch` did to each of its jobs' replications: the undo
    /// that removed it (or is removing it), and the newest pause or resume that took effect.
    fn operated(&self, batch: BatchId) -> Result<BTreeMap<JobId, Operated>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT o.acts_on_job, b.operation, o.batch_id, o.state, o.finished_at \
             FROM jobs o JOIN batches b ON b.id = o.batch_id \
             WHERE b.acts_on = ? AND o.acts_on_job IS NOT NULL \
             AND b.operation IN ('unconfigure', 'pause', 'resume') \
             AND o.state IN ('succeeded', 'pending', 'running', 'retryable') \
             ORDER BY o.finished_at, o.id",
        )?;
        let mut rows = stmt.query([batch])?;
        let mut operated: BTreeMap<JobId, Operated> = BTreeMap::new();
        while let Some(r) = rows.next()? {
            let job: JobId = r.get(0)?;
            let operation: String = r.get(1)?;
            let by: BatchId = r.get(2)?;
            let done = r.get::<_, String>(3)? == "succeeded";
            let at: Option<i64> = r.get(4)?;
            let o = operated.entry(job).or_default();
            match (operation.as_str(), done, at) {
                ("unconfigure", true, _) => {
                    o.unconfigured_by.get_or_insert(by);
                }
                ("unconfigure", false, _) => o.unconfiguring_by = Some(by),
                ("pause", false, _) => o.pausing_by = Some(by),
                (_, true, Some(at)) => {
                    o.pause = Some(PauseMark {
                        paused: operation == Operation::Pause.as_str(),
                        batch: by,
                        at,
                    })
                }
                _ => {}
            }
        }
        Ok(operated)
    }

    /// Where the configured jobs of `batch` stand: its succeeded jobs and its protection records,
    /// counted by readiness.
    pub fn readiness_counts(&self, batch: BatchId) -> Result<ReadinessCounts> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT id FROM jobs WHERE batch_id = ? AND state = 'succeeded'")?;
        let succeeded = stmt
            .query_map([batch], |r| r.get(0))?
            .collect::<rusqlite::Result<Vec<JobId>>>()?;
        Ok(ReadinessCounts::tally(succeeded, &self.protection(batch)?))
    }

    /// The status changes of the replications of `batch`'s jobs, oldest first.
    pub fn batch_replication_events(&self, batch: BatchId) -> Result<Vec<ReplicationEvent>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT e.job_id, e.at, e.from_status, e.to_status, e.message \
             FROM replication_events e JOIN jobs j ON j.id = e.job_id WHERE j.batch_id = ? \
             ORDER BY e.id",
        )?;
        let rows = stmt.query_map([batch], event_from_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// The status changes of `job`'s replication, oldest first.
    pub fn replication_events(&self, job: JobId) -> Result<Vec<ReplicationEvent>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT job_id, at, from_status, to_status, message FROM replication_events \
             WHERE job_id = ? ORDER BY id",
        )?;
        let rows = stmt.query_map([job], event_from_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }
}

/// A row of `job_id, at, from_status, to_status, message`.
fn event_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ReplicationEvent> {
    Ok(ReplicationEvent {
        job: r.get(0)?,
        at: r.get(1)?,
        from_status: r.get(2)?,
        to_status: r.get(3)?,
        message: r.get(4)?,
    })
}

/// The event's words: the status, with what explains it.
fn describe(s: &ReplicationSeen) -> String {
    if s.status == NOT_LISTED {
        return format!(
            "replication {}: the appliance no longer lists it",
            s.replication_id
        );
    }
    let mut text = format!("replication {}: {}", s.replication_id, s.status);
    if let (Some(done), Some(total)) = (s.bytes_done, s.bytes_total) {
        text.push_str(&format!(
            " ({} of {})",
            crate::units::bytes(done),
            crate::units::bytes(total)
        ));
    }
    if s.rpo_violation {
        text.push_str(", RPO violated");
    }
    if let Some(e) = &s.error {
        text.push_str(&format!(": {e}"));
    }
    if s.protected {
        text.push_str(", protected");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(status: &str, protected: bool) -> Protection {
        Protection {
            job: 1,
            replication_id: "GID-1".into(),
            status: status.into(),
            configuration_state: Some("OK".into()),
            bytes_done: None,
            bytes_total: None,
            rpo_violation: false,
            error: None,
            configured_at: 1,
            protected_at: protected.then_some(2),
            updated_at: 2,
            synced_at: None,
            sync_duration_s: None,
            replication_server: None,
            operated: Operated::default(),
            seen: true,
        }
    }

    #[test]
    fn readiness_is_read_from_the_status_the_error_and_the_protection_time() {
        assert_eq!(
            record("INITIAL_FULL_SYNC", false).readiness(),
            Readiness::Syncing
        );
        assert_eq!(record("OK", true).readiness(), Readiness::Protected);
        // Once protected, an RPO violation does not take that back.
        assert_eq!(
            record("RPO_VIOLATION", true).readiness(),
            Readiness::Protected
        );
        assert_eq!(
            record("NOT_ACTIVE", false).readiness(),
            Readiness::NotActive
        );
        assert_eq!(
            record("ERROR_RPO_VIOLATION", true).readiness(),
            Readiness::Error
        );
        let config_error = Protection {
            configuration_state: Some("ERROR".into()),
            ..record("CONFIGURING", false)
        };
        assert_eq!(config_error.readiness(), Readiness::Error);
    }

    #[test]
    fn the_tally_counts_each_readiness_and_the_configured_jobs_not_followed_yet() {
        let syncing = |job, done, total| Protection {
            job,
            bytes_done: done,
            bytes_total: total,
            updated_at: 10 + job,
            ..record("INITIAL_FULL_SYNC", false)
        };
        let records = [
            syncing(1, Some(30), Some(100)),
            // More copied than there is to copy counts as all of it.
            syncing(2, Some(80), Some(50)),
            // Bytes not said yet: counted as syncing, left out of the bytes.
            syncing(3, None, Some(40)),
            Protection {
                job: 4,
                rpo_violation: true,
                ..record("RPO_VIOLATION", true)
            },
            Protection {
                job: 5,
                ..record("OK", true)
            },
            Protection {
                job: 6,
                ..record("NOT_ACTIVE", false)
            },
        ];
        // Job 7 succeeded and was not seen since; job 1 is both.
        let counts = ReadinessCounts::tally([1, 7], &records);
        assert_eq!(
            (counts.configured, counts.not_followed, counts.rpo_violation),
            (7, 1, 1)
        );
        assert_eq!(
            Readiness::ALL.map(|r| counts.count(r)),
            [3, 2, 1, 0, 0, 0, 0],
            "syncing, protected, not active, error, paused, missing, unconfigured"
        );
        assert_eq!((counts.sync_bytes_done, counts.sync_bytes_total), (80, 150));
        assert_eq!(counts.last_seen_at, Some(13));

        let none = ReadinessCounts::tally([], &[]);
        assert_eq!((none.configured, none.not_followed), (0, 0));
        assert_eq!(
            none.counts.len(),
            Readiness::ALL.len(),
            "every readiness present"
        );
        assert_eq!(none.last_seen_at, None);
    }

    #[test]
    fn what_vrbulks_own_batches_did_says_more_than_an_older_sighting() {
        let unconfigured = Protection {
            operated: Operated {
                unconfigured_by: Some(4),
                ..Operated::default()
            },
            ..record("OK", true)
        };
        assert_eq!(unconfigured.readiness(), Readiness::Unconfigured);
        assert_eq!(unconfigured.readiness_words(), "unconfigured by batch 4");
        // Vanished with no batch of vrbulk's behind it: a problem, said so.
        let gone = record(NOT_LISTED, true);
        assert_eq!(gone.readiness(), Readiness::Missing);
        assert!(gone.readiness().is_problem());
        assert_eq!(
            gone.readiness_words(),
            "no longer exists (removed outside vrbulk)"
        );
        // Paused as the appliance last said, by nobody vrbulk knows of.
        let paused = record("PAUSED", true);
        assert_eq!(paused.readiness(), Readiness::Paused);
        assert_eq!(paused.readiness_words(), "paused outside vrbulk");
        // A pause that took effect after the last sighting (updated_at 2).
        let mark = |paused, at| Operated {
            pause: Some(PauseMark {
                paused,
                batch: 5,
                at,
            }),
            ..Operated::default()
        };
        let by_us = Protection {
            operated: mark(true, 3),
            ..record("OK", true)
        };
        assert_eq!(by_us.readiness_words(), "paused by batch 5");
        // A resume after a sighting that said PAUSED: not paused any more.
        let resumed = Protection {
            operated: mark(false, 3),
            ..record("PAUSED", true)
        };
        assert_eq!(resumed.readiness(), Readiness::Protected);
        // A pause seen resumed since (the sighting is newer): the sighting wins.
        let seen_after = Protection {
            operated: mark(true, 1),
            ..record("OK", true)
        };
        assert_eq!(seen_after.readiness(), Readiness::Protected);

        let counts = ReadinessCounts::tally(
            [1, 2, 3, 4],
            &[
                Protection {
                    job: 1,
                    ..unconfigured
                },
                Protection { job: 2, ..by_us },
                Protection { job: 3, ..paused },
                Protection {
                    job: 4,
                    ..record("OK", true)
                },
            ],
        );
        assert_eq!(counts.still_configured(), 3);
        assert!(!counts.all_protected());
        assert_eq!(counts.paused_words(), "1 by batch 5, 1 outside vrbulk");
        assert_eq!(counts.unconfigured_words(), "by batch 4");
    }

    #[test]
    fn protected_since_is_the_appliances_time_when_it_said() {
        let seen = record("OK", true);
        assert_eq!(seen.protected_since(), Some(2));
        let said = Protection {
            synced_at: Some(1),
            ..seen
        };
        assert_eq!(said.protected_since(), Some(1));
        assert_eq!(record("INITIAL_FULL_SYNC", false).protected_since(), None);
    }
}
