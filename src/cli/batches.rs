//! `vrbulk batches`: every batch of the queue, one row each: what it does, when it was imported,
//! its change tickets, its jobs by state and where it stands (running, interrupted, died,
//! finished, …). A table on a terminal, plain columns in a pipe, `--json` for scripts; the rows
//! come from [`Queue::summaries`](crate::queue::Queue::summaries).

use crate::exit::Exit;
use std::io::IsTerminal;
use std::path::Path;

use clap::Args;

use crate::queue::{BatchSummary, JobState, Queue};

#[derive(Debug, Args)]
#[command(after_help = "Examples:
  vrbulk batches
  vrbulk batches --json | jq '.[] | select(.standing.state == \"interrupted\") | .batch.id'
Details of one batch: vrbulk status --batch N")]
pub struct BatchesArgs {
    /// Print the batches as one JSON array.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: BatchesArgs, db: &Path) -> anyhow::Result<Exit> {
    let queue = Queue::read_only_existing(db)?;
    let liveness = liveness_here();
    let summaries = queue.summaries(&liveness)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&summaries)?);
    } else if summaries.is_empty() {
        eprintln!(
            "the job queue {} holds no batch yet: import one first (`vrbulk import FILE`)",
            db.display()
        );
    } else {
        print!("{}", render(&summaries, std::io::stdout().is_terminal()));
    }
    Ok(Exit::Ok)
}

pub(super) use crate::operator::liveness_here;

/// The table: box-drawn for a person at a terminal, plain space-aligned columns otherwise
/// (for `grep`, a ticket or an e-mail).
pub fn render(summaries: &[BatchSummary], terminal: bool) -> String {
    let mut table = comfy_table::Table::new();
    table.load_style(if terminal {
        comfy_table::presets::UTF8_FULL_CONDENSED
    } else {
        comfy_table::presets::NOTHING
    });
    table.set_header([
        "batch",
        "name",
        "operation",
        "created",
        "tickets",
        "jobs",
        "state",
    ]);
    for s in summaries {
        let b = &s.batch;
        let operation = match b.acts_on {
            Some(on) => format!("{} of {on}", b.operation),
            None => b.operation.to_string(),
        };
        table.add_row([
            b.id.to_string(),
            b.name.clone(),
            operation,
            local(b.created_at),
            tickets(&s.change_tickets),
            jobs(s),
            s.standing.label().to_string(),
        ]);
    }
    let text = table.to_string();
    if terminal {
        return format!("{text}\n");
    }
    // Without borders the cells keep their padding: the first column's and the line ends' are
    // only noise in a pipe.
    text.lines()
        .map(|line| format!("{}\n", line.strip_prefix(' ').unwrap_or(line).trim_end()))
        .collect()
}

/// The jobs by state, compact: `118 ok · 2 failed · 0 pending`; skipped, cancelled and
/// running only when there are some. Pending counts the retryable too: both wait for a run.
fn jobs(s: &BatchSummary) -> String {
    let n = |state: JobState| s.counts.get(&state).copied().unwrap_or(0);
    let parts = [
        (n(JobState::Succeeded), "ok", true),
        (n(JobState::Skipped), "skipped", false),
        (n(JobState::Failed), "failed", true),
        (n(JobState::Cancelled), "cancelled", false),
        (n(JobState::Running), "running", false),
        (
            n(JobState::Pending) + n(JobState::Retryable),
            "pending",
            true,
        ),
    ];
    parts
        .iter()
        .filter(|(count, _, always)| *always || *count > 0)
        .map(|(count, word, _)| format!("{count} {word}"))
        .collect::<Vec<_>>()
        .join(" · ")
}

/// At most two tickets in a cell, then how many more (`--json` has them all).
fn tickets(all: &[String]) -> String {
    match all {
        [] => "-".into(),
        [one] => one.clone(),
        [a, b] => format!("{a}, {b}"),
        [a, b, rest @ ..] => format!("{a}, {b} +{} more", rest.len()),
    }
}

/// Unix milliseconds in the operator's own time zone, to the minute: a list is read by the
/// person who imported the batches (reports and `status` keep to UTC, for two sites to agree).
fn local(ms: i64) -> String {
    match jiff::Timestamp::from_millisecond(ms) {
        Ok(t) => t
            .to_zoned_datetime(jiff::tz::TimeZone::system())
            .strftime("%Y-%m-%d %H:%M %Z")
            .to_string(),
        Err(_) => crate::timefmt::utc(ms),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cell_shows_two_tickets_then_how_many_more() {
        let t = |all: &[&str]| tickets(&all.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(t(&[]), "-");
        assert_eq!(t(&["CHG1"]), "CHG1");
        assert_eq!(t(&["CHG1", "CHG2"]), "CHG1, CHG2");
        assert_eq!(t(&["CHG1", "CHG2", "CHG3", "CHG4"]), "CHG1, CHG2 +2 more");
    }

    #[test]
    fn a_terminal_gets_a_drawn_table_and_a_pipe_plain_columns() {
        let mut q = Queue::open_in_memory().unwrap();
        let batch = crate::queue::NewBatch {
            name: "wave 1".into(),
            operator: "ops".into(),
            host: "jump01".into(),
            input_kind: crate::queue::InputKind::Csv,
            input_path: None,
            input_sha256: None,
            settings: serde_json::json!({}),
            max_attempts: 3,
        };
        q.create_batch(&batch, &[]).unwrap();
        let all = q
            .summaries(&|_: &str| crate::queue::Liveness::Unknown)
            .unwrap();
        let drawn = render(&all, true);
        assert!(drawn.contains('│') && drawn.contains('═'), "{drawn}");
        let plain = render(&all, false);
        assert!(plain.starts_with("batch  name"), "{plain}");
        assert!(plain.lines().all(|l| l == l.trim_end()), "{plain:?}");
        assert!(
            plain.contains("0 ok · 0 failed · 0 pending  empty\n"),
            "{plain}"
        );
    }
}
