//! The replication link as the commands that follow a run say it: `status`'s line of the newest
//! measurement with its prediction of when the batch's VMs will be protected, the progress
//! line's `cap 9 (auto) · 8 syncing · 940 Mbit/s`, and `run --until`'s word on whether the
//! change window holds the wave's configure calls.

use std::time::Duration;

use serde::Serialize;

use crate::queue::{Batch, LinkSample, Queue};
use crate::timefmt::{span, utc};
use crate::units::{bytes, mbps, pace};
use crate::workflow::forecast::{Forecast, LinkRate};
use crate::workflow::wave::{bytes_left, WaveCalls};

/// What `status` says of the link: the newest measurement of the batch's runs, and, from it,
/// when the VMs not yet protected would be.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LinkStatus {
    pub measured: LinkSample,
    /// The pairings the measuring run sampled: a prediction needs exactly one.
    pub pairings: usize,
    /// With one pairing: the VMs with a sync still to come whose size is known, and those
    /// not looked up yet.
    pub vms_left: u64,
    pub unknown: u64,
    pub prediction: Option<Prediction>,
}

/// When the batch's VMs not yet protected would be, counted from `from` (Unix ms), if the link
/// carries what it carried at the measurement.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Prediction {
    pub from: i64,
    /// VMs counted, and the bytes they still have to copy.
    pub vms: u64,
    pub bytes: i64,
    /// VMs not looked up yet, whose size is not known: left out.
    pub unknown: u64,
    pub first_at: i64,
    pub half_at: i64,
    pub all_at: i64,
}

/// The link of `batch` as its newest run measured it, with a prediction from `now` when that
/// measurement says something and the batch is one pairing's; `None` when no run measured it.
pub fn status(queue: &Queue, batch: &Batch, now: i64) -> anyhow::Result<Option<LinkStatus>> {
    let Some(measured) = queue.latest_link_sample(batch.id, i64::MIN)? else {
        return Ok(None);
    };
    let mut pairings: Vec<String> = queue
        .link_samples(batch.id)?
        .into_iter()
        .filter(|s| s.run_id == measured.run_id)
        .map(|s| s.pairing_id)
        .collect();
    pairings.sort_unstable();
    pairings.dedup();
    let rate = LinkRate::from_mbps(measured.mbps, measured.pace_mbps);
    let left = if pairings.len() == 1 {
        bytes_left(&queue.jobs(batch.id)?, &queue.protection(batch.id)?)
    } else {
        Default::default()
    };
    let prediction = if pairings.len() == 1 {
        Forecast::of(&left.per_vm, rate).map(|f| {
            let at = |d: Duration| now.saturating_add(i64::try_from(d.as_millis()).unwrap_or(0));
            Prediction {
                from: now,
                vms: left.per_vm.len() as u64,
                bytes: left.per_vm.iter().map(|b| *b as i64).sum(),
                unknown: left.unknown,
                first_at: at(f.first),
                half_at: at(f.half),
                all_at: at(f.all),
            }
        })
    } else {
        None
    };
    Ok(Some(LinkStatus {
        pairings: pairings.len(),
        vms_left: left.per_vm.len() as u64,
        unknown: left.unknown,
        measured,
        prediction,
    }))
}

/// `cap 6` or `no cap`.
fn cap(c: Option<u32>) -> String {
    c.map_or("no cap".into(), |n| format!("cap {n}"))
}

/// The lines `status` prints of the link, from `now`.
pub fn status_words(l: &LinkStatus, now: i64) -> String {
    let m = &l.measured;
    let mut out = format!(
        "\nlink of pairing {}, as measured at {} ({} ago) by run {}: {}, {} in initial sync, {} \
         in all, {}\n",
        m.pairing_id,
        utc(m.at),
        span(now - m.at),
        m.run_id,
        cap(m.cap),
        m.in_sync,
        mbps(m.mbps),
        pace(m.pace_mbps)
    );
    let said = match &l.prediction {
        Some(p) => {
            let vms = if p.vms == 1 { "VM" } else { "VMs" };
            let when = |at: i64| format!("in about {} ({})", span(at - p.from), utc(at));
            let unknown = match p.unknown {
                0 => String::new(),
                n => format!(
                    "; {n} {} not looked up yet, whose size is not known, {} not counted",
                    if n == 1 { "VM" } else { "VMs" },
                    if n == 1 { "is" } else { "are" }
                ),
            };
            format!(
                "prediction, if the link goes on carrying what it carried then: of the {} {vms} \
                 not yet protected ({} to copy), the first protected {}, half {}, all {}{unknown}",
                p.vms,
                bytes(p.bytes),
                when(p.first_at),
                when(p.half_at),
                when(p.all_at)
            )
        }
        None if l.pairings > 1 => format!(
            "no prediction: the run measured {} pairings, whose links differ, and vrbulk \
             predicts one link at a time (`vrbulk plan` does, per pairing)",
            l.pairings
        ),
        None if l.vms_left == 0 && l.unknown == 0 => {
            "no prediction: no VM of the batch has a sync still to come".into()
        }
        None if l.vms_left == 0 => format!(
            "no prediction: {} not been looked up yet, so no size is known",
            count(l.unknown, "VM left has", "VMs left have")
        ),
        None => "no prediction: nothing was copying at that measurement".into(),
    };
    out.push_str(&said);
    out.push('\n');
    out
}

/// `cap 9 (auto) · 8 syncing · 940 Mbit/s`: the newest measurement, for the progress line;
/// `(auto)` when the run finds the cap itself.
pub fn progress_words(s: &LinkSample, auto: bool) -> String {
    let how = if auto && s.cap.is_some() {
        " (auto)"
    } else {
        ""
    };
    format!(
        "{}{how} · {} syncing · {}",
        cap(s.cap),
        s.in_sync,
        mbps(s.mbps)
    )
}

/// Whether the change window that ends at `until` holds the calls of `calls`, from `now`, when
/// the request budget lets `quota` requests go per `window` and the polls that follow the
/// tasks may take a fifth of it while other work waits ([`crate::runner::pacing`]): one
/// sentence, or a warning. The initial syncs are never counted: they go on after the window.
/// `admitting`: VMs also wait for a sync slot, which is not counted either.
pub fn window_words(
    until: i64,
    now: i64,
    calls: WaveCalls,
    quota: u32,
    window: Duration,
    admitting: bool,
) -> String {
    let left = until - now;
    if left <= 0 {
        return format!(
            "warning: the change window closed at {}: nothing will be sent",
            utc(until)
        );
    }
    let total = calls.total();
    let vms = if calls.vms == 1 { "VM" } else { "VMs" };
    // Four fifths of the budget go at once, then as much again each window.
    let share = (u64::from(quota) * 4 / 5).max(1);
    let window_ms = i64::try_from(window.as_millis()).unwrap_or(i64::MAX).max(1);
    let need_ms = i64::try_from(total.div_ceil(share).saturating_sub(1))
        .unwrap_or(i64::MAX)
        .saturating_mul(window_ms);
    let per_minute = f64::from(quota) * 60_000.0 / window_ms as f64;
    let took = if need_ms == 0 {
        "within one rate window".to_string()
    } else {
        format!("about {}", span(need_ms))
    };
    let what = format!(
        "the {total} calls the wave's configures need ({} and {} for {} {vms}) at {} a minute, \
         a fifth of it kept for the polls that follow the tasks ({took})",
        count(calls.lookups, "lookup at most", "lookups at most"),
        count(calls.configures, "configure call", "configure calls"),
        calls.vms,
        rate(per_minute),
    );
    let slots = if admitting {
        "; VMs also wait for a free initial-sync slot, which this does not count"
    } else {
        ""
    };
    let window = format!(
        "the change window ({} left, until {})",
        span(left),
        utc(until)
    );
    if total == 0 {
        format!("{window}: the wave has no configure call left to send")
    } else if need_ms <= left {
        format!("{window} holds {what}{slots}; the initial syncs go on after the window")
    } else {
        let fit = (calls.vms as f64 * left as f64 / need_ms as f64).floor() as u64;
        format!(
            "warning: {window} cannot hold {what}: about {fit} of the {} {vms} can be sent \
             before it closes, the rest wait for the next run{slots}",
            calls.vms
        )
    }
}

/// `1 lookup`, `3 lookups`.
fn count(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// `50`, or `12.5` when the budget is not a whole number a minute.
fn rate(per_minute: f64) -> String {
    if (per_minute - per_minute.round()).abs() < 0.05 {
        format!("{per_minute:.0}")
    } else {
        format!("{per_minute:.1}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(cap: Option<u32>) -> LinkSample {
        LinkSample {
            run_id: "run-1".into(),
            pairing_id: "p-1".into(),
            at: 1_717_228_800_000,
            span_ms: 2000,
            in_sync: 8,
            cap,
            mbps: 940.4,
            pace_mbps: 120.0,
            bytes_left: 0,
        }
    }

    #[test]
    fn the_progress_line_says_the_cap_the_syncs_and_the_rate() {
        assert_eq!(
            progress_words(&sample(Some(9)), true),
            "cap 9 (auto) · 8 syncing · 940 Mbit/s"
        );
        assert_eq!(
            progress_words(&sample(Some(9)), false),
            "cap 9 · 8 syncing · 940 Mbit/s"
        );
        assert_eq!(
            progress_words(&sample(None), true),
            "no cap · 8 syncing · 940 Mbit/s"
        );
    }

    #[test]
    fn without_a_prediction_status_says_why() {
        let now = 1_717_228_860_000;
        let mut l = LinkStatus {
            measured: sample(Some(4)),
            pairings: 1,
            vms_left: 0,
            unknown: 0,
            prediction: None,
        };
        let said = status_words(&l, now);
        assert!(
            said.starts_with(
                "\nlink of pairing p-1, as measured at 2024-06-01 08:00:00 UTC (1m 00s ago) by \
                 run run-1: cap 4, 8 in initial sync, 940 Mbit/s in all, one sync at most 120 \
                 Mbit/s\n"
            ),
            "{said}"
        );
        assert!(said.ends_with("no prediction: no VM of the batch has a sync still to come\n"));
        l.unknown = 1;
        assert!(status_words(&l, now).ends_with(
            "no prediction: 1 VM left has not been looked up yet, so no size is known\n"
        ));
        l.vms_left = 2;
        l.measured.mbps = 0.0;
        assert!(status_words(&l, now)
            .ends_with("no prediction: nothing was copying at that measurement\n"));
        l.pairings = 2;
        assert!(status_words(&l, now).contains("no prediction: the run measured 2 pairings"));
    }

    #[test]
    fn the_window_holds_the_calls_or_says_how_many_vms_it_can_send() {
        let now = 1_717_228_800_000;
        let minute = Duration::from_secs(60);
        let calls = WaveCalls {
            vms: 300,
            lookups: 6,
            configures: 15,
        };
        // 21 calls at 40 a minute (50 less the polls' fifth): all in the first window.
        assert_eq!(
            window_words(now + 7_800_000, now, calls, 50, minute, false),
            "the change window (2h 10m left, until 2024-06-01 10:10:00 UTC) holds the 21 calls \
             the wave's configures need (6 lookups at most and 15 configure calls for 300 VMs) \
             at 50 a minute, a fifth of it kept for the polls that follow the tasks (within one \
             rate window); the initial syncs go on after the window"
        );
        let one = WaveCalls {
            vms: 1,
            lookups: 1,
            configures: 1,
        };
        assert!(window_words(now + 60_000, now, one, 50, minute, false)
            .contains("(1 lookup at most and 1 configure call for 1 VM) at 50 a minute"));
        // At 5 a minute, 4 of them for these calls: 21 calls take 5 more windows; a 2-minute
        // window sends about 2/5 of the VMs.
        let short = window_words(now + 120_000, now, calls, 5, minute, true);
        assert!(
            short.starts_with("warning: the change window (2m 00s left, until"),
            "{short}"
        );
        assert!(
            short.contains(
                "(about 5m 00s): about 120 of the 300 VMs can be sent before it closes, the rest \
                 wait for the next run; VMs also wait for a free initial-sync slot"
            ),
            "{short}"
        );
        assert!(window_words(now - 1, now, calls, 50, minute, false)
            .starts_with("warning: the change window closed"));
    }
}
