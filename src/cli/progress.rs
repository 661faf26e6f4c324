//! Progress of a running batch, read from the queue on a second connection (WAL lets it read
//! while the runner writes): a bar on a terminal, or one plain line every few seconds when the
//! output goes to a file or a pipe. Both say where the VMs are (waiting, resolving, submitting,
//! awaiting their task, verifying, ended), the ETA the runner's pacing estimates
//! ([`crate::runner::pacing::eta`]), and what the run waits for when it seems to stand still:
//! the appliance's rate limit, or VMs still leased by a run that died; and while the run
//! admits a wave and measures its link, the cap and the throughput it last measured.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Duration;

use clap::ValueEnum;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::queue::{BatchId, BatchStatus, Holder, LinkSample, Queue};
use crate::runner::pacing::eta::{Estimate, Eta, Stages, Tick};
use crate::settings::InitialSyncs;
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
    /// What this run last measured of the link, while it admits a wave.
    link: Option<LinkSample>,
}

impl Progress {
    pub fn start(
        db: PathBuf,
        batch: BatchId,
        budget: Option<std::sync::Arc<Budget>>,
        mode: ProgressMode,
        quiet: bool,
        admission: InitialSyncs,
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
                            // Only this run's: an earlier run's cap is not this one's.
                            let link = q.latest_link_sample(batch, since).ok().flatten();
                            Some(Reading {
                                status,
                                others,
                                task,
                                newest_sent,
                                link,
                            })
                        })
                        .await
                        .ok()
                        .flatten()
                    }
                };
                let mut view = View::new(mode, admission);
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

struct View {
    bar: Option<ProgressBar>,
    eta: Eta,
    /// The run submits as initial syncs end (`--max-initial-syncs`): VMs at the submit step
    /// wait for a slot, and the syncs, not the rate limit, set the pace.
    admitting: bool,
    /// The run finds the cap itself.
    auto: bool,
}

impl View {
    fn new(mode: ProgressMode, admission: InitialSyncs) -> View {
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
            admitting: admission.caps(),
            auto: admission == InitialSyncs::Auto,
        }
    }

    fn show(&mut self, r: &Reading, budget: Option<&Budget>) {
        let stages = Stages::of(&r.status);
        let status = budget.map(Budget::status);
        self.eta.add(Tick::now(
            stages,
            status.as_ref(),
            self.admitting,
            r.task,
            r.newest_sent,
        ));
        let eta = match self.eta.estimate() {
            Estimate::Left(left) => format!("eta {}", minutes(left)),
            Estimate::Measuring => "eta: measuring".into(),
            Estimate::Overdue { in_flight } => format!(
                "eta: overdue, {in_flight} VMs in flight past the task time measured so far"
            ),
        };
        let link = r
            .link
            .as_ref()
            .map(|l| super::link::progress_words(l, self.auto));
        let mut notes = vec![describe(&stages, self.admitting)];
        notes.extend(link);
        notes.push(ended(&r.status));
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

/// `waiting 120 · resolving 4 · submitting 20 · awaiting task 36 · verifying 0`; under
/// admission a VM at the submit step is ready and waits for an initial sync to end.
fn describe(stages: &Stages, admitting: bool) -> String {
    let submitting = if admitting {
        "ready, waiting for a sync slot"
    } else {
        "submitting"
    };
    [
        ("waiting", stages.waiting),
        ("resolving", stages.resolving),
        (submitting, stages.submitting),
        ("awaiting task", stages.awaiting_task),
        ("verifying", stages.verifying),
    ]
    .iter()
    .filter(|(_, n)| *n > 0)
    .map(|(what, n)| format!("{what} {n}"))
    .collect::<Vec<_>>()
    .join(" · ")
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
            describe(&stages, false),
            "waiting 3 · submitting 40 · awaiting task 10"
        );
        assert_eq!(
            describe(&stages, true),
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
