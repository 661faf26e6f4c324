//! `vrbulk report`: a batch's report for change management, from the queue alone (no
//! connection needed), in Markdown (the default), HTML, CSV or JSON, to stdout or a file. The
//! model and the renderers live in [`crate::report`].

use crate::exit::Exit;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;

use crate::queue::{BatchId, Queue};
use crate::report::{Format, Report};

#[derive(Debug, Args)]
#[command(after_help = "Examples:
  vrbulk report                                  Markdown of the newest batch to stdout
  vrbulk report --batch 3 --format html -o wave-3.html
  vrbulk report --format json | jq '.summary.counts'")]
pub struct ReportArgs {
    /// The batch [default: the newest].
    #[arg(long, value_name = "ID")]
    pub batch: Option<BatchId>,

    /// md, html, csv or json [default: from the -o file's extension (refused when it names
    /// none of these), else md].
    #[arg(long, short = 'f', value_name = "FORMAT")]
    pub format: Option<Format>,

    /// Write to this file instead of stdout.
    #[arg(long, short = 'o', value_name = "FILE")]
    pub output: Option<PathBuf>,
}

pub fn run(args: ReportArgs, db: &Path) -> anyhow::Result<Exit> {
    let format = Format::for_output(args.format, args.output.as_deref())?;
    let (queue, batch) = Queue::read_batch(db, args.batch)?;
    let report = Report::load(&queue, batch.id, queue.now())?;
    let text = report.render(format)?;
    write_output(&text, args.output.as_deref())?;
    if let (Some(path), true) = (&args.output, report.progress.in_progress) {
        eprintln!(
            "note: batch {} is still in progress ({} of {} done); {} says so",
            batch.id,
            report.progress.done,
            report.progress.total,
            path.display()
        );
    }
    Ok(Exit::Ok)
}

/// Writes a rendered report to `path`, or to stdout when there is none. A file is written
/// beside its final name and renamed into place, so a reader never sees half a report.
pub fn write_output(text: &str, path: Option<&Path>) -> anyhow::Result<()> {
    match path {
        None => {
            let mut out = std::io::stdout().lock();
            out.write_all(text.as_bytes())?;
            out.flush()?;
        }
        Some(path) => {
            let mut partial = path.as_os_str().to_owned();
            partial.push(".partial");
            let partial = PathBuf::from(partial);
            std::fs::write(&partial, text)
                .with_context(|| format!("writing {}", partial.display()))?;
            std::fs::rename(&partial, path)
                .with_context(|| format!("renaming {} to {}", partial.display(), path.display()))?;
        }
    }
    Ok(())
}
