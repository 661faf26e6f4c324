//! What the Markdown and HTML renderers say alike: the rows of the audit table, the banner's
//! counts and the plan's summary line, in one place. A renderer supplies its [`Markup`]
//! (escaping, code, emphasis) and lays the rows out as its format wants; the facts, their
//! order and their words are decided here once.

use super::{bytes, span, BatchHeader, PlanReport, Report};
use crate::queue::JobState;

/// How a format marks up the pieces of an audit row.
pub(super) trait Markup {
    /// Text from the database, escaped for the format.
    fn text(&self, s: &str) -> String;

    /// An identifier (a path, a hash, a pairing id) as inline code.
    fn code(&self, s: &str) -> String;

    /// A name in quotation marks.
    fn quoted(&self, s: &str) -> String;

    /// Already marked-up text the reader's eye should find (a site's vCenter).
    fn strong(&self, s: String) -> String {
        s
    }

    /// Already marked-up text of less weight (a remark in parentheses).
    fn muted(&self, s: String) -> String {
        s
    }

    /// Texts separated by commas; a dash when there are none.
    fn list(&self, v: &[String]) -> String {
        if v.is_empty() {
            "\u{2014}".into()
        } else {
            v.iter()
                .map(|s| self.text(s))
                .collect::<Vec<_>>()
                .join(", ")
        }
    }
}

/// One row of the audit table: its label and its marked-up value.
pub(super) type Row = (&'static str, String);

/// The audit rows of a batch report.
pub(super) fn batch_rows(r: &Report, m: &impl Markup) -> Vec<Row> {
    let b = &r.batch;
    let mut rows = vec![
        ("Batch", format!("{} {}", b.id, m.quoted(&b.name))),
        change_tickets(b, m),
        operator(b, m),
        ("Tool", format!("vrbulk {}", m.text(&b.tool_version))),
    ];
    rows.extend(input(b, m));
    for s in &r.sites {
        let vcenter = |v: &Option<String>| m.strong(m.text(v.as_deref().unwrap_or("?")));
        rows.push((
            "Sites",
            format!(
                "source {} \u{2192} target {} {}",
                vcenter(&s.source_vcenter),
                vcenter(&s.target_vcenter),
                m.muted(format!(
                    "(pairing {}, discovered {})",
                    m.code(&s.pairing_id),
                    s.discovered_at
                ))
            ),
        ));
    }
    if r.sites.is_empty() {
        rows.push((
            "Sites",
            "not discovered yet (no run reached the API)".into(),
        ));
    }
    rows.push(imported(b));
    let runs = &r.runs;
    rows.push((
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
                    .map(|o| format!(" ({})", m.text(o)))
                    .unwrap_or_default()
            ),
            _ => "none yet".into(),
        },
    ));
    rows.push(("Wall time", span(runs.wall_time_ms)));
    rows.push(("Report generated", r.generated_at.to_string()));
    rows
}

/// The audit rows of a plan.
pub(super) fn plan_rows(p: &PlanReport, m: &impl Markup) -> Vec<Row> {
    let b = &p.batch;
    let mut rows = vec![change_tickets(b, m), operator(b, m)];
    rows.extend(input(b, m));
    rows.push(imported(b));
    rows.push((
        "Capacity to replicate",
        format!("{} ({} bytes)", bytes(p.capacity_bytes), p.capacity_bytes),
    ));
    rows.push(("Plan made", p.generated_at.to_string()));
    rows
}

fn change_tickets(b: &BatchHeader, m: &impl Markup) -> Row {
    ("Change tickets", m.list(&b.change_tickets))
}

fn operator(b: &BatchHeader, m: &impl Markup) -> Row {
    (
        "Operator",
        format!("{}@{}", m.text(&b.operator), m.text(&b.host)),
    )
}

/// The input file and its hash.
fn input(b: &BatchHeader, m: &impl Markup) -> [Row; 2] {
    let code = |v: &Option<String>| v.as_deref().map_or("(none)".into(), |s| m.code(s));
    [
        (
            "Input",
            format!("{} {}", m.text(&b.input_kind), code(&b.input_path)),
        ),
        ("Input SHA-256", code(&b.input_sha256)),
    ]
}

fn imported(b: &BatchHeader) -> Row {
    ("Imported", b.created_at.to_string())
}

/// The banner of a batch report: its headline (`Complete: 9 of 9 done.`) and the counts that
/// follow it, without the final full stop.
pub(super) struct Banner {
    pub in_progress: bool,
    pub headline: String,
    pub counts: String,
}

pub(super) fn banner(r: &Report) -> Banner {
    let p = &r.progress;
    let c = &r.summary.counts;
    if p.in_progress {
        Banner {
            in_progress: true,
            headline: format!("In progress: {} of {} done.", p.done, p.total),
            counts: format!(
                "{} pending, {} running, {} retryable",
                c[&JobState::Pending],
                c[&JobState::Running],
                c[&JobState::Retryable]
            ),
        }
    } else {
        Banner {
            in_progress: false,
            headline: format!("Complete: {} of {} done.", p.done, p.total),
            counts: format!(
                "{} succeeded, {} skipped, {} failed, {} cancelled",
                c[&JobState::Succeeded],
                c[&JobState::Skipped],
                c[&JobState::Failed],
                c[&JobState::Cancelled]
            ),
        }
    }
}

/// What a plan would do, after its `Dry run: nothing was configured.` headline.
pub(super) fn plan_counts(p: &PlanReport) -> String {
    format!(
        "{} to configure, {} to skip, {} would fail; {} API calls (reads only).",
        p.counts.configure, p.counts.skip, p.counts.fail, p.api_calls
    )
}

/// The plan's headline.
pub(super) const DRY_RUN: &str = "Dry run: nothing was configured.";
