//! Progress of a running batch, read from the queue on a second connection (WAL lets it read
//! while the runner writes): a bar with counts, rate and ETA on a terminal, or one plain line
//! every few seconds when the output goes to a file or a pipe. When requests wait for the
//! appliance's rate limit, or the appliance refuses them, the line says so: a run that seems to
//! stand still is usually waiting for the next rate window.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::ValueEnum;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::queue::{BatchId, JobState, Queue};
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

impl Progress {
    pub fn start(
        db: PathBuf,
        batch: BatchId,
        budget: Option<std::sync::Arc<Budget>>,
        mode: ProgressMode,
        quiet: bool,
    ) -> Progress {
        let (stop, mut stopped) = tokio::sync::watch::channel(false);
        let mode = mode.resolve(quiet);
        let task = (mode != ProgressMode::None).then(|| {
            tokio::spawn(async move {
                let Ok(queue) = Queue::open(&db) else { return };
                let queue = std::sync::Arc::new(std::sync::Mutex::new(queue));
                // Off the async threads: a busy queue file must not hold up the requests.
                let counts = move || {
                    let queue = queue.clone();
                    async move {
                        tokio::task::spawn_blocking(move || {
                            let q = queue.lock().unwrap_or_else(|p| p.into_inner());
                            q.counts(batch).ok()
                        })
                        .await
                        .ok()
                        .flatten()
                    }
                };
                let mut view = View::new(mode);
                let every = if mode == ProgressMode::Bar {
                    Duration::from_millis(200)
                } else {
                    Duration::from_secs(5)
                };
                loop {
                    if let Some(c) = counts().await {
                        view.show(&c, budget.as_deref().and_then(waiting_for_budget));
                    }
                    tokio::select! {
                        _ = tokio::time::sleep(every) => {}
                        _ = stopped.changed() => break,
                    }
                }
                if let Some(c) = counts().await {
                    view.finish(&c);
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
    started: Instant,
    first_done: Option<u64>,
}

impl View {
    fn new(mode: ProgressMode) -> View {
        let bar = (mode == ProgressMode::Bar).then(|| {
            let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
            let style = ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} VMs  {msg}  eta {eta}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar());
            bar.set_style(style);
            bar
        });
        View {
            bar,
            started: Instant::now(),
            first_done: None,
        }
    }

    fn show(&mut self, counts: &std::collections::BTreeMap<JobState, u64>, budget: Option<String>) {
        let total: u64 = counts.values().sum();
        let done: u64 = counts
            .iter()
            .filter(|(s, _)| s.is_terminal())
            .map(|(_, n)| n)
            .sum();
        let mut summary = summary(counts);
        if let Some(b) = budget {
            summary = format!("{summary}; {b}");
        }
        match &self.bar {
            Some(bar) => {
                bar.set_length(total);
                bar.set_position(done);
                bar.set_message(summary);
            }
            None => {
                let first = *self.first_done.get_or_insert(done);
                let minutes = self.started.elapsed().as_secs_f64() / 60.0;
                let rate = if minutes > 0.0 {
                    (done - first) as f64 / minutes
                } else {
                    0.0
                };
                let eta = if rate > 0.0 {
                    format!("{:.0} min", (total - done) as f64 / rate)
                } else {
                    "unknown".into()
                };
                eprintln!("{done}/{total} VMs done ({summary}), {rate:.1} VMs/min, eta {eta}");
            }
        }
    }

    fn finish(&mut self, counts: &std::collections::BTreeMap<JobState, u64>) {
        self.show(counts, None);
        if let Some(bar) = &self.bar {
            bar.finish();
        }
    }
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

/// `succeeded 10, failed 1, running 20`: the states that have jobs.
fn summary(counts: &std::collections::BTreeMap<JobState, u64>) -> String {
    counts
        .iter()
        .filter(|(_, n)| **n > 0)
        .map(|(s, n)| format!("{s} {n}"))
        .collect::<Vec<_>>()
        .join(", ")
}
