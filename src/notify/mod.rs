//! Notifications: the channels of `[[notify.webhook]]`, `[[notify.syslog]]` and
//! `[[notify.email]]`, the message they all render from ([`Notice`]), and delivery from the
//! queue's outbox. A message goes into the outbox in the transaction that records what it tells;
//! [`deliver_due`] sends what is due, marks what a receiver took and puts off what failed with
//! backoff. A channel that fails never fails the command that sends: it is logged, and the next
//! vrbulk process that delivers tries again with the same message id.

mod email;
mod syslog;
mod webhook;

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::queue::findings::FindingChange;
use crate::queue::outbox::{OutboxRow, Outgoing};
use crate::queue::{BatchId, Queue, QueueError};

pub use email::EmailChannel;
pub use syslog::{SyslogChannel, SyslogTransport};
pub use webhook::{WebhookChannel, WebhookFormat};

/// `[notify]`: any number of channels of each kind.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifySettings {
    #[serde(default)]
    pub webhook: Vec<WebhookChannel>,
    #[serde(default)]
    pub syslog: Vec<SyslogChannel>,
    #[serde(default)]
    pub email: Vec<EmailChannel>,
    /// Where a relative `ca_file` is found: the settings file's folder.
    #[serde(skip)]
    pub base: Option<PathBuf>,
}

/// One configured channel, by the name messages are queued for.
#[derive(Debug, Clone)]
pub enum Channel {
    Webhook(WebhookChannel),
    Syslog(SyslogChannel),
    Email(EmailChannel),
}

impl NotifySettings {
    /// Every channel with its name: its `name`, or `webhook-1`, `syslog-2`, … by its place.
    pub fn channels(&self) -> Vec<(String, Channel)> {
        let named = |name: &Option<String>, kind: &str, i: usize| {
            name.clone().unwrap_or_else(|| format!("{kind}-{}", i + 1))
        };
        let mut out = Vec::new();
        for (i, c) in self.webhook.iter().enumerate() {
            out.push((named(&c.name, "webhook", i), Channel::Webhook(c.clone())));
        }
        for (i, c) in self.syslog.iter().enumerate() {
            out.push((named(&c.name, "syslog", i), Channel::Syslog(c.clone())));
        }
        for (i, c) in self.email.iter().enumerate() {
            out.push((named(&c.name, "email", i), Channel::Email(c.clone())));
        }
        out
    }

    pub fn is_empty(&self) -> bool {
        self.webhook.is_empty() && self.syslog.is_empty() && self.email.is_empty()
    }

    /// Every problem of the section, as (key, message).
    pub fn problems(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for (i, c) in self.webhook.iter().enumerate() {
            out.extend(
                c.problems()
                    .into_iter()
                    .map(|(k, m)| (format!("[[notify.webhook]] {} {k}", i + 1), m)),
            );
        }
        for (i, c) in self.syslog.iter().enumerate() {
            out.extend(
                c.problems()
                    .into_iter()
                    .map(|(k, m)| (format!("[[notify.syslog]] {} {k}", i + 1), m)),
            );
        }
        for (i, c) in self.email.iter().enumerate() {
            out.extend(
                c.problems()
                    .into_iter()
                    .map(|(k, m)| (format!("[[notify.email]] {} {k}", i + 1), m)),
            );
        }
        let mut names: Vec<String> = self.channels().into_iter().map(|(n, _)| n).collect();
        names.sort();
        for pair in names.windows(2) {
            if pair[0] == pair[1] {
                out.push((
                    "[notify] name".into(),
                    format!("two channels are named {:?}: names must differ", pair[0]),
                ));
            }
        }
        out
    }
}

/// A finding that opened or cleared, as a message carries it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FindingNote {
    /// `opened` or `cleared`.
    pub change: String,
    pub batch: BatchId,
    pub vm_id: String,
    pub vm: Option<String>,
    /// `rpo_violation`, `error`, `paused`, `not_active`, `removed` or `uncovered`.
    pub finding: String,
    pub detail: Option<String>,
    /// RFC 3339, UTC.
    pub first_seen: String,
    pub opened: String,
    pub cleared: Option<String>,
}

impl FindingNote {
    pub fn of(c: &FindingChange) -> FindingNote {
        FindingNote {
            change: c.change.to_string(),
            batch: c.batch,
            vm_id: c.vm_id.clone(),
            vm: c.vm_name.clone(),
            finding: c.kind.key().to_string(),
            detail: c.detail.clone(),
            first_seen: rfc3339(c.first_seen_at),
            opened: rfc3339(c.opened_at),
            cleared: c.cleared_at.map(rfc3339),
        }
    }

    /// `opened: web-07 (batch 3) behind its RPO: 42 minutes behind`
    pub fn line(&self) -> String {
        let kind = crate::queue::findings::FindingKind::from_key(&self.finding)
            .map(|k| k.words())
            .unwrap_or(&self.finding);
        let vm = self.vm.as_deref().unwrap_or(&self.vm_id);
        let detail = self
            .detail
            .as_deref()
            .map(|d| format!(": {d}"))
            .unwrap_or_default();
        format!(
            "{}: {vm} (batch {}) {kind}{detail}",
            self.change, self.batch
        )
    }
}

/// What every channel renders from; the webhook's JSON body as documented in the README.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Notice {
    /// The same on every channel and every retry: what a receiver deduplicates on.
    pub id: String,
    /// `monitor_digest`, `run_ended`, `window_closed`, `credentials_refused` or `test`.
    pub kind: String,
    /// When it was written, RFC 3339 UTC.
    pub at: String,
    /// The host vrbulk ran on.
    pub host: String,
    /// One line: a mail's subject, a chat message's first line.
    pub title: String,
    /// The whole message as plain text (also the `text` Slack and Teams show).
    pub text: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch: Option<BatchId>,
    /// A digest's findings that opened or cleared.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub findings: Vec<FindingNote>,
    /// A run's counts by job state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub counts: Option<serde_json::Value>,
    /// The report's path; a mail attaches the file when it can read it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report: Option<String>,
    /// `info`, `notice` or `warning`: the syslog severity, and how loud a chat should be.
    pub severity: String,
}

impl Notice {
    pub fn new(kind: &str, title: String, text: String, severity: &str) -> Notice {
        let (_, host) = crate::operator::who();
        Notice {
            id: format!(
                "vrbulk-{:016x}{:016x}",
                fastrand::u64(..),
                fastrand::u64(..)
            ),
            kind: kind.into(),
            at: rfc3339(now_ms()),
            host,
            title,
            text,
            batch: None,
            findings: Vec::new(),
            counts: None,
            report: None,
            severity: severity.into(),
        }
    }

    /// The outbox rows of this message for `channels`.
    pub fn outgoing(&self, channels: &[String]) -> Outgoing {
        Outgoing {
            message_id: self.id.clone(),
            kind: self.kind.clone(),
            message_json: serde_json::to_string(self).unwrap_or_else(|_| "{}".into()),
            channels: channels.to_vec(),
        }
    }

    /// The digest of one monitor cycle: what opened and what cleared.
    pub fn digest(changes: &[FindingChange], open_now: u64) -> Notice {
        let findings: Vec<FindingNote> = changes.iter().map(FindingNote::of).collect();
        let opened = findings.iter().filter(|f| f.change == "opened").count();
        let cleared = findings.len() - opened;
        let title = format!(
            "vrbulk monitor: {opened} finding{} opened, {cleared} cleared, {open_now} open",
            if opened == 1 { "" } else { "s" }
        );
        let mut text = format!("{title}\n");
        for f in &findings {
            text.push_str(&format!("- {}\n", f.line()));
        }
        let batches: std::collections::BTreeSet<BatchId> =
            findings.iter().map(|f| f.batch).collect();
        let mut notice = Notice::new(
            "monitor_digest",
            title,
            text,
            if opened > 0 { "warning" } else { "notice" },
        );
        if batches.len() == 1 {
            notice.batch = batches.into_iter().next();
        }
        notice.findings = findings;
        notice
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Unix ms as RFC 3339, UTC, to the second.
pub fn rfc3339(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms)
        .map(|t| format!("{t:.0}"))
        .unwrap_or_else(|_| ms.to_string())
}

#[derive(Debug, Error)]
pub enum SendError {
    #[error("{0}")]
    Webhook(String),
    #[error("{0}")]
    Syslog(String),
    #[error("{0}")]
    Email(String),
    #[error("the message in the outbox does not decode: {0}")]
    Garbled(String),
}

/// How long one try of one channel may take.
const SEND_TIMEOUT: Duration = Duration::from_secs(15);

impl Channel {
    pub fn kind(&self) -> &'static str {
        match self {
            Channel::Webhook(_) => "webhook",
            Channel::Syslog(_) => "syslog",
            Channel::Email(_) => "email",
        }
    }

    /// Where it sends, for the operator (no credentials).
    pub fn target(&self) -> String {
        match self {
            Channel::Webhook(c) => c.shown_url(),
            Channel::Syslog(c) => format!("{} over {}", c.address, c.transport.word()),
            Channel::Email(c) => format!("{} via {}", c.to.join(", "), c.server),
        }
    }

    /// Sends `notice` once.
    pub async fn send(&self, notice: &Notice, base: Option<&PathBuf>) -> Result<(), SendError> {
        let sent = tokio::time::timeout(SEND_TIMEOUT, async {
            match self {
                Channel::Webhook(c) => c.send(notice).await,
                Channel::Syslog(c) => c.send(notice, base).await,
                Channel::Email(c) => c.send(notice, base).await,
            }
        })
        .await;
        match sent {
            Ok(result) => result,
            Err(_) => Err(match self {
                Channel::Webhook(_) => SendError::Webhook("no answer within 15 s".into()),
                Channel::Syslog(_) => SendError::Syslog("no answer within 15 s".into()),
                Channel::Email(_) => SendError::Email("no answer within 15 s".into()),
            }),
        }
    }
}

/// What one delivery did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Delivered {
    /// (message id, channel) taken by their receivers.
    pub sent: Vec<(String, String)>,
    /// (message id, channel, the channel's words) that failed and wait for a retry.
    pub failed: Vec<(String, String, String)>,
    /// Rows for channels the settings no longer name: left in the outbox.
    pub unknown: usize,
}

/// Backoff after the `attempts`-th failure: 5 s, 10 s, 20 s, … at most 15 minutes.
pub fn backoff(attempts: i64) -> Duration {
    let exp = attempts.clamp(1, 20) as u32 - 1;
    Duration::from_secs((5u64 << exp.min(10)).min(900))
}

/// Sends every outbox row that is due, oldest first, each channel on its own: one failing
/// channel delays only its own messages.
pub async fn deliver_due(
    queue: &mut Queue,
    settings: &NotifySettings,
) -> Result<Delivered, QueueError> {
    let channels = settings.channels();
    let mut done = Delivered::default();
    let mut failing: std::collections::HashSet<String> = Default::default();
    for row in queue.outbox_due(500)? {
        let Some((_, channel)) = channels.iter().find(|(n, _)| *n == row.channel) else {
            done.unknown += 1;
            continue;
        };
        // Keep each channel's order: after a failure its later messages wait for the retry.
        if failing.contains(&row.channel) {
            continue;
        }
        match send_row(channel, &row, settings.base.as_ref()).await {
            Ok(()) => {
                queue.outbox_delivered(&row.message_id, &row.channel)?;
                tracing::info!(channel = %row.channel, id = %row.message_id, kind = %row.kind, "notification delivered");
                done.sent.push((row.message_id, row.channel));
            }
            Err(e) => {
                let words = e.to_string();
                let wait = backoff(row.attempts + 1);
                tracing::warn!(channel = %row.channel, id = %row.message_id, error = %words, retry_in_s = wait.as_secs(), "notification not delivered");
                queue.outbox_failed(
                    &row.message_id,
                    &row.channel,
                    &words,
                    wait.as_millis() as i64,
                )?;
                failing.insert(row.channel.clone());
                done.failed.push((row.message_id, row.channel, words));
            }
        }
    }
    Ok(done)
}

async fn send_row(
    channel: &Channel,
    row: &OutboxRow,
    base: Option<&PathBuf>,
) -> Result<(), SendError> {
    let notice: Notice =
        serde_json::from_str(&row.message_json).map_err(|e| SendError::Garbled(e.to_string()))?;
    channel.send(&notice, base).await
}

/// Puts `notice` into the outbox for every channel of `settings` and delivers what is due;
/// nothing when no channel is set. Never fails the caller: a failure is logged and the message
/// waits in the outbox for the next vrbulk that delivers.
pub async fn send_now(queue: &mut Queue, settings: &NotifySettings, notice: &Notice) -> Delivered {
    if settings.is_empty() {
        return Delivered::default();
    }
    let names: Vec<String> = settings.channels().into_iter().map(|(n, _)| n).collect();
    if let Err(e) = queue.enqueue(&notice.outgoing(&names)) {
        tracing::warn!(error = %e, "could not put the notification into the outbox");
        return Delivered::default();
    }
    match deliver_due(queue, settings).await {
        Ok(d) => d,
        Err(e) => {
            tracing::warn!(error = %e, "could not deliver the notifications");
            Delivered::default()
        }
    }
}

/// A `ca_file` of a channel, relative to the settings file's folder.
fn ca_path(ca: &str, base: Option<&PathBuf>) -> PathBuf {
    let p = PathBuf::from(ca);
    match base {
        Some(b) if p.is_relative() => b.join(p),
        _ => p,
    }
}

/// Root certificates from a PEM file, for a channel's `ca_file`.
fn roots_from(path: &std::path::Path) -> Result<rustls::RootCertStore, String> {
    let pem = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let mut roots = rustls::RootCertStore::empty();
    let certs: Vec<_> = rustls::pki_types::pem::PemObject::pem_slice_iter(&pem)
        .collect::<Result<Vec<rustls::pki_types::CertificateDer<'static>>, _>>()
        .map_err(|e| format!("{}: not PEM certificates: {e}", path.display()))?;
    for c in certs {
        roots
            .add(c)
            .map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(roots)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_digest_has_the_payload_the_readme_documents() {
        use crate::queue::findings::{FindingChange, FindingKind};
        let change = |change, kind| FindingChange {
            finding: 1,
            change,
            batch: 3,
            vm_id: "VirtualMachine:vm-1042:x".into(),
            vm_name: Some("web-07".into()),
            kind,
            detail: Some("42 minutes past its RPO of 15 minutes".into()),
            first_seen_at: 0,
            opened_at: 60_000,
            cleared_at: None,
        };
        let n = Notice::digest(
            &[
                change("opened", FindingKind::RpoViolation),
                change("cleared", FindingKind::Error),
            ],
            5,
        );
        let v = serde_json::to_value(&n).unwrap();
        let mut keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        keys.sort();
        assert_eq!(
            keys,
            ["at", "batch", "findings", "host", "id", "kind", "severity", "text", "title"]
        );
        assert_eq!(v["kind"], "monitor_digest");
        assert_eq!(
            v["title"],
            "vrbulk monitor: 1 finding opened, 1 cleared, 5 open"
        );
        assert_eq!(v["severity"], "warning");
        let f = &v["findings"][0];
        assert_eq!(f["finding"], "rpo_violation");
        assert_eq!(f["vm"], "web-07");
        assert_eq!(f["opened"], "1970-01-01T00:01:00Z");
        assert!(v["text"].as_str().unwrap().contains(
            "- opened: web-07 (batch 3) behind its RPO: 42 minutes past its RPO of 15 minutes"
        ));
    }

    #[test]
    fn backoff_doubles_up_to_a_quarter_hour() {
        assert_eq!(backoff(1), Duration::from_secs(5));
        assert_eq!(backoff(2), Duration::from_secs(10));
        assert_eq!(backoff(4), Duration::from_secs(40));
        assert_eq!(backoff(30), Duration::from_secs(900));
    }

    #[test]
    fn channels_are_named_by_kind_and_place_and_names_must_differ() {
        let s: NotifySettings = toml::from_str(
            r#"
            [[webhook]]
            url = "https://hooks.example/a"
            [[webhook]]
            url = "https://hooks.example/b"
            name = "syslog-1"
            [[syslog]]
            address = "127.0.0.1:514"
            "#,
        )
        .unwrap();
        let names: Vec<String> = s.channels().into_iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["webhook-1", "syslog-1", "syslog-1"]);
        assert!(s.problems().iter().any(|(_, m)| m.contains("two channels")));
    }
}
