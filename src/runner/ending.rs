//! What a run writes of its held jobs: each step's result before the next starts, the
//! write-ahead in-doubt mark before a change is sent, and each job's end: succeeded, skipped,
//! failed, set back to be tried again, or given back. The kinds of work decide what happened;
//! the words and the rules of the queue's record are kept here, once.

use std::future::Future;

use tokio::time::Instant;

use super::held::HeldJob;
use super::{now_ms, RunError, Runner};
use crate::queue::{JobId, Lease, Step};
use crate::vr::error::error_chain;
use crate::vr::{ApiError, ErrorClass};

impl Runner {
    /// Ends a job as succeeded: its replication `replication_id` is `done` ("configured",
    /// "paused", …).
    pub(super) async fn succeed(
        &mut self,
        id: JobId,
        replication_id: String,
        done: &str,
    ) -> Result<(), RunError> {
        let Some(a) = self.held.remove(&id) else {
            return Ok(());
        };
        let message = format!("replication {replication_id} {done}");
        tracing::info!(job = id, vm = a.job.vm_label(), replication = %replication_id, "{message}");
        let save = a.save();
        self.db
            .run(move |q| {
                q.save_all(&[save])?;
                q.succeed(&a.lease, Some(&replication_id), &message)
            })
            .await
    }

    pub(super) async fn skip(
        &mut self,
        id: JobId,
        reason: String,
        replication_id: Option<String>,
    ) -> Result<(), RunError> {
        let Some(a) = self.held.remove(&id) else {
            return Ok(());
        };
        tracing::info!(job = id, vm = a.job.vm_label(), "skipped: {reason}");
        let save = a.save();
        self.db
            .run(move |q| {
                q.save_all(&[save])?;
                q.skip(&a.lease, &reason, replication_id.as_deref())
            })
            .await
    }

    /// Fails a job in the server's words. Only for what the server said of this VM, or for
    /// what was found before anything was sent.
    pub(super) async fn fail(
        &mut self,
        id: JobId,
        reason: String,
        status: Option<u16>,
    ) -> Result<(), RunError> {
        let Some(a) = self.held.remove(&id) else {
            return Ok(());
        };
        tracing::info!(job = id, vm = a.job.vm_label(), step = %a.step, "failed: {reason}");
        let save = a.save();
        self.db
            .run(move |q| {
                q.save_all(&[save])?;
                q.fail(&a.lease, &reason, status)
            })
            .await
    }

    /// The appliance answered no to a change: nothing was created, so the job is no longer
    /// in doubt, whatever ends it next.
    pub(super) fn answered_no(&mut self, id: JobId) {
        if let Some(a) = self.held.get_mut(&id) {
            a.in_doubt = false;
        }
    }

    /// A failure worth another attempt later; see [`Runner::setback_all`].
    pub(super) async fn setback(&mut self, id: JobId, error: &ApiError) -> Result<(), RunError> {
        self.setback_all(vec![id], error).await
    }

    /// Jobs that met the same failure together. Permanent ones fail at once, unless a job's
    /// change may have reached the server: then nothing but the server's word fails it, and it
    /// comes back (in doubt, or at its step) however often reading the truth fails. One wait
    /// for them all, so that they come back together and go on in one lookup and full groups,
    /// not one by one: a job that may have reached the server stays held by this run until
    /// then (the next reconcile settles every one of a moment at once); the others go back to
    /// the queue, due together.
    pub(super) async fn setback_all(
        &mut self,
        ids: Vec<JobId>,
        error: &ApiError,
    ) -> Result<(), RunError> {
        match error {
            // Nothing more is sent: the run stops and gives the jobs back as they are.
            ApiError::CredentialsRefused(refused) => {
                self.refused.get_or_insert_with(|| (**refused).clone());
                return Ok(());
            }
            // Not sent: the jobs go back to the queue for the next window, their attempts not
            // counted.
            ApiError::WindowClosed { .. } => {
                for id in &ids {
                    if let Some(a) = self.held.get_mut(id) {
                        a.in_doubt = false;
                    }
                }
                self.save_many(&ids).await?;
                self.release(|a| ids.contains(&a.job.id), WINDOW_CLOSED)
                    .await;
                return Ok(());
            }
            _ => {}
        }
        let class = error.class();
        let retryable = class.is_retryable() || class == ErrorClass::Session;
        let setbacks = ids
            .iter()
            .filter_map(|id| self.held.get(id))
            .map(|a| a.setbacks.max(a.lease.attempt.saturating_sub(1)))
            .max()
            .unwrap_or(0);
        let wait = error.retry_after().unwrap_or_else(|| {
            crate::vr::client::full_jitter(self.opts.retry_base, self.opts.retry_cap, setbacks)
        });
        let message = error_chain(error);
        let mut kept = Vec::new();
        for id in ids {
            let Some(a) = self.held.get_mut(&id) else {
                continue;
            };
            let past_submit = a.past_submit();
            if !retryable && !past_submit {
                self.fail(id, message.clone(), error.status()).await?;
                continue;
            }
            if past_submit && retryable {
                a.not_before = Some(Instant::now() + wait);
                a.setbacks += 1;
                tracing::info!(job = id, vm = a.job.vm_label(), step = %a.step, in_doubt = a.in_doubt, wait_ms = wait.as_millis() as u64, "{message}");
                kept.push(a.lease.clone());
                continue;
            }
            let Some(a) = self.held.remove(&id) else {
                continue;
            };
            let at = now_ms() + wait.as_millis() as i64;
            let status = error.status();
            // Throttling waited out for so long is still the appliance's pace, not the job's
            // fault.
            let may_fail = !past_submit && class != ErrorClass::Throttled;
            let save = a.save();
            let (vm, step) = (a.job.vm_label().to_string(), a.step);
            let text = message.clone();
            let state = self
                .db
                .run(move |q| {
                    q.save_all(&[save])?;
                    if may_fail {
                        q.retry_later(&a.lease, at, &text, status)
                    } else {
                        q.defer(&a.lease, at, &text, status)
                    }
                })
                .await?;
            tracing::info!(job = id, vm, step = %step, next = ?state, "{message}");
        }
        if !kept.is_empty() {
            let note = format!("{message}; asked again on the appliance before anything is sent");
            let status = error.status();
            self.db
                .run(move |q| q.note_all(&kept, &note, status))
                .await?;
        }
        Ok(())
    }

    /// Runs `work` for the held jobs `ids`: its output, or `None` when it was abandoned after
    /// Ctrl-C or failed (then the jobs were set back).
    pub(super) async fn fetch<T>(
        &mut self,
        ids: &[JobId],
        work: impl Future<Output = Result<T, ApiError>>,
    ) -> Result<Option<T>, RunError> {
        match self.stop.guarded(work).await {
            None => Ok(None),
            Some(Ok(found)) => Ok(Some(found)),
            Some(Err(e)) => {
                self.setback_all(ids.to_vec(), &e).await?;
                Ok(None)
            }
        }
    }

    /// Gives every held job back to the queue.
    pub(super) async fn release_all(&mut self, why: &'static str) {
        self.release(|_| true, why).await;
    }

    /// Gives the held jobs that match back to the queue (their attempt not counted).
    pub(super) async fn release(&mut self, which: impl Fn(&HeldJob) -> bool, why: &'static str) {
        let leases: Vec<Lease> = self
            .held
            .ids(which)
            .iter()
            .filter_map(|id| self.held.remove(id))
            .map(|a| a.lease)
            .collect();
        if leases.is_empty() {
            return;
        }
        let released = self
            .db
            .run(move |q| {
                for lease in &leases {
                    if let Err(e) = q.release(lease, why) {
                        tracing::warn!(job = lease.job, error = %error_chain(&e), "could not release the job");
                    }
                }
                Ok(())
            })
            .await;
        if let Err(e) = released {
            tracing::warn!(error = %error_chain(&e), "could not release the jobs");
        }
    }

    /// Marks these held jobs in doubt and saves them: written before their change is sent, so
    /// that whatever kills the process, the next attempt asks the server first.
    pub(super) async fn write_ahead(&mut self, ids: &[JobId]) -> Result<(), RunError> {
        for id in ids {
            if let Some(a) = self.held.get_mut(id) {
                a.in_doubt = true;
            }
        }
        self.save_many(ids).await
    }

    /// A held job's change is under way as the appliance's task `task_id` (accepted now, or
    /// found in flight when reconciled): it is followed from `at`. Whether the job is held.
    pub(super) fn follow_task(&mut self, id: JobId, task_id: &str, at: Instant) -> bool {
        let Some(a) = self.held.get_mut(&id) else {
            return false;
        };
        a.in_doubt = false;
        a.checkpoint.task_id = Some(task_id.to_string());
        a.step = Step::AwaitTask;
        a.submitted = Some(at);
        self.pacer.submitted(at);
        true
    }

    /// Moves resolved jobs on to `submit`, with two checkpoints as the steps are two (the VM
    /// found, then its target): the state machine takes one step at a time. A job already
    /// further on stays where it is.
    pub(super) async fn ready_to_submit(&mut self, ready: &[JobId]) -> Result<(), RunError> {
        for step in [Step::ResolveTarget, Step::Submit] {
            for id in ready {
                if let Some(a) = self.held.get_mut(id) {
                    a.step = a.step.max(step);
                }
            }
            self.save_many(ready).await?;
        }
        Ok(())
    }

    /// Writes the step and checkpoint (with the in-doubt mark) of these held jobs, in one
    /// transaction.
    pub(super) async fn save_many(&self, ids: &[JobId]) -> Result<(), RunError> {
        let saves = self.held.saves(ids);
        if !saves.is_empty() {
            self.db.run(move |q| q.save_all(&saves)).await?;
        }
        Ok(())
    }
}

/// Why jobs not sent when the change window closed went back to the queue.
pub(super) const WINDOW_CLOSED: &str = "the change window closed before it was sent: given back";
