//! `vrbulk status`: where a batch stands, read from the queue while a `vrbulk run` may be
//! working on it. Text for people, `--json` for scripts; the numbers come from
//! [`Queue::status`](crate::queue::Queue::status).

use std::fmt::Write as _;
use std::path::Path;

use clap::Args;

use super::open_batch;
use crate::queue::{BatchId, BatchStatus, JobState};

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

pub fn run(args: StatusArgs, db: &Path) -> anyhow::Result<u8> {
    let (queue, batch) = open_batch(db, args.batch)?;
    let status = queue.status_with_errors(batch.id, args.errors)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&status)?);
    } else {
        print!("{}", render(&status));
    }
    Ok(super::exit::OK)
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

/// Unix milliseconds as `YYYY-MM-DD HH:MM:SS UTC`.
pub fn utc(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let (days, of_day) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
        of_day / 3600,
        of_day % 3600 / 60,
        of_day % 60
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// A length of time the way an operator reads it: `45s`, `3m 10s`, `2h 05m`, `3d 04h`.
pub fn span(ms: i64) -> String {
    let s = ms.max(0) / 1000;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m {:02}s", s / 60, s % 60),
        3600..86_400 => format!("{}h {:02}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d {:02}h", s / 86_400, s % 86_400 / 3600),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_renders_unix_milliseconds_as_a_calendar_time() {
        assert_eq!(utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc(951_782_400_000), "2000-02-29 00:00:00 UTC");
        assert_eq!(utc(1_700_000_000_999), "2023-11-14 22:13:20 UTC");
        assert_eq!(utc(-1), "1969-12-31 23:59:59 UTC");
        assert_eq!(utc(4_107_542_399_000), "2100-02-28 23:59:59 UTC");
    }

    #[test]
    fn spans_read_in_the_two_largest_units() {
        assert_eq!(span(-5), "0s");
        assert_eq!(span(45_000), "45s");
        assert_eq!(span(190_000), "3m 10s");
        assert_eq!(span(7_500_000), "2h 05m");
        assert_eq!(span(273_600_000), "3d 04h");
    }
}
