//! `vrbulk reconfigure`: change settings of the replications a configure batch created, the same
//! change for each (flags) or one per VM (a CSV in the import's columns, an empty cell keeping
//! that setting). Each replication's current configuration and disks are read when it runs, and
//! only what was asked changes.

use crate::exit::Exit;
use std::path::PathBuf;

use clap::Args;

use super::operate::{operate, Globals, OperationArgs};
use crate::domain::{OperationSpec, SettingsChange};
use crate::input::{InputError, InputErrors};
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

    #[command(flatten)]
    pub change: ChangeFlags,
}

/// The settings a reconfigure can change; a flag left out keeps the setting as it is.
#[derive(Debug, Clone, Default, Args)]
pub struct ChangeFlags {
    /// New recovery point objective in minutes (5..1440).
    #[arg(long)]
    pub rpo: Option<u32>,
    /// Point-in-time instances to keep per day (0: MPIT off).
    #[arg(long)]
    pub mpit_instances: Option<u32>,
    /// Days of point-in-time instances.
    #[arg(long)]
    pub mpit_days: Option<u32>,
    /// Storage policy name on the target site, for every replicated disk.
    #[arg(long)]
    pub storage_policy: Option<String>,
    /// Compress replication traffic (true/false).
    #[arg(long, value_name = "BOOL")]
    pub network_compression: Option<bool>,
    /// Quiesce the guest OS (true/false).
    #[arg(long, value_name = "BOOL")]
    pub quiesce: Option<bool>,
    /// Encrypt replication traffic (true/false).
    #[arg(long, value_name = "BOOL")]
    pub lwd_encryption: Option<bool>,
    /// Replicate disks added to the VM later (true/false).
    #[arg(long, value_name = "BOOL")]
    pub auto_replicate_new_disks: Option<bool>,
    /// Target VR server name, or `auto`.
    #[arg(long)]
    pub replication_server: Option<String>,
}

impl ChangeFlags {
    fn change(&self) -> SettingsChange {
        let f = self.clone();
        SettingsChange {
            rpo: f.rpo,
            mpit_instances: f.mpit_instances,
            mpit_days: f.mpit_days,
            quiesce: f.quiesce,
            network_compression: f.network_compression,
            lwd_encryption: f.lwd_encryption,
            auto_replicate_new_disks: f.auto_replicate_new_disks,
            storage_policy: f.storage_policy,
            replication_server: f.replication_server,
        }
    }
}

pub async fn run(args: ReconfigureArgs, globals: Globals<'_>) -> anyhow::Result<Exit> {
    let asked = match &args.file {
        None => Asked::Each(OperationSpec::Reconfigure(args.change.change())),
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
