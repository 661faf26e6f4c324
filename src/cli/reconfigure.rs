//! `vrbulk reconfigure`: change settings of the replications a configure batch created, the same
//! change for each (flags) or one per VM (a CSV in the import's columns, an empty cell keeping
//! that setting). Each replication's current configuration and disks are read when it runs, and
//! only what was asked changes.

use crate::exit::Exit;
use std::path::PathBuf;

use clap::Args;

use super::operate::{operate, Globals, OperationArgs};
use crate::domain::OperationSpec;
use crate::input::{change_of_flags, Defaults, InputError, InputErrors};
use crate::workflow::day2::{Asked, OperationRequest};

#[derive(Debug, Args)]
#[command(after_help = "Examples:
  vrbulk reconfigure --batch 2 --rpo 15 --plan
  vrbulk reconfigure --batch 2 --vm 'db-*' --rpo 15 --mpit-instances 4 --mpit-days 3
  vrbulk reconfigure changes.csv --batch 2
The CSV has the import's columns: vm_name or vm_id, then the settings to change (rpo,
mpit_instances, mpit_days, quiesce, network_compression, lwd_encryption,
auto_replicate_new_disks, storage_policy, replication_server); an empty cell keeps that
setting. target_datastore, pairing, disk_format, change_ticket and notes cannot change and
must be empty. Every problem is reported at once and nothing is sent unless all is valid.")]
#[command(
    mut_arg("pairing", |a| a.hide(true)),
    mut_arg("target_datastore", |a| a.hide(true)),
    mut_arg("disk_format", |a| a.hide(true))
)]
pub struct ReconfigureArgs {
    /// A CSV with each VM's changes, in the import's columns (instead of the settings flags).
    #[arg(
        value_name = "FILE.csv",
        conflicts_with_all = [
            "vms", "rpo", "mpit_instances", "mpit_days", "storage_policy",
            "network_compression", "quiesce", "lwd_encryption", "auto_replicate_new_disks",
            "replication_server",
        ]
    )]
    pub file: Option<PathBuf>,

    #[command(flatten)]
    pub common: OperationArgs,

    /// The settings flags `import` takes; those a reconfigure cannot change are hidden here,
    /// and refused when given.
    #[command(flatten)]
    pub change: Defaults,
}

pub async fn run(args: ReconfigureArgs, globals: Globals<'_>) -> anyhow::Result<Exit> {
    let asked = match &args.file {
        None => Asked::Each(OperationSpec::Reconfigure(change_of_flags(&args.change)?)),
        Some(path) => {
            let bytes = std::fs::read(path).map_err(|e| {
                InputErrors(vec![InputError::new(
                    None,
                    None,
                    format!("cannot read {}: {e}", path.display()),
                )])
            })?;
            let shown = std::fs::canonicalize(path).unwrap_or_else(|_| path.clone());
            Asked::Csv {
                bytes,
                path: shown.display().to_string(),
            }
        }
    };
    let request = OperationRequest {
        acts_on: args.common.batch,
        vms: args.common.vms.clone(),
        only_finished: args.common.only_finished,
        asked,
    };
    operate(request, &args.common, globals, |_| Ok(())).await
}
