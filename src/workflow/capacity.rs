//! Room on the target sites, spent VM by VM as a plan or a run places them: how many more
//! replications each target VR server and the appliance take (VR operational limits, DESIGN.md
//! "The appliance's limits") and how much each target datastore has free. A VM that does not
//! fit fails here, in words that say why, instead of in a task on the appliance. A VM whose
//! `replication_server` is `auto` goes to the usable server with the most room left, so that a
//! batch spreads over the servers; the choice is in its placement, which the job records.

use std::collections::{HashMap, HashSet};

use super::discovery::Discovery;
use super::resolve::Decision;
use super::spec::spec_bytes;
use crate::units::gib;

/// Replications one VR server takes, the embedded one included.
pub const MAX_PER_SERVER: i64 = 200;
/// Replications one appliance takes in all.
pub const MAX_PER_APPLIANCE: i64 = 2000;

#[derive(Debug)]
struct Server {
    name: String,
    site: String,
    /// The target site's vCenter: an `auto` VM goes to a server of its own site only.
    vc_id: String,
    held: i64,
    usable: bool,
}

#[derive(Debug)]
struct Store {
    name: String,
    /// `None` when vCenter does not say: then nothing is checked.
    free: Option<i64>,
    /// VMs placed on it so far.
    placed: u32,
}

/// What is left on the appliance and the target sites of the pairings added so far.
#[derive(Debug, Default)]
pub struct Capacity {
    /// Replications of the pairings added (the appliance's other pairings are not read).
    appliance: i64,
    servers: HashMap<String, Server>,
    datastores: HashMap<String, Store>,
    pairings: HashSet<String>,
}

impl Capacity {
    /// Counts in what a pairing's discovery found (once: a pairing added again is ignored).
    pub fn add(&mut self, disc: &Discovery) {
        if !self.pairings.insert(disc.pairing_id().to_string()) {
            return;
        }
        self.appliance += disc.replications.len() as i64;
        for s in &disc.replication_servers {
            self.servers.entry(s.id.clone()).or_insert_with(|| Server {
                name: s.name.clone().unwrap_or_else(|| s.id.clone()),
                site: disc.remote_vc_name.clone(),
                vc_id: disc.remote_vc_id.clone(),
                held: i64::from(s.replication_count.unwrap_or_default()),
                usable: s.connected != Some(false) && s.decommissioned != Some(true),
            });
        }
        for d in &disc.datastores {
            self.datastores
                .entry(d.id.clone())
                .or_insert_with(|| Store {
                    name: d.name.clone(),
                    free: d.free_space,
                    placed: 0,
                });
        }
    }

    /// `decision` if the VM fits (a configure holds its room from now on, and an `auto` one
    /// names the server chosen for it); a failure that says what is full otherwise.
    pub fn admit(&mut self, decision: Decision) -> Decision {
        let Decision::Configure {
            vm,
            mut placement,
            mut spec,
            excluded,
        } = decision
        else {
            return decision;
        };
        let bytes = spec_bytes(&spec);
        match self.take(
            placement.replication_server_id.as_deref(),
            &placement.target_vc_id,
            &placement.datastore_id,
            bytes,
        ) {
            Ok(server) => {
                placement.replication_server_id = Some(server.clone());
                spec.target_replication_server_id = Some(server);
                Decision::Configure {
                    vm,
                    placement,
                    spec,
                    excluded,
                }
            }
            Err(reason) => Decision::Fail {
                vm_id: Some(vm.id),
                reason,
            },
        }
    }

    /// Gives back what a configure that did not happen held (its task failed, or it was never
    /// sent).
    pub fn give_back(&mut self, server: Option<&str>, datastore: &str, bytes: i64) {
        self.appliance -= 1;
        if let Some(s) = server.and_then(|id| self.servers.get_mut(id)) {
            s.held -= 1;
        }
        if let Some(store) = self.datastores.get_mut(datastore) {
            store.placed = store.placed.saturating_sub(1);
            if let Some(free) = store.free.as_mut() {
                *free += bytes;
            }
        }
    }

    /// Takes room for one VM of `bytes` onto `datastore`, on `server` or the usable server of
    /// the target site `vc_id` with the most room; the server it lands on.
    fn take(
        &mut self,
        server: Option<&str>,
        vc_id: &str,
        datastore: &str,
        bytes: i64,
    ) -> Result<String, String> {
        if self.appliance >= MAX_PER_APPLIANCE {
            return Err(format!(
                "the appliance already holds {} replications, the most it takes ({MAX_PER_APPLIANCE})",
                self.appliance
            ));
        }
        let server = match server {
            Some(id) => {
                let s = self
                    .servers
                    .get(id)
                    .ok_or_else(|| format!("VR server {id} is not known"))?;
                if s.held >= MAX_PER_SERVER {
                    return Err(format!(
                        "VR server '{}' on {} already holds {} replications, the most one takes ({MAX_PER_SERVER})",
                        s.name, s.site, s.held
                    ));
                }
                id.to_string()
            }
            None => self
                .servers
                .iter()
                // Another pairing's server is no server of this site: the VRMS refuses it.
                .filter(|(_, s)| s.vc_id == vc_id && s.usable && s.held < MAX_PER_SERVER)
                // The most room; on a tie, the first by name, so that a plan is repeatable.
                .min_by(|(_, a), (_, b)| a.held.cmp(&b.held).then_with(|| a.name.cmp(&b.name)))
                .map(|(id, _)| id.clone())
                .ok_or_else(|| {
                    format!(
                        "every connected VR server of the target site already holds \
                         {MAX_PER_SERVER} replications, the most one takes"
                    )
                })?,
        };
        if let Some(store) = self.datastores.get_mut(datastore) {
            if let Some(free) = store.free.as_mut() {
                if bytes > *free {
                    let after = match store.placed {
                        0 => String::new(),
                        1 => " after the VM placed on it before this one".into(),
                        n => format!(" after the {n} VMs placed on it before this one"),
                    };
                    return Err(format!(
                        "datastore '{}' has {} free{after}; this VM needs {}",
                        store.name,
                        gib((*free).max(0)),
                        gib(bytes)
                    ));
                }
                *free -= bytes;
                store.placed += 1;
            }
        }
        if let Some(s) = self.servers.get_mut(&server) {
            s.held += 1;
        }
        self.appliance += 1;
        Ok(server)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Placement;
    use crate::vr::model::{
        ConfigureReplicationSpec, Datastore, Pairing, ReplicationServerInfo, VirtualMachine,
    };

    fn server(id: &str, held: i32, connected: bool) -> ReplicationServerInfo {
        ReplicationServerInfo {
            id: id.into(),
            replication_count: Some(held),
            connected: Some(connected),
            decommissioned: Some(false),
            internally_managed: None,
            uuid: None,
            hostname: None,
            configuration_url: None,
            name: Some(id.into()),
            fault: None,
        }
    }

    fn discovery(servers: Vec<ReplicationServerInfo>, free: i64, existing: usize) -> Discovery {
        let pairing: Pairing = serde_json::from_value(serde_json::json!({
            "pairing_id": "p1",
            "local_vc_server": {"id": "vc-a", "name": "vc-a"},
            "remote_vc_server": {"id": "vc-b", "name": "vc-b"},
        }))
        .unwrap();
        let ds: Datastore = serde_json::from_value(serde_json::json!({
            "id": "ds-1", "name": "ds-1", "free_space": free,
        }))
        .unwrap();
        Discovery {
            pairing,
            local_vc_id: "vc-a".into(),
            remote_vc_id: "vc-b".into(),
            remote_vc_name: "vc-b".into(),
            target_vrms_id: "vrms".into(),
            replication_servers: servers,
            datastores: vec![ds],
            storage_policies: Vec::new(),
            replications: (0..existing)
                .map(|i| (format!("vm-{i}"), Default::default()))
                .collect(),
        }
    }

    /// A configure decision for a VM of `gib` GiB onto `ds-1`, on `server` or auto.
    fn configure(name: &str, gib: i64, server: Option<&str>) -> Decision {
        let spec: ConfigureReplicationSpec = serde_json::from_value(serde_json::json!({
            "vm_id": name, "target_vc_id": "vc-b", "rpo": 60,
            "network_compression_enabled": false, "mpit_enabled": false,
            "auto_replicate_new_disks": false, "lwd_encryption_enabled": false,
            "quiesce_enabled": false, "target_replication_server_id": server,
            "disks": [{
                "vm_disk": {"vm_id": name, "device_key": 2000, "capacity": gib * 1024 * 1024},
                "enabled_for_replication": true,
                "destination_datastore_id": "ds-1",
                "destination_disk_format": "SAME_AS_SOURCE",
            }],
        }))
        .unwrap();
        let vm: VirtualMachine =
            serde_json::from_value(serde_json::json!({"id": name, "name": name})).unwrap();
        Decision::Configure {
            vm,
            placement: Placement {
                target_vc_id: "vc-b".into(),
                datastore_id: "ds-1".into(),
                storage_policy_id: None,
                replication_server_id: server.map(str::to_string),
            },
            spec: Box::new(spec),
            excluded: Vec::new(),
        }
    }

    fn outcome(d: &Decision) -> Result<String, String> {
        match d {
            Decision::Configure {
                placement, spec, ..
            } => {
                assert_eq!(
                    placement.replication_server_id,
                    spec.target_replication_server_id
                );
                Ok(placement.replication_server_id.clone().unwrap_or_default())
            }
            Decision::Fail { reason, .. } => Err(reason.clone()),
            Decision::Skip { .. } => unreachable!(),
        }
    }

    #[test]
    fn auto_spreads_over_the_usable_servers_by_room_left() {
        let mut room = Capacity::default();
        room.add(&discovery(
            vec![
                server("a", 198, true),
                server("b", 195, true),
                server("c", 0, false),
            ],
            1 << 50,
            0,
        ));
        let placed: Vec<_> = (0..8)
            .map(|i| outcome(&room.admit(configure(&format!("vm{i}"), 10, None))))
            .collect();
        let on = |s: &str| placed.iter().filter(|p| p.as_deref() == Ok(s)).count();
        // b fills to 198, then they alternate until both are full; c is not connected.
        assert_eq!((on("a"), on("b")), (2, 5), "{placed:?}");
        assert!(placed[7]
            .as_ref()
            .unwrap_err()
            .contains("every connected VR server"));
    }

    #[test]
    fn auto_stays_on_the_servers_of_its_own_target_site() {
        let mut room = Capacity::default();
        room.add(&discovery(
            vec![server("b1", 199, true), server("b2", 200, true)],
            1 << 50,
            0,
        ));
        let mut site_c = discovery(vec![server("c1", 0, true)], 1 << 50, 0);
        site_c.pairing.pairing_id = "p2".into();
        site_c.remote_vc_id = "vc-c".into();
        site_c.remote_vc_name = "vc-c".into();
        room.add(&site_c);
        let to_c = |name: &str| match configure(name, 10, None) {
            Decision::Configure {
                vm,
                mut placement,
                spec,
                excluded,
            } => {
                placement.target_vc_id = "vc-c".into();
                Decision::Configure {
                    vm,
                    placement,
                    spec,
                    excluded,
                }
            }
            other => other,
        };
        // Site C's server has far more room, but a VM for site B stays on B, until B is full.
        assert_eq!(
            outcome(&room.admit(configure("vm0", 10, None))),
            Ok("b1".into())
        );
        let full = outcome(&room.admit(configure("vm1", 10, None))).unwrap_err();
        assert!(full.contains("every connected VR server"), "{full}");
        assert_eq!(outcome(&room.admit(to_c("vm2"))), Ok("c1".into()));
    }

    #[test]
    fn a_named_full_server_a_full_appliance_and_a_full_datastore_each_say_so() {
        let mut room = Capacity::default();
        room.add(&discovery(
            vec![server("a", 200, true), server("b", 0, true)],
            100 << 30,
            1998,
        ));
        let full = outcome(&room.admit(configure("vm0", 10, Some("a")))).unwrap_err();
        assert!(
            full.contains("VR server 'a' on vc-b already holds 200"),
            "{full}"
        );
        assert_eq!(
            outcome(&room.admit(configure("vm1", 60, None))),
            Ok("b".into())
        );
        let ds = outcome(&room.admit(configure("vm2", 60, None))).unwrap_err();
        assert_eq!(
            ds,
            "datastore 'ds-1' has 40.0 GiB free after the VM placed on it before this one; this \
             VM needs 60.0 GiB"
        );
        assert_eq!(
            outcome(&room.admit(configure("vm3", 40, None))),
            Ok("b".into())
        );
        let appliance = outcome(&room.admit(configure("vm4", 1, None))).unwrap_err();
        assert!(
            appliance.contains("already holds 2000 replications"),
            "{appliance}"
        );
        // What a configure that did not happen held comes back.
        room.give_back(Some("b"), "ds-1", 40 << 30);
        assert_eq!(
            outcome(&room.admit(configure("vm5", 40, None))),
            Ok("b".into())
        );
    }
}
