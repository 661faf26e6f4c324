//! What the day-2 commands (`undo`, `reconfigure`, `pause`, `resume`, `sync`) share: their
//! common flags, and one flow. The whole request is checked first (`workflow::day2`: every
//! problem at once, exit 2, nothing written); then `--plan` reads the replications and prints
//! what would happen (`workflow::operation_plan`). Otherwise the same command run again resumes
//! its own unfinished batch (`workflow::rerun`); a configure batch still being configured is
//! waited for (`--wait`) or refused unless `--only-finished`; then the operation batch is
//! created and run as `vrbulk run` runs a batch (`run::drive`: progress, Ctrl-C, summary, exit
//! codes).

use crate::exit::Exit;
use std::path::Path;
use std::time::{Duration, Instant};

use clap::Args;

use super::batches::liveness_here;
use super::progress::ProgressMode;
use super::run::{drive, Display};
use super::who;
use crate::config::{ConfigFile, ProcessEnvironment, RunSetup};
use crate::queue::{Liveness, Queue};
use crate::settings::{parse_until, RunSettings};
use crate::workflow::connect;
use crate::workflow::day2::{
    command_word, last_run, wait_while_configuring, OperationRequest, PrepareError, Prepared,
    Refused,
};
use crate::workflow::operation_plan::{plan_operation, OperationPlanRow, Verdict};
use crate::workflow::rerun::unfinished_batch;
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
    /// When a live run is still configuring the batch: wait for it to end, then act on every
    /// VM it configured (Ctrl-C stops waiting; nothing is created until then).
    #[arg(long, conflicts_with = "plan")]
    pub wait: bool,
    /// Act on the VMs the batch has configured so far and leave out those it has not
    /// configured yet (named when it starts) [default: refuse while some are not].
    #[arg(long, conflicts_with = "plan")]
    pub only_finished: bool,
    /// The end of the change window: no change reaches the appliance at or after it (what was
    /// sent is followed to its end; the rest waits for `vrbulk run --batch N`, exit 6). `HH:MM`
    /// (local, the next one to come), `YYYY-MM-DD HH:MM` (local) or RFC 3339.
    #[arg(long, value_name = "TIME", conflicts_with = "plan", value_parser = parse_until)]
    pub until: Option<i64>,
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
    let flags = RunSettings {
        until: args.until,
        ..RunSettings::default()
    };
    let env = ProcessEnvironment;
    // A settings file without a URL fails here, before the operator is asked anything.
    let RunSetup {
        connection,
        options: opts,
    } = file.for_run(&env, &flags)?;
    let mut queue = Queue::existing(globals.db)?;
    let liveness = liveness_here();
    let mut prepared = request.prepare(&queue)?;
    if args.plan {
        // The plan covers the VMs configured so far; the others are named, not forgotten.
        let left_out = match prepared.coverage(&queue, &liveness) {
            Err(PrepareError::Refused(refused)) => Some(refused),
            Err(other) => return Err(other.into()),
            Ok(_) => None,
        };
        drop(queue);
        return plan(&file, &prepared, args.json, left_out.as_deref()).await;
    }
    let how = Display {
        db: globals.db,
        progress: args.progress,
        quiet: globals.quiet,
        notify: &file.notify,
    };
    if let Some(resumable) = unfinished_batch(&prepared, &queue, &liveness)? {
        let settings = connection.with_passwords(&env)?;
        eprintln!("{}", resumable.line());
        return drive(queue, &resumable.batch, settings, opts, how).await;
    }
    if args.wait && !prepared.not_configured_yet.is_empty() {
        if !wait(&queue, &prepared, &liveness).await? {
            return Ok(Exit::Interrupted);
        }
        // With what the run configured in the meantime.
        prepared = request.prepare(&queue)?;
    }
    if let Some(left_out) = prepared.coverage(&queue, &liveness)? {
        eprintln!("{}", left_out.note());
    }
    confirm(&prepared)?;
    let settings = connection.with_passwords(&env)?;
    let (operator, host) = who();
    let id = prepared.create(&mut queue, operator, host)?;
    eprintln!(
        "created batch {id} \"{}\" for {} of batch {}; if this run is interrupted, this \
         same command (or `vrbulk run --batch {id}`) resumes it",
        prepared.name(),
        super::count(prepared.targets.len(), "VM", "VMs"),
        prepared.acts_on.id
    );
    let batch = queue.batch(id)?;
    drive(queue, &batch, settings, opts, how).await
}

/// `--wait`: while a live run configures the batch, says so now and then; `false` when the
/// operator stopped waiting (Ctrl-C), with nothing created.
async fn wait(
    queue: &Queue,
    prepared: &Prepared,
    liveness: &dyn Fn(&str) -> Liveness,
) -> anyhow::Result<bool> {
    const EVERY: Duration = Duration::from_secs(1);
    const SAY_EVERY: Duration = Duration::from_secs(30);
    let id = prepared.acts_on.id;
    let word = command_word(prepared.operation);
    let mut said: Option<(Instant, u64)> = None;
    let waiting = wait_while_configuring(queue, id, liveness, EVERY, |left, owners| {
        match said {
            None => eprintln!(
                "waiting: batch {id} is being configured by {} ({left} jobs left); the {word} \
                 starts when that run ends. Ctrl-C stops waiting (nothing is created until then)",
                owners.join(", ")
            ),
            Some((at, before)) if at.elapsed() >= SAY_EVERY && before != left => {
                eprintln!("waiting: batch {id} has {left} jobs left")
            }
            Some(_) => return,
        }
        said = Some((Instant::now(), left));
    });
    tokio::select! {
        standing = waiting => {
            let standing = standing?;
            if said.is_some() {
                eprintln!("the run configuring batch {id} has ended: batch {id} {}", last_run(&standing));
            }
            Ok(true)
        }
        _ = tokio::signal::ctrl_c() => {
            eprintln!("\nstopped waiting for batch {id}: no {word} batch was created, nothing was sent");
            Ok(false)
        }
    }
}

/// `--plan`: reads the replications, prints what would happen, then what is `left_out`; exit 1
/// when something would be refused, so that a script can stop there.
async fn plan(
    file: &ConfigFile,
    prepared: &Prepared,
    json: bool,
    left_out: Option<&Refused>,
) -> anyhow::Result<Exit> {
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
        Err(e) => return Err(anyhow::Error::new(e).context("the plan is incomplete")),
    };
    client.logout().await.ok();
    if json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else {
        print_plan(prepared, &rows, client.metrics().total_calls());
    }
    if let Some(refused) = left_out {
        eprintln!("note: {refused}");
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
