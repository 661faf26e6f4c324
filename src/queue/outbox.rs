//! The notifications' outbox: one row per message and channel, written in the same
//! transaction as what it tells (a finding that opened, a run that ended), delivered at least
//! once by whichever vrbulk process looks next, and retried with backoff. A message keeps its id
//! on every channel and every try, for the receiver to deduplicate on.

use rusqlite::{params, Transaction};

use super::{Queue, Result};

/// A message to put into the outbox for these channels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    pub message_id: String,
    pub kind: String,
    /// The message as JSON: what every channel renders from.
    pub message_json: String,
    pub channels: Vec<String>,
}

/// One message waiting for (or done with) one channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxRow {
    pub message_id: String,
    pub channel: String,
    pub kind: String,
    pub message_json: String,
    pub created_at: i64,
    pub attempts: i64,
    pub next_attempt_at: i64,
    pub delivered_at: Option<i64>,
    pub last_error: Option<String>,
}

const OUTBOX_COLUMNS: &str = "message_id, channel, kind, message_json, created_at, attempts, \
    next_attempt_at, delivered_at, last_error";

fn outbox_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<OutboxRow> {
    Ok(OutboxRow {
        message_id: r.get(0)?,
        channel: r.get(1)?,
        kind: r.get(2)?,
        message_json: r.get(3)?,
        created_at: r.get(4)?,
        attempts: r.get(5)?,
        next_attempt_at: r.get(6)?,
        delivered_at: r.get(7)?,
        last_error: r.get(8)?,
    })
}

/// Puts `out` into the outbox within `tx`, due now. A message id already there for a channel is
/// left as it is.
pub(crate) fn enqueue_tx(tx: &Transaction<'_>, out: &Outgoing, now: i64) -> Result<()> {
    let mut stmt = tx.prepare_cached(
        "INSERT OR IGNORE INTO outbox (message_id, channel, kind, message_json, created_at, \
         next_attempt_at) VALUES (?1, ?2, ?3, ?4, ?5, ?5)",
    )?;
    for channel in &out.channels {
        stmt.execute(params![
            out.message_id,
            channel,
            out.kind,
            out.message_json,
            now
        ])?;
    }
    Ok(())
}

impl Queue {
    /// Puts `out` into the outbox, due now.
    pub fn enqueue(&mut self, out: &Outgoing) -> Result<()> {
        let now = self.now();
        let tx = self.write_tx()?;
        enqueue_tx(&tx, out, now)?;
        tx.commit()?;
        Ok(())
    }

    /// The undelivered rows due by now, oldest first, at most `limit`.
    pub fn outbox_due(&self, limit: usize) -> Result<Vec<OutboxRow>> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {OUTBOX_COLUMNS} FROM outbox WHERE delivered_at IS NULL \
             AND next_attempt_at <= ?1 ORDER BY created_at, message_id, channel LIMIT ?2"
        ))?;
        let rows = stmt.query_map(params![self.now(), limit as i64], outbox_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Every row of the outbox, oldest first (for `notify test`, the tests and the report).
    pub fn outbox(&self) -> Result<Vec<OutboxRow>> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {OUTBOX_COLUMNS} FROM outbox ORDER BY created_at, message_id, channel"
        ))?;
        let rows = stmt.query_map([], outbox_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Makes every undelivered row due now, whatever its backoff (`notify flush`).
    pub fn outbox_due_now(&mut self) -> Result<usize> {
        let now = self.now();
        Ok(self.conn.execute(
            "UPDATE outbox SET next_attempt_at = ?1 WHERE delivered_at IS NULL AND next_attempt_at > ?1",
            params![now],
        )?)
    }

    /// The receiver took the message.
    pub fn outbox_delivered(&mut self, message_id: &str, channel: &str) -> Result<()> {
        let now = self.now();
        self.conn.execute(
            "UPDATE outbox SET delivered_at = ?3, attempts = attempts + 1, last_error = NULL \
             WHERE message_id = ?1 AND channel = ?2",
            params![message_id, channel, now],
        )?;
        Ok(())
    }

    /// The channel failed: try again after `retry_in_ms`.
    pub fn outbox_failed(
        &mut self,
        message_id: &str,
        channel: &str,
        error: &str,
        retry_in_ms: i64,
    ) -> Result<()> {
        let now = self.now();
        self.conn.execute(
            "UPDATE outbox SET attempts = attempts + 1, last_error = ?3, \
             next_attempt_at = ?4 WHERE message_id = ?1 AND channel = ?2",
            params![message_id, channel, error, now + retry_in_ms.max(0)],
        )?;
        Ok(())
    }
}
