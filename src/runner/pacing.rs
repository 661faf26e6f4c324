//! The run's pace: how many jobs it holds, when it asks the appliance "done yet?" about the
//! outstanding tasks, and how long its loop may sleep. The ETA a display shows comes from the
//! same measures ([`eta`]).
//!
//! At 50 requests a minute every poll is a submit not sent, so polls are timed from what the
//! run has seen rather than a fixed interval: once tasks have finished, a new one is expected
//! to take as long as the slowest of the recent ones (measured on the server's clock, queue time
//! included); before that, from the progress two polls saw while it ran, or failing that with a
//! gap that doubles while nothing finishes. No estimate puts a poll more than 30 s away, and
//! whatever the estimate, polls may use only a share of the request budget: a fifth while other
//! work (lookups, submits) waits for it, half otherwise.

pub mod eta;

use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::Instant;

use super::Runner;
use crate::queue::Step;
use crate::vr::Limits;

/// Task durations remembered for the estimate.
const SAMPLES: usize = 50;

#[derive(Debug)]
pub(super) struct Pacer {
    /// The shortest gap between two rounds (`poll_interval`).
    min_gap: Duration,
    /// The longest gap while tasks are outstanding and nothing is known of their duration.
    max_gap: Duration,
    limits: Limits,
    /// Durations of finished tasks (queued to complete), newest last.
    durations: VecDeque<Duration>,
    /// Rounds in a row in which nothing finished.
    misses: u32,
    last_round: Option<Instant>,
    next: Option<Instant>,
}

/// What a round saw of one outstanding task.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Sighting {
    /// When this run submitted it (or took it over).
    pub submitted: Instant,
    /// Progress seen by the previous round and now, with the instants.
    pub progress: Option<((Instant, i32), (Instant, i32))>,
}

impl Pacer {
    pub fn new(min_gap: Duration, limits: Limits) -> Pacer {
        Pacer {
            min_gap,
            max_gap: Duration::from_secs(30).max(min_gap),
            limits,
            durations: VecDeque::new(),
            misses: 0,
            last_round: None,
            next: None,
        }
    }

    /// A task was accepted (or taken over): make sure a round is planned for it.
    pub fn submitted(&mut self, at: Instant) {
        let expected = at + self.expected_duration().unwrap_or(self.min_gap);
        self.next = Some(self.next.map_or(expected, |n| n.min(expected)));
    }

    /// Whether a round is due; also true when something other than a task (a job waiting to be
    /// verified) asks for one and none is planned.
    pub fn due(&self, now: Instant) -> bool {
        self.next.is_some_and(|n| n <= now)
    }

    /// When the next round is due, if one is planned.
    pub fn next(&self) -> Option<Instant> {
        self.next
    }

    /// A finished task took this long, from queued to complete.
    pub fn finished(&mut self, took: Duration) {
        if self.durations.len() == SAMPLES {
            self.durations.pop_front();
        }
        self.durations.push_back(took);
    }

    /// Plans the next round after one that settled `settled` jobs and cost `cost` calls.
    /// `outstanding` are the tasks still running; `waiting` jobs need another round soon (to be
    /// verified, or admitted when a slot frees); `work_waiting` tells whether lookups or submits
    /// compete for the budget.
    #[allow(clippy::too_many_arguments)]
    fn after_round(
        &mut self,
        now: Instant,
        outstanding: &[Sighting],
        waiting: usize,
        look: Option<Instant>,
        settled: usize,
        cost: u32,
        work_waiting: bool,
    ) {
        self.last_round = Some(now);
        self.misses = if settled > 0 { 0 } else { self.misses + 1 };
        if outstanding.is_empty() && waiting == 0 {
            // Only a look admission asked for: at its time, within the budget's share.
            self.next = look.map(|t| t.max(now + self.min_gap.max(self.budget_gap(cost, false))));
            return;
        }
        let backoff = self
            .min_gap
            .saturating_mul(1 << self.misses.min(8))
            .min(self.max_gap);
        let expected = outstanding
            .iter()
            .filter_map(|t| self.expected_end(t))
            .min();
        let wanted = match (expected, waiting) {
            // A replication not yet listed, or a slot that may have freed, is looked at soon.
            (_, v) if v > 0 => now + self.min_gap,
            // An estimate can be wrong: never further than the longest gap.
            (Some(end), _) => end.clamp(now + self.min_gap, now + self.max_gap),
            (None, _) => now + backoff,
        };
        let wanted = look.map_or(wanted, |t| wanted.min(t.max(now + self.min_gap)));
        self.next = Some(wanted.max(now + self.budget_gap(cost, work_waiting)));
    }

    /// The gap that keeps rounds of `cost` calls within their share of the budget.
    fn budget_gap(&self, cost: u32, work_waiting: bool) -> Duration {
        let share = if work_waiting { 0.2 } else { 0.5 };
        let per_second = self.limits.per_second() * share;
        Duration::from_secs_f64(f64::from(cost.max(1)) / per_second.max(1e-6))
    }

    /// When a task is expected to finish: from the durations seen, else from its progress.
    fn expected_end(&self, t: &Sighting) -> Option<Instant> {
        if let Some(d) = self.expected_duration() {
            return Some(t.submitted + d);
        }
        let ((t1, p1), (t2, p2)) = t.progress?;
        // A queued task shows 0 % however long it waits: only running progress says anything.
        if p1 <= 0 || p2 <= p1 || t2 <= t1 {
            return None;
        }
        let rate = f64::from(p2 - p1) / (t2 - t1).as_secs_f64();
        let left = f64::from(100 - p2.min(100)) / rate;
        Some(t2 + Duration::from_secs_f64(left.min(3600.0)))
    }

    /// The slowest recent task: a poll planned by it finds (nearly) all of a group done.
    fn expected_duration(&self) -> Option<Duration> {
        self.durations.iter().max().copied()
    }

    /// How long before a VM's sync can start it must be sent: its configure task, then a round
    /// to see it done.
    pub fn lead(&self) -> Duration {
        self.expected_duration().unwrap_or(self.min_gap) + self.min_gap
    }
}

impl Runner {
    /// Jobs held at once: what the appliance's budget lets this run work through within one
    /// lease, so that a run killed outright holds no more jobs back (until their lease ends)
    /// than it could have worked on. Never fewer than a lookup group (full groups keep calls
    /// few), never more than `window`. `calls_per_job` is what a job of this kind of work costs.
    pub(super) fn held_at_most(&self, calls_per_job: f64) -> usize {
        let limits = self.client.budget().limits();
        let calls = f64::from(limits.quota()) * self.opts.lease.as_secs_f64()
            / limits.window.as_secs_f64().max(0.001);
        ((calls / calls_per_job) as usize)
            .max(self.opts.lookup_group)
            .min(self.opts.window)
    }

    /// Calls the appliance's budget lets go at once now.
    pub(super) fn sendable(&self) -> usize {
        self.client.budget().free_now() as usize
    }

    /// How long nothing can move: until the next round of polls, or the budget's next free slot
    /// when jobs wait to be sent; a second at most, to see a stop or a closing window soon.
    pub(super) fn until_something_to_do(&self) -> Duration {
        let now = Instant::now();
        let round = self.pacer.next();
        let ready = self.held.values().any(|a| a.ready_to_send());
        let slot = ready
            .then(|| self.client.budget().status().next_slot)
            .flatten();
        let set_back = self.held.values().filter_map(|a| a.not_before).min();
        [round, slot, set_back]
            .into_iter()
            .flatten()
            .min()
            .map_or(Duration::from_secs(1), |t| t.saturating_duration_since(now))
            .clamp(Duration::from_millis(10), Duration::from_secs(1))
    }

    /// Plans the next round after one that began at `round`, settled `settled` jobs and cost
    /// `cost` calls. Under admission (`look` is `Some`), jobs waiting for a slot ask for a
    /// round when admission expects one to free (soon when it cannot tell), and do not compete
    /// with it for the budget: they wait on it.
    pub(super) fn plan_round(
        &mut self,
        round: Instant,
        settled: usize,
        cost: u32,
        look: Option<Option<Instant>>,
    ) {
        let admitting = look.is_some();
        let outstanding: Vec<Sighting> = self
            .held
            .values()
            .filter(|a| a.step == Step::AwaitTask && !a.in_doubt)
            .map(|a| Sighting {
                submitted: a.submitted.unwrap_or(round),
                progress: a.previous_progress.zip(a.progress),
            })
            .collect();
        let verifying = self.held.ids(|a| a.step == Step::Verify).len();
        let for_a_slot = admitting && self.held.values().any(|a| a.ready_to_send());
        // Without an estimate of when a slot frees, a waiting job asks for a round soon.
        let look = look.flatten().filter(|_| for_a_slot);
        let soon = verifying + usize::from(for_a_slot && look.is_none());
        let work_waiting = self.held.values().any(|a| {
            !a.in_doubt && (a.step < Step::Submit || (a.step == Step::Submit && !admitting))
        });
        self.pacer.after_round(
            Instant::now(),
            &outstanding,
            soon,
            look,
            settled,
            cost,
            work_waiting,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pacer() -> Pacer {
        Pacer::new(Duration::from_secs(2), Limits::APPLIANCE)
    }

    fn task(submitted: Instant) -> Sighting {
        Sighting {
            submitted,
            progress: None,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn before_anything_is_known_polls_back_off() {
        let mut p = pacer();
        let t0 = Instant::now();
        p.submitted(t0);
        assert_eq!(p.next(), Some(t0 + Duration::from_secs(2)));
        let mut now = t0 + Duration::from_secs(2);
        let mut gaps = Vec::new();
        for _ in 0..6 {
            p.after_round(now, &[task(t0)], 0, None, 0, 1, false);
            let next = p.next().unwrap();
            gaps.push((next - now).as_secs());
            now = next;
        }
        assert_eq!(gaps, [4, 8, 16, 30, 30, 30]);
    }

    #[tokio::test(start_paused = true)]
    async fn once_tasks_finish_the_next_poll_waits_for_the_slowest_duration() {
        let mut p = pacer();
        let t0 = Instant::now();
        p.finished(Duration::from_secs(18));
        p.finished(Duration::from_secs(20));
        let submitted = t0 + Duration::from_secs(1);
        p.submitted(submitted);
        assert_eq!(p.next(), Some(submitted + Duration::from_secs(20)));
        p.after_round(
            t0 + Duration::from_secs(5),
            &[task(submitted)],
            0,
            None,
            3,
            1,
            false,
        );
        assert_eq!(p.next(), Some(submitted + Duration::from_secs(20)));
    }

    #[tokio::test(start_paused = true)]
    async fn a_wave_waiting_for_a_slot_is_looked_at_when_the_first_sync_should_end() {
        let mut p = pacer();
        let t0 = Instant::now();
        let end = t0 + Duration::from_secs(600);
        p.after_round(t0, &[], 0, Some(end), 1, 1, false);
        assert_eq!(
            p.next(),
            Some(end),
            "not every two seconds while syncs run for minutes"
        );
        // A look sooner than the shortest gap waits for it, and for the budget's share.
        p.after_round(t0, &[], 0, Some(t0), 1, 1, false);
        assert_eq!(p.next(), Some(t0 + Duration::from_millis(2400)));
        // Tasks still outstanding are polled at their own time when it comes first.
        p.finished(Duration::from_secs(20));
        p.after_round(t0, &[task(t0)], 0, Some(end), 1, 1, false);
        assert_eq!(p.next(), Some(t0 + Duration::from_secs(20)));
        p.after_round(t0, &[], 0, None, 1, 1, false);
        assert_eq!(p.next(), None, "nothing to look at");
    }

    #[tokio::test(start_paused = true)]
    async fn progress_seen_twice_predicts_the_end() {
        let mut p = pacer();
        let t0 = Instant::now();
        let seen = Sighting {
            submitted: t0,
            progress: Some((
                (t0 + Duration::from_secs(4), 10),
                (t0 + Duration::from_secs(8), 30),
            )),
        };
        p.after_round(t0 + Duration::from_secs(8), &[seen], 0, None, 0, 1, false);
        // 20 % in 4 s: the remaining 70 % take 14 s.
        assert_eq!(p.next(), Some(t0 + Duration::from_secs(22)));
    }

    #[tokio::test(start_paused = true)]
    async fn a_queued_tasks_zero_progress_predicts_nothing() {
        let mut p = pacer();
        let t0 = Instant::now();
        let seen = Sighting {
            submitted: t0,
            progress: Some((
                (t0 + Duration::from_secs(2), 0),
                (t0 + Duration::from_secs(6), 6),
            )),
        };
        p.after_round(t0 + Duration::from_secs(6), &[seen], 0, None, 0, 1, false);
        // Not 60 s away, as 6 % in 4 s would say: the back-off of a first miss.
        assert_eq!(p.next(), Some(t0 + Duration::from_secs(10)));
    }

    #[tokio::test(start_paused = true)]
    async fn no_estimate_puts_a_poll_further_than_thirty_seconds() {
        let mut p = pacer();
        let t0 = Instant::now();
        p.finished(Duration::from_secs(300));
        p.after_round(t0, &[task(t0)], 0, None, 1, 1, false);
        assert_eq!(p.next(), Some(t0 + Duration::from_secs(30)));
    }

    #[tokio::test(start_paused = true)]
    async fn polls_keep_to_their_share_of_the_budget() {
        let mut p = pacer();
        let t0 = Instant::now();
        // A round of 10 calls at 50 a minute: half the budget allows one every 24 s, a fifth
        // (while submits wait) one every 60 s.
        p.after_round(t0, &[task(t0)], 0, None, 1, 10, false);
        assert_eq!(p.next(), Some(t0 + Duration::from_secs(24)));
        p.after_round(t0, &[task(t0)], 0, None, 1, 10, true);
        assert_eq!(p.next(), Some(t0 + Duration::from_secs(60)));
    }

    #[tokio::test(start_paused = true)]
    async fn nothing_outstanding_plans_nothing() {
        let mut p = pacer();
        let t0 = Instant::now();
        p.submitted(t0);
        p.after_round(t0, &[], 0, None, 5, 1, false);
        assert_eq!(p.next(), None);
        assert!(!p.due(t0 + Duration::from_secs(3600)));
    }
}
