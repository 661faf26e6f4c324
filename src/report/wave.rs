//! What `plan` predicts of a wave's initial syncs, per pairing: from what a run of this queue
//! measured of the pairing's link ([`Queue::measured_link`](crate::queue::Queue::measured_link)),
//! when the first VM, half and all of those it would configure would be protected, counted from
//! the start of their syncs ([`Forecast::of`]); without a measurement, that `run` measures it.

use serde::Serialize;

use super::UtcTime;
use crate::queue::MeasuredLink;
use crate::timefmt::span;
use crate::units::{bytes, mbps, pace};
use crate::workflow::forecast::{Forecast, LinkRate};

/// The VMs a plan would configure over one pairing, and when they would be protected.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WaveForecast {
    pub pairing_id: String,
    /// The pairing's target vCenter.
    pub target_vcenter: Option<String>,
    /// VMs the plan would configure over the pairing, and the bytes their syncs copy.
    pub vms: u64,
    pub bytes: i64,
    /// What the newest run of this queue that measured the pairing found at best; `None`
    /// when none did.
    pub measured: Option<Measured>,
    /// From the start of their syncs, if the link carries what was measured: when the first,
    /// half and all of them would be protected. `None` without a measurement.
    pub first_protected_after_ms: Option<i64>,
    pub half_protected_after_ms: Option<i64>,
    pub all_protected_after_ms: Option<i64>,
}

/// A pairing's link as a run measured it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Measured {
    pub run_id: String,
    /// When the best throughput was measured.
    pub at: UtcTime,
    /// The best throughput of all initial syncs together, with the syncs in flight then.
    pub mbps: f64,
    pub in_sync: u32,
    /// The fastest one sync went (a VM's own pace).
    pub pace_mbps: f64,
    /// The run's measurements of the pairing.
    pub samples: u64,
}

impl WaveForecast {
    /// The forecast for VMs of `sizes` bytes over `pairing_id`, by what was `measured` of it.
    pub fn of(
        pairing_id: &str,
        target_vcenter: Option<&str>,
        sizes: &[u64],
        measured: Option<MeasuredLink>,
    ) -> WaveForecast {
        let forecast = measured
            .as_ref()
            .and_then(|m| Forecast::of(sizes, LinkRate::from_mbps(m.mbps, m.pace_mbps)));
        let ms = |d: std::time::Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        WaveForecast {
            pairing_id: pairing_id.to_string(),
            target_vcenter: target_vcenter.map(str::to_owned),
            vms: sizes.len() as u64,
            bytes: sizes
                .iter()
                .map(|b| i64::try_from(*b).unwrap_or(i64::MAX))
                .fold(0, i64::saturating_add),
            measured: measured.map(|m| Measured {
                run_id: m.run_id,
                at: UtcTime(m.at),
                mbps: m.mbps,
                in_sync: m.in_sync,
                pace_mbps: m.pace_mbps,
                samples: m.samples,
            }),
            first_protected_after_ms: forecast.map(|f| ms(f.first)),
            half_protected_after_ms: forecast.map(|f| ms(f.half)),
            all_protected_after_ms: forecast.map(|f| ms(f.all)),
        }
    }

    /// `pairing p-1 (to vc-site-b)`.
    fn name(&self) -> String {
        super::link::pairing_name(&self.pairing_id, self.target_vcenter.as_deref())
    }

    /// What the plan says of the wave's syncs over this pairing, in one paragraph.
    pub fn words(&self) -> String {
        let vms = if self.vms == 1 { "VM" } else { "VMs" };
        let Some(m) = &self.measured else {
            return format!(
                "No run of this queue has measured the link of {} yet, so there is no prediction \
                 for its {} {vms} ({}) to configure: `vrbulk run` measures the link as it admits \
                 the wave, and `vrbulk status` then predicts when the VMs will be protected.",
                self.name(),
                self.vms,
                bytes(self.bytes)
            );
        };
        let wave = format!(
            "the {} {vms} ({}) to configure over {}",
            self.vms,
            bytes(self.bytes),
            self.name()
        );
        let measured = format!(
            "measured by run {} at {}: {} in all with {} in initial sync, {}",
            m.run_id,
            m.at,
            mbps(m.mbps),
            m.in_sync,
            pace(m.pace_mbps)
        );
        match (
            self.first_protected_after_ms,
            self.half_protected_after_ms,
            self.all_protected_after_ms,
        ) {
            (Some(first), Some(half), Some(all)) => format!(
                "Prediction for {wave}, if the link carries what it carried at best when last \
                 {measured}: counted from the start of their syncs, the first protected after \
                 about {}, half after about {}, all after about {}. The configure calls and the \
                 admission's first measurements come before.",
                span(first),
                span(half),
                span(all)
            ),
            _ => format!(
                "No prediction for {wave}: the link, last {measured}, carried nothing to \
                 predict from."
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn measured(mbps: f64, pace: f64) -> MeasuredLink {
        MeasuredLink {
            pairing_id: "p-1".into(),
            run_id: "run-7".into(),
            run_started_at: 1_717_228_000_000,
            mbps,
            at: 1_717_228_800_000,
            in_sync: 8,
            pace_mbps: pace,
            samples: 40,
        }
    }

    #[test]
    fn a_measured_link_predicts_the_wave_by_the_one_formula() {
        // 100 MB/s in all (800 Mbit/s), 25 MB/s a sync (200 Mbit/s): a 10 GB VM alone takes
        // 400 s; four of them need the link for 400 s too; eight for 800 s.
        let sizes = [10_000_000_000u64; 8];
        let f = WaveForecast::of("p-1", Some("vc-b"), &sizes, Some(measured(800.0, 200.0)));
        assert_eq!(
            (
                f.first_protected_after_ms,
                f.half_protected_after_ms,
                f.all_protected_after_ms
            ),
            (Some(400_000), Some(400_000), Some(800_000))
        );
        assert_eq!((f.vms, f.bytes), (8, 80_000_000_000));
        assert_eq!(
            f.words(),
            "Prediction for the 8 VMs (74.5 GiB) to configure over pairing p-1 (to vc-b), if the \
             link carries what it carried at best when last measured by run run-7 at 2024-06-01 \
             08:00:00 UTC: 800 Mbit/s in all with 8 in initial sync, one sync at most 200 \
             Mbit/s: counted from the start of their syncs, the first protected after about 6m \
             40s, half after about 6m 40s, all after about 13m 20s. The configure calls and the \
             admission's first measurements come before."
        );
    }

    #[test]
    fn without_a_measurement_it_says_that_the_run_measures() {
        let f = WaveForecast::of("p-1", None, &[1 << 30], None);
        assert_eq!(f.all_protected_after_ms, None);
        assert!(f.words().starts_with(
            "No run of this queue has measured the link of pairing p-1 yet, so there is no \
             prediction for its 1 VM (1.0 GiB) to configure: `vrbulk run` measures the link"
        ));
        let nothing = WaveForecast::of("p-1", None, &[1 << 30], Some(measured(0.0, 0.0)));
        assert_eq!(nothing.half_protected_after_ms, None);
        assert!(nothing.words().contains("carried nothing to predict from"));
    }
}
