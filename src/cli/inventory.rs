//! `vrbulk inventory export`: a CSV template with one row per source VM and its current
//! replication status, for the operator to edit and import (written by
//! [`workflow::inventory::export`](crate::workflow::inventory::export)).

use crate::exit::Exit;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Args, Subcommand};

use crate::config::ConfigFile;
use crate::workflow::inventory;

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
    let wanted = args.pairing.clone().or_else(|| file.defaults.pairing());
    let export = inventory::export(&file, wanted.as_deref(), &file.defaults).await?;
    match &args.output {
        Some(path) => {
            std::fs::write(path, &export.csv)
                .with_context(|| format!("writing {}", path.display()))?;
            eprintln!(
                "{} VMs of {} written to {}: fill in target_datastore where empty, delete the rows \
                 to leave out, then `vrbulk import {}`",
                export.vms,
                export.source_vcenter,
                path.display(),
                path.display()
            );
        }
        None => std::io::stdout().write_all(&export.csv)?,
    }
    Ok(Exit::Ok)
}
