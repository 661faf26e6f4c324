//! Where tracing output goes: a terse stderr for the operator watching, and for the commands that
//! work on a batch, daily rolling files in a `logs/` folder beside the job queue, kept for the
//! audit and the post-mortem.
//!
//! Levels follow `-q`/`-v`/`-vv` unless `VRBULK_LOG` (an `EnvFilter` string) says otherwise. The
//! file is written by a background thread (tracing-appender's non-blocking writer) so that a slow
//! disk never stalls a worker; [`init`] hands back its guard, which flushes on drop.
//! Secrets stay out by construction: passwords and session ids are [`crate::secret::Secret`]s,
//! which render as `<redacted>`.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use clap::ValueEnum;
use tracing_appender::non_blocking::{NonBlockingBuilder, WorkerGuard};
use tracing_appender::rolling::{RollingFileAppender, Rotation};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// The folder of log files, beside the DB file.
pub const LOG_DIR: &str = "logs";
/// Log files are `vrbulk.log.YYYY-MM-DD`.
pub const LOG_FILE_PREFIX: &str = "vrbulk.log";

/// How log files are written (stderr is always text).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// One line per event, as on stderr.
    #[default]
    Text,
    /// One JSON object per line, event fields (`job`, `vm`, `step`, ...) at the top level.
    Json,
}

/// What the command at hand needs from the log setup.
#[derive(Debug, Clone)]
pub struct LogSetup {
    pub verbose: u8,
    pub quiet: bool,
    pub format: LogFormat,
    /// The command's name, recorded in the file's first line.
    pub command: &'static str,
    /// The DB beside which to keep log files; `None` for commands that touch no batch.
    pub db: Option<PathBuf>,
}

impl LogSetup {
    /// File logs for the commands that work on a batch, and only once there is a queue for
    /// them to sit beside (`import` and `demo` make one); the others log to stderr alone.
    pub fn for_cli(cli: &super::Cli) -> LogSetup {
        use super::Command as C;
        let (command, creates_queue, on_batch) = match &cli.command {
            C::Import(_) => ("import", true, true),
            C::Demo(_) => ("demo", true, true),
            C::Plan(_) => ("plan", false, true),
            C::Run(_) => ("run", false, true),
            C::Status(_) => ("status", false, true),
            C::Batches(_) => ("batches", false, true),
            C::Watch(_) => ("watch", false, true),
            C::Retry(_) => ("retry", false, true),
            C::Cancel(_) => ("cancel", false, true),
            C::Simulate(_) => ("simulate", false, false),
            C::Inventory(_) => ("inventory", false, false),
            C::Config(_) => ("config", false, false),
            C::Init(_) => ("init", false, false),
            C::Completions(_) => ("completions", false, false),
            C::Report(_) => ("report", false, true),
            C::Undo(_) => ("undo", false, true),
            C::Reconfigure(_) => ("reconfigure", false, true),
            C::Pause(_) => ("pause", false, true),
            C::Resume(_) => ("resume", false, true),
            C::Sync(_) => ("sync", false, true),
            C::Export(_) => ("export", false, false),
            C::Diff(_) => ("diff", false, false),
            C::Apply(_) => ("apply", true, true),
            C::Monitor(_) => ("monitor", false, true),
            C::Notify(_) => ("notify", false, true),
        };
        let db = (on_batch && (creates_queue || cli.db.exists())).then(|| cli.db.clone());
        LogSetup {
            verbose: cli.verbose,
            quiet: cli.quiet,
            format: cli.log_format,
            command,
            db,
        }
    }
}

/// Installs the global subscriber. Keep the returned guard until the process ends: dropping
/// it flushes what the background writer still holds.
pub fn init(setup: &LogSetup) -> Option<WorkerGuard> {
    let from_env = || EnvFilter::try_from_env("VRBULK_LOG").ok();
    let stderr_level = match (setup.quiet, setup.verbose) {
        (true, _) => "error",
        (false, 0) => "warn",
        (false, 1) => "info",
        (false, _) => "debug",
    };
    let file_level = if setup.verbose >= 2 { "debug" } else { "info" };

    let stderr = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        // Escape codes only for a person: a log collector or `2> file` gets plain text.
        .with_ansi(std::io::stderr().is_terminal())
        .with_filter(
            from_env().unwrap_or_else(|| EnvFilter::new(format!("vrbulk={stderr_level}"))),
        );

    let mut problem = None;
    let (file, guard) = match setup.db.as_deref().map(log_dir) {
        Some(dir) => match file_writer(&dir) {
            Ok((writer, guard)) => {
                let filter =
                    from_env().unwrap_or_else(|| EnvFilter::new(format!("vrbulk={file_level}")));
                let layer = match setup.format {
                    LogFormat::Text => tracing_subscriber::fmt::layer()
                        .with_writer(writer)
                        .with_ansi(false)
                        .with_filter(filter)
                        .boxed(),
                    LogFormat::Json => tracing_subscriber::fmt::layer()
                        .json()
                        .flatten_event(true)
                        .with_current_span(false)
                        .with_span_list(false)
                        .with_writer(writer)
                        .with_filter(filter)
                        .boxed(),
                };
                (Some(layer), Some(guard))
            }
            Err(e) => {
                problem = Some(format!(
                    "cannot write log files in {}: {e}; logging to stderr only",
                    dir.display()
                ));
                (None, None)
            }
        },
        None => (None, None),
    };

    // Fails only when a subscriber is already installed (a test driving `run` twice): keep it.
    let _ = tracing_subscriber::registry()
        .with(stderr)
        .with(file)
        .try_init();
    if let Some(problem) = problem {
        tracing::warn!("{problem}");
    }
    if guard.is_some() {
        let (operator, host) = super::who();
        tracing::info!(
            command = setup.command,
            db = %setup.db.as_deref().unwrap_or(Path::new("")).display(),
            version = env!("CARGO_PKG_VERSION"),
            operator,
            host,
            pid = std::process::id(),
            "vrbulk started"
        );
    }
    guard
}

/// `logs/` beside `db`; a bare file name means the current folder.
pub fn log_dir(db: &Path) -> PathBuf {
    match db.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.join(LOG_DIR),
        _ => PathBuf::from(LOG_DIR),
    }
}

fn file_writer(
    dir: &Path,
) -> Result<(tracing_appender::non_blocking::NonBlocking, WorkerGuard), String> {
    std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    let appender = RollingFileAppender::builder()
        .rotation(Rotation::DAILY)
        .filename_prefix(LOG_FILE_PREFIX)
        .build(dir)
        .map_err(|e| e.to_string())?;
    // Lossless: a line dropped under load is a hole in the audit trail; waiting is cheaper.
    Ok(NonBlockingBuilder::default().lossy(false).finish(appender))
}
