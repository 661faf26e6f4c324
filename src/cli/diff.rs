//! `vrbulk diff FILE`: where the appliance differs from a desired-state file, per VM, for
//! people (a table, Markdown for a change request) and for scripts (JSON); exit 0 when nothing
//! differs, 1 when something does, 2 on a bad file. The file and the diff are
//! `workflow::desired`'s.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Args, ValueEnum};
use serde_json::json;

use crate::config::ConfigFile;
use crate::exit::Exit;
use crate::queue::Queue;
use crate::workflow::desired::{
    diff, read_live, Action, Created, Desired, DesiredError, Diff, DiffRow,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DiffFormat {
    /// A table for the terminal.
    Table,
    /// Markdown, for the change request.
    Md,
}

#[derive(Debug, Args)]
#[command(after_help = "Examples:
  vrbulk diff protection.toml                  # exit 0: as desired; 1: drift; 2: a bad file
  vrbulk diff protection.toml --format md > change-request.md
  vrbulk diff protection.toml --json
  vrbulk diff protection.toml --adopt 'legacy-*'   # propose removing those another tool made")]
pub struct DiffArgs {
    /// The desired-state file.
    pub file: PathBuf,
    /// How to print the diff.
    #[arg(long, value_enum, default_value_t = DiffFormat::Table, conflicts_with = "json")]
    pub format: DiffFormat,
    /// Print the diff as JSON.
    #[arg(long)]
    pub json: bool,
    /// Also propose removing the replications vrbulk did not create of the VMs whose names
    /// match (`*`, `?`, any case) when the file does not want them; repeatable.
    #[arg(long, value_name = "GLOB")]
    pub adopt: Vec<String>,
}

pub(super) fn read(path: &Path) -> anyhow::Result<Desired> {
    Desired::read(path).map_err(|e| match e {
        DesiredError::Input(errors) => anyhow::Error::new(errors).context(format!(
            "{} is not a valid desired-state file",
            path.display()
        )),
        other => other.into(),
    })
}

pub async fn run(args: DiffArgs, config: Option<&Path>, db: &Path) -> anyhow::Result<Exit> {
    let desired = read(&args.file)?;
    if !args.adopt.is_empty() {
        crate::input::check_selection(&args.adopt, &[])?;
    }
    let file = ConfigFile::load(config)?;
    let limits = file.capacity()?;
    let (created, learnt) = match db.exists() {
        true => {
            let queue = Queue::open_read_only(db)?;
            (Created::of(&queue)?, queue.learnt_limits()?)
        }
        false => (Created::default(), Vec::new()),
    };
    let client = crate::workflow::connect(&file).await?;
    let read = read_live(&client, &desired, &limits, &learnt).await;
    client.logout().await.ok();
    let (live, resolved) = read.context("reading the live state")?;
    let found = diff(&resolved, &live, &created, &args.adopt);
    if args.json {
        let out = json!({
            "file": desired.path,
            "pairing": found.pairing,
            "in_sync": found.in_sync(),
            "counts": Action::ALL.iter().map(|a| (a.as_str(), found.count(*a))).collect::<std::collections::BTreeMap<_, _>>(),
            "api_calls": found.calls,
            "vms": found.rows,
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        print_diff(&desired, &found, args.format);
    }
    Ok(if found.in_sync() {
        Exit::Ok
    } else {
        Exit::JobsFailed
    })
}

/// The diff for people: a line that sums it up (a heading and counts in Markdown), then every
/// VM in a table.
fn print_diff(desired: &Desired, found: &Diff, format: DiffFormat) {
    let head = format!(
        "{} against pairing {}: {} ({} API calls)",
        desired.path,
        found.pairing,
        found.summary(),
        found.calls
    );
    match format {
        DiffFormat::Md => {
            println!("## Protection drift\n");
            println!("`{}` against pairing `{}`\n", desired.path, found.pairing);
            for a in Action::ALL {
                let n = found.count(a);
                if n > 0 {
                    println!("- {}: {n}", a.as_str());
                }
            }
            println!();
        }
        DiffFormat::Table => println!("diff: {head}"),
    }
    print_table(found, true);
}

/// The rows (all, or the drift only) as a table; nothing when there are none.
pub(super) fn print_table(found: &Diff, all: bool) {
    let mut table = super::table(["VM", "action", "replication", "detail"]);
    let mut shown = 0;
    for r in found.rows.iter().filter(|r| all || r.action.is_drift()) {
        table.add_row([
            r.vm_name.clone(),
            r.action.as_str().to_string(),
            r.replication_id.clone().unwrap_or_default(),
            detail(r),
        ]);
        shown += 1;
    }
    if shown > 0 {
        println!("{table}");
    }
}

/// What the table says of a row: the changes, why not, where the desire comes from.
fn detail(r: &DiffRow) -> String {
    let mut parts = Vec::new();
    if r.action == Action::Reconfigure {
        parts.extend(r.changes.iter().map(ToString::to_string));
    }
    if let Some(why) = &r.reason {
        parts.push(why.clone());
    }
    if let Some(from) = &r.desired_by {
        parts.push(format!("({from})"));
    }
    if let Some(batch) = r.created_by_batch {
        if matches!(r.action, Action::Remove | Action::Reconfigure) {
            parts.push(format!("created by batch {batch}"));
        }
    }
    parts.join("; ")
}
