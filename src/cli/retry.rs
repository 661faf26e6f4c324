//! `vrbulk retry`: put the failed (and, on request, the cancelled) jobs of a batch back in the
//! queue with a fresh set of attempts; the next `vrbulk run` takes them. The operator may
//! correct their settings on the way (another datastore for the VMs a full one refused) and
//! pick VMs by name; each requeue is an event naming the operator and what was changed
//! ([`workflow::retry`](crate::workflow::retry)).

use crate::exit::Exit;
use std::path::Path;

use clap::Args;

use super::{who, Profile};
use crate::queue::{BatchId, Queue};
use crate::workflow::retry::{retry, RetryRequest};

#[derive(Debug, Args)]
#[command(after_help = "Examples:
  vrbulk retry                                  the failed jobs of the newest batch
  vrbulk retry --batch 3 --cancelled            the cancelled jobs of batch 3
  vrbulk retry --batch 3 --failed --cancelled   both
  vrbulk retry --batch 3 --failed --vm 'db-*' --target-datastore ds-gold-02
                                                the failed db VMs, onto another datastore
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

    /// Only the VMs whose name matches one of these patterns (`*`, `?`; any case).
    #[arg(long = "vm", value_name = "GLOB")]
    pub vms: Vec<String>,

    /// Corrections for the requeued jobs: each setting given replaces the job's own.
    #[command(flatten)]
    pub correct: Profile,
}

pub fn run(args: RetryArgs, db: &Path) -> anyhow::Result<Exit> {
    let (mut queue, batch) = Queue::open_batch(db, args.batch)?;
    let request = RetryRequest {
        failed: args.failed,
        cancelled: args.cancelled,
        vms: args.vms,
        corrections: args.correct.over(&Default::default()),
        change_ticket: args.correct.change_ticket,
    };
    let (operator, host) = who();
    let retried = retry(&mut queue, &batch, &request, &format!("{operator}@{host}"))?;
    let what = request.what();
    if retried.total() == 0 {
        println!(
            "batch {} \"{}\": no {what} jobs to retry",
            batch.id, batch.name
        );
        return Ok(Exit::Ok);
    }
    let split = if request.takes_failed() && request.cancelled {
        format!(
            " ({} failed, {} cancelled)",
            retried.failed, retried.cancelled
        )
    } else {
        String::new()
    };
    let corrected = if request.corrects() {
        ", with the corrections"
    } else {
        ""
    };
    println!(
        "batch {} \"{}\": {} {what} jobs requeued{split}{corrected}, with fresh attempts",
        batch.id,
        batch.name,
        retried.total()
    );
    println!("next: vrbulk run --batch {}", batch.id);
    Ok(Exit::Ok)
}
