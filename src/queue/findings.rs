//! The monitor's findings: one condition of one VM's replication (behind its RPO, in error,
//! paused, powered off, removed outside vrbulk, or a VM the batch's selection covers without a
//! replication), from its first sighting through its grace (pending), open, and after its hold
//! time without it, cleared. [`Queue::judge_findings`] applies one cycle's sightings in one
//! transaction, together with the notification of what opened or cleared, so that a finding is
//! never recorded as sent without its message waiting in the outbox, nor the other way round.

use std::collections::{HashMap, HashSet};

use rusqlite::{params, OptionalExtension, Transaction};
use serde::Serialize;

use super::outbox::{enqueue_tx, Outgoing};
use super::{BatchId, JobId, Queue, Result};

/// What a finding is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FindingKind {
    /// The appliance's `current_rpo_violation`: the last good copy is older than the RPO.
    RpoViolation,
    /// The replication is in `ERROR` (the appliance's `last_group_error` or configuration error).
    Error,
    Paused,
    /// `NOT_ACTIVE`: the VM is powered off, nothing is copied.
    NotActive,
    /// A replication vrbulk configured that the appliance no longer lists, and no vrbulk undo
    /// removed.
    Removed,
    /// A VM the batch's inventory selection covers today that has no replication.
    Uncovered,
}

impl FindingKind {
    pub const ALL: [FindingKind; 6] = [
        FindingKind::RpoViolation,
        FindingKind::Error,
        FindingKind::Paused,
        FindingKind::NotActive,
        FindingKind::Removed,
        FindingKind::Uncovered,
    ];

    pub fn key(self) -> &'static str {
        match self {
            FindingKind::RpoViolation => "rpo_violation",
            FindingKind::Error => "error",
            FindingKind::Paused => "paused",
            FindingKind::NotActive => "not_active",
            FindingKind::Removed => "removed",
            FindingKind::Uncovered => "uncovered",
        }
    }

    /// The operator's words.
    pub fn words(self) -> &'static str {
        match self {
            FindingKind::RpoViolation => "behind its RPO",
            FindingKind::Error => "in error",
            FindingKind::Paused => "paused",
            FindingKind::NotActive => "not active (VM powered off)",
            FindingKind::Removed => "removed outside vrbulk",
            FindingKind::Uncovered => "matches the selection but has no replication",
        }
    }

    pub fn from_key(key: &str) -> Option<FindingKind> {
        FindingKind::ALL.into_iter().find(|k| k.key() == key)
    }
}

/// One condition seen in one cycle.
#[derive(Debug, Clone, PartialEq)]
pub struct Sighting {
    pub batch: BatchId,
    pub job: Option<JobId>,
    pub vm_id: String,
    pub vm_name: Option<String>,
    pub kind: FindingKind,
    /// In the appliance's or vrbulk's words: the error, how far behind.
    pub detail: Option<String>,
    /// How long the condition has lasted by the appliance's own measure (its
    /// `current_rpo_violation`), where it gives one; otherwise since vrbulk first saw it.
    pub lasted_ms: Option<i64>,
}

/// How long a condition must last before it is a finding, and how long it must be gone before
/// the finding clears.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Rule {
    pub grace_ms: i64,
    pub hold_ms: i64,
}

/// A finding that opened or cleared in a cycle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FindingChange {
    pub finding: i64,
    /// `opened` or `cleared`.
    pub change: &'static str,
    pub batch: BatchId,
    pub vm_id: String,
    pub vm_name: Option<String>,
    pub kind: FindingKind,
    pub detail: Option<String>,
    /// When the condition was first seen (Unix ms).
    pub first_seen_at: i64,
    pub opened_at: i64,
    pub cleared_at: Option<i64>,
}

/// A finding as the queue holds it (times in Unix ms).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub id: i64,
    pub batch: BatchId,
    pub job: Option<JobId>,
    pub vm_id: String,
    pub vm_name: Option<String>,
    pub kind: FindingKind,
    pub detail: Option<String>,
    pub first_seen_at: i64,
    pub opened_at: Option<i64>,
    pub ok_since: Option<i64>,
    pub cleared_at: Option<i64>,
}

impl Finding {
    pub fn is_open(&self) -> bool {
        self.opened_at.is_some() && self.cleared_at.is_none()
    }
}

const FINDING_COLUMNS: &str = "id, batch_id, job_id, vm_id, vm_name, kind, detail, \
    first_seen_at, opened_at, ok_since, cleared_at";

fn finding_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Finding> {
    let kind: String = r.get(5)?;
    Ok(Finding {
        id: r.get(0)?,
        batch: r.get(1)?,
        job: r.get(2)?,
        vm_id: r.get(3)?,
        vm_name: r.get(4)?,
        kind: FindingKind::from_key(&kind).ok_or_else(|| {
            rusqlite::Error::FromSqlConversionFailure(
                5,
                rusqlite::types::Type::Text,
                format!("unknown finding kind {kind:?}").into(),
            )
        })?,
        detail: r.get(6)?,
        first_seen_at: r.get(7)?,
        opened_at: r.get(8)?,
        ok_since: r.get(9)?,
        cleared_at: r.get(10)?,
    })
}

impl Queue {
    /// Applies one cycle's `sightings` of `batches` (the batches this cycle could read whole:
    /// findings of other batches are left as they are). A condition seen for the first time is
    /// pending; one that lasted its grace opens; a pending one gone before its grace leaves no
    /// trace; an open one gone for its hold time clears. When something opened or cleared,
    /// `notice` turns the changes into a message that goes into the outbox in the same
    /// transaction. Returns the changes.
    pub fn judge_findings(
        &mut self,
        batches: &[BatchId],
        sightings: &[Sighting],
        rule: impl Fn(FindingKind) -> Rule,
        notice: impl FnOnce(&[FindingChange]) -> Option<Outgoing>,
    ) -> Result<Vec<FindingChange>> {
        let now = self.now();
        let tx = self.write_tx()?;
        let mut changes = Vec::new();
        let mut seen_ids = HashSet::new();
        for s in sightings {
            let id = upsert_sighting(&tx, s, now)?;
            seen_ids.insert(id);
            let f = one(&tx, id)?;
            let lasted = s.lasted_ms.unwrap_or(now - f.first_seen_at).max(0);
            if f.opened_at.is_none() && lasted >= rule(s.kind).grace_ms {
                tx.execute(
                    "UPDATE findings SET opened_at = ?2 WHERE id = ?1",
                    params![id, now],
                )?;
                changes.push(change(&f, "opened", now, None));
            }
        }
        let wanted: HashSet<BatchId> = batches.iter().copied().collect();
        let live = live_findings(&tx)?;
        for f in live.into_iter().filter(|f| wanted.contains(&f.batch)) {
            if seen_ids.contains(&f.id) {
                continue;
            }
            let Some(opened) = f.opened_at else {
                tx.execute("DELETE FROM findings WHERE id = ?1", params![f.id])?;
                continue;
            };
            let ok_since = match f.ok_since {
                Some(t) => t,
                None => {
                    tx.execute(
                        "UPDATE findings SET ok_since = ?2, updated_at = ?2 WHERE id = ?1",
                        params![f.id, now],
                    )?;
                    now
                }
            };
            if now - ok_since >= rule(f.kind).hold_ms {
                tx.execute(
                    "UPDATE findings SET cleared_at = ?2, updated_at = ?2 WHERE id = ?1",
                    params![f.id, now],
                )?;
                changes.push(change(&f, "cleared", opened, Some(now)));
            }
        }
        for b in batches {
            tx.execute(
                "INSERT INTO monitor_looks (batch_id, first_at, last_at, cycles) \
                 VALUES (?1, ?2, ?2, 1) ON CONFLICT(batch_id) DO UPDATE SET \
                 last_at = excluded.last_at, cycles = cycles + 1",
                params![b, now],
            )?;
        }
        if !changes.is_empty() {
            if let Some(out) = notice(&changes) {
                enqueue_tx(&tx, &out, now)?;
            }
        }
        tx.commit()?;
        Ok(changes)
    }

    /// Every finding of `batch` that opened (pending ones are not findings yet), oldest first.
    pub fn findings(&self, batch: BatchId) -> Result<Vec<Finding>> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {FINDING_COLUMNS} FROM findings \
             WHERE batch_id = ?1 AND opened_at IS NOT NULL ORDER BY opened_at, id"
        ))?;
        let rows = stmt.query_map(params![batch], finding_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// When the monitor looked at `batch`: first, last (Unix ms) and how many cycles; `None`
    /// when it never did.
    pub fn monitor_looks(&self, batch: BatchId) -> Result<Option<(i64, i64, i64)>> {
        Ok(self
            .conn
            .query_row(
                "SELECT first_at, last_at, cycles FROM monitor_looks WHERE batch_id = ?1",
                params![batch],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()?)
    }

    /// The open findings of every batch, counted by batch and kind.
    pub fn open_findings(&self) -> Result<HashMap<BatchId, HashMap<FindingKind, u64>>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT batch_id, kind, COUNT(*) FROM findings \
             WHERE opened_at IS NOT NULL AND cleared_at IS NULL GROUP BY batch_id, kind",
        )?;
        let mut out: HashMap<BatchId, HashMap<FindingKind, u64>> = HashMap::new();
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, BatchId>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, i64>(2)?,
            ))
        })?;
        for row in rows {
            let (batch, kind, n) = row?;
            if let Some(kind) = FindingKind::from_key(&kind) {
                out.entry(batch).or_default().insert(kind, n.max(0) as u64);
            }
        }
        Ok(out)
    }
}

/// The live finding of the sighting's batch, VM and kind, its detail refreshed and any
/// "gone since" forgotten; a new pending one when there is none. Its id.
fn upsert_sighting(tx: &Transaction<'_>, s: &Sighting, now: i64) -> Result<i64> {
    let existing: Option<i64> = tx
        .query_row(
            "SELECT id FROM findings WHERE batch_id = ?1 AND vm_id = ?2 AND kind = ?3 \
             AND cleared_at IS NULL",
            params![s.batch, s.vm_id, s.kind.key()],
            |r| r.get(0),
        )
        .optional()?;
    Ok(match existing {
        Some(id) => {
            tx.execute(
                "UPDATE findings SET detail = ?2, vm_name = COALESCE(?3, vm_name), \
                 ok_since = NULL, updated_at = ?4 WHERE id = ?1",
                params![id, s.detail, s.vm_name, now],
            )?;
            id
        }
        None => {
            tx.execute(
                "INSERT INTO findings (batch_id, job_id, vm_id, vm_name, kind, detail, \
                 first_seen_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7)",
                params![
                    s.batch,
                    s.job,
                    s.vm_id,
                    s.vm_name,
                    s.kind.key(),
                    s.detail,
                    now
                ],
            )?;
            tx.last_insert_rowid()
        }
    })
}

fn one(tx: &Transaction<'_>, id: i64) -> Result<Finding> {
    Ok(tx.query_row(
        &format!("SELECT {FINDING_COLUMNS} FROM findings WHERE id = ?1"),
        params![id],
        finding_row,
    )?)
}

fn live_findings(tx: &Transaction<'_>) -> Result<Vec<Finding>> {
    let mut stmt = tx.prepare_cached(&format!(
        "SELECT {FINDING_COLUMNS} FROM findings WHERE cleared_at IS NULL ORDER BY id"
    ))?;
    let rows = stmt.query_map([], finding_row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

fn change(f: &Finding, what: &'static str, opened: i64, cleared: Option<i64>) -> FindingChange {
    FindingChange {
        finding: f.id,
        change: what,
        batch: f.batch,
        vm_id: f.vm_id.clone(),
        vm_name: f.vm_name.clone(),
        kind: f.kind,
        detail: f.detail.clone(),
        first_seen_at: f.first_seen_at,
        opened_at: opened,
        cleared_at: cleared,
    }
}
