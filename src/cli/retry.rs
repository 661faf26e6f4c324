//! `vrbulk retry`: put the failed (and, on request, the cancelled) jobs of a batch back in the
//! queue with a fresh set of attempts; the next `vrbulk run` takes them. Each requeue is an
//! event naming the operator.

use std::path::Path;

use clap::Args;

use super::{open_batch, who};
use crate::queue::{BatchId, JobState};

#[derive(Debug, Args)]
#[command(after_help = "Examples:
  vrbulk retry                                  the failed jobs of the newest batch
  vrbulk retry --batch 3 --cancelled            the cancelled jobs of batch 3
  vrbulk retry --batch 3 --failed --cancelled   both
then: vrbulk run --batch 3")]
pub struct RetryArgs {
    /// The batch [default: the newest].
    #[arg(long, value_name = "ID")]
    pub batch: Option<BatchId>,

    /// Requeue the failed jobs (what `retry` does without --cancelled).
    #[arg(long)]
    pub failed: bool,

    /// Requeue the cancelled jobs (with --failed, the failed ones too).
    #[arg(long)]
    pub cancelled: bool,
}

pub fn run(args: RetryArgs, db: &Path) -> anyhow::Result<u8> {
    let (mut queue, batch) = open_batch(db, args.batch)?;
    let before = queue.counts(batch.id)?;
    let with_failed = args.failed || !args.cancelled;
    let from: Vec<JobState> = [
        (with_failed, JobState::Failed),
        (args.cancelled, JobState::Cancelled),
    ]
    .into_iter()
    .filter_map(|(wanted, state)| wanted.then_some(state))
    .collect();
    let (failed, cancelled) = (
        if with_failed {
            before[&JobState::Failed]
        } else {
            0
        },
        if args.cancelled {
            before[&JobState::Cancelled]
        } else {
            0
        },
    );
    let (operator, host) = who();
    let what = match (with_failed, args.cancelled) {
        (true, true) => "failed and cancelled",
        (false, true) => "cancelled",
        _ => "failed",
    };
    let moved = queue.requeue(
        batch.id,
        &from,
        &format!("requeued by {operator}@{host} (vrbulk retry)"),
    )?;
    if moved == 0 {
        println!(
            "batch {} \"{}\": no {what} jobs to retry",
            batch.id, batch.name
        );
        return Ok(super::exit::OK);
    }
    // `failed`/`cancelled` were read just before the requeue; a concurrent `run` can only
    // add failures, so the split is shown only when it adds up.
    let split = if with_failed && args.cancelled && failed + cancelled == moved as u64 {
        format!(" ({failed} failed, {cancelled} cancelled)")
    } else {
        String::new()
    };
    println!(
        "batch {} \"{}\": {moved} {what} jobs requeued{split}, with fresh attempts",
        batch.id, batch.name
    );
    println!("next: vrbulk run --batch {}", batch.id);
    Ok(super::exit::OK)
}
