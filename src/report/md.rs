//! Markdown: GitHub-flavoured tables, readable as plain text too, for a change ticket or a
//! pull request. The VM table is already wide, so each VM's protection gets a table of its own. Every piece of text from the database goes through [`cell`], so a `|` in a
//! reason cannot break a table and a `<tag>` in a note cannot become HTML.

use std::fmt::Write as _;

use super::audit::{self, Markup};
use super::{bytes, span, JobProtection, PlanReport, Report, UtcTime};
use crate::queue::{JobState, Readiness};
use crate::workflow::PlanAction;

pub(super) fn batch(r: &Report) -> String {
    let mut out = String::with_capacity(r.jobs.len() * 400 + 4096);
    let b = &r.batch;
    let _ = writeln!(
        out,
        "# Replication report: batch {} {}\n",
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
    let settings = serde_json::to_string_pretty(&b.settings).unwrap_or_default();
    let _ = writeln!(out, "\nEffective settings:\n\n```json\n{settings}\n```\n");

    let _ = writeln!(out, "## Summary\n\n{}\n", audit::readiness(r, &Markdown));
    out.push_str("| State | Jobs | Share |\n|---|---:|---:|\n");
    for (state, n) in &r.summary.counts {
        let _ = writeln!(out, "| {state} | {n} | {:.1}% |", r.summary.percent[state]);
    }
    let _ = writeln!(out, "| **total** | **{}** | 100.0% |\n", r.summary.total);
    let s = &r.summary;
    let _ = writeln!(
        out,
        "Replicated capacity: **{}** ({} bytes) on {} succeeded VMs. Job retries: {}. \
         Re-logins: {}.\n",
        bytes(s.replicated_capacity_bytes),
        s.replicated_capacity_bytes,
        s.counts[&JobState::Succeeded],
        s.job_retries,
        s.relogins
    );
    out.push_str("### API calls\n\n");
    if s.api_calls.is_empty() {
        out.push_str("No API calls recorded.\n\n");
    } else {
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

    protection(&mut out, r);

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

    out.push_str(
        "## Virtual machines\n\n\
         | VM | VM id | State | Reason | Replication | Task | Datastore | Policy | RPO | MPIT | \
         Disks replicated | Disks excluded | Attempts | Started | Finished | Duration | \
         Change ticket | Notes |\n\
         |---|---|---|---|---|---|---|---|---:|---|---|---|---:|---|---|---:|---|---|\n",
    );
    for j in &r.jobs {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} min | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            cell(&j.vm_name),
            opt(&j.vm_id),
            j.state,
            opt(&j.reason),
            opt(&j.replication_id),
            opt(&j.task_id),
            cell(&j.target_datastore),
            j.storage_policy.as_deref().map_or("(datastore default)".into(), cell),
            j.rpo_minutes,
            mpit(j.mpit_instances, j.mpit_days),
            list(&j.disks_replicated),
            list(&j.disks_excluded),
            j.attempts,
            time(j.started_at),
            time(j.finished_at),
            j.duration_ms.map(span).unwrap_or_default(),
            opt(&j.change_ticket),
            opt(&j.notes),
        );
    }

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
            t.state,
            t.claims
        );
    }
    out
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
    let _ = writeln!(
        out,
        " As last seen {}:\n\n| Readiness | VMs |\n|---|---:|",
        time(p.last_seen_at)
    );
    for readiness in Readiness::ALL {
        let _ = writeln!(out, "| {} | {} |", readiness.as_str(), p.count(readiness));
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

/// The replication of each configured VM, in import order; times in UTC.
fn protection_per_vm(out: &mut String, r: &Report) {
    out.push_str(
        "\n### Per VM\n\nTimes in UTC.\n\n\
         | VM | Readiness | Replication status | RPO | Configured | Protected | \
         Time to protected | Initial sync |\n\
         |---|---|---|---|---|---|---:|---|\n",
    );
    for j in r
        .jobs
        .iter()
        .filter(|j| j.protection.is_some() || audit::not_followed(j))
    {
        let Some(p) = &j.protection else {
            let _ = writeln!(
                out,
                "| {} | not followed yet |  | {} min | {} |  |  |  |",
                cell(&j.vm_name),
                j.rpo_minutes,
                bare_time(j.finished_at)
            );
            continue;
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            cell(&j.vm_name),
            p.readiness.as_str(),
            replication_status(p),
            audit::rpo_state(j.rpo_minutes, p),
            bare_time(Some(p.configured_at)),
            bare_time(p.protected_at),
            p.time_to_protected_ms.map(span).unwrap_or_default(),
            audit::copied(p)
        );
    }
    out.push('\n');
}

/// The appliance's status as code, with the configuration state when it is not `OK` and the
/// error in the appliance's words.
fn replication_status(p: &JobProtection) -> String {
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
    t.map(|t| t.to_string().trim_end_matches(" UTC").to_string())
        .unwrap_or_default()
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
