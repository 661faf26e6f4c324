//! What a run records besides job states: the run itself and the settings it used
//! ([`UsedSettings`], stored as serde writes it), the API calls it cost per operation, the
//! discovery it did, and the knobs it turns on a batch (max attempts).

use std::collections::BTreeMap;

use rusqlite::{params, OptionalExtension};

use super::{BatchId, Queue, QueueError, Result};
use crate::domain::AppliedLimits;
use crate::settings::UsedSettings;
use crate::vr::OpUsage;

impl Queue {
    pub fn start_run(
        &self,
        run_id: &str,
        batch: BatchId,
        owner: &str,
        command: &str,
        settings: Option<&UsedSettings>,
    ) -> Result<()> {
        let now = self.now();
        let settings = settings
            .map(serde_json::to_string)
            .transpose()
            .map_err(|source| QueueError::Json {
                what: "run settings",
                source,
            })?;
        self.conn.execute(
            "INSERT INTO runs (id, batch_id, owner, command, started_at, settings_json) \
             VALUES (?, ?, ?, ?, ?, ?)",
            params![run_id, batch, owner, command, now, settings],
        )?;
        Ok(())
    }

    /// Adds the capacity a started run works with to its recorded settings.
    pub fn record_run_capacity(&mut self, run_id: &str, capacity: &AppliedLimits) -> Result<()> {
        let capacity = serde_json::to_string(capacity).map_err(|source| QueueError::Json {
            what: "run capacity",
            source,
        })?;
        self.conn.execute(
            "UPDATE runs SET settings_json = json_set(COALESCE(settings_json, '{}'), \
             '$.capacity', json(?)) WHERE id = ?",
            params![capacity, run_id],
        )?;
        Ok(())
    }

    pub fn finish_run(&mut self, run_id: &str, outcome: &str, relogins: u64) -> Result<()> {
        let now = self.now();
        self.conn.execute(
            "UPDATE runs SET finished_at = ?, outcome = ?, relogins = ? WHERE id = ?",
            params![now, outcome, relogins as i64, run_id],
        )?;
        Ok(())
    }

    /// Adds calls to the batch's per-operation tally (a batch may take several runs).
    pub fn add_api_usage(
        &mut self,
        batch: BatchId,
        usage: &BTreeMap<String, OpUsage>,
    ) -> Result<()> {
        let tx = self.write_tx()?;
        for (op, u) in usage.iter().filter(|(_, u)| **u != OpUsage::default()) {
            tx.prepare_cached(
                "INSERT INTO api_usage (batch_id, operation, calls, throttled, server_errors, retries) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (batch_id, operation) DO UPDATE SET \
                 calls = calls + ?3, throttled = throttled + ?4, server_errors = server_errors + ?5, \
                 retries = retries + ?6",
            )?
            .execute(params![
                batch,
                op,
                u.calls as i64,
                u.throttled as i64,
                u.server_errors as i64,
                u.retries as i64
            ])?;
        }
        tx.commit()?;
        Ok(())
    }

    pub fn api_usage(&self, batch: BatchId) -> Result<BTreeMap<String, OpUsage>> {
        let mut stmt = self.conn.prepare(
            "SELECT operation, calls, throttled, server_errors, retries FROM api_usage \
             WHERE batch_id = ? ORDER BY operation",
        )?;
        let rows = stmt.query_map([batch], |r| {
            Ok((
                r.get::<_, String>(0)?,
                OpUsage {
                    calls: r.get::<_, i64>(1)? as u64,
                    throttled: r.get::<_, i64>(2)? as u64,
                    server_errors: r.get::<_, i64>(3)? as u64,
                    retries: r.get::<_, i64>(4)? as u64,
                },
            ))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    pub fn record_discovery(
        &mut self,
        batch: BatchId,
        pairing: &str,
        summary: &serde_json::Value,
    ) -> Result<()> {
        let now = self.now();
        self.conn.execute(
            "INSERT INTO discovery (batch_id, pairing, fetched_at, summary_json) VALUES (?, ?, ?, ?) \
             ON CONFLICT (batch_id, pairing) DO UPDATE SET fetched_at = excluded.fetched_at, \
             summary_json = excluded.summary_json",
            params![batch, pairing, now, summary.to_string()],
        )?;
        Ok(())
    }

    /// `run --max-attempts K` applies to the batch's jobs that have not ended.
    pub fn set_max_attempts(&self, batch: BatchId, max_attempts: u32) -> Result<usize> {
        Ok(self.conn.execute(
            "UPDATE jobs SET max_attempts = ? WHERE batch_id = ? \
             AND state IN ('pending', 'running', 'retryable')",
            params![max_attempts.max(1), batch],
        )?)
    }

    /// The attempts the batch's unfinished jobs get (the most, if they differ).
    pub fn max_attempts(&self, batch: BatchId) -> Result<Option<u32>> {
        Ok(self.conn.query_row(
            "SELECT MAX(max_attempts) FROM jobs WHERE batch_id = ? \
             AND state IN ('pending', 'running', 'retryable')",
            [batch],
            |r| r.get::<_, Option<u32>>(0),
        )?)
    }

    /// Who else holds jobs of `batch` now (lease not expired): each holder with how many jobs
    /// and until when its lease runs. A live run renews its lease; a dead one's runs out.
    pub fn holders(&self, batch: BatchId, owner: &str) -> Result<Vec<Holder>> {
        let now = self.now();
        let mut stmt = self.conn.prepare(
            "SELECT lease_owner, COUNT(*), MAX(lease_expires_at) FROM jobs \
             WHERE batch_id = ? AND state = 'running' AND lease_owner <> ? \
             AND lease_expires_at >= ? GROUP BY lease_owner ORDER BY lease_owner",
        )?;
        let rows = stmt.query_map(params![batch, owner, now], |r| {
            Ok(Holder {
                owner: r.get(0)?,
                jobs: r.get::<_, i64>(1)? as u64,
                until: r.get(2)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// The earliest lease expiry among the batch's running jobs that `owner` does not hold:
    /// another run is working on them, or died and they will be rescued then.
    pub fn held_elsewhere(&self, batch: BatchId, owner: &str) -> Result<Option<i64>> {
        Ok(self
            .conn
            .query_row(
                "SELECT MIN(lease_expires_at) FROM jobs WHERE batch_id = ? AND state = 'running' \
                 AND lease_owner <> ?",
                params![batch, owner],
                |r| r.get::<_, Option<i64>>(0),
            )
            .optional()?
            .flatten())
    }

    /// When the next job of the batch becomes due, if any is waiting.
    pub fn next_due(&self, batch: BatchId) -> Result<Option<i64>> {
        Ok(self
            .conn
            .query_row(
                "SELECT MIN(scheduled_at) FROM jobs WHERE batch_id = ? \
                 AND state IN ('pending', 'retryable')",
                [batch],
                |r| r.get::<_, Option<i64>>(0),
            )
            .optional()?
            .flatten())
    }
}

/// A run that holds jobs of a batch: `host:pid:run`, how many, and until when (Unix ms).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    pub owner: String,
    pub jobs: u64,
    pub until: i64,
}
