//! The replication link that full syncs share: how fast each sync goes when `n` of them run at
//! once. A pure function of the configuration; `lifecycle` integrates it over time.
//!
//! The model is an assumption, not a measurement (the simulator's module doc says so): the
//! product documentation only warns that many concurrent initial syncs slow each other down
//! (on vSAN above all), and gives no formula.

/// Bits per second in one Mbit/s.
const BITS_PER_MBIT: f64 = 1_000_000.0;

/// The link's bandwidth, the ceiling of one sync, and where contention starts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LinkModel {
    /// What the link carries in all, in Mbit/s, while at most `contention_threshold` syncs
    /// share it.
    pub bandwidth_mbps: f64,
    /// What one sync never exceeds, in Mbit/s, however idle the link.
    pub per_sync_ceiling_mbps: f64,
    /// `K`: past this many concurrent syncs, the link's total throughput falls as
    /// `B / (1 + s (n − K) / K)`. Taken as 1 when 0.
    pub contention_threshold: u32,
    /// `s`: how steeply the total falls past `K` (1: to half at `2K`; 0: it does not fall).
    pub contention_falloff: f64,
}

impl Default for LinkModel {
    /// 1 Gbit/s, 200 Mbit/s per sync, contention past 10 syncs.
    fn default() -> Self {
        LinkModel {
            bandwidth_mbps: 1000.0,
            per_sync_ceiling_mbps: 200.0,
            contention_threshold: 10,
            contention_falloff: 1.0,
        }
    }
}

impl LinkModel {
    /// The link's total throughput with `n` syncs on it, in Mbit/s.
    pub fn total_mbps(&self, n: usize) -> f64 {
        let k = f64::from(self.contention_threshold.max(1));
        let n = n as f64;
        if n <= k {
            self.bandwidth_mbps
        } else {
            self.bandwidth_mbps / (1.0 + self.contention_falloff.max(0.0) * (n - k) / k)
        }
    }

    /// The most the link carries in all, in Mbit/s, with the best number of syncs on it: with
    /// a low ceiling, more syncs than the threshold may be needed, and they fall.
    pub fn best_mbps(&self) -> f64 {
        (1..=crate::settings::InitialSyncs::MOST)
            .map(|n| self.per_sync_mbps(n) * n as f64)
            .fold(0.0, f64::max)
    }

    /// What each of `n` concurrent syncs gets, in Mbit/s: an equal share of the total, capped
    /// by the ceiling (0 when none runs).
    pub fn per_sync_mbps(&self, n: usize) -> f64 {
        if n == 0 {
            return 0.0;
        }
        (self.total_mbps(n) / n as f64).min(self.per_sync_ceiling_mbps)
    }

    /// [`per_sync_mbps`](Self::per_sync_mbps) in bytes per second.
    pub fn per_sync_bytes_per_second(&self, n: usize) -> f64 {
        self.per_sync_mbps(n) * BITS_PER_MBIT / 8.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_sync_is_held_to_the_ceiling_and_a_few_share_the_whole_link() {
        let link = LinkModel::default();
        assert_eq!(link.per_sync_mbps(0), 0.0);
        assert_eq!(link.per_sync_mbps(1), 200.0);
        assert_eq!(link.per_sync_mbps(5), 200.0);
        assert_eq!(link.per_sync_mbps(8), 125.0);
        assert_eq!(link.total_mbps(10), 1000.0);
        assert_eq!(link.per_sync_bytes_per_second(1), 25_000_000.0);
    }

    #[test]
    fn past_the_threshold_the_links_total_falls() {
        let link = LinkModel::default();
        // n = 20, K = 10: B / (1 + 10/10) = 500 Mbit/s among 20.
        assert_eq!(link.total_mbps(20), 500.0);
        assert_eq!(link.per_sync_mbps(20), 25.0);
        // A flood of 300 gets a thirtieth of the link in all.
        assert!((link.total_mbps(300) - 1000.0 / 30.0).abs() < 1e-9);
        assert!(link.total_mbps(11) < link.total_mbps(10));
    }

    #[test]
    fn the_falloff_sets_how_steeply_the_total_falls_and_the_best_may_lie_past_the_threshold() {
        let gentle = LinkModel {
            contention_falloff: 0.5,
            ..LinkModel::default()
        };
        assert_eq!(gentle.total_mbps(20), 1000.0 / 1.5);
        let flat = LinkModel {
            contention_falloff: 0.0,
            ..LinkModel::default()
        };
        assert_eq!(flat.total_mbps(300), 1000.0);
        assert_eq!(LinkModel::default().best_mbps(), 1000.0);
        // 10 Gbit/s, 100 Mbit/s a sync, contention past 20: n syncs carry
        // min(100 n, 10 000 × 20 / n), most at 45 (4444 Mbit/s).
        let thin_syncs = LinkModel {
            bandwidth_mbps: 10_000.0,
            per_sync_ceiling_mbps: 100.0,
            contention_threshold: 20,
            contention_falloff: 1.0,
        };
        assert!((thin_syncs.best_mbps() - 10_000.0 / 2.25).abs() < 1e-6);
    }

    #[test]
    fn a_threshold_of_zero_counts_as_one() {
        let link = LinkModel {
            contention_threshold: 0,
            ..LinkModel::default()
        };
        assert_eq!(link.total_mbps(1), 1000.0);
        assert_eq!(link.total_mbps(2), 500.0);
    }
}
