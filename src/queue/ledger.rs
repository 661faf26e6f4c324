//! The request budget shared by the processes of one host through the queue's database: a
//! sliding log of send times per appliance ([`crate::vr::Ledger`]). Each process keeps its own
//! budget for its session's quota; this log keeps the sum of them within the per-IP quota that
//! the appliance counts for the whole host. It uses a connection of its own, so that a claim
//! never waits behind the queue's work in the same process.

use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use rusqlite::{params, Connection, TransactionBehavior};

/// The send log of one appliance in the queue file.
pub struct SharedBudget {
    conn: Mutex<Connection>,
    appliance: String,
}

impl SharedBudget {
    /// The log of `appliance` (its origin, `https://vrms.corp.local`) in the queue at `db`,
    /// which must exist and be upgraded (any command that writes to the queue did that).
    pub fn open(db: &Path, appliance: &str) -> Result<SharedBudget, rusqlite::Error> {
        let conn = Connection::open(db)?;
        conn.busy_timeout(Duration::from_secs(5))?;
        Ok(SharedBudget {
            conn: Mutex::new(conn),
            appliance: appliance.to_string(),
        })
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl crate::vr::Ledger for SharedBudget {
    fn claim(&self, quota: u32, span: Duration) -> Result<Option<Duration>, String> {
        let mut conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        let now = now_ms();
        let span_ms = span.as_millis() as i64;
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| e.to_string())?;
        let wait = {
            tx.execute(
                "DELETE FROM api_ledger WHERE appliance = ?1 AND at_ms <= ?2",
                params![self.appliance, now - span_ms],
            )
            .map_err(|e| e.to_string())?;
            let (sent, oldest): (i64, Option<i64>) = tx
                .query_row(
                    "SELECT COUNT(*), MIN(at_ms) FROM api_ledger WHERE appliance = ?1",
                    params![self.appliance],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .map_err(|e| e.to_string())?;
            if sent < i64::from(quota) {
                tx.execute(
                    "INSERT INTO api_ledger (appliance, at_ms) VALUES (?1, ?2)",
                    params![self.appliance, now],
                )
                .map_err(|e| e.to_string())?;
                None
            } else {
                // The oldest of the window's sends must leave it; a little at least, so that
                // a clock step back does not spin.
                let until = oldest.unwrap_or(now) + span_ms;
                Some(Duration::from_millis(
                    (until - now).clamp(5, span_ms.max(5)) as u64,
                ))
            }
        };
        tx.commit().map_err(|e| e.to_string())?;
        Ok(wait)
    }
}

/// Makes the process's budget for the appliance at `url` share the per-IP quota with the other
/// processes using the queue at `db`. Without the queue file (a first import has not made it),
/// nothing is shared, and said so in the log.
pub fn share_budget(db: &Path, url: &reqwest::Url, limits: crate::vr::Limits) {
    if !db.exists() {
        return;
    }
    match SharedBudget::open(db, &url.origin().ascii_serialization()) {
        Ok(ledger) => {
            crate::vr::Budget::shared(url, limits).share_through(std::sync::Arc::new(ledger))
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot share the request budget through the queue: this process keeps to its own")
        }
    }
}
