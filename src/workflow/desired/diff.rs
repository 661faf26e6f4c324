//! How the appliance differs from a desired state: [`read_live`] reads what is (the pairing's
//! VMs and replications, and for the VMs to configure the plan's own lookups and capacity
//! count), [`diff`] says per VM what would make it as desired. Only replications vrbulk created
//! are ever proposed for a reconfigure or a removal; another tool's are left alone unless the
//! operator adopts them by name (for a removal).

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::Serialize;
use thiserror::Error;

use super::{Created, Desired, Origin, Recorded, Resolved};
use crate::domain::{CapacityLimits, JobSpec, Operation, SettingsChange};
use crate::input::{self, glob_match, Column};
use crate::queue::{Checkpoint, Job, JobState, LearntLimit, Step};
use crate::vr::model::{ReplicationInfo, VirtualMachine};
use crate::vr::{ApiError, Client};
use crate::workflow::operations::refusal;
use crate::workflow::protection::status_name;
use crate::workflow::{plan_jobs, Discovery, DiscoveryError, PlanAction, PlanError};

/// Reading the appliance failed: nothing is said about the VMs.
#[derive(Debug, Error)]
pub enum LiveError {
    #[error("listing the pairings")]
    Pairings(#[source] ApiError),

    #[error("listing the source VMs")]
    Vms(#[source] ApiError),

    #[error(transparent)]
    Discovery(DiscoveryError),

    #[error("planning the VMs to configure")]
    Plan(#[source] PlanError),
}

/// What the appliance shows, read once for a diff.
#[derive(Debug, Clone)]
pub struct Live {
    /// The pairing's remote vCenter, by name.
    pub remote_vc: String,
    pub vms: Vec<VirtualMachine>,
    /// The pairing's replications by VM id.
    pub replications: HashMap<String, ReplicationInfo>,
    /// For each VM to configure (by VM id): what `plan` says `run` would do, `None` when it
    /// would configure it, else why not.
    pub configure_verdicts: HashMap<String, Option<String>>,
    /// API calls the read took.
    pub calls: u64,
    /// The target site's names (VR servers), for a reconfigure that names one; `None` when
    /// not read.
    pub target: Option<Discovery>,
}

/// Reads what a diff needs of the pairing `desired` describes: its source VMs (one list), its
/// discovery (target site login, names and the replication list), then for the wanted VMs that
/// have no replication the plan's grouped lookups and capacity count. A handful of calls.
pub async fn read_live(
    client: &Client,
    desired: &Desired,
    limits: &CapacityLimits,
    learnt: &[LearntLimit],
) -> Result<(Live, Resolved), LiveError> {
    let mut live = read_protection(client, desired.pairing.as_deref()).await?;
    let resolved = desired.resolve(&live.vms);
    // The plan decides, for the VMs to configure, what `run` would: it looks them up and counts
    // the room on the VR servers, datastores and appliance, as the run does.
    let jobs: Vec<Job> = resolved
        .wanted
        .iter()
        .filter(|w| !live.replications.contains_key(&w.vm_id))
        .enumerate()
        .map(|(i, w)| planned_job(i as i64 + 1, &w.spec))
        .collect();
    let mut configure_verdicts = HashMap::new();
    if !jobs.is_empty() {
        let plan = plan_jobs(client, &jobs, crate::workflow::LOOKUP_GROUP, limits, learnt)
            .await
            .map_err(LiveError::Plan)?;
        for (job, row) in jobs.iter().zip(&plan.rows) {
            let verdict = match row.action {
                PlanAction::Configure => None,
                PlanAction::Skip | PlanAction::Fail => Some(
                    row.reason
                        .clone()
                        .unwrap_or_else(|| "the plan would not configure it".into()),
                ),
            };
            configure_verdicts.insert(job.spec.vm.id.clone().unwrap_or_default(), verdict);
        }
    }
    live.configure_verdicts = configure_verdicts;
    live.calls = client.metrics().total_calls();
    Ok((live, resolved))
}

/// What the pairing `wanted` names (or the only one) protects now: its discovery (the target
/// site's login, names and replication list) and its source VMs.
pub async fn read_protection(client: &Client, wanted: Option<&str>) -> Result<Live, LiveError> {
    let pairings = client.pairings().await.map_err(LiveError::Pairings)?;
    let mut disc = Discovery::run(client, &pairings, wanted)
        .await
        .map_err(LiveError::Discovery)?;
    let vms = client
        .vms(&disc.pairing.pairing_id, &disc.local_vc_id, false, None)
        .await
        .map_err(LiveError::Vms)?;
    let mut live = Live {
        remote_vc: disc.remote_vc_name.clone(),
        vms,
        replications: HashMap::new(),
        configure_verdicts: HashMap::new(),
        calls: client.metrics().total_calls(),
        target: None,
    };
    live.replications = std::mem::take(&mut disc.replications);
    live.target = Some(disc);
    Ok(live)
}

/// A job as the plan takes it: pending, not started.
fn planned_job(id: i64, spec: &JobSpec) -> Job {
    Job {
        id,
        batch_id: 0,
        spec: spec.clone(),
        state: JobState::Pending,
        step: Step::ResolveVm,
        attempt: 0,
        max_attempts: 1,
        scheduled_at: 0,
        lease_owner: None,
        lease_expires_at: None,
        in_doubt: false,
        checkpoint: Checkpoint::default(),
        reason: None,
        last_error: None,
        last_http_status: None,
        created_at: 0,
        started_at: None,
        finished_at: None,
        updated_at: 0,
        acts_on_job: None,
        operation: None,
    }
}

/// What would make a VM as desired.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Desired, not protected.
    Configure,
    /// Protected by a replication vrbulk created, with settings other than desired.
    Reconfigure,
    /// Protected by a replication vrbulk created (or one adopted), no longer desired.
    Remove,
    /// Would fail, or is not vrbulk's to change: the reason says which.
    Cannot,
    Unchanged,
    /// Protected by a replication vrbulk did not create, and not desired: left alone.
    NotManaged,
}

impl Action {
    pub const ALL: [Action; 6] = [
        Action::Configure,
        Action::Reconfigure,
        Action::Remove,
        Action::Cannot,
        Action::Unchanged,
        Action::NotManaged,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Action::Configure => "configure",
            Action::Reconfigure => "reconfigure",
            Action::Remove => "remove",
            Action::Cannot => "cannot",
            Action::Unchanged => "unchanged",
            Action::NotManaged => "not managed",
        }
    }

    /// Drift: something an apply does, or the operator must look at.
    pub fn is_drift(self) -> bool {
        matches!(
            self,
            Action::Configure | Action::Reconfigure | Action::Remove | Action::Cannot
        )
    }
}

/// One setting as the replication has it and as desired.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    pub setting: &'static str,
    pub from: String,
    pub to: String,
}

impl std::fmt::Display for Change {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {} → {}", self.setting, self.from, self.to)
    }
}

/// One VM of the diff.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DiffRow {
    pub vm_name: String,
    pub vm_id: Option<String>,
    pub action: Action,
    /// The VM's replication, when it has one.
    pub replication_id: Option<String>,
    /// Its status as the appliance words it.
    pub status: Option<String>,
    /// The configure batch that created the replication, when vrbulk did.
    pub created_by_batch: Option<i64>,
    /// Where the desire comes from: `row 4`, `rule "web"`; none for a removal.
    pub desired_by: Option<String>,
    /// A reconfigure's settings, old → new.
    pub changes: Vec<Change>,
    /// Why it cannot be done, or is left alone.
    pub reason: Option<String>,
    /// A configure's job, a reconfigure's change, a removal's configure job.
    #[serde(skip)]
    pub work: Option<Work>,
}

/// What an apply does for a row.
#[derive(Debug, Clone, PartialEq)]
pub enum Work {
    Configure(JobSpec),
    Reconfigure {
        recorded: Recorded,
        change: SettingsChange,
    },
    Remove(Recorded),
}

/// The diff: every VM the file wants, every replication of the pairing, in VM name order.
#[derive(Debug, Clone, Serialize)]
pub struct Diff {
    pub pairing: String,
    pub rows: Vec<DiffRow>,
    /// API calls the live read took.
    pub calls: u64,
}

impl Diff {
    pub fn count(&self, action: Action) -> usize {
        self.rows.iter().filter(|r| r.action == action).count()
    }

    /// Nothing to do and nothing to look at.
    pub fn in_sync(&self) -> bool {
        !self.rows.iter().any(|r| r.action.is_drift())
    }

    /// `3 configure, 1 reconfigure, 296 unchanged`: the actions that occur.
    pub fn summary(&self) -> String {
        let said: Vec<String> = Action::ALL
            .iter()
            .map(|a| (a, self.count(*a)))
            .filter(|(_, n)| *n > 0)
            .map(|(a, n)| format!("{n} {}", a.as_str()))
            .collect();
        if said.is_empty() {
            "no VM".into()
        } else {
            said.join(", ")
        }
    }
}

/// Compares `resolved` (what the file wants) with `live` and `created` (which replications are
/// vrbulk's). A replication vrbulk did not create is proposed for removal only when its VM's
/// name matches one of `adopt`.
pub fn diff(resolved: &Resolved, live: &Live, created: &Created, adopt: &[String]) -> Diff {
    let names: HashMap<&str, &str> = live
        .vms
        .iter()
        .map(|v| (v.id.as_str(), v.name.as_str()))
        .collect();
    let mut rows = Vec::new();
    let mut wanted_ids = HashSet::new();
    for w in &resolved.wanted {
        wanted_ids.insert(w.vm_id.as_str());
        let mut row = DiffRow {
            vm_name: w.vm_name.clone(),
            vm_id: Some(w.vm_id.clone()),
            action: Action::Unchanged,
            replication_id: None,
            status: None,
            created_by_batch: None,
            desired_by: Some(w.from.to_string()),
            changes: Vec::new(),
            reason: None,
            work: None,
        };
        let Some(rep) = live.replications.get(&w.vm_id) else {
            match live.configure_verdicts.get(&w.vm_id) {
                Some(Some(why)) => {
                    row.action = Action::Cannot;
                    row.reason = Some(why.clone());
                }
                _ => {
                    row.action = Action::Configure;
                    row.work = Some(Work::Configure(w.spec.clone()));
                }
            }
            rows.push(row);
            continue;
        };
        let ours = created.0.get(&rep.id);
        row.replication_id = Some(rep.id.clone());
        row.status = Some(status_name(rep));
        row.created_by_batch = ours.map(|r| r.batch);
        let (changes, change) = differences(&w.spec, rep);
        row.changes = changes;
        if change.is_empty() {
            rows.push(row);
            continue;
        }
        row.action = Action::Cannot;
        match ours {
            None => {
                row.reason = Some(format!(
                    "replication {} was not created by vrbulk: vrbulk changes only the \
                     replications it created",
                    rep.id
                ))
            }
            Some(recorded) => match refusal(Operation::Reconfigure, rep).or_else(|| {
                // A VR server the target site lacks: the reconfigure would fail in its run.
                let server = change.replication_server.as_deref()?;
                live.target.as_ref()?.replication_server_id(server).err()
            }) {
                Some(why) => row.reason = Some(why),
                None => match input::mpit_problem(
                    change
                        .mpit_instances
                        .unwrap_or(w.spec.settings.mpit_instances),
                    change.mpit_days.unwrap_or(w.spec.settings.mpit_days),
                ) {
                    Some(why) => row.reason = Some(why),
                    None => {
                        row.action = Action::Reconfigure;
                        row.work = Some(Work::Reconfigure {
                            recorded: recorded.clone(),
                            change,
                        });
                    }
                },
            },
        }
        rows.push(row);
    }
    for m in &resolved.missing {
        rows.push(DiffRow {
            vm_name: m.vm_name.clone(),
            vm_id: None,
            action: Action::Cannot,
            replication_id: None,
            status: None,
            created_by_batch: None,
            desired_by: Some(Origin::Row(m.line).to_string()),
            changes: Vec::new(),
            reason: Some(m.reason.clone()),
            work: None,
        });
    }
    for (vm_id, rep) in &live.replications {
        if wanted_ids.contains(vm_id.as_str()) {
            continue;
        }
        let vm_name = names
            .get(vm_id.as_str())
            .map(|n| n.to_string())
            .or_else(|| rep.name.clone())
            .unwrap_or_else(|| vm_id.clone());
        let ours = created.0.get(&rep.id);
        let adopted = adopt.iter().any(|g| glob_match(g, &vm_name));
        let (action, reason, work) = match ours {
            Some(recorded) => match refusal(Operation::Unconfigure, rep) {
                Some(why) => (Action::Cannot, Some(why), None),
                None => (Action::Remove, None, Some(Work::Remove(recorded.clone()))),
            },
            None if adopted => (
                Action::Remove,
                Some(format!(
                    "adopted: replication {} was not created by vrbulk",
                    rep.id
                )),
                None,
            ),
            None => (
                Action::NotManaged,
                Some("not created by vrbulk, not in the file: left alone".into()),
                None,
            ),
        };
        rows.push(DiffRow {
            vm_name,
            vm_id: Some(vm_id.clone()),
            action,
            replication_id: Some(rep.id.clone()),
            status: Some(status_name(rep)),
            created_by_batch: ours.map(|r| r.batch),
            desired_by: None,
            changes: Vec::new(),
            reason,
            work,
        });
    }
    rows.sort_by(|a, b| a.vm_name.cmp(&b.vm_name).then(a.vm_id.cmp(&b.vm_id)));
    Diff {
        pairing: live.remote_vc.clone(),
        rows,
        calls: live.calls,
    }
}

/// The settings of `rep` that differ from `spec`, old → new, and the reconfigure that makes
/// them so. Only what the replication list says is compared: RPO, point-in-time copies,
/// quiescing, compression, encryption, new disks and (when the file names one) the VR server.
/// The target datastore, storage policy and disk format are not in the list; they are the
/// configure's, and are not compared.
pub fn differences(spec: &JobSpec, rep: &ReplicationInfo) -> (Vec<Change>, SettingsChange) {
    let s = &spec.settings;
    let mut changes = Vec::new();
    let mut change = SettingsChange::default();
    let on_off = |b: bool| if b { "on" } else { "off" }.to_string();
    if rep.rpo != Some(i64::from(s.rpo)) {
        changes.push(Change {
            setting: "rpo",
            from: rep.rpo.map_or("?".into(), |r| r.to_string()),
            to: s.rpo.to_string(),
        });
        change.rpo = Some(s.rpo);
    }
    // MPIT off is 0 copies, whatever the days say.
    let rep_instances = if rep.mpit_enabled == Some(false) {
        0
    } else {
        rep.mpit_instances
            .and_then(|n| u32::try_from(n).ok())
            .unwrap_or(0)
    };
    if rep_instances != s.mpit_instances {
        changes.push(Change {
            setting: "mpit_instances",
            from: rep_instances.to_string(),
            to: s.mpit_instances.to_string(),
        });
        change.mpit_instances = Some(s.mpit_instances);
    }
    let rep_days = rep.mpit_days.and_then(|n| u32::try_from(n).ok());
    if s.mpit_instances > 0 && rep_days != Some(s.mpit_days) {
        changes.push(Change {
            setting: "mpit_days",
            from: rep_days.map_or("?".into(), |d| d.to_string()),
            to: s.mpit_days.to_string(),
        });
        change.mpit_days = Some(s.mpit_days);
    }
    for (setting, want, now, slot) in [
        (
            "quiesce",
            s.quiesce,
            rep.quiescing_enabled,
            &mut change.quiesce,
        ),
        (
            "network_compression",
            s.network_compression,
            rep.network_compression_enabled,
            &mut change.network_compression,
        ),
        (
            "lwd_encryption",
            s.lwd_encryption,
            rep.encryption_enabled,
            &mut change.lwd_encryption,
        ),
        (
            "auto_replicate_new_disks",
            s.auto_replicate_new_disks,
            rep.auto_replicate_new_disks_enabled,
            &mut change.auto_replicate_new_disks,
        ),
    ] {
        if now.unwrap_or(false) != want {
            changes.push(Change {
                setting,
                from: now.map_or("?".into(), on_off),
                to: on_off(want),
            });
            *slot = Some(want);
        }
    }
    if let Some(server) = spec.replication_server.as_deref() {
        let now = rep.replication_server_name.as_deref();
        if !spec.places_automatically() && !now.is_some_and(|n| n.eq_ignore_ascii_case(server)) {
            changes.push(Change {
                setting: "replication_server",
                from: now.unwrap_or("?").to_string(),
                to: server.to_string(),
            });
            change.replication_server = Some(server.to_string());
        }
    }
    (changes, change)
}

/// The reconfigures of `rows`, grouped by the configure batch that created each replication,
/// as the CSV `vrbulk reconfigure FILE.csv --batch N` takes (by VM id; an empty cell keeps the
/// setting).
pub fn reconfigure_csvs(rows: &[DiffRow]) -> Result<BTreeMap<i64, Vec<u8>>, csv::Error> {
    let mut by_batch: BTreeMap<i64, csv::Writer<Vec<u8>>> = BTreeMap::new();
    for row in rows {
        let Some(Work::Reconfigure { recorded, change }) = &row.work else {
            continue;
        };
        let out = match by_batch.entry(recorded.batch) {
            std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::btree_map::Entry::Vacant(e) => {
                let mut w = csv::Writer::from_writer(Vec::new());
                w.write_record(
                    std::iter::once(Column::VmId.name()).chain(input::SETTINGS.map(|c| c.name())),
                )?;
                e.insert(w)
            }
        };
        let vm = row.vm_id.clone().unwrap_or_default();
        out.write_record(std::iter::once(vm).chain(input::SETTINGS.map(|c| cell(change, c))))?;
    }
    by_batch
        .into_iter()
        .map(|(batch, w)| Ok((batch, w.into_inner().map_err(|e| e.into_error())?)))
        .collect()
}

/// The cell of `column` in a reconfigure CSV row that asks for `change`: empty keeps it.
fn cell(change: &SettingsChange, column: Column) -> String {
    let n = |v: Option<u32>| v.map(|v| v.to_string()).unwrap_or_default();
    let b = |v: Option<bool>| v.map(|v| v.to_string()).unwrap_or_default();
    match column {
        Column::Rpo => n(change.rpo),
        Column::MpitInstances => n(change.mpit_instances),
        Column::MpitDays => n(change.mpit_days),
        Column::Quiesce => b(change.quiesce),
        Column::NetworkCompression => b(change.network_compression),
        Column::LwdEncryption => b(change.lwd_encryption),
        Column::AutoReplicateNewDisks => b(change.auto_replicate_new_disks),
        Column::StoragePolicy => change.storage_policy.clone().unwrap_or_default(),
        Column::ReplicationServer => change.replication_server.clone().unwrap_or_default(),
        _ => String::new(),
    }
}
