//! What the link samples say now, for the commands that show them without charting them: the
//! newest sample of a batch (the progress line, `status`) and the best a pairing's newest
//! measuring run reached (what `plan` predicts a wave from).

use rusqlite::{params, OptionalExtension, Row};

use super::{BatchId, LinkSample, Queue, Result};

/// A pairing's link as its newest measuring run found it.
#[derive(Debug, Clone, PartialEq)]
pub struct MeasuredLink {
    pub pairing_id: String,
    /// The run that measured it, and when it started.
    pub run_id: String,
    pub run_started_at: i64,
    /// The highest aggregate throughput of that run's samples, in Mbit/s, and when it was
    /// measured (Unix ms).
    pub mbps: f64,
    pub at: i64,
    /// The replications in initial sync then.
    pub in_sync: u32,
    /// The fastest one sync went in any of that run's samples, in Mbit/s.
    pub pace_mbps: f64,
    /// The run's samples of the pairing.
    pub samples: u64,
}

const COLUMNS: &str = "s.run_id, s.pairing_id, s.at, s.span_ms, s.in_sync, s.cap, s.mbps, \
                       s.pace_mbps, s.bytes_left";

/// A row of [`COLUMNS`] as a sample.
pub(super) fn sample(r: &Row<'_>) -> rusqlite::Result<LinkSample> {
    Ok(LinkSample {
        run_id: r.get(0)?,
        pairing_id: r.get(1)?,
        at: r.get(2)?,
        span_ms: r.get(3)?,
        in_sync: r.get(4)?,
        cap: r.get(5)?,
        mbps: r.get(6)?,
        pace_mbps: r.get(7)?,
        bytes_left: r.get(8)?,
    })
}

impl Queue {
    /// The newest sample of any run of `batch`, at or after `since` (Unix ms).
    pub fn latest_link_sample(&self, batch: BatchId, since: i64) -> Result<Option<LinkSample>> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {COLUMNS} FROM link_samples s JOIN runs r ON r.id = s.run_id \
             WHERE r.batch_id = ? AND s.at >= ? ORDER BY s.at DESC, s.id DESC LIMIT 1"
        ))?;
        Ok(stmt.query_row(params![batch, since], sample).optional()?)
    }

    /// What the newest run that sampled `pairing` (a run of any batch) measured at best: the
    /// link as it was lately, at the most syncs that run let it carry. `None` when no run
    /// of this queue measured the pairing.
    pub fn measured_link(&self, pairing: &str) -> Result<Option<MeasuredLink>> {
        let newest: Option<(String, i64)> = self
            .conn
            .query_row(
                "SELECT s.run_id, r.started_at FROM link_samples s JOIN runs r ON r.id = s.run_id \
                 WHERE s.pairing_id = ? ORDER BY s.at DESC, s.id DESC LIMIT 1",
                [pairing],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        let Some((run_id, run_started_at)) = newest else {
            return Ok(None);
        };
        let (samples, pace_mbps): (i64, f64) = self.conn.query_row(
            "SELECT COUNT(*), COALESCE(MAX(pace_mbps), 0) FROM link_samples \
             WHERE run_id = ? AND pairing_id = ?",
            params![run_id, pairing],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        let best = self.conn.query_row(
            &format!(
                "SELECT {COLUMNS} FROM link_samples s WHERE s.run_id = ? AND s.pairing_id = ? \
                 ORDER BY s.mbps DESC, s.at DESC LIMIT 1"
            ),
            params![run_id, pairing],
            sample,
        )?;
        Ok(Some(MeasuredLink {
            pairing_id: pairing.to_string(),
            run_id,
            run_started_at,
            mbps: best.mbps,
            at: best.at,
            in_sync: best.in_sync,
            pace_mbps,
            samples: samples.max(0) as u64,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queue::tests::{new_batch, spec};

    fn one_batch() -> (Queue, BatchId) {
        let mut q = Queue::open_in_memory().unwrap();
        let batch = q.create_batch(&new_batch(), &[spec("vm-a")]).unwrap();
        (q, batch)
    }

    /// A sample of `n` syncs carrying `mbps` in all, each at a tenth of it.
    pub(crate) fn sample_at(run: &str, pairing: &str, at: i64, n: u32, mbps: f64) -> LinkSample {
        LinkSample {
            run_id: run.into(),
            pairing_id: pairing.into(),
            at,
            span_ms: 2_000,
            in_sync: n,
            cap: Some(n + 1),
            mbps,
            pace_mbps: mbps / 10.0,
            bytes_left: 1 << 30,
        }
    }

    #[test]
    fn the_latest_sample_is_the_newest_of_the_batch_since_a_moment() {
        let (mut q, batch) = one_batch();
        q.start_run("run-1", batch, "h:1:run-1", "run", None)
            .unwrap();
        assert_eq!(q.latest_link_sample(batch, 0).unwrap(), None);
        for (at, mbps) in [(1_000, 100.0), (3_000, 300.0), (2_000, 200.0)] {
            q.record_link_sample(&sample_at("run-1", "p1", at, 4, mbps))
                .unwrap();
        }
        let latest = q.latest_link_sample(batch, 0).unwrap().unwrap();
        assert_eq!((latest.at, latest.mbps), (3_000, 300.0));
        assert_eq!(q.latest_link_sample(batch, 3_001).unwrap(), None);
        assert_eq!(q.latest_link_sample(batch + 1, 0).unwrap(), None);
    }

    #[test]
    fn a_pairing_is_measured_by_the_best_of_its_newest_run() {
        let (mut q, batch) = one_batch();
        assert_eq!(q.measured_link("p1").unwrap(), None);
        q.start_run("run-1", batch, "h:1:run-1", "run", None)
            .unwrap();
        q.record_link_sample(&sample_at("run-1", "p1", 1_000, 20, 5_000.0))
            .unwrap();
        q.finish_run("run-1", "done", 0).unwrap();
        q.start_run("run-2", batch, "h:1:run-2", "run", None)
            .unwrap();
        for (at, n, mbps) in [(10_000, 2, 400.0), (12_000, 8, 900.0), (14_000, 1, 120.0)] {
            q.record_link_sample(&sample_at("run-2", "p1", at, n, mbps))
                .unwrap();
        }
        q.record_link_sample(&sample_at("run-2", "p2", 15_000, 3, 7_000.0))
            .unwrap();
        let m = q.measured_link("p1").unwrap().unwrap();
        assert_eq!(m.run_id, "run-2", "the newest run, not the best ever");
        assert_eq!((m.mbps, m.at, m.in_sync, m.samples), (900.0, 12_000, 8, 3));
        assert_eq!(m.pace_mbps, 90.0);
    }
}
