//! When a wave will be protected, from what its link carries: the prediction `plan` and
//! `status` make from a measured throughput, and the lower bound the admission benchmark holds
//! the tool to, from the link's best. One formula for both, so that the bound and the promise
//! cannot drift apart.
//!
//! No schedule can beat a link that carries `throughput` in all and `pace` a sync, however it
//! splits the throughput between syncs and whenever it starts them. For the syncs, that link
//! is `⌊throughput / pace⌋` machines at `pace` and one at what is left over, with syncs moved
//! between machines at will (uniform machines with preemption: any rates a sync at most `pace`,
//! `throughput` in all, are theirs). There, shortest remaining first on the fastest machine has
//! the least mean time to completion (Gonzalez, 1977, for uniform machines with preemption): its
//! mean is the bound on the mean, its times the prediction. The least makespan there is the
//! bytes at the throughput or the largest VM at the pace, whichever is longer.

use std::time::Duration;

/// What a link carries, in bytes per second.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LinkRate {
    /// All initial syncs together.
    pub throughput: f64,
    /// One sync alone (a VM's own pace).
    pub pace: f64,
}

impl LinkRate {
    /// From Mbit/s, as the link is measured.
    pub fn from_mbps(throughput: f64, pace: f64) -> LinkRate {
        LinkRate {
            throughput: throughput * 125_000.0,
            pace: pace * 125_000.0,
        }
    }
}

/// Seconds until each VM is protected, smallest first, for VMs with `left` bytes each still to
/// copy, shortest remaining first on the link's machines (the module's doc says why that is
/// the best any schedule can do). Empty when the rate says nothing (no throughput measured).
pub fn protected_in(left: &[u64], rate: LinkRate) -> Vec<f64> {
    if !(rate.throughput > 0.0 && rate.pace > 0.0) {
        return Vec::new();
    }
    let mut left: Vec<f64> = left.iter().map(|b| *b as f64).collect();
    left.sort_by(f64::total_cmp);
    let speeds = machines(rate, left.len());
    // What is left of a sync that ended, but for rounding.
    let ended = 1e-9 * left.last().copied().unwrap_or(0.0);
    let mut now = 0.0;
    let mut protected = Vec::with_capacity(left.len());
    // Syncs keep their order: a VM with less to copy runs at least as fast as one with more.
    // The `done` smallest have ended; the next ones, smallest on the fastest, copy.
    let mut done = 0;
    while done < left.len() {
        let step = left[done] / speeds[0];
        now += step;
        for (l, speed) in left[done..].iter_mut().zip(&speeds) {
            *l -= speed * step;
        }
        while done < left.len() && left[done] <= ended {
            protected.push(now);
            done += 1;
        }
    }
    protected
}

/// The link as machines, fastest first: as many whole paces as the throughput holds, and what is
/// left over; no more than `vms` (a measured pace far below the throughput would ask for
/// millions, of which no more than one a VM can run).
fn machines(rate: LinkRate, vms: usize) -> Vec<f64> {
    let pace = rate.pace.min(rate.throughput);
    let whole = (rate.throughput / pace).floor();
    let rest = rate.throughput - whole * pace;
    if whole >= vms as f64 {
        return vec![pace; vms.max(1)];
    }
    let mut speeds = vec![pace; whole as usize];
    if rest > 1e-9 * rate.throughput {
        speeds.push(rest);
    }
    speeds
}

/// The least time in which any schedule copies all of `left`: the link's throughput over all
/// the bytes, and the largest VM at one sync's pace (the optimum on uniform machines with
/// preemption, for this link). `None` when the rate says nothing.
pub fn makespan(left: &[u64], rate: LinkRate) -> Option<f64> {
    (rate.throughput > 0.0 && rate.pace > 0.0).then(|| {
        let all: f64 = left.iter().map(|b| *b as f64).sum();
        let largest = left.iter().copied().max().unwrap_or(0) as f64;
        (all / rate.throughput).max(largest / rate.pace.min(rate.throughput))
    })
}

/// When the first VM, half of them and all of them are protected, from now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Forecast {
    pub first: Duration,
    pub half: Duration,
    pub all: Duration,
}

impl Forecast {
    /// `None` when nothing is left or the rate says nothing.
    pub fn of(left: &[u64], rate: LinkRate) -> Option<Forecast> {
        let t = protected_in(left, rate);
        let at = |k: usize| Duration::from_secs_f64(t[k.clamp(1, t.len()) - 1]);
        (!t.is_empty()).then(|| Forecast {
            first: at(1),
            half: at(t.len().div_ceil(2)),
            all: at(t.len()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_smallest_go_at_their_pace_on_the_links_whole_paces_and_the_next_on_what_is_left() {
        // 100 bytes/s in all, 40 a sync: two syncs at 40 and one at 20.
        let rate = LinkRate {
            throughput: 100.0,
            pace: 40.0,
        };
        // The third copies 20 bytes beside the first two, then its last 20 at 40.
        assert_eq!(protected_in(&[40, 40, 40], rate), [1.0, 1.0, 1.5]);
        assert_eq!(protected_in(&[400, 40], rate), [1.0, 10.0]);
        // The largest waits for a machine until the first two end, and then copies at 40.
        let f = Forecast::of(&[40, 40, 40, 400], rate).unwrap();
        assert_eq!(f.first, Duration::from_secs(1));
        assert_eq!(f.half, Duration::from_secs(1));
        assert_eq!(f.all, Duration::from_secs(11));
        // Shortest remaining first ends no later than any other schedule on the mean.
        let t = protected_in(&[40; 10], rate);
        assert_eq!(t.len(), 10);
        assert!(t.windows(2).all(|w| w[0] <= w[1]));
        assert!((t.iter().sum::<f64>() - 25.375).abs() < 1e-9, "{t:?}");
    }

    #[test]
    fn a_pace_far_below_the_throughput_runs_every_vm_at_it() {
        let rate = LinkRate {
            throughput: 1e12,
            pace: 1e-6,
        };
        let t = protected_in(&[1, 2], rate);
        assert!(
            (t[0] - 1e6).abs() < 1e-3 && (t[1] - 2e6).abs() < 1e-3,
            "{t:?}"
        );
    }

    #[test]
    fn a_sync_faster_than_the_link_has_the_link_alone() {
        let rate = LinkRate {
            throughput: 10.0,
            pace: 40.0,
        };
        assert_eq!(protected_in(&[20, 10, 30], rate), [1.0, 3.0, 6.0]);
        assert_eq!(makespan(&[20, 10, 30], rate), Some(6.0));
    }

    #[test]
    fn the_makespan_is_the_bytes_at_the_throughput_or_the_largest_at_the_pace() {
        let rate = LinkRate {
            throughput: 100.0,
            pace: 40.0,
        };
        assert_eq!(makespan(&[40; 10], rate), Some(4.0));
        assert_eq!(makespan(&[40, 400], rate), Some(10.0));
        assert_eq!(makespan(&[1], LinkRate::from_mbps(0.0, 1.0)), None);
    }

    #[test]
    fn nothing_measured_predicts_nothing() {
        let none = LinkRate::from_mbps(0.0, 100.0);
        assert!(protected_in(&[1, 2], none).is_empty());
        assert_eq!(Forecast::of(&[1], none), None);
        assert_eq!(Forecast::of(&[], LinkRate::from_mbps(1.0, 1.0)), None);
    }
}
