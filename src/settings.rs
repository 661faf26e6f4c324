//! The settings of a run, from the runner to the report.
//!
//! - [`RunOptions`] is what a run works by: the flags over `[run]` over the built-in defaults
//!   (`config`), typed (durations, [`SubmitOrder`], the window's end as a moment), with the
//!   runner's own knobs.
//! - [`UsedSettings`] is what the queue stores with each run and the report's "Effective
//!   settings" shows as it was stored: the appliance and its trust, the request budget, the
//!   attempts and the [`RunOptions`] themselves, in the names and milliseconds that every vrbulk
//!   since runs were first recorded has written and read (`docs/report-schema.md`).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::domain::{AppliedLimits, CapacityLimits};

/// What a run works by: the flags and `[run]` checked and laid over the built-in defaults, with
/// the runner's own knobs. Built by `config` for a command, and as a struct update over
/// [`Default`] by tests and the demo.
///
/// Serde writes the part a run is known by, which the queue stores with the run
/// ([`UsedSettings`]); the rest (which batch, the runner's window and backoff) is not recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunOptions {
    /// The batch to run; the newest when `None`.
    #[serde(skip)]
    pub batch: Option<i64>,
    /// Requests in flight at most.
    pub workers: usize,
    /// Overrides the batch's attempts per job. Recorded as the attempts the jobs got
    /// ([`UsedSettings::max_attempts`]), which the batch says when no flag did.
    #[serde(skip)]
    pub max_attempts: Option<u32>,
    /// Unix ms after which no new job is claimed (the end of the change window).
    pub until: Option<i64>,
    /// VM names or ids per lookup call.
    pub lookup_group: usize,
    /// Specs per configure call (the appliance takes at most 20).
    pub submit_group: usize,
    /// The shortest gap between two task polls.
    #[serde(rename = "poll_interval_ms", with = "millis")]
    pub poll_interval: Duration,
    /// Submit new VMs only while fewer replications of the pairing are in their initial sync.
    pub max_initial_syncs: Option<usize>,
    /// Which waiting VMs go first when admission frees a slot.
    pub order: SubmitOrder,
    /// Work on a batch another live run holds, sharing its jobs through the queue.
    #[serde(skip)]
    pub join: bool,
    /// `[limits]`: the appliance's capacity where set; the rest follows its version. A run
    /// records the capacity it placed VMs by ([`UsedSettings::capacity`]) once it knows it.
    #[serde(skip)]
    pub capacity: CapacityLimits,
    /// How long a job stays reserved to this run without a heartbeat.
    #[serde(rename = "lease_ms", with = "millis")]
    pub lease: Duration,
    /// Jobs held at once (the appliance holds at most 2000 replications).
    #[serde(skip, default = "unrecorded::window")]
    pub window: usize,
    /// Quick retries inside one request.
    pub request_retries: u32,
    /// Job-level backoff: full jitter over `retry_base * 2^(attempt-1)`, at most `retry_cap`.
    #[serde(skip, default = "unrecorded::retry_base")]
    pub retry_base: Duration,
    #[serde(skip, default = "unrecorded::retry_cap")]
    pub retry_cap: Duration,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            batch: None,
            workers: 8,
            max_attempts: None,
            until: None,
            lookup_group: 50,
            submit_group: 20,
            poll_interval: Duration::from_secs(2),
            max_initial_syncs: None,
            order: SubmitOrder::Input,
            join: false,
            capacity: CapacityLimits::default(),
            lease: Duration::from_secs(60),
            window: 2000,
            request_retries: 4,
            retry_base: Duration::from_secs(5),
            retry_cap: Duration::from_secs(300),
        }
    }
}

/// What a record does not hold reads as the built-in default, never as zero.
mod unrecorded {
    use super::RunOptions;
    use std::time::Duration;

    pub fn window() -> usize {
        RunOptions::default().window
    }

    pub fn retry_base() -> Duration {
        RunOptions::default().retry_base
    }

    pub fn retry_cap() -> Duration {
        RunOptions::default().retry_cap
    }
}

/// A duration as whole milliseconds, the unit the record has always used.
mod millis {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_millis)
    }
}

/// Which waiting VMs go first when a slot frees.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SubmitOrder {
    /// As the batch was imported.
    #[default]
    Input,
    /// The fewest bytes to copy first: the most VMs protected soonest.
    #[value(alias = "smallest_first")]
    SmallestFirst,
}

impl SubmitOrder {
    pub fn as_str(self) -> &'static str {
        match self {
            SubmitOrder::Input => "input",
            SubmitOrder::SmallestFirst => "smallest-first",
        }
    }
}

/// The words of `[run] order`, as the flag takes them: any case, around spaces, `_` for `-`.
impl std::str::FromStr for SubmitOrder {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let word = s.trim().to_ascii_lowercase();
        <SubmitOrder as clap::ValueEnum>::from_str(&word, true)
            .map_err(|_| format!("`{word}`: expected input or smallest-first"))
    }
}

/// What one run used, as the queue stores it with the run (the runs table's `settings_json`)
/// and the report's "Effective settings" shows it: the appliance and how its certificate was
/// trusted, the rate limiter the request budget kept to, the attempts per job, the run's
/// [`RunOptions`] and, once the run has logged in, the capacity it placed VMs by. Never a secret
/// (no password, no session id, no user name either: the operator is on the batch).
///
/// The keys are those every vrbulk that recorded settings has written, so that a run recorded by
/// an older vrbulk reads here and one recorded here reads in an older vrbulk; a key added later
/// is optional. A record that does not decode is no settings ([`UsedSettings::decode`]), never a
/// failed report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsedSettings {
    /// The appliance, `https://host[:port]`, without the API prefix.
    pub url: Option<String>,
    /// `v1` or `v2`.
    pub api_version: Option<String>,
    /// How the appliance's certificate was trusted: `system` (public roots), `ca_file`,
    /// `thumbprint` or `insecure`.
    pub tls_trust: Option<String>,
    /// The CA file's path, or the pinned SHA-256 thumbprint (`AB:CD:…`).
    pub tls_anchor: Option<String>,
    /// The appliance's rate limiter the run's request budget kept to: requests per window for one
    /// session and for one client IP, and the window.
    pub requests_per_session: Option<u32>,
    pub requests_per_ip: Option<u32>,
    pub rate_window_ms: Option<u64>,
    /// Attempts per job: `--max-attempts`, else the batch's own.
    pub max_attempts: Option<u32>,
    #[serde(flatten)]
    pub run: RunOptions,
    /// The appliance's capacity the run placed VMs by, with where each figure came from. Known
    /// once the run has logged in (the figures follow the appliance's version), so it is added
    /// then ([`Queue::record_run_capacity`](crate::queue::Queue::record_run_capacity)); runs of
    /// other batches' kinds and of older vrbulks have none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capacity: Option<AppliedLimits>,
}

impl UsedSettings {
    /// Leniently: a value written by another vrbulk that does not decode is no settings, never
    /// a failed report.
    pub fn decode(json: &str) -> Option<UsedSettings> {
        serde_json::from_str(json).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_order_is_read_from_its_words() {
        assert_eq!("smallest-first".parse(), Ok(SubmitOrder::SmallestFirst));
        assert_eq!(" Smallest_First ".parse(), Ok(SubmitOrder::SmallestFirst));
        assert_eq!(" Input ".parse(), Ok(SubmitOrder::Input));
        assert_eq!(
            "Largest-First".parse::<SubmitOrder>(),
            Err("`largest-first`: expected input or smallest-first".to_string())
        );
    }

    /// A run recorded by the vrbulk that first stored settings (every key, `null` where unset).
    const RECORDED_BEFORE: &str = r#"{"url":"https://vr01.corp.local:8043","api_version":"v2",
        "tls_trust":"thumbprint","tls_anchor":"AB:CD","requests_per_session":50,
        "requests_per_ip":100,"rate_window_ms":60000,"workers":6,"lookup_group":40,
        "submit_group":10,"max_attempts":5,"request_retries":3,"poll_interval_ms":2500,
        "lease_ms":90000,"max_initial_syncs":12,"order":"smallest-first",
        "until":1717236000000,"capacity":null}"#;

    #[test]
    fn a_run_recorded_by_an_older_vrbulk_reads_as_it_was_stored() {
        let used = UsedSettings::decode(RECORDED_BEFORE).unwrap();
        assert_eq!(used.url.as_deref(), Some("https://vr01.corp.local:8043"));
        assert_eq!(used.max_attempts, Some(5));
        assert_eq!(used.capacity, None);
        let run = &used.run;
        assert_eq!(
            (run.workers, run.lookup_group, run.submit_group),
            (6, 40, 10)
        );
        assert_eq!(run.request_retries, 3);
        assert_eq!(run.poll_interval, Duration::from_millis(2500));
        assert_eq!(run.lease, Duration::from_secs(90));
        assert_eq!(run.max_initial_syncs, Some(12));
        assert_eq!(run.order, SubmitOrder::SmallestFirst);
        assert_eq!(run.until, Some(1_717_236_000_000));
        // What is not recorded reads as the built-in default, never as zero.
        assert_eq!(run.window, RunOptions::default().window);
        assert_eq!(run.retry_cap, RunOptions::default().retry_cap);
        assert_eq!(UsedSettings::decode("{\"workers\": \"eight\"}"), None);
    }

    #[test]
    fn a_run_is_stored_with_the_keys_and_units_older_vrbulks_read() {
        let stored = serde_json::to_value(UsedSettings::decode(RECORDED_BEFORE).unwrap()).unwrap();
        let mut before: serde_json::Value = serde_json::from_str(RECORDED_BEFORE).unwrap();
        // A capacity not known yet is left out; an older vrbulk reads that as none too.
        before.as_object_mut().unwrap().remove("capacity");
        assert_eq!(stored, before);
        let options = RunOptions {
            batch: Some(3),
            join: true,
            ..RunOptions::default()
        };
        assert_eq!(
            serde_json::to_value(&options).unwrap(),
            json!({
                "workers": 8, "until": null, "lookup_group": 50, "submit_group": 20,
                "poll_interval_ms": 2000, "max_initial_syncs": null, "order": "input",
                "lease_ms": 60000, "request_retries": 4,
            }),
            "which batch, and the runner's own knobs, are not a run's settings"
        );
    }
}
