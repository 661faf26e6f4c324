//! What admission measured of a replication link, one sample per measurement: the series the
//! report charts (time, syncs in flight, Mbit/s) and the throughput `plan` and `status` predict
//! from.

use rusqlite::params;
use serde::{Deserialize, Serialize};

use super::{BatchId, Queue, Result};

/// One measurement of a pairing's link, over the interval that ended at `at`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LinkSample {
    pub run_id: String,
    pub pairing_id: String,
    /// Unix ms: the end of the interval.
    pub at: i64,
    pub span_ms: i64,
    /// The pairing's replications in their initial sync (every batch's) at `at`.
    pub in_sync: u32,
    /// The admission cap from then on (`None`: none).
    pub cap: Option<u32>,
    /// What the initial syncs copied in all over the interval, in Mbit/s.
    pub mbps: f64,
    /// The fastest one sync went over the interval, in Mbit/s: a VM's own pace.
    pub pace_mbps: f64,
    /// Bytes the pairing's initial syncs still had to copy at `at`.
    pub bytes_left: i64,
}

impl Queue {
    pub fn record_link_sample(&mut self, s: &LinkSample) -> Result<()> {
        self.conn.execute(
            "INSERT INTO link_samples (run_id, pairing_id, at, span_ms, in_sync, cap, mbps, \
             pace_mbps, bytes_left) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            params![
                s.run_id,
                s.pairing_id,
                s.at,
                s.span_ms.max(1),
                s.in_sync,
                s.cap,
                s.mbps.max(0.0),
                s.pace_mbps.max(0.0),
                s.bytes_left.max(0)
            ],
        )?;
        Ok(())
    }

    /// The samples of every run of `batch`, oldest first.
    pub fn link_samples(&self, batch: BatchId) -> Result<Vec<LinkSample>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT s.run_id, s.pairing_id, s.at, s.span_ms, s.in_sync, s.cap, s.mbps, \
             s.pace_mbps, s.bytes_left \
             FROM link_samples s JOIN runs r ON r.id = s.run_id WHERE r.batch_id = ? \
             ORDER BY s.at, s.id",
        )?;
        let rows = stmt.query_map([batch], super::link_rate::sample)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }
}
