//! `vrbulk export --desired`: what the appliance protects now on a pairing, written as a
//! desired-state file (`workflow::desired::export`), so that a team starts from what exists.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;

use crate::config::ConfigFile;
use crate::exit::Exit;
use crate::input::{InputError, InputErrors};
use crate::workflow::desired::{self, read_protection, Created};

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

pub async fn run(args: ExportArgs, config: Option<&Path>, db: &Path) -> anyhow::Result<Exit> {
    let file = ConfigFile::load(config)?;
    if let Some(out) = &args.output {
        if out.exists() {
            return Err(InputErrors(vec![InputError::new(
                None,
                None,
                format!(
                    "{} exists: export does not overwrite it; name another file, or remove it",
                    out.display()
                ),
            )])
            .into());
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
    let text = desired::export(&live.remote_vc, &live, &created, datastore.as_deref())
        .map_err(|e| InputErrors(vec![InputError::new(None, None, e.to_string())]))?;
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
