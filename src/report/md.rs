//! Markdown: GitHub-flavoured tables, readable as plain text too, for a change ticket or a
//! pull request. Every piece of text from the database goes through [`cell`], so a `|` in a
//! reason cannot break a table and a `<tag>` in a note cannot become HTML.

use std::fmt::Write as _;

use super::{bytes, span, PlanAction, PlanReport, Report, UtcTime};
use crate::queue::JobState;

pub(super) fn batch(r: &Report) -> String {
    let mut out = String::with_capacity(r.jobs.len() * 400 + 4096);
    let b = &r.batch;
    let _ = writeln!(
        out,
        "# Replication report: batch {} \"{}\"\n",
        b.id,
        cell(&b.name)
    );
    let p = &r.progress;
    if p.in_progress {
        let _ = writeln!(
            out,
            "> **In progress: {} of {} done.** This report shows where the batch stood at {}; \
             {} pending, {} running, {} retryable.\n",
            p.done,
            p.total,
            r.generated_at,
            r.summary.counts[&JobState::Pending],
            r.summary.counts[&JobState::Running],
            r.summary.counts[&JobState::Retryable],
        );
    } else {
        let _ = writeln!(
            out,
            "> **Complete: {} of {} done.** {} succeeded, {} skipped, {} failed, {} cancelled.\n",
            p.done,
            p.total,
            r.summary.counts[&JobState::Succeeded],
            r.summary.counts[&JobState::Skipped],
            r.summary.counts[&JobState::Failed],
            r.summary.counts[&JobState::Cancelled],
        );
    }

    out.push_str("## Audit\n\n| | |\n|---|---|\n");
    let mut row = |k: &str, v: String| {
        let _ = writeln!(out, "| {k} | {v} |");
    };
    row("Batch", format!("{} \"{}\"", b.id, cell(&b.name)));
    row("Change tickets", list(&b.change_tickets));
    row(
        "Operator",
        format!("{}@{}", cell(&b.operator), cell(&b.host)),
    );
    row("Tool", format!("vrbulk {}", cell(&b.tool_version)));
    row(
        "Input",
        format!(
            "{} {}",
            cell(&b.input_kind),
            b.input_path.as_deref().map_or("(none)".into(), code)
        ),
    );
    row(
        "Input SHA-256",
        b.input_sha256.as_deref().map_or("(none)".into(), code),
    );
    for s in &r.sites {
        row(
            "Sites",
            format!(
                "source {} → target {} (pairing {}, discovered {})",
                s.source_vcenter.as_deref().map_or("?".into(), cell),
                s.target_vcenter.as_deref().map_or("?".into(), cell),
                code(&s.pairing_id),
                s.discovered_at
            ),
        );
    }
    if r.sites.is_empty() {
        row(
            "Sites",
            "not discovered yet (no run reached the API)".into(),
        );
    }
    row("Imported", b.created_at.to_string());
    let runs = &r.runs;
    row(
        "Runs",
        match (runs.first_started_at, runs.last_started_at) {
            (Some(first), Some(last)) => format!(
                "{}: first started {first}, last started {last}{}{}",
                runs.count,
                runs.last_finished_at
                    .map(|t| format!(", last finished {t}"))
                    .unwrap_or_default(),
                runs.last_outcome
                    .as_deref()
                    .map(|o| format!(" ({})", cell(o)))
                    .unwrap_or_default()
            ),
            _ => "none yet".into(),
        },
    );
    row("Wall time", span(runs.wall_time_ms));
    row("Report generated", r.generated_at.to_string());
    let settings = serde_json::to_string_pretty(&b.settings).unwrap_or_default();
    let _ = writeln!(out, "\nEffective settings:\n\n```json\n{settings}\n```\n");

    out.push_str("## Summary\n\n| State | Jobs | Share |\n|---|---:|---:|\n");
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
        "# Replication plan: batch {} \"{}\"\n\n> **Dry run: nothing was configured.** {} to \
         configure, {} to skip, {} would fail; {} API calls (reads only).\n",
        b.id,
        cell(&b.name),
        p.counts.configure,
        p.counts.skip,
        p.counts.fail,
        p.api_calls
    );
    out.push_str("| | |\n|---|---|\n");
    let _ = writeln!(out, "| Change tickets | {} |", list(&b.change_tickets));
    let _ = writeln!(
        out,
        "| Operator | {}@{} |",
        cell(&b.operator),
        cell(&b.host)
    );
    let _ = writeln!(
        out,
        "| Input | {} {} |",
        cell(&b.input_kind),
        b.input_path.as_deref().map_or("(none)".into(), code)
    );
    let _ = writeln!(
        out,
        "| Input SHA-256 | {} |",
        b.input_sha256.as_deref().map_or("(none)".into(), code)
    );
    let _ = writeln!(out, "| Imported | {} |", b.created_at);
    let _ = writeln!(
        out,
        "| Capacity to replicate | {} ({} bytes) |",
        bytes(p.capacity_bytes),
        p.capacity_bytes
    );
    let _ = writeln!(out, "| Plan made | {} |\n", p.generated_at);

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
    if v.is_empty() {
        "—".into()
    } else {
        v.iter().map(|s| cell(s)).collect::<Vec<_>>().join(", ")
    }
}

fn time(t: Option<UtcTime>) -> String {
    t.map(|t| t.to_string()).unwrap_or_default()
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
