//! Bounds a run's calls and refusals are held to, computed from the design, never tuned to what
//! a run happened to need: DESIGN.md's lower bound of API calls ("Speed: calls are the
//! currency"), which a test multiplies by a factor it states and explains, and the refusals the
//! request budget's design allows in one window (`vr/budget.rs`). Tests count both in the
//! simulator's record.

use std::time::Duration;

use vrbulk::sim::Received;

/// `C_min = 7 + ⌈N/50⌉ + ⌈N/20⌉ + polls` for `n` VMs: discovery (7 calls), lookups of 50 VMs
/// a call, configures of 20 VMs a call, and `polls` calls of task polls.
pub fn call_bound(n: usize, polls: usize) -> usize {
    7 + n.div_ceil(50) + n.div_ceil(20) + polls
}

/// Probes a closed budget sends in one window while it learns where the appliance's window
/// ends: one every `window / 12` (`vr/budget.rs`).
const PROBES_PER_WINDOW: usize = 12;

/// The most 429s the budget's design lets a client meet in one window: the requests already in
/// flight when the quota runs out (at most `in_flight`), then one window of probes. Once it
/// knows the boundary a refusal waits for it and sends no probes, so later windows meet fewer.
pub fn refusals_per_window(in_flight: usize) -> usize {
    in_flight + PROBES_PER_WINDOW
}

/// The most 429 answers in the journal within any `window`-long interval, wherever it starts.
pub fn peak_refusals(journal: &[Received], window: Duration) -> usize {
    let mut at: Vec<i64> = journal
        .iter()
        .filter(|r| r.status == 429)
        .map(|r| r.at_ms)
        .collect();
    at.sort_unstable();
    let span = i64::try_from(window.as_millis()).unwrap();
    let mut first = 0;
    let mut peak = 0;
    for (last, t) in at.iter().enumerate() {
        while *t - at[first] >= span {
            first += 1;
        }
        peak = peak.max(last + 1 - first);
    }
    peak
}
