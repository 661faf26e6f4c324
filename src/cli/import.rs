//! `vrbulk import`: turn a CSV, or a name pattern over the live inventory, into a batch of jobs.
//! Nothing is written unless the whole input is valid, nor for a file whose content the queue
//! already imported (unless `--again`); then the batch id, the job count and a summary per
//! setting are printed.

use crate::exit::Exit;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;

use super::{connect, who, Profile};
use crate::config::ConfigFile;
use crate::domain::{JobSpec, VmRef};
use crate::input::{self, glob_match, InputError, InputErrors};
use crate::queue::{Batch, InputKind, NewBatch, Queue, QueueError};
use crate::timefmt::utc;
use crate::workflow::choose_pairing;

#[derive(Debug, Args)]
#[command(after_help = "Examples:
  vrbulk import samples/vms.csv --name wave-1
  vrbulk import --inventory --pairing vc-site-b.corp.local --match 'web-*' --exclude '*-old' \\
      --target-datastore ds-gold-01 --rpo 15 --change-ticket CHG0012345")]
pub struct ImportArgs {
    /// The CSV to import (columns: see README or samples/vms.csv).
    #[arg(required_unless_present = "inventory", conflicts_with = "inventory")]
    pub file: Option<PathBuf>,

    /// A name for the batch [default: the file name, or the patterns].
    #[arg(long)]
    pub name: Option<String>,

    /// Select VMs from the live source inventory instead of a file.
    #[arg(long)]
    pub inventory: bool,

    /// Glob over VM names (`*`, `?`, case-insensitive); repeatable, any may match.
    #[arg(long = "match", value_name = "GLOB", requires = "inventory")]
    pub patterns: Vec<String>,

    /// Glob of VM names to leave out; repeatable.
    #[arg(long, value_name = "GLOB", requires = "inventory")]
    pub exclude: Vec<String>,

    /// Import the file although its content was imported into this queue before, as a new
    /// batch (without it, vrbulk says which batch the file became and stops).
    #[arg(long, conflicts_with = "inventory")]
    pub again: bool,

    /// Also check every name in the file against the live inventory (pairing, VM, datastore,
    /// storage policy, VR server) before anything is imported.
    #[arg(long, conflicts_with = "inventory")]
    pub check: bool,

    /// Attempts per job before it fails.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub max_attempts: u32,

    #[command(flatten)]
    pub profile: Profile,
}

pub async fn run(args: ImportArgs, config: Option<&Path>, db: &Path) -> anyhow::Result<Exit> {
    let file = ConfigFile::load(config)?;
    let defaults = args.profile.over(&file.defaults);
    // The file's own [defaults] passed when it was loaded: what is wrong now came from a flag.
    defaults.check_flags()?;
    if let Some(ticket) = &args.profile.change_ticket {
        input::check_flag("change-ticket", input::Text::ChangeTicket, ticket)?;
    }
    let (jobs, kind, input_path, sha, default_name) = match &args.file {
        Some(path) => {
            let bytes =
                std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
            let jobs = input::parse_csv(&bytes, &defaults)?;
            let stem = path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| "import".into());
            let shown = std::fs::canonicalize(path).unwrap_or_else(|_| path.clone());
            (
                jobs,
                InputKind::Csv,
                Some(shown.display().to_string()),
                Some(input::digest(&bytes)),
                stem,
            )
        }
        None => {
            let jobs = select_from_inventory(&file, &args, &defaults).await?;
            let name = format!("inventory {}", args.patterns.join(" "));
            (jobs, InputKind::Inventory, None, None, name)
        }
    };
    let mut jobs = jobs;
    if let Some(ticket) = &args.profile.change_ticket {
        jobs.iter_mut()
            .filter(|j| j.change_ticket.is_none())
            .for_each(|j| j.change_ticket = Some(ticket.clone()));
    }

    if args.check {
        check_names(&file, &jobs).await?;
    }

    // The input was checked before the queue is opened, so a bad file leaves no database behind.
    let mut queue = Queue::open(db)?;
    // Before the VMs are checked against unfinished batches: a file imported twice is most
    // often a mistake, and which batch it became says more than which VMs are queued. Two
    // imports of one file at the same moment are still stopped by that VM check, which shares
    // the write lock with the insert.
    if let (Some(file), Some(sha), false) = (&args.file, &sha, args.again) {
        let before = queue.imports_of(sha)?;
        if let Some((last, earlier)) = before.split_last() {
            let refusal = already_imported(&queue, file, input_path.as_deref(), last, earlier)?;
            return Err(refusal.into());
        }
    }
    let (operator, host) = who();
    // What was asked, for the audit: the profile's keys that are set, and the selection.
    let profile: serde_json::Map<String, serde_json::Value> = match serde_json::to_value(&defaults)
    {
        Ok(serde_json::Value::Object(keys)) => {
            keys.into_iter().filter(|(_, v)| !v.is_null()).collect()
        }
        _ => serde_json::Map::new(),
    };
    let mut settings = serde_json::json!({
        "defaults": profile,
        "max_attempts": args.max_attempts,
    });
    if kind == InputKind::Inventory {
        settings["match"] = serde_json::json!(args.patterns);
        settings["exclude"] = serde_json::json!(args.exclude);
    }
    let name = args.name.clone().unwrap_or(default_name);
    let batch = queue
        .create_batch(
            &NewBatch {
                name: name.clone(),
                operator,
                host,
                input_kind: kind,
                input_path,
                input_sha256: sha,
                settings,
                max_attempts: args.max_attempts,
            },
            &jobs,
        )
        .map_err(refusal_as_input_errors)?;
    println!(
        "batch {batch} \"{name}\": {} jobs imported into {}",
        jobs.len(),
        db.display()
    );
    print!("{}", input::summarize(&jobs));
    println!("\nnext: vrbulk plan --batch {batch}   (a dry run), then vrbulk run --batch {batch}");
    Ok(Exit::Ok)
}

/// `--check`: every name the rows give, looked up on the appliance with the plan's own calls;
/// the names it does not know are the input's problems (exit 2, nothing imported).
async fn check_names(file: &ConfigFile, jobs: &[JobSpec]) -> anyhow::Result<()> {
    let client = connect(file).await?;
    let lookup_group = crate::runner::RunOptions::default().lookup_group;
    let problems = crate::workflow::plan::check_names(&client, jobs, lookup_group).await;
    client.logout().await.ok();
    let problems = problems.context("checking the names against the live inventory")?;
    if problems.is_empty() {
        println!(
            "checked against the live inventory: every VM, pairing, datastore, storage policy \
             and VR server of the file exists"
        );
        return Ok(());
    }
    Err(InputErrors(
        problems
            .into_iter()
            .map(|p| InputError::new(p.line, Some(p.column), p.message))
            .collect(),
    )
    .into())
}

/// The refusal of a file whose content is in the queue already: which batch it last became,
/// when, and how far that batch got (and the `earlier` batches it became), then how to import
/// it again on purpose. Said as an input error: the operator's input is what is refused
/// (exit 2).
fn already_imported(
    queue: &Queue,
    file: &Path,
    recorded_as: Option<&str>,
    last: &Batch,
    earlier: &[Batch],
) -> anyhow::Result<InputErrors> {
    let counts = queue.counts(last.id)?;
    let jobs: Vec<String> = counts
        .iter()
        .filter(|(_, n)| **n > 0)
        .map(|(state, n)| format!("{n} {state}"))
        .collect();
    let jobs = if jobs.is_empty() {
        "no jobs".to_string()
    } else {
        format!("jobs: {}", jobs.join(", "))
    };
    // The same content under another name is worth saying: the operator may think it new.
    let what = match &last.input_path {
        Some(earlier) if recorded_as.is_some_and(|now| now != earlier) => {
            format!(
                "{} has the same content as {earlier}, which",
                file.display()
            )
        }
        _ => file.display().to_string(),
    };
    let also = match earlier {
        [] => String::new(),
        earlier => format!(
            " (and before that as batch {})",
            earlier
                .iter()
                .map(|b| b.id.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let message = format!(
        "{what} was imported on {} as batch {} \"{}\" ({jobs}){also}; to import it again as a new \
         batch, repeat the command with --again: vrbulk import --again {}",
        utc(last.created_at),
        last.id,
        last.name,
        file.display()
    );
    Ok(InputErrors(vec![InputError::new(None, None, message)]))
}

/// A VM with a job still pending or running elsewhere must not be queued again (the queue
/// refuses the batch): to the operator that is a mistake in the input, at its line and column.
fn refusal_as_input_errors(err: QueueError) -> anyhow::Error {
    let QueueError::AlreadyQueued(vms) = err else {
        return err.into();
    };
    let errors = vms
        .iter()
        .map(|q| {
            InputError::new(
                q.line,
                Some(if q.by_id { "vm_id" } else { "vm_name" }),
                format!(
                    "VM `{}` is already in unfinished batch {}: let it finish, or `vrbulk cancel --batch {}`",
                    q.vm, q.batch, q.batch
                ),
            )
        })
        .collect();
    InputErrors(errors).into()
}

async fn select_from_inventory(
    file: &ConfigFile,
    args: &ImportArgs,
    defaults: &input::Defaults,
) -> anyhow::Result<Vec<JobSpec>> {
    input::check_selection(&args.patterns, &args.exclude)?;
    // Fail on a bad profile before anyone logs in.
    input::jobs_for_inventory(
        [VmRef {
            name: Some("probe".into()),
            id: None,
        }],
        defaults,
    )?;
    let client = connect(file).await?;
    let pairings = client.pairings().await.context("listing pairings")?;
    let pairing = choose_pairing(&pairings, defaults.pairing().as_deref())
        .map_err(|m| InputErrors(vec![InputError::new(None, Some("pairing"), m.to_string())]))?;
    let local_vc = pairing
        .local_vc_server
        .id
        .as_deref()
        .context("the pairing names no local vCenter id")?;
    let vms = client
        .vms(&pairing.pairing_id, local_vc, true, None)
        .await
        .context("listing the source VMs suitable for replication")?;
    client.logout().await.ok();
    let chosen = vms
        .into_iter()
        .filter(|vm| args.patterns.iter().any(|p| glob_match(p, &vm.name)))
        .filter(|vm| !args.exclude.iter().any(|p| glob_match(p, &vm.name)))
        .map(|vm| VmRef {
            name: Some(vm.name),
            id: Some(vm.id),
        });
    Ok(input::jobs_for_inventory(chosen, defaults)?)
}
