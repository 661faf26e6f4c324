//! Markdown: GitHub-flavoured tables, readable as plain text too, for a change ticket or a
//! pull request, and narrow enough for a terminal: the VM table keeps the columns an operator
//! scans (VM, state, replication, where, why) and leaves the rest to a details table; each VM's
//! protection and the times of each job have tables of their own. Every piece of text from the
//! database goes through [`cell`], so a `|` in a reason cannot break a table and a `<tag>` in a
//! note cannot become HTML.

use std::fmt::Write as _;

use super::audit::{self, Markup};
use super::operations::{describe, state_word};
use super::settings;
use super::{bytes, span, JobProtection, PlanReport, Report, UtcTime};
use crate::domain::Operation;
use crate::queue::{JobState, Readiness};
use crate::workflow::PlanAction;

pub(super) fn batch(r: &Report) -> String {
    let mut out = String::with_capacity(r.jobs.len() * 400 + 4096);
    let b = &r.batch;
    let _ = writeln!(
        out,
        "# {}: batch {} {}\n",
        audit::title(b),
        b.id,
        Markdown.quoted(&b.name)
    );
    let banner = audit::banner(r);
    if banner.in_progress {
        let _ = writeln!(
            out,
            "> **{}** This report shows where the batch stood at {}; {}.\n",
            banner.headline, r.generated_at, banner.counts
        );
    } else {
        let _ = writeln!(out, "> **{}** {}.\n", banner.headline, banner.counts);
    }

    out.push_str("## Audit\n\n");
    audit_table(&mut out, &audit::batch_rows(r, &Markdown));
    effective_settings(&mut out, r);
    summary(&mut out, r);
    if b.operation == Operation::Configure {
        protection(&mut out, r);
        link(&mut out, r);
    }
    super::compliance::markdown(&mut out, &r.compliance);
    failures(&mut out, r);
    if b.operation != Operation::Configure {
        skipped(&mut out, r);
    }
    operations_since(&mut out, r);
    operator_actions(&mut out, r);
    if b.operation == Operation::Configure {
        vm_tables(&mut out, r);
    } else {
        operation_vm_tables(&mut out, r);
    }
    timeline(&mut out, r);
    out
}

/// What the import recorded, and each run: where it ran, how it ended, and what it used.
fn effective_settings(out: &mut String, r: &Report) {
    let settings = serde_json::to_string_pretty(&r.batch.settings).unwrap_or_default();
    let _ = writeln!(
        out,
        "\n### Effective settings\n\nWhat the import recorded:\n\n```json\n{settings}\n```\n"
    );
    let runs = &r.runs.list;
    if runs.is_empty() {
        out.push_str("No run yet.\n\n");
        return;
    }
    out.push_str("What each run used:\n\n|");
    for i in 1..=runs.len() {
        let _ = write!(out, " | Run {i}");
    }
    out.push_str(" |\n|---|");
    out.push_str(&"---|".repeat(runs.len()));
    out.push('\n');
    for (label, cells) in settings::run_rows(runs) {
        let cells: Vec<String> = cells.iter().map(|c| cell(c)).collect();
        let _ = writeln!(out, "| {label} | {} |", cells.join(" | "));
    }
    out.push('\n');
    if !settings::recorded(runs) {
        let _ = writeln!(out, "{}\n", settings::NOT_RECORDED);
    }
}

/// The readiness (or, for an operation batch, what it did), the jobs per state, and what the
/// API calls cost.
fn summary(out: &mut String, r: &Report) {
    let s = &r.summary;
    let operation = r.batch.operation;
    let sentence = if operation == Operation::Configure {
        audit::readiness(r, &Markdown)
    } else {
        audit::outcome(r)
    };
    let _ = writeln!(out, "## Summary\n\n{sentence}\n");
    out.push_str("| State | Jobs | Share |\n|---|---:|---:|\n");
    for (state, n) in &s.counts {
        let _ = writeln!(
            out,
            "| {} | {n} | {:.1}% |",
            state_word(operation, *state),
            s.percent[state]
        );
    }
    let _ = writeln!(out, "| **total** | **{}** | 100.0% |\n", s.total);
    if operation == Operation::Configure {
        let _ = write!(
            out,
            "Replicated capacity: **{}** ({} bytes) on {} succeeded VMs. ",
            bytes(s.replicated_capacity_bytes),
            s.replicated_capacity_bytes,
            s.counts[&JobState::Succeeded],
        );
    }
    let _ = writeln!(
        out,
        "Job retries: {}. Re-logins: {}.\n",
        s.job_retries, s.relogins
    );
    api_calls(out, r);
}

fn api_calls(out: &mut String, r: &Report) {
    let s = &r.summary;
    out.push_str("### API calls\n\n");
    if s.api_calls.is_empty() {
        out.push_str("No API calls recorded.\n\n");
        return;
    }
    out.push_str(
        "| Operation | Calls | Throttled (429) | Server errors (5xx) | Retries |\n\
         |---|---:|---:|---:|---:|\n",
    );
    for c in &s.api_calls {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} |",
            cell(&c.operation),
            c.calls,
            c.throttled,
            c.server_errors,
            c.retries
        );
    }
    let t = &s.api_total;
    let _ = writeln!(
        out,
        "| **total** | **{}** | **{}** | **{}** | **{}** |\n",
        t.calls, t.throttled, t.server_errors, t.retries
    );
}

fn failures(out: &mut String, r: &Report) {
    out.push_str("## Failures by cause\n\n");
    if r.failures.is_empty() {
        out.push_str("No job failed.\n\n");
    }
    for g in &r.failures {
        let _ = writeln!(
            out,
            "### {} × {}\n\n- Kind: {}\n- Example: {}\n- Next step: {}\n- VMs: {}\n",
            g.count,
            cell(&g.cause),
            serde_json::to_value(g.kind)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default(),
            cell(&g.example),
            g.next_step,
            list(&g.vms)
        );
    }
}

/// An operation batch's skipped jobs by reason: what it left alone, and why.
fn skipped(out: &mut String, r: &Report) {
    out.push_str("## Skipped\n\n");
    if r.skipped.is_empty() {
        out.push_str("No job was skipped.\n\n");
        return;
    }
    out.push_str("Left alone, each for the reason given.\n\n");
    for g in &r.skipped {
        let _ = writeln!(
            out,
            "### {} × {}\n\n- Example: {}\n- VMs: {}\n",
            g.count,
            cell(&g.cause),
            cell(&g.example),
            list(&g.vms)
        );
    }
}

/// Requeues (with what the operator corrected) and cancels, in the events' words.
fn operator_actions(out: &mut String, r: &Report) {
    if r.operator_actions.is_empty() {
        return;
    }
    out.push_str(
        "## Changes by the operator

| When | VM | What |\n|---|---|---|\n",
    );
    for a in &r.operator_actions {
        let _ = writeln!(out, "| {} | {} | {} |", a.at, cell(&a.vm), cell(&a.action));
    }
    out.push('\n');
}

/// The operation batches applied to a configure batch since, with their jobs per state.
fn operations_since(out: &mut String, r: &Report) {
    if r.operations_since.is_empty() {
        return;
    }
    out.push_str(
        "## Operations since\n\nDay-2 operations on this batch's replications since it was \
         configured, oldest first; each has a report of its own.\n\n\
         | Batch | Operation | Created | Operator | Jobs | Report |\n|---|---|---|---|---|---|\n",
    );
    for o in &r.operations_since {
        let b = &o.batch;
        let _ = writeln!(
            out,
            "| {} {} | {} | {} | {} | {} | {} |",
            b.id,
            Markdown.quoted(&b.name),
            cell(&audit::specs(&o.operation_specs)),
            b.created_at,
            cell(&b.operator),
            audit::state_counts(b.operation, &o.counts),
            code(&format!("vrbulk report --batch {}", b.id))
        );
    }
    out.push('\n');
    if let Some(gone) = audit::unconfigured_since(r, &Markdown) {
        let _ = writeln!(out, "{gone}\n");
    }
}

/// A configure batch's VMs: one narrow table to scan (a VM named by its id shows as its moref
/// there), one with the details; times in the timeline.
fn vm_tables(out: &mut String, r: &Report) {
    out.push_str(
        "## Virtual machines\n\n\
         | VM | State | Replication | Datastore | VR server | RPO | Reason |\n\
         |---|---|---|---|---|---:|---|\n",
    );
    for j in &r.jobs {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} min | {} |",
            cell(audit::short_name(&j.vm_name)),
            j.state,
            opt(&j.replication_id),
            cell(&j.target_datastore),
            cell(&audit::vr_server(j)),
            j.rpo_minutes,
            opt(&j.reason),
        );
    }
    // What was done to each replication since, only when something was.
    let since = !r.operations_since.is_empty();
    out.push_str(
        "\n### Details\n\n\
         | VM | VM id | Task | Policy | MPIT | Disks replicated | Disks excluded | Attempts | \
         Duration | Change ticket | Notes |",
    );
    out.push_str(if since { " Since |\n" } else { "\n" });
    out.push_str("|---|---|---|---|---|---|---|---:|---:|---|---|");
    out.push_str(if since { "---|\n" } else { "\n" });
    for j in &r.jobs {
        let _ = write!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            cell(&j.vm_name),
            opt(&j.vm_id),
            opt(&j.task_id),
            j.storage_policy
                .as_deref()
                .map_or("(datastore default)".into(), cell),
            mpit(j.mpit_instances, j.mpit_days),
            list(&j.disks_replicated),
            list(&j.disks_excluded),
            j.attempts,
            j.duration_ms.map(span).unwrap_or_default(),
            opt(&j.change_ticket),
            opt(&j.notes),
        );
        if since {
            let _ = write!(out, " {} |", cell(&audit::since(j)));
        }
        out.push('\n');
    }
}

/// An operation batch's VMs: what happened to each one's replication, and the configure job
/// it came from; the details after.
fn operation_vm_tables(out: &mut String, r: &Report) {
    let operation = r.batch.operation;
    let _ = writeln!(
        out,
        "## Virtual machines\n\nEach job acts on the replication a job of batch {} configured.\n\n\
         | VM | State | Configure job | Replication | Reason |\n|---|---|---:|---|---|",
        r.batch.acts_on.as_ref().map_or(0, |a| a.id)
    );
    for j in &r.jobs {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} |",
            cell(audit::short_name(&j.vm_name)),
            state_word(operation, j.state),
            j.acts_on_job.map(|id| id.to_string()).unwrap_or_default(),
            opt(&j.replication_id),
            opt(&j.reason),
        );
    }
    // Each job's operation only when they differ (a reconfigure from a file); else the audit
    // says it once.
    let per_job = r.batch.operation_specs.len() > 1;
    out.push_str("\n### Details\n\n| VM | VM id | Task | Attempts | Duration |");
    out.push_str(if per_job { " Operation |\n" } else { "\n" });
    out.push_str("|---|---|---|---:|---:|");
    out.push_str(if per_job { "---|\n" } else { "\n" });
    for j in &r.jobs {
        let _ = write!(
            out,
            "| {} | {} | {} | {} | {} |",
            cell(&j.vm_name),
            opt(&j.vm_id),
            opt(&j.task_id),
            j.attempts,
            j.duration_ms.map(span).unwrap_or_default(),
        );
        if per_job {
            let what = j.operation.as_ref().map(describe).unwrap_or_default();
            let _ = write!(out, " {} |", cell(&what));
        }
        out.push('\n');
    }
}

/// When each job started and ended, from the event log.
fn timeline(out: &mut String, r: &Report) {
    out.push_str(
        "\n## Timeline\n\nFirst claim and final event of each job, from the event log, \
         earliest first.\n\n| Started | Ended | VM | State | Claims |\n|---|---|---|---|---:|\n",
    );
    let mut order: Vec<&super::TimelineEntry> = r.timeline.iter().collect();
    order.sort_by_key(|t| (t.started_at.is_none(), t.started_at, t.job_id));
    for t in order {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} |",
            time(t.started_at),
            time(t.ended_at),
            cell(&t.vm_name),
            state_word(r.batch.operation, t.state),
            t.claims
        );
    }
}

pub(super) fn plan(p: &PlanReport) -> String {
    let mut out = String::with_capacity(p.jobs.len() * 300 + 2048);
    let b = &p.batch;
    let _ = writeln!(
        out,
        "# Replication plan: batch {} {}\n\n> **{}** {}\n",
        b.id,
        Markdown.quoted(&b.name),
        audit::DRY_RUN,
        audit::plan_counts(p)
    );
    audit_table(&mut out, &audit::plan_rows(p, &Markdown));
    out.push('\n');

    out.push_str("| Action | Jobs |\n|---|---:|\n");
    for a in PlanAction::ALL {
        let _ = writeln!(out, "| {} | {} |", a.as_str(), p.count(a));
    }
    if !p.link.is_empty() {
        out.push_str("\n## Initial syncs\n");
        for f in &p.link {
            let _ = writeln!(out, "\n{}", prose(&f.words()));
        }
    }
    out.push_str(
        "\n## Virtual machines\n\n| VM | VM id | Action | Reason | Datastore | Policy | \
         VR server | Disks | Excluded disks | Capacity | Warnings | Change ticket | Notes |\n\
         |---|---|---|---|---|---|---|---:|---|---:|---|---|---|\n",
    );
    for j in &p.jobs {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            cell(&j.vm_name),
            opt(&j.vm_id),
            j.action.as_str(),
            opt(&j.reason),
            cell(&j.target_datastore),
            j.storage_policy
                .as_deref()
                .map_or("(datastore default)".into(), cell),
            j.replication_server.as_deref().map_or("auto".into(), cell),
            j.disks,
            list(&j.excluded_disks),
            bytes(j.capacity_bytes),
            list(&j.warnings),
            opt(&j.change_ticket),
            opt(&j.notes),
        );
    }
    out
}

/// A sentence whose `code spans` stay code and whose other words are escaped as in a cell.
fn prose(s: &str) -> String {
    s.split('`')
        .enumerate()
        .map(|(i, part)| {
            if i % 2 == 1 {
                format!("`{part}`")
            } else {
                cell(part)
            }
        })
        .collect()
}

/// Configured is not protected: the configured VMs by readiness, when they became protected,
/// and each one's replication.
fn protection(out: &mut String, r: &Report) {
    let p = &r.summary.protection;
    out.push_str(
        "## Protection\n\nA job succeeded when its replication was configured; the VM is \
         protected once its replication is `OK` after its initial full sync.",
    );
    if p.configured == 0 {
        out.push_str(" No VM of this batch is configured.\n\n");
        return;
    }
    if p.configured == p.not_followed {
        out.push_str(" Nothing has followed this batch's replications yet.\n\n");
        return;
    }
    let seen = match p.last_seen_at {
        Some(at) => format!("As last seen {at}"),
        None => "Not seen by `run` or `watch` yet".into(),
    };
    let _ = writeln!(out, " {seen}:\n\n| Readiness | VMs |\n|---|---:|");
    for readiness in Readiness::ALL {
        // The first four always, as a checklist; the rest only when there are some.
        let listed = matches!(
            readiness,
            Readiness::Syncing | Readiness::Protected | Readiness::NotActive | Readiness::Error
        );
        if listed || p.count(readiness) > 0 {
            let _ = writeln!(out, "| {} | {} |", readiness.as_str(), p.count(readiness));
        }
    }
    if p.not_followed > 0 {
        let _ = writeln!(out, "| not followed yet | {} |", p.not_followed);
    }
    let mean = p
        .mean_time_to_protected_ms
        .map(|ms| format!(" Mean time to protected: {}.", span(ms)))
        .unwrap_or_default();
    let _ = writeln!(
        out,
        "| **configured** | **{}** |\n\nProtected VMs now behind their RPO: {}.{mean}\n",
        p.configured, p.rpo_violation
    );
    out.push_str("| Protected | At | Since the first configure |\n|---|---|---:|\n");
    for (label, at, since) in audit::milestones(r) {
        let _ = writeln!(
            out,
            "| {label} | {} | {} |",
            at.map_or("not yet".into(), |t| t.to_string()),
            since.map(span).unwrap_or_default()
        );
    }
    protection_per_vm(out, r);
}

/// What admission measured of each pairing's link, in words; the series itself is in the JSON
/// report and charted in the HTML one. Nothing when no run measured a link.
fn link(out: &mut String, r: &Report) {
    if r.link.is_empty() {
        return;
    }
    out.push_str(
        "## Replication link\n\nWhat the runs measured while they admitted the wave: the \
         initial syncs' throughput in all, and how many syncs they let run at once.\n\n",
    );
    for l in &r.link {
        let _ = writeln!(out, "- **{}**: {}", cell(&l.name()), l.summary());
    }
    out.push('\n');
}

/// The replication of each configured VM, in import order; times in UTC.
fn protection_per_vm(out: &mut String, r: &Report) {
    let _ = write!(
        out,
        "\n### Per VM\n\n{}\n\n\
         | VM | Readiness | Replication status | RPO | VR server | Configured | Protected | \
         Time to protected | Initial sync |\n\
         |---|---|---|---|---|---|---|---:|---|\n",
        audit::TIMES
    );
    for j in r
        .jobs
        .iter()
        .filter(|j| j.protection.is_some() || audit::not_followed(j))
    {
        let Some(p) = &j.protection else {
            let _ = writeln!(
                out,
                "| {} | not followed yet |  | {} min | {} | {} |  |  |  |",
                cell(&j.vm_name),
                j.rpo_minutes,
                cell(&audit::vr_server(j)),
                bare_time(j.finished_at)
            );
            continue;
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            cell(&j.vm_name),
            cell(&p.words),
            replication_status(p),
            audit::rpo_state(j.rpo_minutes, p),
            cell(&audit::vr_server(j)),
            bare_time(Some(p.configured_at)),
            cell(&audit::protected_time(p)),
            p.time_to_protected_ms.map(span).unwrap_or_default(),
            audit::copied(p)
        );
    }
    out.push('\n');
}

/// The appliance's status as code, with the configuration state when it is not `OK` and the
/// error in the appliance's words.
fn replication_status(p: &JobProtection) -> String {
    // What the appliance last said of a replication vrbulk removed since is history.
    if p.status.is_empty() || p.readiness == Readiness::Unconfigured {
        return "\u{2014}".into();
    }
    let mut text = code(&p.status);
    if let Some(state) = p.configuration_state.as_deref().filter(|s| *s != "OK") {
        let _ = write!(text, " (configuration {})", code(state));
    }
    if let Some(error) = &p.error {
        let _ = write!(text, ": {}", cell(error));
    }
    text
}

/// A two-column table of audit rows.
fn audit_table(out: &mut String, rows: &[audit::Row]) {
    out.push_str("| | |\n|---|---|\n");
    for (k, v) in rows {
        let _ = writeln!(out, "| {k} | {v} |");
    }
}

/// Markdown's marks for the text the renderers share.
struct Markdown;

impl Markup for Markdown {
    fn text(&self, s: &str) -> String {
        cell(s)
    }

    fn code(&self, s: &str) -> String {
        code(s)
    }

    fn quoted(&self, s: &str) -> String {
        format!("\"{}\"", cell(s))
    }
}

/// Text made safe for a table cell (and for running text): `|` and Markdown's inline
/// punctuation are backslash-escaped, `<`/`>`/`&` become entities so no HTML gets through, and
/// line breaks become `<br>` so a multi-line note stays in its row.
pub(crate) fn cell(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '|' | '\\' | '`' | '*' | '_' | '[' | ']' | '~' => {
                out.push('\\');
                out.push(c);
            }
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '\r' => {
                if chars.peek() != Some(&'\n') {
                    out.push_str("<br>");
                }
            }
            '\n' => out.push_str("<br>"),
            c => out.push(c),
        }
    }
    out
}

/// An identifier as inline code; a backtick inside (never seen in practice) falls back to
/// escaped text, since a code span cannot escape it.
fn code(s: &str) -> String {
    if s.contains(['`', '\n', '\r', '|']) {
        cell(s)
    } else {
        format!("`{s}`")
    }
}

fn opt(v: &Option<String>) -> String {
    v.as_deref().map(cell).unwrap_or_default()
}

fn list(v: &[String]) -> String {
    Markdown.list(v)
}

fn time(t: Option<UtcTime>) -> String {
    t.map(|t| t.to_string()).unwrap_or_default()
}

/// A time in a table whose caption says UTC.
fn bare_time(t: Option<UtcTime>) -> String {
    t.map(audit::bare).unwrap_or_default()
}

pub(crate) fn mpit(instances: u32, days: u32) -> String {
    if instances == 0 {
        "off".into()
    } else {
        format!("{instances}/day × {days} d")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pipe_cannot_break_a_table_and_html_cannot_get_through() {
        assert_eq!(cell("a|b"), "a\\|b");
        assert_eq!(cell("<script>x</script>"), "&lt;script&gt;x&lt;/script&gt;");
        assert_eq!(
            cell("line 1\r\nline 2\nline 3"),
            "line 1<br>line 2<br>line 3"
        );
        assert_eq!(
            cell("*bold* `code` [link](x)"),
            "\\*bold\\* \\`code\\` \\[link\\](x)"
        );
        assert_eq!(cell("a & b"), "a &amp; b");
        assert_eq!(cell("ds-gold-01"), "ds-gold-01");
    }

    #[test]
    fn identifiers_are_code_unless_they_could_escape_it() {
        assert_eq!(code("vms.csv"), "`vms.csv`");
        assert_eq!(code("a`b"), "a\\`b");
    }
}
