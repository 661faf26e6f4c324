//! The audit's "Effective settings": what the import recorded on the batch, and each run of the
//! batch: where it ran, how it ended and, when the run recorded them, the settings it used as
//! the queue stored them ([`UsedSettings`]): the appliance and how its certificate was trusted,
//! the request budget, workers, group sizes, attempts and change window. Never a secret: the
//! queue holds none, and a settings key that names one is redacted all the same, so a future
//! field cannot leak one into a ticket.
//!
//! [`run_rows`] says each run and each setting in words once, for the Markdown and HTML
//! renderers.

use std::time::Duration;

use serde::{Serialize, Serializer};

use super::{span, UtcTime};
use crate::queue::RunRecord;
use crate::settings::{InitialSyncs, UsedSettings};

/// One `vrbulk run` of the batch.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunEntry {
    pub id: String,
    /// `host:pid:run-id` of the process that ran it.
    pub owner: String,
    pub started_at: UtcTime,
    pub finished_at: Option<UtcTime>,
    pub outcome: Option<String>,
    pub relogins: u64,
    /// What it used, as the queue stored it; `None` when the run did not record it.
    #[serde(serialize_with = "as_reported")]
    pub settings: Option<UsedSettings>,
}

impl RunEntry {
    pub fn new(r: &RunRecord) -> RunEntry {
        RunEntry {
            id: r.id.clone(),
            owner: r.owner.clone(),
            started_at: UtcTime(r.started_at),
            finished_at: r.finished_at.map(UtcTime),
            outcome: r.outcome.clone(),
            relogins: r.relogins,
            settings: r.settings.clone(),
        }
    }

    /// `jump01 (pid 4242)` from `jump01:4242:run-1`; the owner whole when it has another shape.
    pub fn host(&self) -> String {
        let mut parts = self.owner.splitn(3, ':');
        match (parts.next(), parts.next(), parts.next()) {
            (Some(host), Some(pid), Some(_)) if !host.is_empty() => format!("{host} (pid {pid})"),
            _ => self.owner.clone(),
        }
    }
}

/// The settings as the queue stored them, but the change window's end, which the record keeps
/// in Unix ms, as a time like every other in the report (`docs/report-schema.md`).
fn as_reported<S: Serializer>(settings: &Option<UsedSettings>, s: S) -> Result<S::Ok, S::Error> {
    let Some(used) = settings else {
        return s.serialize_none();
    };
    let mut shown = serde_json::to_value(used).map_err(serde::ser::Error::custom)?;
    shown["until"] = used.run.until.map(|t| UtcTime(t).rfc3339()).into();
    shown.serialize(s)
}

/// Words that name a secret in a settings key.
const SECRET_KEYS: [&str; 5] = ["password", "secret", "token", "session", "credential"];

/// `settings` with the value of every key that names a secret replaced by `(redacted)`, at any
/// depth.
pub(super) fn redacted(settings: &serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match settings {
        Value::Object(fields) => Value::Object(
            fields
                .iter()
                .map(|(k, v)| {
                    let key = k.to_ascii_lowercase();
                    if SECRET_KEYS.iter().any(|s| key.contains(s)) {
                        (k.clone(), Value::String("(redacted)".into()))
                    } else {
                        (k.clone(), redacted(v))
                    }
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(redacted).collect()),
        other => other.clone(),
    }
}

/// One row of the runs' table: its label and one plain-text value per run.
pub(super) type RunRow = (&'static str, Vec<String>);

/// The runs' table: where each run ran and how it ended, then the settings it used when any run
/// recorded them.
pub(super) fn run_rows(runs: &[RunEntry]) -> Vec<RunRow> {
    let mut rows: Vec<RunRow> = vec![
        ("Run id", runs.iter().map(|x| x.id.clone()).collect()),
        ("Ran on", runs.iter().map(RunEntry::host).collect()),
        (
            "Started",
            runs.iter().map(|x| x.started_at.to_string()).collect(),
        ),
        ("Ended", runs.iter().map(ended).collect()),
        (
            "Re-logins",
            runs.iter().map(|x| x.relogins.to_string()).collect(),
        ),
    ];
    rows.extend(setting_rows(runs));
    rows
}

/// Whether any run recorded the settings it used.
pub(super) fn recorded(runs: &[RunEntry]) -> bool {
    runs.iter().any(|r| r.settings.is_some())
}

/// `2024-06-01 08:08:03 UTC (interrupted)`, or what is known of a run that did not end.
fn ended(run: &RunEntry) -> String {
    match (run.finished_at, &run.outcome) {
        (Some(t), Some(o)) => format!("{t} ({o})"),
        (Some(t), None) => t.to_string(),
        (None, _) => "not recorded (running, or killed)".into(),
    }
}

/// The settings each run used, one row per setting with one value per run (`not recorded`
/// where a run did not say). Empty when no run recorded its settings.
fn setting_rows(runs: &[RunEntry]) -> Vec<RunRow> {
    if !recorded(runs) {
        return Vec::new();
    }
    type Say = fn(&UsedSettings) -> Option<String>;
    let rows: [(&'static str, Say); 9] = [
        ("Appliance", appliance),
        ("TLS trust", trust),
        ("Request budget", budget),
        ("Workers", |s| Some(s.run.workers.to_string())),
        ("Lookup / submit group", |s| {
            Some(format!("{} / {}", s.run.lookup_group, s.run.submit_group))
        }),
        ("Attempts", attempts),
        ("Task polls", |s| {
            Some(format!("at most every {}", span_or_ms(s.run.poll_interval)))
        }),
        ("Admission", admission),
        ("Change window", |s| {
            Some(
                s.run
                    .until
                    .map_or("none".into(), |t| format!("until {}", UtcTime(t))),
            )
        }),
    ];
    // Runs before vrbulk counted the appliance's capacity by its version recorded none: the
    // row only when one did.
    let capacity: &[(&'static str, Say)] = if runs
        .iter()
        .any(|r| r.settings.as_ref().is_some_and(|s| s.capacity.is_some()))
    {
        &[("Appliance limits", capacity)]
    } else {
        &[]
    };
    rows.into_iter()
        .chain(capacity.iter().copied())
        .map(|(label, say)| {
            let cells = runs
                .iter()
                .map(|r| match &r.settings {
                    None => "not recorded".into(),
                    Some(s) => say(s).unwrap_or_else(|| "\u{2014}".into()),
                })
                .collect();
            (label, cells)
        })
        .collect()
}

/// What the runs did not say, when none recorded its settings.
pub(super) const NOT_RECORDED: &str = "The runs of this batch did not record the settings they \
     used (appliance URL, TLS trust, request budget, workers, group sizes, attempts, change \
     window): they ran under a vrbulk older than the one that stores them.";

fn appliance(s: &UsedSettings) -> Option<String> {
    let url = s.url.as_deref()?;
    Some(match &s.api_version {
        Some(v) => format!("{url} (API {v})"),
        None => url.to_string(),
    })
}

fn trust(s: &UsedSettings) -> Option<String> {
    let how = s.tls_trust.as_deref()?;
    let words = match how {
        "system" => "the system's roots",
        "ca_file" => "CA file",
        "thumbprint" => "pinned SHA-256 thumbprint",
        "insecure" => "none: certificate not verified (insecure)",
        other => other,
    };
    Some(match &s.tls_anchor {
        Some(anchor) => format!("{words} {anchor}"),
        None => words.to_string(),
    })
}

fn budget(s: &UsedSettings) -> Option<String> {
    let window = s.rate_window_ms.map_or("the window".into(), |ms| {
        span_or_ms(Duration::from_millis(ms))
    });
    match (s.requests_per_session, s.requests_per_ip) {
        (Some(session), Some(ip)) => Some(format!(
            "{session} requests per session, {ip} per client IP, per {window}"
        )),
        (Some(session), None) => Some(format!("{session} requests per session per {window}")),
        (None, Some(ip)) => Some(format!("{ip} requests per client IP per {window}")),
        (None, None) => None,
    }
}

fn attempts(s: &UsedSettings) -> Option<String> {
    let request = s.run.request_retries;
    Some(match s.max_attempts {
        Some(job) => format!("{job} per job; {request} quick retries per request"),
        None => format!("{request} quick retries per request"),
    })
}

fn capacity(s: &UsedSettings) -> Option<String> {
    let c = s.capacity.as_ref()?;
    Some(format!("{}: {}", c.appliance(), c.summary()))
}

fn admission(s: &UsedSettings) -> Option<String> {
    let order = s.run.order.as_str();
    Some(match s.run.max_initial_syncs {
        InitialSyncs::Auto => {
            format!("auto: as many initial syncs as the link carries best, {order} order")
        }
        InitialSyncs::AtMost(n) => format!("at most {n} initial syncs at once, {order} order"),
        InitialSyncs::All => format!("all at once, {order} order"),
    })
}

/// `2s`, or `500 ms` below a second.
fn span_or_ms(d: Duration) -> String {
    let ms = i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
    if ms < 1000 {
        format!("{ms} ms")
    } else {
        span(ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::AppliedLimits;
    use serde_json::json;

    #[test]
    fn a_key_that_names_a_secret_is_redacted_at_any_depth() {
        let settings = json!({
            "rpo": 60,
            "source": {"url": "https://vr", "password": "VMware1!", "Session_Id": "abc"},
            "profiles": [{"api_token": "t"}],
        });
        assert_eq!(
            redacted(&settings),
            json!({
                "rpo": 60,
                "source": {"url": "https://vr", "password": "(redacted)", "Session_Id": "(redacted)"},
                "profiles": [{"api_token": "(redacted)"}],
            })
        );
    }

    /// A run's record, as the runner writes it with the built-in options and nothing of the
    /// connection.
    fn record(settings: Option<UsedSettings>) -> RunRecord {
        RunRecord {
            id: "7f".into(),
            owner: "jump01:4242:7f".into(),
            started_at: 0,
            finished_at: None,
            outcome: None,
            relogins: 0,
            settings,
        }
    }

    fn used() -> UsedSettings {
        UsedSettings {
            url: None,
            api_version: None,
            tls_trust: None,
            tls_anchor: None,
            requests_per_session: None,
            requests_per_ip: None,
            rate_window_ms: None,
            max_attempts: None,
            run: crate::settings::RunOptions::default(),
            capacity: None,
        }
    }

    #[test]
    fn runs_that_recorded_nothing_make_no_rows_and_one_that_did_says_each_setting() {
        let bare = RunEntry::new(&record(None));
        assert_eq!(bare.host(), "jump01 (pid 4242)");
        assert!(setting_rows(std::slice::from_ref(&bare)).is_empty());
        let silent = RunEntry::new(&record(Some(used())));
        let said = RunEntry::new(&record(Some(UsedSettings {
            url: Some("https://vr01.corp.local:8043".into()),
            tls_trust: Some("thumbprint".into()),
            tls_anchor: Some("AB:CD".into()),
            requests_per_session: Some(50),
            requests_per_ip: Some(100),
            rate_window_ms: Some(60_000),
            max_attempts: Some(3),
            ..used()
        })));
        let rows = setting_rows(&[bare, silent, said]);
        let row = |label: &str| &rows.iter().find(|(l, _)| *l == label).unwrap().1;
        assert_eq!(
            row("Appliance"),
            &["not recorded", "\u{2014}", "https://vr01.corp.local:8043"]
        );
        assert_eq!(row("TLS trust")[2], "pinned SHA-256 thumbprint AB:CD");
        assert_eq!(
            row("Request budget")[2],
            "50 requests per session, 100 per client IP, per 1m 00s"
        );
        assert_eq!(row("Workers")[1..], ["8", "8"]);
        assert_eq!(row("Lookup / submit group")[2], "50 / 20");
        assert_eq!(
            row("Attempts")[1..],
            [
                "4 quick retries per request",
                "3 per job; 4 quick retries per request"
            ]
        );
        assert_eq!(
            row("Admission")[2],
            "auto: as many initial syncs as the link carries best, smallest-first order"
        );
        assert_eq!(row("Change window")[2], "none");
        assert!(
            rows.iter().all(|(l, _)| *l != "Appliance limits"),
            "no run recorded its capacity"
        );
    }

    #[test]
    fn the_capacity_a_run_counted_by_says_where_each_figure_came_from() {
        let counted =
            |capacity: Option<AppliedLimits>| record(Some(UsedSettings { capacity, ..used() }));
        let limits = crate::domain::CapacityLimits {
            replications_per_appliance: Some(4000),
            ..Default::default()
        };
        let rows = setting_rows(&[
            RunEntry::new(&counted(None)),
            RunEntry::new(&counted(Some(crate::workflow::applied(
                &limits,
                Some("9.0.2"),
            )))),
        ]);
        let row = &rows
            .iter()
            .find(|(l, _)| *l == "Appliance limits")
            .unwrap()
            .1;
        assert_eq!(row[0], "\u{2014}");
        assert_eq!(
            row[1],
            "VR 9.0.2: 200 per VR server (assumed: VR 9.0 documents none), 4000 per appliance \
             (set in [limits]), 1000 within one vCenter (assumed: VR 9.0 documents none)"
        );
    }

    #[test]
    fn the_report_says_the_stored_settings_with_the_window_as_a_time() {
        let entry = RunEntry::new(&record(Some(UsedSettings {
            run: crate::settings::RunOptions {
                until: Some(1_717_236_000_000),
                ..crate::settings::RunOptions::default()
            },
            ..used()
        })));
        let shown = serde_json::to_value(&entry).unwrap()["settings"].clone();
        let mut stored = serde_json::to_value(entry.settings.as_ref().unwrap()).unwrap();
        assert_eq!(stored["until"], 1_717_236_000_000_i64);
        stored["until"] = json!("2024-06-01T10:00:00.000Z");
        assert_eq!(shown, stored);
        assert!(serde_json::to_value(RunEntry::new(&record(None))).unwrap()["settings"].is_null());
    }
}
