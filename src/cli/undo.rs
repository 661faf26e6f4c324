//! `vrbulk undo`: unconfigure the replications a configure batch created, and nothing else. It
//! shows what it will remove and asks first on a terminal; a script says `--yes`. With
//! `--local-only` it removes only this site's half (`DELETE …/replications/{id}`), for when the
//! target site is down, and says that the target site keeps its half.

use crate::exit::Exit;
use std::io::{BufRead, IsTerminal, Write};

use clap::Args;
use thiserror::Error;

use super::operate::{operate, Globals, OperationArgs};
use crate::domain::OperationSpec;
use crate::workflow::day2::{Asked, OperationRequest, Prepared};

#[derive(Debug, Args)]
#[command(after_help = "Examples:
  vrbulk undo --batch 3 --plan                     # what would be removed, what left alone
  vrbulk undo --batch 3 --vm 'web-*' --keep-replica-disks
  vrbulk undo --batch 3 --yes                      # in a script: no question asked
  vrbulk undo --batch 3 --local-only --yes         # the target site is down
  vrbulk undo --batch 3 --wait --yes               # batch 3 is still being configured
Only the replications batch 3 recorded are removed: a replication someone else configured for
one of its VMs since is left alone and reported. Interrupted, the same command again (or
`vrbulk run --batch <new batch>`) resumes the undo; nothing is unconfigured twice.")]
pub struct UndoArgs {
    #[command(flatten)]
    pub common: OperationArgs,
    /// Keep the replica disks on the target site (to configure again from them as seeds).
    #[arg(long)]
    pub keep_replica_disks: bool,
    /// Remove each replication on this site only (`DELETE …/replications/{id}`), for when the
    /// target site is down. The target site keeps its half (its replication record and, unless
    /// removed there, the replica disks), to be cleaned up there.
    #[arg(long)]
    pub local_only: bool,
    /// Do not ask for confirmation (for scripts). Without a terminal, undo refuses to run
    /// without it.
    #[arg(long, short = 'y')]
    pub yes: bool,
}

/// The operator did not confirm the undo: nothing was written or sent (exit 2).
#[derive(Debug, Error)]
pub enum NotConfirmed {
    #[error(
        "undo asks before it removes replications, and there is no terminal to ask on: check \
         what it would do with --plan, then run it with --yes"
    )]
    NoTerminal,

    #[error("not confirmed: nothing was removed")]
    Declined,
}

const LOCAL_ONLY_WARNING: &str = "warning: --local-only removes each replication on this site \
     only (DELETE …/replications/{id}), for when the target site is down: the target site keeps \
     its half (its replication record and the replica disks), which must be cleaned up there \
     once it is back";

pub async fn run(args: UndoArgs, globals: Globals<'_>) -> anyhow::Result<Exit> {
    let request = OperationRequest {
        acts_on: args.common.batch,
        vms: args.common.vms.clone(),
        only_finished: args.common.only_finished,
        asked: Asked::Each(OperationSpec::Unconfigure {
            retain_replica_disks: args.keep_replica_disks,
            local_only: args.local_only,
        }),
    };
    if args.local_only {
        eprintln!("{LOCAL_ONLY_WARNING}");
    }
    operate(request, &args.common, globals, |prepared| {
        confirm(prepared, &args)
    })
    .await
}

/// Shows what the undo removes, then asks, unless `--yes`.
fn confirm(prepared: &Prepared, args: &UndoArgs) -> anyhow::Result<()> {
    let n = prepared.targets.len();
    // A local-only removal leaves the target site as it is, replica disks included.
    let disks = if args.local_only {
        "the target site keeps its half, to be cleaned up there"
    } else if args.keep_replica_disks {
        "the replica disks on the target site are kept"
    } else {
        "the replica disks on the target site go too"
    };
    println!(
        "{} \"{}\" removes {}; {disks}:",
        prepared.name(),
        prepared.acts_on.name,
        super::count(n, "replication", "replications")
    );
    let mut table = super::table(["VM", "replication"]);
    for t in &prepared.targets {
        table.add_row([t.vm_name(), t.replication_id()]);
    }
    println!("{table}");
    if args.yes {
        return Ok(());
    }
    if !std::io::stdin().is_terminal() {
        return Err(NotConfirmed::NoTerminal.into());
    }
    let what = if n == 1 {
        "this replication".to_string()
    } else {
        format!("these {n} replications")
    };
    if typed_yes(&format!("Remove {what}?"))? {
        Ok(())
    } else {
        Err(NotConfirmed::Declined.into())
    }
}

/// Asks `question` on the terminal; whether the operator typed yes.
pub(super) fn typed_yes(question: &str) -> std::io::Result<bool> {
    eprint!("{question} Type yes to go on: ");
    std::io::stderr().flush().ok();
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    Ok(matches!(
        answer.trim().to_ascii_lowercase().as_str(),
        "yes" | "y"
    ))
}
