//! `vrbulk import`: turn a CSV, or a name pattern over the live inventory, into a batch of jobs
//! ([`workflow::import`](crate::workflow::import), which checks everything first); then the
//! batch id, the job count and a summary per setting are printed.

use crate::exit::Exit;
use std::path::{Path, PathBuf};

use clap::Args;

use super::Profile;
use crate::config::ConfigFile;
use crate::input;
use crate::workflow::import::{import, ImportRequest, Source};

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

impl ImportArgs {
    /// The request these flags make, over the settings file's `[defaults]`.
    fn request(&self, file: &ConfigFile) -> ImportRequest {
        let source = match &self.file {
            Some(path) => Source::Csv(path.clone()),
            None => Source::Inventory {
                patterns: self.patterns.clone(),
                exclude: self.exclude.clone(),
            },
        };
        ImportRequest {
            source,
            name: self.name.clone(),
            defaults: self.profile.over(&file.defaults),
            change_ticket: self.profile.change_ticket.clone(),
            max_attempts: self.max_attempts,
            again: self.again,
            check: self.check,
        }
    }
}

pub async fn run(args: ImportArgs, config: Option<&Path>, db: &Path) -> anyhow::Result<Exit> {
    let file = ConfigFile::load(config)?;
    let imported = import(&args.request(&file), &file, db).await?;
    if imported.checked {
        println!(
            "checked against the live inventory: every VM, pairing, datastore, storage policy \
             and VR server of the file exists"
        );
    }
    let batch = imported.batch;
    println!(
        "batch {batch} \"{}\": {} jobs imported into {}",
        imported.name,
        imported.jobs.len(),
        db.display()
    );
    print!("{}", input::summarize(&imported.jobs));
    println!("\nnext: vrbulk plan --batch {batch}   (a dry run), then vrbulk run --batch {batch}");
    Ok(Exit::Ok)
}
