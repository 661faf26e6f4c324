//! HTML: one self-contained page (inline CSS and SVG, no script, nothing fetched) that reads
//! well on screen and on paper. The summary is a bar chart, the timeline one bar per job; past
//! [`TIMELINE_BARS`] jobs the timeline becomes a histogram of finishes per time slice, because
//! ten thousand one-pixel bars say nothing. All text goes through [`esc`].

use std::fmt::Write as _;

use super::audit::{self, Markup};
use super::{bytes, span, PlanAction, PlanReport, Report, TimelineEntry, UtcTime};
use crate::queue::JobState;

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
table.jobs .vm { min-width: 8em; max-width: 16em; overflow-wrap: anywhere; }
table.jobs .disks { min-width: 9em; }
table.jobs .id { font-size: inherit; }
table.jobs .text { min-width: 16em; overflow-wrap: anywhere; }
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
.legend span { display: inline-block; margin-right: 14px; font-size: 12px; }
.legend i { display: inline-block; width: 10px; height: 10px; margin-right: 4px; border-radius: 2px; }
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
    let mut out = String::with_capacity(r.jobs.len() * 900 + 32 * 1024);
    let b = &r.batch;
    head(
        &mut out,
        &format!(
            "Replication report: batch {} \u{201c}{}\u{201d}",
            b.id, b.name
        ),
    );
    let _ = write!(
        out,
        "<header><h1>Replication report <span class=\"muted\">batch {} {}</span></h1>",
        b.id,
        Html.quoted(&b.name)
    );
    let c = &r.summary.counts;
    let banner = audit::banner(r);
    if banner.in_progress {
        let _ = write!(
            out,
            "<p class=\"banner warn\">{} This report shows where the batch stood at {}: {}.</p>",
            banner.headline, r.generated_at, banner.counts
        );
    } else {
        let _ = write!(
            out,
            "<p class=\"banner {}\">{} {}.</p>",
            if c[&JobState::Failed] > 0 {
                "bad"
            } else {
                "ok"
            },
            banner.headline,
            banner.counts
        );
    }
    out.push_str("</header>\n");

    audit_table(&mut out, &audit::batch_rows(r, &Html));
    out.push_str("</table>");
    let settings = serde_json::to_string_pretty(&b.settings).unwrap_or_default();
    let _ = writeln!(
        out,
        "<h3>Effective settings</h3><pre>{}</pre></section>",
        esc(&settings)
    );

    let s = &r.summary;
    out.push_str("<section id=\"summary\"><h2>Summary</h2><div class=\"row\">");
    let bars: Vec<(String, u64, &str)> = JobState::ALL
        .iter()
        .map(|st| (format!("{st}"), c[st], state_colour(*st)))
        .collect();
    out.push_str(&bar_chart(
        &bars,
        s.total,
        &format!("Jobs per state, {} in all", s.total),
    ));
    out.push_str("<div class=\"cards\">");
    let mut card = |value: String, label: &str| {
        let _ = write!(
            out,
            "<div class=\"card\"><b>{value}</b><span>{label}</span></div>"
        );
    };
    card(
        format!("{:.1}%", s.percent[&JobState::Succeeded]),
        "succeeded",
    );
    card(bytes(s.replicated_capacity_bytes), "replicated capacity");
    card(s.api_total.calls.to_string(), "API calls");
    card(s.api_total.throttled.to_string(), "throttled (429)");
    card(s.api_total.server_errors.to_string(), "server errors (5xx)");
    card(s.api_total.retries.to_string(), "request retries");
    card(s.job_retries.to_string(), "job retries");
    card(s.relogins.to_string(), "re-logins");
    out.push_str("</div></div>");

    out.push_str(
        "<div class=\"tables\"><div><h3>Jobs per state</h3><table style=\"width:auto\"><thead><tr><th>State</th>\
         <th class=\"n\">Jobs</th><th class=\"n\">Share</th></tr></thead><tbody>",
    );
    for st in JobState::ALL {
        let _ = write!(
            out,
            "<tr><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{:.1}%</td></tr>",
            badge(st),
            c[&st],
            s.percent[&st]
        );
    }
    let _ = write!(
        out,
        "<tr><th>total</th><th class=\"n\">{}</th><th class=\"n\">100.0%</th></tr></tbody></table>",
        s.total
    );

    out.push_str("</div><div><h3>API calls</h3>");
    if s.api_calls.is_empty() {
        out.push_str("<p>No API calls recorded.</p>");
    } else {
        out.push_str(
            "<table style=\"width:auto\"><thead><tr><th>Operation</th><th class=\"n\">Calls</th>\
             <th class=\"n\">Throttled (429)</th><th class=\"n\">Server errors (5xx)</th>\
             <th class=\"n\">Retries</th></tr></thead><tbody>",
        );
        let mut api_row = |a: &super::ApiCall, cell: &str| {
            let _ = write!(
                out,
                "<tr><{cell}><code>{}</code></{cell}><{cell} class=\"n\">{}</{cell}>\
                 <{cell} class=\"n\">{}</{cell}><{cell} class=\"n\">{}</{cell}>\
                 <{cell} class=\"n\">{}</{cell}></tr>",
                esc(&a.operation),
                a.calls,
                a.throttled,
                a.server_errors,
                a.retries
            );
        };
        for a in &s.api_calls {
            api_row(a, "td");
        }
        api_row(&s.api_total, "th");
        out.push_str("</tbody></table>");
    }
    out.push_str("</div></div></section>\n");

    out.push_str("<section id=\"failures\"><h2>Failures by cause</h2>");
    if r.failures.is_empty() {
        out.push_str("<p>No job failed.</p>");
    }
    for g in &r.failures {
        let _ = write!(
            out,
            "<div class=\"cause\"><h3>{} \u{00d7} {}</h3><p><span class=\"muted\">Example:</span> \
             {}</p><p><b>Next step:</b> {}</p><p><span class=\"muted\">VMs:</span> {}</p></div>",
            g.count,
            esc(&g.cause),
            esc(&g.example),
            code_spans(&g.next_step),
            list(&g.vms)
        );
    }
    out.push_str("</section>\n");

    out.push_str("<section id=\"timeline\"><h2>Timeline</h2>");
    out.push_str(&timeline(&r.timeline, r.generated_at));
    out.push_str("</section>\n");

    out.push_str(
        "<section id=\"vms\"><h2>Virtual machines</h2><p class=\"muted\">Times in UTC. VM ids \
         show their managed object reference (hover for the full id; the CSV and JSON reports \
         carry it whole).</p><div class=\"scroll\"><table class=\"jobs\"><thead><tr>\
         <th>VM</th><th>State</th><th class=\"text\">Reason</th><th>Replication / task</th>\
         <th>Datastore / policy</th><th>RPO / MPIT</th><th>Disks</th><th class=\"n\">Attempts</th>\
         <th>Started / finished</th><th class=\"n\">Duration</th><th>Change ticket</th>\
         <th class=\"text\">Notes</th></tr></thead><tbody>\n",
    );
    for j in &r.jobs {
        let _ = writeln!(
            out,
            "<tr><td class=\"vm\"><b>{}</b><br>{}</td><td>{}</td><td class=\"text\">{}</td>\
             <td class=\"id nw\">{}<br>{}</td><td class=\"nw\">{}<br><span class=\"muted\">{}</span></td>\
             <td class=\"nw\">{}&nbsp;min<br><span class=\"muted\">MPIT {}</span></td><td class=\"disks\">{}{}</td>\
             <td class=\"n\">{}</td><td class=\"nw\">{}<br>{}</td><td class=\"n nw\">{}</td>\
             <td>{}</td><td class=\"text\">{}</td></tr>",
            vm_name(&j.vm_name),
            short_id(j.vm_id.as_deref()),
            badge(j.state),
            opt(&j.reason),
            opt(&j.replication_id),
            opt(&j.task_id),
            esc(&j.target_datastore),
            j.storage_policy
                .as_deref()
                .map_or("datastore default".into(), esc),
            j.rpo_minutes,
            esc(&super::md::mpit(j.mpit_instances, j.mpit_days)),
            list(&j.disks_replicated),
            excluded(&j.disks_excluded),
            j.attempts,
            table_time(j.started_at),
            table_time(j.finished_at),
            j.duration_ms.map(span).unwrap_or_default(),
            opt(&j.change_ticket),
            opt(&j.notes),
        );
    }
    out.push_str("</tbody></table></div></section>\n");
    foot(&mut out, r.generated_at);
    out
}

pub(super) fn plan(p: &PlanReport) -> String {
    let mut out = String::with_capacity(p.jobs.len() * 600 + 16 * 1024);
    let b = &p.batch;
    head(
        &mut out,
        &format!(
            "Replication plan: batch {} \u{201c}{}\u{201d}",
            b.id, b.name
        ),
    );
    let _ = writeln!(
        out,
        "<header><h1>Replication plan <span class=\"muted\">batch {} {}</span></h1>\
         <p class=\"banner plan\">{} {}</p></header>",
        b.id,
        Html.quoted(&b.name),
        audit::DRY_RUN,
        audit::plan_counts(p)
    );
    audit_table(&mut out, &audit::plan_rows(p, &Html));
    out.push_str("</table></section>\n<section id=\"summary\"><h2>Summary</h2>");
    let bars: Vec<(String, u64, &str)> = PlanAction::ALL
        .iter()
        .map(|a| (a.as_str().to_string(), p.count(*a), action_colour(*a)))
        .collect();
    out.push_str(&bar_chart(
        &bars,
        p.jobs.len() as u64,
        &format!("Planned actions, {} jobs", p.jobs.len()),
    ));
    out.push_str(
        "</section>\n<section id=\"vms\"><h2>Virtual machines</h2><div class=\"scroll\">\
         <table class=\"jobs\"><thead><tr><th>VM</th><th>Action</th><th class=\"text\">Reason</th>\
         <th>Datastore / policy</th><th>VR server</th><th>Disks</th>\
         <th class=\"n\">Capacity</th><th class=\"text\">Warnings</th><th>Change ticket</th>\
         <th class=\"text\">Notes</th></tr></thead><tbody>\n",
    );
    for j in &p.jobs {
        let _ = writeln!(
            out,
            "<tr><td class=\"vm\"><b>{}</b><br>{}</td><td><span class=\"state\" \
             style=\"background:{}\">{}</span></td><td class=\"text\">{}</td>\
             <td class=\"nw\">{}<br><span class=\"muted\">{}</span></td><td class=\"nw\">{}</td>\
             <td class=\"disks\">{}{}</td><td class=\"n nw\">{}</td><td class=\"text\">{}</td>\
             <td>{}</td><td class=\"text\">{}</td></tr>",
            vm_name(&j.vm_name),
            short_id(j.vm_id.as_deref()),
            action_colour(j.action),
            j.action.as_str(),
            opt(&j.reason),
            esc(&j.target_datastore),
            j.storage_policy
                .as_deref()
                .map_or("datastore default".into(), esc),
            j.replication_server.as_deref().map_or("auto".into(), esc),
            j.disks,
            excluded(&j.excluded_disks),
            bytes(j.capacity_bytes),
            list(&j.warnings),
            opt(&j.change_ticket),
            opt(&j.notes),
        );
    }
    out.push_str("</tbody></table></div></section>\n");
    foot(&mut out, p.generated_at);
    out
}

/// The audit section's table (the caller closes the table and its section).
fn audit_table(out: &mut String, rows: &[audit::Row]) {
    out.push_str("<section id=\"audit\"><h2>Audit</h2><table class=\"kv\">");
    for (k, v) in rows {
        let _ = write!(out, "<tr><th>{k}</th><td>{v}</td></tr>");
    }
}

fn head(out: &mut String, title: &str) {
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{}</title>\n<style>{CSS}</style>\n</head>\n<body>\n",
        esc(title)
    );
}

fn foot(out: &mut String, at: UtcTime) {
    let _ = write!(
        out,
        "<footer>Written by vrbulk {} at {at} from the job queue's own record.</footer>\n\
         </body>\n</html>\n",
        env!("CARGO_PKG_VERSION")
    );
}

/// Horizontal bars, one per `(label, value, colour)`, scaled to the largest value.
fn bar_chart(bars: &[(String, u64, &str)], total: u64, title: &str) -> String {
    const LABEL: f64 = 90.0;
    const WIDTH: f64 = 300.0;
    const ROW: f64 = 26.0;
    let max = bars.iter().map(|b| b.1).max().unwrap_or(0).max(1) as f64;
    let height = ROW * bars.len() as f64 + 8.0;
    let mut svg = String::new();
    let _ = write!(
        svg,
        "<svg width=\"{w}\" height=\"{height}\" \
         viewBox=\"0 0 {w} {height}\" role=\"img\" aria-label=\"{t}\"><title>{t}</title>",
        w = LABEL + WIDTH + 110.0,
        t = esc(title)
    );
    for (i, (label, value, colour)) in bars.iter().enumerate() {
        let y = 4.0 + ROW * i as f64;
        let w = if *value == 0 {
            0.0
        } else {
            (*value as f64 / max * WIDTH).max(2.0)
        };
        let share = if total == 0 {
            0.0
        } else {
            *value as f64 * 100.0 / total as f64
        };
        let _ = write!(
            svg,
            "<text x=\"{lx}\" y=\"{ty}\" text-anchor=\"end\" font-size=\"13\" fill=\"#1d232a\">{l}</text>\
             <rect x=\"{LABEL}\" y=\"{y}\" width=\"{WIDTH}\" height=\"18\" fill=\"#eef1f4\" rx=\"3\"/>\
             <rect x=\"{LABEL}\" y=\"{y}\" width=\"{w:.1}\" height=\"18\" fill=\"{colour}\" rx=\"3\">\
             <title>{l}: {value}</title></rect>\
             <text x=\"{vx}\" y=\"{ty}\" font-size=\"13\" fill=\"#1d232a\">{value} ({share:.1}%)</text>",
            lx = LABEL - 8.0,
            ty = y + 14.0,
            l = esc(label),
            vx = LABEL + WIDTH + 8.0,
        );
    }
    svg.push_str("</svg>");
    svg
}

/// One bar per job (first claim to final event) while there are few; a histogram of finishes
/// per time slice, stacked by final state, when there are many.
fn timeline(entries: &[TimelineEntry], now: UtcTime) -> String {
    let started: Vec<&TimelineEntry> = entries.iter().filter(|t| t.started_at.is_some()).collect();
    let not_started = entries.len() - started.len();
    let mut out = String::new();
    if started.is_empty() {
        out.push_str("<p>No job has started yet.</p>");
        return out;
    }
    let t0 = started
        .iter()
        .filter_map(|t| t.started_at)
        .min()
        .unwrap_or(now)
        .0;
    let end_of = |t: &TimelineEntry| t.ended_at.unwrap_or(now).0;
    let t1 = started
        .iter()
        .map(|t| end_of(t))
        .max()
        .unwrap_or(t0)
        .max(t0 + 1000);
    let range = (t1 - t0) as f64;

    const LEFT: f64 = 190.0;
    const PLOT: f64 = 760.0;
    const WIDTH: f64 = LEFT + PLOT + 20.0;
    let x = |ms: i64| LEFT + (ms - t0) as f64 / range * PLOT;

    let _ = write!(
        out,
        "<p class=\"muted\">From {} to {} ({}); {} of {} jobs started{}.</p>",
        UtcTime(t0),
        UtcTime(t1),
        span(t1 - t0),
        started.len(),
        entries.len(),
        if not_started > 0 {
            format!(", {not_started} not yet")
        } else {
            String::new()
        }
    );
    legend(&mut out);

    let mut sorted = started.clone();
    sorted.sort_by_key(|t| (t.started_at, t.job_id));
    if sorted.len() <= TIMELINE_BARS {
        const ROW: f64 = 16.0;
        let height = 30.0 + ROW * sorted.len() as f64;
        let _ = write!(
            out,
            "<svg width=\"{WIDTH}\" height=\"{height}\" \
             viewBox=\"0 0 {WIDTH} {height}\" role=\"img\" aria-label=\"Timeline, one bar per \
             job\"><title>Timeline, one bar per job</title>"
        );
        axis(&mut out, t0, t1, LEFT, PLOT, height - 22.0);
        for (i, t) in sorted.iter().enumerate() {
            let y = 4.0 + ROW * i as f64;
            let start = t.started_at.map_or(t0, |s| s.0);
            let x0 = x(start);
            let w = (x(end_of(t)) - x0).max(2.0);
            let short = moref(&t.vm_name).unwrap_or(&t.vm_name);
            let name: String = if short.chars().count() > 26 {
                short.chars().take(25).chain(['\u{2026}']).collect()
            } else {
                short.to_string()
            };
            let open = if t.ended_at.is_none() {
                " fill-opacity=\"0.55\""
            } else {
                ""
            };
            let _ = write!(
                out,
                "<text x=\"{tx}\" y=\"{ty}\" text-anchor=\"end\" font-size=\"11\" fill=\"#1d232a\">{n}</text>\
                 <rect x=\"{x0:.1}\" y=\"{y}\" width=\"{w:.1}\" height=\"11\" rx=\"2\" fill=\"{c}\"{open}>\
                 <title>{full}: {st}, {from} \u{2192} {to}</title></rect>",
                tx = LEFT - 6.0,
                ty = y + 10.0,
                n = esc(&name),
                c = state_colour(t.state),
                full = esc(&t.vm_name),
                st = t.state,
                from = UtcTime(start),
                to = t
                    .ended_at
                    .map_or("not finished".to_string(), |e| e.to_string()),
            );
        }
        out.push_str("</svg>");
    } else {
        // Many jobs: count finishes per slice and final state; unfinished jobs show as
        // "started, not finished" in the slice they started in.
        let slice = range / SLICES as f64;
        let mut counts = vec![[0u64; JobState::ALL.len()]; SLICES];
        for t in &sorted {
            let (at, state) = match t.ended_at {
                Some(e) => (e.0, t.state),
                None => (t.started_at.map_or(t0, |s| s.0), t.state),
            };
            let i = (((at - t0) as f64 / slice) as usize).min(SLICES - 1);
            let s = JobState::ALL.iter().position(|s| *s == state).unwrap_or(0);
            counts[i][s] += 1;
        }
        let max = counts
            .iter()
            .map(|c| c.iter().sum::<u64>())
            .max()
            .unwrap_or(1)
            .max(1) as f64;
        const CHART: f64 = 200.0;
        let height = CHART + 40.0;
        let _ = write!(
            out,
            "<p class=\"muted\">{} jobs are too many for one bar each: each column counts the \
             jobs that ended in one {} slice, by final state (unfinished ones where they \
             started).</p>\
             <svg width=\"{WIDTH}\" height=\"{height}\" \
             viewBox=\"0 0 {WIDTH} {height}\" role=\"img\" aria-label=\"Jobs ended per time \
             slice\"><title>Jobs ended per time slice, by final state</title>",
            sorted.len(),
            span(slice as i64)
        );
        let _ = write!(
            out,
            "<text x=\"{}\" y=\"14\" text-anchor=\"end\" font-size=\"11\" fill=\"#5f6b76\">{} jobs</text>\
             <line x1=\"{LEFT}\" y1=\"10\" x2=\"{}\" y2=\"10\" stroke=\"#d8dee4\"/>",
            LEFT - 6.0,
            max as u64,
            LEFT + PLOT
        );
        let col = PLOT / SLICES as f64;
        for (i, c) in counts.iter().enumerate() {
            let mut y = 10.0 + CHART;
            for (s, n) in c.iter().enumerate() {
                if *n == 0 {
                    continue;
                }
                let h = *n as f64 / max * CHART;
                y -= h;
                let _ = write!(
                    out,
                    "<rect x=\"{:.1}\" y=\"{y:.1}\" width=\"{:.1}\" height=\"{h:.1}\" fill=\"{}\">\
                     <title>{n} {}</title></rect>",
                    LEFT + col * i as f64 + 1.0,
                    (col - 2.0).max(1.0),
                    state_colour(JobState::ALL[s]),
                    JobState::ALL[s]
                );
            }
        }
        axis(&mut out, t0, t1, LEFT, PLOT, 10.0 + CHART);
        out.push_str("</svg>");
    }
    out
}

/// A time axis along `y` with five labelled ticks.
fn axis(out: &mut String, t0: i64, t1: i64, left: f64, plot: f64, y: f64) {
    let _ = write!(
        out,
        "<line x1=\"{left}\" y1=\"{y}\" x2=\"{}\" y2=\"{y}\" stroke=\"#5f6b76\"/>",
        left + plot
    );
    let same_day = UtcTime(t0).to_string()[..10] == UtcTime(t1).to_string()[..10];
    for k in 0..=4 {
        let at = t0 + (t1 - t0) * k / 4;
        let x = left + plot * k as f64 / 4.0;
        let full = UtcTime(at).to_string();
        let label = if same_day {
            &full[11..19]
        } else {
            &full[5..16]
        };
        let anchor = match k {
            0 => "start",
            4 => "end",
            _ => "middle",
        };
        let _ = write!(
            out,
            "<line x1=\"{x}\" y1=\"{y}\" x2=\"{x}\" y2=\"{}\" stroke=\"#5f6b76\"/>\
             <text x=\"{x}\" y=\"{}\" text-anchor=\"{anchor}\" font-size=\"11\" fill=\"#5f6b76\">{label}</text>",
            y + 4.0,
            y + 16.0
        );
    }
}

fn legend(out: &mut String) {
    out.push_str("<p class=\"legend\">");
    for s in JobState::ALL {
        let _ = write!(
            out,
            "<span><i style=\"background:{}\"></i>{s}</span>",
            state_colour(s)
        );
    }
    out.push_str("</p>");
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

fn action_colour(a: PlanAction) -> &'static str {
    match a {
        PlanAction::Configure => "#2e7d32",
        PlanAction::Skip => "#607d8b",
        PlanAction::Fail => "#c62828",
    }
}

fn badge(s: JobState) -> String {
    format!(
        "<span class=\"state\" style=\"background:{}\">{s}</span>",
        state_colour(s)
    )
}

/// HTML's marks for the text the renderers share.
struct Html;

impl Markup for Html {
    fn text(&self, s: &str) -> String {
        esc(s)
    }

    fn code(&self, s: &str) -> String {
        format!("<code>{}</code>", esc(s))
    }

    fn quoted(&self, s: &str) -> String {
        format!("\u{201c}{}\u{201d}", esc(s))
    }

    fn strong(&self, s: String) -> String {
        format!("<b>{s}</b>")
    }

    fn muted(&self, s: String) -> String {
        format!("<span class=\"muted\">{s}</span>")
    }
}

/// Escapes text for HTML element content and quoted attribute values alike.
pub(crate) fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Our own next-step sentences mark commands with backticks; they become `<code>`.
fn code_spans(s: &str) -> String {
    esc(s)
        .split('`')
        .enumerate()
        .map(|(i, part)| {
            if i % 2 == 1 {
                format!("<code>{part}</code>")
            } else {
                part.to_string()
            }
        })
        .collect()
}

fn opt(v: &Option<String>) -> String {
    v.as_deref().map(esc).unwrap_or_default()
}

fn list(v: &[String]) -> String {
    Html.list(v)
}

/// The disks a VM table row leaves out, under the replicated ones; nothing when there are none.
fn excluded(disks: &[String]) -> String {
    if disks.is_empty() {
        String::new()
    } else {
        format!("<br><span class=\"muted\">excluded: {}</span>", list(disks))
    }
}

/// A time in the VM table, where the column header says UTC.
fn table_time(t: Option<UtcTime>) -> String {
    t.map(|t| t.to_string().trim_end_matches(" UTC").to_string())
        .unwrap_or_default()
}

/// The managed object reference of an API id: `vm-38` of `VirtualMachine:vm-38:<vc-uuid>`.
fn moref(id: &str) -> Option<&str> {
    let mut parts = id.split(':');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(kind), Some(moref), Some(_), None)
            if kind == "VirtualMachine" && !moref.is_empty() =>
        {
            Some(moref)
        }
        _ => None,
    }
}

/// A VM id shows as its moref, the full id in its tooltip; any other shape shows whole.
fn short_id(id: Option<&str>) -> String {
    match id {
        None => String::new(),
        Some(id) => match moref(id) {
            Some(m) => format!(
                "<span class=\"id muted\" title=\"{}\">{}</span>",
                esc(id),
                esc(m)
            ),
            None => format!("<span class=\"id muted\">{}</span>", esc(id)),
        },
    }
}

/// A VM the input named only by id has that id as its name: it shows as its moref, like the
/// id column.
fn vm_name(name: &str) -> String {
    match moref(name) {
        Some(m) => format!("<span title=\"{}\">{}</span>", esc(name), esc(m)),
        None => esc(name),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_and_attributes_are_escaped() {
        assert_eq!(
            esc("<script>alert(\"x\")</script> & 'y'"),
            "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#39;y&#39;"
        );
        assert_eq!(esc("plain"), "plain");
    }

    #[test]
    fn next_steps_show_commands_as_code_and_stay_escaped() {
        assert_eq!(
            code_spans("run `vrbulk retry --failed` <now>"),
            "run <code>vrbulk retry --failed</code> &lt;now&gt;"
        );
    }
}
