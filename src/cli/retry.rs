//! `vrbulk retry`: put the failed (and, on request, the cancelled) jobs of a batch back in the
//! queue with a fresh set of attempts; the next `vrbulk run` takes them. The operator may
//! correct their settings on the way (another datastore for the VMs a full one refused) and
//! pick VMs by name; each requeue is an event naming the operator and what was changed.

use crate::exit::Exit;
use std::path::Path;

use clap::Args;

use super::{who, Profile};
use crate::domain::Operation;
use crate::input::{glob_match, InputError, InputErrors};
use crate::queue::{BatchId, JobState, Queue};

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
    let corrections = args.correct.over(&Default::default());
    let correcting = corrections != Default::default() || args.correct.change_ticket.is_some();
    corrections.validate().map_err(InputErrors)?;
    if correcting && batch.operation != Operation::Configure {
        return Err(InputErrors(vec![InputError::new(
            None,
            None,
            format!(
                "batch {} is a {} batch: only a configure batch's settings can be corrected",
                batch.id, batch.operation
            ),
        )])
        .into());
    }
    let with_failed = args.failed || !args.cancelled;
    let what = match (with_failed, args.cancelled) {
        (true, true) => "failed and cancelled",
        (false, true) => "cancelled",
        _ => "failed",
    };
    let (operator, host) = who();
    let mut counts = (0u64, 0u64);
    let picked: Vec<_> = queue
        .jobs(batch.id)?
        .into_iter()
        .filter(|j| {
            (with_failed && j.state == JobState::Failed)
                || (args.cancelled && j.state == JobState::Cancelled)
        })
        .filter(|j| args.vms.is_empty() || args.vms.iter().any(|g| glob_match(g, j.vm_label())))
        .map(|j| {
            if j.state == JobState::Failed {
                counts.0 += 1;
            } else {
                counts.1 += 1;
            }
            let (mut spec, mut changes) = corrections.correct(&j.spec);
            if let Some(ticket) = &args.correct.change_ticket {
                if spec.change_ticket.as_ref() != Some(ticket) {
                    changes.push(format!(
                        "change_ticket {} -> {ticket}",
                        spec.change_ticket.as_deref().unwrap_or("(none)")
                    ));
                    spec.change_ticket = Some(ticket.clone());
                }
            }
            let mut message = format!("requeued by {operator}@{host} (vrbulk retry)");
            if !changes.is_empty() {
                message.push_str(&format!(", corrected: {}", changes.join(", ")));
            }
            (j.id, spec, message)
        })
        .collect();
    let moved = queue.requeue_corrected(batch.id, &picked)?;
    if moved == 0 {
        println!(
            "batch {} \"{}\": no {what} jobs to retry",
            batch.id, batch.name
        );
        return Ok(Exit::Ok);
    }
    let split = if with_failed && args.cancelled {
        format!(" ({} failed, {} cancelled)", counts.0, counts.1)
    } else {
        String::new()
    };
    let corrected = if correcting {
        ", with the corrections"
    } else {
        ""
    };
    println!(
        "batch {} \"{}\": {moved} {what} jobs requeued{split}{corrected}, with fresh attempts",
        batch.id, batch.name
    );
    println!("next: vrbulk run --batch {}", batch.id);
    Ok(Exit::Ok)
}
