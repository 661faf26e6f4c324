//! `vrbulk apply FILE`: the diff of a desired-state file turned into batches of the queue and
//! run as `vrbulk run` runs them. The batches are an import's and the day-2 commands' own, so
//! an apply keeps every guarantee a run gives (resumable, `--until`, admission, the audit record
//! and reports). An apply marks its batches (`settings.desired`): run again after a kill, it
//! first finishes the batches an earlier apply left, then diffs again, so nothing is done
//! twice.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;
use serde_json::json;
use thiserror::Error;

use super::diff::{print_table, read};
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
use crate::workflow::desired::{diff, read_live, reconfigure_csvs, Action, Created, DiffRow, Work};
use crate::workflow::session::login;

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

/// Whether an apply's batches are done: an exit that says the run was stopped (the window
/// closed, Ctrl-C, no connection) ends the apply there.
fn stops(exit: Exit) -> bool {
    matches!(exit, Exit::WindowClosed | Exit::Interrupted | Exit::Connect)
}

pub async fn run(args: ApplyArgs, globals: Globals<'_>) -> anyhow::Result<Exit> {
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
        notify: &file.notify,
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
