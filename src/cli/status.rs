//! `vrbulk status`: where a batch stands, read from the queue while a `vrbulk run` may be
//! working on it, and, once jobs are configured, where their replications stand (configured is
//! not protected); last, how its last run ended (interrupted, died, …) with the command that
//! carries on. Text for people, `--json` for scripts; the numbers come from
//! [`Queue::status`](crate::queue::Queue::status), the run's end from
//! [`Queue::summary`](crate::queue::Queue::summary).

use crate::exit::Exit;
use std::fmt::Write as _;
use std::path::Path;

use clap::Args;
use serde::Serialize;

use crate::queue::{
    jobs_left, BatchId, BatchStatus, JobState, LastRun, Queue, Readiness, ReadinessCounts, Standing,
};
use crate::timefmt::{span, utc};

#[derive(Debug, Args)]
#[command(after_help = "Examples:
  vrbulk status                  the newest batch
  vrbulk status --batch 3 --json | jq .counts")]
pub struct StatusArgs {
    /// The batch [default: the newest].
    #[arg(long, value_name = "ID")]
    pub batch: Option<BatchId>,

    /// Print the status as one JSON object.
    #[arg(long)]
    pub json: bool,

    /// How many of the newest errors to show.
    #[arg(long, value_name = "N", default_value_t = crate::queue::LAST_ERRORS)]
    pub errors: usize,
}

/// The `--json` shape: the status, with where the batch stands and its last run beside it.
#[derive(Serialize)]
struct StatusJson<'a> {
    #[serde(flatten)]
    status: &'a BatchStatus,
    standing: &'a Standing,
    last_run: Option<&'a LastRun>,
    /// The newest measurement of the link and the prediction from it; `null` when no run
    /// measured the link.
    link: Option<&'a super::link::LinkStatus>,
}

pub fn run(args: StatusArgs, db: &Path) -> anyhow::Result<Exit> {
    let (queue, batch) = Queue::read_batch(db, args.batch)?;
    let status = queue.status_with_errors(batch.id, args.errors)?;
    let summary = queue.summary(batch.id, &super::batches::liveness_here())?;
    let link = super::link::status(&queue, &batch, status.as_of)?;
    if args.json {
        let json = StatusJson {
            status: &status,
            standing: &summary.standing,
            last_run: summary.last_run.as_ref(),
            link: link.as_ref(),
        };
        println!("{}", serde_json::to_string_pretty(&json)?);
    } else {
        print!("{}", render(&status));
        if let Some(link) = &link {
            print!("{}", super::link::status_words(link, status.as_of));
        }
        print!(
            "{}",
            last_run(&status, &summary.standing, summary.last_run.as_ref())
        );
        print!("{}", super::posture::lines(&queue)?);
    }
    Ok(Exit::Ok)
}

/// How the last run left the batch, and the command that carries on; nothing for a batch that
/// is over. `left` is counted from `s`, so that it agrees with the counts printed above it.
pub fn last_run(s: &BatchStatus, standing: &Standing, run: Option<&LastRun>) -> String {
    let id = s.batch.id;
    let left = jobs_left(&s.counts);
    let left = format!("{left} of {} jobs left", s.total);
    let resume = format!("next: vrbulk run --batch {id}");
    let ran = |at: i64| {
        run.map(|r| {
            format!(
                " (started {}, ran {})",
                utc(r.started_at),
                span(at - r.started_at)
            )
        })
        .unwrap_or_default()
    };
    let (said, next) = match standing {
        Standing::Empty | Standing::Finished | Standing::Cancelled => return String::new(),
        Standing::NotStarted => (
            format!("not run yet; {left}"),
            format!("next: vrbulk plan --batch {id}   (a dry run), then vrbulk run --batch {id}"),
        ),
        Standing::Running { owners, held } => (
            format!(
                "running: {} works on it, holding {held} jobs; {left}",
                owners.join(", ")
            ),
            // Nothing to do but let it work; a second run would need --join.
            String::new(),
        ),
        Standing::Interrupted { at } => (
            format!(
                "last run: interrupted (Ctrl-C) at {}{}; its jobs were given back; {left}",
                utc(*at),
                ran(*at)
            ),
            resume,
        ),
        Standing::Died {
            owner,
            started_at,
            reserved,
            reserved_until,
        } => {
            let reserved = match reserved_until {
                Some(until) if *reserved > 0 => format!(
                    ", {reserved} of them reserved by its leases until {} (the next run waits \
                     that out, then takes them over)",
                    utc(*until)
                ),
                _ => String::new(),
            };
            (
                format!(
                    "last run: died: started {} by {owner}, never recorded its end, and its \
                     process is gone (killed, or the machine stopped); {left}{reserved}",
                    utc(*started_at)
                ),
                resume,
            )
        }
        Standing::Unknown { owner, started_at } => (
            format!(
                "last run: started {} by {owner} on another host and has not recorded its end; \
                 it holds no job now: it may be waiting for a retry, or be gone; {left}",
                utc(*started_at)
            ),
            format!("if it is gone: vrbulk run --batch {id}"),
        ),
        Standing::WindowClosed { at } => (
            format!(
                "last run: the change window closed at {}{}; {left}",
                utc(*at),
                ran(*at)
            ),
            format!("{resume}   (in the next change window)"),
        ),
        Standing::Stopped { at, outcome } => (
            format!(
                "last run: stopped at {}{} ({outcome}); {left}",
                utc(*at),
                ran(*at)
            ),
            format!("{resume}   (once the cause is fixed)"),
        ),
        Standing::Unfinished => (
            format!("{left} (requeued since the last run ended)"),
            resume,
        ),
    };
    if next.is_empty() {
        format!("\n{said}\n")
    } else {
        format!("\n{said}\n{next}\n")
    }
}

/// The text form: header, counts per state, then only the sections that have something to say.
pub fn render(s: &BatchStatus) -> String {
    let mut out = String::new();
    let b = &s.batch;
    let _ = writeln!(
        out,
        "batch {} \"{}\": created {} by {}@{}, {} jobs",
        b.id,
        b.name,
        utc(b.created_at),
        b.operator,
        b.host,
        s.total
    );
    let width = s.counts.values().max().map_or(1, |n| n.to_string().len());
    for (state, n) in &s.counts {
        let _ = writeln!(out, "  {:<10} {n:>width$}", state.as_str());
    }
    if let Some(p) = &s.protection {
        out.push_str(&protection(p, b.id));
    }

    let unfinished: Vec<_> = s
        .steps
        .iter()
        .flat_map(|(state, steps)| steps.iter().map(move |(step, n)| (*state, *step, *n)))
        .collect();
    if !unfinished.is_empty() {
        let width = unfinished
            .iter()
            .map(|(.., n)| n.to_string().len())
            .max()
            .unwrap_or(1);
        let _ = writeln!(out, "\nunfinished, by step:");
        for (state, step, n) in unfinished {
            let _ = writeln!(
                out,
                "  {:<10} {:<15} {n:>width$}",
                state.as_str(),
                step.as_str()
            );
        }
    }

    let mut notes = Vec::new();
    if let Some(r) = &s.oldest_running {
        let since = r
            .started_at
            .map(|t| format!(", started {} ({} ago)", utc(t), span(s.as_of - t)))
            .unwrap_or_default();
        let lease = if r.lease_expired {
            format!(
                "lease of {} expired {} ago: the next `vrbulk run` rescues it",
                r.lease_owner,
                span(s.as_of - r.lease_expires_at)
            )
        } else {
            format!(
                "held by {} until {}",
                r.lease_owner,
                utc(r.lease_expires_at)
            )
        };
        notes.push(format!(
            "oldest running: job {} {} at {}, attempt {}{since}; {lease}",
            r.job_id, r.vm, r.step, r.attempt
        ));
    }
    if let Some(at) = s.next_retry_at {
        let retryable = s.counts[&JobState::Retryable];
        let when = if at <= s.as_of {
            "due now".to_string()
        } else {
            format!("in {}", span(at - s.as_of))
        };
        notes.push(format!(
            "next retry: {} ({when}); {} of {retryable} retryable due",
            utc(at),
            s.retries_due
        ));
    }
    if s.in_doubt > 0 {
        notes.push(format!(
            "in doubt: {} (a configure call may have reached the server; the next run asks \
             the server before submitting again)",
            s.in_doubt
        ));
    }
    match (s.first_started_at, s.last_finished_at) {
        (Some(first), Some(last)) => notes.push(format!(
            "first started {}, last finished {}",
            utc(first),
            utc(last)
        )),
        (Some(first), None) => notes.push(format!("first started {}", utc(first))),
        _ => {}
    }
    if !notes.is_empty() {
        out.push('\n');
        for note in notes {
            let _ = writeln!(out, "{note}");
        }
    }

    if !s.last_errors.is_empty() {
        let _ = writeln!(out, "\nlast errors, newest first:");
        for e in &s.last_errors {
            let http = e
                .http_status
                .map(|h| format!(", HTTP {h}"))
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "  {}  {} ({}) at {}, attempt {}{http}: {}",
                utc(e.at),
                e.vm,
                e.state,
                e.step,
                e.attempt,
                e.message
            );
        }
    }
    out
}

/// Where the configured VMs stand, by readiness, each count with what explains it; a batch that
/// nothing has followed says so and what to run, rather than count nothing as protected.
fn protection(p: &ReadinessCounts, batch: BatchId) -> String {
    let watch = format!("next: vrbulk watch --batch {batch}");
    let vms = if p.configured == 1 { "VM" } else { "VMs" };
    if p.not_followed == p.configured {
        return format!(
            "\nprotection of the {} configured {vms}: not followed yet; {watch}\n",
            p.configured
        );
    }
    let seen = p
        .last_seen_at
        .map(|t| format!(", as last seen {}", utc(t)))
        .unwrap_or_default();
    let mut out = format!(
        "\nprotection of the {} configured {vms}{seen}:\n",
        p.configured
    );
    let copied = (p.sync_bytes_total > 0).then(|| {
        format!(
            "{:.1}% of {} copied",
            p.sync_bytes_done as f64 * 100.0 / p.sync_bytes_total as f64,
            crate::units::bytes(p.sync_bytes_total)
        )
    });
    let behind = (p.rpo_violation > 0).then(|| format!("{} in RPO violation", p.rpo_violation));
    let mut rows: Vec<(&str, u64, Option<String>)> = vec![
        ("syncing", p.count(Readiness::Syncing), copied),
        ("protected", p.count(Readiness::Protected), behind),
        (
            "not active",
            p.count(Readiness::NotActive),
            Some("powered off, waiting".into()),
        ),
        ("error", p.count(Readiness::Error), None),
    ];
    // What vrbulk's own day-2 batches did, and what someone did outside it, when they did.
    let others = [
        (Readiness::Paused, "paused", p.paused_words()),
        (
            Readiness::Missing,
            "no longer exists",
            "removed outside vrbulk".into(),
        ),
        (
            Readiness::Unconfigured,
            "unconfigured",
            p.unconfigured_words(),
        ),
    ];
    for (readiness, label, note) in others {
        if p.count(readiness) > 0 {
            rows.push((label, p.count(readiness), Some(note)));
        }
    }
    if p.not_followed > 0 {
        rows.push(("not followed", p.not_followed, Some(watch)));
    }
    let width = rows
        .iter()
        .map(|r| r.1.to_string().len())
        .max()
        .unwrap_or(1);
    let labels = rows.iter().map(|r| r.0.len()).max().unwrap_or(0).max(12);
    for (label, n, note) in rows {
        let note = note
            .filter(|_| n > 0)
            .map(|t| format!("  {t}"))
            .unwrap_or_default();
        let _ = writeln!(out, "  {label:<labels$} {n:>width$}{note}");
    }
    out
}
