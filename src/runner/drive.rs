//! The run's loop: claim due jobs up to what the run may hold, pass every step over them (the
//! kind of work doing each its way), follow their tasks, sleep only when nothing moved; until
//! nothing is left, the change window closes, Ctrl-C, a `vrbulk cancel`, or a refused login.

use std::time::Duration;

use tokio::time::Instant;

use super::ending::WINDOW_CLOSED;
use super::work::Work;
use super::{now_ms, Ending, RunError, Runner};
use crate::vr::ApiError;

/// When the run last looked for a `vrbulk cancel`, and since when one counts.
#[derive(Debug)]
pub(super) struct CancelWatch {
    /// When this run began (Unix ms): a cancel asked before it is not for it.
    since: i64,
    last_check: Instant,
}

impl CancelWatch {
    pub fn new() -> CancelWatch {
        CancelWatch {
            since: now_ms(),
            last_check: Instant::now(),
        }
    }
}

impl Runner {
    pub(super) async fn drive(&mut self, work: &mut impl Work) -> Result<Ending, RunError> {
        loop {
            if self.stop.stopping() {
                return Ok(Ending::Interrupted);
            }
            if let Some(refused) = self.refused.take() {
                return Err(RunError::Credentials {
                    at: self.sites.name_of(&refused.site),
                    source: ApiError::CredentialsRefused(Box::new(refused)),
                });
            }
            let now = now_ms();
            let closed = self.opts.until.is_some_and(|u| now >= u);
            self.obey_cancel().await?;
            if closed {
                // No submit starts after the window: what was not sent goes back to the queue.
                self.release(|a| !a.past_submit(), WINDOW_CLOSED).await;
            } else {
                self.claim_more(work.calls_per_job(&self.opts)).await?;
            }
            if self.held.is_empty() {
                if let Some(ending) = self.idle(now, closed).await? {
                    return Ok(ending);
                }
                continue;
            }
            let before = self.held.progress_marker();
            self.pass(work).await?;
            if self.held.progress_marker() == before {
                self.stop.sleep(self.until_something_to_do()).await;
            }
        }
    }

    /// One pass of every step over the held jobs. After Ctrl-C only the step already under
    /// way gets its grace period.
    async fn pass(&mut self, work: &mut impl Work) -> Result<(), RunError> {
        for disc in self.discover(work.asks_target_site()).await? {
            work.discovered(&disc);
        }
        if !self.stop.stopping() {
            work.reconcile(self).await?;
        }
        if !self.stop.stopping() {
            work.resolve(self).await?;
        }
        if !self.stop.stopping() {
            work.submit(self).await?;
        }
        if !self.stop.stopping() {
            self.round(work).await?;
        }
        self.flush_usage().await;
        Ok(())
    }

    /// `vrbulk cancel` asked while this run works: the held jobs not sent yet are cancelled (those
    /// sent are followed to their end). Looked at once a second at most.
    async fn obey_cancel(&mut self) -> Result<(), RunError> {
        if self.cancels.last_check.elapsed() < Duration::from_secs(1) {
            return Ok(());
        }
        self.cancels.last_check = Instant::now();
        let (batch, since) = (self.batch, self.cancels.since);
        let Some(why) = self
            .db
            .run(move |q| q.cancel_requested(batch, since))
            .await?
        else {
            return Ok(());
        };
        let unsent: Vec<_> = self
            .held
            .ids(|a| !a.past_submit())
            .iter()
            .filter_map(|id| self.held.remove(id))
            .map(|a| a.lease)
            .collect();
        if unsent.is_empty() {
            return Ok(());
        }
        tracing::info!(batch, jobs = unsent.len(), "cancelled while running: {why}");
        self.db
            .run(move |q| {
                for lease in &unsent {
                    q.cancel_held(lease, &why)?;
                }
                Ok(())
            })
            .await
    }

    /// Claims due jobs up to [`Runner::held_at_most`].
    async fn claim_more(&mut self, calls_per_job: f64) -> Result<(), RunError> {
        let most = self.held_at_most(calls_per_job);
        if self.held.len() >= most {
            return Ok(());
        }
        let want = most - self.held.len();
        let (batch, owner, lease) = (self.batch, self.owner.clone(), self.opts.lease);
        let claimed = self
            .db
            .run(move |q| q.claim(Some(batch), want, &owner, lease))
            .await?;
        for job in claimed {
            if let Some(at) = self.held.hold(job) {
                self.pacer.submitted(at);
            }
        }
        Ok(())
    }

    /// Nothing held: the run is over, or waits (a bounded while) for jobs due later or held by
    /// another run.
    async fn idle(&mut self, now: i64, closed: bool) -> Result<Option<Ending>, RunError> {
        let (batch, owner) = (self.batch, self.owner.clone());
        let (due, elsewhere) = self
            .db
            .run(move |q| {
                q.rescue()?;
                Ok((q.next_due(batch)?, q.held_elsewhere(batch, &owner)?))
            })
            .await?;
        let wake = match (due, elsewhere) {
            (None, None) => return Ok(Some(Ending::Done)),
            // The window ended a run with work left only if there is some.
            _ if closed => return Ok(Some(Ending::WindowClosed)),
            (Some(d), None) => d,
            (None, Some(e)) => e,
            (Some(d), Some(e)) => d.min(e),
        };
        if elsewhere.is_some_and(|e| e <= wake) {
            tracing::info!(
                batch = self.batch,
                "waiting for jobs another run holds (or held, if it died: their lease expires in {} s)",
                (wake - now).max(0) / 1000
            );
        }
        let wake = self.opts.until.map_or(wake, |u| wake.min(u));
        self.stop
            .sleep(Duration::from_millis((wake - now).clamp(10, 1000) as u64))
            .await;
        Ok(None)
    }
}
