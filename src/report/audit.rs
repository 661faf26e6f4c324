//! What the Markdown and HTML renderers say alike: the title, the rows of the audit table (with
//! an operation batch's operation and the batch it acts on), the banner's counts in the
//! operation's words, the sentence that says which VMs are ready (or what an operation did), the
//! protection milestones, the operations applied since and the plan's summary line, in one
//! place. A renderer supplies its [`Markup`] (escaping, code, emphasis)
//! and lays the rows out as its format wants; the facts, their order and their words are
//! decided here once.

use super::operations::{describe, done_word, state_word, OperationSpecCount};
use super::{bytes, span, BatchHeader, JobProtection, JobRow, PlanReport, Report, UtcTime};
use crate::domain::Operation;
use crate::queue::{JobState, Readiness};

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

/// The title of a batch's report: `Replication report` for a configure batch, `Unconfigure
/// report`, `Pause report`, … for an operation batch.
pub(super) fn title(b: &BatchHeader) -> String {
    match b.operation {
        Operation::Configure => "Replication report".into(),
        other => {
            let word = other.as_str();
            format!("{}{} report", word[..1].to_ascii_uppercase(), &word[1..])
        }
    }
}

/// The audit rows of a batch report.
pub(super) fn batch_rows(r: &Report, m: &impl Markup) -> Vec<Row> {
    let b = &r.batch;
    let mut rows = vec![("Batch", format!("{} {}", b.id, m.quoted(&b.name)))];
    rows.extend(operation_rows(r, m));
    rows.extend([
        change_tickets(b, m),
        operator(b, m),
        ("Tool", format!("vrbulk {}", m.text(&b.tool_version))),
    ]);
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

/// What an operation batch did and the batch it acted on; for a configure batch, the
/// operations applied to it since.
fn operation_rows(r: &Report, m: &impl Markup) -> Vec<Row> {
    let b = &r.batch;
    if b.operation == Operation::Configure {
        let since = &r.operations_since;
        let listed: Vec<String> = since
            .iter()
            .map(|o| format!("batch {} {}", o.batch.id, o.batch.operation))
            .collect();
        let value = if since.is_empty() {
            "none".to_string()
        } else {
            format!("{} (below): {}", since.len(), listed.join(", "))
        };
        return vec![("Operations since", value)];
    }
    let mut rows = vec![("Operation", m.text(&specs(&b.operation_specs)))];
    if let Some(a) = &b.acts_on {
        rows.push((
            "Acts on",
            format!(
                "batch {} {}, imported {} by {}; its report: {}",
                a.id,
                m.quoted(&a.name),
                a.created_at,
                m.text(&a.operator),
                m.code(&format!("vrbulk report --batch {}", a.id))
            ),
        ));
    }
    rows
}

/// What an operation batch's jobs do: one spec in words, or each with how many VMs it is for.
pub(super) fn specs(specs: &[OperationSpecCount]) -> String {
    match specs {
        [] => "\u{2014}".into(),
        [one] => describe(&one.spec),
        many => many
            .iter()
            .map(|c| format!("{} ({} VMs)", describe(&c.spec), c.jobs))
            .collect::<Vec<_>>()
            .join("; "),
    }
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
    if let Some(c) = &p.capacity {
        rows.push((
            "Appliance limits",
            format!(
                "{}: {}",
                m.text(&c.limits.appliance()),
                m.text(&c.limits.summary())
            ),
        ));
        for l in &c.learnt {
            rows.push((
                "VR server limit learnt",
                format!(
                    "{} counted full at {} replications: the appliance refused a VM onto it at \
                     {}: {}",
                    m.code(&l.server_name),
                    l.replications,
                    crate::timefmt::utc(l.learnt_at),
                    m.text(&l.words)
                ),
            ));
        }
    }
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

/// The input file and its hash; an operation batch made from `--batch N` has no file, its
/// input is that batch's replications.
fn input(b: &BatchHeader, m: &impl Markup) -> [Row; 2] {
    let code = |v: &Option<String>| v.as_deref().map_or("(none)".into(), |s| m.code(s));
    let input = match (&b.acts_on, &b.input_path) {
        (Some(a), None) => format!("the replications of batch {} (no input file)", a.id),
        _ => format!("{} {}", m.text(&b.input_kind), code(&b.input_path)),
    };
    [("Input", input), ("Input SHA-256", code(&b.input_sha256))]
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
    let done = done_word(r.batch.operation);
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
                "{} {done}, {} skipped, {} failed, {} cancelled",
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

/// What an operation batch did, in one sentence: `Of the 4 replications batch 1 configured, 2
/// were unconfigured, 1 was skipped (left alone, for the reason below) and 1 failed.`
pub(super) fn outcome(r: &Report) -> String {
    let c = &r.summary.counts;
    let n = |s: JobState| c.get(&s).copied().unwrap_or(0);
    let was = |k: u64| if k == 1 { "was" } else { "were" };
    let done = n(JobState::Succeeded);
    let mut parts = vec![format!(
        "{done} {} {}",
        was(done),
        done_word(r.batch.operation)
    )];
    let skipped = n(JobState::Skipped);
    if skipped > 0 {
        let reasons = if r.skipped.len() == 1 {
            "the reason"
        } else {
            "the reasons"
        };
        parts.push(format!(
            "{skipped} {} skipped (left alone, for {reasons} below)",
            was(skipped)
        ));
    }
    let failed = n(JobState::Failed);
    if failed > 0 {
        parts.push(format!("{failed} failed"));
    }
    let cancelled = n(JobState::Cancelled);
    if cancelled > 0 {
        parts.push(format!("{cancelled} {} cancelled", was(cancelled)));
    }
    let open = n(JobState::Pending) + n(JobState::Running) + n(JobState::Retryable);
    if open > 0 {
        parts.push(format!("{open} {} not done yet", is(open)));
    }
    let whose = match &r.batch.acts_on {
        Some(a) => format!(
            "the {} replications batch {} configured",
            r.summary.total, a.id
        ),
        None => format!("its {} replications", r.summary.total),
    };
    let last = parts.pop().unwrap_or_default();
    let listed = if parts.is_empty() {
        last
    } else {
        format!("{} and {last}", parts.join(", "))
    };
    format!("Of {whose}, {listed}.")
}

/// The jobs of an operation batch per state, in its operation's words, leaving out the states
/// no job is in: `2 unconfigured, 1 skipped, 1 failed`.
pub(super) fn state_counts(
    operation: Operation,
    counts: &std::collections::BTreeMap<JobState, u64>,
) -> String {
    let listed: Vec<String> = counts
        .iter()
        .filter(|(_, n)| **n > 0)
        .map(|(s, n)| format!("{n} {}", state_word(operation, *s)))
        .collect();
    if listed.is_empty() {
        "no job".into()
    } else {
        listed.join(", ")
    }
}

/// What the operation batches since did to one VM's replication, oldest first:
/// `batch 2 reconfigured, batch 3 paused, batch 4 skipped`.
pub(super) fn since(j: &JobRow) -> String {
    j.operations_since
        .iter()
        .map(|o| format!("batch {} {}", o.batch_id, state_word(o.operation, o.state)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// For a configure batch, the replications it configured that an operation since removed, so
/// that nobody reads the rest of the report (protection last seen, the VM table) as if they
/// were still there; `None` when none was.
pub(super) fn unconfigured_since(r: &Report, m: &impl Markup) -> Option<String> {
    let gone: Vec<String> = r
        .jobs
        .iter()
        .filter(|j| {
            j.operations_since
                .iter()
                .any(|o| o.operation == Operation::Unconfigure && o.state == JobState::Succeeded)
        })
        .map(|j| j.vm_name.clone())
        .collect();
    if gone.is_empty() {
        return None;
    }
    let n = gone.len();
    let named = if n > NAMED {
        String::new()
    } else {
        format!(": {}", m.list(&gone))
    };
    let (was, rows, them) = if n == 1 {
        ("was", "Its row says", "it")
    } else {
        ("were", "Their rows say", "them")
    };
    Some(format!(
        "{n} of this batch's replications {was} unconfigured since ({}){named}. {rows} so: \
         vrbulk removed {them}, which is neither a fault nor protection.",
        r.summary.protection.tally.unconfigured_words()
    ))
}

/// How many VMs a sentence names before it leaves them to the tables.
const NAMED: usize = 5;

/// The plain answer to a migration's question: which configured VMs are protected and ready for
/// cutover, and what holds back the others. It never counts a configured VM as protected: a
/// batch nothing has followed yet says so, and how to follow it.
pub(super) fn readiness(r: &Report, m: &impl Markup) -> String {
    let p = &r.summary.protection;
    let watch = m.code(&format!("vrbulk watch --batch {}", r.batch.id));
    if p.configured == 0 {
        return "No VM of this batch is configured, so none is protected.".into();
    }
    if p.not_followed == p.configured {
        return if p.configured == 1 {
            format!(
                "1 VM was configured and its replication has not been followed since, so this \
                 report cannot say whether it is protected: {watch} follows it until it is."
            )
        } else {
            format!(
                "{} VMs were configured and their replications have not been followed since, so \
                 this report cannot say whether any is protected: {watch} follows them until \
                 they are.",
                p.configured
            )
        };
    }
    let mut parts = vec![ready(r, m)];
    parts.extend(not_ready(r, m, &watch));
    format!(
        "{}.{}{}",
        parts.join("; "),
        behind_rpo(r, m),
        unconfigured(r, m)
    )
}

/// ` 3 replications were unconfigured by batch 4 since: a, b, c.`, or nothing.
fn unconfigured(r: &Report, m: &impl Markup) -> String {
    let p = &r.summary.protection;
    let n = p.count(Readiness::Unconfigured);
    if n == 0 {
        return String::new();
    }
    let named = names(r, m, |j| readiness_of(j) == Some(Readiness::Unconfigured));
    let was = if n == 1 {
        "replication was"
    } else {
        "replications were"
    };
    format!(
        " {n} {was} unconfigured since ({}){named}.",
        p.tally.unconfigured_words()
    )
}

/// What holds back the configured VMs that are not protected, one clause per readiness.
fn not_ready(r: &Report, m: &impl Markup, watch: &str) -> Vec<String> {
    let p = &r.summary.protection;
    let of = |x: Readiness| move |j: &JobRow| readiness_of(j) == Some(x);
    let mut parts = Vec::new();
    let syncing = p.count(Readiness::Syncing);
    if syncing > 0 {
        let copied = if p.sync_total_bytes > 0 {
            format!(
                " ({:.1}% of {} copied)",
                p.sync_copied_bytes as f64 * 100.0 / p.sync_total_bytes as f64,
                bytes(p.sync_total_bytes)
            )
        } else {
            String::new()
        };
        let named = names(r, m, of(Readiness::Syncing));
        parts.push(format!(
            "{syncing} {} still syncing{copied}{named}",
            is(syncing)
        ));
    }
    let off = p.count(Readiness::NotActive);
    if off > 0 {
        let named = names(r, m, of(Readiness::NotActive));
        parts.push(format!(
            "{off} {} powered off, waiting to be powered on{named}",
            is(off)
        ));
    }
    let paused = p.count(Readiness::Paused);
    if paused > 0 {
        let named = names(r, m, of(Readiness::Paused));
        parts.push(format!(
            "{paused} {} paused ({}){named}",
            is(paused),
            p.tally.paused_words()
        ));
    }
    let error = p.count(Readiness::Error);
    if error > 0 {
        parts.push(format!("{error} {} in error{}", is(error), in_error(r, m)));
    }
    let missing = p.count(Readiness::Missing);
    if missing > 0 {
        let named = names(r, m, of(Readiness::Missing));
        parts.push(format!(
            "{missing} no longer {} (removed outside vrbulk){named}",
            if missing == 1 { "exists" } else { "exist" }
        ));
    }
    if p.not_followed > 0 {
        let named = names(r, m, not_followed);
        let (has, it) = if p.not_followed == 1 {
            ("has", "it")
        } else {
            ("have", "them")
        };
        parts.push(format!(
            "{} {has} not been followed yet{named} ({watch} follows {it})",
            p.not_followed
        ));
    }
    parts
}

/// ` 1 of the protected VMs is now behind its RPO: a.`, or nothing.
fn behind_rpo(r: &Report, m: &impl Markup) -> String {
    let n = r.summary.protection.rpo_violation;
    if n == 0 {
        return String::new();
    }
    let named = names(r, m, |j| {
        j.protection
            .as_ref()
            .is_some_and(|x| x.readiness == Readiness::Protected && x.rpo_violation)
    });
    format!(
        " {n} of the protected VMs {} now behind {} RPO{named}.",
        is(n),
        if n == 1 { "its" } else { "their" }
    )
}

/// The first part of the readiness sentence: how many configured VMs are protected.
fn ready(r: &Report, m: &impl Markup) -> String {
    let p = &r.summary.protection;
    let (protected, configured) = (p.count(Readiness::Protected), p.still_configured);
    if configured == 0 {
        "None of the configured VMs is replicated any more".into()
    } else if protected == configured {
        if configured == 1 {
            "The configured VM is protected and ready for cutover".into()
        } else {
            format!("All {configured} configured VMs are protected and ready for cutover")
        }
    } else if protected == 0 {
        format!("None of the {configured} configured VMs is protected yet")
    } else {
        let named = names(r, m, |j| readiness_of(j) == Some(Readiness::Protected));
        format!(
            "{protected} of {configured} configured VMs {} protected and ready for \
             cutover{named}",
            is(protected)
        )
    }
}

/// `: a, b (words)` for the VMs in error, with the appliance's words; nothing past [`NAMED`].
fn in_error(r: &Report, m: &impl Markup) -> String {
    let errors: Vec<String> = r
        .jobs
        .iter()
        .filter_map(|j| {
            let p = j.protection.as_ref()?;
            (p.readiness == Readiness::Error).then(|| {
                let words = p.error.as_deref().unwrap_or(&p.status);
                format!("{} ({})", m.text(&j.vm_name), m.text(words))
            })
        })
        .collect();
    if errors.is_empty() || errors.len() > NAMED {
        String::new()
    } else {
        format!(": {}", errors.join(", "))
    }
}

/// `: a, b` for the VMs `which` picks; nothing when there are more than [`NAMED`] (the tables
/// list them).
fn names(r: &Report, m: &impl Markup, which: impl Fn(&JobRow) -> bool) -> String {
    let named: Vec<String> = r
        .jobs
        .iter()
        .filter(|j| which(j))
        .map(|j| j.vm_name.clone())
        .collect();
    if named.is_empty() || named.len() > NAMED {
        String::new()
    } else {
        format!(": {}", m.list(&named))
    }
}

fn readiness_of(j: &JobRow) -> Option<Readiness> {
    j.protection.as_ref().map(|p| p.readiness)
}

/// The managed object reference of an API id: `vm-38` of `VirtualMachine:vm-38:<vc-uuid>`.
pub(super) fn moref(id: &str) -> Option<&str> {
    let mut parts = id.split(':');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some("VirtualMachine"), Some(moref), Some(_), None) if !moref.is_empty() => Some(moref),
        _ => None,
    }
}

/// A VM's name where space is short: a VM the input named only by its id shows as its moref.
pub(super) fn short_name(name: &str) -> &str {
    moref(name).unwrap_or(name)
}

/// A job configured whose replication was not seen since.
pub(super) fn not_followed(j: &JobRow) -> bool {
    j.state == JobState::Succeeded && j.protection.is_none()
}

fn is(n: u64) -> &'static str {
    if n == 1 {
        "is"
    } else {
        "are"
    }
}

/// When the first, half and all of the configured VMs had become protected, each with the time
/// since the first configure.
pub(super) fn milestones(r: &Report) -> [(String, Option<UtcTime>, Option<i64>); 3] {
    let p = &r.summary.protection;
    let first_configured = r
        .jobs
        .iter()
        .filter_map(|j| j.protection.as_ref().map(|p| p.configured_at))
        .min();
    let since = |at: Option<UtcTime>| Some(at?.0 - first_configured?.0);
    let (half, all) = (p.still_configured.div_ceil(2), p.still_configured);
    [
        (
            format!("first (1 of {all})"),
            p.first_protected_at,
            since(p.first_protected_at),
        ),
        (
            format!("half ({half} of {all})"),
            p.half_protected_at,
            since(p.half_protected_at),
        ),
        (
            format!("all ({all} of {all})"),
            p.all_protected_at,
            since(p.all_protected_at),
        ),
    ]
}

/// The VR server of a VM's replication: where the appliance put it when it said (and the one
/// the run sent it to, when that differs), else the run's choice as sent, else what the input
/// asked for; empty while nothing is known.
pub(super) fn vr_server(j: &JobRow) -> String {
    let seen = j
        .protection
        .as_ref()
        .and_then(|p| p.replication_server.as_deref());
    match (seen, j.replication_server_chosen.as_deref()) {
        (Some(seen), Some(sent)) if seen != sent => format!("{seen} (sent to {sent})"),
        (Some(seen), Some(_)) => seen.to_string(),
        (Some(seen), None) => format!("{seen} (the appliance's choice)"),
        (None, Some(sent)) => format!("{sent} (as sent)"),
        (None, None) if j.state == JobState::Succeeded => match j.replication_server.as_deref() {
            Some(asked) => format!("{asked} (as asked)"),
            None => "auto (not seen since)".into(),
        },
        (None, None) => String::new(),
    }
}

/// When it became protected, and whose time that is: `2024-06-01 08:10:00` for the appliance's
/// own, with `(seen)` when it is the moment vrbulk first saw it protected.
pub(super) fn protected_time(p: &JobProtection) -> String {
    match (p.protected_at, p.protected_at_source) {
        (Some(at), Some(super::TimeSource::Observed)) => format!("{} (seen)", bare(at)),
        (Some(at), _) => bare(at),
        (None, _) => String::new(),
    }
}

/// A time in a table whose caption says UTC.
pub(super) fn bare(t: UtcTime) -> String {
    t.to_string().trim_end_matches(" UTC").to_string()
}

/// What the protection table's times mean, said once above it.
pub(super) const TIMES: &str = "Times in UTC. Configured: when vrbulk saw the configure task \
    succeed (vrbulk's clock). Protected: when the appliance says the first sync ended (its \
    last_sync_time, read at vrbulk's first look after it; a later sync, had one come first, \
    would make it later); (seen) marks the moment vrbulk first saw it protected, where the \
    appliance gave no time. VR server: where the appliance says the replication lives. Initial \
    sync: bytes copied, and how long the sync took by the appliance (its last_sync_duration).";

/// The RPO and whether the replication keeps it; only a protected replication can.
pub(super) fn rpo_state(minutes: u32, p: &JobProtection) -> String {
    if p.rpo_violation {
        format!("{minutes} min, violated")
    } else if p.readiness == Readiness::Protected {
        format!("{minutes} min, met")
    } else {
        format!("{minutes} min")
    }
}

/// `30.0 GiB of 80.0 GiB (37.5%)`, with `in 2h 10m` when the appliance said how long the sync
/// took; a dash when the appliance did not say.
pub(super) fn copied(p: &JobProtection) -> String {
    // The bytes of a replication vrbulk removed since are history.
    if p.readiness == Readiness::Unconfigured {
        return "\u{2014}".into();
    }
    let copied = match (p.copied_bytes, p.total_bytes, p.percent_copied()) {
        (Some(done), Some(total), Some(pct)) => {
            format!("{} of {} ({pct:.1}%)", bytes(done), bytes(total))
        }
        (Some(done), Some(total), None) => format!("{} of {}", bytes(done), bytes(total)),
        _ => "\u{2014}".into(),
    };
    match p.initial_sync_duration_ms {
        Some(ms) => format!("{copied} in {}", span(ms)),
        None => copied,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::TimeSource;

    fn protection(source: Option<TimeSource>) -> JobProtection {
        JobProtection {
            readiness: Readiness::Protected,
            words: "protected".into(),
            unconfigured_by: None,
            paused_by: None,
            replication_id: "GID-1".into(),
            status: "OK".into(),
            configuration_state: Some("OK".into()),
            configured_at: UtcTime(1_717_228_800_000),
            protected_at: source.map(|_| UtcTime(1_717_229_400_000)),
            protected_at_source: source,
            first_seen_protected_at: None,
            synced_at: None,
            initial_sync_duration_ms: Some(540_000),
            replication_server: None,
            time_to_protected_ms: None,
            copied_bytes: Some(10 << 30),
            total_bytes: Some(10 << 30),
            rpo_violation: false,
            error: None,
            seen_at: None,
        }
    }

    #[test]
    fn a_protected_time_says_whose_it_is_and_a_sync_how_long_the_appliance_says_it_took() {
        assert_eq!(
            protected_time(&protection(Some(TimeSource::Appliance))),
            "2024-06-01 08:10:00"
        );
        assert_eq!(
            protected_time(&protection(Some(TimeSource::Observed))),
            "2024-06-01 08:10:00 (seen)"
        );
        assert_eq!(protected_time(&protection(None)), "");
        assert_eq!(
            copied(&protection(None)),
            "10.0 GiB of 10.0 GiB (100.0%) in 9m 00s"
        );
    }
}
