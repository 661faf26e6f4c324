//! The source site's inventory as the operator sees it: the VMs a pairing's source vCenter
//! holds, for an import by name patterns (`import --inventory`) and for the CSV template
//! `inventory export` writes, one row per VM in the import's own columns with its current
//! replication status beside them.

use std::collections::HashMap;

use thiserror::Error;

use super::session::{connect, remote_login, ConnectError, LoginFailed};
use super::{choose_pairing, PairingError};
use crate::config::ConfigFile;
use crate::input::{Column, Defaults};
use crate::vr::model::{spec_name, Pairing, VirtualMachine};
use crate::vr::{ApiError, Client};

/// Why the inventory could not be read, or the template not written.
#[derive(Debug, Error)]
pub enum InventoryError {
    #[error(transparent)]
    Connect(#[from] ConnectError),

    #[error("listing the pairings")]
    Pairings(#[source] ApiError),

    /// The pairing asked for is not there: the operator's to correct.
    #[error(transparent)]
    Pairing(#[from] PairingError),

    #[error("pairing {0}: the appliance names no local vCenter id")]
    NoLocalVcenter(String),

    #[error(transparent)]
    TargetLogin(LoginFailed),

    #[error("listing the source VMs")]
    Vms(#[source] ApiError),

    #[error("listing the existing replications")]
    Replications(#[source] ApiError),

    #[error("writing the CSV")]
    Csv(#[source] csv::Error),
}

/// The VMs of the source vCenter of the pairing `wanted` names (or the only one); only those
/// the appliance calls suitable for replication when `suitable`. Logs out when done.
pub async fn source_vms(
    file: &ConfigFile,
    wanted: Option<&str>,
    suitable: bool,
) -> Result<Vec<VirtualMachine>, InventoryError> {
    let client = connect(file).await?;
    let (pairing, local_vc) = source_site(&client, wanted).await?;
    let vms = client
        .vms(&pairing.pairing_id, &local_vc, suitable, None)
        .await
        .map_err(InventoryError::Vms)?;
    client.logout().await.ok();
    Ok(vms)
}

/// The pairing `wanted` names (or the only one), and its source vCenter's id.
async fn source_site(
    client: &Client,
    wanted: Option<&str>,
) -> Result<(Pairing, String), InventoryError> {
    let pairings = client.pairings().await.map_err(InventoryError::Pairings)?;
    let pairing = choose_pairing(&pairings, wanted)?.clone();
    let local_vc = pairing
        .local_vc_server
        .id
        .clone()
        .ok_or_else(|| InventoryError::NoLocalVcenter(pairing.pairing_id.clone()))?;
    Ok((pairing, local_vc))
}

/// The CSV template of `inventory export`, and what it holds.
#[derive(Debug, Clone)]
pub struct Export {
    pub csv: Vec<u8>,
    /// How many VMs (rows) it lists.
    pub vms: usize,
    /// The source vCenter, by name.
    pub source_vcenter: String,
}

/// Reads every VM of the pairing `wanted` names (or the only one) and the replications the
/// appliance has, and writes the template: `defaults` fill the settings columns.
pub async fn export(
    file: &ConfigFile,
    wanted: Option<&str>,
    defaults: &Defaults,
) -> Result<Export, InventoryError> {
    let client = connect(file).await?;
    let (pairing, local_vc) = source_site(&client, wanted).await?;
    // The replication list is the target site's to answer.
    remote_login(&client, &pairing)
        .await
        .map_err(InventoryError::TargetLogin)?;
    let vms = client
        .vms(&pairing.pairing_id, &local_vc, false, None)
        .await
        .map_err(InventoryError::Vms)?;
    let replicated: HashMap<String, String> = client
        .replications(&pairing.pairing_id, None)
        .await
        .map_err(InventoryError::Replications)?
        .into_iter()
        .filter_map(|r| {
            let state = r
                .configuration_state
                .and_then(spec_name)
                .unwrap_or_else(|| "?".into());
            Some((r.vm_id?, format!("already replicated ({}, {state})", r.id)))
        })
        .collect();
    client.logout().await.ok();
    let remote = pairing.remote_vc_server.name.clone().unwrap_or_default();
    let csv = template(&vms, &replicated, &remote, defaults).map_err(InventoryError::Csv)?;
    Ok(Export {
        csv,
        vms: vms.len(),
        source_vcenter: pairing
            .local_vc_server
            .name
            .clone()
            .unwrap_or_else(|| "the source vCenter".into()),
    })
}

/// The template: the import's columns, one row per VM of `vms` onto the pairing of the
/// `remote` vCenter, its settings from `defaults`, and each VM's status (`replicated` by VM
/// id) in a column of its own.
pub fn template(
    vms: &[VirtualMachine],
    replicated: &HashMap<String, String>,
    remote: &str,
    defaults: &Defaults,
) -> Result<Vec<u8>, csv::Error> {
    let settings = defaults.settings();
    let mut out = csv::Writer::from_writer(Vec::new());
    out.write_record(Column::ALL.iter().map(|c| c.name()))?;
    for vm in vms {
        // The status has a column of its own: `notes` is the operator's, and the import carries
        // it untouched into the report, where a status next to a configured VM would mislead.
        let status = if vm.template == Some(true) {
            "template: cannot be replicated".to_string()
        } else {
            replicated
                .get(&vm.id)
                .cloned()
                .unwrap_or_else(|| "not replicated".into())
        };
        let row: Vec<String> = Column::ALL
            .iter()
            .map(|c| match c {
                Column::VmName => vm.name.clone(),
                Column::VmId => vm.id.clone(),
                Column::Pairing => remote.to_string(),
                Column::TargetDatastore => defaults.target_datastore().unwrap_or_default(),
                Column::StoragePolicy => defaults.storage_policy().unwrap_or_default(),
                Column::Rpo => settings.rpo.to_string(),
                Column::MpitInstances => settings.mpit_instances.to_string(),
                Column::MpitDays => settings.mpit_days.to_string(),
                Column::Quiesce => settings.quiesce.to_string(),
                Column::NetworkCompression => settings.network_compression.to_string(),
                Column::LwdEncryption => settings.lwd_encryption.to_string(),
                Column::AutoReplicateNewDisks => settings.auto_replicate_new_disks.to_string(),
                Column::DiskFormat => settings.disk_format.to_string(),
                Column::ReplicationServer => defaults
                    .replication_server()
                    .unwrap_or_else(|| "auto".into()),
                Column::ChangeTicket => String::new(),
                Column::Notes => String::new(),
                Column::ReplicationStatus => status.clone(),
            })
            .collect();
        out.write_record(&row)?;
    }
    out.into_inner().map_err(|e| e.into_error().into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vm(id: &str, name: &str, template: bool) -> VirtualMachine {
        VirtualMachine {
            id: id.into(),
            name: name.into(),
            power_state: None,
            connection_state: None,
            template: template.then_some(true),
            managed_by_info: None,
            vr_privilege_granted: None,
            disks: None,
        }
    }

    #[test]
    fn the_template_has_the_import_columns_the_profile_and_each_vms_status() {
        let vms = [
            vm("vm-1", "app-001", false),
            vm("vm-2", "db-002", false),
            vm("vm-3", "golden", true),
        ];
        let replicated = HashMap::from([(
            "vm-2".to_string(),
            "already replicated (GID-1, CONFIGURED)".to_string(),
        )]);
        let defaults = Defaults {
            target_datastore: Some("ds-gold-01".into()),
            rpo: Some(15),
            ..Defaults::default()
        };
        let csv = template(&vms, &replicated, "vc-site-b", &defaults).unwrap();
        let text = String::from_utf8(csv).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        let header: Vec<&str> = Column::ALL.iter().map(|c| c.name()).collect();
        assert_eq!(lines[0], header.join(","));
        assert_eq!(
            lines[1],
            "app-001,vm-1,vc-site-b,ds-gold-01,,15,0,0,false,false,false,false,SAME_AS_SOURCE,\
             auto,,,not replicated"
        );
        assert!(
            lines[2].ends_with(",\"already replicated (GID-1, CONFIGURED)\""),
            "{}",
            lines[2]
        );
        assert!(
            lines[3].ends_with(",template: cannot be replicated"),
            "{}",
            lines[3]
        );
        assert_eq!(lines.len(), 4);
    }
}
