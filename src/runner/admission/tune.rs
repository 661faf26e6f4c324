//! `--max-initial-syncs auto`: how many initial syncs a pairing's link carries best, found
//! while the wave flows, from what the appliance reports of each sync's progress.
//!
//! Each census of the pairing's replications, set against the one before, gives a [`Sample`]:
//! the bytes the initial syncs copied in all over the interval, and each sync's own rate. Two
//! readings decide:
//!
//! - a sync's *pace*, the most one sync was seen to copy alone (the fastest of recent samples).
//!   One more sync can add at most a pace to the link's total;
//! - whether the syncs *share* the link: on average slower than 90 % of the pace.
//!
//! While every sync runs at its own pace the link has room: the cap grows (by a quarter while it
//! has never been full, then one at a time). Once they share it, more syncs add nothing and past
//! the link's knee take away: the cap becomes the fewest syncs that carried as much (within
//! 3 %), bounded by what the pace lets that many carry and by what was measured of them. What
//! was measured is forgotten after a while, so the cap probes upward again: links change.
//!
//! The cap counts the replications the appliance has in initial sync, those still configuring
//! included, while the measure counts the syncs that copy. A replication configuring since the
//! last look will copy soon: it counts against the cap (else every slot handed on early would
//! raise it). One that copied at neither of two looks (its VM is off) takes nothing of the link:
//! it keeps its slot on top of what the measure says.

use std::collections::{BTreeMap, VecDeque};

/// One more sync, or a quarter more: how the cap grows while the link has room. Syncs admitted
/// past the knee cannot be called back and slow the link until they end: growing by a quarter
/// overshoots it by at most that, for a few more looks on the way up than by half.
fn quarter_more(n: usize) -> usize {
    n + (n / 4).max(1)
}

/// A mean sync slower than this part of the pace shares the link.
const SHARED: f64 = 0.9;
/// Syncs that carry this part of the best measured total carry as much.
const AS_GOOD: f64 = 0.97;
/// Samples after which what was measured of a number of syncs is forgotten.
const STALE: u32 = 40;
/// Samples whose fastest sync makes the pace.
const PACE_SAMPLES: usize = 60;

/// What one interval between two censuses showed.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Seconds between the censuses.
    pub span: f64,
    /// Bytes the initial syncs copied in all.
    pub copied: f64,
    /// Bytes a second of each sync that copied at both ends of the interval.
    pub rates: Vec<f64>,
    /// Syncs that ended over the interval, seen copying or not.
    pub ended: usize,
    /// Syncs that began copying over the interval: the syncs before them set the pace of the
    /// others for part of it, so it tells whether the link shares, not that it has room.
    pub began: usize,
    /// Whether the cap held VMs back over the interval: VMs were waiting for a slot.
    pub full: bool,
    /// Replications in their initial sync at both ends of the interval that copied at neither:
    /// configuring longer than a look, or waiting for their VM to be powered on. The cap counts
    /// them but they take nothing of the link: they keep their slots.
    pub stalled: usize,
}

impl Sample {
    /// All the syncs together, bytes a second.
    pub fn total(&self) -> f64 {
        self.copied / self.span
    }

    /// The mean sync, bytes a second.
    fn mean(&self) -> Option<f64> {
        (!self.rates.is_empty()).then(|| self.rates.iter().sum::<f64>() / self.rates.len() as f64)
    }

    /// Syncs on the link over the interval, weighted by the time each copied: a sync that ended
    /// or began halfway counts half.
    fn syncs(&self) -> Option<usize> {
        let mean = self.mean().filter(|m| *m > 0.0)?;
        Some(((self.total() / mean).round() as usize).max(1))
    }
}

/// A number of syncs' measured total.
#[derive(Debug, Clone, Copy)]
struct Seen {
    /// Bytes a second, a moving average.
    total: f64,
    /// Samples since it was last measured.
    age: u32,
}

#[derive(Debug, Clone)]
pub struct Tuner {
    cap: usize,
    /// Until the syncs first share the link, the cap grows by a quarter.
    growing: bool,
    /// The fastest sync of each recent sample.
    fastest: VecDeque<f64>,
    seen: BTreeMap<usize, Seen>,
}

impl Default for Tuner {
    fn default() -> Self {
        Tuner::new()
    }
}

impl Tuner {
    /// One sync first: a link too thin for two is found as soon as one too many.
    pub fn new() -> Tuner {
        Tuner {
            cap: 1,
            growing: true,
            fastest: VecDeque::new(),
            seen: BTreeMap::new(),
        }
    }

    /// From a cap a run measured before: probed one at a time from there, not grown by a
    /// quarter.
    pub fn starting_at(cap: usize) -> Tuner {
        Tuner {
            cap: cap.clamp(1, crate::settings::InitialSyncs::MOST),
            growing: false,
            ..Tuner::new()
        }
    }

    pub fn cap(&self) -> usize {
        self.cap
    }

    /// Whether the syncs have not shared the link yet: the cap still grows by a quarter.
    pub fn growing(&self) -> bool {
        self.growing
    }

    /// What the link carried at best, and one sync's pace, as measured lately.
    pub fn rate(&self) -> Option<crate::workflow::forecast::LinkRate> {
        Some(crate::workflow::forecast::LinkRate {
            throughput: Some(self.best()).filter(|b| *b > 0.0)?,
            pace: self.pace().filter(|p| *p > 0.0)?,
        })
    }

    /// The most any number of syncs was measured to carry lately, bytes a second (0: none).
    fn best(&self) -> f64 {
        self.seen.values().map(|s| s.total).fold(0.0, f64::max)
    }

    /// One sync's pace: the fastest of the recent samples, bytes a second.
    pub fn pace(&self) -> Option<f64> {
        self.fastest.iter().copied().reduce(f64::max)
    }

    /// Learns from a sample and sets the cap by it. Returns whether the cap changed.
    pub fn learn(&mut self, s: &Sample) -> bool {
        for seen in self.seen.values_mut() {
            seen.age += 1;
        }
        self.seen.retain(|_, s| s.age < STALE);
        if s.span.is_nan() || s.span <= 0.0 {
            return false;
        }
        let (Some(n), Some(mean), Some(fastest)) = (
            s.syncs(),
            s.mean(),
            s.rates.iter().copied().reduce(f64::max),
        ) else {
            // No sync copied from one look to the next, yet some ended: they are shorter than
            // the looks, and the link has room for more than the cap lets on.
            if s.full && s.ended > 0 {
                return self.set(self.more(self.cap));
            }
            return false;
        };
        let total = s.total();
        // Syncs that fill the link as fully as ever go at their share of it, not at their own
        // pace: only one alone, a link with room, or a faster sync says what a pace is. (Else
        // a long while at two syncs on a link one fills would make half the link a pace, and
        // two syncs would seem to run at theirs.)
        let paced =
            n == 1 || total < AS_GOOD * self.best() || self.pace().is_none_or(|p| fastest >= p);
        if paced {
            if self.fastest.len() == PACE_SAMPLES {
                self.fastest.pop_front();
            }
            self.fastest.push_back(fastest);
        }
        let Some(pace) = self.pace().filter(|p| *p > 0.0) else {
            return false;
        };
        let entry = self.seen.entry(n).or_insert(Seen { total, age: 0 });
        entry.total = 0.5 * entry.total + 0.5 * total;
        entry.age = 0;
        // Only a cap that held VMs back says anything about how many syncs are best.
        if !s.full {
            return false;
        }
        // Fewer syncs that carried more mean the link is past its knee, however fast each is.
        let fewer_carried_more = n > 1 && self.seen.get(&(n - 1)).is_some_and(|s| s.total > total);
        let room = mean >= SHARED * pace && !fewer_carried_more;
        // Where syncs end between looks, syncs begin in every interval: waiting for one in
        // which none began would never grow the cap.
        if room && s.began > 0 && s.ended == 0 {
            return false;
        }
        // Set from the count, not moved from the cap: a cap the syncs overshoot (more were
        // admitted before it came down) would otherwise fall again with every sample.
        let cap = if room {
            // Room never lowers the cap (replications configuring since the last look are in
            // it and not copying yet), and grows it one step at a time: a probe.
            (self.with_room(n, total, pace) + s.stalled).clamp(self.cap, self.more(self.cap))
        } else {
            self.growing = false;
            self.fewest_as_good(n, pace) + s.stalled
        };
        self.set(cap)
    }

    /// Sets the cap; whether it changed.
    fn set(&mut self, cap: usize) -> bool {
        let cap = cap.clamp(1, crate::settings::InitialSyncs::MOST);
        let changed = cap != self.cap;
        self.cap = cap;
        changed
    }

    /// Every sync at its own pace: one more adds up to a pace, unless it was measured lately
    /// to add less than half of one.
    fn with_room(&self, n: usize, total: f64, pace: f64) -> usize {
        match self.seen.get(&(n + 1)) {
            Some(more) if more.total < total + 0.5 * pace => n,
            _ => self.more(n),
        }
    }

    /// The next cap up from `n`: a quarter more while the link has never been full, then one.
    fn more(&self, n: usize) -> usize {
        if self.growing {
            quarter_more(n)
        } else {
            n + 1
        }
    }

    /// The syncs share the link: the fewest that carry as much as the best measured. Fewer
    /// than measured carry at most a pace each, and what was measured of them.
    fn fewest_as_good(&self, n: usize, pace: f64) -> usize {
        let best = self.best();
        (1..=self.seen.keys().copied().max().unwrap_or(n).max(n))
            .find(|m| {
                let bound = if *m < n { *m as f64 * pace } else { 0.0 };
                let measured = self.seen.get(m).map(|s| s.total);
                let carries = match measured {
                    Some(t) if *m < n => t.min(bound),
                    Some(t) => t,
                    None => bound,
                };
                carries >= AS_GOOD * best
            })
            .unwrap_or(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A link as the simulator models it: `bandwidth` in all while at most `knee` syncs share
    /// it, falling as `B / (1 + (n − K)/K)` past it; `pace` a sync at most.
    struct Link {
        bandwidth: f64,
        pace: f64,
        knee: usize,
    }

    impl Link {
        fn rate(&self, n: usize) -> f64 {
            let total = if n <= self.knee {
                self.bandwidth
            } else {
                self.bandwidth / (1.0 + (n - self.knee) as f64 / self.knee as f64)
            };
            (total / n as f64).min(self.pace)
        }

        /// Steady samples at whatever the tuner's cap is, until it settles.
        fn settle(&self, tuner: &mut Tuner) -> Vec<usize> {
            let mut caps = Vec::new();
            for _ in 0..60 {
                let n = tuner.cap();
                let r = self.rate(n);
                tuner.learn(&Sample {
                    span: 10.0,
                    copied: r * n as f64 * 10.0,
                    rates: vec![r; n],
                    ended: 0,
                    began: 0,
                    full: true,
                    stalled: 0,
                });
                caps.push(tuner.cap());
            }
            caps
        }
    }

    fn last(caps: &[usize], k: usize) -> &[usize] {
        &caps[caps.len() - k..]
    }

    /// The last 30 caps are `cap`, but for a probe of one more now and then (what was measured
    /// of it is forgotten after `STALE` samples).
    fn assert_settled(caps: &[usize], cap: usize) {
        let settled = last(caps, 30);
        let probes = settled.iter().filter(|c| **c == cap + 1).count();
        assert!(
            settled.iter().all(|c| *c == cap || *c == cap + 1) && probes <= 2,
            "{caps:?}"
        );
    }

    #[test]
    fn a_wide_link_is_filled_to_the_syncs_that_carry_it_at_their_pace() {
        // 1000 in all, 200 a sync: five syncs fill it; contention only past 10.
        let link = Link {
            bandwidth: 1000.0,
            pace: 200.0,
            knee: 10,
        };
        let caps = link.settle(&mut Tuner::new());
        assert_eq!(
            &caps[..4],
            [2, 3, 4, 5],
            "grows by a quarter while there is room"
        );
        assert_settled(&caps, 5);
    }

    #[test]
    fn past_the_knee_the_cap_comes_back_to_where_the_link_carries_most() {
        // 10 000 in all, 100 a sync, contention past 20: n syncs carry min(100 n, 10 000·20/n),
        // most at 44 or 45 (4444 or 4500).
        let link = Link {
            bandwidth: 10_000.0,
            pace: 100.0,
            knee: 20,
        };
        let caps = link.settle(&mut Tuner::new());
        let settled = last(&caps, 20);
        let best = (1..200)
            .map(|n| link.rate(n) * n as f64)
            .fold(0.0, f64::max);
        for c in settled {
            let carried = link.rate(*c) * *c as f64;
            assert!(
                carried >= 0.95 * best,
                "cap {c} carries {carried} of {best}: {caps:?}"
            );
        }
    }

    #[test]
    fn a_link_too_thin_for_two_keeps_one() {
        let link = Link {
            bandwidth: 150.0,
            pace: 800.0,
            knee: 3,
        };
        let caps = link.settle(&mut Tuner::new());
        assert_settled(&caps, 1);
    }

    #[test]
    fn a_cap_that_held_nothing_back_teaches_the_pace_but_not_the_cap() {
        let mut t = Tuner::new();
        let changed = t.learn(&Sample {
            span: 1.0,
            copied: 300.0,
            rates: vec![100.0, 100.0, 100.0],
            ended: 0,
            began: 0,
            full: false,
            stalled: 0,
        });
        assert!(!changed);
        assert_eq!((t.cap(), t.pace()), (1, Some(100.0)));
    }

    #[test]
    fn replications_that_do_not_copy_keep_their_slots() {
        // The cap is 6: four syncs copy, each at its pace; two replications copied at neither
        // look (their VMs are off).
        let mut t = Tuner::starting_at(6);
        let sample = Sample {
            span: 1.0,
            copied: 400.0,
            rates: vec![100.0; 4],
            ended: 0,
            began: 0,
            full: true,
            stalled: 2,
        };
        t.learn(&sample);
        assert_eq!(t.cap(), 7, "one more copying sync, the stalled ones kept");
        // Two configure since the last look: the cap waits for them to copy, and stays.
        let mut t = Tuner::starting_at(6);
        t.learn(&Sample {
            stalled: 0,
            ..sample
        });
        assert_eq!(t.cap(), 6);
    }

    #[test]
    fn syncs_over_the_cap_with_room_grow_it_one_step() {
        // The cap is 20; 26 syncs copy at their pace (slots handed on early, as syncs ended
        // together): room for one more than the cap, not for one more than the 26.
        let mut t = Tuner::starting_at(20);
        t.learn(&Sample {
            span: 1.0,
            copied: 2600.0,
            rates: vec![100.0; 26],
            ended: 6,
            began: 0,
            full: true,
            stalled: 0,
        });
        assert_eq!(t.cap(), 21);
    }

    #[test]
    fn syncs_sharing_a_link_one_fills_do_not_lower_the_pace() {
        // One sync fills the link (100); a probe at two is shared.
        let link = Link {
            bandwidth: 100.0,
            pace: 400.0,
            knee: 20,
        };
        let mut t = Tuner::new();
        link.settle(&mut t);
        for _ in 0..PACE_SAMPLES + 10 {
            t.learn(&Sample {
                span: 1.0,
                copied: 100.0,
                rates: vec![50.0; 2],
                ended: 0,
                began: 0,
                full: true,
                stalled: 0,
            });
            assert_eq!(t.pace(), Some(100.0));
            assert_eq!(t.cap(), 1, "one sync carries what two do");
        }
    }

    #[test]
    fn syncs_that_began_copying_over_the_interval_do_not_grow_the_cap() {
        let mut t = Tuner::starting_at(4);
        let at_pace = Sample {
            span: 1.0,
            copied: 400.0,
            rates: vec![100.0; 4],
            ended: 0,
            began: 2,
            full: true,
            stalled: 0,
        };
        assert!(!t.learn(&at_pace));
        assert_eq!(t.cap(), 4);
        t.learn(&Sample {
            began: 0,
            ..at_pace
        });
        assert_eq!(
            t.cap(),
            5,
            "the next sample, with the same syncs throughout, does"
        );
        t.learn(&Sample {
            rates: vec![100.0; 5],
            copied: 500.0,
            stalled: 0,
            ended: 1,
            ..at_pace
        });
        assert_eq!(
            t.cap(),
            6,
            "syncs that end between two looks begin in every interval"
        );
    }

    #[test]
    fn syncs_over_the_cap_bring_it_to_what_the_link_carries_once_not_lower_each_sample() {
        // 40 syncs carry 4000 at their pace of 100; 57 admitted before that was known carry
        // 3000, 53 each: 39 carry as much (within 3 %), and the cap stays there while the 57
        // drain.
        let mut t = Tuner::starting_at(40);
        let at = |n: usize, each: f64| Sample {
            span: 1.0,
            copied: each * n as f64,
            rates: vec![each; n],
            ended: 0,
            began: 0,
            full: true,
            stalled: 0,
        };
        t.learn(&at(40, 100.0));
        for _ in 0..5 {
            t.learn(&at(57, 3000.0 / 57.0));
            assert_eq!(t.cap(), 39);
        }
    }

    #[test]
    fn syncs_that_end_between_two_looks_grow_the_cap_as_room_does() {
        let mut t = Tuner::new();
        let quick = Sample {
            span: 1.0,
            copied: 0.0,
            rates: Vec::new(),
            ended: 1,
            began: 0,
            full: true,
            stalled: 0,
        };
        let caps: Vec<usize> = (0..5)
            .map(|_| {
                t.learn(&quick);
                t.cap()
            })
            .collect();
        assert_eq!(caps, [2, 3, 4, 5, 6]);
        t.learn(&Sample {
            full: false,
            ..quick.clone()
        });
        assert_eq!(t.cap(), 6, "a cap that held nothing back says nothing");
        // What was measured of more syncs does not hold the cap back: these ended unseen.
        t.learn(&Sample {
            span: 1.0,
            copied: 1000.0,
            rates: vec![100.0; 10],
            ended: 0,
            began: 0,
            full: true,
            stalled: 0,
        });
        let before = t.cap();
        t.learn(&quick);
        assert!(t.cap() > before, "{} after {before}", t.cap());
    }
}
