//! Protection as code: `vrbulk export --desired` (what the appliance protects now, as a
//! desired-state file), `vrbulk diff FILE` (where the appliance differs from the file) and
//! `vrbulk apply FILE` (the diff turned into batches of the queue and run as `vrbulk run` runs
//! them). The file and the diff are `workflow::desired`'s; the batches are an import's and the
//! day-2 commands' own, so an apply keeps every guarantee a run gives (resumable, `--until`,
//! admission, the audit record and reports). An apply marks its batches (`settings.desired`):
//! run again after a kill, it first finishes the batches an earlier apply left, then diffs
//! again, so nothing is done twice.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Args, ValueEnum};
use serde_json::json;
use thiserror::Error;

use super::operate::Globals;
use super::progress::ProgressMode;
use super::run::{drive, Display};
use super::who;
use crate::config::{ConfigFile, ProcessEnvironment, RunSetup};
use crate::domain::OperationSpec;
use crate::exit::Exit;
use crate::queue::{jobs_left, Batch, InputKind, NewBatch, Queue};
use crate::settings::RunSettings;
use crate::workflow::day2::{self, Asked, OperationRequest};
use crate::workflow::desired::{
    self, diff, read_live, read_protection, reconfigure_csvs, Action, Created, Desired,
    DesiredError, Diff, DiffRow, Work,
};
use crate::workflow::session::login;

#[derive(Debug, Args)]
#[command(after_help = "Example:
  vrbulk export --desired -o protection.toml          # then: vrbulk diff protection.toml")]
pub struct ExportArgs {
    /// Write the pairing's protection as a desired-state file (for `vrbulk diff` and `apply`).
    #[arg(long, required = true)]
    pub desired: bool,
    /// The pairing: remote vCenter name or pairing id [default: the only one].
    #[arg(long)]
    pub pairing: Option<String>,
    /// Where a VM vrbulk did not configure would be configured again (the appliance's list
    /// does not say where its replica lives) [default: [defaults] target_datastore].
    #[arg(long)]
    pub target_datastore: Option<String>,
    /// Write to this file [default: standard output]; an existing file is not overwritten.
    #[arg(long, short = 'o', value_name = "FILE")]
    pub output: Option<PathBuf>,
}

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

#[derive(Debug, Args)]
#[command(after_help = "Examples:
  vrbulk apply protection.toml                          # shows the plan, asks, runs it
  vrbulk apply protection.toml --yes --change-ticket CHG0012345 --until 05:30
  vrbulk apply protection.toml --allow-remove --yes     # also undo what is no longer desired
Interrupted or killed, the same command again finishes what it started and then does what
is still left; nothing is configured, reconfigured or removed twice.")]
pub struct ApplyArgs {
    /// The desired-state file.
    pub file: PathBuf,
    /// Remove the replications vrbulk created that the file no longer wants (without it they
    /// are listed and left).
    #[arg(long)]
    pub allow_remove: bool,
    /// Do not ask for confirmation (for scripts). Without a terminal, apply refuses to run
    /// without it.
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// The change ticket of the whole apply: recorded on every batch it creates, and on every
    /// VM it configures whose row names none.
    #[arg(long)]
    pub change_ticket: Option<String>,
    #[command(flatten)]
    pub settings: RunSettings,
    /// How to show progress: a bar on a terminal, plain lines otherwise.
    #[arg(long, value_enum, default_value_t = ProgressMode::Auto)]
    pub progress: ProgressMode,
}

/// The operator did not confirm the apply: nothing was created or sent (exit 2).
#[derive(Debug, Error)]
pub enum NotConfirmed {
    #[error(
        "apply asks before it changes the appliance, and there is no terminal to ask on: check \
         what it would do with `vrbulk diff FILE`, then run it with --yes"
    )]
    NoTerminal,

    #[error("not confirmed: nothing was created or sent")]
    Declined,
}

/// The file, read and checked: a bad one is the operator's input (exit 2).
fn read(path: &Path) -> anyhow::Result<Desired> {
    Desired::read(path).map_err(|e| match e {
        DesiredError::Input(errors) => anyhow::Error::new(errors).context(format!(
            "{} is not a valid desired-state file",
            path.display()
        )),
        other => other.into(),
    })
}

pub async fn export(args: ExportArgs, config: Option<&Path>, db: &Path) -> anyhow::Result<Exit> {
    let file = ConfigFile::load(config)?;
    if let Some(out) = &args.output {
        if out.exists() {
            return Err(
                crate::input::InputErrors(vec![crate::input::InputError::new(
                    None,
                    None,
                    format!(
                        "{} exists: export does not overwrite it; name another file, or remove it",
                        out.display()
                    ),
                )])
                .into(),
            );
        }
    }
    let created = Created::read(db)?;
    let client = crate::workflow::connect(&file).await?;
    let live = read_protection(&client, args.pairing.as_deref()).await;
    client.logout().await.ok();
    let live = live.context("reading the pairing's replications")?;
    let datastore = args
        .target_datastore
        .clone()
        .or_else(|| file.defaults.target_datastore());
    let text =
        desired::export(&live.remote_vc, &live, &created, datastore.as_deref()).map_err(|e| {
            crate::input::InputErrors(vec![crate::input::InputError::new(
                None,
                None,
                e.to_string(),
            )])
        })?;
    match &args.output {
        Some(path) => {
            std::fs::write(path, &text).with_context(|| format!("writing {}", path.display()))?;
            let ours = live
                .replications
                .values()
                .filter(|r| created.0.contains_key(&r.id))
                .count();
            eprintln!(
                "wrote {}: {} of pairing {} ({ours} created by vrbulk); `vrbulk diff {}` \
                 compares it with the appliance",
                path.display(),
                super::count(live.replications.len(), "replication", "replications"),
                live.remote_vc,
                path.display()
            );
        }
        None => print!("{text}"),
    }
    Ok(Exit::Ok)
}

pub async fn diff_cmd(args: DiffArgs, config: Option<&Path>, db: &Path) -> anyhow::Result<Exit> {
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
fn print_table(found: &Diff, all: bool) {
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

/// Whether an apply's batches are done: an exit that says the run was stopped (the window
/// closed, Ctrl-C, no connection) ends the apply there.
fn stops(exit: Exit) -> bool {
    matches!(exit, Exit::WindowClosed | Exit::Interrupted | Exit::Connect)
}

pub async fn apply(args: ApplyArgs, globals: Globals<'_>) -> anyhow::Result<Exit> {
    let desired = read(&args.file)?;
    if let Some(ticket) = &args.change_ticket {
        crate::input::check_flag("change-ticket", crate::input::Text::ChangeTicket, ticket)?;
    }
    let file = ConfigFile::load(globals.config)?;
    let env = ProcessEnvironment;
    let RunSetup {
        connection,
        options,
    } = file.for_run(&env, &args.settings)?;
    let settings = connection.with_passwords(&env)?;
    let how = || Display {
        db: globals.db,
        progress: args.progress,
        quiet: globals.quiet,
    };
    let mut worst = Exit::Ok;
    let mut note = |exit: Exit| {
        if worst == Exit::Ok {
            worst = exit;
        }
    };

    // First what an earlier apply started and did not finish: its in-flight work is reconciled
    // with the appliance by the run, before the diff below sees the result.
    let queue = Queue::open(globals.db)?;
    let left = unfinished_applies(&queue)?;
    drop(queue);
    for batch in left {
        eprintln!(
            "finishing batch {} \"{}\", which an earlier apply started",
            batch.id, batch.name
        );
        let exit = drive(
            Queue::open(globals.db)?,
            &batch,
            settings.clone(),
            options.clone(),
            how(),
        )
        .await?;
        if stops(exit) {
            return Ok(exit);
        }
        note(exit);
    }

    let queue = Queue::open(globals.db)?;
    let created = Created::of(&queue)?;
    let learnt = queue.learnt_limits()?;
    drop(queue);
    let client = login(settings.clone()).await?;
    let read = read_live(&client, &desired, &options.capacity, &learnt).await;
    client.logout().await.ok();
    let (live, resolved) = read.context("reading the live state")?;
    let found = diff(&resolved, &live, &created, &[]);

    let configure: Vec<_> = found
        .rows
        .iter()
        .filter_map(|r| match &r.work {
            Some(Work::Configure(spec)) => Some(spec.clone()),
            _ => None,
        })
        .collect();
    let reconfigure = reconfigure_csvs(&found.rows)?;
    let removals: Vec<&DiffRow> = found
        .rows
        .iter()
        .filter(|r| matches!(r.work, Some(Work::Remove(_))))
        .collect();
    let removing = if args.allow_remove { removals.len() } else { 0 };
    let reconfiguring = found.count(Action::Reconfigure);
    println!(
        "apply: {} against pairing {}: {} to configure, {} to reconfigure, {} to remove; {} \
         unchanged ({} API calls)",
        desired.path,
        found.pairing,
        configure.len(),
        reconfiguring,
        removing,
        found.count(Action::Unchanged),
        found.calls
    );
    print_table(&found, false);
    if !args.allow_remove && !removals.is_empty() {
        eprintln!(
            "note: {} that vrbulk created {} no longer desired and {} left as {}: --allow-remove \
             removes them",
            super::count(removals.len(), "replication", "replications"),
            if removals.len() == 1 { "is" } else { "are" },
            if removals.len() == 1 { "is" } else { "are" },
            if removals.len() == 1 {
                "it is"
            } else {
                "they are"
            },
        );
    }
    let cannot = found.count(Action::Cannot);
    if cannot > 0 {
        eprintln!(
            "note: {} cannot be made as desired (the table says why); apply leaves {}",
            super::count(cannot, "VM", "VMs"),
            if cannot == 1 { "it" } else { "them" }
        );
    }
    // What the apply leaves as it is keeps it from saying "as desired" (exit 1), as `diff` says.
    let leaves = cannot > 0 || (!args.allow_remove && !removals.is_empty());
    if configure.is_empty() && reconfigure.is_empty() && removing == 0 {
        println!("nothing to do: no batch created, nothing sent");
        if leaves {
            note(Exit::JobsFailed);
        }
        return Ok(worst);
    }
    confirm(args.yes)?;

    // Every batch is created before any runs: killed from here on, the next apply finds them
    // all and finishes them first.
    let mut queue = Queue::open(globals.db)?;
    let (operator, host) = who();
    let mark = json!({ "file": desired.path, "sha256": desired.sha256 });
    let mut batches = Vec::new();
    if !configure.is_empty() {
        let jobs: Vec<_> = configure
            .into_iter()
            .map(|mut spec| {
                if spec.change_ticket.is_none() {
                    spec.change_ticket = args.change_ticket.clone();
                }
                spec
            })
            .collect();
        let max_attempts = options.max_attempts.unwrap_or(day2::MAX_ATTEMPTS);
        let id = queue.create_batch(
            &NewBatch {
                name: format!("apply {}: configure", file_name(&args.file)),
                operator: operator.clone(),
                host: host.clone(),
                input_kind: InputKind::Csv,
                input_path: Some(desired.path.clone()),
                input_sha256: Some(desired.sha256.clone()),
                settings: json!({
                    "desired": mark,
                    "change_ticket": args.change_ticket,
                    "max_attempts": max_attempts,
                }),
                max_attempts,
            },
            &jobs,
        )?;
        batches.push(id);
    }
    for (acts_on, csv) in reconfigure {
        let request = OperationRequest {
            acts_on,
            vms: Vec::new(),
            only_finished: false,
            asked: Asked::Csv {
                bytes: csv,
                path: desired.path.clone(),
            },
        };
        let prepared = request.prepare(&queue)?;
        let batch = marked(&prepared, &operator, &host, &mark, &args, None);
        batches.push(prepared.create_as(&mut queue, &batch)?);
    }
    if args.allow_remove {
        let mut by_batch: std::collections::BTreeMap<i64, Vec<i64>> = Default::default();
        for r in &removals {
            if let Some(Work::Remove(rec)) = &r.work {
                by_batch.entry(rec.batch).or_default().push(rec.job);
            }
        }
        for (acts_on, jobs) in by_batch {
            let request = OperationRequest {
                acts_on,
                vms: Vec::new(),
                only_finished: true,
                asked: Asked::Each(OperationSpec::Unconfigure {
                    retain_replica_disks: false,
                    local_only: false,
                }),
            };
            let mut prepared = request.prepare(&queue)?;
            // The batch's replications the file no longer wants, and only those.
            prepared.targets.retain(|t| jobs.contains(&t.job.id));
            prepared.not_configured_yet.clear();
            let names: Vec<String> = prepared
                .targets
                .iter()
                .map(|t| t.vm_name().to_string())
                .collect();
            let batch = marked(&prepared, &operator, &host, &mark, &args, Some(names));
            batches.push(prepared.create_as(&mut queue, &batch)?);
        }
    }
    eprintln!(
        "created {}: {}; if this apply is interrupted, the same command finishes {} first",
        super::count(batches.len(), "batch", "batches"),
        batches
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", "),
        if batches.len() == 1 { "it" } else { "them" }
    );
    drop(queue);
    for id in batches {
        let queue = Queue::open(globals.db)?;
        let batch = queue.batch(id)?;
        let exit = drive(queue, &batch, settings.clone(), options.clone(), how()).await?;
        if stops(exit) {
            return Ok(exit);
        }
        note(exit);
    }
    eprintln!(
        "apply done; `vrbulk diff {}` shows what differs now",
        args.file.display()
    );
    if leaves {
        note(Exit::JobsFailed);
    }
    Ok(worst)
}

/// An apply's operation batch: the day-2 command's own record, named for the apply and marked
/// as its own; `vms` names the VMs of an undo that acts on some of its batch's replications.
fn marked(
    prepared: &day2::Prepared,
    operator: &str,
    host: &str,
    mark: &serde_json::Value,
    args: &ApplyArgs,
    vms: Option<Vec<String>>,
) -> NewBatch {
    let mut batch = prepared.new_batch(operator.to_string(), host.to_string());
    batch.name = format!("apply {}: {}", file_name(&args.file), prepared.name());
    // The input is the desired-state file; each job records its own change.
    batch.input_path = mark["file"].as_str().map(str::to_string);
    batch.input_sha256 = mark["sha256"].as_str().map(str::to_string);
    batch.settings["desired"] = mark.clone();
    batch.settings["change_ticket"] = json!(args.change_ticket);
    if let Some(vms) = vms {
        batch.settings["vm"] = json!(vms);
        batch
            .settings
            .as_object_mut()
            .map(|s| s.remove("only_finished"));
    }
    batch
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string())
}

/// The batches an apply created that still have jobs to do, oldest first.
fn unfinished_applies(queue: &Queue) -> anyhow::Result<Vec<Batch>> {
    let mut left = Vec::new();
    for batch in queue.batches()? {
        if batch.settings.get("desired").is_none() {
            continue;
        }
        if jobs_left(&queue.counts(batch.id)?) > 0 {
            left.push(batch);
        }
    }
    Ok(left)
}

/// Asks on a terminal, unless `--yes`.
fn confirm(yes: bool) -> anyhow::Result<()> {
    if yes {
        return Ok(());
    }
    if !std::io::stdin().is_terminal() {
        return Err(NotConfirmed::NoTerminal.into());
    }
    if super::undo::typed_yes("Apply this?")? {
        Ok(())
    } else {
        Err(NotConfirmed::Declined.into())
    }
}
