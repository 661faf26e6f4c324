//! Progress of a running batch, read from the queue on a second connection (WAL lets it read
//! while the runner writes): a bar on a terminal, or one plain line every few seconds when the
//! output goes to a file or a pipe. Both say where the VMs are (waiting, resolving, submitting,
//! awaiting their task, verifying, ended), an ETA from the throughput measured over the last
//! minutes, and what the run waits for when it seems to stand still: the appliance's rate
//! limit, or VMs still leased by a run that died.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::ValueEnum;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::queue::{BatchId, BatchStatus, Holder, JobState, Queue, Step};
use crate::vr::Budget;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ProgressMode {
    /// A bar on a terminal, plain lines otherwise.
    Auto,
    Bar,
    Plain,
    None,
}

impl ProgressMode {
    fn resolve(self, quiet: bool) -> ProgressMode {
        match self {
            _ if quiet => ProgressMode::None,
            ProgressMode::Auto if std::io::stderr().is_terminal() => ProgressMode::Bar,
            ProgressMode::Auto => ProgressMode::Plain,
            other => other,
        }
    }
}

/// Stops the display when dropped.
pub struct Progress {
    task: Option<tokio::task::JoinHandle<()>>,
    stop: tokio::sync::watch::Sender<bool>,
}

/// What the display reads from the queue at each tick.
struct Reading {
    status: BatchStatus,
    /// Runs other than this process that hold jobs of the batch.
    others: Vec<Holder>,
    /// Submit to end, on average, for the VMs that ended since this display began.
    task: Option<Duration>,
    /// How long ago the newest VM still awaiting its task was sent.
    newest_sent: Option<Duration>,
}

impl Progress {
    pub fn start(
        db: PathBuf,
        batch: BatchId,
        budget: Option<std::sync::Arc<Budget>>,
        mode: ProgressMode,
        quiet: bool,
        admitting: bool,
    ) -> Progress {
        let (stop, mut stopped) = tokio::sync::watch::channel(false);
        let mode = mode.resolve(quiet);
        let task = (mode != ProgressMode::None).then(|| {
            tokio::spawn(async move {
                let Ok(queue) = Queue::open(&db) else { return };
                let since = crate::queue::system_clock()();
                let queue = std::sync::Arc::new(std::sync::Mutex::new(queue));
                // Off the async threads: a busy queue file must not hold up the requests.
                let read = move || {
                    let queue = queue.clone();
                    async move {
                        tokio::task::spawn_blocking(move || {
                            let q = queue.lock().unwrap_or_else(|p| p.into_inner());
                            let status = q.status_with_errors(batch, 0).ok()?;
                            let others = q
                                .holders(batch, "")
                                .ok()?
                                .into_iter()
                                .filter(|h| !crate::operator::is_this_process(&h.owner))
                                .collect();
                            let task = q
                                .task_time(batch, since)
                                .ok()
                                .flatten()
                                .map(|ms| Duration::from_millis(ms.max(0) as u64));
                            let newest_sent =
                                q.newest_task_sent(batch).ok().flatten().map(|at| {
                                    Duration::from_millis((status.as_of - at).max(0) as u64)
                                });
                            Some(Reading {
                                status,
                                others,
                                task,
                                newest_sent,
                            })
                        })
                        .await
                        .ok()
                        .flatten()
                    }
                };
                let mut view = View::new(mode, admitting);
                let every = if mode == ProgressMode::Bar {
                    Duration::from_secs(1)
                } else {
                    Duration::from_secs(5)
                };
                loop {
                    if let Some(r) = read().await {
                        view.show(&r, budget.as_deref());
                    }
                    tokio::select! {
                        _ = tokio::time::sleep(every) => {}
                        _ = stopped.changed() => break,
                    }
                }
                if let Some(r) = read().await {
                    view.finish(&r);
                }
            })
        });
        Progress { task, stop }
    }

    /// Draws the final state and waits for the display to let go of the terminal.
    pub async fn finish(mut self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

/// Where the batch's VMs are, by the stage of the work.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Stages {
    /// Pending or retryable: not taken yet.
    waiting: u64,
    resolving: u64,
    submitting: u64,
    awaiting_task: u64,
    verifying: u64,
    /// Ended: succeeded, failed, skipped or cancelled.
    done: u64,
    total: u64,
}

impl Stages {
    fn of(status: &BatchStatus) -> Stages {
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
    fn ahead(&self) -> u64 {
        self.waiting + self.resolving + self.submitting
    }

    fn in_flight(&self) -> u64 {
        self.awaiting_task + self.verifying
    }

    /// `waiting 120 · resolving 4 · submitting 20 · awaiting task 36 · verifying 0`; under
    /// admission a VM at the submit step is ready and waits for an initial sync to end.
    fn describe(&self, admitting: bool) -> String {
        let submitting = if admitting {
            "ready, waiting for a sync slot"
        } else {
            "submitting"
        };
        [
            ("waiting", self.waiting),
            ("resolving", self.resolving),
            (submitting, self.submitting),
            ("awaiting task", self.awaiting_task),
            ("verifying", self.verifying),
        ]
        .iter()
        .filter(|(_, n)| *n > 0)
        .map(|(what, n)| format!("{what} {n}"))
        .collect::<Vec<_>>()
        .join(" · ")
    }
}

/// One tick's reading for the ETA.
#[derive(Debug, Clone, Copy)]
struct Tick {
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

/// What the display says of the time left.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Estimate {
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
struct Eta {
    first: Option<Tick>,
    last: Option<Tick>,
    /// When every VM had been sent: from then on only the last task time is left.
    all_sent_at: Option<Instant>,
}

impl Eta {
    /// Less than this measured says too little.
    const MIN_SPAN: Duration = Duration::from_secs(15);

    fn add(&mut self, tick: Tick) {
        self.first.get_or_insert(tick);
        if tick.stages.ahead() == 0 {
            self.all_sent_at.get_or_insert(tick.at);
        } else {
            self.all_sent_at = None;
        }
        self.last = Some(tick);
    }

    fn estimate(&self) -> Estimate {
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

struct View {
    bar: Option<ProgressBar>,
    eta: Eta,
    /// The run submits as initial syncs end (`--max-initial-syncs`): VMs at the submit step
    /// wait for a slot, and the syncs, not the rate limit, set the pace.
    admitting: bool,
}

impl View {
    fn new(mode: ProgressMode, admitting: bool) -> View {
        let bar = (mode == ProgressMode::Bar).then(|| {
            let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
            let style = ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} VMs ended, {prefix}\n  {wide_msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar());
            bar.set_style(style);
            bar.enable_steady_tick(Duration::from_millis(200));
            bar
        });
        View {
            bar,
            eta: Eta::default(),
            admitting,
        }
    }

    fn show(&mut self, r: &Reading, budget: Option<&Budget>) {
        let stages = Stages::of(&r.status);
        let status = budget.map(Budget::status);
        self.eta.add(Tick {
            at: Instant::now(),
            stages,
            calls: status.as_ref().map_or(0, |s| s.stats.sent),
            rate: status
                .as_ref()
                .filter(|_| !self.admitting)
                .map(|s| f64::from(s.quota) / s.window.as_secs_f64().max(0.001)),
            task: r.task,
            newest_sent: r.newest_sent,
            budget_wait: status.as_ref().map_or(Duration::ZERO, budget_wait),
        });
        let eta = match self.eta.estimate() {
            Estimate::Left(left) => format!("eta {}", minutes(left)),
            Estimate::Measuring => "eta: measuring".into(),
            Estimate::Overdue { in_flight } => format!(
                "eta: overdue, {in_flight} VMs in flight past the task time measured so far"
            ),
        };
        let mut notes = vec![stages.describe(self.admitting), ended(&r.status)];
        notes.extend(budget.and_then(waiting_for_budget));
        notes.extend(leases(&r.others, r.status.as_of));
        let notes: Vec<String> = notes.into_iter().filter(|n| !n.is_empty()).collect();
        match &self.bar {
            Some(bar) => {
                bar.set_length(stages.total);
                bar.set_position(stages.done);
                bar.set_prefix(eta);
                bar.set_message(notes.join("; "));
            }
            None => eprintln!(
                "{}/{} VMs ended, {eta}: {}",
                stages.done,
                stages.total,
                notes.join("; ")
            ),
        }
    }

    fn finish(&mut self, r: &Reading) {
        self.show(r, None);
        if let Some(bar) = &self.bar {
            // Leaves the bar where the jobs are: an interrupted run is not drawn as complete.
            bar.abandon();
        }
    }
}

/// How long until the budget lets a request go: the appliance's refusal, or the next free slot
/// of a budget that has none.
fn budget_wait(s: &crate::vr::BudgetStatus) -> Duration {
    let now = tokio::time::Instant::now();
    [s.throttled_until, s.next_slot]
        .into_iter()
        .flatten()
        .map(|t| t.saturating_duration_since(now))
        .max()
        .unwrap_or(Duration::ZERO)
}

/// `13 min`, `2 h 05 min`, `40 s`.
fn minutes(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..=59 => format!("{s} s"),
        60..=3599 => format!("{} min", s.div_ceil(60)),
        _ => format!("{} h {:02} min", s / 3600, (s % 3600) / 60),
    }
}

/// `succeeded 10, failed 1`: the ended states that have jobs.
fn ended(status: &BatchStatus) -> String {
    status
        .counts
        .iter()
        .filter(|(s, n)| s.is_terminal() && **n > 0)
        .map(|(s, n)| format!("{s} {n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// VMs that other runs hold: a live one works on them (`--join`); a dead one's lease has to
/// run out before this run may take them over.
fn leases(others: &[Holder], now: i64) -> Vec<String> {
    others
        .iter()
        .map(|h| {
            let vms = if h.jobs == 1 { "VM" } else { "VMs" };
            if crate::operator::owner_is_gone(&h.owner) {
                format!(
                    "{} {vms} held by a run that died ({}); its lease ends in {}",
                    h.jobs,
                    h.owner,
                    minutes(Duration::from_millis(
                        h.until.saturating_sub(now).max(0) as u64
                    ))
                )
            } else {
                format!("{} {vms} held by another run ({})", h.jobs, h.owner)
            }
        })
        .collect()
}

/// What the requests are waiting for, when they wait: the appliance's refusal (throttled) or
/// the budget's next free slot (paced).
fn waiting_for_budget(budget: &Budget) -> Option<String> {
    let s = budget.status();
    let now = tokio::time::Instant::now();
    let window = s.window.as_secs_f64();
    if let Some(until) = s.throttled_until {
        return Some(format!(
            "throttled: the appliance refused a request (HTTP 429); waiting {:.0} s for its next \
             rate window, then at most {} requests per {window:.0} s",
            until.saturating_duration_since(now).as_secs_f64().ceil(),
            s.quota
        ));
    }
    let next = s.next_slot.filter(|_| s.waiting > 0)?;
    Some(format!(
        "paced: {} requests wait for the rate limit ({} per {window:.0} s), next slot in {:.0} s",
        s.waiting,
        s.quota,
        next.saturating_duration_since(now).as_secs_f64().ceil()
    ))
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

    #[test]
    fn under_admission_the_submit_step_reads_as_waiting_for_a_sync_slot() {
        let stages = Stages {
            waiting: 3,
            submitting: 40,
            awaiting_task: 10,
            total: 53,
            ..Stages::default()
        };
        assert_eq!(
            stages.describe(false),
            "waiting 3 · submitting 40 · awaiting task 10"
        );
        assert_eq!(
            stages.describe(true),
            "waiting 3 · ready, waiting for a sync slot 40 · awaiting task 10"
        );
    }

    #[test]
    fn durations_read_as_an_operator_would_say_them() {
        assert_eq!(minutes(Duration::from_secs(40)), "40 s");
        assert_eq!(minutes(Duration::from_secs(61)), "2 min");
        assert_eq!(minutes(Duration::from_secs(7500)), "2 h 05 min");
    }
}
