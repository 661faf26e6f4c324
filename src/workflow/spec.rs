//! Building one `ConfigureReplicationSpec` from a VM's disks, the resolved target and the
//! operator's replication settings.

use crate::domain::{Placement, ReplicationSettings};
use crate::vr::model::{ConfigureReplicationSpec, ConfigureReplicationVmDisk, VirtualMachine};

/// One spec for `vm`, with every disk of the VM (the VM home and each data disk). Disks the
/// server marks unsupported go in with `enabled_for_replication: false`; their labels are
/// returned so the report can say what was left out.
pub fn build_spec(
    vm: &VirtualMachine,
    placement: &Placement,
    settings: &ReplicationSettings,
) -> (ConfigureReplicationSpec, Vec<String>) {
    let mut excluded = Vec::new();
    let disks =
        vm.disks
            .iter()
            .flatten()
            .map(|disk| {
                let enabled = disk.is_supported();
                if !enabled {
                    excluded.push(disk.label.clone().unwrap_or_else(|| {
                        format!("disk {}", disk.device_key.unwrap_or_default())
                    }));
                }
                ConfigureReplicationVmDisk {
                    vm_disk: disk.clone(),
                    enabled_for_replication: enabled,
                    use_seeds: Some(false),
                    destination_storage_policy_id: placement.storage_policy_id.clone(),
                    destination_path: None,
                    destination_datastore_id: placement.datastore_id.clone(),
                    destination_disk_format: settings.disk_format,
                }
            })
            .collect();
    let mpit = settings.mpit_instances > 0;
    let spec = ConfigureReplicationSpec {
        quiesce_enabled: Some(settings.quiesce),
        rpo: i64::from(settings.rpo),
        network_compression_enabled: settings.network_compression,
        mpit_enabled: mpit,
        mpit_instances: mpit.then_some(settings.mpit_instances as i32),
        mpit_days: mpit.then_some(settings.mpit_days as i32),
        auto_replicate_new_disks: settings.auto_replicate_new_disks,
        target_replication_server_id: placement.replication_server_id.clone(),
        lwd_encryption_enabled: settings.lwd_encryption,
        vm_data_sets_replication_enabled: None,
        disks,
        target_vc_id: placement.target_vc_id.clone(),
        vm_id: vm.id.clone(),
    };
    (spec, excluded)
}

/// Bytes a spec's initial sync copies: its enabled disks (capacities are in KiB).
pub fn spec_bytes(spec: &ConfigureReplicationSpec) -> i64 {
    spec.disks
        .iter()
        .filter(|d| d.enabled_for_replication)
        .filter_map(|d| d.vm_disk.capacity)
        .sum::<i64>()
        * 1024
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vr::model::VmDisk;

    fn disk(key: i32, home: bool, supported: bool) -> VmDisk {
        serde_json::from_value(serde_json::json!({
            "vm_id": "VirtualMachine:vm-1:vc", "device_key": key, "is_vm_home": home,
            "label": if home { "VM home".to_string() } else { format!("Hard disk {key}") },
            "supported_for_replication": supported
        }))
        .unwrap()
    }

    #[test]
    fn every_disk_goes_in_and_unsupported_ones_are_disabled_and_reported() {
        let vm = VirtualMachine {
            id: "VirtualMachine:vm-1:vc".into(),
            name: "db-nvme-01".into(),
            power_state: None,
            connection_state: None,
            template: Some(false),
            managed_by_info: None,
            vr_privilege_granted: None,
            disks: Some(vec![
                disk(0, true, true),
                disk(2000, false, true),
                disk(2001, false, false),
            ]),
        };
        let placement = Placement {
            target_vc_id: "vc-b".into(),
            datastore_id: "ds-1".into(),
            storage_policy_id: None,
            replication_server_id: None,
        };
        let settings = ReplicationSettings {
            mpit_instances: 3,
            mpit_days: 2,
            ..Default::default()
        };
        let (spec, excluded) = build_spec(&vm, &placement, &settings);
        let enabled: Vec<bool> = spec
            .disks
            .iter()
            .map(|d| d.enabled_for_replication)
            .collect();
        assert_eq!(enabled, [true, true, false]);
        assert_eq!(excluded, ["Hard disk 2001"]);
        assert!(spec.mpit_enabled);
        assert_eq!((spec.mpit_instances, spec.mpit_days), (Some(3), Some(2)));
        assert_eq!(spec.rpo, 60);
        let json = serde_json::to_value(&spec).unwrap();
        assert!(json["target_replication_server_id"].is_null());
    }
}
