//! What admission measured of each pairing's replication link over a batch's runs: the series
//! (time, syncs in flight, cap, Mbit/s) the JSON report holds and the HTML report charts, and
//! the few numbers the Markdown report and the HTML page say of it in words.

use std::collections::BTreeMap;

use serde::Serialize;

use super::{Site, UtcTime};
use crate::queue::LinkSample;
use crate::timefmt::span;
use crate::units::mbps;

/// One pairing's link, as the batch's runs measured it while they admitted its wave.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LinkSeries {
    pub pairing_id: String,
    /// The pairing's target vCenter, when a run's discovery named it.
    pub target_vcenter: Option<String>,
    /// Oldest first, over every run of the batch.
    pub samples: Vec<LinkPoint>,
    /// The highest aggregate throughput measured, in Mbit/s, with the syncs in flight then.
    pub peak_mbps: f64,
    pub peak_in_sync: u32,
    pub peak_at: UtcTime,
    /// The fastest one sync went, in Mbit/s: a VM's own pace.
    pub pace_mbps: f64,
    /// The lowest and highest cap admission set; `None` when every sample had none.
    pub cap_min: Option<u32>,
    pub cap_max: Option<u32>,
    /// Samples taken with no cap (every VM admitted at once).
    pub uncapped_samples: u64,
}

/// One measurement: the interval that ended at `at`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LinkPoint {
    pub at: UtcTime,
    pub span_ms: i64,
    /// The run that measured it.
    pub run_id: String,
    /// The pairing's replications in initial sync at `at` (every batch's).
    pub in_sync: u32,
    /// The admission cap from then on; `None`: no cap.
    pub cap: Option<u32>,
    /// What the initial syncs carried in all over the interval.
    pub mbps: f64,
    /// The fastest one sync went over the interval.
    pub pace_mbps: f64,
    /// Bytes the pairing's initial syncs still had to copy at `at`.
    pub bytes_left: i64,
}

/// The series of each pairing the samples measured, by pairing id.
pub(super) fn series(samples: Vec<LinkSample>, sites: &[Site]) -> Vec<LinkSeries> {
    let mut by_pairing: BTreeMap<String, Vec<LinkSample>> = BTreeMap::new();
    for s in samples {
        by_pairing.entry(s.pairing_id.clone()).or_default().push(s);
    }
    by_pairing
        .into_iter()
        .filter_map(|(pairing_id, samples)| {
            let peak = samples
                .iter()
                .max_by(|a, b| a.mbps.total_cmp(&b.mbps).then(b.at.cmp(&a.at)))?
                .clone();
            let caps = samples.iter().filter_map(|s| s.cap);
            Some(LinkSeries {
                target_vcenter: sites
                    .iter()
                    .find(|s| s.pairing_id == pairing_id)
                    .and_then(|s| s.target_vcenter.clone()),
                pairing_id,
                peak_mbps: peak.mbps,
                peak_in_sync: peak.in_sync,
                peak_at: UtcTime(peak.at),
                pace_mbps: samples.iter().map(|s| s.pace_mbps).fold(0.0, f64::max),
                cap_min: caps.clone().min(),
                cap_max: caps.max(),
                uncapped_samples: samples.iter().filter(|s| s.cap.is_none()).count() as u64,
                samples: samples
                    .into_iter()
                    .map(|s| LinkPoint {
                        at: UtcTime(s.at),
                        span_ms: s.span_ms,
                        run_id: s.run_id,
                        in_sync: s.in_sync,
                        cap: s.cap,
                        mbps: s.mbps,
                        pace_mbps: s.pace_mbps,
                        bytes_left: s.bytes_left,
                    })
                    .collect(),
            })
        })
        .collect()
}

/// `pairing p-1 (to vc-site-b)`: a pairing by its id and, when known, its target vCenter.
pub(super) fn pairing_name(pairing_id: &str, target_vcenter: Option<&str>) -> String {
    match target_vcenter {
        Some(vc) => format!("pairing {pairing_id} (to {vc})"),
        None => format!("pairing {pairing_id}"),
    }
}

impl LinkSeries {
    /// `pairing p-1 (to vc-site-b)`, the words that name the link.
    pub fn name(&self) -> String {
        pairing_name(&self.pairing_id, self.target_vcenter.as_deref())
    }

    /// What the series says in one paragraph (after [`LinkSeries::name`]): how many
    /// measurements over how long, the throughput reached, one sync's pace and the caps.
    pub fn summary(&self) -> String {
        let (first, last) = match (self.samples.first(), self.samples.last()) {
            (Some(f), Some(l)) => (f.at, l.at),
            _ => return "no measurement".into(),
        };
        let n = self.samples.len();
        let measurements = if n == 1 {
            "1 measurement".to_string()
        } else {
            format!("{n} measurements")
        };
        let syncs = if self.peak_in_sync == 1 {
            "1 sync"
        } else {
            "syncs"
        };
        let peak_syncs = if self.peak_in_sync == 1 {
            String::new()
        } else {
            format!("{} ", self.peak_in_sync)
        };
        let caps = match (self.cap_min, self.cap_max, self.uncapped_samples) {
            (Some(lo), Some(hi), 0) if lo == hi => format!("the cap stayed at {lo} syncs"),
            (Some(lo), Some(hi), 0) => format!("the cap went from {lo} to {hi} syncs"),
            (Some(lo), Some(hi), _) => {
                format!("the cap went from {lo} to {hi} syncs, and was off at times")
            }
            _ => "no cap (every VM admitted at once)".into(),
        };
        format!(
            "{measurements} from {first} to {last} ({}); throughput reached {} with {peak_syncs}{syncs} \
             in flight (at {}); one sync went at most {}; {caps}.",
            span(last.0 - first.0),
            mbps(self.peak_mbps),
            self.peak_at,
            mbps(self.pace_mbps),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(at: i64, in_sync: u32, cap: Option<u32>, mbps: f64) -> LinkSample {
        LinkSample {
            run_id: "run-1".into(),
            pairing_id: "p-1".into(),
            at,
            span_ms: 2000,
            in_sync,
            cap,
            mbps,
            pace_mbps: mbps / in_sync.max(1) as f64,
            bytes_left: 0,
        }
    }

    #[test]
    fn a_series_per_pairing_with_its_peak_its_pace_and_its_caps() {
        let t = 1_717_228_800_000;
        let mut other = sample(t, 1, None, 50.0);
        other.pairing_id = "p-2".into();
        let sites = [Site {
            pairing_id: "p-1".into(),
            source_vcenter: Some("vc-a".into()),
            target_vcenter: Some("vc-b".into()),
            discovered_at: UtcTime(t),
        }];
        let s = series(
            vec![
                sample(t, 2, Some(2), 400.0),
                other,
                sample(t + 60_000, 4, Some(4), 900.0),
                sample(t + 120_000, 8, Some(6), 880.0),
            ],
            &sites,
        );
        assert_eq!(s.len(), 2);
        let p1 = &s[0];
        assert_eq!(p1.name(), "pairing p-1 (to vc-b)");
        assert_eq!(p1.samples.len(), 3);
        assert_eq!((p1.peak_mbps, p1.peak_in_sync), (900.0, 4));
        assert_eq!(
            (p1.cap_min, p1.cap_max, p1.uncapped_samples),
            (Some(2), Some(6), 0)
        );
        assert_eq!(p1.pace_mbps, 225.0);
        assert_eq!(
            p1.summary(),
            "3 measurements from 2024-06-01 08:00:00 UTC to 2024-06-01 08:02:00 UTC (2m 00s); \
             throughput reached 900 Mbit/s with 4 syncs in flight (at 2024-06-01 08:01:00 UTC); \
             one sync went at most 225 Mbit/s; the cap went from 2 to 6 syncs."
        );
        assert_eq!(s[1].name(), "pairing p-2");
        assert!(
            s[1].summary().ends_with(
                "with 1 sync in flight (at 2024-06-01 08:00:00 UTC); one \
                 sync went at most 50.0 Mbit/s; no cap (every VM admitted at once)."
            ),
            "{}",
            s[1].summary()
        );
    }
}
