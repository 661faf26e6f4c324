//! Operation batches: a day-2 operation (unconfigure, reconfigure, pause, resume, sync) on the
//! replications a configure batch created. Each job acts on one job of that batch and starts
//! from what it recorded (the VM, its id, the replication id), so that an undo removes exactly
//! the replications the batch configured and nothing else. Its jobs then go through the same
//! states, leases, event log and reports as any other.

use rusqlite::params;
use thiserror::Error;

use super::{already_queued, BatchId, JobId, JobState, NewBatch, Queue, QueueError, Result};
use crate::domain::{Operation, OperationSpec};

/// One job of an operation batch: the configure job it acts on, and what it does to that job's
/// replication.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperationJob {
    pub acts_on_job: JobId,
    pub spec: OperationSpec,
}

/// Why an operation batch cannot act on what it was asked to. Nothing was written.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum OperationRefused {
    #[error("batch {0} is not a configure batch: day-2 operations act on the replications a configure batch created")]
    NotAConfigureBatch(BatchId),

    #[error("job {job} is not a job of batch {batch}")]
    NotInBatch { job: JobId, batch: BatchId },

    #[error("job {job} ({vm}) has no replication the batch configured")]
    NotConfigured { job: JobId, vm: String },

    #[error("a {found} job in a {operation} batch")]
    WrongOperation {
        operation: Operation,
        found: Operation,
    },

    #[error("nothing to do: no job given")]
    Empty,
}

impl Queue {
    /// Creates a batch of `operation` on the configure batch `acts_on`, one job per entry of
    /// `jobs`, each starting from its configure job's VM and replication. In one transaction,
    /// refused whole when an entry is not a configured job of that batch, or when one of the VMs
    /// has an unfinished job in any batch (two operations on one replication at once).
    pub fn create_operation_batch(
        &mut self,
        batch: &NewBatch,
        operation: Operation,
        acts_on: BatchId,
        jobs: &[OperationJob],
    ) -> Result<BatchId> {
        if jobs.is_empty() {
            return Err(OperationRefused::Empty.into());
        }
        let target = self.batch(acts_on)?;
        if target.operation != Operation::Configure {
            return Err(OperationRefused::NotAConfigureBatch(acts_on).into());
        }
        let now = self.now();
        let tx = self.write_tx()?;
        let mut acted_on = Vec::with_capacity(jobs.len());
        for j in jobs {
            if j.spec.operation() != operation {
                return Err(OperationRefused::WrongOperation {
                    operation,
                    found: j.spec.operation(),
                }
                .into());
            }
            let job = super::job_by_id(&tx, j.acts_on_job)?;
            if job.batch_id != acts_on {
                return Err(OperationRefused::NotInBatch {
                    job: job.id,
                    batch: acts_on,
                }
                .into());
            }
            if job.state != JobState::Succeeded || job.checkpoint.replication_id.is_none() {
                return Err(OperationRefused::NotConfigured {
                    job: job.id,
                    vm: job.vm_label().to_string(),
                }
                .into());
            }
            acted_on.push(job);
        }
        let specs: Vec<_> = acted_on.iter().map(|j| j.spec.clone()).collect();
        let queued = already_queued(&tx, &specs)?;
        if !queued.is_empty() {
            return Err(QueueError::AlreadyQueued(queued));
        }
        let batch_id = super::insert_batch(&tx, now, batch, operation, Some(acts_on))?;
        for (j, job) in jobs.iter().zip(&acted_on) {
            let spec_json =
                serde_json::to_string(&job.spec).map_err(|source| QueueError::Json {
                    what: "job spec",
                    source,
                })?;
            let operation_json =
                serde_json::to_string(&j.spec).map_err(|source| QueueError::Json {
                    what: "operation",
                    source,
                })?;
            tx.prepare_cached(
                "INSERT INTO jobs (batch_id, input_line, vm_name, vm_id, spec_json, max_attempts, \
                 scheduled_at, created_at, updated_at, resolved_vm_id, disks_json, \
                 placement_json, replication_id, acts_on_job, operation_json) \
                 SELECT ?1, input_line, vm_name, vm_id, ?2, ?3, ?4, ?4, ?4, resolved_vm_id, \
                 disks_json, placement_json, replication_id, id, ?5 FROM jobs WHERE id = ?6",
            )?
            .execute(params![
                batch_id,
                spec_json,
                batch.max_attempts.max(1),
                now,
                operation_json,
                job.id
            ])?;
            tx.prepare_cached(
                "INSERT INTO job_events (job_id, at, from_state, to_state, step, attempt, message) \
                 VALUES (?, ?, NULL, 'pending', 'resolve_vm', 0, ?)",
            )?
            .execute(params![
                tx.last_insert_rowid(),
                now,
                format!("{operation} of job {} of batch {acts_on}", job.id)
            ])?;
        }
        tx.commit()?;
        Ok(batch_id)
    }

    /// The operation batches that acted on `batch`, oldest first.
    pub fn operations_on(&self, batch: BatchId) -> Result<Vec<super::Batch>> {
        Ok(self
            .batches()?
            .into_iter()
            .filter(|b| b.acts_on == Some(batch))
            .collect())
    }
}
