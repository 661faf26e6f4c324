//! Admitting a wave at the pace the replication link can carry (`run --max-initial-syncs N`):
//! new VMs are submitted only while fewer than N replications of the pairing are in their initial
//! sync, counted from what the appliance reports (its whole replication list, so other batches
//! and other tools count too) plus this run's own submits that the list does not show yet.
//! Configuring hundreds of VMs at once makes every initial sync crawl (DESIGN.md, "Operations and
//! the life of a replication"); a steady pace protects the first VMs sooner and the wave no later.
//!
//! The same list, read once a round, also tells where this batch's configured VMs stand: it
//! records their protection, as `watch` does, and serves the round's verify. Only a configure
//! batch admits: no other kind of work starts an initial sync.

mod tune;

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use tokio::time::Instant;

use self::tune::{Sample, Tuner};
use super::held::HeldJob;
use super::{now_ms, InitialSyncs, RunError, RunOptions, Runner, SubmitOrder};
use crate::queue::{Job, JobId, JobState, LinkSample, ReplicationSeen, Step};
use crate::vr::error::error_chain;
use crate::vr::model::{ConfigureReplicationSpec, ReplicationInfo};
use crate::workflow::forecast::LinkRate;
use crate::workflow::protection::{in_initial_sync, replicated_bytes, seen};
use crate::workflow::spec::spec_bytes;
use crate::workflow::Discovery;

/// The longest a wave waits between two looks at its syncs, however long they have left.
const LONGEST_LOOK: Duration = Duration::from_secs(600);

/// How much longer than what is left of the wave at the link's best a VM's sync must be to go
/// before the small ones. That estimate is short: the wave's last syncs never fill the link. A
/// VM that ends just within it goes early for nothing: it holds a slot the small ones wanted and
/// still ends before the wave. Measured on the admission bench's link 18 (39 syncs fill it, its
/// largest VM takes 22 h of a 24 h wave), before the last round's order was forecast:
/// 1.10-1.11x the makespan bound at 1.05, 1.11-1.16x at 1, 1.14-1.15x at 1.1, 1.15-1.20x at the
/// 0.9 used before, which also cost the mean most.
const TAIL_MARGIN: f64 = 1.05;

/// A rate is measured over a span at least this many times what its ends are uncertain by (the
/// halves of the two calls that listed them): known within a tenth. Over a shorter span, calls
/// slowed by a busy appliance (or machine) make syncs at their pace read as sharing the link.
const SURE: u32 = 10;

/// A pairing's replications as the appliance listed them in one round.
#[derive(Debug, Clone)]
struct Census {
    taken: Instant,
    /// Half the call that listed it: when within the call the list was made is known no
    /// better.
    spread: Duration,
    /// VM ids whose replication is configuring or in its initial sync.
    in_sync: HashSet<String>,
    /// Of those, the syncs that report their progress: bytes copied, of bytes to copy.
    copying: HashMap<String, (u64, u64)>,
    by_vm: HashMap<String, ReplicationInfo>,
    /// Whether the cap held VMs back at the last admission since the census was taken: a full
    /// cap, VMs waiting. Kept on the baseline, which the next measure starts from.
    full: bool,
}

impl Census {
    /// The census of `replications` as the appliance listed them at `taken`.
    fn of(replications: Vec<ReplicationInfo>, taken: Instant, spread: Duration) -> Census {
        let in_sync: HashSet<String> = replications
            .iter()
            .filter(|r| in_initial_sync(r))
            .filter_map(|r| r.vm_id.clone())
            .collect();
        let copying = replications
            .iter()
            .filter(|r| in_initial_sync(r))
            .filter_map(|r| {
                let p = r.sync_progress.as_ref()?;
                let bytes = |b: Option<i64>| b.and_then(|b| u64::try_from(b).ok());
                Some((
                    r.vm_id.clone()?,
                    (bytes(p.transferred_current)?, bytes(p.transferred_total)?),
                ))
            })
            .collect();
        Census {
            taken,
            spread,
            in_sync,
            copying,
            by_vm: replications
                .into_iter()
                .filter_map(|r| Some((r.vm_id.clone()?, r)))
                .collect(),
            full: false,
        }
    }

    /// Bytes the syncs still have to copy.
    fn bytes_left(&self) -> u64 {
        self.copying
            .values()
            .map(|(c, t)| t.saturating_sub(*c))
            .sum()
    }

    /// Whether a rate from `baseline` to this census is known well enough: the span is [`SURE`]
    /// times what the two calls leave its ends uncertain by.
    fn measurable_after(&self, baseline: &Census) -> bool {
        let uncertain = (self.spread + baseline.spread) * SURE;
        self.taken.saturating_duration_since(baseline.taken) >= uncertain
    }

    /// How long after this census the next is [`Census::measurable_after`] it, if its call
    /// takes as long.
    fn sure_in(&self) -> Duration {
        self.spread * 2 * SURE
    }

    /// What the syncs did between `before` and this census. A sync that ended in between
    /// copied what it had left; one that began copied what it shows.
    fn since(&self, before: &Census) -> Option<Sample> {
        let span = self
            .taken
            .checked_duration_since(before.taken)?
            .as_secs_f64();
        if span <= 0.0 {
            return None;
        }
        let ended = before.in_sync.iter().filter(|vm| self.ended(vm)).count();
        let rates: Vec<f64> = self
            .continuing(before, span)
            .map(|(_, _, rate)| rate)
            .collect();
        // What the continuing syncs copied, what the ended ones had left, what new ones show.
        let mut copied = rates.iter().sum::<f64>() * span;
        for (vm, (then, total)) in &before.copying {
            if !self.copying.contains_key(vm) && self.ended(vm) {
                copied += total.saturating_sub(*then) as f64;
            }
        }
        for (vm, (now, _)) in &self.copying {
            if !before.copying.contains_key(vm) {
                copied += *now as f64;
            }
        }
        let began = self
            .copying
            .keys()
            .filter(|vm| !before.copying.contains_key(*vm))
            .count();
        let stalled = self
            .in_sync
            .intersection(&before.in_sync)
            .filter(|vm| !self.copying.contains_key(*vm) && !before.copying.contains_key(*vm))
            .count();
        Some(Sample {
            span,
            copied,
            rates,
            ended,
            began,
            full: before.full,
            stalled,
        })
    }

    /// Whether `vm`'s replication is listed and out of its initial sync.
    fn ended(&self, vm: &str) -> bool {
        self.by_vm.get(vm).is_some_and(|r| !in_initial_sync(r))
    }

    /// The syncs copying at `before` and at this census, `span` seconds apart: each VM with its
    /// copy as now, and the bytes a second it went.
    fn continuing<'a>(
        &'a self,
        before: &'a Census,
        span: f64,
    ) -> impl Iterator<Item = (&'a String, &'a (u64, u64), f64)> + 'a {
        self.copying.iter().filter_map(move |(vm, copy)| {
            let (then, _) = before.copying.get(vm)?;
            Some((vm, copy, copy.0.saturating_sub(*then) as f64 / span))
        })
    }

    /// When each of the syncs seen at `before` and now should end, at the rate it went;
    /// soonest end first.
    fn ends(&self, before: &Census) -> Vec<End> {
        let Some(span) = self.taken.checked_duration_since(before.taken) else {
            return Vec::new();
        };
        let at = |seconds: f64| Duration::from_secs_f64(seconds.clamp(0.0, 1e6));
        let mut ends: Vec<End> = self
            .continuing(before, span.as_secs_f64())
            .filter(|(_, _, rate)| *rate > 0.0)
            .map(|(vm, (now, total), rate)| End {
                at: self.taken + at(total.saturating_sub(*now) as f64 / rate),
                began: self
                    .taken
                    .checked_sub(at(*now as f64 / rate))
                    .unwrap_or(self.taken),
                vm: vm.clone(),
            })
            .collect();
        ends.sort_by_key(|e| e.at);
        ends
    }
}

/// When a sync should end, at the rate it went.
#[derive(Debug, Clone)]
struct End {
    at: Instant,
    /// When it would have begun at that rate.
    began: Instant,
    vm: String,
}

/// What admission keeps of one pairing: its latest census and, under `auto`, the cap it tunes.
#[derive(Debug, Clone)]
struct Pairing {
    census: Census,
    /// The census the link was last measured at, and is measured from next: a census taken
    /// sooner after it than [`SURE`] times the two calls' uncertainty is counted, not measured.
    baseline: Census,
    tuner: Tuner,
    /// When each sync copying at the census should end, by the last measure, soonest first.
    ends: Vec<End>,
    /// Whether VMs were left waiting for a slot at the last admission.
    waiting: bool,
    /// When to look again to measure: while `auto` still looks for its cap, once the syncs
    /// it just admitted copy; after an interval in which syncs began or ended, whose rates mix
    /// two loads (a sync alone again goes faster than it went shared, and ends sooner than
    /// they say), as soon as a task's lead has passed.
    measure_at: Option<Instant>,
}

/// A configure run's admission: the latest census of each pairing, and the batch's configured
/// VMs whose protection each census records.
#[derive(Debug)]
pub(super) struct Admission {
    pairings: HashMap<String, Pairing>,
    /// The batch's configured VMs (by VM id), with the bytes their initial sync copies.
    configured: HashMap<String, (JobId, Option<i64>)>,
    /// The run the link's samples are recorded under.
    run_id: String,
}

impl Admission {
    /// The admission of a configure batch whose jobs are `jobs`: those that succeeded before
    /// this run are followed too.
    pub fn of(jobs: &[Job], run_id: String) -> Admission {
        let configured = jobs
            .iter()
            .filter(|j| j.state == JobState::Succeeded)
            .filter_map(|j| {
                let bytes = j.checkpoint.disks.as_deref().map(replicated_bytes);
                Some((j.checkpoint.vm_id.clone()?, (j.id, bytes)))
            })
            .collect();
        Admission {
            pairings: HashMap::new(),
            configured,
            run_id,
        }
    }

    /// Whether this run admits at a pace.
    pub fn admits(opts: &RunOptions) -> bool {
        opts.max_initial_syncs.caps()
    }

    /// A held job was configured: its protection is recorded from the next census on.
    pub fn configured(&mut self, a: &HeldJob) {
        if let Some(vm) = &a.checkpoint.vm_id {
            let bytes = a.checkpoint.disks.as_deref().map(replicated_bytes);
            self.configured.insert(vm.clone(), (a.job.id, bytes));
        }
    }

    /// Lists the pairing's replications (all of them: the cap counts what the appliance
    /// reports), records what it says of this batch's configured VMs and, against the census
    /// before, what the link carried (the cap tuned by it under `auto`). `None` when the read
    /// failed (it is tried again next round) or was abandoned.
    pub async fn take_census(
        &mut self,
        run: &mut Runner,
        disc: &Discovery,
    ) -> Result<Option<()>, RunError> {
        let pairing = disc.pairing_id().to_string();
        let asked = Instant::now();
        let Some(listed) = run
            .stop
            .guarded(run.client.replications(&pairing, None))
            .await
        else {
            return Ok(None);
        };
        let census = match listed {
            // The list is the appliance's state about halfway through the call, not when its
            // answer was read: rates over short intervals would jitter by the call's length.
            Ok(reps) => {
                let spread = asked.elapsed() / 2;
                Census::of(reps, asked + spread, spread)
            }
            Err(e) => {
                tracing::warn!(pairing = %pairing, error = %error_chain(&e), "could not count the initial syncs");
                return Ok(None);
            }
        };
        let seen_now: Vec<ReplicationSeen> = self
            .configured
            .iter()
            .filter_map(|(vm, (job, bytes))| Some(seen(*job, census.by_vm.get(vm)?, *bytes)))
            .collect();
        if !seen_now.is_empty() {
            run.db.run(move |q| q.record_protection(&seen_now)).await?;
        }
        let Some(p) = self.pairings.get_mut(&pairing) else {
            // A run that resumes a wave (or a later wave on the same link) starts where the
            // link carried most when last measured, rather than at one sync again.
            let id = pairing.clone();
            let measured = run.db.run(move |q| q.measured_link(&id)).await?;
            let tuner = match measured {
                Some(m) if m.in_sync > 0 => Tuner::starting_at(m.in_sync as usize),
                _ => Tuner::new(),
            };
            let p = Pairing {
                baseline: census.clone(),
                census,
                tuner,
                ends: Vec::new(),
                waiting: false,
                measure_at: None,
            };
            self.pairings.insert(pairing, p);
            return Ok(Some(()));
        };
        if !census.measurable_after(&p.baseline) {
            // Counted (the cap, the verify), not measured: too soon after the last measure.
            p.ends.retain(|e| census.copying.contains_key(&e.vm));
            p.census = census;
            return Ok(Some(()));
        }
        let sample = census.since(&p.baseline);
        p.ends = census.ends(&p.baseline);
        // The next measure is wanted a task's lead on, or once it can be sure.
        let measure_in = run.pacer.lead().max(census.sure_in());
        let before = p.tuner.cap();
        if let Some(sample) = sample {
            // Under a fixed cap the tuner only measures (a VM's pace, for the record).
            let tuned = p.tuner.learn(&sample);
            let auto = run.opts.max_initial_syncs == InitialSyncs::Auto;
            let mixed = sample.ended > 0 || sample.began > 0;
            p.measure_at =
                (mixed || auto && (tuned || p.tuner.growing())).then(|| census.taken + measure_in);
            if tuned && auto {
                tracing::info!(
                    pairing = %pairing,
                    from = before,
                    to = p.tuner.cap(),
                    mbps = format!("{:.0}", mbps(sample.total())),
                    "auto: initial syncs at once"
                );
            }
            // Syncs too short to be seen copying tell the tuner something, not the record.
            if sample.copied > 0.0 {
                let record = LinkSample {
                    run_id: self.run_id.clone(),
                    pairing_id: pairing.clone(),
                    at: now_ms(),
                    span_ms: (sample.span * 1000.0) as i64,
                    in_sync: u32::try_from(census.in_sync.len()).unwrap_or(u32::MAX),
                    cap: cap_of(&run.opts, &p.tuner).and_then(|c| u32::try_from(c).ok()),
                    mbps: mbps(sample.total()),
                    pace_mbps: p.tuner.pace().map_or(0.0, mbps),
                    bytes_left: i64::try_from(census.bytes_left()).unwrap_or(i64::MAX),
                };
                run.db.run(move |q| q.record_link_sample(&record)).await?;
            }
        }
        let first_end = p.ends.first().map(|e| e.at - census.taken);
        tracing::debug!(
            pairing = %pairing,
            in_sync = census.in_sync.len(),
            copying = census.copying.len(),
            cap = p.tuner.cap(),
            first_end = ?first_end,
            "admission: census"
        );
        p.baseline = census.clone();
        p.census = census;
        Ok(Some(()))
    }

    /// Of `ready`, the jobs to submit now on the pairing, in the run's order; the others wait.
    /// The pairing's first census is taken here.
    pub async fn admit(
        &mut self,
        run: &mut Runner,
        disc: &Discovery,
        mut ready: Vec<(JobId, ConfigureReplicationSpec)>,
    ) -> Result<Vec<(JobId, ConfigureReplicationSpec)>, RunError> {
        if !Admission::admits(&run.opts) {
            return Ok(ready);
        }
        if !self.pairings.contains_key(disc.pairing_id()) {
            self.take_census(run, disc).await?;
        }
        let Some(p) = self.pairings.get_mut(disc.pairing_id()) else {
            return Ok(Vec::new());
        };
        let cap = cap_of(&run.opts, &p.tuner).unwrap_or(usize::MAX);
        // This run's submits that the list may not show yet count as syncing too.
        let mut in_sync: HashSet<&str> = p.census.in_sync.iter().map(String::as_str).collect();
        for a in run.held.values().filter(|a| is_in_flight(a, &p.census)) {
            if let Some(vm) = a.checkpoint.vm_id.as_deref() {
                in_sync.insert(vm);
            }
        }
        // Under `auto`, a sync about to end gives its slot early: its successor's configure
        // task runs while it copies its last bytes, so that the link does not idle in between.
        // Not a sync shorter than that lead: its successor would copy beside it, not after it.
        // A cap the operator pinned is never exceeded, even for that while.
        let lead = run.pacer.lead();
        let now = Instant::now();
        let auto = run.opts.max_initial_syncs == InitialSyncs::Auto;
        let ending = p
            .ends
            .iter()
            .take_while(|e| auto && e.at <= now + lead)
            .filter(|e| e.at.saturating_duration_since(e.began) > 2 * lead)
            .count();
        let slots = (cap + ending).saturating_sub(in_sync.len());
        let mut last_round_largest_first = false;
        if run.opts.order == SubmitOrder::SmallestFirst {
            ready.sort_by_key(|(id, spec)| (spec_bytes(spec), *id));
            if let Some(rate) = p.tuner.rate() {
                let bytes = |(_, spec): &(JobId, ConfigureReplicationSpec)| spec_bytes(spec);
                // In the last round each waiting VM starts as one of the syncs under way ends:
                // their order decides when the wave ends, and hardly its mean.
                if ready.len() <= cap {
                    let left = left_per_sync(&in_sync, &p.census, &self.configured, run);
                    let waiting: Vec<f64> = ready.iter().map(|r| bytes(r) as f64).collect();
                    last_round_largest_first = wave_end(&left, &waiting, cap, rate, true)
                        < wave_end(&left, &waiting, cap, rate, false);
                }
                if last_round_largest_first {
                    ready.reverse();
                } else {
                    longest_first(&mut ready, bytes, p.census.bytes_left(), rate, slots);
                }
            }
        }
        tracing::debug!(
            cap,
            ending,
            in_sync = in_sync.len(),
            slots,
            ready = ready.len(),
            last_round_largest_first,
            "admission: admit"
        );
        // The cap holds VMs back from the baseline to the next measure: what the link carries
        // over that interval is what this many syncs carry.
        p.waiting = ready.len() > slots;
        p.baseline.full = p.waiting;
        ready.truncate(slots);
        Ok(ready)
    }

    /// When admission wants to look at the syncs again, on a pairing whose VMs wait for a
    /// slot: a task's lead before the next sync should end (at its end when that lead has
    /// begun: its slot was lent early, and an end that comes later than lent must be seen),
    /// or when it wants to measure ([`Pairing::measure_at`]); never later than
    /// [`LONGEST_LOOK`]. `None` when nothing waits or nothing is measured yet.
    pub fn next_look(&self, lead: Duration) -> Option<Instant> {
        let now = Instant::now();
        self.pairings
            .values()
            .filter(|p| p.waiting)
            .filter_map(|p| {
                let end = p
                    .ends
                    .iter()
                    .map(|e| if e.at - lead > now { e.at - lead } else { e.at })
                    .filter(|t| *t > now)
                    .min();
                let look = [end, p.measure_at].into_iter().flatten().min()?;
                Some(look.min(p.census.taken + LONGEST_LOOK))
            })
            .min()
    }

    /// The replications of `vm_ids` as a census of the pairing taken since `round` lists them:
    /// a verify in the same round needs no call of its own.
    pub fn fresh(
        &self,
        pairing: &str,
        round: Instant,
        vm_ids: &[String],
    ) -> Option<HashMap<String, ReplicationInfo>> {
        let census = &self.pairings.get(pairing)?.census;
        let census = Some(census).filter(|c| c.taken >= round)?;
        Some(
            vm_ids
                .iter()
                .filter_map(|vm| Some((vm.clone(), census.by_vm.get(vm)?.clone())))
                .collect(),
        )
    }
}

/// A held job whose configure was sent and whose replication the census does not show syncing
/// or done yet.
fn is_in_flight(a: &HeldJob, census: &Census) -> bool {
    let sent = a.in_doubt || matches!(a.step, Step::AwaitTask | Step::Verify);
    sent && a
        .checkpoint
        .vm_id
        .as_ref()
        .is_none_or(|vm| !census.by_vm.contains_key(vm))
}

/// What each of the syncs `in_sync` has left to copy, in bytes: as the census shows it copying,
/// else all of it (configuring, or submitted by this run and not listed yet). A replication of
/// unknown size (another tool's, not copying) is left out.
fn left_per_sync(
    in_sync: &HashSet<&str>,
    census: &Census,
    configured: &HashMap<String, (JobId, Option<i64>)>,
    run: &Runner,
) -> Vec<f64> {
    let submitted = |vm: &str| {
        run.held
            .values()
            .find(|a| a.checkpoint.vm_id.as_deref() == Some(vm))
            .and_then(|a| a.spec.as_ref())
            .map(spec_bytes)
    };
    in_sync
        .iter()
        .filter_map(|vm| match census.copying.get(*vm) {
            Some((copied, total)) => Some(total.saturating_sub(*copied) as f64),
            None => configured
                .get(*vm)
                .and_then(|(_, bytes)| *bytes)
                .or_else(|| submitted(vm))
                .map(|b| b as f64),
        })
        .collect()
}

/// When syncs with `left` bytes to copy and then the `waiting` VMs' (smallest first) would all
/// have ended, in seconds from now: `cap` at a time, each at one sync's pace or an equal share of
/// the throughput. The next VM to start is the largest under `largest_first`, else as
/// [`longest_first`] picks: the smallest, unless the largest would outlast the rest.
fn wave_end(left: &[f64], waiting: &[f64], cap: usize, rate: LinkRate, largest_first: bool) -> f64 {
    let mut waiting: std::collections::VecDeque<f64> = waiting.iter().copied().collect();
    let mut copying: Vec<f64> = left.iter().copied().filter(|b| *b > 0.0).collect();
    let mut now = 0.0;
    loop {
        while copying.len() < cap.max(1) {
            let in_all = copying.iter().sum::<f64>() + waiting.iter().sum::<f64>();
            let next = match waiting.back() {
                Some(largest) if largest_first || outlasts(*largest, in_all, rate) => {
                    waiting.pop_back()
                }
                _ => waiting.pop_front(),
            };
            let Some(next) = next else { break };
            copying.push(next);
        }
        let Some(first) = copying.iter().copied().reduce(f64::min) else {
            return now;
        };
        now += first / rate.pace.min(rate.throughput / copying.len() as f64);
        // Within a byte of done is done: the subtractions round.
        copying.retain_mut(|b| {
            *b -= first;
            *b > 1.0
        });
    }
}

/// Whether a VM of `bytes`, at one sync's pace, would outlast `in_all` bytes (its own among
/// them) at the link's throughput, by [`TAIL_MARGIN`].
fn outlasts(bytes: f64, in_all: f64, rate: LinkRate) -> bool {
    bytes / rate.pace >= TAIL_MARGIN * in_all / rate.throughput
}

/// Smallest first makes the most VMs protected soonest, but a VM whose own sync, at one sync's
/// pace, would outlast what is left of the whole wave at the link's throughput (by
/// [`TAIL_MARGIN`]) must not wait for the small ones: it would be the wave's tail, copying alone
/// on an idle link. Such VMs, the largest first, take the first of the `slots` instead. `ready`
/// is sorted smallest first; `copying` is what the syncs under way still have to copy.
fn longest_first<T>(
    ready: &mut [T],
    bytes: impl Fn(&T) -> i64,
    copying: u64,
    rate: LinkRate,
    slots: usize,
) {
    let in_all = copying as f64 + ready.iter().map(&bytes).sum::<i64>() as f64;
    let mut tail = 0;
    while tail < slots.min(ready.len())
        && outlasts(bytes(&ready[ready.len() - 1 - tail]) as f64, in_all, rate)
    {
        tail += 1;
    }
    // The `tail` largest move to the front, largest first.
    ready[..].rotate_right(tail);
    ready[..tail].reverse();
}

/// The cap in force on a pairing: the operator's, or what `auto` found; `None` for no cap.
fn cap_of(opts: &RunOptions, tuner: &Tuner) -> Option<usize> {
    match opts.max_initial_syncs {
        InitialSyncs::AtMost(n) => Some(n),
        InitialSyncs::Auto => Some(tuner.cap()),
        InitialSyncs::All => None,
    }
}

/// Bytes a second in Mbit/s.
fn mbps(bytes_per_second: f64) -> f64 {
    bytes_per_second * 8.0 / 1_000_000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_look_sooner_than_ten_times_its_uncertainty_is_not_measured() {
        let t0 = Instant::now();
        let look = |after_ms: u64, call_ms: u64| {
            Census::of(
                Vec::new(),
                t0 + Duration::from_millis(after_ms),
                Duration::from_millis(call_ms / 2),
            )
        };
        let baseline = look(0, 100);
        // Two calls of 100 ms: each list is known within 50 ms, the span within 100 ms.
        assert_eq!(baseline.sure_in(), Duration::from_secs(1));
        assert!(!look(900, 100).measurable_after(&baseline));
        assert!(look(1000, 100).measurable_after(&baseline));
        // A slow call widens what the span must be.
        assert!(!look(1000, 300).measurable_after(&baseline));
        assert!(look(2000, 300).measurable_after(&baseline));
    }

    #[test]
    fn the_last_round_goes_largest_first_when_that_ends_the_wave_sooner() {
        // Two syncs at once, each at 1 byte a second.
        let rate = LinkRate {
            throughput: 2.0,
            pace: 1.0,
        };
        assert_eq!(wave_end(&[2.0, 4.0], &[], 2, rate, false), 4.0);
        // Four at once share the link: half a byte a second each.
        assert_eq!(wave_end(&[4.0; 4], &[], 4, rate, false), 8.0);
        // A sync with 1 s left; VMs of 1, 1 and 3 bytes wait. Smallest first starts a 1 now
        // and the 3 (which then outlasts the rest) at 1 s: the wave ends at 4 s. Largest first
        // starts the 3 now and the 1s beside it: 3 s.
        let (left, waiting) = ([1.0], [1.0, 1.0, 3.0]);
        assert_eq!(wave_end(&left, &waiting, 2, rate, false), 4.0);
        assert_eq!(wave_end(&left, &waiting, 2, rate, true), 3.0);
        // Alone on the link, the order changes nothing.
        assert_eq!(wave_end(&[], &waiting, 1, rate, true), 5.0);
        assert_eq!(wave_end(&[], &waiting, 1, rate, false), 5.0);
    }

    #[test]
    fn a_vm_that_would_outlast_the_wave_goes_before_the_small_ones() {
        // The link carries 4 bytes a second, one sync 1.
        let rate = LinkRate {
            throughput: 4.0,
            pace: 1.0,
        };
        // 18 bytes in all take 4.5 s on the link; the 12-byte VM alone takes 12 s: first.
        let mut ready = vec![1, 1, 2, 2, 12];
        longest_first(&mut ready, |b| *b, 0, rate, 2);
        assert_eq!(ready, [12, 1, 1, 2, 2]);
        // With much left to copy, its largest VM ends long before the wave: small ones first.
        let mut ready = vec![1, 1, 2, 2, 12];
        longest_first(&mut ready, |b| *b, 1000, rate, 2);
        assert_eq!(ready, [1, 1, 2, 2, 12]);
        // 63 bytes take 15.75 s; a 15-byte VM ends within them, and waits its turn.
        let mut ready = vec![4; 13];
        ready[12] = 15;
        longest_first(&mut ready, |b| *b, 0, rate, 2);
        assert_eq!(ready[0], 4);
        assert_eq!(ready[12], 15);
        // Two that would outlast it, largest first, but no more than the slots free.
        let mut ready = vec![1, 9, 10, 11];
        longest_first(&mut ready, |b| *b, 0, rate, 2);
        assert_eq!(ready, [11, 10, 1, 9]);
    }
}
