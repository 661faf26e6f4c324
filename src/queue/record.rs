//! A batch's whole record as the report reads it: the batch, its jobs, and what the event log and
//! the runs recorded about them (each job's claims, the runs and the settings they used, API
//! usage, discovery), what `run` and `watch` last saw of the configured jobs' replications
//! (protection records and their status changes), and the other side of a day-2 operation: the
//! configure batch an operation batch acts on, or the operation batches that acted on a
//! configure batch since. Read in one transaction so that every number agrees while a
//! `vrbulk run` writes.
//!
//! Read-only, typed rows; the report (`crate::report`) turns them into its model and never sees
//! SQL.

use std::collections::{BTreeMap, HashMap};

use rusqlite::params;

use super::{Batch, BatchId, Job, JobId, JobState, Protection, Queue, ReplicationEvent, Result};
use crate::settings::UsedSettings;
use crate::vr::OpUsage;

/// Everything the queue holds about one batch.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchRecord {
    pub batch: Batch,
    /// In import order.
    pub jobs: Vec<Job>,
    /// Jobs per state; every state is present.
    pub counts: BTreeMap<JobState, u64>,
    /// API calls per operation over all runs of the batch.
    pub api_usage: BTreeMap<String, OpUsage>,
    /// Per job that has events.
    pub job_times: HashMap<JobId, JobTimes>,
    /// Oldest first.
    pub runs: Vec<RunRecord>,
    /// By pairing id.
    pub discoveries: Vec<DiscoveryRecord>,
    /// The protection record of each configured job that has one, in job order.
    pub protection: Vec<Protection>,
    /// The status changes of those replications, oldest first.
    pub replication_events: Vec<ReplicationEvent>,
    /// For an operation batch: the configure batch it acts on.
    pub acts_on: Option<Batch>,
    /// For a configure batch: the operation batches that acted on it since, oldest first.
    pub operations: Vec<OperationRecord>,
    /// What operators did to the batch's jobs (requeues, with their corrections, and
    /// cancels), oldest first.
    pub operator_actions: Vec<OperatorAction>,
    /// What admission measured of the link over the batch's runs, oldest first.
    pub link_samples: Vec<super::LinkSample>,
}

/// One operator's action on a job, as its event recorded it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperatorAction {
    pub job_id: JobId,
    pub at: i64,
    /// `requeued by ops@jump01 (vrbulk retry), corrected: target_datastore a -> b`
    pub message: String,
}

/// One operation batch that acted on a configure batch, as that batch's report lists it.
#[derive(Debug, Clone, PartialEq)]
pub struct OperationRecord {
    pub batch: Batch,
    /// Jobs per state; every state is present.
    pub counts: BTreeMap<JobState, u64>,
    /// In job order; each names the configure job it acts on (`acts_on_job`).
    pub jobs: Vec<Job>,
}

/// A job's life as its events tell it (Unix ms).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JobTimes {
    /// The first claim; `None` while the job was never claimed.
    pub first_claimed_at: Option<i64>,
    /// The newest event of the job.
    pub last_event_at: i64,
    /// How many times a worker claimed the job.
    pub claims: u64,
}

/// One `vrbulk run` of a batch (Unix ms).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunRecord {
    pub id: String,
    /// `host:pid:run-id` of the process that ran it.
    pub owner: String,
    pub started_at: i64,
    /// `None` while it runs, or when it was killed before it could record its end.
    pub finished_at: Option<i64>,
    /// How it ended (`done`, `interrupted`, …).
    pub outcome: Option<String>,
    /// Logins it repeated after a session expired.
    pub relogins: u64,
    /// What the run used, when it recorded that (see [`UsedSettings`]); `None` for a queue whose
    /// runs table has no settings, or a value that does not decode.
    pub settings: Option<UsedSettings>,
}

/// What a run discovered about one pairing.
#[derive(Debug, Clone, PartialEq)]
pub struct DiscoveryRecord {
    pub pairing: String,
    pub fetched_at: i64,
    /// As [`Queue::record_discovery`] stored it; `Null` when it does not decode (a summary
    /// written by another vrbulk version is read leniently, never fatally).
    pub summary: serde_json::Value,
}

impl Queue {
    /// The whole record of `batch`, every query in one read transaction.
    pub fn record(&self, batch: BatchId) -> Result<BatchRecord> {
        // A deferred transaction that only reads: one WAL snapshot for every query below.
        let _snapshot = self.conn.unchecked_transaction()?;
        let batch = self.batch(batch)?;
        let id = batch.id;
        let acts_on = batch.acts_on.map(|b| self.batch(b)).transpose()?;
        let operations = self
            .operations_on(id)?
            .into_iter()
            .map(|b| {
                Ok(OperationRecord {
                    counts: self.counts(b.id)?,
                    jobs: self.jobs(b.id)?,
                    batch: b,
                })
            })
            .collect::<Result<_>>()?;
        Ok(BatchRecord {
            jobs: self.jobs(id)?,
            counts: self.counts(id)?,
            api_usage: self.api_usage(id)?,
            job_times: self.job_times(id)?,
            runs: self.runs(id)?,
            discoveries: self.discoveries(id)?,
            protection: self.protection(id)?,
            replication_events: self.batch_replication_events(id)?,
            operator_actions: self.operator_actions(id)?,
            link_samples: self.link_samples(id)?,
            acts_on,
            operations,
            batch,
        })
    }

    /// First claim, last event and claim count of each job of `batch` that has events.
    pub fn job_times(&self, batch: BatchId) -> Result<HashMap<JobId, JobTimes>> {
        let mut stmt = self.conn.prepare_cached(include_str!("job_times.sql"))?;
        let rows = stmt.query_map([batch], |r| {
            Ok((
                r.get(0)?,
                JobTimes {
                    first_claimed_at: r.get(1)?,
                    last_event_at: r.get(2)?,
                    claims: r.get::<_, i64>(3)?.max(0) as u64,
                },
            ))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The requeues and cancels operators made on `batch`'s jobs, oldest first.
    pub fn operator_actions(&self, batch: BatchId) -> Result<Vec<OperatorAction>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT e.job_id, e.at, e.message FROM job_events e JOIN jobs j ON j.id = e.job_id \
             WHERE j.batch_id = ? AND (e.message LIKE 'requeued by %' \
             OR e.message LIKE 'cancelled by %') ORDER BY e.id",
        )?;
        let rows = stmt.query_map([batch], |r| {
            Ok(OperatorAction {
                job_id: r.get(0)?,
                at: r.get(1)?,
                message: r.get(2)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The runs of `batch`, oldest first, with the settings each recorded (none for a run of a
    /// vrbulk that did not record them).
    pub fn runs(&self, batch: BatchId) -> Result<Vec<RunRecord>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT id, owner, started_at, finished_at, outcome, relogins, settings_json FROM runs \
             WHERE batch_id = ? ORDER BY started_at, rowid",
        )?;
        let rows = stmt.query_map(params![batch], |r| {
            let settings: Option<String> = r.get(6)?;
            Ok(RunRecord {
                id: r.get(0)?,
                owner: r.get(1)?,
                started_at: r.get(2)?,
                finished_at: r.get(3)?,
                outcome: r.get(4)?,
                relogins: r.get::<_, i64>(5)?.max(0) as u64,
                settings: settings.as_deref().and_then(UsedSettings::decode),
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// What the runs of `batch` discovered, one row per pairing.
    pub fn discoveries(&self, batch: BatchId) -> Result<Vec<DiscoveryRecord>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT pairing, fetched_at, summary_json FROM discovery WHERE batch_id = ? \
             ORDER BY pairing",
        )?;
        let rows = stmt.query_map(params![batch], |r| {
            let summary: String = r.get(2)?;
            Ok(DiscoveryRecord {
                pairing: r.get(0)?,
                fetched_at: r.get(1)?,
                summary: serde_json::from_str(&summary).unwrap_or(serde_json::Value::Null),
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}
