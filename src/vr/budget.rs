//! The appliance's request budget: at most `quota` requests in any `window`, whatever the
//! alignment of the appliance's own windows, shared by every client of this process that talks
//! to the same appliance.
//!
//! VR and SRM 8.8+ put every DR REST API request through a limiter of three tiers (client IP
//! 100, service 1000, session 50 requests), each a fixed window of 60 s, and answer 429 at once
//! over any quota (DESIGN.md, "The appliance's limits"). A sliding log of send times that never
//! holds more than `quota` entries younger than `window + margin` keeps every fixed window of the
//! server within its quota wherever that window starts; the margin covers the time a request
//! takes to reach the server. Requests wait their turn in order, so a burst of submits is not
//! overtaken by later polls.
//!
//! A 429 means that someone else shares a quota (another process on the same host, other
//! clients of the service) or that the appliance's admin lowered it. It is back-pressure, not a
//! failure: the budget closes until the server's window is over, lowers its own quota to what
//! the server admitted in the last window, and earns back a tenth of it after every two quiet
//! windows. The appliance does not say when its window ends (no `Retry-After`, unless a proxy
//! adds one, which is obeyed), so the budget learns it: after a refusal one probe at a time goes
//! out every `window / 12`; the first one admitted marks a window boundary, and later refusals
//! wait for the next boundary instead of probing. Probes are few per window, so they never come
//! near the count that earns a client a temporary ban.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use reqwest::Url;
use serde::Serialize;
use tokio::sync::Notify;
use tokio::time::Instant;

/// The appliance's rate limiter, as its admin configured it (`dr-rest-api.properties`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Requests per window for one session (`x-dr-session`).
    pub per_session: u32,
    /// Requests per window from one client IP address.
    pub per_ip: u32,
    pub window: Duration,
}

impl Limits {
    /// The defaults of VR 8.8+.
    pub const APPLIANCE: Limits = Limits {
        per_session: 50,
        per_ip: 100,
        window: Duration::from_secs(60),
    };

    /// What one process may send: everything it sends shares its IP's quota, and its main
    /// session's quota is the smaller.
    pub fn quota(&self) -> u32 {
        self.per_session.min(self.per_ip).max(1)
    }

    /// Requests per second at full use, for estimates.
    pub fn per_second(&self) -> f64 {
        f64::from(self.quota()) / self.window.as_secs_f64().max(0.001)
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits::APPLIANCE
    }
}

/// What the budget did so far; cumulative.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct BudgetStats {
    /// Requests sent.
    pub sent: u64,
    /// 429 answers.
    pub refusals: u64,
    /// Requests that had to wait for a free slot of the budget (or for a refusal's window).
    pub paced: u64,
    /// Milliseconds requests spent waiting for a slot, summed over requests.
    pub paced_ms: u64,
    /// Milliseconds the budget stayed closed after refusals.
    pub throttled_ms: u64,
}

impl BudgetStats {
    /// What happened between `earlier` (a snapshot of the same budget) and this.
    pub fn since(&self, earlier: &BudgetStats) -> BudgetStats {
        BudgetStats {
            sent: self.sent.saturating_sub(earlier.sent),
            refusals: self.refusals.saturating_sub(earlier.refusals),
            paced: self.paced.saturating_sub(earlier.paced),
            paced_ms: self.paced_ms.saturating_sub(earlier.paced_ms),
            throttled_ms: self.throttled_ms.saturating_sub(earlier.throttled_ms),
        }
    }
}

/// Where the budget stands now, for a progress line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BudgetStatus {
    /// The quota in use now (lower than the configured one after refusals).
    pub quota: u32,
    pub configured: u32,
    pub window: Duration,
    /// Requests waiting for a slot.
    pub waiting: usize,
    /// When the next slot frees, if none is free now.
    pub next_slot: Option<Instant>,
    /// The appliance refused a request and the budget is closed until this instant.
    pub throttled_until: Option<Instant>,
    pub stats: BudgetStats,
}

/// Proof that a request was counted; hand it back with the answer.
#[derive(Debug, Clone, Copy)]
pub struct Ticket {
    sent: Instant,
    /// Its place in the order of sending, which is the order the server sees.
    seq: u64,
    probe: bool,
}

/// What became of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The server processed it (any status but 429).
    Admitted,
    /// 429, with the server's `Retry-After` if it sent one.
    Refused { retry_after: Option<Duration> },
    /// No answer (connection lost, timeout): nothing learnt.
    Unknown,
}

pub struct Budget {
    limits: Limits,
    /// Waiting requests line up here, first come first served.
    turn: tokio::sync::Mutex<()>,
    waiting: std::sync::atomic::AtomicUsize,
    state: Mutex<State>,
    probe_settled: Notify,
    /// The other processes of this host that talk to the same appliance, through the queue's
    /// database: every request also takes a slot of the per-IP quota there.
    ledger: Mutex<Option<Arc<dyn Ledger>>>,
}

/// A record of requests shared between processes (the queue's database): the per-IP quota is
/// one for every process of the host, where each process's own budget sees only its own sends.
pub trait Ledger: Send + Sync {
    /// Records one request sent now when fewer than `quota` were sent in the last `span`;
    /// otherwise how long until the oldest of them leaves it. An error (the file is locked
    /// too long, unreadable) lets the request go: the appliance's 429 still guards the quota.
    fn claim(&self, quota: u32, span: Duration) -> Result<Option<Duration>, String>;
}

impl std::fmt::Debug for Budget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Budget")
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

struct State {
    quota: u32,
    /// Send times (and places in the order of sending) younger than `window + margin`, oldest
    /// first.
    sent: VecDeque<(Instant, u64)>,
    /// Closed by a refusal until then.
    closed_until: Option<Instant>,
    /// When the current refusal episode began: refusals of requests sent before it belong to it.
    closed_at: Option<Instant>,
    /// An instant at which one of the server's windows began.
    boundary: Option<Instant>,
    /// A refusal is not yet followed by an admitted request: one probe at a time.
    probing: bool,
    probe_in_flight: bool,
    /// Since when no request was refused, for earning the quota back.
    calm_since: Instant,
    /// The place in the order of sending of the next request.
    next_seq: u64,
    stats: BudgetStats,
}

/// What `acquire` must do next.
enum Ready {
    Now,
    At(Instant),
    AfterProbe,
}

/// A wait for a slot at least this long counts as pacing in the stats.
const PACED: Duration = Duration::from_millis(50);

/// Quiet windows after which the quota grows by a tenth of the configured one again.
const RECOVERY_WINDOWS: u32 = 2;

impl Budget {
    pub fn new(limits: Limits) -> Budget {
        Budget {
            limits,
            turn: tokio::sync::Mutex::new(()),
            waiting: std::sync::atomic::AtomicUsize::new(0),
            state: Mutex::new(State {
                quota: limits.quota(),
                sent: VecDeque::new(),
                closed_until: None,
                closed_at: None,
                boundary: None,
                probing: false,
                probe_in_flight: false,
                calm_since: Instant::now(),
                next_seq: 0,
                stats: BudgetStats::default(),
            }),
            probe_settled: Notify::new(),
            ledger: Mutex::new(None),
        }
    }

    /// From now on, every request also takes a slot of the per-IP quota in `ledger`, shared
    /// with the other processes of this host that use it.
    pub fn share_through(&self, ledger: Arc<dyn Ledger>) {
        *lock(&self.ledger) = Some(ledger);
    }

    /// The shared per-IP slot for a request about to go: `None` when it may go now.
    async fn shared_wait(&self) -> Option<Duration> {
        let ledger = lock(&self.ledger).clone()?;
        let quota = self.limits.per_ip.max(1);
        let span = self.limits.window + self.margin();
        let claimed = tokio::task::spawn_blocking(move || ledger.claim(quota, span)).await;
        match claimed {
            Ok(Ok(wait)) => wait,
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "the shared request budget could not be read: sending on this process's own");
                None
            }
            Err(_) => None,
        }
    }

    /// The budget of the appliance at `url` for this process, made on first use. Every client
    /// of the same appliance shares it, so that a plan and a run in one process (the demo)
    /// together stay within the quota. Other limits than the ones it was made with start a new
    /// budget.
    pub fn shared(url: &Url, limits: Limits) -> Arc<Budget> {
        static BUDGETS: OnceLock<Mutex<HashMap<String, Arc<Budget>>>> = OnceLock::new();
        let key = url.origin().ascii_serialization();
        let mut all = lock(BUDGETS.get_or_init(Default::default));
        match all.get(&key) {
            Some(b) if b.limits == limits => b.clone(),
            _ => {
                let b = Arc::new(Budget::new(limits));
                all.insert(key, b.clone());
                b
            }
        }
    }

    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Time added to the window for the way to the server.
    fn margin(&self) -> Duration {
        self.limits.window / 50
    }

    /// Waits for a slot and counts the request as sent now.
    pub async fn acquire(&self) -> Ticket {
        use std::sync::atomic::Ordering::Relaxed;
        self.waiting.fetch_add(1, Relaxed);
        let asked = Instant::now();
        let _turn = self.turn.lock().await;
        let ticket = loop {
            // Another process of this host may hold the shared per-IP slots: wait for one
            // first, then for this process's own budget (which this loop re-checks anyway).
            if lock(&self.ledger).is_some()
                && matches!(
                    self.ready(&mut lock(&self.state), Instant::now()),
                    Ready::Now
                )
            {
                if let Some(wait) = self.shared_wait().await {
                    tokio::time::sleep(wait).await;
                    continue;
                }
            }
            let ready = {
                let mut s = lock(&self.state);
                let now = Instant::now();
                match self.ready(&mut s, now) {
                    Ready::Now => {
                        let seq = s.next_seq;
                        s.next_seq += 1;
                        s.sent.push_back((now, seq));
                        s.stats.sent += 1;
                        let probe = s.probing;
                        s.probe_in_flight |= probe;
                        // Waiting behind the request ahead (the turn) is waiting for the budget
                        // too; a few milliseconds of taking turns is not.
                        let waited = now.duration_since(asked);
                        if waited >= PACED {
                            s.stats.paced += 1;
                            s.stats.paced_ms += waited.as_millis() as u64;
                        }
                        break Ticket {
                            sent: now,
                            seq,
                            probe,
                        };
                    }
                    other => other,
                }
            };
            match ready {
                Ready::At(t) => tokio::time::sleep_until(t).await,
                // The probe's answer decides; a lost answer must not hold everyone forever.
                Ready::AfterProbe => {
                    let _ = tokio::time::timeout(self.limits.window, self.probe_settled.notified())
                        .await;
                    lock(&self.state).probe_in_flight = false;
                }
                Ready::Now => {}
            }
        };
        self.waiting.fetch_sub(1, Relaxed);
        ticket
    }

    fn ready(&self, s: &mut State, now: Instant) -> Ready {
        let span = self.limits.window + self.margin();
        while s
            .sent
            .front()
            .is_some_and(|(t, _)| now.duration_since(*t) >= span)
        {
            s.sent.pop_front();
        }
        if let Some(until) = s.closed_until {
            if now < until {
                return Ready::At(until);
            }
            s.closed_until = None;
        }
        if s.probe_in_flight {
            return Ready::AfterProbe;
        }
        let quota = s.quota as usize;
        if s.sent.len() >= quota {
            // The oldest of the last `quota` sends must leave the window first.
            let (oldest, _) = s.sent[s.sent.len() - quota];
            return Ready::At(oldest + span);
        }
        Ready::Now
    }

    /// Learns from the answer to a request.
    pub fn settle(&self, ticket: Ticket, outcome: Outcome) {
        let now = Instant::now();
        let mut s = lock(&self.state);
        if ticket.probe {
            s.probe_in_flight = false;
            self.probe_settled.notify_waiters();
        }
        match outcome {
            Outcome::Unknown => {}
            Outcome::Admitted => {
                if s.probing && s.closed_at.is_none_or(|c| ticket.sent >= c) {
                    // The server's window turned between the refusal and this request; taking
                    // the later end keeps every predicted boundary at or after the real one.
                    s.boundary = Some(ticket.sent);
                    s.probing = false;
                }
                let calm = self.limits.window * RECOVERY_WINDOWS;
                let configured = self.limits.quota();
                if s.quota < configured && now.duration_since(s.calm_since) >= calm {
                    s.quota = (s.quota + (configured / 10).max(1)).min(configured);
                    s.calm_since = now;
                }
            }
            Outcome::Refused { retry_after } => {
                s.stats.refusals += 1;
                s.calm_since = now;
                let window = self.limits.window;
                if ticket.probe {
                    // Still inside the server's window: look again a little later.
                    let until = retry_after.map_or(now + window / 12, |wait| now + wait);
                    s.stats.throttled_ms += until.duration_since(now).as_millis() as u64;
                    s.closed_until = Some(until);
                    return;
                }
                if s.closed_at.is_some_and(|c| ticket.sent <= c) {
                    // Sent before this episode began: the budget already reacted.
                    return;
                }
                // The server admitted at most what we sent in its window: ask for no more
                // (but a tenth of the configured quota at least, when even the first requests
                // were refused: a ban, or someone else's burst on the same address).
                let recent = s
                    .sent
                    .iter()
                    .filter(|(t, seq)| *seq < ticket.seq && ticket.sent.duration_since(*t) < window)
                    .count() as u32;
                let floor = (self.limits.quota() / 10).max(1);
                s.quota = recent.max(floor).min(s.quota.saturating_sub(1)).max(1);
                let until = match (retry_after, s.boundary) {
                    (Some(wait), _) => now + wait,
                    (None, Some(b)) => next_boundary(b, now, window) + self.margin(),
                    (None, None) => {
                        s.probing = true;
                        now + window / 12
                    }
                };
                s.stats.throttled_ms += until.duration_since(now).as_millis() as u64;
                s.closed_at = Some(now);
                s.closed_until = Some(until);
                tracing::warn!(
                    wait_s = until.duration_since(now).as_secs_f64(),
                    quota = s.quota,
                    "the appliance refused a request (HTTP 429): waiting for its next rate \
                     window, then sending at most {} requests per {} s",
                    s.quota,
                    window.as_secs_f64()
                );
            }
        }
    }

    /// A request that was not sent after all: its slot goes back.
    pub fn unsend(&self, ticket: Ticket) {
        let mut s = lock(&self.state);
        if let Some(i) = s.sent.iter().position(|(_, seq)| *seq == ticket.seq) {
            s.sent.remove(i);
        }
        s.stats.sent = s.stats.sent.saturating_sub(1);
        if ticket.probe {
            s.probe_in_flight = false;
            self.probe_settled.notify_waiters();
        }
    }

    pub fn status(&self) -> BudgetStatus {
        let now = Instant::now();
        let mut s = lock(&self.state);
        let next_slot = match self.ready(&mut s, now) {
            Ready::Now => None,
            Ready::At(t) => Some(t),
            Ready::AfterProbe => Some(now),
        };
        BudgetStatus {
            quota: s.quota,
            configured: self.limits.quota(),
            window: self.limits.window,
            waiting: self.waiting.load(std::sync::atomic::Ordering::Relaxed),
            next_slot,
            throttled_until: s.closed_until.filter(|t| *t > now),
            stats: s.stats,
        }
    }

    /// Requests that could go now without waiting.
    pub fn free_now(&self) -> u32 {
        let now = Instant::now();
        let mut s = lock(&self.state);
        match self.ready(&mut s, now) {
            Ready::Now => s.quota.saturating_sub(s.sent.len() as u32),
            _ => 0,
        }
    }
}

/// The first boundary of a server window after `now`, windows beginning at `b + k * window`.
fn next_boundary(b: Instant, now: Instant, window: Duration) -> Instant {
    if now < b {
        return b;
    }
    let w = window.as_nanos().max(1);
    let k = now.duration_since(b).as_nanos() / w + 1;
    b + Duration::from_nanos((k * w).min(u128::from(u64::MAX)) as u64)
}

// A poisoned lock only means a panic elsewhere mid-update of plain counters; they stay usable.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: Duration = Duration::from_secs(60);

    fn limits(quota: u32) -> Limits {
        Limits {
            per_session: quota,
            per_ip: quota * 2,
            window: MIN,
        }
    }

    /// Send times, relative to the start, of `n` requests through `budget`, each admitted.
    async fn send(budget: &Budget, n: usize) -> Vec<Duration> {
        let start = Instant::now();
        let mut at = Vec::new();
        for _ in 0..n {
            let t = budget.acquire().await;
            at.push(t.sent - start);
            budget.settle(t, Outcome::Admitted);
        }
        at
    }

    /// The most requests of `times` inside any interval of length `window`.
    fn busiest(times: &[Duration], window: Duration) -> usize {
        times
            .iter()
            .map(|t| {
                times
                    .iter()
                    .filter(|u| **u >= *t && **u - *t < window)
                    .count()
            })
            .max()
            .unwrap_or(0)
    }

    #[tokio::test(start_paused = true)]
    async fn no_interval_of_a_window_ever_holds_more_than_the_quota() {
        let budget = Budget::new(limits(50));
        let times = send(&budget, 160).await;
        assert_eq!(busiest(&times, MIN), 50);
        // The first 50 go at once, then one window (plus its margin) later the next 50.
        assert!(times[49] < Duration::from_millis(1));
        let margin = MIN / 50;
        assert_eq!(times[50], MIN + margin);
        assert_eq!(times[100], 2 * (MIN + margin));
    }

    #[tokio::test(start_paused = true)]
    async fn the_smaller_of_the_session_and_ip_quotas_applies() {
        let l = Limits {
            per_session: 50,
            per_ip: 30,
            window: MIN,
        };
        assert_eq!(l.quota(), 30);
        let budget = Budget::new(l);
        assert_eq!(busiest(&send(&budget, 70).await, MIN), 30);
    }

    #[tokio::test(start_paused = true)]
    async fn a_refusal_without_retry_after_probes_then_learns_the_windows_boundary() {
        let budget = Budget::new(limits(50));
        // The server's own quota is 20 and its windows start at 7 s; we do not know either.
        let start = Instant::now();
        let server_window =
            |t: Instant| (t.duration_since(start) + MIN - Duration::from_secs(7)).as_secs() / 60;
        let mut admitted: HashMap<u64, u32> = HashMap::new();
        let mut refusals = 0;
        let mut done = 0;
        while done < 100 {
            let t = budget.acquire().await;
            let w = server_window(t.sent);
            let n = admitted.entry(w).or_default();
            if *n < 20 {
                *n += 1;
                done += 1;
                budget.settle(t, Outcome::Admitted);
            } else {
                refusals += 1;
                budget.settle(t, Outcome::Refused { retry_after: None });
            }
        }
        // One refusal to find the quota, a few probes to find the boundary; after that none.
        assert!(refusals <= 12, "{refusals} refusals");
        let status = budget.status();
        assert!(status.quota < status.configured, "{status:?}");
        assert_eq!(status.stats.refusals, refusals);
        // 100 requests at 20 per window: five windows, the first one partial.
        let elapsed = Instant::now() - start;
        assert!(elapsed < 6 * MIN, "{elapsed:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn retry_after_is_obeyed_when_the_server_sends_it() {
        let budget = Budget::new(limits(50));
        let t = budget.acquire().await;
        budget.settle(
            t,
            Outcome::Refused {
                retry_after: Some(Duration::from_secs(9)),
            },
        );
        let before = Instant::now();
        let t = budget.acquire().await;
        assert_eq!(t.sent - before, Duration::from_secs(9));
        assert!(!t.probe, "a Retry-After needs no probing");
    }

    #[tokio::test(start_paused = true)]
    async fn refusals_of_requests_already_in_flight_count_once() {
        let budget = Budget::new(limits(50));
        let tickets: Vec<Ticket> =
            futures_util::future::join_all((0..8).map(|_| budget.acquire())).await;
        for t in tickets {
            budget.settle(t, Outcome::Refused { retry_after: None });
        }
        let status = budget.status();
        assert_eq!(status.stats.refusals, 8);
        // Lowered once (to its floor: nothing had been admitted before), not eight times.
        assert_eq!(status.quota, 5);
        assert!(status.throttled_until.is_some());
    }

    #[tokio::test(start_paused = true)]
    async fn the_quota_is_earned_back_after_quiet_windows() {
        let budget = Budget::new(limits(10));
        send(&budget, 5).await;
        let t = budget.acquire().await;
        budget.settle(
            t,
            Outcome::Refused {
                retry_after: Some(Duration::from_secs(1)),
            },
        );
        assert_eq!(budget.status().quota, 5);
        tokio::time::sleep(MIN * RECOVERY_WINDOWS).await;
        send(&budget, 1).await;
        assert_eq!(budget.status().quota, 6);
    }

    #[test]
    fn the_next_boundary_is_strictly_after_now() {
        let b = Instant::now();
        assert_eq!(next_boundary(b, b, MIN), b + MIN);
        assert_eq!(next_boundary(b, b + MIN, MIN), b + 2 * MIN);
        assert_eq!(
            next_boundary(b, b + Duration::from_secs(61), MIN),
            b + 2 * MIN
        );
    }
}
