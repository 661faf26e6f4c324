//! What the day-2 commands (`undo`, `reconfigure`, `pause`, `resume`, `sync`) share: their
//! common flags, and one flow. The whole request is checked first (`workflow::day2`: every
//! problem at once, exit 2, nothing written); then `--plan` reads the replications and prints
//! what would happen (`workflow::operation_plan`), or the operation batch is created and run as
//! `vrbulk run` runs a batch (`run::drive`: progress, Ctrl-C, summary, exit codes).

use crate::exit::Exit;
use std::path::Path;

use clap::Args;

use super::progress::ProgressMode;
use super::run::{drive, Display};
use super::{connect, who, NoBatch};
use crate::config::{ConfigFile, Connection, ProcessEnvironment, RunFlags};
use crate::queue::Queue;
use crate::workflow::day2::{command_word, OperationRequest, Prepared};
use crate::workflow::operation_plan::{plan_operation, OperationPlanRow, Verdict};
use crate::workflow::PlanError;

/// The flags of every day-2 command.
#[derive(Debug, Args)]
pub struct OperationArgs {
    /// The configure batch whose replications to act on.
    #[arg(long, value_name = "N")]
    pub batch: i64,
    /// Only the VMs whose names match (`*`, `?`, case-insensitive); repeatable, any may match
    /// [default: every VM the batch configured].
    #[arg(long = "vm", value_name = "GLOB")]
    pub vms: Vec<String>,
    /// Show what would be done to each VM, and what would be refused and why, reading the
    /// replications only: no batch is created, nothing is changed. Exit 1 when something would
    /// be refused.
    #[arg(long)]
    pub plan: bool,
    /// With --plan: print the plan as JSON.
    #[arg(long, requires = "plan")]
    pub json: bool,
    /// How to show progress: a bar on a terminal, plain lines otherwise.
    #[arg(long, value_enum, default_value_t = ProgressMode::Auto)]
    pub progress: ProgressMode,
}

/// The global flags a day-2 command uses.
#[derive(Debug, Clone, Copy)]
pub struct Globals<'a> {
    pub config: Option<&'a Path>,
    pub db: &'a Path,
    pub quiet: bool,
}

/// Checks `request`, then plans it (`--plan`) or, once `confirm` agrees, creates its operation
/// batch and runs it; the exit code of the operator contract.
pub(super) async fn operate(
    request: OperationRequest,
    args: &OperationArgs,
    globals: Globals<'_>,
    confirm: impl FnOnce(&Prepared) -> anyhow::Result<()>,
) -> anyhow::Result<Exit> {
    let file = ConfigFile::load(globals.config)?;
    let opts = file.run.options(&RunFlags::default())?;
    let env = ProcessEnvironment;
    // A settings file without a URL fails here, before the operator is asked anything.
    let connection = Connection::resolve(&file, &env)?;
    let mut queue = open_queue(globals.db)?;
    let prepared = request.prepare(&queue)?;
    if args.plan {
        drop(queue);
        return plan(&file, &prepared, args.json).await;
    }
    confirm(&prepared)?;
    let settings = connection.with_passwords(&env)?;
    let (operator, host) = who();
    let id = prepared.create(&mut queue, operator, host)?;
    eprintln!(
        "created batch {id} \"{}\" for {} of batch {}; if this run is interrupted, \
         `vrbulk run --batch {id}` resumes it",
        prepared.name(),
        super::count(prepared.targets.len(), "VM", "VMs"),
        prepared.acts_on.id
    );
    let batch = queue.batch(id)?;
    let how = Display {
        db: globals.db,
        progress: args.progress,
        quiet: globals.quiet,
    };
    drive(queue, &batch, settings, opts, how).await
}

/// The queue at `db`, which must exist: a day-2 operation acts on a batch already there.
fn open_queue(db: &Path) -> anyhow::Result<Queue> {
    if !db.exists() {
        return Err(NoBatch::NoQueue { db: db.into() }.into());
    }
    Ok(Queue::open(db)?)
}

/// `--plan`: reads the replications, prints what would happen; exit 1 when something would be
/// refused, so that a script can stop there.
async fn plan(file: &ConfigFile, prepared: &Prepared, json: bool) -> anyhow::Result<Exit> {
    let client = connect(file).await?;
    let rows = match plan_operation(&client, prepared.acts_on.id, &prepared.targets).await {
        Ok(rows) => rows,
        // The plan reads the replication list, which only the target site can answer; the
        // local-only undo itself never reads it.
        Err(e @ PlanError::RemoteLogin { .. }) if prepared.removes_locally() => {
            let batch = prepared.acts_on.id;
            return Err(anyhow::Error::new(e).context(format!(
                "--plan cannot read the replications without the target site; the undo itself \
                 does not need it (`vrbulk undo --batch {batch} --local-only --yes` removes the \
                 replications batch {batch} recorded, by id, on this site)"
            )));
        }
        Err(e) => return Err(e.into()),
    };
    client.logout().await.ok();
    if json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else {
        print_plan(prepared, &rows, client.metrics().total_calls());
    }
    if rows.iter().any(|r| r.verdict == Verdict::Refused) {
        return Ok(Exit::JobsFailed);
    }
    Ok(Exit::Ok)
}

fn print_plan(prepared: &Prepared, rows: &[OperationPlanRow], calls: u64) {
    let count = |v: Verdict| rows.iter().filter(|r| r.verdict == v).count();
    println!(
        "plan: {} \"{}\": {} to {}, {} to skip, {} would be refused ({calls} API calls; no batch \
         created, nothing changed)",
        prepared.name(),
        prepared.acts_on.name,
        count(Verdict::Act),
        command_word(prepared.operation),
        count(Verdict::Skip),
        count(Verdict::Refused),
    );
    let mut table = super::table(["VM", "replication", "plan", "detail"]);
    for r in rows {
        let detail = match r.verdict {
            Verdict::Act => {
                let mut parts: Vec<String> = r.status.iter().cloned().collect();
                parts.extend(r.changes.iter().cloned());
                parts.join(", ")
            }
            _ => r.reason.clone().unwrap_or_default(),
        };
        let verdict = match r.verdict {
            Verdict::Act => command_word(r.operation),
            other => other.as_str(),
        };
        table.add_row([
            r.vm_name.clone(),
            r.replication_id.clone(),
            verdict.to_string(),
            detail,
        ]);
    }
    println!("{table}");
}
