//! The settings of a run, from the flag to the report: each setting is defined once per form it
//! takes, not once per struct it passes through.
//!
//! - [`RunSettings`] is what the operator says: clap flattens it into the flags of `vrbulk run`,
//!   serde reads it as `[run]` of vrbulk.toml. Each field is `None` where it was not said, and
//!   holds the value as given (a `workers = 0`, a `nan` of seconds), so that the file's every
//!   problem is said at once, each named where it came from (`--workers`, `[run] workers`).
//! - [`RunOptions`] is what a run works by: the flags over the file over the built-in defaults,
//!   checked once by [`ConfigFile::for_run`](crate::config::ConfigFile::for_run), typed
//!   (durations, [`SubmitOrder`], the window's end in Unix ms), with the runner's own knobs.
//! - [`UsedSettings`] is what the queue stores with each run and the report's "Effective
//!   settings" shows as it was stored: the appliance and its trust, the request budget, the
//!   attempts and the [`RunOptions`] themselves.
//!
//! Two forms remain because the two faces differ on purpose: the flags and the file speak in the
//! operator's units and may be wrong (a problem is collected, not a parse error that hides the
//! others), while a run's options are valid and are recorded in the names and milliseconds that
//! every vrbulk since runs were first recorded has written and read (`docs/report-schema.md`).

use std::time::Duration;

use clap::builder::{EnumValueParser, TypedValueParser};
use clap::Args;
use serde::{Deserialize, Deserializer, Serialize};

use crate::domain::{AppliedLimits, CapacityLimits};

/// How a run works through a batch, as the operator says it: the flags of `vrbulk run` and the
/// `[run]` keys of vrbulk.toml (a flag wins). How hard a run may press the appliance is the
/// appliance's own rate limit, in `[source]`.
#[derive(Debug, Clone, Default, PartialEq, Args, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunSettings {
    /// Requests in flight at most [default: 8, or [run] workers].
    #[arg(long)]
    pub workers: Option<usize>,
    /// Requests per minute the appliance allows one session [default: 50, or [source]
    /// requests_per_minute]; only if its admin changed the rate limiter.
    #[arg(long)]
    #[serde(skip)]
    pub requests_per_minute: Option<u32>,
    /// Attempts per job before it fails (applies to the batch's unfinished jobs).
    #[arg(long)]
    pub max_attempts: Option<u32>,
    /// The end of the change window: no configure or other change reaches the appliance at or
    /// after it (what was sent is followed to its end; the rest waits, exit 6). `HH:MM` (local,
    /// the next one to come), `YYYY-MM-DD HH:MM` (local) or RFC 3339.
    #[arg(long, value_name = "TIME", value_parser = parse_until)]
    #[serde(skip)]
    pub until: Option<i64>,
    /// VMs per lookup call [default: 50].
    #[arg(long)]
    pub lookup_group: Option<usize>,
    /// Specs per configure call [default and most: 20].
    #[arg(long)]
    pub submit_group: Option<usize>,
    /// The shortest time between two task polls, in seconds [default: 2]; polls are further
    /// spaced to what the tasks take and to the rate limit.
    #[arg(long = "poll-interval", value_name = "POLL_INTERVAL")]
    pub poll_interval_seconds: Option<f64>,
    /// Submit new VMs only while fewer than N replications of each pairing are in their initial
    /// sync (what the appliance reports, all batches counted): one run carries a whole wave at
    /// the pace the replication link can take. `auto` finds N while the wave flows, from the
    /// throughput the appliance reports; `all` sets no cap [default: auto, or [run]
    /// max_initial_syncs].
    #[arg(
        long,
        value_name = "N|auto|all",
        value_parser = clap::builder::StringValueParser::new()
            .try_map(|s| s.parse::<InitialSyncs>().map(Ok::<_, String>))
    )]
    #[serde(default, deserialize_with = "written_or_number")]
    pub max_initial_syncs: Option<Written<InitialSyncs>>,
    /// Which waiting VMs go first when a slot frees: input (the batch's order) or
    /// smallest-first (the most VMs protected soonest) [default: smallest-first, or [run]
    /// order].
    #[arg(
        long,
        value_name = "ORDER",
        ignore_case = true,
        hide_possible_values = true,
        value_parser = EnumValueParser::<SubmitOrder>::new().map(Ok::<_, String>)
    )]
    #[serde(default, deserialize_with = "written")]
    pub order: Option<Written<SubmitOrder>>,
    /// Quick retries inside one request (`[run]` only).
    #[arg(skip)]
    pub request_retries: Option<u32>,
    /// How long a job stays reserved to a run that stopped answering (killed, host lost), in
    /// seconds (`[run]` only).
    #[arg(skip)]
    pub lease_seconds: Option<u64>,
    /// Requests per second and burst of earlier versions: the appliance's own rate limit
    /// (`[source] requests_per_minute`) paces a run now. Read only to say so, so that an older
    /// settings file still works.
    #[arg(skip)]
    pub rate: Option<toml::Value>,
    #[arg(skip)]
    pub burst: Option<toml::Value>,
}

/// A value as the settings file wrote it: what it means, or why it means nothing. Kept rather
/// than refused while the file is read, so that the problem is said with the file's others
/// instead of as the one parse error that would hide them. A flag is typed by clap, and always
/// means something.
pub type Written<T> = Result<T, String>;

fn written<'de, D, T>(deserializer: D) -> Result<Option<Written<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: std::str::FromStr<Err = String>,
{
    Ok(Some(String::deserialize(deserializer)?.parse()))
}

/// A setting the file may write as a number (`10`) or a word (`"auto"`).
fn written_or_number<'de, D, T>(deserializer: D) -> Result<Option<Written<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: std::str::FromStr<Err = String>,
{
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Either {
        Number(i64),
        Word(String),
    }
    Ok(Some(match Either::deserialize(deserializer)? {
        Either::Number(n) => n.to_string().parse(),
        Either::Word(w) => w.parse(),
    }))
}

/// What a run works by: [`RunSettings`] checked and laid over the built-in defaults, with the
/// runner's own knobs. Built by [`ConfigFile::for_run`](crate::config::ConfigFile::for_run) for
/// a command, and as a struct update over [`Default`] by tests and the demo.
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
    /// How many initial syncs of a pairing may run at once.
    #[serde(with = "initial_syncs")]
    pub max_initial_syncs: InitialSyncs,
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
            max_initial_syncs: InitialSyncs::Auto,
            order: SubmitOrder::SmallestFirst,
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

/// How many initial syncs of a pairing a configure run lets run at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum InitialSyncs {
    /// As many as keep the link's throughput at its best, found while the wave flows.
    #[default]
    Auto,
    /// At most this many.
    AtMost(usize),
    /// No cap: every VM is configured as soon as the request budget lets it go.
    All,
}

impl InitialSyncs {
    /// The most an operator may pin: the appliance holds at most 2000 replications.
    pub const MOST: usize = 2000;

    /// Whether new VMs wait for a slot.
    pub fn caps(self) -> bool {
        self != InitialSyncs::All
    }
}

impl std::fmt::Display for InitialSyncs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            InitialSyncs::Auto => f.write_str("auto"),
            InitialSyncs::AtMost(n) => write!(f, "{n}"),
            InitialSyncs::All => f.write_str("all"),
        }
    }
}

/// `auto`, `all`, or a number from 1 to 2000, in any case and around spaces.
impl std::str::FromStr for InitialSyncs {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let word = s.trim().to_ascii_lowercase();
        match word.as_str() {
            "auto" => return Ok(InitialSyncs::Auto),
            "all" => return Ok(InitialSyncs::All),
            _ => {}
        }
        match word.parse::<usize>() {
            Ok(n) if (1..=Self::MOST).contains(&n) => Ok(InitialSyncs::AtMost(n)),
            _ => Err(format!(
                "`{word}`: expected auto, all, or a number between 1 and {}",
                Self::MOST
            )),
        }
    }
}

/// As every record has stored it: a number for a cap, `null` for none; `"auto"` since issue 19.
mod initial_syncs {
    use super::InitialSyncs;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer>(v: &InitialSyncs, s: S) -> Result<S::Ok, S::Error> {
        match v {
            InitialSyncs::Auto => s.serialize_str("auto"),
            InitialSyncs::AtMost(n) => n.serialize(s),
            InitialSyncs::All => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<InitialSyncs, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Stored {
            Cap(usize),
            Word(String),
        }
        match Option::<Stored>::deserialize(d)? {
            None => Ok(InitialSyncs::All),
            Some(Stored::Cap(n)) => Ok(InitialSyncs::AtMost(n)),
            Some(Stored::Word(w)) => w.parse().map_err(serde::de::Error::custom),
        }
    }
}

/// Which waiting VMs go first when a slot frees.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SubmitOrder {
    /// As the batch was imported.
    Input,
    /// The fewest bytes to copy first: the most VMs protected soonest.
    #[default]
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

/// `HH:MM` (the next one, local), `YYYY-MM-DD HH:MM` (local) or an RFC 3339 instant, as Unix ms:
/// the value parser of `--until`.
pub fn parse_until(text: &str) -> Result<i64, String> {
    let text = text.trim();
    let now = jiff::ZonedDateTime::now();
    let local = |dt: jiff::civil::DateTime| {
        dt.to_zoned_datetime(now.time_zone().clone())
            .map(|z| z.timestamp())
            .map_err(|e| e.to_string())
    };
    let instant = if let Ok(t) = text.parse::<jiff::Timestamp>() {
        t
    } else if let Ok(dt) = text.parse::<jiff::civil::DateTime>() {
        local(dt)?
    } else if let Ok(t) = text.parse::<jiff::civil::Time>() {
        let today = local(now.date().to_datetime(t))?;
        if today > now.timestamp() {
            today
        } else {
            today
                .checked_add(jiff::SignedDuration::from_hours(24))
                .map_err(|e| e.to_string())?
        }
    } else {
        return Err(format!(
            "`{text}`: expected HH:MM, YYYY-MM-DD HH:MM or an RFC 3339 time"
        ));
    };
    Ok(instant.as_millisecond())
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

    #[test]
    fn until_understands_clock_times_and_instants() {
        let now = jiff::Timestamp::now().as_millisecond();
        let next = parse_until("05:30").unwrap();
        assert!(next > now && next <= now + 24 * 3600 * 1000);
        assert_eq!(
            parse_until("2026-11-27T05:30:00Z").unwrap(),
            1_795_757_400_000
        );
        assert!(parse_until("half past five").unwrap_err().contains("HH:MM"));
    }

    #[test]
    fn the_file_is_read_in_its_own_words() {
        let run: RunSettings = toml::from_str(
            "workers = 4\npoll_interval_seconds = 2.5\nlease_seconds = 90\norder = \" Input \"\n",
        )
        .unwrap();
        assert_eq!(run.workers, Some(4));
        assert_eq!(run.poll_interval_seconds, Some(2.5));
        assert_eq!(run.lease_seconds, Some(90));
        assert_eq!(run.order, Some(Ok(SubmitOrder::Input)));
        let run: RunSettings = toml::from_str("order = \"random\"\n").unwrap();
        assert!(run.order.is_some_and(|o| o.is_err()), "kept, to be said");
        for flag_only in ["until = 5", "requests_per_minute = 5", "poll_interval = 2"] {
            assert!(
                toml::from_str::<RunSettings>(flag_only).is_err(),
                "{flag_only}"
            );
        }
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
        assert_eq!(run.max_initial_syncs, InitialSyncs::AtMost(12));
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
                "poll_interval_ms": 2000, "max_initial_syncs": "auto", "order": "smallest-first",
                "lease_ms": 60000, "request_retries": 4,
            }),
            "which batch, and the runner's own knobs, are not a run's settings"
        );
    }

    #[test]
    fn the_initial_syncs_are_stored_as_older_records_wrote_them_and_read_back() {
        for (v, stored) in [
            (InitialSyncs::Auto, json!("auto")),
            (InitialSyncs::AtMost(12), json!(12)),
            (InitialSyncs::All, json!(null)),
        ] {
            let options = RunOptions {
                max_initial_syncs: v,
                ..RunOptions::default()
            };
            let json = serde_json::to_value(&options).unwrap();
            assert_eq!(json["max_initial_syncs"], stored);
            let back: RunOptions = serde_json::from_value(json).unwrap();
            assert_eq!(back.max_initial_syncs, v);
        }
        assert_eq!(" AUTO ".parse(), Ok(InitialSyncs::Auto));
        assert_eq!("all".parse(), Ok(InitialSyncs::All));
        for wrong in ["0", "2001", "some", "-1"] {
            let e = wrong.parse::<InitialSyncs>().unwrap_err();
            assert!(e.contains("expected auto, all, or a number"), "{e}");
        }
    }
}
