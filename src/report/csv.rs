//! CSV for spreadsheets: one row per VM under stable snake_case column names (scripts and
//! saved pivot tables depend on them: add columns at the end, never rename). The protection
//! columns came last for that reason, and the day-2 operation columns after them (what an
//! operation batch's job did and to which configure job; what was done since to a configure
//! job's replication), and after those the columns of the appliance's own record (the VR
//! server it put the replication on, its times). Lists (disk labels, operations since) are
//! joined with `; `. Text that a spreadsheet would run as a formula (`=`, `+`, `-`, `@` at the
//! start) gets a leading `'`, the usual guard against CSV injection.

use super::operations::parameters;
use super::{JobRow, PlanReport, Report, ReportError, UtcTime};
use crate::domain::Operation;
use crate::queue::JobState;

pub(crate) const BATCH_COLUMNS: [&str; 51] = [
    "job_id",
    "input_line",
    "vm_name",
    "vm_id",
    "state",
    "step",
    "reason",
    "last_error",
    "http_status",
    "replication_id",
    "task_id",
    "in_doubt",
    "target_datastore",
    "storage_policy",
    "replication_server",
    "rpo_minutes",
    "mpit_instances",
    "mpit_days",
    "disks_replicated",
    "disks_excluded",
    "replicated_capacity_bytes",
    "attempts",
    "started_at",
    "finished_at",
    "duration_seconds",
    "change_ticket",
    "notes",
    "readiness",
    "replication_status",
    "configuration_state",
    "rpo_violation",
    "configured_at",
    "protected_at",
    "time_to_protected_seconds",
    "sync_copied_bytes",
    "sync_total_bytes",
    "replication_error",
    "replication_seen_at",
    "operation",
    "acts_on_batch",
    "acts_on_job",
    "operation_parameters",
    "operations_since",
    "replication_server_chosen",
    "replication_server_seen",
    "protected_at_source",
    "first_seen_protected_at",
    "synced_at",
    "initial_sync_seconds",
    "unconfigured_by_batch",
    "paused_by_batch",
];

pub(crate) const PLAN_COLUMNS: [&str; 14] = [
    "job_id",
    "vm_name",
    "vm_id",
    "action",
    "reason",
    "target_datastore",
    "storage_policy",
    "replication_server",
    "disks",
    "excluded_disks",
    "capacity_bytes",
    "warnings",
    "change_ticket",
    "notes",
];

pub(super) fn batch(report: &Report) -> Result<String, ReportError> {
    let mut w = ::csv::Writer::from_writer(Vec::with_capacity(report.jobs.len() * 256 + 512));
    w.write_record(BATCH_COLUMNS)?;
    for j in &report.jobs {
        let record = [
            j.job_id.to_string(),
            opt(j.input_line),
            text(&j.vm_name),
            opt_text(&j.vm_id),
            j.state.to_string(),
            j.step.to_string(),
            opt_text(&j.reason),
            opt_text(&j.last_error),
            opt(j.http_status),
            opt_text(&j.replication_id),
            opt_text(&j.task_id),
            j.in_doubt.to_string(),
            text(&j.target_datastore),
            opt_text(&j.storage_policy),
            opt_text(&j.replication_server),
            j.rpo_minutes.to_string(),
            j.mpit_instances.to_string(),
            j.mpit_days.to_string(),
            text(&j.disks_replicated.join("; ")),
            text(&j.disks_excluded.join("; ")),
            j.replicated_capacity_bytes.to_string(),
            j.attempts.to_string(),
            time(j.started_at),
            time(j.finished_at),
            seconds(j.duration_ms),
            opt_text(&j.change_ticket),
            opt_text(&j.notes),
        ];
        w.write_record(
            record
                .into_iter()
                .chain(protection(report, j))
                .chain(operation(report, j))
                .chain(appliance(j)),
        )?;
    }
    finish(w)
}

/// The day-2 operation columns of a row: the batch's operation, for an operation batch's job
/// the configure batch and job it acts on and its parameters (`rpo=15; …`), for a configure
/// job what was done to its replication since (`2 pause succeeded; 4 unconfigure skipped`).
fn operation(report: &Report, j: &JobRow) -> [String; 5] {
    let since: Vec<String> = j
        .operations_since
        .iter()
        .map(|o| format!("{} {} {}", o.batch_id, o.operation, o.state))
        .collect();
    [
        report.batch.operation.to_string(),
        opt(report.batch.acts_on.as_ref().map(|a| a.id)),
        opt(j.acts_on_job),
        text(&j.operation.as_ref().map(parameters).unwrap_or_default()),
        since.join("; "),
    ]
}

/// The protection columns of a row: empty for a job not configured (every job of an operation
/// batch); a configured job nothing has followed yet is `not_followed`.
fn protection(report: &Report, j: &JobRow) -> [String; 11] {
    let Some(p) = &j.protection else {
        let mut cells: [String; 11] = Default::default();
        if report.batch.operation == Operation::Configure && j.state == JobState::Succeeded {
            cells[0] = "not_followed".into();
        }
        return cells;
    };
    [
        // The JSON report's word, so that scripts read one vocabulary.
        serde_json::to_value(p.readiness)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default(),
        text(&p.status),
        opt_text(&p.configuration_state),
        p.rpo_violation.to_string(),
        time(Some(p.configured_at)),
        time(p.protected_at),
        seconds(p.time_to_protected_ms),
        opt(p.copied_bytes),
        opt(p.total_bytes),
        opt_text(&p.error),
        time(p.seen_at),
    ]
}

/// The columns added with the appliance's own record (issue 17): the VR server the run chose
/// and the one the appliance put the replication on, whose time `protected_at` is, vrbulk's
/// first sighting and the appliance's end of the first sync and its length, and the vrbulk
/// batch that unconfigured or paused it.
fn appliance(j: &JobRow) -> [String; 8] {
    let p = j.protection.as_ref();
    [
        opt_text(&j.replication_server_chosen),
        p.and_then(|p| p.replication_server.as_deref())
            .map(text)
            .unwrap_or_default(),
        p.and_then(|p| p.protected_at_source)
            .map(|s| s.as_str().to_string())
            .unwrap_or_default(),
        time(p.and_then(|p| p.first_seen_protected_at)),
        time(p.and_then(|p| p.synced_at)),
        seconds(p.and_then(|p| p.initial_sync_duration_ms)),
        opt(p.and_then(|p| p.unconfigured_by)),
        opt(p.and_then(|p| p.paused_by)),
    ]
}

fn seconds(ms: Option<i64>) -> String {
    ms.map(|ms| format!("{:.3}", ms as f64 / 1000.0))
        .unwrap_or_default()
}

pub(super) fn plan(plan: &PlanReport) -> Result<String, ReportError> {
    let mut w = ::csv::Writer::from_writer(Vec::with_capacity(plan.jobs.len() * 200 + 256));
    w.write_record(PLAN_COLUMNS)?;
    for p in &plan.jobs {
        w.write_record([
            p.job_id.to_string(),
            text(&p.vm_name),
            opt_text(&p.vm_id),
            p.action.as_str().to_string(),
            opt_text(&p.reason),
            text(&p.target_datastore),
            opt_text(&p.storage_policy),
            opt_text(&p.replication_server),
            p.disks.to_string(),
            text(&p.excluded_disks.join("; ")),
            p.capacity_bytes.to_string(),
            text(&p.warnings.join("; ")),
            opt_text(&p.change_ticket),
            opt_text(&p.notes),
        ])?;
    }
    finish(w)
}

fn finish(w: ::csv::Writer<Vec<u8>>) -> Result<String, ReportError> {
    let bytes = w
        .into_inner()
        .map_err(|e| ReportError::Csv(e.into_error().into()))?;
    // Every cell is a Rust `String`, so the bytes are UTF-8; lossy only to avoid a panic path.
    Ok(String::from_utf8(bytes)
        .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()))
}

fn time(t: Option<UtcTime>) -> String {
    t.map(|t| t.to_string()).unwrap_or_default()
}

fn opt<T: ToString>(v: Option<T>) -> String {
    v.map(|v| v.to_string()).unwrap_or_default()
}

fn opt_text(v: &Option<String>) -> String {
    v.as_deref().map(text).unwrap_or_default()
}

/// Free text, defused for spreadsheets.
pub(crate) fn text(s: &str) -> String {
    if s.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{s}")
    } else {
        s.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formulas_are_defused_and_plain_text_is_left_alone() {
        assert_eq!(text("=HYPERLINK(\"x\")"), "'=HYPERLINK(\"x\")");
        assert_eq!(text("@SUM(A1)"), "'@SUM(A1)");
        assert_eq!(text("app-001"), "app-001");
        assert_eq!(text(""), "");
    }
}
