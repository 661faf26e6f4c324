//! The protection record of configured jobs: what the appliance last said of each job's
//! replication (status, initial-sync bytes, RPO health), when the VM first became protected, and
//! an append-only log of the replication's status changes (not of every progress tick). `run`
//! and `watch` write it; `status` and the report read it. Whether a sighting means "protected"
//! is the workflow's judgement, handed in; where a configured VM stands is
//! [`Protection::readiness`], and [`ReadinessCounts::tally`] counts a batch by it.

use std::collections::{BTreeMap, BTreeSet};

use rusqlite::{params, OptionalExtension};
use serde::Serialize;

use super::{BatchId, JobId, Queue, Result};

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
    /// The first time it was seen protected; kept when it later falls behind its RPO.
    pub protected_at: Option<i64>,
    pub updated_at: i64,
}

/// Where a configured VM stands, in the operator's words: what `status`, `watch` and the report
/// count and list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Readiness {
    /// Configured, not yet protected: being configured, in its initial sync, or paused.
    Syncing,
    /// Seen protected (OK after a sync). It stays protected while it later falls behind its
    /// RPO; [`Protection::rpo_violation`] says so.
    Protected,
    /// The VM is powered off: nothing replicates until it is powered on.
    NotActive,
    /// The replication is in error, in the appliance's words.
    Error,
}

impl Readiness {
    pub const ALL: [Readiness; 4] = [
        Readiness::Syncing,
        Readiness::Protected,
        Readiness::NotActive,
        Readiness::Error,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Readiness::Syncing => "syncing",
            Readiness::Protected => "protected",
            Readiness::NotActive => "not active",
            Readiness::Error => "error",
        }
    }
}

impl Protection {
    pub fn readiness(&self) -> Readiness {
        if self.error.is_some()
            || self.status.starts_with("ERROR")
            || self.configuration_state.as_deref() == Some("ERROR")
        {
            Readiness::Error
        } else if self.status.starts_with("NOT_ACTIVE") {
            Readiness::NotActive
        } else if self.protected_at.is_some() {
            Readiness::Protected
        } else {
            Readiness::Syncing
        }
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
        for p in records {
            jobs.insert(p.job);
            let readiness = p.readiness();
            *counts.entry(readiness).or_default() += 1;
            match readiness {
                Readiness::Protected if p.rpo_violation => rpo_violation += 1,
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
            last_seen_at: records.iter().map(|p| p.updated_at).max(),
        }
    }

    /// VMs of `readiness`.
    pub fn count(&self, readiness: Readiness) -> u64 {
        self.counts.get(&readiness).copied().unwrap_or(0)
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
                 updated_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, \
                         COALESCE((SELECT finished_at FROM jobs WHERE id = ?1), ?10), \
                         CASE WHEN ?9 THEN ?10 END, ?10) \
                 ON CONFLICT (job_id) DO UPDATE SET replication_id = ?2, status = ?3, \
                 configuration_state = ?4, \
                 bytes_done = COALESCE(?5, CASE WHEN ?9 THEN COALESCE(?6, bytes_total) END, \
                                       bytes_done), \
                 bytes_total = COALESCE(?6, bytes_total), \
                 rpo_violation = ?7, error = ?8, \
                 protected_at = COALESCE(protected_at, CASE WHEN ?9 THEN ?10 END), \
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

    /// The protection record of every configured job of `batch`, in job order.
    pub fn protection(&self, batch: BatchId) -> Result<Vec<Protection>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT p.job_id, p.replication_id, p.status, p.configuration_state, p.bytes_done, \
             p.bytes_total, p.rpo_violation, p.error, p.configured_at, p.protected_at, \
             p.updated_at \
             FROM protection p JOIN jobs j ON j.id = p.job_id WHERE j.batch_id = ? \
             ORDER BY p.job_id",
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
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
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
            [3, 2, 1, 0],
            "syncing, protected, not active, error"
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
}
