//! `vrbulk cancel`: stop a batch from starting anything new. Jobs not yet started (`pending`,
//! `retryable`) are cancelled with an event naming the operator; a `vrbulk run` that holds jobs
//! of the batch sees the request within seconds and cancels those it has not sent (a configure
//! already sent is followed to its end). `vrbulk retry --cancelled` undoes it.

use crate::exit::Exit;
use std::path::Path;

use clap::Args;

use super::who;
use crate::queue::{BatchId, JobState, Queue};

#[derive(Debug, Args)]
#[command(after_help = "Examples:
  vrbulk cancel                  the newest batch
  vrbulk cancel --batch 3
undo: vrbulk retry --batch 3 --cancelled")]
pub struct CancelArgs {
    /// The batch [default: the newest].
    #[arg(long, value_name = "ID")]
    pub batch: Option<BatchId>,
}

pub fn run(args: CancelArgs, db: &Path) -> anyhow::Result<Exit> {
    let (mut queue, batch) = Queue::open_batch(db, args.batch)?;
    let (operator, host) = who();
    let cancelled = queue.cancel(batch.id, &format!("cancelled by {operator}@{host}"))?;
    let running = queue.counts(batch.id)?[&JobState::Running];
    println!(
        "batch {} \"{}\": {cancelled} jobs that had not started cancelled",
        batch.id, batch.name
    );
    if running > 0 {
        println!(
            "{running} jobs are held by a run: within seconds it cancels those it has not sent \
             yet, and follows those it sent to their end"
        );
    }
    Ok(Exit::Ok)
}
