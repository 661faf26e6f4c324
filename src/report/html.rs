//! HTML: one self-contained page (inline CSS and SVG, no script, nothing fetched) that reads
//! well on screen and on paper. The summary is a bar chart, the timeline one bar per job; past
//! [`TIMELINE_BARS`] jobs the timeline becomes a histogram of finishes per time slice, because
//! ten thousand one-pixel bars say nothing.
//!
//! The page is written with `maud`, which escapes every value it splices in: text from the
//! database cannot become markup. The only markup spliced in whole is the audit rows', which
//! [`Html`] builds with `maud` too. SVG shapes without children are closed with an end tag
//! (`<rect …></rect>`), since maud has no self-closing form and an unclosed `<rect>` would
//! swallow what follows it.

use std::collections::HashMap;

use maud::{html, Markup, PreEscaped, DOCTYPE};

use super::audit::{self, moref};
use super::operations::{describe, state_word};
use super::settings;
use super::{
    bytes, span, JobProtection, JobRow, LinkSeries, PlanReport, Report, TimelineEntry, UtcTime,
};
use crate::domain::Operation;
use crate::queue::{JobState, Readiness};
use crate::workflow::PlanAction;

/// Up to this many started jobs, the timeline draws one bar per job.
pub(crate) const TIMELINE_BARS: usize = 120;
/// Time slices of the aggregated timeline.
const SLICES: usize = 60;

const CSS: &str = r#"
:root { --fg: #1d232a; --muted: #5f6b76; --line: #d8dee4; --bg-soft: #f5f7f9; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
  color: var(--fg); margin: 0 auto; padding: 24px 32px 48px; max-width: 1400px; }
h1 { font-size: 24px; margin: 0 0 4px; }
h1 .muted, .muted { color: var(--muted); font-weight: normal; }
h2 { font-size: 18px; margin: 32px 0 10px; padding-bottom: 4px; border-bottom: 2px solid var(--line); }
h3 { font-size: 15px; margin: 18px 0 6px; }
.banner { padding: 10px 14px; border-radius: 6px; margin: 12px 0 8px; font-weight: 600; }
.banner.ok { background: #e8f5e9; border-left: 6px solid #2e7d32; }
.banner.warn { background: #fff4e5; border-left: 6px solid #ef6c00; }
.banner.bad { background: #fdecea; border-left: 6px solid #c62828; }
.banner.plan { background: #e8f0fe; border-left: 6px solid #1e63c6; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: 4px 8px; border-bottom: 1px solid var(--line); vertical-align: top; }
th { background: var(--bg-soft); font-weight: 600; }
td.n, th.n { text-align: right; font-variant-numeric: tabular-nums; }
table.kv { width: auto; min-width: 50%; }
table.kv th { width: 12em; background: none; color: var(--muted); font-weight: normal; }
.scroll { overflow-x: auto; }
table.jobs { font-size: 12px; }
table.jobs .nw { white-space: nowrap; }
table.jobs .since { display: inline-block; white-space: normal; max-width: 11em; }
table.jobs .vm { min-width: 8em; max-width: 16em; overflow-wrap: anywhere; }
table.jobs .disks { min-width: 9em; }
table.jobs .id { font-size: inherit; }
table.jobs .ids { min-width: 9em; max-width: 15em; overflow-wrap: anywhere; }
table.jobs .where { min-width: 8em; max-width: 13em; overflow-wrap: anywhere; }
table.jobs .text { min-width: 12em; overflow-wrap: anywhere; }
.tables { display: flex; flex-wrap: wrap; gap: 32px; align-items: flex-start; }
code, pre, .id { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 12px; }
pre { background: var(--bg-soft); padding: 10px; border-radius: 6px; overflow-x: auto; white-space: pre-wrap; }
.row { display: flex; flex-wrap: wrap; gap: 24px; align-items: flex-start; }
.cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(170px, 1fr)); gap: 10px; flex: 1; min-width: 320px; }
.card { border: 1px solid var(--line); border-radius: 6px; padding: 8px 12px; }
.card b { display: block; font-size: 20px; }
.card span { color: var(--muted); font-size: 12px; }
.state { display: inline-block; padding: 0 6px; border-radius: 9px; color: #fff; font-size: 11px; font-weight: 600; white-space: nowrap; }
.cause { border: 1px solid var(--line); border-left: 6px solid #c62828; border-radius: 6px; padding: 4px 14px 10px; margin: 10px 0; }
.cause p { margin: 4px 0; }
.cause.skip { border-left-color: #607d8b; }
.legend span { display: inline-block; margin-right: 14px; font-size: 12px; }
.legend i { display: inline-block; width: 10px; height: 10px; margin-right: 4px; border-radius: 2px; }
.legend i.line { height: 3px; width: 14px; vertical-align: middle; }
.ready { font-size: 15px; padding: 8px 14px; border-left: 6px solid #9aa5b1; background: var(--bg-soft); border-radius: 6px; }
.ready.ok { border-left-color: #2e7d32; }
.ready.warn { border-left-color: #ef6c00; }
.ready.bad { border-left-color: #c62828; }
.meter { display: block; width: 9em; height: 6px; margin-top: 3px; background: #eef1f4; border-radius: 3px; }
.meter i { display: block; height: 100%; border-radius: 3px; }
svg text { font-family: system-ui, -apple-system, "Segoe UI", Roboto, Arial, sans-serif; }
footer { margin-top: 32px; color: var(--muted); font-size: 12px; }
@media print {
  @page { size: A4 landscape; margin: 12mm; }
  body { font-size: 10pt; padding: 0; max-width: none; }
  * { -webkit-print-color-adjust: exact; print-color-adjust: exact; }
  h2 { break-after: avoid; page-break-after: avoid; }
  table.jobs { font-size: 7pt; }
  table.jobs .text { min-width: 10em; }
  .scroll { overflow: visible; }
  thead { display: table-header-group; }
  tr, .cause, svg, .card, #timeline { break-inside: avoid; page-break-inside: avoid; }
  pre { white-space: pre-wrap; }
}
"#;

pub(super) fn batch(r: &Report) -> String {
    let b = &r.batch;
    let name = audit::title(b);
    let title = format!("{name}: batch {} \u{201c}{}\u{201d}", b.id, b.name);
    let configures = b.operation == Operation::Configure;
    let content = html! {
        header {
            h1 { (name) " " span.muted { "batch " (b.id) " " (quoted(&b.name)) } }
            (banner(r))
        } "\n"
        section #audit {
            (audit_table(&audit::batch_rows(r, &Html)))
            (effective_settings(r))
        } "\n"
        (summary(r)) "\n"
        @if configures { (protection(r)) "\n" (link(r)) "\n" }
        (super::compliance::html(&r.compliance))
        (failures(r)) "\n"
        @if !configures { (skipped(r)) "\n" }
        (operations_since(r))
        (operator_actions(r))
        section #timeline { h2 { "Timeline" } (timeline(r)) } "\n"
        @if configures { (vm_table(r)) } @else { (operation_vm_table(r)) }
    };
    page(&title, content, r.generated_at)
}

/// What the import recorded, and each run: where it ran, how it ended, and what it used.
fn effective_settings(r: &Report) -> Markup {
    let imported = serde_json::to_string_pretty(&r.batch.settings).unwrap_or_default();
    let runs = &r.runs.list;
    html! {
        h3 { "Effective settings" }
        p.muted { "What the import recorded:" }
        pre { (imported) }
        @if runs.is_empty() {
            p { "No run yet." }
        } @else {
            p.muted { "What each run used:" }
            table.kv {
                thead { tr { th {} @for i in 1..=runs.len() { th { "Run " (i) } } } }
                tbody {
                    @for (label, cells) in settings::run_rows(runs) {
                        tr { th { (label) } @for c in cells { td { (c) } } }
                    }
                }
            }
            @if !settings::recorded(runs) { p.muted { (code_spans(settings::NOT_RECORDED)) } }
        }
    }
}

/// The headline under the title: where the batch stands, coloured by how it ended.
fn banner(r: &Report) -> Markup {
    let banner = audit::banner(r);
    if banner.in_progress {
        html! {
            p.banner.warn {
                (banner.headline) " This report shows where the batch stood at "
                (r.generated_at) ": " (banner.counts) "."
            }
        }
    } else {
        let tone = if r.summary.counts[&JobState::Failed] > 0 {
            "bad"
        } else {
            "ok"
        };
        html! { p class={ "banner " (tone) } { (banner.headline) " " (banner.counts) "." } }
    }
}

/// The bar chart of states, the number cards, and the tables of states and API calls.
fn summary(r: &Report) -> Markup {
    let s = &r.summary;
    let c = &s.counts;
    let operation = r.batch.operation;
    let bars: Vec<(String, u64, &str)> = JobState::ALL
        .iter()
        .map(|st| {
            (
                state_word(operation, *st).to_string(),
                c[st],
                state_colour(*st),
            )
        })
        .collect();
    let mut cards = vec![(
        format!("{:.1}%", s.percent[&JobState::Succeeded]),
        state_word(operation, JobState::Succeeded),
    )];
    // An operation batch replicates nothing of its own.
    if operation == Operation::Configure {
        cards.push((bytes(s.replicated_capacity_bytes), "replicated capacity"));
    }
    cards.extend([
        (s.api_total.calls.to_string(), "API calls"),
        (s.api_total.throttled.to_string(), "throttled (429)"),
        (s.api_total.server_errors.to_string(), "server errors (5xx)"),
        (s.api_total.retries.to_string(), "request retries"),
        (s.job_retries.to_string(), "job retries"),
        (s.relogins.to_string(), "re-logins"),
    ]);
    html! {
        section #summary {
            h2 { "Summary" }
            @if operation == Operation::Configure {
                p class={ "ready " (ready_tone(r)) } { (PreEscaped(audit::readiness(r, &Html))) }
            } @else {
                p class={ "ready " (outcome_tone(r)) } { (audit::outcome(r)) }
            }
            div.row {
                (bar_chart(&bars, s.total, &format!("Jobs per state, {} in all", s.total)))
                div.cards { @for (value, label) in &cards { div.card { b { (value) } span { (label) } } } }
            }
            div.tables {
                div {
                    h3 { "Jobs per state" }
                    table style="width:auto" {
                        thead { tr { th { "State" } th.n { "Jobs" } th.n { "Share" } } }
                        tbody {
                            @for st in JobState::ALL {
                                tr { td { (badge_of(operation, st)) } td.n { (c[&st]) } td.n { (format!("{:.1}%", s.percent[&st])) } }
                            }
                            tr { th { "total" } th.n { (s.total) } th.n { "100.0%" } }
                        }
                    }
                }
                div { h3 { "API calls" } (api_calls(r)) }
            }
        }
    }
}

/// The colour of an operation batch's sentence: red when a job failed, green when every job
/// did what was asked, amber otherwise (skipped, cancelled or not done yet).
fn outcome_tone(r: &Report) -> &'static str {
    let c = &r.summary.counts;
    if c[&JobState::Failed] > 0 {
        "bad"
    } else if c[&JobState::Succeeded] == r.summary.total {
        "ok"
    } else {
        "warn"
    }
}

/// The colour of the readiness sentence: red when a replication is in error, green when every
/// configured VM is protected, amber while some are not (or not followed yet).
fn ready_tone(r: &Report) -> &'static str {
    let p = &r.summary.protection;
    if p.configured == 0 {
        ""
    } else if p.count(Readiness::Error) > 0 {
        "bad"
    } else if p.count(Readiness::Protected) == p.configured {
        "ok"
    } else {
        "warn"
    }
}

/// Configured is not protected: the configured VMs by readiness, a chart of VMs protected over
/// time, the milestones and each configured VM's replication.
fn protection(r: &Report) -> Markup {
    let p = &r.summary.protection;
    let intro = "A job succeeded when its replication was configured; the VM is protected once \
                 its replication is OK after its initial full sync.";
    // The first four always, as a checklist; the rest only when there are some.
    let mut bars: Vec<(String, u64, &str)> = Readiness::ALL
        .iter()
        .filter(|x| {
            matches!(
                x,
                Readiness::Syncing | Readiness::Protected | Readiness::NotActive | Readiness::Error
            ) || p.count(**x) > 0
        })
        .map(|x| (x.as_str().to_string(), p.count(*x), readiness_colour(*x)))
        .collect();
    if p.not_followed > 0 {
        bars.push(("not followed".into(), p.not_followed, NOT_FOLLOWED));
    }
    html! {
        section #protection {
            h2 { "Protection" }
            @if p.configured == 0 {
                p { (intro) " No VM of this batch is configured." }
            } @else if p.configured == p.not_followed {
                p { (intro) " Nothing has followed this batch's replications yet." }
            } @else {
                p.muted {
                    (intro)
                    @match p.last_seen_at {
                        Some(at) => { " As last seen " (at) }
                        None => { " Not seen by run or watch yet" }
                    }
                    "; protected VMs now behind their RPO: " (p.rpo_violation)
                    @if let Some(mean) = p.mean_time_to_protected_ms { "; mean time to protected: " (span(mean)) }
                    "."
                }
                div.row {
                    (bar_chart(&bars, p.configured, &format!("Configured VMs by readiness, {} in all", p.configured)))
                    (milestones(r))
                }
                (protected_over_time(r))
                (protection_table(r))
            }
        }
    }
}

/// When the first, half and all of the configured VMs had become protected.
fn milestones(r: &Report) -> Markup {
    html! {
        table style="width:auto" {
            thead { tr { th { "Protected" } th { "At" } th.n { "Since the first configure" } } }
            tbody {
                @for (label, at, since) in audit::milestones(r) {
                    tr {
                        td { (label) }
                        td { @match at { Some(t) => (t), None => span.muted { "not yet" } } }
                        td.n { (since.map(span).unwrap_or_default()) }
                    }
                }
            }
        }
    }
}

/// The replication of each configured VM, in import order.
fn protection_table(r: &Report) -> Markup {
    let configured = r
        .jobs
        .iter()
        .filter(|j| j.protection.is_some() || audit::not_followed(j));
    html! {
        h3 { "Per VM" }
        p.muted { (audit::TIMES) }
        div.scroll {
            table.jobs {
                thead {
                    tr {
                        th { "VM" } th { "Readiness" } th.text { "Replication status" } th { "RPO" }
                        th { "VR server" } th { "Configured" } th { "Protected" } th.n { "Time to protected" }
                        th { "Initial sync" }
                    }
                }
                tbody {
                    "\n"
                    @for j in configured {
                        tr {
                            td.vm { b { (vm_name(&j.vm_name)) } }
                            @match &j.protection {
                                Some(p) => (protection_cells(j, p)),
                                None => {
                                    td { span.state style={ "background:" (NOT_FOLLOWED) "; color:#1d232a" } { "not followed yet" } }
                                    td.text {}
                                    td.nw { (j.rpo_minutes) " min" }
                                    td.nw { (audit::vr_server(j)) }
                                    td.nw { (table_time(j.finished_at)) }
                                    td {} td {} td {}
                                }
                            }
                        } "\n"
                    }
                }
            }
        }
    }
}

/// The cells of a followed VM's row after its name.
fn protection_cells(j: &JobRow, p: &JobProtection) -> Markup {
    html! {
        td { span.state style={ "background:" (readiness_colour(p.readiness)) } { (p.words) } }
        td.text {
            // What the appliance last said of a replication vrbulk removed since is history.
            @if p.status.is_empty() || p.readiness == Readiness::Unconfigured { "\u{2014}" } @else { code { (p.status) } }
            @if let Some(state) = p.configuration_state.as_deref().filter(|s| *s != "OK") {
                " (configuration " code { (state) } ")"
            }
            @if let Some(error) = &p.error { br; (error) }
        }
        td.nw { (audit::rpo_state(j.rpo_minutes, p)) }
        td.nw { (audit::vr_server(j)) }
        td.nw { (table_time(Some(p.configured_at))) }
        td.nw { (audit::protected_time(p)) }
        td.n.nw { (p.time_to_protected_ms.map(span).unwrap_or_default()) }
        td.nw {
            (audit::copied(p))
            @if let Some(pct) = p.percent_copied() {
                span.meter title={ (pct) "% copied" } {
                    i style={ "width:" (format!("{pct:.1}")) "%; background:" (readiness_colour(p.readiness)) } {}
                }
            }
        }
    }
}

/// VMs configured and protected over time: two step curves from the first configure to the
/// newest sighting, each protected VM a dot on its step.
fn protected_over_time(r: &Report) -> Markup {
    const CHART: f64 = 160.0;
    let p = &r.summary.protection;
    let (configured, protected) = configured_and_protected(r);
    let Some(&t0) = configured.first() else {
        return html! {};
    };
    let last = [p.last_seen_at.map(|t| t.0), configured.last().copied()]
        .into_iter()
        .flatten()
        .max()
        .unwrap_or(t0);
    let scale = TimeScale {
        t0,
        t1: last.max(t0 + 1000),
    };
    let top = 10.0;
    let y = |n: usize| top + CHART - n as f64 / p.configured.max(1) as f64 * CHART;
    let height = top + CHART + 30.0;
    let title = "VMs configured and protected over time";
    html! {
        svg width=(CHART_WIDTH) height=(height) viewBox={ "0 0 " (CHART_WIDTH) " " (height) }
            role="img" aria-label=(title) {
            title { (title) }
            text x=(LEFT - 6.0) y=(top + 4.0) text-anchor="end" font-size="11" fill="#5f6b76" {
                (p.configured) " configured"
            }
            // The protected count sits by its level, clear of the configured one above it.
            text x=(LEFT - 6.0) y=(format!("{:.1}", (y(protected.len()) + 4.0).max(top + 18.0)))
                text-anchor="end" font-size="11" fill=(readiness_colour(Readiness::Protected)) {
                (protected.len()) " protected"
            }
            line x1=(LEFT) y1=(top) x2=(LEFT + PLOT) y2=(top) stroke="#d8dee4" {}
            path d=(steps(&scale, &configured, &y)) fill="#9aa5b1" fill-opacity="0.25" stroke="#9aa5b1" {}
            @let times: Vec<i64> = protected.iter().map(|(t, _)| *t).collect();
            path d=(steps(&scale, &times, &y)) fill=(readiness_colour(Readiness::Protected))
                fill-opacity="0.3" stroke=(readiness_colour(Readiness::Protected)) stroke-width="2" {}
            // Past as many dots as the timeline has bars they merge into a line that says less
            // than the step beneath it.
            @for (i, (at, vm)) in protected.iter().enumerate().take_while(|(i, _)| *i < TIMELINE_BARS) {
                circle cx=(format!("{:.1}", scale.x(*at))) cy=(format!("{:.1}", y(i + 1))) r="3"
                    fill=(readiness_colour(Readiness::Protected)) {
                    title { (vm) " protected at " (UtcTime(*at)) }
                }
            }
            (axis(&scale, top + CHART))
        }
        p.legend {
            span { i style="background:#9aa5b1" {} "configured" }
            span { i style={ "background:" (readiness_colour(Readiness::Protected)) } {} "protected" }
        }
    }
}

/// When each configured VM was configured, and when each protected one became protected (with
/// its name), both earliest first. A VM nothing has followed yet was configured when its job
/// finished.
fn configured_and_protected(r: &Report) -> (Vec<i64>, Vec<(i64, &str)>) {
    let mut configured: Vec<i64> = r
        .jobs
        .iter()
        .filter_map(|j| match &j.protection {
            Some(p) => Some(p.configured_at.0),
            None if audit::not_followed(j) => j.finished_at.map(|t| t.0),
            None => None,
        })
        .collect();
    configured.sort_unstable();
    let mut protected: Vec<(i64, &str)> = r
        .jobs
        .iter()
        .filter_map(|j| Some((j.protection.as_ref()?.protected_at?.0, j.vm_name.as_str())))
        .collect();
    protected.sort_unstable();
    (configured, protected)
}

/// The closed outline of a step curve that rises by one at each of `times` (sorted), from the
/// start of `scale` to its end, above the baseline `y(0)`.
fn steps(scale: &TimeScale, times: &[i64], y: &impl Fn(usize) -> f64) -> String {
    let mut d = format!("M{:.1} {:.1}", scale.x(scale.t0), y(0));
    for (i, t) in times.iter().enumerate() {
        d.push_str(&format!(" H{:.1} V{:.1}", scale.x(*t), y(i + 1)));
    }
    d.push_str(&format!(" H{:.1} V{:.1} Z", scale.x(scale.t1), y(0)));
    d
}

/// Colours of the link chart: throughput, syncs in flight, the cap.
const LINK_MBPS: &str = "#1e63c6";
const LINK_SYNCS: &str = "#2e7d32";
const LINK_CAP: &str = "#ef6c00";

/// What admission measured of each pairing's link: its numbers in words, then a chart of the
/// throughput (Mbit/s) and of the syncs in flight beside the cap over time. Nothing when no
/// run measured a link.
fn link(r: &Report) -> Markup {
    if r.link.is_empty() {
        return html! {};
    }
    html! {
        section #link {
            h2 { "Replication link" }
            p.muted {
                "What the runs measured while they admitted the wave: the initial syncs' \
                 throughput in all, and how many syncs they let run at once."
            }
            @for l in &r.link {
                h3 { (l.name()) }
                p { (l.summary()) }
                (link_chart(l))
                p.legend {
                    span { i.line style={ "background:" (LINK_MBPS) } {} "Mbit/s, all initial syncs" }
                    span { i.line style={ "background:" (LINK_SYNCS) } {} "syncs in flight" }
                    @if l.cap_max.is_some() {
                        span { i.line style={ "background:" (LINK_CAP) } {} "cap (dashed)" }
                    }
                }
            }
        } "\n"
    }
}

/// Throughput and syncs over time, each on its own scale from zero (Mbit/s labelled above the
/// plot's left corner, syncs below it); a run's samples join, runs do not.
fn link_chart(l: &LinkSeries) -> Markup {
    const CHART: f64 = 160.0;
    let (Some(first), Some(last)) = (l.samples.first(), l.samples.last()) else {
        return html! {};
    };
    let scale = TimeScale {
        t0: first.at.0 - first.span_ms.max(0),
        t1: last.at.0.max(first.at.0 - first.span_ms.max(0) + 1000),
    };
    let top = 10.0;
    let max_mbps = l.peak_mbps.max(1.0);
    let max_syncs = l
        .samples
        .iter()
        .map(|s| s.in_sync.max(s.cap.unwrap_or(0)))
        .max()
        .unwrap_or(1)
        .max(1) as f64;
    let y_mbps = |v: f64| top + CHART - v / max_mbps * CHART;
    let y_syncs = |n: f64| top + CHART - n / max_syncs * CHART;
    let runs = l.samples.chunk_by(|a, b| a.run_id == b.run_id);
    let mut mbps_path = String::new();
    let mut syncs_path = String::new();
    let mut cap_path = String::new();
    for run in runs {
        for (i, s) in run.iter().enumerate() {
            let x = scale.x(s.at.0);
            let verb = if i == 0 { "M" } else { "L" };
            mbps_path.push_str(&format!("{verb}{x:.1} {:.1} ", y_mbps(s.mbps)));
            // Syncs and cap hold from one measurement to the next: steps.
            let (syncs, at) = (y_syncs(f64::from(s.in_sync)), x);
            if i == 0 {
                syncs_path.push_str(&format!("M{at:.1} {syncs:.1} "));
            } else {
                syncs_path.push_str(&format!("H{at:.1} V{syncs:.1} "));
            }
            match (s.cap, i == 0 || run[i - 1].cap.is_none()) {
                (Some(cap), true) => {
                    cap_path.push_str(&format!("M{at:.1} {:.1} ", y_syncs(f64::from(cap))))
                }
                (Some(cap), false) => {
                    cap_path.push_str(&format!("H{at:.1} V{:.1} ", y_syncs(f64::from(cap))))
                }
                (None, _) => {}
            }
        }
    }
    let height = top + CHART + 30.0;
    let title = format!("{}: throughput and syncs in flight over time", l.name());
    html! {
        svg width=(CHART_WIDTH) height=(height) viewBox={ "0 0 " (CHART_WIDTH) " " (height) }
            role="img" aria-label=(title) {
            title { (title) }
            text x=(LEFT - 6.0) y=(top + 4.0) text-anchor="end" font-size="11" fill=(LINK_MBPS) {
                (crate::units::mbps(max_mbps))
            }
            text x=(LEFT - 6.0) y=(top + 18.0) text-anchor="end" font-size="11" fill=(LINK_SYNCS) {
                (max_syncs) " syncs"
            }
            text x=(LEFT - 6.0) y=(top + CHART + 4.0) text-anchor="end" font-size="11" fill="#5f6b76" { "0" }
            line x1=(LEFT) y1=(top) x2=(LEFT + PLOT) y2=(top) stroke="#d8dee4" {}
            @if !cap_path.is_empty() {
                path d=(cap_path.trim_end()) fill="none" stroke=(LINK_CAP) stroke-width="1.5" stroke-dasharray="5 3" {}
            }
            path d=(syncs_path.trim_end()) fill="none" stroke=(LINK_SYNCS) stroke-width="1.5" {}
            path d=(mbps_path.trim_end()) fill="none" stroke=(LINK_MBPS) stroke-width="2" {}
            // One dot per measurement while they are few enough to point at, each saying what
            // was measured.
            @if l.samples.len() <= TIMELINE_BARS {
                @for s in &l.samples {
                    circle cx=(format!("{:.1}", scale.x(s.at.0))) cy=(format!("{:.1}", y_mbps(s.mbps))) r="2.5"
                        fill=(LINK_MBPS) {
                        title {
                            (s.at) ": " (crate::units::mbps(s.mbps)) ", " (s.in_sync) " in sync, "
                            @match s.cap { Some(c) => { "cap " (c) }, None => "no cap" }
                        }
                    }
                }
            }
            (axis(&scale, top + CHART))
        }
    }
}

/// API calls per operation, with the total as the last row.
fn api_calls(r: &Report) -> Markup {
    let s = &r.summary;
    if s.api_calls.is_empty() {
        return html! { p { "No API calls recorded." } };
    }
    let numbers = |a: &super::ApiCall| [a.calls, a.throttled, a.server_errors, a.retries];
    html! {
        table style="width:auto" {
            thead {
                tr {
                    th { "Operation" } th.n { "Calls" } th.n { "Throttled (429)" }
                    th.n { "Server errors (5xx)" } th.n { "Retries" }
                }
            }
            tbody {
                @for a in &s.api_calls {
                    tr { td { code { (a.operation) } } @for n in numbers(a) { td.n { (n) } } }
                }
                tr {
                    th { code { (s.api_total.operation) } }
                    @for n in numbers(&s.api_total) { th.n { (n) } }
                }
            }
        }
    }
}

/// Failed jobs grouped by cause, each with an example and the next step.
fn failures(r: &Report) -> Markup {
    html! {
        section #failures {
            h2 { "Failures by cause" }
            @if r.failures.is_empty() { p { "No job failed." } }
            @for g in &r.failures {
                div.cause {
                    h3 { (g.count) " \u{00d7} " (g.cause) }
                    p { span.muted { "Example:" } " " (g.example) }
                    p { b { "Next step:" } " " (code_spans(&g.next_step)) }
                    p { span.muted { "VMs:" } " " (list(&g.vms)) }
                }
            }
        }
    }
}

/// An operation batch's skipped jobs by reason: what it left alone, and why.
fn skipped(r: &Report) -> Markup {
    html! {
        section #skipped {
            h2 { "Skipped" }
            @if r.skipped.is_empty() {
                p { "No job was skipped." }
            } @else {
                p.muted { "Left alone, each for the reason given." }
            }
            @for g in &r.skipped {
                div.cause.skip {
                    h3 { (g.count) " \u{00d7} " (g.cause) }
                    p { span.muted { "Example:" } " " (g.example) }
                    p { span.muted { "VMs:" } " " (list(&g.vms)) }
                }
            }
        }
    }
}

/// Requeues (with what the operator corrected) and cancels, in the events' words.
fn operator_actions(r: &Report) -> Markup {
    if r.operator_actions.is_empty() {
        return html! {};
    }
    html! {
        section #operator {
            h2 { "Changes by the operator" }
            table style="width:auto" {
                thead { tr { th { "When" } th { "VM" } th { "What" } } }
                tbody {
                    @for a in &r.operator_actions {
                        tr { td.nw { (a.at) } td { (a.vm) } td.text { (a.action) } }
                    }
                }
            }
        }
    }
}

/// The operation batches applied to a configure batch since, with their jobs per state.
fn operations_since(r: &Report) -> Markup {
    if r.operations_since.is_empty() {
        return html! {};
    }
    html! {
        section #operations {
            h2 { "Operations since" }
            p.muted {
                "Day-2 operations on this batch's replications since it was configured, oldest \
                 first; each has a report of its own."
            }
            table style="width:auto" {
                thead {
                    tr { th { "Batch" } th { "Operation" } th { "Created" } th { "Operator" } th { "Jobs" } th { "Report" } }
                }
                tbody {
                    @for o in &r.operations_since {
                        tr {
                            td { (o.batch.id) " " (quoted(&o.batch.name)) }
                            td { (audit::specs(&o.operation_specs)) }
                            td.nw { (o.batch.created_at) }
                            td { (o.batch.operator) }
                            td {
                                @for (st, n) in o.counts.iter().filter(|(_, n)| **n > 0) {
                                    (badge_of(o.batch.operation, *st)) " " (n) " "
                                }
                            }
                            td { code { "vrbulk report --batch " (o.batch.id) } }
                        }
                    }
                }
            }
            @if let Some(gone) = audit::unconfigured_since(r, &Html) { p { (PreEscaped(gone)) } }
        } "\n"
    }
}

/// One row per VM, in import order.
fn vm_table(r: &Report) -> Markup {
    html! {
        section #vms {
            h2 { "Virtual machines" }
            p.muted {
                "Times in UTC. VM ids show their managed object reference (hover for the full id; \
                 the CSV and JSON reports carry it whole)."
            }
            div.scroll {
                table.jobs {
                    thead {
                        tr {
                            th { "VM" } th { "State / attempts" } th.text { "Reason" } th { "Replication / task" }
                            th { "Datastore / policy / VR server" } th { "RPO / MPIT" } th { "Disks" }
                            th { "Started / finished / duration" } th.text { "Change ticket / notes" }
                        }
                    }
                    tbody {
                        "\n"
                        @for j in &r.jobs {
                            tr {
                                td.vm { b { (vm_name(&j.vm_name)) } br; (short_id(j.vm_id.as_deref())) }
                                td.nw {
                                    (badge(j.state)) br; span.muted { (attempts(j.attempts)) }
                                    @if !j.operations_since.is_empty() { br; span.muted.since { "since: " (audit::since(j)) } }
                                }
                                td.text { (opt(&j.reason)) }
                                td.id.ids { (opt(&j.replication_id)) br; (opt(&j.task_id)) }
                                td.where {
                                    (j.target_datastore) br; span.muted { (policy(&j.storage_policy)) }
                                    @let server = audit::vr_server(j);
                                    @if !server.is_empty() { br; span.muted { (server) } }
                                }
                                td.nw {
                                    (j.rpo_minutes) (PreEscaped("&nbsp;")) "min" br;
                                    span.muted { "MPIT " (super::md::mpit(j.mpit_instances, j.mpit_days)) }
                                }
                                td.disks { (list(&j.disks_replicated)) (excluded(&j.disks_excluded)) }
                                td.nw {
                                    (table_time(j.started_at)) br; (table_time(j.finished_at)) br;
                                    span.muted { (j.duration_ms.map(span).unwrap_or_default()) }
                                }
                                td.text { (opt(&j.change_ticket)) @if let Some(n) = &j.notes { br; span.muted { (n) } } }
                            } "\n"
                        }
                    }
                }
            }
        } "\n"
    }
}

/// One row per VM of an operation batch: what happened to its replication, and the configure
/// job it came from.
fn operation_vm_table(r: &Report) -> Markup {
    let operation = r.batch.operation;
    // Each job's operation only when they differ (a reconfigure from a file); else the audit
    // says it once.
    let per_job = r.batch.operation_specs.len() > 1;
    html! {
        section #vms {
            h2 { "Virtual machines" }
            p.muted {
                "Times in UTC. Each job acts on the replication a job of batch "
                (r.batch.acts_on.as_ref().map_or(0, |a| a.id)) " configured."
            }
            div.scroll {
                table.jobs {
                    thead {
                        tr {
                            th { "VM" } th { "State / attempts" } th.text { "Reason" }
                            th { "Configure job" } th { "Replication / task" }
                            @if per_job { th.text { "Operation" } }
                            th { "Started / finished / duration" }
                        }
                    }
                    tbody {
                        "\n"
                        @for j in &r.jobs {
                            tr {
                                td.vm { b { (vm_name(&j.vm_name)) } br; (short_id(j.vm_id.as_deref())) }
                                td.nw { (badge_of(operation, j.state)) br; span.muted { (attempts(j.attempts)) } }
                                td.text { (opt(&j.reason)) }
                                td.n { (j.acts_on_job.map(|id| id.to_string()).unwrap_or_default()) }
                                td.id.ids { (opt(&j.replication_id)) br; (opt(&j.task_id)) }
                                @if per_job { td.text { (j.operation.as_ref().map(describe).unwrap_or_default()) } }
                                td.nw {
                                    (table_time(j.started_at)) br; (table_time(j.finished_at)) br;
                                    span.muted { (j.duration_ms.map(span).unwrap_or_default()) }
                                }
                            } "\n"
                        }
                    }
                }
            }
        } "\n"
    }
}

pub(super) fn plan(p: &PlanReport) -> String {
    let b = &p.batch;
    let title = format!(
        "Replication plan: batch {} \u{201c}{}\u{201d}",
        b.id, b.name
    );
    let bars: Vec<(String, u64, &str)> = PlanAction::ALL
        .iter()
        .map(|a| (a.as_str().to_string(), p.count(*a), action_colour(*a)))
        .collect();
    let content = html! {
        header {
            h1 { "Replication plan " span.muted { "batch " (b.id) " " (quoted(&b.name)) } }
            p.banner.plan { (audit::DRY_RUN) " " (audit::plan_counts(p)) }
        } "\n"
        section #audit { (audit_table(&audit::plan_rows(p, &Html))) } "\n"
        section #summary {
            h2 { "Summary" }
            (bar_chart(&bars, p.jobs.len() as u64, &format!("Planned actions, {} jobs", p.jobs.len())))
        } "\n"
        @if !p.link.is_empty() {
            section #syncs {
                h2 { "Initial syncs" }
                @for f in &p.link { p { (code_spans(&f.words())) } }
            } "\n"
        }
        (plan_vm_table(p))
    };
    page(&title, content, p.generated_at)
}

/// One row per VM of the plan: what would happen to it, and why.
fn plan_vm_table(p: &PlanReport) -> Markup {
    html! {
        section #vms {
            h2 { "Virtual machines" }
            div.scroll {
                table.jobs {
                    thead {
                        tr {
                            th { "VM" } th { "Action" } th.text { "Reason" } th { "Datastore / policy" }
                            th { "VR server" } th { "Disks" } th.n { "Capacity" }
                            th.text { "Warnings" } th { "Change ticket" } th.text { "Notes" }
                        }
                    }
                    tbody {
                        "\n"
                        @for j in &p.jobs {
                            tr {
                                td.vm { b { (vm_name(&j.vm_name)) } br; (short_id(j.vm_id.as_deref())) }
                                td { span.state style={ "background:" (action_colour(j.action)) } { (j.action.as_str()) } }
                                td.text { (opt(&j.reason)) }
                                td.where { (j.target_datastore) br; span.muted { (policy(&j.storage_policy)) } }
                                td.nw { (j.replication_server.as_deref().unwrap_or("auto")) }
                                td.disks { (j.disks) (excluded(&j.excluded_disks)) }
                                td.n.nw { (bytes(j.capacity_bytes)) }
                                td.text { (list(&j.warnings)) }
                                td { (opt(&j.change_ticket)) }
                                td.text { (opt(&j.notes)) }
                            } "\n"
                        }
                    }
                }
            }
        } "\n"
    }
}

/// The whole document around `content`: head with the inline CSS, and the footer.
fn page(title: &str, content: Markup, at: UtcTime) -> String {
    html! {
        (DOCTYPE) "\n"
        html lang="en" {
            "\n"
            head {
                "\n" meta charset="utf-8";
                "\n" meta name="viewport" content="width=device-width, initial-scale=1";
                "\n" title { (title) }
                "\n" style { (PreEscaped(CSS)) }
                "\n"
            } "\n"
            body {
                "\n" (content)
                footer {
                    "Written by vrbulk " (env!("CARGO_PKG_VERSION")) " at " (at)
                    " from the job queue's own record."
                } "\n"
            } "\n"
        } "\n"
    }
    .into_string()
}

/// The audit table; its values are markup that [`Html`] made.
fn audit_table(rows: &[audit::Row]) -> Markup {
    html! {
        h2 { "Audit" }
        table.kv { @for (k, v) in rows { tr { th { (k) } td { (PreEscaped(v)) } } } }
    }
}

/// Horizontal bars, one per `(label, value, colour)`, scaled to the largest value.
fn bar_chart(bars: &[(String, u64, &str)], total: u64, title: &str) -> Markup {
    const WIDTH: f64 = 300.0;
    const ROW: f64 = 26.0;
    // Room for the longest label at 13 px (`unconfigured` did not fit in 90).
    let longest = bars.iter().map(|b| b.0.chars().count()).max().unwrap_or(0);
    let left = (longest as f64 * 7.5 + 12.0).max(90.0).round();
    let max = bars.iter().map(|b| b.1).max().unwrap_or(0).max(1) as f64;
    let width = left + WIDTH + 110.0;
    let height = ROW * bars.len() as f64 + 8.0;
    html! {
        svg width=(width) height=(height) viewBox={ "0 0 " (width) " " (height) } role="img" aria-label=(title) {
            title { (title) }
            @for (i, (label, value, colour)) in bars.iter().enumerate() {
                @let y = 4.0 + ROW * i as f64;
                @let w = if *value == 0 { 0.0 } else { (*value as f64 / max * WIDTH).max(2.0) };
                @let share = if total == 0 { 0.0 } else { *value as f64 * 100.0 / total as f64 };
                text x=(left - 8.0) y=(y + 14.0) text-anchor="end" font-size="13" fill="#1d232a" { (label) }
                rect x=(left) y=(y) width=(WIDTH) height="18" fill="#eef1f4" rx="3" {}
                rect x=(left) y=(y) width=(format!("{w:.1}")) height="18" fill=(colour) rx="3" {
                    title { (label) ": " (value) }
                }
                text x=(left + WIDTH + 8.0) y=(y + 14.0) font-size="13" fill="#1d232a" {
                    (value) " (" (format!("{share:.1}")) "%)"
                }
            }
        }
    }
}

/// The time range of the started jobs, `t0` to `t1` (at least a second apart), and where a
/// moment falls on a plot of `PLOT` pixels after `LEFT`.
struct TimeScale {
    t0: i64,
    t1: i64,
}

const LEFT: f64 = 190.0;
const PLOT: f64 = 760.0;
const CHART_WIDTH: f64 = LEFT + PLOT + 20.0;

impl TimeScale {
    fn x(&self, ms: i64) -> f64 {
        LEFT + (ms - self.t0) as f64 / (self.t1 - self.t0) as f64 * PLOT
    }
}

/// One bar per job (first claim to final event) while there are few, each followed by its
/// replication's life when the queue has seen it; a histogram of finishes per time slice,
/// stacked by final state, when there are many.
fn timeline(r: &Report) -> Markup {
    let (entries, now) = (&r.timeline, r.generated_at);
    let mut started: Vec<&TimelineEntry> =
        entries.iter().filter(|t| t.started_at.is_some()).collect();
    if started.is_empty() {
        return html! { p { "No job has started yet." } };
    }
    let not_started = entries.len() - started.len();
    let bars = started.len() <= TIMELINE_BARS;
    let lanes: HashMap<i64, &JobProtection> = if bars {
        r.jobs
            .iter()
            .filter_map(|j| Some((j.job_id, j.protection.as_ref()?)))
            .collect()
    } else {
        HashMap::new()
    };
    let end_of = |t: &TimelineEntry| t.ended_at.unwrap_or(now).0;
    let t0 = started
        .iter()
        .filter_map(|t| t.started_at)
        .min()
        .unwrap_or(now)
        .0;
    let t1 = started
        .iter()
        .map(|t| end_of(t))
        .chain(lanes.values().filter_map(|p| p.seen_at.map(|t| t.0)))
        .max()
        .unwrap_or(t0)
        .max(t0 + 1000);
    let scale = TimeScale { t0, t1 };
    started.sort_by_key(|t| (t.started_at, t.job_id));
    html! {
        p.muted {
            "From " (UtcTime(t0)) " to " (UtcTime(t1)) " (" (span(t1 - t0)) "); "
            (started.len()) " of " (entries.len()) " jobs started"
            @if not_started > 0 { ", " (not_started) " not yet" }
            "."
            @if !lanes.is_empty() {
                " After its bar, a thin line follows each configured VM's replication to its last \
                 sighting: grey until it became protected (a dot) or reached its current status, \
                 then coloured by readiness; a tick marks each change of its status."
            }
        }
        (timeline_legend(r.batch.operation, !lanes.is_empty()))
        @if bars {
            (bar_per_job(&started, &scale, r, &lanes))
        } @else {
            (finishes_per_slice(&started, &scale))
        }
    }
}

/// The colours of the job states, and of the replications' lanes when there are any.
fn timeline_legend(operation: Operation, lanes: bool) -> Markup {
    html! {
        p.legend {
            @for s in JobState::ALL {
                span { i style={ "background:" (state_colour(s)) } {} (state_word(operation, s)) }
            }
            @if lanes {
                span { i.line style={ "background:" (NOT_FOLLOWED) } {} "replication, before its current status" }
                @for x in Readiness::ALL {
                    span { i.line style={ "background:" (readiness_colour(x)) } {} "replication " (x.as_str()) }
                }
            }
        }
    }
}

/// The timeline of a few jobs: one bar each, from its first claim to its final event (to
/// the report's `now`, paler, while it runs), then its replication's lane when it has one.
fn bar_per_job(
    jobs: &[&TimelineEntry],
    scale: &TimeScale,
    r: &Report,
    lanes: &HashMap<i64, &JobProtection>,
) -> Markup {
    let now = r.generated_at;
    const ROW: f64 = 16.0;
    let height = 30.0 + ROW * jobs.len() as f64;
    html! {
        svg width=(CHART_WIDTH) height=(height) viewBox={ "0 0 " (CHART_WIDTH) " " (height) }
            role="img" aria-label="Timeline, one bar per job" {
            title { "Timeline, one bar per job" }
            (axis(scale, height - 22.0))
            @for (i, t) in jobs.iter().enumerate() {
                @let y = 4.0 + ROW * i as f64;
                @let start = t.started_at.map_or(scale.t0, |s| s.0);
                @let x0 = scale.x(start);
                @let w = (scale.x(t.ended_at.unwrap_or(now).0) - x0).max(2.0);
                text x=(LEFT - 6.0) y=(y + 10.0) text-anchor="end" font-size="11" fill="#1d232a" {
                    (bar_label(&t.vm_name))
                }
                rect x=(format!("{x0:.1}")) y=(y) width=(format!("{w:.1}")) height="11" rx="2"
                    fill=(state_colour(t.state)) fill-opacity=[t.ended_at.is_none().then_some("0.55")] {
                    title {
                        (t.vm_name) ": " (state_word(r.batch.operation, t.state)) ", " (UtcTime(start)) " \u{2192} "
                        @match t.ended_at { Some(e) => (e), None => "not finished" }
                    }
                }
                @if let Some(p) = lanes.get(&t.job_id) {
                    (replication_lane(t, p, scale, y))
                }
            }
        }
    }
}

/// One replication on the timeline, on the row of its job at `y`: a thin line from its
/// configure to its last sighting, grey until it became protected or reached its current
/// status, green while protected, then in the colour of its readiness now; a tick at each change
/// of its status and a dot where it became protected. Only the readiness now is coloured: the
/// log keeps the appliance's statuses, and [`Readiness`] is read from the record alone.
fn replication_lane(t: &TimelineEntry, p: &JobProtection, scale: &TimeScale, y: f64) -> Markup {
    let configured = p.configured_at.0;
    let last_change = t.replication_events.last().map_or(configured, |e| e.at.0);
    let protected = p.protected_at.map(|at| at.0);
    let current = match protected {
        Some(at) if p.readiness == Readiness::Protected => last_change.max(at),
        _ => last_change,
    };
    let mut segments = vec![(
        configured,
        protected.unwrap_or(current).min(current),
        NOT_FOLLOWED,
    )];
    if let Some(at) = protected.filter(|at| *at < current) {
        segments.push((at, current, readiness_colour(Readiness::Protected)));
    }
    let seen = p.seen_at.map_or(configured, |t| t.0);
    segments.push((current, seen, readiness_colour(p.readiness)));
    html! {
        @for (from, to, colour) in segments.into_iter().filter(|(f, t, _)| t > f) {
            @let x0 = scale.x(from);
            rect x=(format!("{x0:.1}")) y=(y + 4.0) width=(format!("{:.1}", (scale.x(to) - x0).max(1.0)))
                height="3" fill=(colour) {
                title {
                    (t.vm_name) ": replication " (p.replication_id) ", " (p.words)
                    @if let Some(seen) = p.seen_at {
                        " (" (p.status) "), configured " (p.configured_at) ", last seen " (seen)
                    } @else {
                        ", configured " (p.configured_at) ", never seen"
                    }
                }
            }
        }
        @for e in &t.replication_events {
            rect x=(format!("{:.1}", scale.x(e.at.0) - 0.75)) y=(y + 1.0) width="1.5" height="9"
                fill="#1d232a" {
                title { (t.vm_name) " " (e.at) ": " (e.message.as_deref().unwrap_or(&e.to_status)) }
            }
        }
        @if let Some(at) = p.protected_at {
            circle cx=(format!("{:.1}", scale.x(at.0))) cy=(y + 5.5) r="3.5"
                fill=(readiness_colour(Readiness::Protected)) stroke="#fff" {
                title { (t.vm_name) " protected at " (at) }
            }
        }
    }
}

/// A VM's name on its bar: its moref when it is an id, cut to 26 characters.
fn bar_label(name: &str) -> String {
    let short = moref(name).unwrap_or(name);
    if short.chars().count() > 26 {
        short.chars().take(25).chain(['\u{2026}']).collect()
    } else {
        short.to_string()
    }
}

/// The timeline of many jobs: the jobs that ended in each time slice, stacked by final state;
/// a job not yet finished counts where it started.
fn finishes_per_slice(jobs: &[&TimelineEntry], scale: &TimeScale) -> Markup {
    const CHART: f64 = 200.0;
    let slice = (scale.t1 - scale.t0) as f64 / SLICES as f64;
    let mut counts = vec![[0u64; JobState::ALL.len()]; SLICES];
    for t in jobs {
        let at = t.ended_at.or(t.started_at).map_or(scale.t0, |e| e.0);
        let i = (((at - scale.t0) as f64 / slice) as usize).min(SLICES - 1);
        let s = JobState::ALL
            .iter()
            .position(|s| *s == t.state)
            .unwrap_or(0);
        counts[i][s] += 1;
    }
    let max = counts
        .iter()
        .map(|c| c.iter().sum::<u64>())
        .max()
        .unwrap_or(1)
        .max(1) as f64;
    let col = PLOT / SLICES as f64;
    let height = CHART + 40.0;
    html! {
        p.muted {
            (jobs.len()) " jobs are too many for one bar each: each column counts the jobs that \
             ended in one " (span(slice as i64)) " slice, by final state (unfinished ones where \
             they started)."
        }
        svg width=(CHART_WIDTH) height=(height) viewBox={ "0 0 " (CHART_WIDTH) " " (height) }
            role="img" aria-label="Jobs ended per time slice" {
            title { "Jobs ended per time slice, by final state" }
            text x=(LEFT - 6.0) y="14" text-anchor="end" font-size="11" fill="#5f6b76" { (max as u64) " jobs" }
            line x1=(LEFT) y1="10" x2=(LEFT + PLOT) y2="10" stroke="#d8dee4" {}
            @for (i, column) in counts.iter().enumerate() {
                @let x = format!("{:.1}", LEFT + col * i as f64 + 1.0);
                @let width = format!("{:.1}", (col - 2.0).max(1.0));
                @for (top, h, n, state) in stack(column, max, CHART) {
                    rect x=(x) y=(format!("{top:.1}")) width=(width) height=(format!("{h:.1}")) fill=(state_colour(state)) {
                        title { (n) " " (state) }
                    }
                }
            }
            (axis(scale, 10.0 + CHART))
        }
    }
}

/// The boxes of one histogram column, bottom up: (top, height, jobs, state) of each state
/// present.
fn stack(column: &[u64], max: f64, chart: f64) -> Vec<(f64, f64, u64, JobState)> {
    let mut y = 10.0 + chart;
    JobState::ALL
        .into_iter()
        .zip(column)
        .filter(|(_, n)| **n > 0)
        .map(|(state, &n)| {
            let h = n as f64 / max * chart;
            y -= h;
            (y, h, n, state)
        })
        .collect()
}

/// A time axis along `y` with five labelled ticks: times of day when the range is one day,
/// else month, day and time.
fn axis(scale: &TimeScale, y: f64) -> Markup {
    let (t0, t1) = (scale.t0, scale.t1);
    let same_day = day(t0) == day(t1);
    html! {
        line x1=(LEFT) y1=(y) x2=(LEFT + PLOT) y2=(y) stroke="#5f6b76" {}
        @for k in 0..=4i64 {
            @let at = t0 + (t1 - t0) * k / 4;
            @let x = LEFT + PLOT * k as f64 / 4.0;
            @let anchor = match k { 0 => "start", 4 => "end", _ => "middle" };
            line x1=(x) y1=(y) x2=(x) y2=(y + 4.0) stroke="#5f6b76" {}
            text x=(x) y=(y + 16.0) text-anchor=(anchor) font-size="11" fill="#5f6b76" {
                (tick_label(at, same_day))
            }
        }
    }
}

/// `YYYY-MM-DD` of a moment, or the whole text when it is outside the calendar's range.
fn day(ms: i64) -> String {
    let full = UtcTime(ms).to_string();
    full.get(..10).unwrap_or(&full).to_string()
}

/// `HH:MM:SS` within one day, `MM-DD HH:MM` across days; a moment the calendar cannot show
/// (never written by vrbulk) shows whole rather than cut mid-character.
fn tick_label(ms: i64, same_day: bool) -> String {
    let full = UtcTime(ms).to_string();
    let part = if same_day {
        full.get(11..19)
    } else {
        full.get(5..16)
    };
    part.unwrap_or(&full).to_string()
}

fn state_colour(s: JobState) -> &'static str {
    match s {
        JobState::Pending => "#9aa5b1",
        JobState::Running => "#1e63c6",
        JobState::Retryable => "#ef6c00",
        JobState::Succeeded => "#2e7d32",
        JobState::Skipped => "#607d8b",
        JobState::Failed => "#c62828",
        JobState::Cancelled => "#6d4c41",
    }
}

/// The colour of a configured VM that nothing has followed yet.
const NOT_FOLLOWED: &str = "#bcc5ce";

fn readiness_colour(r: Readiness) -> &'static str {
    match r {
        Readiness::Syncing => "#1e63c6",
        Readiness::Protected => "#2e7d32",
        Readiness::NotActive => "#8d6e63",
        Readiness::Error => "#c62828",
        Readiness::Paused => "#f9a825",
        Readiness::Missing => "#6a1b9a",
        Readiness::Unconfigured => "#9e9e9e",
    }
}

fn action_colour(a: PlanAction) -> &'static str {
    match a {
        PlanAction::Configure => "#2e7d32",
        PlanAction::Skip => "#607d8b",
        PlanAction::Fail => "#c62828",
    }
}

fn badge(s: JobState) -> Markup {
    badge_of(Operation::Configure, s)
}

/// A job state's badge in the words of the batch's operation.
fn badge_of(operation: Operation, s: JobState) -> Markup {
    html! { span.state style={ "background:" (state_colour(s)) } { (state_word(operation, s)) } }
}

/// HTML's marks for the text the renderers share, each made by `maud` and so escaped.
struct Html;

impl audit::Markup for Html {
    fn text(&self, s: &str) -> String {
        html! { (s) }.into_string()
    }

    fn code(&self, s: &str) -> String {
        html! { code { (s) } }.into_string()
    }

    fn quoted(&self, s: &str) -> String {
        quoted(s).into_string()
    }

    fn strong(&self, s: String) -> String {
        html! { b { (PreEscaped(s)) } }.into_string()
    }

    fn muted(&self, s: String) -> String {
        html! { span.muted { (PreEscaped(s)) } }.into_string()
    }
}

/// A name in curly quotation marks.
fn quoted(s: &str) -> Markup {
    html! { "\u{201c}" (s) "\u{201d}" }
}

/// Our own next-step sentences mark commands with backticks; they become `<code>`.
fn code_spans(s: &str) -> Markup {
    html! {
        @for (i, part) in s.split('`').enumerate() {
            @if i % 2 == 1 { code { (part) } } @else { (part) }
        }
    }
}

fn opt(v: &Option<String>) -> &str {
    v.as_deref().unwrap_or_default()
}

/// Texts separated by commas; a dash when there are none.
fn list(v: &[String]) -> Markup {
    html! {
        @if v.is_empty() { "\u{2014}" }
        @for (i, s) in v.iter().enumerate() { @if i > 0 { ", " } (s) }
    }
}

/// `1 attempt`, `2 attempts`.
fn attempts(n: u32) -> String {
    if n == 1 {
        "1 attempt".into()
    } else {
        format!("{n} attempts")
    }
}

/// `None`: the datastore's default storage policy.
fn policy(p: &Option<String>) -> &str {
    p.as_deref().unwrap_or("datastore default")
}

/// The disks a VM table row leaves out, under the replicated ones; nothing when there are none.
fn excluded(disks: &[String]) -> Markup {
    html! {
        @if !disks.is_empty() { br; span.muted { "excluded: " (list(disks)) } }
    }
}

/// A time in the VM table, where the column header says UTC.
fn table_time(t: Option<UtcTime>) -> String {
    t.map(|t| t.to_string().trim_end_matches(" UTC").to_string())
        .unwrap_or_default()
}

/// A VM id shows as its moref, the full id in its tooltip; any other shape shows whole.
fn short_id(id: Option<&str>) -> Markup {
    html! {
        @if let Some(id) = id {
            @match moref(id) {
                Some(m) => span.id.muted title=(id) { (m) },
                None => span.id.muted { (id) },
            }
        }
    }
}

/// A VM the input named only by id has that id as its name: it shows as its moref, like the
/// id column.
fn vm_name(name: &str) -> Markup {
    html! {
        @match moref(name) {
            Some(m) => span title=(name) { (m) },
            None => (name),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_and_attributes_are_escaped() {
        assert_eq!(
            vm_name("<script>alert(\"x\")</script> & 'y'").into_string(),
            "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; 'y'"
        );
        assert_eq!(
            short_id(Some("VirtualMachine:vm-1:\"><b>")).into_string(),
            "<span class=\"id muted\" title=\"VirtualMachine:vm-1:&quot;&gt;&lt;b&gt;\">vm-1</span>"
        );
    }

    #[test]
    fn next_steps_show_commands_as_code_and_stay_escaped() {
        assert_eq!(
            code_spans("run `vrbulk retry --failed` <now>").into_string(),
            "run <code>vrbulk retry --failed</code> &lt;now&gt;"
        );
    }

    #[test]
    fn axis_labels_of_moments_outside_the_calendar_do_not_panic() {
        // jiff cannot show these; the text that stands in for them is shorter than a date.
        for ms in [i64::MIN, -1_000_000_000_000_000, i64::MAX] {
            assert!(!tick_label(ms, true).is_empty());
            assert!(!tick_label(ms, false).is_empty());
            assert!(!day(ms).is_empty());
        }
        assert_eq!(tick_label(1_717_243_200_000, true), "12:00:00");
        assert_eq!(tick_label(1_717_243_200_000, false), "06-01 12:00");
    }
}
