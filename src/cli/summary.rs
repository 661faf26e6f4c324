//! The end of a run, for every command that runs a batch (`run`, `undo`, `reconfigure`,
//! `pause`, `resume`, `sync`): counts per state, API cost, what the batch achieved (configured
//! and how many protected yet, or what its operation did and what it left alone), every failure
//! with its reason, and how to go on.

use std::path::Path;

use crate::domain::{Operation, OperationSpec};
use crate::queue::{Batch, BatchId, Job, JobState, Queue, Readiness, ReadinessCounts};
use crate::report::classify;
use crate::runner::{Ending, RunOutcome};
use crate::vr::BudgetStats;

/// Prints the summary of `outcome`, reading the batch's jobs from the queue at `db`.
pub(super) fn print(outcome: &RunOutcome, db: &Path) -> anyhow::Result<()> {
    print_counts(outcome);
    print_pacing(&outcome.budget);
    let queue = Queue::open(db)?;
    let batch = queue.batch(outcome.batch)?;
    let jobs = queue.jobs(outcome.batch)?;
    match batch.operation {
        Operation::Configure => print_protection(&queue, outcome)?,
        _ => print_operation(&batch, &jobs),
    }
    print_failed(&jobs, &batch);
    print_ending(outcome);
    Ok(())
}

fn print_counts(outcome: &RunOutcome) {
    let total: u64 = outcome.counts.values().sum();
    let mut table = super::table(["state", "VMs", "%"]);
    for (state, n) in outcome.counts.iter().filter(|(_, n)| **n > 0) {
        table.add_row([
            state.to_string(),
            n.to_string(),
            format!("{:.0}", *n as f64 * 100.0 / total.max(1) as f64),
        ]);
    }
    println!("{table}");
    let calls = outcome.metrics.total_calls();
    let taken = outcome.taken;
    let others = if taken < total {
        format!(" (of the batch's {total}; the others had ended before)")
    } else {
        String::new()
    };
    println!(
        "batch {}: this run took {taken} VMs{others}, {calls} API calls ({:.2} per VM, {} \
         re-logins) in {:.1} s",
        outcome.batch,
        calls as f64 / taken.max(1) as f64,
        outcome.metrics.relogins,
        outcome.elapsed.as_secs_f64()
    );
}

fn print_pacing(b: &BudgetStats) {
    if b.paced > 0 {
        println!(
            "paced by the appliance's rate limit: {} requests waited for a free slot ({:.0} s in all)",
            b.paced,
            b.paced_ms as f64 / 1000.0
        );
    }
    if b.refusals > 0 {
        println!(
            "throttled: the appliance refused {} requests (HTTP 429) and vrbulk waited {:.0} s for \
             its next rate window; no job counted them as failures. If another tool shares this \
             appliance's quota, or its admin lowered the limit, set [source] requests_per_minute",
            b.refusals,
            b.throttled_ms as f64 / 1000.0
        );
    }
}

/// Configured is not yet protected: how far the initial syncs got, and how to follow them.
fn print_protection(queue: &Queue, outcome: &RunOutcome) -> anyhow::Result<()> {
    let counts = queue.readiness_counts(outcome.batch)?;
    let started = queue.now() - outcome.elapsed.as_millis() as i64;
    if let Some(line) = protection_line(&counts, outcome.batch, started) {
        println!("{line}");
    }
    Ok(())
}

/// What the summary says of protection: the configured VMs, and where they stood when the
/// appliance was last asked, with that moment, so that counts an earlier `watch` left are
/// never read as this run's (issue 17: summaries reused stale protection counts as "so far").
/// `started` is this run's start (Unix ms).
fn protection_line(counts: &ReadinessCounts, batch: BatchId, started: i64) -> Option<String> {
    if counts.configured == 0 {
        return None;
    }
    let watch = format!("`vrbulk watch --batch {batch}` follows them until each is protected");
    let configured = super::count(counts.configured as usize, "VM", "VMs");
    let Some(seen) = counts.last_seen_at else {
        return Some(format!(
            "{configured} configured; nothing has followed their replications yet: {watch}"
        ));
    };
    let when = if seen >= started {
        "during this run"
    } else {
        "before this run"
    };
    let mut parts = vec![format!("{} protected", counts.count(Readiness::Protected))];
    for (readiness, words) in [
        (Readiness::Syncing, "syncing"),
        (Readiness::NotActive, "powered off"),
        (Readiness::Paused, "paused"),
        (Readiness::Error, "in error"),
        (Readiness::Missing, "removed outside vrbulk"),
        (Readiness::Unconfigured, "unconfigured by a vrbulk undo"),
    ] {
        if counts.count(readiness) > 0 {
            parts.push(format!("{} {words}", counts.count(readiness)));
        }
    }
    if counts.not_followed > 0 {
        parts.push(format!("{} not followed yet", counts.not_followed));
    }
    Some(format!(
        "{configured} configured; as the appliance last said of them, at {} ({when}): {}; {watch}",
        crate::timefmt::utc(seen),
        parts.join(", ")
    ))
}

/// What an operation batch did, and each replication it left alone with the reason (gone,
/// replaced by someone else's, in a state the appliance refused the operation in).
fn print_operation(batch: &Batch, jobs: &[Job]) {
    let done = jobs
        .iter()
        .filter(|j| j.state == JobState::Succeeded)
        .count();
    let of = batch
        .acts_on
        .map(|b| format!(" of batch {b}"))
        .unwrap_or_default();
    let local_only = jobs.iter().any(|j| {
        matches!(
            j.operation,
            Some(OperationSpec::Unconfigure {
                local_only: true,
                ..
            })
        )
    });
    let what = match batch.operation {
        Operation::Unconfigure if local_only => {
            "removed on this site only (the target site keeps its half)"
        }
        Operation::Unconfigure => "unconfigured (removed on both sites)",
        Operation::Reconfigure => "reconfigured",
        Operation::Pause => "paused",
        Operation::Resume => "resumed",
        Operation::Sync => "synced",
        Operation::Configure => "configured",
    };
    println!(
        "{}{of} {what}",
        super::count(done, "replication", "replications")
    );
    let skipped: Vec<&Job> = jobs
        .iter()
        .filter(|j| j.state == JobState::Skipped)
        .collect();
    if !skipped.is_empty() {
        let mut table = super::table(["left alone", "replication", "reason"]);
        for j in skipped {
            table.add_row([
                j.vm_label().to_string(),
                j.checkpoint.replication_id.clone().unwrap_or_default(),
                j.reason.clone().unwrap_or_default(),
            ]);
        }
        println!("\n{table}");
    }
}

fn print_failed(jobs: &[Job], batch: &Batch) {
    let failed: Vec<&Job> = jobs
        .iter()
        .filter(|j| j.state == JobState::Failed)
        .collect();
    if failed.is_empty() {
        return;
    }
    let mut table = super::table(["failed VM", "step", "reason"]);
    let mut kinds = Vec::new();
    for j in &failed {
        let reason = j.reason.as_deref().unwrap_or_default();
        let kind = classify(reason, j.last_http_status);
        if !kinds.contains(&kind) {
            kinds.push(kind);
        }
        table.add_row([
            j.vm_label().to_string(),
            j.step.to_string(),
            reason.to_string(),
        ]);
    }
    println!("\n{table}");
    // The same advice as the report's, one line per kind of cause: a full datastore needs
    // another one, a transient error only a retry.
    println!("next steps (on batch {}):", batch.id);
    for kind in kinds {
        println!("  - {}", kind.next_step_of(batch.operation));
    }
}

fn print_ending(outcome: &RunOutcome) {
    match outcome.ending {
        Ending::Done => {}
        Ending::WindowClosed => {
            let closed = outcome.window_closed_at.unwrap_or(i64::MAX);
            let last = match outcome.last_change_at {
                None => "this run sent no change".to_string(),
                Some(at) => format!(
                    "this run's last change left at {}, {} the window closed",
                    crate::timefmt::utc(at),
                    if at < closed { "before" } else { "after" }
                ),
            };
            let settling = outcome.left().saturating_sub(outcome.unsent);
            let settling = if settling > 0 {
                format!(
                    "; {} sent before it wait to be confirmed on the appliance",
                    super::count(settling as usize, "VM", "VMs")
                )
            } else {
                String::new()
            };
            let at = outcome
                .window_closed_at
                .map(|at| format!(" at {}", crate::timefmt::utc(at)))
                .unwrap_or_default();
            println!(
                "the change window closed{at}: {} not sent ({last}){settling}; `vrbulk run \
                 --batch {}` continues in the next window",
                super::count(outcome.unsent as usize, "VM was", "VMs were"),
                outcome.batch
            )
        }
        Ending::Interrupted => println!(
            "interrupted with {} VMs not finished (nothing was lost: a VM in flight is checked \
             on the appliance before anything is sent again); `vrbulk run --batch {}` resumes",
            outcome.left(),
            outcome.batch
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(last_seen_at: Option<i64>) -> ReadinessCounts {
        let mut counts = ReadinessCounts::tally([1, 2, 3], &[]);
        counts.last_seen_at = last_seen_at;
        counts.counts.insert(Readiness::Protected, 2);
        counts.counts.insert(Readiness::Missing, 1);
        counts.not_followed = 0;
        counts
    }

    #[test]
    fn protection_counts_say_when_the_appliance_said_them() {
        // 2024-06-01 08:00:00 UTC, a minute before this run started.
        let line = protection_line(&counts(Some(1_717_228_800_000)), 4, 1_717_228_860_000);
        assert_eq!(
            line.as_deref(),
            Some(
                "3 VMs configured; as the appliance last said of them, at 2024-06-01 08:00:00 UTC \
                 (before this run): 2 protected, 1 removed outside vrbulk; `vrbulk watch --batch \
                 4` follows them until each is protected"
            )
        );
        let during = protection_line(&counts(Some(1_717_228_900_000)), 4, 1_717_228_860_000);
        assert!(during.unwrap().contains("(during this run)"));
        let never = protection_line(&counts(None), 4, 0).unwrap();
        assert!(
            never.starts_with("3 VMs configured; nothing has followed their replications yet"),
            "{never}"
        );
        assert_eq!(
            protection_line(&ReadinessCounts::tally([], &[]), 4, 0),
            None
        );
    }
}
