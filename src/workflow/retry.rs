//! An operator's retry: the failed (and, on request, the cancelled) jobs of a batch back in the
//! queue with a fresh set of attempts, optionally only the VMs some patterns name, each with
//! the settings the operator corrected (another datastore for the VMs a full one refused). Every
//! requeue is an event naming who asked and what was changed.

use thiserror::Error;

use crate::domain::Operation;
use crate::input::{glob_match, Defaults, InputError, InputErrors};
use crate::queue::{Batch, JobState, Queue, QueueError};

/// What to requeue, and how to correct it.
#[derive(Debug, Clone, Default)]
pub struct RetryRequest {
    /// The failed jobs (what a retry takes when it is asked for neither).
    pub failed: bool,
    pub cancelled: bool,
    /// Only the VMs whose name matches one of these patterns (`*`, `?`; any case); all when
    /// empty.
    pub vms: Vec<String>,
    /// Each setting given replaces the job's own.
    pub corrections: Defaults,
    pub change_ticket: Option<String>,
}

impl RetryRequest {
    /// Whether the failed jobs are taken: when asked, or when the cancelled ones are not.
    pub fn takes_failed(&self) -> bool {
        self.failed || !self.cancelled
    }

    /// Whether any setting is corrected.
    pub fn corrects(&self) -> bool {
        self.corrections != Defaults::default() || self.change_ticket.is_some()
    }

    /// The jobs it takes, in words: `failed`, `cancelled`, `failed and cancelled`.
    pub fn what(&self) -> &'static str {
        match (self.takes_failed(), self.cancelled) {
            (true, true) => "failed and cancelled",
            (false, true) => "cancelled",
            _ => "failed",
        }
    }
}

/// What a retry requeued.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Retried {
    pub failed: u64,
    pub cancelled: u64,
}

impl Retried {
    pub fn total(&self) -> u64 {
        self.failed + self.cancelled
    }
}

/// Why nothing was requeued.
#[derive(Debug, Error)]
pub enum RetryError {
    /// The corrections asked for: every problem of them.
    #[error(transparent)]
    Input(#[from] InputErrors),

    #[error(transparent)]
    Queue(#[from] QueueError),
}

/// Requeues the jobs of `batch` that `request` takes, corrected, in one transaction; `by`
/// (`operator@host`) is named in each job's event.
pub fn retry(
    queue: &mut Queue,
    batch: &Batch,
    request: &RetryRequest,
    by: &str,
) -> Result<Retried, RetryError> {
    // The corrections came from flags: each problem names its flag, not a `[defaults]` key.
    request.corrections.check_flags()?;
    if request.corrects() && batch.operation != Operation::Configure {
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
    let takes_failed = request.takes_failed();
    let mut retried = Retried::default();
    let picked: Vec<_> = queue
        .jobs(batch.id)?
        .into_iter()
        .filter(|j| {
            (takes_failed && j.state == JobState::Failed)
                || (request.cancelled && j.state == JobState::Cancelled)
        })
        .filter(|j| {
            request.vms.is_empty() || request.vms.iter().any(|g| glob_match(g, j.vm_label()))
        })
        .map(|j| {
            if j.state == JobState::Failed {
                retried.failed += 1;
            } else {
                retried.cancelled += 1;
            }
            let (mut spec, mut changes) = request.corrections.correct(&j.spec);
            if let Some(ticket) = &request.change_ticket {
                if spec.change_ticket.as_ref() != Some(ticket) {
                    changes.push(format!(
                        "change_ticket {} -> {ticket}",
                        spec.change_ticket.as_deref().unwrap_or("(none)")
                    ));
                    spec.change_ticket = Some(ticket.clone());
                }
            }
            let mut message = format!("requeued by {by} (vrbulk retry)");
            if !changes.is_empty() {
                message.push_str(&format!(", corrected: {}", changes.join(", ")));
            }
            (j.id, spec, message)
        })
        .collect();
    queue.requeue_corrected(batch.id, &picked)?;
    Ok(retried)
}
