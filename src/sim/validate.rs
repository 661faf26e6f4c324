//! Validation of the bodies of `POST /pairings/{p}/replications` and of
//! `POST …/replications/{id}/actions/reconfigure`, written from the spec's
//! `ConfigureReplicationSpec` / `ReconfigureReplicationSpec` / `ConfigureReplicationVmDisk` /
//! `VmDisk` schemas on raw JSON, on purpose without the client's serde models: a client bug (a
//! missing field, a `null` where the spec does not allow one, a misspelt key, a disk left out) must
//! surface here as a 400 naming the field, e.g. `[2].rpo: must be between 5 and 1440, got 2`.
//!
//! Beyond the schema, the checks are the ones a VRMS makes against its inventory: the VM exists, is
//! not a template, is not already replicated or being configured (through any pairing: a VM has
//! one replication at most); the disks are exactly the VM's (a reconfigure too must list every
//! one); unsupported disks are not enabled; the target vCenter, datastores, policies and VR
//! servers are those of the pairing's target site, the one the request came through (another
//! pairing's are refused like unknown ones, with a hint).

use std::collections::{HashMap, HashSet};

use serde_json::{Map, Value};

use super::inventory::{SimVm, SiteRef, VmKind};
use super::state::{Busy, World};
use crate::vr::model::VmDisk;

const DISK_FORMATS: [&str; 8] = [
    "SAME_AS_SOURCE",
    "SAME_AS_PRIMARY",
    "AS_DEFINED_IN_PROFILE",
    "FLAT",
    "THICK",
    "NATIVE_THICK",
    "THIN",
    "RDM",
];

const SPEC_FIELDS: [&str; 13] = [
    "quiesce_enabled",
    "rpo",
    "network_compression_enabled",
    "mpit_enabled",
    "mpit_instances",
    "mpit_days",
    "auto_replicate_new_disks",
    "target_replication_server_id",
    "lwd_encryption_enabled",
    "vm_data_sets_replication_enabled",
    "disks",
    "target_vc_id",
    "vm_id",
];

/// `ReconfigureReplicationSpec`: a configure spec without the VM and the target vCenter, which a
/// replication cannot change.
const RECONFIGURE_FIELDS: [&str; 11] = [
    "quiesce_enabled",
    "rpo",
    "network_compression_enabled",
    "mpit_enabled",
    "mpit_instances",
    "mpit_days",
    "auto_replicate_new_disks",
    "target_replication_server_id",
    "lwd_encryption_enabled",
    "vm_data_sets_replication_enabled",
    "disks",
];

const DISK_FIELDS: [&str; 7] = [
    "vm_disk",
    "enabled_for_replication",
    "use_seeds",
    "destination_storage_policy_id",
    "destination_path",
    "destination_datastore_id",
    "destination_disk_format",
];

const VM_DISK_FIELDS: [&str; 13] = [
    "vm_id",
    "device_key",
    "is_vm_home",
    "encrypted",
    "capacity",
    "source_disk_format",
    "source_path",
    "source_storage_policy_name",
    "source_storage_policy_id",
    "label",
    "controller_key",
    "controller_label",
    "supported_for_replication",
];

const PATH_FIELDS: [&str; 4] = ["datastore_id", "datastore_name", "path", "filename"];

/// What kind of mistake a field error is; the first error's kind becomes the `error_code`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ErrorKind {
    /// Schema: missing, wrong type, out of range, unknown field or enum value.
    Schema,
    /// An id that names nothing on the site it should.
    UnknownEntity,
    /// The VM (or one of its disks) cannot be replicated as asked.
    NotReplicable,
    /// The VM already has a replication or a configure task (or is twice in the body).
    AlreadyConfigured,
}

impl ErrorKind {
    pub fn code(self) -> &'static str {
        match self {
            ErrorKind::Schema => "INVALID_REQUEST_BODY",
            ErrorKind::UnknownEntity => "ENTITY_NOT_FOUND",
            ErrorKind::NotReplicable => "VM_NOT_REPLICABLE",
            ErrorKind::AlreadyConfigured => "VM_ALREADY_CONFIGURED",
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct FieldError {
    pub kind: ErrorKind,
    /// `path: what is wrong`.
    pub message: String,
}

/// A rejected body: every error found, and the VMs rejected for being configured already.
#[derive(Debug, Clone, Default)]
pub(crate) struct Rejection {
    pub errors: Vec<FieldError>,
    pub busy_vms: Vec<String>,
}

/// One spec that passed every check, reduced to what the simulator acts on.
#[derive(Debug, Clone)]
pub(crate) struct AcceptedSpec {
    pub vm_id: String,
    /// The remote vCenter of the pairing the spec came through.
    pub target_vc_id: String,
    pub rpo: i64,
    pub quiesce: bool,
    pub network_compression: bool,
    pub lwd_encryption: bool,
    pub auto_replicate_new_disks: bool,
    pub mpit_enabled: bool,
    pub mpit_instances: Option<i32>,
    pub mpit_days: Option<i32>,
    pub target_replication_server_id: Option<String>,
    pub disks: Vec<AcceptedDisk>,
}

#[derive(Debug, Clone)]
pub(crate) struct AcceptedDisk {
    pub device_key: i32,
    pub enabled: bool,
    pub datastore_id: String,
    pub storage_policy_id: Option<String>,
}

/// A reconfigure body that passed every check. Optional fields left out keep the replication's
/// current value; a `null` VR server keeps the current one.
#[derive(Debug, Clone)]
pub(crate) struct AcceptedReconfigure {
    pub rpo: i64,
    pub quiesce: Option<bool>,
    pub network_compression: bool,
    pub lwd_encryption: bool,
    pub auto_replicate_new_disks: bool,
    pub mpit_enabled: bool,
    pub mpit_instances: Option<i32>,
    pub mpit_days: Option<i32>,
    pub target_replication_server_id: Option<String>,
    pub disks: Vec<AcceptedDisk>,
}

/// Checks the whole body, sent through the pairing of `site`; all specs are accepted or none
/// is.
pub(crate) fn configure_body(
    body: &Value,
    world: &World,
    site: SiteRef<'_>,
) -> Result<Vec<AcceptedSpec>, Rejection> {
    let mut rej = Rejection::default();
    let Some(items) = body.as_array() else {
        rej.errors.push(FieldError {
            kind: ErrorKind::Schema,
            message: format!(
                "body: must be a JSON array of ConfigureReplicationSpec, got {}",
                describe(body)
            ),
        });
        return Err(rej);
    };
    if items.is_empty() {
        rej.errors.push(FieldError {
            kind: ErrorKind::Schema,
            message: "body: must contain at least one ConfigureReplicationSpec".into(),
        });
        return Err(rej);
    }
    let mut seen_vms: HashMap<String, usize> = HashMap::new();
    let mut accepted = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let path = format!("[{i}]");
        let mut c = Checker {
            errors: &mut rej.errors,
        };
        if let Some(spec) = spec(&mut c, &path, item, world, site) {
            let mut ok = true;
            if let Some(first) = seen_vms.get(&spec.vm_id) {
                c.push(
                    ErrorKind::AlreadyConfigured,
                    format!(
                        "{path}.vm_id: VM '{}' appears more than once in the request (also at [{first}])",
                        spec.vm_id
                    ),
                );
                rej.busy_vms.push(spec.vm_id.clone());
                ok = false;
            } else {
                seen_vms.insert(spec.vm_id.clone(), i);
            }
            if let Some(busy) = world.busy(&spec.vm_id) {
                let name = world
                    .inv
                    .vm(&spec.vm_id)
                    .map(|v| v.vm.name.as_str())
                    .unwrap_or_default();
                let why = match busy {
                    Busy::Replicated(id) => format!("is already configured for replication ({id})"),
                    Busy::TaskInFlight(id) => {
                        format!("has a configure replication task in progress ({id})")
                    }
                };
                c.push(
                    ErrorKind::AlreadyConfigured,
                    format!("{path}.vm_id: VM '{name}' ({}) {why}", spec.vm_id),
                );
                rej.busy_vms.push(spec.vm_id.clone());
                ok = false;
            }
            if ok {
                accepted.push(spec);
            }
        }
    }
    if rej.errors.is_empty() {
        Ok(accepted)
    } else {
        Err(rej)
    }
}

/// Checks a `ReconfigureReplicationSpec` for the replication of `vm_id` on `site` (its
/// pairing's target site): every field as the schema says, and every disk of the VM listed, as
/// for a configure.
pub(crate) fn reconfigure_body(
    body: &Value,
    vm_id: &str,
    world: &World,
    site: SiteRef<'_>,
) -> Result<AcceptedReconfigure, Rejection> {
    let mut rej = Rejection::default();
    let mut c = Checker {
        errors: &mut rej.errors,
    };
    match reconfigure_spec(&mut c, "body", body, vm_id, world, site) {
        Some(accepted) if rej.errors.is_empty() => Ok(accepted),
        _ => Err(rej),
    }
}

/// Reads and checks a reconfigure spec; `None` when anything about it is wrong (errors
/// recorded).
fn reconfigure_spec(
    c: &mut Checker<'_>,
    path: &str,
    body: &Value,
    vm_id: &str,
    world: &World,
    site: SiteRef<'_>,
) -> Option<AcceptedReconfigure> {
    let before = c.errors.len();
    let obj = c.schema_object(
        path,
        body,
        "ReconfigureReplicationSpec",
        &RECONFIGURE_FIELDS,
    )?;
    let quiesce = c.bool_opt(path, obj, "quiesce_enabled");
    let rpo = c.int_req(path, obj, "rpo", 5, 1440);
    let network_compression = c.bool_req(path, obj, "network_compression_enabled");
    let mpit_enabled = c.bool_req(path, obj, "mpit_enabled");
    let mpit_instances = c.int_opt(path, obj, "mpit_instances", 0, i32::MAX.into());
    let mpit_days = c.int_opt(path, obj, "mpit_days", 0, i32::MAX.into());
    let auto_new = c.bool_req(path, obj, "auto_replicate_new_disks");
    let server = c.str_nullable(path, obj, "target_replication_server_id");
    let lwd = c.bool_req(path, obj, "lwd_encryption_enabled");
    c.bool_opt(path, obj, "vm_data_sets_replication_enabled");
    let disks = c.array_req(path, obj, "disks");

    if mpit_enabled == Some(true) {
        point_in_time_copies(c, path, mpit_instances, mpit_days);
    }
    target_site(c, path, world, site, None, server.flatten());
    let vm = world.inv.vm(vm_id);
    let disks = disks
        .map(|d| spec_disks(c, path, d, Some(vm_id), vm, (world, site)))
        .unwrap_or_default();

    if c.errors.len() > before {
        return None;
    }
    Some(AcceptedReconfigure {
        rpo: rpo?,
        quiesce,
        network_compression: network_compression?,
        lwd_encryption: lwd?,
        auto_replicate_new_disks: auto_new?,
        mpit_enabled: mpit_enabled?,
        mpit_instances: mpit_instances.and_then(|n| i32::try_from(n).ok()),
        mpit_days: mpit_days.and_then(|n| i32::try_from(n).ok()),
        target_replication_server_id: server.flatten().map(str::to_string),
        disks,
    })
}

/// Reads and checks one spec; `None` when anything about it is wrong (errors already recorded).
fn spec(
    c: &mut Checker<'_>,
    path: &str,
    item: &Value,
    world: &World,
    site: SiteRef<'_>,
) -> Option<AcceptedSpec> {
    let before = c.errors.len();
    let obj = c.schema_object(path, item, "ConfigureReplicationSpec", &SPEC_FIELDS)?;
    let quiesce = c.bool_opt(path, obj, "quiesce_enabled");
    let rpo = c.int_req(path, obj, "rpo", 5, 1440);
    let network_compression = c.bool_req(path, obj, "network_compression_enabled");
    let mpit_enabled = c.bool_req(path, obj, "mpit_enabled");
    let mpit_instances = c.int_opt(path, obj, "mpit_instances", 0, i32::MAX.into());
    let mpit_days = c.int_opt(path, obj, "mpit_days", 0, i32::MAX.into());
    let auto_new = c.bool_req(path, obj, "auto_replicate_new_disks");
    let server = c.str_nullable(path, obj, "target_replication_server_id");
    let lwd = c.bool_req(path, obj, "lwd_encryption_enabled");
    c.bool_opt(path, obj, "vm_data_sets_replication_enabled");
    let disks = c.array_req(path, obj, "disks");
    let target_vc = c.str_req(path, obj, "target_vc_id");
    let vm_id = c.str_req(path, obj, "vm_id");

    if mpit_enabled == Some(true) {
        point_in_time_copies(c, path, mpit_instances, mpit_days);
    }
    target_site(c, path, world, site, target_vc, server.flatten());
    let vm = source_vm(c, path, world, vm_id);
    let accepted_disks = disks
        .map(|disks| spec_disks(c, path, disks, vm_id, vm, (world, site)))
        .unwrap_or_default();

    if c.errors.len() > before {
        return None;
    }
    Some(AcceptedSpec {
        vm_id: vm_id?.to_string(),
        target_vc_id: target_vc?.to_string(),
        rpo: rpo?,
        quiesce: quiesce.unwrap_or(false),
        network_compression: network_compression?,
        lwd_encryption: lwd?,
        auto_replicate_new_disks: auto_new?,
        mpit_enabled: mpit_enabled?,
        mpit_instances: mpit_instances.and_then(|n| i32::try_from(n).ok()),
        mpit_days: mpit_days.and_then(|n| i32::try_from(n).ok()),
        target_replication_server_id: server.flatten().map(str::to_string),
        disks: accepted_disks,
    })
}

/// MPIT on: 1 to 24 instances a day, over at least one day, at most 24 copies in all.
fn point_in_time_copies(
    c: &mut Checker<'_>,
    path: &str,
    instances: Option<i64>,
    days: Option<i64>,
) {
    match instances {
        None => c.push(
            ErrorKind::Schema,
            format!("{path}.mpit_instances: required when mpit_enabled is true"),
        ),
        Some(n) if !(1..=24).contains(&n) => c.push(
            ErrorKind::Schema,
            format!("{path}.mpit_instances: must be between 1 and 24, got {n}"),
        ),
        Some(n) => {
            let days = days.unwrap_or(1);
            if days < 1 {
                c.push(
                    ErrorKind::Schema,
                    format!("{path}.mpit_days: must be at least 1, got {days}"),
                );
            } else if n * days > 24 {
                c.push(
                    ErrorKind::Schema,
                    format!(
                        "{path}.mpit_days: mpit_instances x mpit_days must not exceed 24 \
                         point-in-time copies, got {n} x {days}"
                    ),
                );
            }
        }
    }
}

/// The target vCenter is the pairing's remote one, and the VR server (when one is named)
/// exists on that site.
fn target_site(
    c: &mut Checker<'_>,
    path: &str,
    world: &World,
    site: SiteRef<'_>,
    target_vc: Option<&str>,
    server: Option<&str>,
) {
    if let Some(vc) = target_vc {
        if vc != site.remote_vc.id {
            let hint = if vc == world.inv.local_vc.id {
                " (that is the source vCenter)".to_string()
            } else {
                elsewhere(world, |s| {
                    (s.remote_vc.id == vc).then_some("the remote vCenter")
                })
            };
            c.push(
                ErrorKind::UnknownEntity,
                format!(
                    "{path}.target_vc_id: must be the pairing's remote vCenter '{}', got '{vc}'{hint}",
                    site.remote_vc.id
                ),
            );
        }
    }
    if let Some(id) = server {
        if site.replication_server(id).is_none() {
            let hint = elsewhere(world, |s| s.replication_server(id).map(|_| "a VR server"));
            c.push(
                ErrorKind::UnknownEntity,
                format!(
                    "{path}.target_replication_server_id: unknown VR server '{id}' on the target site{hint}"
                ),
            );
        }
    }
}

/// ` (that is <what> of vc-site-c.corp.local, another pairing's target site)` when `what`
/// finds the id on some pairing's target site; empty otherwise. Only called once the id is
/// known not to be the request's pairing's, so the site found is another's.
fn elsewhere(world: &World, what: impl Fn(SiteRef<'_>) -> Option<&'static str>) -> String {
    world
        .inv
        .sites()
        .find_map(|s| what(s).map(|w| (w, s.remote_vc.name.as_str())))
        .map(|(w, vc)| format!(" (that is {w} of {vc}, another pairing's target site)"))
        .unwrap_or_default()
}

/// The VM the spec names, if it exists on the source vCenter; a template is refused.
fn source_vm<'w>(
    c: &mut Checker<'_>,
    path: &str,
    world: &'w World,
    vm_id: Option<&str>,
) -> Option<&'w SimVm> {
    let id = vm_id?;
    let Some(vm) = world.inv.vm(id) else {
        c.push(
            ErrorKind::UnknownEntity,
            format!("{path}.vm_id: unknown VM '{id}' on the source vCenter"),
        );
        return None;
    };
    if vm.kind == VmKind::Template || vm.vm.template == Some(true) {
        c.push(
            ErrorKind::NotReplicable,
            format!(
                "{path}.vm_id: VM '{}' is a template and cannot be replicated",
                vm.vm.name
            ),
        );
    }
    Some(vm)
}

/// The spec's `disks`: each well formed and one of the VM's, none listed twice, every disk of
/// the VM listed, at least one enabled. Returns the disks that passed.
fn spec_disks(
    c: &mut Checker<'_>,
    path: &str,
    disks: &[Value],
    vm_id: Option<&str>,
    vm: Option<&SimVm>,
    target: (&World, SiteRef<'_>),
) -> Vec<AcceptedDisk> {
    let mut accepted = Vec::new();
    let mut listed: HashMap<i32, usize> = HashMap::new();
    for (k, d) in disks.iter().enumerate() {
        let dpath = format!("{path}.disks[{k}]");
        let Some(parsed) = disk(c, &dpath, d, vm_id, target) else {
            continue;
        };
        let (Some(vm), Some(key)) = (vm, parsed.device_key) else {
            continue;
        };
        let Some(actual) = vm.disks().iter().find(|x| x.device_key == Some(key)) else {
            c.push(
                ErrorKind::UnknownEntity,
                format!(
                    "{dpath}.vm_disk.device_key: VM '{}' has no disk with device_key {key}",
                    vm.vm.name
                ),
            );
            continue;
        };
        if let Some(first) = listed.get(&key) {
            c.push(
                ErrorKind::Schema,
                format!(
                    "{dpath}.vm_disk.device_key: disk {key} is listed twice (also at {path}.disks[{first}])"
                ),
            );
            continue;
        }
        listed.insert(key, k);
        disk_as_the_vm_has_it(c, &dpath, key, &parsed, actual, vm);
        accepted.push(AcceptedDisk {
            device_key: key,
            enabled: parsed.enabled,
            datastore_id: parsed.datastore_id,
            storage_policy_id: parsed.storage_policy_id,
        });
    }
    let Some(vm) = vm else {
        return accepted;
    };
    for d in vm.disks() {
        let Some(key) = d.device_key else { continue };
        if !listed.contains_key(&key) {
            c.push(
                ErrorKind::Schema,
                format!(
                    "{path}.disks: disk '{}' (device_key {key}) of VM '{}' is missing; \
                     list every disk of the VM, the VM home included",
                    d.label.as_deref().unwrap_or_default(),
                    vm.vm.name
                ),
            );
        }
    }
    if !disks.is_empty() && accepted.len() == disks.len() && !accepted.iter().any(|d| d.enabled) {
        c.push(
            ErrorKind::Schema,
            format!("{path}.disks: at least one disk must be enabled for replication"),
        );
    }
    accepted
}

/// A listed disk agrees with the VM's own: the VM home where the VM has it, no destination
/// path for the home, and not enabled where the server cannot replicate it.
fn disk_as_the_vm_has_it(
    c: &mut Checker<'_>,
    dpath: &str,
    key: i32,
    parsed: &ParsedDisk,
    actual: &VmDisk,
    vm: &SimVm,
) {
    if let Some(home) = parsed.is_vm_home {
        if home != actual.is_vm_home() {
            c.push(
                ErrorKind::Schema,
                format!(
                    "{dpath}.vm_disk.is_vm_home: disk {key} of VM '{}' is {}the VM home",
                    vm.vm.name,
                    if actual.is_vm_home() { "" } else { "not " }
                ),
            );
        }
    }
    if actual.is_vm_home() && parsed.destination_path.is_some() {
        c.push(
            ErrorKind::Schema,
            format!("{dpath}.destination_path: must be null for the VM home"),
        );
    }
    if parsed.enabled && !actual.is_supported() {
        c.push(
            ErrorKind::NotReplicable,
            format!(
                "{dpath}.enabled_for_replication: disk '{}' (device_key {key}) of VM '{}' \
                 is not supported for replication ({}); send it with \
                 enabled_for_replication false",
                actual.label.as_deref().unwrap_or_default(),
                vm.vm.name,
                actual
                    .controller_label
                    .as_deref()
                    .unwrap_or("unsupported controller"),
            ),
        );
    }
}

struct ParsedDisk {
    device_key: Option<i32>,
    is_vm_home: Option<bool>,
    enabled: bool,
    datastore_id: String,
    storage_policy_id: Option<String>,
    destination_path: Option<String>,
}

/// Reads one `ConfigureReplicationVmDisk`; `None` when it is malformed (errors recorded).
fn disk(
    c: &mut Checker<'_>,
    path: &str,
    item: &Value,
    spec_vm: Option<&str>,
    (world, site): (&World, SiteRef<'_>),
) -> Option<ParsedDisk> {
    let before = c.errors.len();
    let obj = c.schema_object(path, item, "ConfigureReplicationVmDisk", &DISK_FIELDS)?;
    let vm_disk = c.object_req(path, obj, "vm_disk");
    let enabled = c.bool_req(path, obj, "enabled_for_replication");
    c.bool_opt(path, obj, "use_seeds");
    let policy = c.str_nullable(path, obj, "destination_storage_policy_id");
    let dest_path = c.str_nullable(path, obj, "destination_path");
    let datastore = c.str_req(path, obj, "destination_datastore_id");
    c.enum_req(path, obj, "destination_disk_format", &DISK_FORMATS);

    if let Some(ds) = datastore {
        if site.datastore(ds).is_none() {
            let hint = if world.inv.source_datastores.iter().any(|d| d.id == ds) {
                " (that is a source-site datastore)".to_string()
            } else {
                elsewhere(world, |s| s.datastore(ds).map(|_| "a datastore"))
            };
            c.push(
                ErrorKind::UnknownEntity,
                format!(
                    "{path}.destination_datastore_id: unknown datastore '{ds}' on the target vCenter{hint}"
                ),
            );
        }
    }
    if let Some(Some(p)) = &policy {
        if site.storage_policy(p).is_none() {
            let hint = elsewhere(world, |s| s.storage_policy(p).map(|_| "a storage policy"));
            c.push(
                ErrorKind::UnknownEntity,
                format!(
                    "{path}.destination_storage_policy_id: unknown storage policy '{p}' on the target vCenter{hint}"
                ),
            );
        }
    }

    let mut device_key = None;
    let mut is_vm_home = None;
    if let Some(vd) = vm_disk {
        let vpath = format!("{path}.vm_disk");
        c.unknown_fields(&vpath, vd, &VM_DISK_FIELDS);
        let disk_vm = c.str_req(&vpath, vd, "vm_id");
        let key = c.int_opt(&vpath, vd, "device_key", i32::MIN.into(), i32::MAX.into());
        is_vm_home = c.bool_opt(&vpath, vd, "is_vm_home");
        c.bool_opt(&vpath, vd, "encrypted");
        c.int_opt(&vpath, vd, "capacity", 0, i64::MAX);
        c.enum_opt(&vpath, vd, "source_disk_format", &DISK_FORMATS);
        if let Some(sp) = c.object_opt(&vpath, vd, "source_path") {
            let ppath = format!("{vpath}.source_path");
            c.unknown_fields(&ppath, sp, &PATH_FIELDS);
            c.str_req(&ppath, sp, "datastore_id");
            for f in ["datastore_name", "path", "filename"] {
                c.str_nullable(&ppath, sp, f);
            }
        }
        c.str_nullable(&vpath, vd, "source_storage_policy_name");
        c.str_nullable(&vpath, vd, "source_storage_policy_id");
        c.str_opt(&vpath, vd, "label");
        c.int_opt(
            &vpath,
            vd,
            "controller_key",
            i32::MIN.into(),
            i32::MAX.into(),
        );
        c.str_nullable(&vpath, vd, "controller_label");
        c.bool_opt(&vpath, vd, "supported_for_replication");

        if let (Some(dv), Some(sv)) = (disk_vm, spec_vm) {
            if dv != sv {
                c.push(
                    ErrorKind::Schema,
                    format!("{vpath}.vm_id: must equal the spec's vm_id '{sv}', got '{dv}'"),
                );
            }
        }
        device_key = key.and_then(|k| i32::try_from(k).ok());
        if device_key.is_none() && key.is_none() && c.errors.len() == before {
            if is_vm_home == Some(true) {
                device_key = Some(super::inventory::VM_HOME_DEVICE_KEY);
            } else {
                c.push(
                    ErrorKind::Schema,
                    format!(
                        "{vpath}.device_key: required to identify the disk (send the VmDisk as listed)"
                    ),
                );
            }
        }
    }

    if c.errors.len() > before {
        return None;
    }
    Some(ParsedDisk {
        device_key,
        is_vm_home,
        enabled: enabled?,
        datastore_id: datastore?.to_string(),
        storage_policy_id: policy.flatten().map(str::to_string),
        destination_path: dest_path.flatten().map(str::to_string),
    })
}

/// Typed field access that records `path.field: problem` errors.
struct Checker<'e> {
    errors: &'e mut Vec<FieldError>,
}

impl Checker<'_> {
    fn push(&mut self, kind: ErrorKind, message: String) {
        self.errors.push(FieldError { kind, message });
    }

    /// `Some(())` when `key` is present; otherwise records `path.key: required field is missing`.
    /// Every `*_req` reader is this followed by its `*_opt` reader.
    fn require(&mut self, path: &str, obj: &Map<String, Value>, key: &str) -> Option<()> {
        if obj.contains_key(key) {
            return Some(());
        }
        self.push(
            ErrorKind::Schema,
            format!("{path}.{key}: required field is missing"),
        );
        None
    }

    /// `obj[key]` as `read` takes it: `None` without an error when the key is absent, `None` with
    /// `path.key: must be {expected}, got …` when `read` refuses the value.
    fn typed<'v, T>(
        &mut self,
        path: &str,
        obj: &'v Map<String, Value>,
        key: &str,
        expected: &str,
        read: impl FnOnce(&'v Value) -> Option<T>,
    ) -> Option<T> {
        let v = obj.get(key)?;
        let got = read(v);
        if got.is_none() {
            self.push(
                ErrorKind::Schema,
                format!("{path}.{key}: must be {expected}, got {}", describe(v)),
            );
        }
        got
    }

    /// `item` as a `schema` object, its fields outside `fields` reported; `None` (recorded) when
    /// it is not an object at all.
    fn schema_object<'v>(
        &mut self,
        path: &str,
        item: &'v Value,
        schema: &str,
        fields: &[&str],
    ) -> Option<&'v Map<String, Value>> {
        let Some(obj) = item.as_object() else {
            self.push(
                ErrorKind::Schema,
                format!("{path}: must be a {schema} object, got {}", describe(item)),
            );
            return None;
        };
        self.unknown_fields(path, obj, fields);
        Some(obj)
    }

    fn unknown_fields(&mut self, path: &str, obj: &Map<String, Value>, allowed: &[&str]) {
        let allowed: HashSet<&str> = allowed.iter().copied().collect();
        for k in obj.keys() {
            if !allowed.contains(k.as_str()) {
                self.push(ErrorKind::Schema, format!("{path}.{k}: unknown field"));
            }
        }
    }

    fn bool_opt(&mut self, path: &str, obj: &Map<String, Value>, key: &str) -> Option<bool> {
        self.typed(path, obj, key, "a boolean", Value::as_bool)
    }

    fn bool_req(&mut self, path: &str, obj: &Map<String, Value>, key: &str) -> Option<bool> {
        self.require(path, obj, key)?;
        self.bool_opt(path, obj, key)
    }

    fn int_opt(
        &mut self,
        path: &str,
        obj: &Map<String, Value>,
        key: &str,
        min: i64,
        max: i64,
    ) -> Option<i64> {
        let n = self.typed(path, obj, key, "an integer", Value::as_i64)?;
        if n < min || n > max {
            self.push(
                ErrorKind::Schema,
                format!("{path}.{key}: must be between {min} and {max}, got {n}"),
            );
            return None;
        }
        Some(n)
    }

    fn int_req(
        &mut self,
        path: &str,
        obj: &Map<String, Value>,
        key: &str,
        min: i64,
        max: i64,
    ) -> Option<i64> {
        self.require(path, obj, key)?;
        self.int_opt(path, obj, key, min, max)
    }

    fn str_opt<'v>(
        &mut self,
        path: &str,
        obj: &'v Map<String, Value>,
        key: &str,
    ) -> Option<&'v str> {
        self.typed(path, obj, key, "a string", Value::as_str)
    }

    fn str_req<'v>(
        &mut self,
        path: &str,
        obj: &'v Map<String, Value>,
        key: &str,
    ) -> Option<&'v str> {
        self.require(path, obj, key)?;
        self.str_opt(path, obj, key)
    }

    /// A `nullable: true` string: `Some(None)` for null or absent, `None` for a wrong type.
    fn str_nullable<'v>(
        &mut self,
        path: &str,
        obj: &'v Map<String, Value>,
        key: &str,
    ) -> Option<Option<&'v str>> {
        match obj.get(key) {
            None | Some(Value::Null) => Some(None),
            Some(_) => self
                .typed(path, obj, key, "a string or null", Value::as_str)
                .map(Some),
        }
    }

    fn enum_opt(
        &mut self,
        path: &str,
        obj: &Map<String, Value>,
        key: &str,
        allowed: &[&str],
    ) -> Option<String> {
        let s = self.str_opt(path, obj, key)?;
        if allowed.contains(&s) {
            Some(s.to_string())
        } else {
            self.push(
                ErrorKind::Schema,
                format!(
                    "{path}.{key}: must be one of {}, got '{s}'",
                    allowed.join(", ")
                ),
            );
            None
        }
    }

    fn enum_req(
        &mut self,
        path: &str,
        obj: &Map<String, Value>,
        key: &str,
        allowed: &[&str],
    ) -> Option<String> {
        self.require(path, obj, key)?;
        self.enum_opt(path, obj, key, allowed)
    }

    fn array_req<'v>(
        &mut self,
        path: &str,
        obj: &'v Map<String, Value>,
        key: &str,
    ) -> Option<&'v Vec<Value>> {
        self.require(path, obj, key)?;
        self.typed(path, obj, key, "an array", Value::as_array)
    }

    fn object_opt<'v>(
        &mut self,
        path: &str,
        obj: &'v Map<String, Value>,
        key: &str,
    ) -> Option<&'v Map<String, Value>> {
        self.typed(path, obj, key, "an object", Value::as_object)
    }

    fn object_req<'v>(
        &mut self,
        path: &str,
        obj: &'v Map<String, Value>,
        key: &str,
    ) -> Option<&'v Map<String, Value>> {
        self.require(path, obj, key)?;
        self.object_opt(path, obj, key)
    }
}

/// A short description of a JSON value for error messages: its type and, if small, itself.
fn describe(v: &Value) -> String {
    let kind = match v {
        Value::Null => return "null".into(),
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => return "an array".into(),
        Value::Object(_) => return "an object".into(),
    };
    let text = v.to_string();
    if text.chars().count() > 40 {
        format!("{kind} {}…", text.chars().take(40).collect::<String>())
    } else {
        format!("{kind} {text}")
    }
}
