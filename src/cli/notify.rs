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
    Test,
    /// Deliver the notifications waiting in the outbox now.
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
        NotifyCommand::Flush => None,
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
    Ok(if failed > 0 { Exit::JobsFailed } else { Exit::Ok })
}
