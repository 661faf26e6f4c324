//! Where a batch stands, for `vrbulk status` and anything else that reads rather than works:
//! counts per state and per step, the oldest running job, the next retry, the jobs in doubt and
//! the last errors in the server's words.
//!
//! Read-only. Every number about jobs is a SQL aggregate (no job is loaded whole), so a status
//! of a 10,000-job batch costs a handful of indexed queries, and all of them run in one read
//! transaction so the numbers agree with each other while a `vrbulk run` writes. Where the
//! configured VMs stand is counted from their protection records by
//! [`ReadinessCounts::tally`], the one reading of readiness, not by a second one in SQL.

use std::collections::BTreeMap;

use rusqlite::{params, OptionalExtension, Row};
use serde::Serialize;

use super::{
    parse_state, parse_step, Batch, BatchId, JobId, JobState, Queue, ReadinessCounts, Result, Step,
};

/// How many of the newest errors [`Queue::status`] reports.
pub const LAST_ERRORS: usize = 10;

/// A batch at one moment. Times are Unix milliseconds (UTC); field names are the `--json` shape.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BatchStatus {
    pub batch: Batch,
    /// The queue's clock when the numbers were read; "due" and "expired" are relative to it.
    pub as_of: i64,
    pub total: u64,
    /// Jobs per state; every state is present.
    pub counts: BTreeMap<JobState, u64>,
    /// Unfinished jobs (`pending`, `running`, `retryable`: each present) per step they are at.
    pub steps: BTreeMap<JobState, BTreeMap<Step, u64>>,
    pub oldest_running: Option<RunningJob>,
    /// When the earliest `retryable` job is due again.
    pub next_retry_at: Option<i64>,
    /// `retryable` jobs already due (the next `run` takes them at once).
    pub retries_due: u64,
    /// Jobs whose configure call may have reached the server unanswered.
    pub in_doubt: u64,
    pub first_started_at: Option<i64>,
    pub last_finished_at: Option<i64>,
    /// Newest first, one per job.
    pub last_errors: Vec<JobError>,
    /// Where the configured VMs stand (syncing, protected, not active, error, paused, no
    /// longer existing, unconfigured by a vrbulk undo, not followed yet); `None` while no job is
    /// configured, and for an operation batch.
    pub protection: Option<ReadinessCounts>,
}

/// A running job and the lease that holds it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunningJob {
    pub job_id: JobId,
    pub vm: String,
    pub step: Step,
    pub attempt: u32,
    /// The job's first claim (a retry keeps it).
    pub started_at: Option<i64>,
    pub lease_owner: String,
    pub lease_expires_at: i64,
    /// The worker stopped renewing it: the next `run` rescues the job.
    pub lease_expired: bool,
}

/// A job's last error: where it happened and what the server said.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JobError {
    pub job_id: JobId,
    pub vm: String,
    /// The job's state now (a job that failed once may have succeeded since).
    pub state: JobState,
    /// Step and attempt at which the error happened.
    pub step: Step,
    pub attempt: u32,
    /// The failure reason of a failed job, the last error otherwise.
    pub message: String,
    pub http_status: Option<u16>,
    pub at: i64,
}

impl Queue {
    /// How long the batch's VMs that ended since `since` (Unix ms) took from their submit to
    /// their end, on average (ms): what a VM sent now will take.
    pub fn task_time(&self, batch: BatchId, since: i64) -> Result<Option<i64>> {
        Ok(self
            .conn
            .query_row(
                "SELECT AVG(j.finished_at - e.at) FROM jobs j JOIN job_events e ON e.id = \
             (SELECT MAX(id) FROM job_events WHERE job_id = j.id AND step = 'await_task' \
             AND from_state = 'running' AND to_state = 'running') \
             WHERE j.batch_id = ? AND j.finished_at >= ?",
                params![batch, since],
                |r| r.get::<_, Option<f64>>(0),
            )?
            .map(|ms| ms.round() as i64))
    }

    /// When the newest of the batch's VMs still awaiting their task was sent (Unix ms): the
    /// last task to end started then.
    pub fn newest_task_sent(&self, batch: BatchId) -> Result<Option<i64>> {
        Ok(self.conn.query_row(
            "SELECT MAX(e.at) FROM jobs j JOIN job_events e ON e.id = \
             (SELECT MAX(id) FROM job_events WHERE job_id = j.id AND step = 'await_task' \
             AND from_state = 'running' AND to_state = 'running') \
             WHERE j.batch_id = ? AND j.state = 'running' AND j.step = 'await_task'",
            [batch],
            |r| r.get(0),
        )?)
    }

    /// Where `batch` stands now, with the [`LAST_ERRORS`] newest errors.
    pub fn status(&self, batch: BatchId) -> Result<BatchStatus> {
        self.status_with_errors(batch, LAST_ERRORS)
    }

    /// [`Queue::status`] with the `last_errors` newest errors.
    pub fn status_with_errors(&self, batch: BatchId, last_errors: usize) -> Result<BatchStatus> {
        let now = self.now();
        // A deferred transaction that only reads: one WAL snapshot for every query below.
        let tx = self.conn.unchecked_transaction()?;
        let batch = self.batch(batch)?;
        let id = batch.id;
        let counts = self.counts(id)?;

        let (total, first_started_at, last_finished_at) = tx.query_row(
            "SELECT COUNT(*), MIN(started_at), MAX(finished_at) FROM jobs WHERE batch_id = ?",
            [id],
            |r| Ok((r.get::<_, i64>(0)? as u64, r.get(1)?, r.get(2)?)),
        )?;

        let mut steps: BTreeMap<JobState, BTreeMap<Step, u64>> = JobState::ALL
            .into_iter()
            .filter(|s| !s.is_terminal())
            .map(|s| (s, BTreeMap::new()))
            .collect();
        {
            let mut stmt = tx.prepare_cached(
                "SELECT state, step, COUNT(*) FROM jobs \
                 WHERE batch_id = ? AND state IN ('pending', 'running', 'retryable') \
                 GROUP BY state, step",
            )?;
            let mut rows = stmt.query([id])?;
            while let Some(r) = rows.next()? {
                let state = parse_state(&r.get::<_, String>(0)?, 0)?;
                let step = parse_step(&r.get::<_, String>(1)?, 1)?;
                let n = r.get::<_, i64>(2)? as u64;
                steps.entry(state).or_default().insert(step, n);
            }
        }

        let oldest_running = tx
            .query_row(
                "SELECT id, COALESCE(vm_name, vm_id), step, attempt, started_at, lease_owner, \
                 lease_expires_at FROM jobs WHERE batch_id = ? AND state = 'running' \
                 ORDER BY started_at, id LIMIT 1",
                [id],
                |r| {
                    let lease_expires_at: i64 = r.get(6)?;
                    Ok(RunningJob {
                        job_id: r.get(0)?,
                        vm: r.get(1)?,
                        step: parse_step(&r.get::<_, String>(2)?, 2)?,
                        attempt: r.get(3)?,
                        started_at: r.get(4)?,
                        lease_owner: r.get(5)?,
                        lease_expires_at,
                        lease_expired: lease_expires_at < now,
                    })
                },
            )
            .optional()?;

        let (next_retry_at, retries_due) = tx.query_row(
            "SELECT MIN(scheduled_at), COUNT(CASE WHEN scheduled_at <= ?2 THEN 1 END) FROM jobs \
             WHERE batch_id = ?1 AND state = 'retryable'",
            params![id, now],
            |r| Ok((r.get(0)?, r.get::<_, i64>(1)? as u64)),
        )?;

        let in_doubt = tx.query_row(
            "SELECT COUNT(*) FROM jobs WHERE batch_id = ? AND in_doubt = 1",
            [id],
            |r| r.get::<_, i64>(0),
        )? as u64;

        let last_errors = {
            // The job's newest event into `retryable` or `failed` says when, at which step and
            // attempt the error happened; the job row keeps the words and the HTTP status. A job
            // that succeeded or was skipped since overcame its error: the report's timeline keeps
            // it, the list of what needs a look does not.
            let mut stmt = tx.prepare_cached(
                "SELECT j.id, COALESCE(j.vm_name, j.vm_id), j.state, COALESCE(e.step, j.step), \
                 COALESCE(e.attempt, j.attempt), \
                 CASE WHEN j.state = 'failed' THEN COALESCE(j.reason, j.last_error) \
                      ELSE j.last_error END, \
                 j.last_http_status, COALESCE(e.at, j.updated_at) AS at \
                 FROM jobs j LEFT JOIN job_events e ON e.id = ( \
                     SELECT MAX(id) FROM job_events \
                     WHERE job_id = j.id AND to_state IN ('retryable', 'failed')) \
                 WHERE j.batch_id = ? AND j.state NOT IN ('succeeded', 'skipped') \
                 AND (j.last_error IS NOT NULL OR (j.state = 'failed' AND j.reason IS NOT NULL)) \
                 ORDER BY at DESC, j.id DESC LIMIT ?",
            )?;
            let rows = stmt.query_map(params![id, last_errors as i64], job_error_from_row)?;
            rows.collect::<rusqlite::Result<Vec<_>>>()?
        };

        // An operation batch's jobs configure nothing: its replications are its configure
        // batch's, which says where they stand.
        let protection = if batch.operation == crate::domain::Operation::Configure {
            Some(self.readiness_counts(id)?).filter(|p| p.configured > 0)
        } else {
            None
        };

        Ok(BatchStatus {
            batch,
            as_of: now,
            total,
            counts,
            steps,
            oldest_running,
            next_retry_at,
            retries_due,
            in_doubt,
            first_started_at,
            last_finished_at,
            last_errors,
            protection,
        })
    }
}

fn job_error_from_row(r: &Row<'_>) -> rusqlite::Result<JobError> {
    Ok(JobError {
        job_id: r.get(0)?,
        vm: r.get(1)?,
        state: parse_state(&r.get::<_, String>(2)?, 2)?,
        step: parse_step(&r.get::<_, String>(3)?, 3)?,
        attempt: r.get(4)?,
        message: r.get(5)?,
        http_status: r.get(6)?,
        at: r.get(7)?,
    })
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicI64, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;
    use crate::queue::tests::{new_batch, spec};
    use crate::queue::{Checkpoint, QueueError, Save};

    const LEASE: Duration = Duration::from_secs(30);

    fn queue_at(start: i64) -> (Queue, Arc<AtomicI64>) {
        let now = Arc::new(AtomicI64::new(start));
        let clock = now.clone();
        let q = Queue::open_in_memory()
            .unwrap()
            .with_clock(Arc::new(move || clock.load(Ordering::SeqCst)));
        (q, now)
    }

    /// Six jobs: failed (400) at 2000, retryable (503, due at 5000) at 3000, running in submit
    /// and in doubt, succeeded at 4000, two pending. The clock ends at 4500.
    fn mixed_batch() -> (Queue, Arc<AtomicI64>, BatchId) {
        let (mut q, now) = queue_at(1000);
        let names = ["vm-a", "vm-b", "vm-c", "vm-d", "vm-e", "vm-f"];
        let batch = q
            .create_batch(&new_batch(), &names.map(spec))
            .expect("batch");
        let claimed = q.claim(Some(batch), 4, "w", LEASE).unwrap();
        let [a, b, c, d] = [0, 1, 2, 3].map(|i| claimed[i].lease().unwrap());
        now.store(2000, Ordering::SeqCst);
        q.fail(&a, "HTTP 400: rpo 2 is out of range", Some(400))
            .unwrap();
        now.store(3000, Ordering::SeqCst);
        q.checkpoint(&b, Step::ResolveTarget, &Checkpoint::default())
            .unwrap();
        q.retry_later(&b, 5000, "HTTP 503: service unavailable", Some(503))
            .unwrap();
        q.checkpoint(&c, Step::ResolveTarget, &Checkpoint::default())
            .unwrap();
        q.save_all(&[Save {
            lease: c.clone(),
            step: Step::Submit,
            checkpoint: Checkpoint::default(),
            in_doubt: Some(true),
        }])
        .unwrap();
        now.store(4000, Ordering::SeqCst);
        q.succeed(&d, Some("GID-1"), "configured").unwrap();
        now.store(4500, Ordering::SeqCst);
        (q, now, batch)
    }

    #[test]
    fn status_counts_every_state_and_the_unfinished_steps() {
        let (q, _, batch) = mixed_batch();
        let status = q.status(batch).unwrap();
        assert_eq!(status.batch.name, "wave 1");
        assert_eq!(status.as_of, 4500);
        assert_eq!(status.total, 6);
        let counts: Vec<(JobState, u64)> = status.counts.into_iter().collect();
        assert_eq!(
            counts,
            [
                (JobState::Pending, 2),
                (JobState::Running, 1),
                (JobState::Retryable, 1),
                (JobState::Succeeded, 1),
                (JobState::Skipped, 0),
                (JobState::Failed, 1),
                (JobState::Cancelled, 0),
            ]
        );
        let steps: Vec<(JobState, Vec<(Step, u64)>)> = status
            .steps
            .into_iter()
            .map(|(state, by_step)| (state, by_step.into_iter().collect()))
            .collect();
        assert_eq!(
            steps,
            [
                (JobState::Pending, vec![(Step::ResolveVm, 2)]),
                (JobState::Running, vec![(Step::Submit, 1)]),
                (JobState::Retryable, vec![(Step::ResolveTarget, 1)]),
            ]
        );
        assert_eq!(status.in_doubt, 1);
        assert_eq!(status.first_started_at, Some(1000));
        assert_eq!(status.last_finished_at, Some(4000));
    }

    #[test]
    fn task_time_is_the_mean_from_submit_to_end_of_the_vms_that_ended_since() {
        let (mut q, now) = queue_at(1000);
        let batch = q
            .create_batch(&new_batch(), &["vm-a", "vm-b", "vm-c"].map(spec))
            .unwrap();
        let claimed = q.claim(Some(batch), 3, "w", LEASE).unwrap();
        let leases: Vec<_> = claimed.iter().map(|c| c.lease().unwrap()).collect();
        for (i, lease) in leases.iter().enumerate() {
            for step in [Step::ResolveTarget, Step::Submit, Step::AwaitTask] {
                q.checkpoint(lease, step, &Checkpoint::default()).unwrap();
            }
            now.store(2000 + 1000 * i as i64, Ordering::SeqCst);
        }
        // Sent at 1000, 2000 and 3000; the first two end at 21000 and 32000.
        now.store(21_000, Ordering::SeqCst);
        q.succeed(&leases[0], Some("GID-1"), "configured").unwrap();
        now.store(32_000, Ordering::SeqCst);
        q.fail(&leases[1], "task error", None).unwrap();
        assert_eq!(q.task_time(batch, 0).unwrap(), Some(25_000));
        assert_eq!(q.task_time(batch, 30_000).unwrap(), Some(30_000));
        assert_eq!(q.task_time(batch, 40_000).unwrap(), None);
        // The third, sent at 3000, still awaits its task.
        assert_eq!(q.newest_task_sent(batch).unwrap(), Some(3000));
    }

    #[test]
    fn status_names_the_oldest_running_job_and_the_next_retry() {
        let (q, now, batch) = mixed_batch();
        let status = q.status(batch).unwrap();
        assert_eq!(
            status.oldest_running,
            Some(RunningJob {
                job_id: 3,
                vm: "vm-c".into(),
                step: Step::Submit,
                attempt: 1,
                started_at: Some(1000),
                lease_owner: "w".into(),
                lease_expires_at: 31_000,
                lease_expired: false,
            })
        );
        assert_eq!((status.next_retry_at, status.retries_due), (Some(5000), 0));

        now.store(40_000, Ordering::SeqCst);
        let later = q.status(batch).unwrap();
        assert_eq!((later.next_retry_at, later.retries_due), (Some(5000), 1));
        assert!(later.oldest_running.unwrap().lease_expired);
    }

    #[test]
    fn status_lists_the_last_errors_newest_first_in_the_servers_words() {
        let (q, _, batch) = mixed_batch();
        let errors = q.status(batch).unwrap().last_errors;
        assert_eq!(
            errors,
            [
                JobError {
                    job_id: 2,
                    vm: "vm-b".into(),
                    state: JobState::Retryable,
                    step: Step::ResolveTarget,
                    attempt: 1,
                    message: "HTTP 503: service unavailable".into(),
                    http_status: Some(503),
                    at: 3000,
                },
                JobError {
                    job_id: 1,
                    vm: "vm-a".into(),
                    state: JobState::Failed,
                    step: Step::ResolveVm,
                    attempt: 1,
                    message: "HTTP 400: rpo 2 is out of range".into(),
                    http_status: Some(400),
                    at: 2000,
                },
            ]
        );
        let newest = q.status_with_errors(batch, 1).unwrap().last_errors;
        assert_eq!(newest.iter().map(|e| e.job_id).collect::<Vec<_>>(), [2]);
    }

    #[test]
    fn an_error_a_job_overcame_is_no_longer_listed() {
        let (mut q, now, batch) = mixed_batch();
        // vm-b comes back after its 503 and succeeds.
        now.store(6000, Ordering::SeqCst);
        let b = q.claim(Some(batch), 10, "w2", LEASE).unwrap();
        let b = b.iter().find(|j| j.id == 2).unwrap().lease().unwrap();
        q.succeed(&b, Some("GID-b"), "configured").unwrap();
        let errors = q.status(batch).unwrap().last_errors;
        assert_eq!(errors.iter().map(|e| e.job_id).collect::<Vec<_>>(), [1]);
    }

    #[test]
    fn a_failed_job_reports_its_reason_and_the_step_where_it_failed() {
        let (mut q, now, batch) = mixed_batch();
        // vm-b comes back, moves on to submit, and then gives up for good.
        now.store(6000, Ordering::SeqCst);
        let b = q.claim(Some(batch), 10, "w2", LEASE).unwrap();
        let b = b.iter().find(|j| j.id == 2).unwrap().lease().unwrap();
        q.checkpoint(&b, Step::Submit, &Checkpoint::default())
            .unwrap();
        now.store(7000, Ordering::SeqCst);
        q.fail(&b, "VM not found", Some(404)).unwrap();
        let newest = &q.status(batch).unwrap().last_errors[0];
        assert_eq!(
            (
                newest.job_id,
                newest.state,
                newest.step,
                newest.attempt,
                newest.message.as_str(),
                newest.http_status,
                newest.at
            ),
            (
                2,
                JobState::Failed,
                Step::Submit,
                2,
                "VM not found",
                Some(404),
                7000
            )
        );
    }

    #[test]
    fn a_batch_without_jobs_has_zero_counts_and_no_times() {
        let (mut q, _) = queue_at(1000);
        let batch = q.create_batch(&new_batch(), &[]).unwrap();
        let status = q.status(batch).unwrap();
        assert_eq!(status.total, 0);
        assert_eq!(status.counts.len(), 7);
        assert!(status.counts.values().all(|&n| n == 0));
        assert_eq!(status.steps.len(), 3);
        assert_eq!(status.oldest_running, None);
        assert_eq!((status.next_retry_at, status.retries_due), (None, 0));
        assert_eq!(
            (status.first_started_at, status.last_finished_at),
            (None, None)
        );
        assert!(status.last_errors.is_empty());
        assert_eq!(status.protection, None, "nothing configured");
    }

    #[test]
    fn the_status_of_an_unknown_batch_is_an_error() {
        let (q, _) = queue_at(1000);
        assert!(matches!(q.status(7), Err(QueueError::NoSuchBatch(7))));
    }

    #[test]
    fn status_serializes_with_every_state_named_in_snake_case() {
        let (q, _, batch) = mixed_batch();
        let json = serde_json::to_value(q.status(batch).unwrap()).unwrap();
        assert_eq!(json["counts"]["pending"], 2);
        assert_eq!(json["counts"]["cancelled"], 0);
        assert_eq!(json["steps"]["running"]["submit"], 1);
        assert_eq!(json["oldest_running"]["lease_owner"], "w");
        assert_eq!(json["last_errors"][0]["http_status"], 503);
        assert_eq!(json["batch"]["id"], batch);
    }
}
