//! Resolving many VMs with few calls, and deciding what to do with each.
//!
//! VMs are looked up by name (or id) with many `filter=` values per call, asking only for VMs
//! suitable for replication, which also brings their disks; a batch that is a large part of the
//! inventory is found by listing the inventory instead, when that takes fewer calls. The few
//! names that do not come back are asked again without that filter, to tell "not found" from
//! "cannot be replicated", and the capability endpoint explains the latter.

use std::collections::HashMap;

use futures_util::future::try_join_all;

use crate::domain::{JobSpec, VmRef};
use crate::vr::model::{spec_name, ConfigureReplicationSpec, VirtualMachine, VmValidationStatus};
use crate::vr::{ApiError, Client, Filter};

use super::discovery::Discovery;
use super::spec::build_spec;
use crate::domain::{Placement, ReplicationSettings};

/// What the source vCenter says of one VM a job names.
#[derive(Debug, Clone, PartialEq)]
pub enum VmLookup {
    /// Suitable for replication; disks filled in.
    Found(VirtualMachine),
    NotFound,
    /// Several VMs carry this name; the job must name one by `vm_id`.
    Ambiguous(Vec<String>),
    /// Exists, but VR cannot replicate it; the reason in the server's terms.
    Unsuitable {
        vm: VirtualMachine,
        reason: String,
    },
}

/// The lookup key of a job's VM: its id when given (authoritative), else its name.
pub fn vm_key(vm: &VmRef) -> String {
    match (&vm.id, &vm.name) {
        (Some(id), _) => format!("id:{id}"),
        (None, Some(name)) => format!("name:{name}"),
        (None, None) => String::new(),
    }
}

/// VMs one lookup call names unless told otherwise (`filter=` values per call): what `run`,
/// `plan` and `import --check` ask with by default.
pub const LOOKUP_GROUP: usize = 50;

/// Looks up every VM of `refs` on the pairing's source vCenter, `group` names or ids a call.
pub async fn lookup_vms(
    client: &Client,
    disc: &Discovery,
    refs: &[&VmRef],
    group: usize,
) -> Result<HashMap<String, VmLookup>, ApiError> {
    let ids: Vec<String> = unique(refs.iter().filter_map(|r| r.id.clone()));
    let names: Vec<String> = unique(
        refs.iter()
            .filter(|r| r.id.is_none())
            .filter_map(|r| r.name.clone()),
    );
    let found = suitable_vms(client, disc, &ids, &names, group).await?;

    let mut out = HashMap::new();
    let (missing_ids, missing_names) = missing(&ids, &names, &found);
    let mut unsuitable = list_by(client, disc, "id", &missing_ids, group, false).await?;
    unsuitable.extend(list_by(client, disc, "name", &missing_names, group, false).await?);
    let reasons = try_join_all(
        unsuitable
            .iter()
            .map(|vm| unsuitable_reason(client, disc, vm)),
    )
    .await?;

    for vm in fill_disks(client, disc, found).await? {
        let key = format!("id:{}", vm.id);
        out.insert(key, VmLookup::Found(vm.clone()));
        match out.get_mut(&format!("name:{}", vm.name)) {
            Some(VmLookup::Found(other)) => {
                let ids = vec![other.id.clone(), vm.id.clone()];
                out.insert(format!("name:{}", vm.name), VmLookup::Ambiguous(ids));
            }
            Some(VmLookup::Ambiguous(ids)) => ids.push(vm.id.clone()),
            _ => {
                out.insert(format!("name:{}", vm.name), VmLookup::Found(vm));
            }
        }
    }
    for (vm, reason) in unsuitable.into_iter().zip(reasons) {
        out.insert(
            format!("id:{}", vm.id),
            VmLookup::Unsuitable {
                vm: vm.clone(),
                reason: reason.clone(),
            },
        );
        out.entry(format!("name:{}", vm.name))
            .or_insert(VmLookup::Unsuitable { vm, reason });
    }
    for r in refs {
        out.entry(vm_key(r)).or_insert(VmLookup::NotFound);
    }
    Ok(out)
}

/// The ids and the names of `ids` and `names` that no VM of `found` has.
fn missing(
    ids: &[String],
    names: &[String],
    found: &[VirtualMachine],
) -> (Vec<String>, Vec<String>) {
    let not_found = |wanted: &[String], field: fn(&VirtualMachine) -> &String| {
        wanted
            .iter()
            .filter(|w| !found.iter().any(|vm| field(vm) == *w))
            .cloned()
            .collect()
    };
    (not_found(ids, |vm| &vm.id), not_found(names, |vm| &vm.name))
}

fn unique(items: impl Iterator<Item = String>) -> Vec<String> {
    let mut v: Vec<String> = items.collect();
    v.sort();
    v.dedup();
    v
}

/// The VMs suitable for replication among `ids` and `names`: by filtered lookups of `group`
/// values a call, or by listing the inventory when that takes fewer calls. The listing's first
/// page tells how large the inventory is; whichever way is then cheaper for the VMs still
/// missing goes on, so the listing costs at most one call more than the lookups would.
async fn suitable_vms(
    client: &Client,
    disc: &Discovery,
    ids: &[String],
    names: &[String],
    group: usize,
) -> Result<Vec<VirtualMachine>, ApiError> {
    let group = group.max(1);
    let by_filter = |ids: Vec<String>, names: Vec<String>| async move {
        let mut found = list_by(client, disc, "id", &ids, group, true).await?;
        found.extend(list_by(client, disc, "name", &names, group, true).await?);
        Ok::<_, ApiError>(found)
    };
    if ids.len().div_ceil(group) + names.len().div_ceil(group) <= 1 {
        return by_filter(ids.to_vec(), names.to_vec()).await;
    }
    let wanted = |vm: &VirtualMachine| ids.contains(&vm.id) || names.contains(&vm.name);
    let (pairing, vc) = (&disc.pairing.pairing_id, &disc.local_vc_id);
    let first = client.vms_page(pairing, vc, true, 0).await?;
    let listed = first.items.len();
    let total = first.total.map_or(listed, |t| t.max(0) as usize);
    let mut found: Vec<VirtualMachine> = first.items.into_iter().filter(wanted).collect();
    let (missing_ids, missing_names) = missing(ids, names, &found);
    // The server's pages may be shorter than asked for: step by what it gave.
    let page = listed.max(1);
    let listing_calls = total.saturating_sub(listed).div_ceil(page);
    let lookup_calls = missing_ids.len().div_ceil(group) + missing_names.len().div_ceil(group);
    if listing_calls <= lookup_calls {
        let offsets = (listed..total).step_by(page);
        let pages = try_join_all(offsets.map(|o| client.vms_page(pairing, vc, true, o))).await?;
        found.extend(pages.into_iter().flat_map(|p| p.items).filter(wanted));
    } else {
        found.extend(by_filter(missing_ids, missing_names).await?);
    }
    Ok(found)
}

async fn list_by(
    client: &Client,
    disc: &Discovery,
    property: &str,
    values: &[String],
    group: usize,
    suitable: bool,
) -> Result<Vec<VirtualMachine>, ApiError> {
    let pages = try_join_all(values.chunks(group.max(1)).map(|chunk| {
        let filter = Filter::new(property, chunk.iter().cloned());
        async move {
            client
                .vms(
                    &disc.pairing.pairing_id,
                    &disc.local_vc_id,
                    suitable,
                    Some(&filter),
                )
                .await
        }
    }))
    .await?;
    Ok(pages.into_iter().flatten().collect())
}

/// A listing may leave out disks; those VMs get them from the disks endpoint.
async fn fill_disks(
    client: &Client,
    disc: &Discovery,
    vms: Vec<VirtualMachine>,
) -> Result<Vec<VirtualMachine>, ApiError> {
    try_join_all(vms.into_iter().map(|mut vm| async move {
        if vm.disks.as_ref().is_none_or(|d| d.is_empty()) {
            vm.disks = Some(
                client
                    .vm_disks(&disc.pairing.pairing_id, &disc.local_vc_id, &vm.id)
                    .await?,
            );
        }
        Ok(vm)
    }))
    .await
}

async fn unsuitable_reason(
    client: &Client,
    disc: &Discovery,
    vm: &VirtualMachine,
) -> Result<String, ApiError> {
    if vm.template == Some(true) {
        return Ok("is a template (IS_VM_TEMPLATE)".into());
    }
    // What discovery listed already says why (and `decide` says it with the replication's
    // id): a batch of VMs configured before must not cost a call each.
    if disc.replications.contains_key(&vm.id) {
        return Ok("already configured for replication (ALREADY_CONFIGURED)".into());
    }
    let cap = client
        .vm_capability(&disc.pairing.pairing_id, &disc.local_vc_id, &vm.id)
        .await?;
    let status = match cap.vm_validation_status {
        Some(VmValidationStatus::AlreadyConfigured) => "already configured for replication",
        Some(VmValidationStatus::IsVmTemplate) => "is a template",
        Some(VmValidationStatus::VmNotConnected) => "is not connected",
        Some(VmValidationStatus::NoPermissions) => "the user lacks the VR privileges on it",
        _ => "cannot be replicated",
    };
    let mut reason = format!(
        "{status} ({})",
        cap.vm_validation_status
            .map(|s| spec_name(s).unwrap_or_default())
            .unwrap_or_else(|| "no validation status".into())
    );
    let details: Vec<String> = cap
        .replication_not_supported_reasons
        .into_iter()
        .flatten()
        .flatten()
        .collect();
    if !details.is_empty() {
        reason.push_str(": ");
        reason.push_str(&details.join("; "));
    }
    Ok(reason)
}

/// What to do with one job, once its VM is looked up.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    Configure {
        vm: VirtualMachine,
        placement: Placement,
        spec: Box<ConfigureReplicationSpec>,
        /// Labels of disks the server marks unsupported, sent disabled.
        excluded: Vec<String>,
    },
    Skip {
        vm_id: Option<String>,
        reason: String,
        replication_id: Option<String>,
    },
    Fail {
        vm_id: Option<String>,
        reason: String,
    },
}

pub fn decide(job: &JobSpec, lookup: &VmLookup, disc: &Discovery) -> Decision {
    let source = disc
        .pairing
        .local_vc_server
        .name
        .as_deref()
        .unwrap_or(&disc.local_vc_id);
    let vm = match lookup {
        VmLookup::NotFound => {
            return Decision::Fail {
                vm_id: None,
                reason: format!("VM `{}` not found on {source}", job.vm.display()),
            }
        }
        VmLookup::Ambiguous(ids) => {
            return Decision::Fail {
                vm_id: None,
                reason: format!(
                    "{} VMs are named `{}` on {source} ({}): name one by vm_id",
                    ids.len(),
                    job.vm.display(),
                    ids.join(", ")
                ),
            }
        }
        VmLookup::Unsuitable { vm, reason } => {
            let existing = disc.replications.get(&vm.id);
            return Decision::Skip {
                vm_id: Some(vm.id.clone()),
                reason: match existing {
                    Some(r) => already_replicated(r),
                    None => format!("not suitable for replication: {reason}"),
                },
                replication_id: existing.map(|r| r.id.clone()),
            };
        }
        VmLookup::Found(vm) => vm,
    };
    if let Some(r) = disc.replications.get(&vm.id) {
        return Decision::Skip {
            vm_id: Some(vm.id.clone()),
            reason: already_replicated(r),
            replication_id: Some(r.id.clone()),
        };
    }
    let placement = match disc.placement(job) {
        Ok(p) => p,
        Err(reason) => {
            return Decision::Fail {
                vm_id: Some(vm.id.clone()),
                reason,
            }
        }
    };
    plan_configure(vm.clone(), placement, &job.settings)
}

/// The configure decision for a VM whose target is known; also used when a resumed job rebuilds
/// its spec from its checkpoint.
pub fn plan_configure(
    vm: VirtualMachine,
    placement: Placement,
    settings: &ReplicationSettings,
) -> Decision {
    let (spec, excluded) = build_spec(&vm, &placement, settings);
    if !spec.disks.iter().any(|d| d.enabled_for_replication) {
        return Decision::Fail {
            vm_id: Some(vm.id.clone()),
            reason: format!(
                "no disk of the VM can be replicated (unsupported: {})",
                excluded.join(", ")
            ),
        };
    }
    Decision::Configure {
        vm,
        placement,
        spec: Box::new(spec),
        excluded,
    }
}

fn already_replicated(r: &crate::vr::model::ReplicationInfo) -> String {
    let state = r
        .configuration_state
        .and_then(spec_name)
        .unwrap_or_else(|| "state unknown".into());
    format!("already replicated: {} ({state})", r.id)
}
