//! How long a batch has left, as a display shows it while a run works: from where its VMs are
//! (read from the queue), the requests this process has sent and the appliance's budget, and
//! the task times the run has measured. It lives by the pacing because it measures the same
//! things: the budget's rate and next slot, and how long a task takes.

use std::time::{Duration, Instant};

use crate::queue::{BatchStatus, JobState, Step};
use crate::vr::BudgetStatus;

/// Where the batch's VMs are, by the stage of the work.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stages {
    /// Pending or retryable: not taken yet.
    pub waiting: u64,
    pub resolving: u64,
    pub submitting: u64,
    pub awaiting_task: u64,
    pub verifying: u64,
    /// Ended: succeeded, failed, skipped or cancelled.
    pub done: u64,
    pub total: u64,
}

impl Stages {
    pub fn of(status: &BatchStatus) -> Stages {
        let running = |steps: &[Step]| -> u64 {
            status
                .steps
                .get(&JobState::Running)
                .map_or(0, |by| steps.iter().filter_map(|s| by.get(s)).sum())
        };
        Stages {
            waiting: status.counts[&JobState::Pending] + status.counts[&JobState::Retryable],
            resolving: running(&[Step::ResolveVm, Step::ResolveTarget]),
            submitting: running(&[Step::Submit]),
            awaiting_task: running(&[Step::AwaitTask]),
            verifying: running(&[Step::Verify]),
            done: JobState::ALL
                .iter()
                .filter(|s| s.is_terminal())
                .map(|s| status.counts[s])
                .sum(),
            total: status.total,
        }
    }

    /// Not sent yet: the part of the work the rate limit paces.
    pub fn ahead(&self) -> u64 {
        self.waiting + self.resolving + self.submitting
    }

    /// Sent, not ended: awaiting their task or being verified.
    pub fn in_flight(&self) -> u64 {
        self.awaiting_task + self.verifying
    }
}

/// One tick's reading for the ETA.
#[derive(Debug, Clone, Copy)]
pub struct Tick {
    at: Instant,
    stages: Stages,
    /// Requests this process has sent so far.
    calls: u64,
    /// The rate limit the requests keep to, in requests a second.
    rate: Option<f64>,
    /// How long a VM takes from its submit to its end, measured on the VMs that ended.
    task: Option<Duration>,
    /// How long ago the newest VM still awaiting its task was sent.
    newest_sent: Option<Duration>,
    /// How long until the appliance's budget lets the next request go (0: now).
    budget_wait: Duration,
}

impl Tick {
    /// A reading taken now: where the VMs are, what this process's budget says (none when it
    /// has no client, as at the end), the task time measured and the newest send. Under
    /// admission (`admitting`) the initial syncs, not the rate limit, set the pace.
    pub fn now(
        stages: Stages,
        budget: Option<&BudgetStatus>,
        admitting: bool,
        task: Option<Duration>,
        newest_sent: Option<Duration>,
    ) -> Tick {
        Tick {
            at: Instant::now(),
            stages,
            calls: budget.map_or(0, |s| s.stats.sent),
            rate: budget
                .filter(|_| !admitting)
                .map(|s| f64::from(s.quota) / s.window.as_secs_f64().max(0.001)),
            task,
            newest_sent,
            budget_wait: budget.map_or(Duration::ZERO, budget_wait),
        }
    }
}

/// What the display says of the time left.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Estimate {
    /// Too little measured yet.
    Measuring,
    Left(Duration),
    /// VMs are still in flight past the time their tasks should have taken: nothing measured
    /// says how much longer.
    Overdue {
        in_flight: u64,
    },
}

/// The time left: the VMs not sent yet take the requests this run has measured per VM, at
/// the rate the appliance's limit allows (or, without one, at the pace they have been leaving
/// the queue); the last of them then takes the measured task time. Once every VM is sent, the
/// newest one still in flight ends a task time after it was sent, and no sooner than the
/// appliance's budget lets the polls that see it go (issue 17: the estimate said 1 s while 232
/// twenty-second tasks were outstanding). Only what this run did is measured, so VMs that ended
/// before it (a resumed batch) do not count as its throughput, and the estimate does not swing
/// with the rate window's bursts and pauses.
#[derive(Debug, Default)]
pub struct Eta {
    first: Option<Tick>,
    last: Option<Tick>,
    /// When every VM had been sent: from then on only the last task time is left.
    all_sent_at: Option<Instant>,
}

impl Eta {
    /// Less than this measured says too little.
    const MIN_SPAN: Duration = Duration::from_secs(15);

    pub fn add(&mut self, tick: Tick) {
        self.first.get_or_insert(tick);
        if tick.stages.ahead() == 0 {
            self.all_sent_at.get_or_insert(tick.at);
        } else {
            self.all_sent_at = None;
        }
        self.last = Some(tick);
    }

    pub fn estimate(&self) -> Estimate {
        let (Some(first), Some(last)) = (self.first, self.last) else {
            return Estimate::Measuring;
        };
        let in_flight = last.stages.in_flight();
        if last.stages.ahead() + in_flight == 0 {
            return Estimate::Left(Duration::ZERO);
        }
        let span = last.at.duration_since(first.at);
        let Some(task) = last.task.filter(|_| span >= Self::MIN_SPAN) else {
            return Estimate::Measuring;
        };
        if let Some(at) = self.all_sent_at {
            let sent = last
                .newest_sent
                .unwrap_or_else(|| last.at.duration_since(at));
            let left = task.saturating_sub(sent).max(last.budget_wait);
            return if left.is_zero() && in_flight > 0 {
                Estimate::Overdue { in_flight }
            } else {
                Estimate::Left(left)
            };
        }
        let left = first.stages.ahead().saturating_sub(last.stages.ahead());
        if left == 0 {
            return Estimate::Measuring;
        }
        let ahead = last.stages.ahead() as f64;
        let calls = last.calls.saturating_sub(first.calls);
        let send = match last.rate {
            Some(rate) if calls > 0 => ahead * (calls as f64 / left as f64) / rate,
            _ => ahead * span.as_secs_f64() / left as f64,
        };
        Estimate::Left(Duration::from_secs_f64(send).max(last.budget_wait) + task)
    }
}

/// How long until the budget lets a request go: the appliance's refusal, or the next free slot
/// of a budget that has none.
fn budget_wait(s: &BudgetStatus) -> Duration {
    let now = tokio::time::Instant::now();
    [s.throttled_until, s.next_slot]
        .into_iter()
        .flatten()
        .map(|t| t.saturating_duration_since(now))
        .max()
        .unwrap_or(Duration::ZERO)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tick(t0: Instant, secs: u64, ahead: u64, in_flight: u64, done: u64, calls: u64) -> Tick {
        Tick {
            at: t0 + Duration::from_secs(secs),
            stages: Stages {
                waiting: ahead,
                awaiting_task: in_flight,
                done,
                total: ahead + in_flight + done,
                ..Stages::default()
            },
            calls,
            rate: Some(50.0 / 60.0),
            task: Some(Duration::from_secs(20)),
            newest_sent: None,
            budget_wait: Duration::ZERO,
        }
    }

    fn left(eta: &Eta) -> Duration {
        match eta.estimate() {
            Estimate::Left(d) => d,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_eta_is_the_calls_left_at_the_rate_limit_then_one_task() {
        let t0 = Instant::now();
        let mut eta = Eta::default();
        // A resumed batch: 800 of 2000 ended before this run. Then a first window's burst
        // (50 calls send 760 VMs) and a pause until the next window.
        eta.add(tick(t0, 0, 1200, 0, 800, 0));
        eta.add(tick(t0, 20, 440, 760, 800, 50));
        let burst = left(&eta).as_secs_f64();
        eta.add(tick(t0, 50, 440, 700, 860, 50));
        let paused = left(&eta).as_secs_f64();
        // 440 VMs at 50/760 calls a VM is 29 calls, 35 s at 50 a minute; then a task.
        assert!((burst - 54.7).abs() < 1.0, "{burst}");
        assert_eq!(
            burst, paused,
            "the pause between windows does not move the estimate"
        );
    }

    #[test]
    fn the_eta_waits_for_a_measurement_and_ends_with_the_last_task() {
        let t0 = Instant::now();
        let mut eta = Eta::default();
        eta.add(tick(t0, 0, 100, 0, 0, 0));
        eta.add(tick(t0, 5, 90, 10, 0, 5));
        assert_eq!(
            eta.estimate(),
            Estimate::Measuring,
            "five seconds say too little"
        );
        // Everything sent: what is left is the last task's time.
        eta.add(tick(t0, 30, 0, 100, 0, 12));
        assert_eq!(left(&eta), Duration::from_secs(20));
        eta.add(tick(t0, 45, 0, 40, 60, 14));
        assert_eq!(left(&eta), Duration::from_secs(5));
        eta.add(tick(t0, 60, 0, 0, 100, 15));
        assert_eq!(left(&eta), Duration::ZERO);
    }

    // Issue 17: the ETA said 1 s with 232 twenty-second tasks outstanding: every VM had been
    // sent, the last ones long after the first, and the appliance's budget had no slot left
    // for the polls that would see them end.
    #[test]
    fn the_last_tasks_and_the_budget_bound_the_time_left_once_everything_is_sent() {
        let t0 = Instant::now();
        let mut eta = Eta::default();
        eta.add(tick(t0, 0, 300, 0, 0, 0));
        eta.add(tick(t0, 2, 0, 300, 0, 20));
        // 68 ended 19 s after every VM was sent; 232 remain.
        let mut t = tick(t0, 21, 0, 232, 68, 40);
        // Without the newest send and the budget, all the estimate knows is when the display
        // first saw every VM sent: 20 s after that is 1 s away, which is what it said.
        let blind = {
            let mut blind = Eta::default();
            blind.add(tick(t0, 0, 300, 0, 0, 0));
            blind.add(tick(t0, 2, 0, 300, 0, 20));
            blind.add(t);
            left(&blind)
        };
        assert_eq!(blind, Duration::from_secs(1));
        // The newest of them was sent 4 s ago, and the budget frees a slot in 39 s.
        t.newest_sent = Some(Duration::from_secs(4));
        eta.add(t);
        assert_eq!(left(&eta), Duration::from_secs(16), "20 s after its send");
        t.budget_wait = Duration::from_secs(39);
        eta.add(t);
        assert_eq!(left(&eta), Duration::from_secs(39), "no poll before a slot");
        // Past their time with nothing to wait for: overdue, not "0 s".
        t.newest_sent = Some(Duration::from_secs(25));
        t.budget_wait = Duration::ZERO;
        eta.add(t);
        assert_eq!(eta.estimate(), Estimate::Overdue { in_flight: 232 });
    }

    #[test]
    fn without_a_rate_limit_the_eta_follows_the_pace_vms_leave_the_queue() {
        let t0 = Instant::now();
        let mut eta = Eta::default();
        let mut t = tick(t0, 0, 100, 0, 0, 0);
        t.rate = None;
        eta.add(t);
        let mut t = tick(t0, 60, 80, 20, 0, 9);
        t.rate = None;
        eta.add(t);
        // 80 left at 20 a minute, then a task.
        assert_eq!(left(&eta), Duration::from_secs(260));
    }
}
