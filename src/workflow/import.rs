//! An import: a CSV file, or a selection by name patterns over the live source inventory,
//! turned into a new configure batch of one job per VM. Every check comes before the queue is
//! opened, so a bad input leaves no database behind: the flags, the whole file (every problem at
//! once), with `--check` every name against the live inventory; then a file whose content the
//! queue already imported is refused (naming the batch it became), unless asked `again`, and a
//! VM with a job still unfinished elsewhere is refused at its line. The batch records who asked,
//! the file's path and SHA-256, and the settings that were asked for (never secrets).

use std::path::{Path, PathBuf};

use serde_json::{json, Value};
use thiserror::Error;

use super::inventory::{self, InventoryError};
use super::plan::{check_names, PlanError};
use super::session::connect;
use crate::config::ConfigFile;
use crate::domain::{JobSpec, VmRef};
use crate::input::{self, glob_match, Defaults, InputError, InputErrors};
use crate::queue::{Batch, BatchId, InputKind, NewBatch, Queue, QueueError};
use crate::timefmt::utc;

/// What the operator asked to import.
#[derive(Debug, Clone)]
pub struct ImportRequest {
    pub source: Source,
    /// The batch's name [default: the file's name, or the patterns].
    pub name: Option<String>,
    /// The replication settings every job starts from: the flags over `[defaults]`.
    pub defaults: Defaults,
    /// Recorded for every job whose row names no ticket.
    pub change_ticket: Option<String>,
    /// Attempts per job before it fails.
    pub max_attempts: u32,
    /// Import a file whose content the queue already holds, as a new batch.
    pub again: bool,
    /// Check every name of the file against the live inventory first.
    pub check: bool,
}

/// Where the VMs come from.
#[derive(Debug, Clone)]
pub enum Source {
    Csv(PathBuf),
    /// The source VMs suitable for replication whose name matches one of `patterns` and none of
    /// `exclude` (globs, any case).
    Inventory {
        patterns: Vec<String>,
        exclude: Vec<String>,
    },
}

/// The batch an import created.
#[derive(Debug, Clone)]
pub struct Imported {
    pub batch: BatchId,
    pub name: String,
    pub jobs: Vec<JobSpec>,
    /// Whether every name was checked against the live inventory (`--check`).
    pub checked: bool,
}

/// Why nothing was imported.
#[derive(Debug, Error)]
pub enum ImportError {
    /// The operator's input (flags, file, selection, or a file or VMs already queued): every
    /// problem of it.
    #[error(transparent)]
    Input(#[from] InputErrors),

    #[error("cannot read {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// Reading the live inventory for a selection.
    #[error(transparent)]
    Inventory(Box<InventoryError>),

    #[error("checking the names against the live inventory")]
    Check(#[source] PlanError),

    #[error(transparent)]
    Queue(#[from] QueueError),
}

impl From<InventoryError> for ImportError {
    fn from(e: InventoryError) -> Self {
        match e {
            // The pairing a selection names is the operator's input.
            InventoryError::Pairing(refused) => {
                ImportError::Input(InputErrors(vec![InputError::new(
                    None,
                    Some("pairing"),
                    refused.to_string(),
                )]))
            }
            other => ImportError::Inventory(Box::new(other)),
        }
    }
}

/// The jobs read, before the queue sees them.
struct Read {
    jobs: Vec<JobSpec>,
    kind: InputKind,
    /// The file as the batch records it (its full path), and its digest.
    path: Option<String>,
    sha256: Option<String>,
    default_name: String,
}

/// Imports `request` into the queue at `db` (created when missing), with the connection
/// settings of `file` for what reads the live inventory.
pub async fn import(
    request: &ImportRequest,
    file: &ConfigFile,
    db: &Path,
) -> Result<Imported, ImportError> {
    // The file's own [defaults] passed when it was loaded: what is wrong now came from a flag.
    request.defaults.check_flags()?;
    if let Some(ticket) = &request.change_ticket {
        input::check_flag("change-ticket", input::Text::ChangeTicket, ticket)?;
    }
    let mut read = match &request.source {
        Source::Csv(path) => read_csv(path, &request.defaults)?,
        Source::Inventory { patterns, exclude } => Read {
            jobs: select(file, patterns, exclude, &request.defaults).await?,
            kind: InputKind::Inventory,
            path: None,
            sha256: None,
            default_name: format!("inventory {}", patterns.join(" ")),
        },
    };
    if let Some(ticket) = &request.change_ticket {
        read.jobs
            .iter_mut()
            .filter(|j| j.change_ticket.is_none())
            .for_each(|j| j.change_ticket = Some(ticket.clone()));
    }
    if request.check {
        check(file, &read.jobs).await?;
    }

    // The input was checked before the queue is opened, so a bad file leaves no database behind.
    let mut queue = Queue::open(db)?;
    // Before the VMs are checked against unfinished batches: a file imported twice is most
    // often a mistake, and which batch it became says more than which VMs are queued. Two
    // imports of one file at the same moment are still stopped by that VM check, which shares
    // the write lock with the insert.
    if let (Source::Csv(path), Some(sha), false) = (&request.source, &read.sha256, request.again) {
        let before = queue.imports_of(sha)?;
        if let Some((last, earlier)) = before.split_last() {
            let refusal = already_imported(&queue, path, read.path.as_deref(), last, earlier)?;
            return Err(refusal.into());
        }
    }
    let (operator, host) = crate::operator::who();
    let name = request.name.clone().unwrap_or(read.default_name);
    let batch = queue
        .create_batch(
            &NewBatch {
                name: name.clone(),
                operator,
                host,
                input_kind: read.kind,
                input_path: read.path,
                input_sha256: read.sha256,
                settings: audit_settings(request),
                max_attempts: request.max_attempts,
            },
            &read.jobs,
        )
        .map_err(refusal_as_input_errors)?;
    Ok(Imported {
        batch,
        name,
        jobs: read.jobs,
        checked: request.check,
    })
}

/// The jobs of the CSV at `path`, every problem of it at once.
fn read_csv(path: &Path, defaults: &Defaults) -> Result<Read, ImportError> {
    let bytes = std::fs::read(path).map_err(|source| ImportError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let jobs = input::parse_csv(&bytes, defaults)?;
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "import".into());
    let shown = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    Ok(Read {
        jobs,
        kind: InputKind::Csv,
        path: Some(shown.display().to_string()),
        sha256: Some(input::digest(&bytes)),
        default_name: stem,
    })
}

/// The jobs of an inventory selection: the patterns and the profile are checked before anyone
/// logs in.
async fn select(
    file: &ConfigFile,
    patterns: &[String],
    exclude: &[String],
    defaults: &Defaults,
) -> Result<Vec<JobSpec>, ImportError> {
    input::check_selection(patterns, exclude)?;
    input::jobs_for_inventory(
        [VmRef {
            name: Some("probe".into()),
            id: None,
        }],
        defaults,
    )?;
    let vms = inventory::source_vms(file, defaults.pairing().as_deref(), true).await?;
    let chosen = vms
        .into_iter()
        .filter(|vm| patterns.iter().any(|p| glob_match(p, &vm.name)))
        .filter(|vm| !exclude.iter().any(|p| glob_match(p, &vm.name)))
        .map(|vm| VmRef {
            name: Some(vm.name),
            id: Some(vm.id),
        });
    Ok(input::jobs_for_inventory(chosen, defaults)?)
}

/// `--check`: every name the rows give, looked up on the appliance with the plan's own calls;
/// the names it does not know are the input's problems (exit 2, nothing imported).
async fn check(file: &ConfigFile, jobs: &[JobSpec]) -> Result<(), ImportError> {
    let client = connect(file)
        .await
        .map_err(|e| ImportError::Inventory(Box::new(e.into())))?;
    let problems = check_names(&client, jobs, super::LOOKUP_GROUP).await;
    client.logout().await.ok();
    let problems = problems.map_err(ImportError::Check)?;
    if problems.is_empty() {
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

/// What was asked, for the audit: the profile's keys that are set, the attempts, and the
/// selection.
fn audit_settings(request: &ImportRequest) -> Value {
    let mut settings = json!({
        "defaults": request.defaults.set_keys(),
        "max_attempts": request.max_attempts,
    });
    if let Source::Inventory { patterns, exclude } = &request.source {
        settings["match"] = json!(patterns);
        settings["exclude"] = json!(exclude);
    }
    settings
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
) -> Result<InputErrors, QueueError> {
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
fn refusal_as_input_errors(err: QueueError) -> ImportError {
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
