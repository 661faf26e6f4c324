//! The report's "Compliance since configured" section: what `vrbulk monitor` found on the
//! batch's replications since they were configured (each finding, when it was first seen,
//! opened and cleared, how long it lasted, and which are still open), and for how long the
//! monitor looked. A batch the monitor never looked at has no section: its silence would say
//! nothing.

use std::fmt::Write as _;

use maud::{html, Markup};
use serde::Serialize;

use super::UtcTime;
use crate::queue::{BatchId, Queue, QueueError};

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Compliance {
    pub monitored_from: UtcTime,
    pub last_looked: UtcTime,
    pub cycles: i64,
    pub open: usize,
    pub findings: Vec<FindingRow>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FindingRow {
    pub vm: String,
    /// `rpo_violation`, `error`, `paused`, `not_active`, `removed` or `uncovered`.
    pub finding: &'static str,
    pub words: &'static str,
    pub detail: Option<String>,
    pub first_seen: UtcTime,
    pub opened: UtcTime,
    pub cleared: Option<UtcTime>,
    /// From opening to clearing, or to the report for an open one.
    pub lasted_ms: i64,
}

impl Compliance {
    /// The section of `batch` as of `now`; `None` when the monitor never looked at it.
    pub fn load(q: &Queue, batch: BatchId, now: i64) -> Result<Option<Compliance>, QueueError> {
        let Some((first, last, cycles)) = q.monitor_looks(batch)? else {
            return Ok(None);
        };
        let findings: Vec<FindingRow> = q
            .findings(batch)?
            .into_iter()
            .filter_map(|f| {
                let opened = f.opened_at?;
                Some(FindingRow {
                    vm: f.vm_name.clone().unwrap_or_else(|| f.vm_id.clone()),
                    finding: f.kind.key(),
                    words: f.kind.words(),
                    detail: f.detail,
                    first_seen: UtcTime(f.first_seen_at),
                    opened: UtcTime(opened),
                    cleared: f.cleared_at.map(UtcTime),
                    lasted_ms: f.cleared_at.unwrap_or(now) - opened,
                })
            })
            .collect();
        Ok(Some(Compliance {
            monitored_from: UtcTime(first),
            last_looked: UtcTime(last),
            cycles,
            open: findings.iter().filter(|f| f.cleared.is_none()).count(),
            findings,
        }))
    }

    fn sentence(&self) -> String {
        format!(
            "Followed by `vrbulk monitor` from {} to {} ({} cycles): {} findings, {} still open.",
            self.monitored_from,
            self.last_looked,
            self.cycles,
            self.findings.len(),
            self.open
        )
    }
}

pub(super) fn markdown(out: &mut String, c: &Option<Compliance>) {
    let Some(c) = c else { return };
    let _ = writeln!(out, "## Compliance since configured\n\n{}\n", c.sentence());
    if c.findings.is_empty() {
        return;
    }
    out.push_str("| VM | Finding | Detail | First seen | Opened | Cleared | Lasted |\n");
    out.push_str("|---|---|---|---|---|---|---|\n");
    for f in &c.findings {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} |",
            super::md::cell(&f.vm),
            f.words,
            super::md::cell(f.detail.as_deref().unwrap_or("")),
            f.first_seen,
            f.opened,
            f.cleared.map_or("open".to_string(), |t| t.to_string()),
            super::span(f.lasted_ms)
        );
    }
    out.push('\n');
}

pub(super) fn html(c: &Option<Compliance>) -> Markup {
    let Some(c) = c else { return html! {} };
    html! {
        section #compliance {
            h2 { "Compliance since configured" }
            p { (c.sentence()) }
            @if !c.findings.is_empty() {
                table {
                    thead { tr { th { "VM" } th { "Finding" } th { "Detail" } th { "First seen" } th { "Opened" } th { "Cleared" } th { "Lasted" } } }
                    tbody {
                        @for f in &c.findings {
                            tr {
                                td { (f.vm) } td { (f.words) } td { (f.detail.as_deref().unwrap_or("")) }
                                td { (f.first_seen) } td { (f.opened) }
                                td { @match f.cleared { Some(t) => (t), None => strong { "open" } } }
                                td { (super::span(f.lasted_ms)) }
                            }
                        }
                    }
                }
            }
        }
    }
}
