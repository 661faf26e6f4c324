//! `vrbulk inventory export`: a CSV template with one row per source VM and its current
//! replication status, for the operator to edit and import.

use crate::exit::Exit;
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Args, Subcommand};

use super::connect;
use crate::config::ConfigFile;
use crate::input::Column;
use crate::vr::model::spec_name;
use crate::workflow::choose_pairing;

#[derive(Debug, Subcommand)]
pub enum InventoryCommand {
    /// Write a CSV template of the source VMs, ready to edit and import.
    #[command(
        after_help = "Example:\n  vrbulk inventory export --pairing vc-site-b.corp.local -o wave-1.csv"
    )]
    Export(ExportArgs),
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Remote vCenter name or pairing id [default: the only pairing].
    #[arg(long)]
    pub pairing: Option<String>,
    /// Output file [default: standard output].
    #[arg(short, long)]
    pub output: Option<PathBuf>,
}

pub async fn run(cmd: InventoryCommand, config: Option<&Path>) -> anyhow::Result<Exit> {
    let InventoryCommand::Export(args) = cmd;
    let file = ConfigFile::load(config)?;
    let pairing_wanted = args.pairing.clone().or_else(|| file.defaults.pairing());
    let client = connect(&file).await?;
    let pairings = client.pairings().await.context("listing pairings")?;
    let pairing = choose_pairing(&pairings, pairing_wanted.as_deref())?;
    let local_vc = pairing
        .local_vc_server
        .id
        .as_deref()
        .context("the pairing names no local vCenter id")?;
    client
        .remote_login(&pairing.pairing_id)
        .await
        .map_err(|source| super::LoginFailed {
            site: format!(
                "the target site {}",
                pairing.remote_vc_server.name.as_deref().unwrap_or("?")
            ),
            user: client.settings().target.user.clone(),
            source,
        })?;
    let vms = client
        .vms(&pairing.pairing_id, local_vc, false, None)
        .await
        .context("listing the source VMs")?;
    let replications: HashMap<String, String> = client
        .replications(&pairing.pairing_id, None)
        .await
        .context("listing existing replications")?
        .into_iter()
        .filter_map(|r| {
            let state = r
                .configuration_state
                .and_then(spec_name)
                .unwrap_or_else(|| "?".into());
            Some((r.vm_id?, format!("already replicated ({}, {state})", r.id)))
        })
        .collect();
    client.logout().await.ok();

    let d = &file.defaults;
    let settings = d.settings();
    let remote_name = pairing.remote_vc_server.name.clone().unwrap_or_default();
    let mut out = csv::Writer::from_writer(Vec::new());
    out.write_record(Column::ALL.iter().map(|c| c.name()))?;
    for vm in &vms {
        // The status has a column of its own: `notes` is the operator's, and the import carries
        // it untouched into the report, where a status next to a configured VM would mislead.
        let status = if vm.template == Some(true) {
            "template: cannot be replicated".to_string()
        } else {
            replications
                .get(&vm.id)
                .cloned()
                .unwrap_or_else(|| "not replicated".into())
        };
        let row: Vec<String> = Column::ALL
            .iter()
            .map(|c| match c {
                Column::VmName => vm.name.clone(),
                Column::VmId => vm.id.clone(),
                Column::Pairing => remote_name.clone(),
                Column::TargetDatastore => d.target_datastore().unwrap_or_default(),
                Column::StoragePolicy => d.storage_policy().unwrap_or_default(),
                Column::Rpo => settings.rpo.to_string(),
                Column::MpitInstances => settings.mpit_instances.to_string(),
                Column::MpitDays => settings.mpit_days.to_string(),
                Column::Quiesce => settings.quiesce.to_string(),
                Column::NetworkCompression => settings.network_compression.to_string(),
                Column::LwdEncryption => settings.lwd_encryption.to_string(),
                Column::AutoReplicateNewDisks => settings.auto_replicate_new_disks.to_string(),
                Column::DiskFormat => settings.disk_format.to_string(),
                Column::ReplicationServer => {
                    d.replication_server().unwrap_or_else(|| "auto".into())
                }
                Column::ChangeTicket => String::new(),
                Column::Notes => String::new(),
                Column::ReplicationStatus => status.clone(),
            })
            .collect();
        out.write_record(&row)?;
    }
    let bytes = out.into_inner().context("writing the CSV")?;
    match &args.output {
        Some(path) => {
            std::fs::write(path, &bytes).with_context(|| format!("writing {}", path.display()))?;
            eprintln!(
                "{} VMs of {} written to {}: fill in target_datastore where empty, delete the rows \
                 to leave out, then `vrbulk import {}`",
                vms.len(),
                pairing.local_vc_server.name.as_deref().unwrap_or("the source vCenter"),
                path.display(),
                path.display()
            );
        }
        None => std::io::stdout().write_all(&bytes)?,
    }
    Ok(Exit::Ok)
}
