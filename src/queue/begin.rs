//! A run taking its batch, in one transaction: which batch, its attempts (`--max-attempts`), the
//! rescue of what a dead run left, the refusal when another run works on the batch, and the run's
//! own record. All under the write lock, so that of two runs starting at once the second sees
//! the first: a refusal that another run's start could slip past would only be advice.
//!
//! A run that has just started holds no job yet (it logs in first), so its record counts as
//! working on the batch for one lease after it started; from then on its leases say it.

use std::time::Duration;

use rusqlite::{params, Transaction, TransactionBehavior};

use super::{rescue, Batch, BatchId, Holder, JobId, Liveness, Queue, Result};
use crate::settings::UsedSettings;

/// What a run asks for as it starts.
#[derive(Debug, Clone)]
pub struct RunStart {
    pub run_id: String,
    /// The lease owner it claims as (`host:pid:run`).
    pub owner: String,
    /// `--batch`; the newest batch without it.
    pub batch: Option<BatchId>,
    /// `--max-attempts`, for the batch's jobs that have not ended.
    pub max_attempts: Option<u32>,
    /// Work on a batch another run works on, sharing its jobs through the queue (`--join`).
    pub join: bool,
    pub lease: Duration,
    /// Recorded with the run, with the attempts the batch's jobs get filled in.
    pub settings: UsedSettings,
}

/// How a run's start went.
#[derive(Debug, Clone, PartialEq)]
pub enum Begun {
    /// The run is recorded on `batch`; `rescued` jobs a dead run had left were given back.
    Started {
        batch: Box<Batch>,
        rescued: Vec<JobId>,
    },
    /// The queue holds no batch.
    NoBatch,
    /// Other runs work on the batch, and the run was not told to join them: nothing was
    /// written. A run that holds no job yet is listed with none.
    Held {
        batch: BatchId,
        holders: Vec<Holder>,
    },
}

impl Queue {
    /// Starts a run on its batch, or refuses it, in one write transaction. `liveness` judges the
    /// owners of other runs: one known gone holds nothing back.
    pub fn begin_run(
        &mut self,
        start: &RunStart,
        liveness: &dyn Fn(&str) -> Liveness,
    ) -> Result<Begun> {
        let now = self.now();
        // Borrowing the connection, not the queue: the queue's readers run inside it.
        let tx = Transaction::new_unchecked(&self.conn, TransactionBehavior::Immediate)?;
        let batch = match start.batch {
            Some(b) => self.batch(b)?,
            None => match self.latest_batch()? {
                Some(b) => b,
                None => return Ok(Begun::NoBatch),
            },
        };
        if let Some(k) = start.max_attempts {
            self.set_max_attempts(batch.id, k)?;
        }
        let rescued = rescue(&tx, now)?;
        let mut holders = self.holders(batch.id, &start.owner)?;
        for starting in self.starting(batch.id, &start.owner, now, lease_ms(start.lease))? {
            if !holders.iter().any(|h| h.owner == starting.owner) {
                holders.push(starting);
            }
        }
        holders.retain(|h| liveness(&h.owner) != Liveness::Gone);
        if !holders.is_empty() && !start.join {
            return Ok(Begun::Held {
                batch: batch.id,
                holders,
            });
        }
        let settings = UsedSettings {
            max_attempts: self.max_attempts(batch.id)?,
            ..start.settings.clone()
        };
        self.start_run(
            &start.run_id,
            batch.id,
            &start.owner,
            "run",
            Some(&settings),
        )?;
        tx.commit()?;
        Ok(Begun::Started {
            batch: Box::new(batch),
            rescued,
        })
    }

    /// The runs of `batch` other than `owner`'s that started less than `lease` ms before `now`
    /// and have not ended, each as a holder of no job until a lease after its start.
    fn starting(&self, batch: BatchId, owner: &str, now: i64, lease: i64) -> Result<Vec<Holder>> {
        let mut stmt = self.conn.prepare(
            "SELECT owner, started_at FROM runs WHERE batch_id = ? AND finished_at IS NULL \
             AND owner <> ? AND started_at > ? ORDER BY owner",
        )?;
        let rows = stmt.query_map(params![batch, owner, now.saturating_sub(lease)], |r| {
            Ok(Holder {
                owner: r.get(0)?,
                jobs: 0,
                until: r.get::<_, i64>(1)?.saturating_add(lease),
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }
}

fn lease_ms(lease: Duration) -> i64 {
    i64::try_from(lease.as_millis()).unwrap_or(i64::MAX)
}
