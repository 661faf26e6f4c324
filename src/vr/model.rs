//! Serde types for the schemas of the vSphere Replication REST API (v2) that the configure workflow
//! and the day-2 operations touch, named and shaped exactly as in `vsphere-replication-api-v2.json`.
//!
//! Unknown fields from the server are ignored, and server-side enums carry an `Unrecognized`
//! catch-all, so a newer appliance that adds a field or an enum value does not break a batch.
//! Fields the spec marks optional are `Option`s; the few that the workflow cannot do without
//! (ids, names) are plain so that their absence is a decode error naming the field.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The spec's spelling of an enum value (`IN_PROGRESS`, `INITIAL_FULL_SYNC`), as serde writes
/// it: what vrbulk prints wherever it names one of the spec's values, never the Rust name
/// upper-cased (`INPROGRESS`). `None` for a value serde does not write as a string.
pub fn spec_name(value: impl Serialize) -> Option<String> {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(name)) => Some(name),
        _ => None,
    }
}

/// The list envelope every list endpoint answers with: `{list, _meta}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DrList<T> {
    #[serde(default = "Vec::new")]
    pub list: Vec<T>,
    #[serde(rename = "_meta", default, skip_serializing_if = "Option::is_none")]
    pub meta: Option<MetadataList>,
}

/// A single entity with its `_meta` (the spec's `*DrResponseEntity`: `allOf` the entity).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DrEntity<T> {
    #[serde(flatten)]
    pub entity: T,
    #[serde(rename = "_meta", default, skip_serializing_if = "Option::is_none")]
    pub meta: Option<Metadata>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MetadataList {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub errors: Option<Vec<MetaError>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub links: Option<MetaLinks>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Metadata {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub errors: Option<Vec<MetaError>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetaError {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    pub field: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MetaLinks {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<HrefDrData>,
    #[serde(rename = "self", default, skip_serializing_if = "Option::is_none")]
    pub self_: Option<HrefDrData>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous: Option<HrefDrData>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HrefDrData {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub href: Option<String>,
}

/// The error body of every 4xx/5xx answer.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ResponseError {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub op_id: Option<String>,
}

/// `POST /session` answer. The id is a bearer credential: `Debug` never shows it.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionIdData {
    pub session_id: String,
}

impl fmt::Debug for SessionIdData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionIdData")
            .field("session_id", &"<redacted>")
            .finish()
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SessionInfo {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ServerStatus {
    Ok,
    Warning,
    Error,
    #[serde(other)]
    Unrecognized,
}

/// A vCenter or VRMS endpoint of a pairing.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ServerInfo {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_status: Option<ServerStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pairing {
    pub pairing_id: String,
    pub local_vc_server: ServerInfo,
    pub remote_vc_server: ServerInfo,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_vrms: Option<ServerInfo>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote_vrms: Option<ServerInfo>,
}

/// A vSphere Replication Management Server of a pairing (`GET /pairings/{p}/vrs`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VrmsInfo {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_status: Option<ServerStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vc_guid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vc_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extension_key: Option<String>,
}

/// A VR server that receives replicated data on the target site.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReplicationServerInfo {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replication_count: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connected: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decommissioned: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub internally_managed: Option<bool>,
    #[serde(default)]
    pub uuid: Option<String>,
    #[serde(default)]
    pub hostname: Option<String>,
    #[serde(default)]
    pub configuration_url: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub fault: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum FileSystemType {
    Vmfs,
    Nfs,
    Nfs41,
    Cifs,
    Vsan,
    Vffs,
    Vvol,
    Pmem,
    Vsand,
    Other,
    #[serde(other)]
    Unrecognized,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OverallStatus {
    Gray,
    Green,
    Yellow,
    Red,
    #[serde(other)]
    Unrecognized,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum DatastoreType {
    Datastore,
    StoragePod,
    #[serde(other)]
    Unrecognized,
}

/// A datastore (or datastore cluster) that VR can place replicas on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Datastore {
    pub id: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capacity: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub free_space: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_system_type: Option<FileSystemType>,
    #[serde(default)]
    pub maintenance_mode: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overall_status: Option<OverallStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accessible: Option<bool>,
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<DatastoreType>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nkp_supported: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoragePolicy {
    pub storage_policy_name: String,
    pub storage_policy_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vm_encryption_supported: Option<bool>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PowerState {
    PoweredOff,
    PoweredOn,
    Suspended,
    #[serde(other)]
    Unrecognized,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ConnectionState {
    Connected,
    Disconnected,
    Orphaned,
    Inaccessible,
    Invalid,
    #[serde(other)]
    Unrecognized,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct VirtualMachineManagedByInfo {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extension_key: Option<String>,
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
}

/// A VM of the source vCenter; list endpoints embed its disks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VirtualMachine {
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub power_state: Option<PowerState>,
    #[serde(default)]
    pub connection_state: Option<ConnectionState>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub managed_by_info: Option<VirtualMachineManagedByInfo>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vr_privilege_granted: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disks: Option<Vec<VmDisk>>,
}

/// The disk formats of the spec (`source_disk_format`, `destination_disk_format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum DiskFormat {
    SameAsSource,
    SameAsPrimary,
    AsDefinedInProfile,
    Flat,
    Thick,
    NativeThick,
    Thin,
    Rdm,
}

impl DiskFormat {
    pub const ALL: [DiskFormat; 8] = [
        DiskFormat::SameAsSource,
        DiskFormat::SameAsPrimary,
        DiskFormat::AsDefinedInProfile,
        DiskFormat::Flat,
        DiskFormat::Thick,
        DiskFormat::NativeThick,
        DiskFormat::Thin,
        DiskFormat::Rdm,
    ];

    /// The spec's spelling, e.g. `SAME_AS_SOURCE`.
    pub fn as_str(self) -> &'static str {
        match self {
            DiskFormat::SameAsSource => "SAME_AS_SOURCE",
            DiskFormat::SameAsPrimary => "SAME_AS_PRIMARY",
            DiskFormat::AsDefinedInProfile => "AS_DEFINED_IN_PROFILE",
            DiskFormat::Flat => "FLAT",
            DiskFormat::Thick => "THICK",
            DiskFormat::NativeThick => "NATIVE_THICK",
            DiskFormat::Thin => "THIN",
            DiskFormat::Rdm => "RDM",
        }
    }
}

impl fmt::Display for DiskFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for DiskFormat {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        DiskFormat::ALL
            .into_iter()
            .find(|f| f.as_str().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| {
                let names: Vec<_> = DiskFormat::ALL.iter().map(|f| f.as_str()).collect();
                format!("expected one of {}", names.join(", "))
            })
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DatastorePathData {
    pub datastore_id: String,
    #[serde(default)]
    pub datastore_name: Option<String>,
    #[serde(default)]
    pub path: Option<String>,
    #[serde(default)]
    pub filename: Option<String>,
}

/// A disk of a VM, or the VM home (`is_vm_home`). Sent back verbatim inside a configure spec.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VmDisk {
    pub vm_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_key: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_vm_home: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encrypted: Option<bool>,
    /// In KB, as the spec says (datastore capacities are in bytes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capacity: Option<i64>,
    /// Kept as text: a newer appliance's format must not make the whole VM list undecodable,
    /// and the disk is echoed back unchanged in the configure spec.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_disk_format: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_path: Option<DatastorePathData>,
    #[serde(default)]
    pub source_storage_policy_name: Option<String>,
    #[serde(default)]
    pub source_storage_policy_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub controller_key: Option<i32>,
    #[serde(default)]
    pub controller_label: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub supported_for_replication: Option<bool>,
}

impl VmDisk {
    pub fn is_vm_home(&self) -> bool {
        self.is_vm_home.unwrap_or(false)
    }

    /// Disks the server does not flag are taken as supported, as the vSphere client does.
    pub fn is_supported(&self) -> bool {
        self.supported_for_replication.unwrap_or(true)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum VmValidationStatus {
    Ok,
    #[serde(rename = "ERROR_")]
    Error,
    DuplicateDiskNames,
    AlreadyConfigured,
    InvalidHwVersion,
    IsFtVm,
    VmNotConnected,
    HbrNotSupported,
    InvalidHostVersion,
    HostNotConnected,
    HostNotPoweredOn,
    HostInMaintenanceMode,
    PhysicalRdmDiskFound,
    NoPermissions,
    Unknown,
    IsVmTemplate,
    VmIsEncrypted,
    VmIsEncryptedLwdOff,
    VmIsEncryptedVmcryptOff,
    VmEncryptionInconsistency,
    NotSupportedTrustAuthorityEncryptedVm,
    IsEamVm,
    PeerGroupMissing,
    #[serde(other)]
    Unrecognized,
}

/// What VR can do for one VM, and why it cannot (`vm_validation_status`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct VmCapabilities {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vm_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vm_validation_status: Option<VmValidationStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quiescing_supported: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_compression_supported: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mpit_supported: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lwd_encryption_supported: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vm_crypt_supported: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vm_encrypted: Option<bool>,
    #[serde(default)]
    pub vm_encryption_key_provider_type: Option<String>,
    #[serde(default)]
    pub replication_not_supported_reasons: Option<Vec<Option<String>>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_replicate_new_disks_supported: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_rpo_mins: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nvme_disk_controller_supported: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ds_cluster_as_target_supported: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reconfigure_vm_disks_supported: Option<bool>,
}

/// The body item of `POST /pairings/{p}/replications`: one VM to protect.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConfigureReplicationSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quiesce_enabled: Option<bool>,
    /// Minutes, 5..=1440.
    pub rpo: i64,
    pub network_compression_enabled: bool,
    pub mpit_enabled: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mpit_instances: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mpit_days: Option<i32>,
    pub auto_replicate_new_disks: bool,
    /// `null` lets the target VRMS place the replica on a VR server itself.
    #[serde(default)]
    pub target_replication_server_id: Option<String>,
    pub lwd_encryption_enabled: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vm_data_sets_replication_enabled: Option<bool>,
    pub disks: Vec<ConfigureReplicationVmDisk>,
    pub target_vc_id: String,
    pub vm_id: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConfigureReplicationVmDisk {
    pub vm_disk: VmDisk,
    pub enabled_for_replication: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub use_seeds: Option<bool>,
    /// `null`: the datastore's default policy.
    #[serde(default)]
    pub destination_storage_policy_id: Option<String>,
    #[serde(default)]
    pub destination_path: Option<String>,
    pub destination_datastore_id: String,
    pub destination_disk_format: DiskFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TaskStatus {
    Queued,
    Running,
    Success,
    Error,
    Cancelled,
    #[serde(other)]
    Unrecognized,
}

impl TaskStatus {
    pub fn is_finished(self) -> bool {
        matches!(
            self,
            TaskStatus::Success | TaskStatus::Error | TaskStatus::Cancelled
        )
    }
}

/// The spec's `TaskError`: why a task ended in `ERROR`. The spec's
/// `ReplicationInfoConfigurationError` and `ReplicationInfoLastGroupError` have the same two
/// fields, so they are this type too ([`ReplicationInfoConfigurationError`]).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TaskError {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<String>,
}

/// A server-side task, such as the one `configure` returns for each VM.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Task {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description_id: Option<String>,
    #[serde(default)]
    pub entity: Option<String>,
    #[serde(default)]
    pub entity_name: Option<String>,
    pub status: TaskStatus,
    #[serde(default)]
    pub error: Option<TaskError>,
    #[serde(default)]
    pub result: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<i32>,
    #[serde(default)]
    pub queued_time: Option<i64>,
    #[serde(default)]
    pub start_time: Option<i64>,
    #[serde(default)]
    pub complete_time: Option<i64>,
}

impl Task {
    /// The server's own words for a failed task, message and details together.
    pub fn error_text(&self) -> Option<String> {
        let e = self.error.as_ref()?;
        match (&e.message, &e.details) {
            (Some(m), Some(d)) if !d.is_empty() && d != m => Some(format!("{m} ({d})")),
            (Some(m), _) => Some(m.clone()),
            (None, Some(d)) => Some(d.clone()),
            (None, None) => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ReplicationStatus {
    FullSync,
    Sync,
    InitialFullSync,
    Paused,
    RpoViolation,
    Moving,
    Ok,
    Error,
    Configuring,
    NotActive,
    Unknown,
    SyncRpoViolation,
    NotActiveRpoViolation,
    ErrorRpoViolation,
    FullSyncRpoViolation,
    Recovering,
    Recovered,
    DiskResizing,
    #[serde(other)]
    Unrecognized,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CompoundReplicationStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<ReplicationStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rpo_violation: Option<bool>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ConfigurationState {
    InProgress,
    Error,
    Ok,
    Unknown,
    #[serde(other)]
    Unrecognized,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RecoveryState {
    Unknown,
    NotStarted,
    InProgress,
    Error,
    Ok,
    #[serde(other)]
    Unrecognized,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ReplicationType {
    Unknown,
    VcToVc,
    #[serde(other)]
    Unrecognized,
}

/// Why a replication's configuration is in `ERROR`: the same shape as [`TaskError`].
pub type ReplicationInfoConfigurationError = TaskError;

/// The faults of the underlying replication group: the same shape as [`TaskError`].
pub type ReplicationInfoLastGroupError = TaskError;

/// How far a sync has got. The spec describes none of its fields; as appliances fill them,
/// `transferred_*` count bytes copied of the bytes to copy, `checksum_*` the bytes compared
/// when seeds are used, and `progress` is a percentage.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SyncProgressData {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checksum_current: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checksum_total: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transferred_current: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transferred_total: Option<i64>,
}

/// An existing replication (`GET /pairings/{p}/replications`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ReplicationInfo {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default)]
    pub vm_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_site_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_vc_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_site_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_vc_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<CompoundReplicationStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rpo: Option<i64>,
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<ReplicationType>,
    #[serde(default)]
    pub replication_server_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub configuration_state: Option<ConfigurationState>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovery_solution: Option<String>,
    #[serde(default)]
    pub configuration_error: Option<ReplicationInfoConfigurationError>,
    /// The replication's own fault (status `ERROR` while its configuration is `OK`).
    #[serde(default)]
    pub last_group_error: Option<ReplicationInfoLastGroupError>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovery_state: Option<RecoveryState>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovery_error: Option<String>,
    #[serde(default)]
    pub target_replication_server_uuid: Option<String>,
    /// Milliseconds since the epoch. Required by the spec; some servers omit it before the
    /// first sync, and it is 0 until then.
    #[serde(default)]
    pub last_sync_time: i64,
    /// Seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_sync_duration: Option<i64>,
    /// Bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_sync_size: Option<i64>,
    /// Minutes past the deadline of the next replica image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_rpo_violation: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quiescing_enabled: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_compression_enabled: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption_enabled: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_replicate_new_disks_enabled: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mpit_enabled: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mpit_instances: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mpit_days: Option<i32>,
    /// Set while a sync copies data (the initial full sync above all); `null` otherwise.
    #[serde(default)]
    pub sync_progress: Option<SyncProgressData>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vm_data_sets_replication_enabled: Option<bool>,
}

/// The body of `POST …/replications/{id}/actions/reconfigure`: the replication's settings as
/// they are to be, every disk of the VM included (as in [`ConfigureReplicationSpec`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReconfigureReplicationSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quiesce_enabled: Option<bool>,
    /// Minutes, 5..=1440.
    pub rpo: i64,
    pub network_compression_enabled: bool,
    pub mpit_enabled: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mpit_instances: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mpit_days: Option<i32>,
    pub auto_replicate_new_disks: bool,
    /// `null`: the server chooses.
    #[serde(default)]
    pub target_replication_server_id: Option<String>,
    pub lwd_encryption_enabled: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vm_data_sets_replication_enabled: Option<bool>,
    pub disks: Vec<ConfigureReplicationVmDisk>,
}

/// Where a replica disk lives on the target site: the same shape as [`DatastorePathData`].
pub type DestinationDatastorePathData = DatastorePathData;

/// A disk of a replicated VM (`GET …/replications/{id}/disks`): the source disk and, when it is
/// replicated, where its replica is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReplicatedVmDisk {
    /// Optional in the spec, but a reconfigure must send every disk back: without it the
    /// answer is of no use.
    pub vm_disk: VmDisk,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicated: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination_path: Option<DestinationDatastorePathData>,
    #[serde(default)]
    pub destination_storage_policy_id: Option<String>,
    #[serde(default)]
    pub destination_storage_policy_name: Option<String>,
    /// Bytes the replica occupies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replica_disk_usage: Option<i64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_id_is_redacted_in_debug() {
        let s = SessionIdData {
            session_id: "c2VjcmV0LXNlc3Npb24=".into(),
        };
        assert!(!format!("{s:?}").contains("c2VjcmV0"));
    }

    #[test]
    fn unknown_fields_and_enum_values_are_tolerated() {
        let t: Task = serde_json::from_value(serde_json::json!({
            "id": "t-1", "status": "PAUSED_BY_ADMIN", "brand_new_field": 7
        }))
        .unwrap();
        assert_eq!(t.status, TaskStatus::Unrecognized);
    }

    #[test]
    fn validation_status_error_keeps_the_spec_spelling() {
        let s = serde_json::to_string(&VmValidationStatus::Error).unwrap();
        assert_eq!(s, "\"ERROR_\"");
    }

    #[test]
    fn spec_names_are_the_specs_spelling_not_the_rust_name() {
        assert_eq!(
            spec_name(ConfigurationState::InProgress).as_deref(),
            Some("IN_PROGRESS")
        );
        assert_eq!(
            spec_name(ReplicationStatus::InitialFullSync).as_deref(),
            Some("INITIAL_FULL_SYNC")
        );
        assert_eq!(
            spec_name(VmValidationStatus::Error).as_deref(),
            Some("ERROR_")
        );
        assert_eq!(spec_name(7), None);
    }

    #[test]
    fn disk_format_parses_case_insensitively_and_lists_choices_on_error() {
        assert_eq!("thin".parse::<DiskFormat>(), Ok(DiskFormat::Thin));
        let err = "sparse".parse::<DiskFormat>().unwrap_err();
        assert!(err.contains("SAME_AS_SOURCE") && err.contains("RDM"));
    }
}
