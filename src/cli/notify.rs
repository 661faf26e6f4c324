//! `vrbulk notify test`: one message to every channel of `[notify]`, through the outbox like
//! any other, and which channels took it; `vrbulk notify flush`: deliver what waits.

use std::path::Path;

use clap::Subcommand;

use crate::config::ConfigFile;
use crate::exit::Exit;
use crate::notify::{deliver_due, Notice};
use crate::queue::Queue;

#[derive(Debug, Subcommand)]
pub enum NotifyCommand {
    /// Send one test message to every channel and say which worked.
    #[command(
        after_help = "Example:\n  vrbulk notify test      one message to each [[notify.*]] channel; exit 1 when one failed"
    )]
    Test,
    /// Deliver the notifications waiting in the outbox now, whatever their retry time.
    #[command(
        after_help = "Example:\n  vrbulk notify flush     after fixing a channel, instead of waiting for its retry"
    )]
    Flush,
}

pub async fn run(cmd: NotifyCommand, config: Option<&Path>, db: &Path) -> anyhow::Result<Exit> {
    let file = ConfigFile::load(config)?;
    let channels = file.notify.channels();
    if channels.is_empty() {
        eprintln!(
            "no notification channel is set: add [[notify.webhook]], [[notify.syslog]] or \
             [[notify.email]] to the settings file"
        );
        return Ok(Exit::Usage);
    }
    let mut queue = Queue::open(db)?;
    let names: Vec<String> = channels.iter().map(|(n, _)| n.clone()).collect();
    let test_id = match cmd {
        NotifyCommand::Test => {
            let (_, host) = crate::operator::who();
            let notice = Notice::new(
                "test",
                format!("vrbulk test notification from {host}"),
                format!(
                    "vrbulk test notification from {host}: if you read this, the channel works."
                ),
                "info",
            );
            queue.enqueue(&notice.outgoing(&names))?;
            Some(notice.id)
        }
        NotifyCommand::Flush => {
            queue.outbox_due_now()?;
            None
        }
    };
    let done = deliver_due(&mut queue, &file.notify).await?;
    let mut failed = 0;
    for (name, channel) in &channels {
        let ok = done.sent.iter().filter(|(_, c)| c == name).count();
        let bad: Vec<&str> = done
            .failed
            .iter()
            .filter(|(_, c, _)| c == name)
            .map(|(_, _, why)| why.as_str())
            .collect();
        let mine = |id: &str| test_id.as_deref().is_none_or(|t| t == id);
        let test_ok = done.sent.iter().any(|(m, c)| c == name && mine(m));
        match (bad.first(), test_id.is_some()) {
            (Some(why), _) => {
                failed += 1;
                println!(
                    "{name} ({} to {}): FAILED: {why}; kept in the outbox, retried later",
                    channel.kind(),
                    channel.target()
                );
            }
            (None, true) if test_ok => println!(
                "{name} ({} to {}): ok{}",
                channel.kind(),
                channel.target(),
                if ok > 1 {
                    format!(", and {} earlier messages delivered", ok - 1)
                } else {
                    String::new()
                }
            ),
            (None, true) => {
                failed += 1;
                println!(
                    "{name} ({} to {}): not tried: earlier messages of this channel wait for \
                     their retry",
                    channel.kind(),
                    channel.target()
                );
            }
            (None, false) => println!(
                "{name} ({} to {}): {ok} delivered",
                channel.kind(),
                channel.target()
            ),
        }
    }
    if done.unknown > 0 {
        println!(
            "{} messages wait for channels the settings no longer name",
            done.unknown
        );
    }
    Ok(if failed > 0 {
        Exit::JobsFailed
    } else {
        Exit::Ok
    })
}

/// After a run of `batch` (any command that runs a batch): the end of the run to every channel,
/// with the failure groups and a Markdown report written beside the queue (attached to mails);
/// a window that closed with work left and a run stopped by a refused login are said as such.
/// Nothing when no channel is set; a channel that fails is logged and retried later, never the
/// run's failure.
pub(super) async fn after_run(
    db: &Path,
    notify: &crate::notify::NotifySettings,
    batch: &crate::queue::Batch,
    outcome: &Result<crate::runner::RunOutcome, crate::runner::RunError>,
) {
    if notify.is_empty() {
        return;
    }
    let mut queue = match Queue::open(db) {
        Ok(q) => q,
        Err(e) => {
            tracing::warn!(error = %e, "cannot open the queue to notify the end of the run");
            return;
        }
    };
    let Some(notice) = run_notice(&queue, db, batch, outcome) else {
        return;
    };
    let done = crate::notify::send_now(&mut queue, notify, &notice).await;
    for (_, channel, why) in &done.failed {
        eprintln!(
            "notification to {channel} failed (retried by the next vrbulk that delivers): {why}"
        );
    }
}

fn run_notice(
    queue: &Queue,
    db: &Path,
    batch: &crate::queue::Batch,
    outcome: &Result<crate::runner::RunOutcome, crate::runner::RunError>,
) -> Option<Notice> {
    use crate::queue::JobState;
    use crate::runner::{Ending, RunError};
    let name = format!("batch {} \"{}\"", batch.id, batch.name);
    let outcome = match outcome {
        Ok(o) => o,
        Err(RunError::Login(source @ crate::vr::ApiError::CredentialsRefused(_))) => {
            let mut n = Notice::new(
                "credentials_refused",
                format!("vrbulk {name}: the run did not start: its login was refused"),
                format!(
                    "vrbulk {name}: the run did not start: {}\nFix the credentials and run \
                     `vrbulk run --batch {}` again.",
                    crate::vr::error::error_chain(source),
                    batch.id
                ),
                "warning",
            );
            n.batch = Some(batch.id);
            return Some(n);
        }
        Err(RunError::Credentials { at, source }) => {
            let at = at
                .as_deref()
                .map(|s| format!(" at {s}"))
                .unwrap_or_default();
            let mut n = Notice::new(
                "credentials_refused",
                format!("vrbulk {name}: the run stopped on a refused login{at}"),
                format!(
                    "vrbulk {name}: the run stopped on a refused login{at}: {}\nNo job was failed \
                     for it; fix the credentials and run `vrbulk run --batch {}` again.",
                    crate::vr::error::error_chain(source),
                    batch.id
                ),
                "warning",
            );
            n.batch = Some(batch.id);
            return Some(n);
        }
        // Other errors (held by another run, no connection) stop before any work: the
        // operator sees them at the terminal.
        Err(_) => return None,
    };
    let jobs = queue.jobs(batch.id).ok()?;
    let count = |s: JobState| outcome.counts.get(&s).copied().unwrap_or(0);
    let failed = count(JobState::Failed);
    let left = outcome.left();
    let (kind, how, severity) = match outcome.ending {
        Ending::WindowClosed if left > 0 => (
            "window_closed",
            format!("the change window closed with {left} jobs left"),
            "warning",
        ),
        Ending::Interrupted => ("run_ended", "the run was interrupted".to_string(), "notice"),
        _ if failed > 0 => ("run_ended", "the run ended".to_string(), "warning"),
        _ => ("run_ended", "the run ended".to_string(), "info"),
    };
    let counts: Vec<String> = outcome
        .counts
        .iter()
        .filter(|(_, n)| **n > 0)
        .map(|(s, n)| format!("{n} {s}"))
        .collect();
    let title = format!("vrbulk {name}: {how}: {}", counts.join(", "));
    let mut text = format!("{title}\n");
    let mut groups: std::collections::BTreeMap<String, u64> = Default::default();
    for j in jobs.iter().filter(|j| j.state == JobState::Failed) {
        let reason = j.reason.as_deref().unwrap_or("no reason recorded");
        *groups.entry(crate::report::normalize(reason)).or_default() += 1;
    }
    if !groups.is_empty() {
        text.push_str("Failures by cause:\n");
        let mut by_count: Vec<(String, u64)> = groups.into_iter().collect();
        by_count.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        for (reason, n) in by_count {
            text.push_str(&format!("- {n} x {reason}\n"));
        }
    }
    if left > 0 {
        text.push_str(&format!(
            "{left} jobs are left: `vrbulk run --batch {}` carries on.\n",
            batch.id
        ));
    }
    let report = write_report(queue, db, batch.id);
    match &report {
        Some(p) => text.push_str(&format!("Report: {p}\n")),
        None => text.push_str(&format!(
            "Report: `vrbulk report --batch {}` writes it.\n",
            batch.id
        )),
    }
    let mut n = Notice::new(kind, title, text, severity);
    n.batch = Some(batch.id);
    n.counts = serde_json::to_value(
        outcome
            .counts
            .iter()
            .map(|(s, c)| (s.to_string(), *c))
            .collect::<std::collections::BTreeMap<_, _>>(),
    )
    .ok();
    n.report = report;
    Some(n)
}

/// The batch's Markdown report in `reports/` beside the queue; its path, or `None` (logged)
/// when it cannot be written.
fn write_report(queue: &Queue, db: &Path, batch: crate::queue::BatchId) -> Option<String> {
    let written = (|| -> anyhow::Result<std::path::PathBuf> {
        let report = crate::report::Report::load(queue, batch, queue.now())?;
        let text = report.render(crate::report::Format::Md)?;
        let dir = db
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
            .join("reports");
        std::fs::create_dir_all(&dir)?;
        let stamp = jiff::Timestamp::now()
            .strftime("%Y%m%dT%H%M%SZ")
            .to_string();
        let path = dir.join(format!("batch-{batch}-{stamp}.md"));
        std::fs::write(&path, text)?;
        Ok(path)
    })();
    match written {
        Ok(p) => Some(p.display().to_string()),
        Err(e) => {
            tracing::warn!(error = %format!("{e:#}"), "cannot write the report for the notification");
            None
        }
    }
}
