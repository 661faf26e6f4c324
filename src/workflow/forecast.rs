//! When a wave will be protected, from what its link carries: the prediction `plan` and
//! `status` make from a measured throughput, and the lower bound the admission benchmark holds
//! the tool to, from the link's best. One formula for both, so that the bound and the promise
//! cannot drift apart.
//!
//! Taken smallest-first, the k-th VM cannot be protected before its own bytes at one sync's pace,
//! nor before the bytes of the k smallest at the link's throughput in all:
//! `t_k = max(s_k / pace, (s_1 + … + s_k) / throughput)`.

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
/// copy. Empty when the rate says nothing (no throughput measured).
pub fn protected_in(left: &[u64], rate: LinkRate) -> Vec<f64> {
    if !(rate.throughput > 0.0 && rate.pace > 0.0) {
        return Vec::new();
    }
    let mut sizes: Vec<f64> = left.iter().map(|b| *b as f64).collect();
    sizes.sort_by(f64::total_cmp);
    let mut sum = 0.0;
    sizes
        .into_iter()
        .map(|s| {
            sum += s;
            (s / rate.pace).max(sum / rate.throughput)
        })
        .collect()
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
    fn small_vms_go_at_their_pace_and_the_rest_wait_for_the_link() {
        // 100 bytes/s in all, 40 a sync: the 40-byte VM takes 1 s alone, but the third VM must
        // wait for the link to carry 40 + 40 + 40 = 120 bytes.
        let rate = LinkRate {
            throughput: 100.0,
            pace: 40.0,
        };
        assert_eq!(protected_in(&[40, 40, 40], rate), [1.0, 1.0, 1.2]);
        assert_eq!(protected_in(&[400, 40], rate), [1.0, 10.0]);
        let f = Forecast::of(&[40, 40, 40, 400], rate).unwrap();
        assert_eq!(f.first, Duration::from_secs(1));
        assert_eq!(f.half, Duration::from_secs(1));
        assert_eq!(
            f.all,
            Duration::from_secs(10),
            "the largest at its own pace"
        );
        let f = Forecast::of(&[40; 10], rate).unwrap();
        assert_eq!(
            f.all,
            Duration::from_secs(4),
            "ten at the link's 100 bytes a second"
        );
    }

    #[test]
    fn nothing_measured_predicts_nothing() {
        let none = LinkRate::from_mbps(0.0, 100.0);
        assert!(protected_in(&[1, 2], none).is_empty());
        assert_eq!(Forecast::of(&[1], none), None);
        assert_eq!(Forecast::of(&[], LinkRate::from_mbps(1.0, 1.0)), None);
    }
}
