//! A desired-state file written from what the appliance protects now (`vrbulk export
//! --desired`), so that a team starts from what exists: its diff says nothing differs.

use std::collections::HashMap;

use thiserror::Error;

use super::{Created, Live};
use crate::vr::model::ReplicationInfo;

/// Why no desired-state file was written.
#[derive(Debug, Error)]
pub enum ExportError {
    #[error(
        "the appliance does not say where the replica disks of VMs vrbulk did not configure \
         live ({}): give --target-datastore, which the file records in [defaults] for should \
         such a VM be configured again",
        five(.0)
    )]
    NoDatastore(Vec<String>),

    #[error("a VM name holds ''', which the file's rows cannot quote")]
    Quotes,

    #[error("writing the rows")]
    Csv(#[from] csv::Error),
}

/// `a, b, c, d, e and 7 more`.
fn five(names: &[String]) -> String {
    let mut shown = names.iter().take(5).cloned().collect::<Vec<_>>().join(", ");
    if names.len() > 5 {
        shown.push_str(&format!(" and {} more", names.len() - 5));
    }
    shown
}

/// A desired-state file that says what `live` protects now on its pairing: one row per
/// replication, its settings as the appliance lists them. Where vrbulk created the
/// replication, the target datastore and storage policy are its configure job's; for the
/// others the appliance's list does not say, and `target_datastore` stands in (written in
/// `[defaults]`, used only should such a VM be configured again).
pub fn export(
    pairing: &str,
    live: &Live,
    created: &Created,
    target_datastore: Option<&str>,
) -> Result<String, ExportError> {
    let names: HashMap<&str, &str> = live
        .vms
        .iter()
        .map(|v| (v.id.as_str(), v.name.as_str()))
        .collect();
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for vm in &live.vms {
        *counts.entry(vm.name.as_str()).or_default() += 1;
    }
    let mut reps: Vec<(&str, &ReplicationInfo)> = live
        .replications
        .iter()
        .map(|(id, r)| (names.get(id.as_str()).copied().unwrap_or(id.as_str()), r))
        .collect();
    reps.sort_by(|a, b| a.0.cmp(b.0).then(a.1.id.cmp(&b.1.id)));
    let mut lacking = Vec::new();
    let mut out = csv::Writer::from_writer(Vec::new());
    let header = [
        "vm_name",
        "vm_id",
        "target_datastore",
        "storage_policy",
        "rpo",
        "mpit_instances",
        "mpit_days",
        "quiesce",
        "network_compression",
        "lwd_encryption",
        "auto_replicate_new_disks",
        "replication_server",
        "notes",
    ];
    out.write_record(header)?;
    for (name, rep) in reps {
        let vm_id = rep.vm_id.clone().unwrap_or_default();
        let ours = created.0.get(&rep.id);
        let (datastore, policy) = match ours {
            Some(r) => (
                r.spec.target_datastore.clone(),
                r.spec.storage_policy.clone(),
            ),
            None => {
                if target_datastore.is_none() {
                    lacking.push(name.to_string());
                }
                (String::new(), None)
            }
        };
        let instances = if rep.mpit_enabled == Some(false) {
            0
        } else {
            rep.mpit_instances.unwrap_or(0)
        };
        let days = if instances > 0 {
            rep.mpit_days.unwrap_or(0).to_string()
        } else {
            String::new()
        };
        let flag = |b: Option<bool>| b.unwrap_or(false).to_string();
        // The id only where the name alone would not say which VM.
        let id = if counts.get(name).copied().unwrap_or(0) == 1 {
            String::new()
        } else {
            vm_id
        };
        let note = match ours {
            Some(r) => format!("created by vrbulk batch {}", r.batch),
            None => "not created by vrbulk".to_string(),
        };
        out.write_record([
            name.to_string(),
            id,
            datastore,
            policy.unwrap_or_default(),
            rep.rpo.map(|r| r.to_string()).unwrap_or_default(),
            instances.to_string(),
            days,
            flag(rep.quiescing_enabled),
            flag(rep.network_compression_enabled),
            flag(rep.encryption_enabled),
            flag(rep.auto_replicate_new_disks_enabled),
            rep.replication_server_name.clone().unwrap_or_default(),
            note,
        ])?;
    }
    if !lacking.is_empty() {
        return Err(ExportError::NoDatastore(lacking));
    }
    let rows = out
        .into_inner()
        .map_err(|e| ExportError::Csv(e.into_error().into()))?;
    let rows = String::from_utf8_lossy(&rows);
    if rows.contains("'''") {
        return Err(ExportError::Quotes);
    }
    let mut text = format!(
        "# The desired protection of pairing {pairing}, as vrbulk found it (`vrbulk export \
         --desired`).\n# `vrbulk diff` compares it with the appliance; `vrbulk apply` makes the \
         appliance so.\npairing = {}\n\n",
        toml_string(pairing)
    );
    // The rows' CSV, one line per VM: a pull request shows each VM's change on its own line.
    text.push_str("rows = '''\n");
    text.push_str(&rows);
    text.push_str("'''\n");
    if let Some(ds) = target_datastore {
        text.push_str(&format!(
            "\n# Where a VM whose row names no datastore would be configured.\n[defaults]\n\
             target_datastore = {}\n",
            toml_string(ds)
        ));
    }
    text.push_str(
        "\n# Rules select VMs of the live inventory by name; a row wins over any rule.\n\
         # [[rule]]\n# name = \"web tier\"\n# match = [\"web-*\"]\n# exclude = [\"web-test-*\"]\n\
         # [rule.profile]\n# target_datastore = \"ds-silver-01\"\n# rpo = 30\n",
    );
    Ok(text)
}

/// `s` as a TOML basic string (names hold no control characters: the import refuses them).
fn toml_string(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}
