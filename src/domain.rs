//! The words every layer shares, owned by none of them: which VM a job is for ([`VmRef`]), what
//! the operator asked for it ([`JobSpec`], [`ReplicationSettings`]), and where its replica goes
//! once resolved ([`Placement`]). `input` makes them, the queue keeps them, the workflow resolves
//! and uses them. Besides serde this module uses only the spec's own vocabulary (`vr::model`),
//! which imports nothing of vrbulk either.

use serde::{Deserialize, Serialize};

use crate::vr::model::DiskFormat;

/// Which VM a job is for: at least one of `name` and `id`. The id, when given, is authoritative
/// (two VMs may share a name on one vCenter, never an id).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VmRef {
    pub name: Option<String>,
    pub id: Option<String>,
}

impl VmRef {
    /// The name the operator knows the VM by, else its id.
    pub fn display(&self) -> &str {
        self.name
            .as_deref()
            .or(self.id.as_deref())
            .unwrap_or_default()
    }
}

/// One VM's job as the operator asked for it; names are resolved to ids later, by the workflow.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobSpec {
    /// The physical CSV line the row starts on (the header is line 1); `None` for inventory
    /// selections.
    pub line: Option<u64>,
    pub vm: VmRef,
    /// Remote vCenter name or pairing id; `None`: the only pairing.
    pub pairing: Option<String>,
    pub target_datastore: String,
    /// `None`: the datastore's default policy.
    pub storage_policy: Option<String>,
    /// Target VR server name; `None`: automatic placement.
    pub replication_server: Option<String>,
    pub settings: ReplicationSettings,
    pub change_ticket: Option<String>,
    pub notes: Option<String>,
}

/// What the operator asks for one VM (a CSV row's settings, or a profile).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicationSettings {
    /// Minutes, 5..=1440.
    pub rpo: u32,
    /// Point-in-time copies; MPIT is on when this is above zero.
    pub mpit_instances: u32,
    pub mpit_days: u32,
    pub quiesce: bool,
    pub network_compression: bool,
    pub lwd_encryption: bool,
    pub auto_replicate_new_disks: bool,
    pub disk_format: DiskFormat,
}

impl Default for ReplicationSettings {
    fn default() -> Self {
        ReplicationSettings {
            rpo: 60,
            mpit_instances: 0,
            mpit_days: 0,
            quiesce: false,
            network_compression: false,
            lwd_encryption: false,
            auto_replicate_new_disks: false,
            disk_format: DiskFormat::SameAsSource,
        }
    }
}

/// Where the replica goes on the target site, as ids the API understands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Placement {
    pub target_vc_id: String,
    pub datastore_id: String,
    /// `None`: the datastore's default policy.
    pub storage_policy_id: Option<String>,
    /// `None`: the target VRMS picks a VR server.
    pub replication_server_id: Option<String>,
}

/// What a batch does to its VMs (DESIGN.md, "Operations and the life of a replication"): an
/// import configures; the day-2 operations act on the replications a configure batch created.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Operation {
    Configure,
    Unconfigure,
    Reconfigure,
    Pause,
    Resume,
    Sync,
}

impl Operation {
    pub const ALL: [Operation; 6] = [
        Operation::Configure,
        Operation::Unconfigure,
        Operation::Reconfigure,
        Operation::Pause,
        Operation::Resume,
        Operation::Sync,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Configure => "configure",
            Operation::Unconfigure => "unconfigure",
            Operation::Reconfigure => "reconfigure",
            Operation::Pause => "pause",
            Operation::Resume => "resume",
            Operation::Sync => "sync",
        }
    }

    pub fn parse(s: &str) -> Option<Operation> {
        Operation::ALL.into_iter().find(|o| o.as_str() == s)
    }
}

impl std::fmt::Display for Operation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What one job of an operation batch does to its replication.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "operation", rename_all = "snake_case")]
pub enum OperationSpec {
    Unconfigure {
        /// Keep the replica disks on the target site.
        retain_replica_disks: bool,
        /// Remove only the local site's record (`DELETE`): for when the remote site is down.
        local_only: bool,
    },
    Reconfigure(SettingsChange),
    Pause,
    Resume,
    Sync,
}

impl OperationSpec {
    pub fn operation(&self) -> Operation {
        match self {
            OperationSpec::Unconfigure { .. } => Operation::Unconfigure,
            OperationSpec::Reconfigure(_) => Operation::Reconfigure,
            OperationSpec::Pause => Operation::Pause,
            OperationSpec::Resume => Operation::Resume,
            OperationSpec::Sync => Operation::Sync,
        }
    }
}

/// The settings a reconfigure changes; a `None` leaves that setting as the replication has it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SettingsChange {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rpo: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mpit_instances: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mpit_days: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quiesce: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_compression: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lwd_encryption: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_replicate_new_disks: Option<bool>,
    /// Storage policy name on the target site, for every replicated disk.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_policy: Option<String>,
    /// Target VR server name, or `auto`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replication_server: Option<String>,
}

impl SettingsChange {
    /// Nothing to change.
    pub fn is_empty(&self) -> bool {
        *self == SettingsChange::default()
    }
}

impl JobSpec {
    /// Whether vrbulk picks the VM's target VR server (`replication_server` empty or `auto`)
    /// rather than the operator.
    pub fn places_automatically(&self) -> bool {
        self.replication_server
            .as_deref()
            .is_none_or(|s| s.eq_ignore_ascii_case("auto"))
    }
}

/// `[limits]` of vrbulk.toml: the appliance's capacity where its admin changed it (or the
/// operator knows better than the documentation). A figure left out takes the default of the
/// appliance's version (`workflow::capacity`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CapacityLimits {
    /// Replications one VR server takes, the appliance's embedded one included.
    pub replications_per_server: Option<u32>,
    /// Replications the appliance takes in all.
    pub replications_per_appliance: Option<u32>,
    /// Of those, replications within one vCenter (a pairing whose two sides are one vCenter).
    pub replications_per_vcenter: Option<u32>,
}

/// The capacity a plan or a run worked with: each figure, and where it came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppliedLimits {
    /// The appliance's version as it gives it (`8.8.0`); `None` when it does not say.
    pub vr_version: Option<String>,
    pub replications_per_server: Figure,
    pub replications_per_appliance: Figure,
    pub replications_per_vcenter: Figure,
}

/// One capacity figure and its source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Figure {
    pub value: u32,
    pub from: FigureSource,
}

/// Where a capacity figure came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FigureSource {
    /// `[limits]` in vrbulk.toml.
    Set,
    /// The product documentation of the appliance's version.
    Documented,
    /// Not documented for the appliance's version, or its version is not known: another
    /// version's figure, assumed.
    Assumed,
}

impl AppliedLimits {
    /// `VR 8.8` from `8.8.0.1234`; `None` when the appliance gave no version.
    pub fn release(&self) -> Option<String> {
        let v = self.vr_version.as_deref()?;
        let mut parts = v.split('.');
        Some(match (parts.next(), parts.next()) {
            (Some(major), Some(minor)) => format!("VR {major}.{minor}"),
            _ => format!("VR {v}"),
        })
    }

    /// `VR 8.8.0`, or that the appliance did not say.
    pub fn appliance(&self) -> String {
        self.vr_version
            .as_deref()
            .map_or("VR version not given".into(), |v| format!("VR {v}"))
    }

    /// Where `figure` came from, in words: `set in [limits]`, `VR 8.8's documented figure`.
    pub fn source_of(&self, figure: Figure) -> String {
        match (figure.from, self.release()) {
            (FigureSource::Set, _) => "set in [limits]".into(),
            (FigureSource::Documented, Some(r)) => format!("{r}'s documented figure"),
            (FigureSource::Assumed, Some(r)) => format!("assumed: {r} documents none"),
            (_, None) => "assumed: the appliance does not say its version".into(),
        }
    }

    /// `200 per VR server (set in [limits]), 2000 per appliance (…), 1000 within one vCenter
    /// (…)`; the source once when the three share it (`… (each VR 8.8's documented figure)`).
    pub fn summary(&self) -> String {
        let figures = [
            (self.replications_per_server, "per VR server"),
            (self.replications_per_appliance, "per appliance"),
            (self.replications_per_vcenter, "within one vCenter"),
        ];
        let sources = figures.map(|(f, _)| self.source_of(f));
        if sources.iter().all(|s| *s == sources[0]) {
            let values = figures.map(|(f, what)| format!("{} {what}", f.value));
            return format!("{} (each {})", values.join(", "), sources[0]);
        }
        figures
            .iter()
            .zip(&sources)
            .map(|((f, what), source)| format!("{} {what} ({source})", f.value))
            .collect::<Vec<_>>()
            .join(", ")
    }
}
