//! Room on the target sites, spent VM by VM as a plan or a run places them: how many more
//! replications each target VR server and the appliance take (VR operational limits, DESIGN.md
//! "The appliance's limits") and how much each target datastore has free. A VM that does not
//! fit fails here, in words that say why, instead of in a task on the appliance. A VM whose
//! `replication_server` is `auto` goes to the usable server with the most room left, so that a
//! batch spreads over the servers; the choice is in its placement, which the job records.
//!
//! # The figures, and who is believed
//!
//! The limits are the appliance's, not constants: `[limits]` of vrbulk.toml where the operator
//! sets them ([`CapacityLimits`]), else the defaults of the appliance's version ([`applied`],
//! the version as the appliance gives it, see `discovery::appliance_version`):
//!
//! | VR version | per VR server | per appliance | within one vCenter |
//! |---|---|---|---|
//! | 8.x (and older) | 200, documented | 2000, documented | 1000, documented |
//! | 9.x | 200, assumed | 400, documented | 1000, assumed |
//!
//! VR 8.x's figures are the English "Operational Limits of vSphere Replication" (the same as
//! 6.x's, KB 2102453). For 9.0 only a localized page of that article was found: 400
//! replications for a newly deployed appliance, up to 4000 after extra configuration (KB
//! 2102463: then set `replications_per_appliance = 4000`); it gives no per-server or
//! within-one-vCenter figure, so 8.x's are assumed. A version after 9 takes 9.x's figures,
//! all assumed; an appliance that does not say its version, 8.x's, assumed.
//!
//! The appliance's word wins over any figure ([`Capacity::refused`]): when its task says a VR
//! server is full, that server takes nothing more in this run, and when it said so below the
//! figure vrbulk worked with, the server's real limit is lower: that limit is learnt (the
//! figure its words give, else what the server held), for the queue to keep, and later plans
//! and runs count the server full at it ([`Capacity::new`]) until the appliance lists it
//! holding more. The appliance's own count of a server's replications is the truth otherwise.

use std::collections::{HashMap, HashSet};

use super::discovery::Discovery;
use super::resolve::Decision;
use super::spec::spec_bytes;
use crate::domain::{AppliedLimits, CapacityLimits, Figure, FigureSource};
use crate::queue::{JobId, LearntLimit};
use crate::units::gib;

/// The limits a plan or run works with: each figure `[limits]` sets, the default of the
/// appliance's version `vr_version` for the others.
pub fn applied(set: &CapacityLimits, vr_version: Option<&str>) -> AppliedLimits {
    let major = vr_version.and_then(|v| v.split('.').next()?.trim().parse::<u32>().ok());
    use FigureSource::{Assumed, Documented};
    let figure = |value, from| Figure { value, from };
    // (per server, per appliance, within one vCenter): see the module doc for the sources.
    let (server, appliance, vcenter) = match major {
        Some(0..=8) => (
            figure(200, Documented),
            figure(2000, Documented),
            figure(1000, Documented),
        ),
        Some(9) => (
            figure(200, Assumed),
            figure(400, Documented),
            figure(1000, Assumed),
        ),
        Some(_) => (
            figure(200, Assumed),
            figure(400, Assumed),
            figure(1000, Assumed),
        ),
        None => (
            figure(200, Assumed),
            figure(2000, Assumed),
            figure(1000, Assumed),
        ),
    };
    let or = |set: Option<u32>, default: Figure| match set {
        Some(value) => figure(value, FigureSource::Set),
        None => default,
    };
    AppliedLimits {
        vr_version: vr_version.map(str::to_string),
        replications_per_server: or(set.replications_per_server, server),
        replications_per_appliance: or(set.replications_per_appliance, appliance),
        replications_per_vcenter: or(set.replications_per_vcenter, vcenter),
    }
}

/// What a configure task's failure said of the appliance's room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Full {
    /// The VR server the VM was placed on takes no more; with the limit learnt when the
    /// appliance said so below the figure vrbulk worked with.
    Server { learnt: Option<LearntLimit> },
    /// The appliance takes no more replications.
    Appliance,
}

#[derive(Debug)]
struct Server {
    name: String,
    site: String,
    /// The target site's vCenter: an `auto` VM goes to a server of its own site only.
    vc_id: String,
    pairing: String,
    /// Replications it holds, counting the VMs placed on it by this room.
    held: i64,
    /// Of those, the VMs placed by this room.
    placed: i64,
    usable: bool,
    /// The most it takes: the per-server figure, or less when the appliance taught so.
    limit: i64,
    /// What the appliance taught of it earlier, while that is below the figure.
    learnt: Option<LearntLimit>,
    /// The appliance's words when it refused a configure onto it in this run: it takes no more.
    refused: Option<String>,
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
#[derive(Debug)]
pub struct Capacity {
    limits: AppliedLimits,
    /// Limits learnt from earlier refusals, by (pairing, server id).
    learnt: HashMap<(String, String), LearntLimit>,
    /// Replications of the pairings added (the appliance's other pairings are not read),
    /// counting the VMs placed by this room, and of those the VMs placed.
    appliance: i64,
    placed: i64,
    /// The appliance's words when a task said it takes no more.
    appliance_refused: Option<String>,
    /// Replications within one vCenter, and the vCenters that are both sides of a pairing.
    within_vcenter: i64,
    same_vcenter: HashSet<String>,
    servers: HashMap<String, Server>,
    datastores: HashMap<String, Store>,
    pairings: HashSet<String>,
}

impl Capacity {
    /// Room by `limits`, where the appliance has not taught otherwise (`learnt`).
    pub fn new(limits: AppliedLimits, learnt: &[LearntLimit]) -> Capacity {
        Capacity {
            limits,
            learnt: learnt
                .iter()
                .map(|l| ((l.pairing.clone(), l.server_id.clone()), l.clone()))
                .collect(),
            appliance: 0,
            placed: 0,
            appliance_refused: None,
            within_vcenter: 0,
            same_vcenter: HashSet::new(),
            servers: HashMap::new(),
            datastores: HashMap::new(),
            pairings: HashSet::new(),
        }
    }

    /// The figures this room counts by.
    pub fn limits(&self) -> &AppliedLimits {
        &self.limits
    }

    /// The limits learnt earlier that count for the servers added: those still below the
    /// figure, and not outgrown by what the server holds now.
    pub fn learnt_in_force(&self) -> Vec<&LearntLimit> {
        let mut found: Vec<&LearntLimit> = self
            .servers
            .values()
            .filter_map(|s| s.learnt.as_ref())
            .collect();
        found.sort_by(|a, b| (&a.pairing, &a.server_name).cmp(&(&b.pairing, &b.server_name)));
        found
    }

    /// Counts in what a pairing's discovery found (once: a pairing added again is ignored).
    pub fn add(&mut self, disc: &Discovery) {
        let pairing = disc.pairing_id().to_string();
        if !self.pairings.insert(pairing.clone()) {
            return;
        }
        let existing = disc.replications.len() as i64;
        self.appliance += existing;
        if disc.local_vc_id == disc.remote_vc_id {
            self.within_vcenter += existing;
            self.same_vcenter.insert(disc.remote_vc_id.clone());
        }
        let figure = i64::from(self.limits.replications_per_server.value);
        for s in &disc.replication_servers {
            let held = i64::from(s.replication_count.unwrap_or_default());
            // A learnt limit the server has outgrown was raised since: the appliance's count
            // is the truth.
            let learnt = self
                .learnt
                .get(&(pairing.clone(), s.id.clone()))
                .filter(|l| i64::from(l.replications) < figure && held <= i64::from(l.replications))
                .cloned();
            self.servers.entry(s.id.clone()).or_insert_with(|| Server {
                name: s.name.clone().unwrap_or_else(|| s.id.clone()),
                site: disc.remote_vc_name.clone(),
                vc_id: disc.remote_vc_id.clone(),
                pairing: pairing.clone(),
                held,
                placed: 0,
                usable: s.connected != Some(false) && s.decommissioned != Some(true),
                limit: learnt
                    .as_ref()
                    .map_or(figure, |l| i64::from(l.replications)),
                learnt,
                refused: None,
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
        self.placed -= 1;
        if let Some(s) = server.and_then(|id| self.servers.get_mut(id)) {
            s.held -= 1;
            s.placed -= 1;
            if self.same_vcenter.contains(&s.vc_id) {
                self.within_vcenter -= 1;
            }
        }
        if let Some(store) = self.datastores.get_mut(datastore) {
            store.placed = store.placed.saturating_sub(1);
            if let Some(free) = store.free.as_mut() {
                *free += bytes;
            }
        }
    }

    /// A configure task onto `server` failed in the appliance's `words`. When they say the
    /// server or the appliance is full, believe them: it takes nothing more in this run. A
    /// server that said so below the figure vrbulk worked with taught its real limit (the
    /// figure its words give, else what it held, without the refused VM): that limit comes
    /// back in [`Full::Server`] for the queue to keep, naming `job` and `now` (Unix ms).
    /// `None` when the words are about something else. The refused VM's room must have been
    /// given back first ([`Capacity::give_back`]).
    pub fn refused(
        &mut self,
        server: Option<&str>,
        words: &str,
        job: JobId,
        now: i64,
    ) -> Option<Full> {
        let (appliance, stated) = full_in(words)?;
        if appliance {
            self.appliance_refused = Some(words.to_string());
            return Some(Full::Appliance);
        }
        let figure = i64::from(self.limits.replications_per_server.value);
        let s = self.servers.get_mut(server?)?;
        s.refused = Some(words.to_string());
        let most = stated.map_or(s.held, i64::from).max(0);
        // Only what is news: below the figure, and below what this room already counts by.
        let learnt = (most < figure && most < s.limit).then(|| LearntLimit {
            pairing: s.pairing.clone(),
            server_id: server.unwrap_or_default().to_string(),
            server_name: s.name.clone(),
            replications: u32::try_from(most).unwrap_or_default(),
            learnt_at: now,
            job_id: Some(job),
            words: words.to_string(),
        });
        if let Some(l) = &learnt {
            s.limit = most;
            s.learnt = Some(l.clone());
        }
        Some(Full::Server { learnt })
    }

    /// Why the VR server `s` takes no more, or `None` while it has room.
    fn server_full(&self, s: &Server) -> Option<String> {
        if let Some(words) = &s.refused {
            return Some(format!(
                "VR server '{}' on {} is full, as the appliance said when it refused a VM: {words}",
                s.name, s.site
            ));
        }
        (s.held >= s.limit).then(|| {
            format!(
                "VR server '{}' on {} {}, the most it takes ({})",
                s.name,
                s.site,
                holds(s.held, s.placed),
                self.server_limit_source(s)
            )
        })
    }

    /// Where a server's limit came from, in words.
    fn server_limit_source(&self, s: &Server) -> String {
        match &s.learnt {
            Some(l) => format!(
                "learnt {}: the appliance refused a VM onto it then",
                crate::timefmt::utc(l.learnt_at)
            ),
            None => self.limits.source_of(self.limits.replications_per_server),
        }
    }

    /// Why the appliance takes no more replications (within `vc_id`'s vCenter, for a pairing
    /// whose two sides are one vCenter), or `None` while it has room.
    fn appliance_full(&self, vc_id: &str) -> Option<String> {
        if let Some(words) = &self.appliance_refused {
            return Some(format!(
                "the appliance is full, as it said when it refused a VM: {words}"
            ));
        }
        let l = &self.limits;
        let most = l.replications_per_appliance;
        if self.appliance >= i64::from(most.value) {
            return Some(format!(
                "the appliance {}, the most it takes ({}, {})",
                holds(self.appliance, self.placed),
                most.value,
                l.source_of(most)
            ));
        }
        let most = l.replications_per_vcenter;
        (self.same_vcenter.contains(vc_id) && self.within_vcenter >= i64::from(most.value)).then(
            || {
                format!(
                    "the appliance already holds {} replications within one vCenter, the most \
                     it takes ({}, {})",
                    self.within_vcenter,
                    most.value,
                    l.source_of(most)
                )
            },
        )
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
        if let Some(why) = self.appliance_full(vc_id) {
            return Err(why);
        }
        let server = match server {
            Some(id) => {
                let s = self
                    .servers
                    .get(id)
                    .ok_or_else(|| format!("VR server {id} is not known"))?;
                if let Some(why) = self.server_full(s) {
                    return Err(why);
                }
                id.to_string()
            }
            None => {
                // Another pairing's server is no server of this site: the VRMS refuses it.
                let site: Vec<(&String, &Server)> = self
                    .servers
                    .iter()
                    .filter(|(_, s)| s.vc_id == vc_id && s.usable)
                    .collect();
                site.iter()
                    .filter(|(_, s)| self.server_full(s).is_none())
                    // The most room; on a tie, the first by name, so that a plan is repeatable.
                    .min_by(|(_, a), (_, b)| {
                        (a.held - a.limit)
                            .cmp(&(b.held - b.limit))
                            .then_with(|| a.name.cmp(&b.name))
                    })
                    .map(|(id, _)| (*id).clone())
                    .ok_or_else(|| self.every_server_full(&site))?
            }
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
            s.placed += 1;
            if self.same_vcenter.contains(&s.vc_id) {
                self.within_vcenter += 1;
            }
        }
        self.appliance += 1;
        self.placed += 1;
        Ok(server)
    }

    /// Why no usable server of a site takes an `auto` VM: one sentence when they are all full
    /// at the same figure, each server's reason otherwise.
    fn every_server_full(&self, site: &[(&String, &Server)]) -> String {
        let figure = self.limits.replications_per_server;
        let uniform = site
            .iter()
            .all(|(_, s)| s.refused.is_none() && s.learnt.is_none() && s.held >= s.limit);
        if uniform {
            let placed: i64 = site.iter().map(|(_, s)| s.placed).sum();
            let counting = match placed {
                0 => String::new(),
                1 => " counting the VM placed before this one".into(),
                n => format!(" counting the {n} VMs placed before this one"),
            };
            return format!(
                "every connected VR server of the target site holds {} replications{counting}, \
                 the most one takes ({})",
                figure.value,
                self.limits.source_of(figure)
            );
        }
        let mut each: Vec<String> = site
            .iter()
            .filter_map(|(_, s)| self.server_full(s))
            .collect();
        each.sort();
        format!(
            "no connected VR server of the target site takes another replication: {}",
            each.join("; ")
        )
    }
}

/// `already holds 200 replications`, or with VMs placed before this one: `holds 198
/// replications and 2 VMs placed before this one, 200 in all`.
fn holds(total: i64, placed: i64) -> String {
    match placed {
        0 => format!("already holds {total} replications"),
        1 => format!(
            "holds {} replications and the VM placed before this one, {total} in all",
            total - 1
        ),
        n => format!(
            "holds {} replications and {n} VMs placed before this one, {total} in all",
            total - n
        ),
    }
}

/// Whether a configure task's failure says the appliance (`true`) or a VR server (`false`) is
/// full, with the most replications its words give, if any. The appliance's exact wording is
/// not documented; the words matched are the operational limits' own ("maximum number of
/// replications"), which the simulator's refusals use too.
fn full_in(words: &str) -> Option<(bool, Option<u32>)> {
    let lower = words.to_ascii_lowercase();
    let at = lower.find("maximum number of replications")?;
    let after = &lower[at..];
    let stated = after
        .split_once('(')
        .and_then(|(_, rest)| rest.split_once(')'))
        .and_then(|(n, _)| n.trim().parse().ok());
    let appliance = lower.contains("management server") || lower.contains("appliance");
    Some((appliance, stated))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Placement;
    use crate::vr::model::{
        ConfigureReplicationSpec, Datastore, Pairing, ReplicationServerInfo, VirtualMachine,
    };

    fn room_of_vr_8() -> Capacity {
        Capacity::new(applied(&CapacityLimits::default(), Some("8.8.0")), &[])
    }

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

    /// [`configure`]'s decision, for a VM whose target site is the vCenter `vc`.
    fn configure_onto(vc: &str, name: &str, gib: i64) -> Decision {
        match configure(name, gib, None) {
            Decision::Configure {
                vm,
                mut placement,
                spec,
                excluded,
            } => {
                placement.target_vc_id = vc.into();
                Decision::Configure {
                    vm,
                    placement,
                    spec,
                    excluded,
                }
            }
            other => other,
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
        let mut room = room_of_vr_8();
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
        let mut room = room_of_vr_8();
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
        let to_c = |name: &str| configure_onto("vc-c", name, 10);
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
        let mut room = room_of_vr_8();
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
        assert_eq!(
            appliance,
            "the appliance holds 1998 replications and 2 VMs placed before this one, 2000 in \
             all, the most it takes (2000, VR 8.8's documented figure)"
        );
        // What a configure that did not happen held comes back.
        room.give_back(Some("b"), "ds-1", 40 << 30);
        assert_eq!(
            outcome(&room.admit(configure("vm5", 40, None))),
            Ok("b".into())
        );
    }

    #[test]
    fn the_figures_follow_the_appliances_version_unless_set() {
        use FigureSource::{Assumed, Documented, Set};
        let figures = |l: &AppliedLimits| {
            [
                l.replications_per_server,
                l.replications_per_appliance,
                l.replications_per_vcenter,
            ]
            .map(|f| (f.value, f.from))
        };
        let none = CapacityLimits::default();
        for v in ["8.8.0.1234", "8.3", "6.5.1"] {
            assert_eq!(
                figures(&applied(&none, Some(v))),
                [(200, Documented), (2000, Documented), (1000, Documented)],
                "{v}"
            );
        }
        assert_eq!(
            figures(&applied(&none, Some("9.0.2"))),
            [(200, Assumed), (400, Documented), (1000, Assumed)]
        );
        assert_eq!(
            figures(&applied(&none, Some("10.1"))),
            [(200, Assumed), (400, Assumed), (1000, Assumed)]
        );
        // Not said, or not a version: 8.x's, assumed.
        for v in [None, Some("latest")] {
            assert_eq!(
                figures(&applied(&none, v)),
                [(200, Assumed), (2000, Assumed), (1000, Assumed)]
            );
        }
        let set = CapacityLimits {
            replications_per_appliance: Some(4000),
            ..CapacityLimits::default()
        };
        let l = applied(&set, Some("9.0.2"));
        assert_eq!(figures(&l)[1], (4000, Set));
        assert_eq!(l.release().as_deref(), Some("VR 9.0"));
        assert_eq!(
            l.summary(),
            "200 per VR server (assumed: VR 9.0 documents none), 4000 per appliance (set in \
             [limits]), 1000 within one vCenter (assumed: VR 9.0 documents none)"
        );
        // A 9.0 appliance is full at 400 by default.
        let mut room = Capacity::new(applied(&none, Some("9.0.2")), &[]);
        room.add(&discovery(vec![server("a", 0, true)], 1 << 50, 400));
        let full = outcome(&room.admit(configure("vm0", 1, None))).unwrap_err();
        assert_eq!(
            full,
            "the appliance already holds 400 replications, the most it takes (400, VR 9.0's \
             documented figure)"
        );
    }

    /// The refusal of a full VR server, in the simulator's words.
    fn refusal(server: &str, most: u32) -> String {
        format!(
            "The vSphere Replication server '{server}' has reached the maximum number of \
             replications ({most})"
        )
    }

    #[test]
    fn a_server_the_appliance_says_is_full_below_the_figure_teaches_its_limit() {
        let mut room = room_of_vr_8();
        room.add(&discovery(
            vec![server("a", 2, true), server("b", 0, true)],
            1 << 50,
            2,
        ));
        // Both get VMs (b first: more room), then one onto a that the appliance refuses.
        let placed: Vec<_> = (0..4)
            .map(|i| outcome(&room.admit(configure(&format!("vm{i}"), 1, None))).unwrap())
            .collect();
        assert_eq!(placed, ["b", "b", "a", "b"]);
        room.give_back(Some("a"), "ds-1", 1 << 30);
        let Some(Full::Server {
            learnt: Some(learnt),
        }) = room.refused(Some("a"), &refusal("a", 3), 7, 1_000)
        else {
            panic!("nothing learnt");
        };
        assert_eq!(
            (
                learnt.server_id.as_str(),
                learnt.replications,
                learnt.job_id
            ),
            ("a", 3, Some(7))
        );
        // Nothing more onto a in this run: auto goes to b, a named one fails in its words.
        assert_eq!(
            outcome(&room.admit(configure("vm4", 1, None))),
            Ok("b".into())
        );
        let named = outcome(&room.admit(configure("vm5", 1, Some("a")))).unwrap_err();
        assert_eq!(
            named,
            format!(
                "VR server 'a' on vc-b is full, as the appliance said when it refused a VM: {}",
                refusal("a", 3)
            )
        );
        // Without a figure in its words, what the server held is its limit.
        let mut room = room_of_vr_8();
        room.add(&discovery(vec![server("a", 5, true)], 1 << 50, 5));
        let words = "The vSphere Replication server 'a' has reached the maximum number of \
                     replications";
        let Some(Full::Server { learnt: Some(l) }) = room.refused(Some("a"), words, 1, 1) else {
            panic!("nothing learnt");
        };
        assert_eq!(l.replications, 5);

        // A later room counts a full at 3 while the appliance lists it holding 3 (or fewer);
        // once it holds more, the limit was raised since: the appliance's count wins.
        let mut later = Capacity::new(
            applied(&CapacityLimits::default(), Some("8.8")),
            std::slice::from_ref(&learnt),
        );
        later.add(&discovery(
            vec![server("a", 3, true), server("b", 150, true)],
            1 << 50,
            153,
        ));
        assert_eq!(later.learnt_in_force(), [&learnt]);
        let named = outcome(&later.admit(configure("vm0", 1, Some("a")))).unwrap_err();
        assert_eq!(
            named,
            "VR server 'a' on vc-b already holds 3 replications, the most it takes (learnt \
             1970-01-01 00:00:01 UTC: the appliance refused a VM onto it then)"
        );
        assert_eq!(
            outcome(&later.admit(configure("vm1", 1, None))),
            Ok("b".into())
        );
        let mut raised = Capacity::new(
            applied(&CapacityLimits::default(), Some("8.8")),
            std::slice::from_ref(&learnt),
        );
        raised.add(&discovery(vec![server("a", 4, true)], 1 << 50, 4));
        assert!(raised.learnt_in_force().is_empty());
        assert_eq!(
            outcome(&raised.admit(configure("vm0", 1, Some("a")))),
            Ok("a".into())
        );
    }

    #[test]
    fn a_refusal_at_the_figure_teaches_nothing_but_still_fills_the_server_for_the_run() {
        // The appliance's count was behind (another client configured in between): the
        // figure stands, the server takes nothing more now.
        let mut room = room_of_vr_8();
        room.add(&discovery(
            vec![server("a", 150, true), server("b", 199, true)],
            1 << 50,
            0,
        ));
        assert_eq!(
            room.refused(Some("a"), &refusal("a", 200), 1, 1),
            Some(Full::Server { learnt: None })
        );
        assert_eq!(
            outcome(&room.admit(configure("vm0", 1, None))),
            Ok("b".into())
        );
        let none = outcome(&room.admit(configure("vm1", 1, None))).unwrap_err();
        assert!(
            none.starts_with("no connected VR server of the target site takes another"),
            "{none}"
        );
        assert!(
            none.contains(
                "VR server 'b' on vc-b holds 199 replications and the VM placed before this \
                 one, 200 in all, the most it takes (VR 8.8's documented figure)"
            ),
            "{none}"
        );
        assert!(
            none.contains("VR server 'a' on vc-b is full, as the appliance said"),
            "{none}"
        );
        // Words about something else are not a refusal for room.
        assert_eq!(
            room.refused(Some("a"), "Insufficient disk space", 1, 1),
            None
        );
        // The appliance full: nothing more anywhere.
        let words = "The maximum number of replications (2000) supported by the vSphere \
                     Replication Management Server has been reached";
        let mut room = room_of_vr_8();
        room.add(&discovery(vec![server("a", 0, true)], 1 << 50, 0));
        assert_eq!(room.refused(Some("a"), words, 1, 1), Some(Full::Appliance));
        let full = outcome(&room.admit(configure("vm0", 1, None))).unwrap_err();
        assert_eq!(
            full,
            format!("the appliance is full, as it said when it refused a VM: {words}")
        );
    }

    #[test]
    fn replications_within_one_vcenter_stop_at_their_own_figure() {
        let limits = CapacityLimits {
            replications_per_vcenter: Some(2),
            ..CapacityLimits::default()
        };
        let mut room = Capacity::new(applied(&limits, Some("8.8")), &[]);
        // A pairing of vc-a with itself, holding one replication already.
        let mut same = discovery(vec![server("a", 1, true)], 1 << 50, 1);
        same.remote_vc_id = "vc-a".into();
        same.remote_vc_name = "vc-a".into();
        room.add(&same);
        let to_a = |name: &str| configure_onto("vc-a", name, 1);
        assert_eq!(outcome(&room.admit(to_a("vm0"))), Ok("a".into()));
        assert_eq!(
            outcome(&room.admit(to_a("vm1"))).unwrap_err(),
            "the appliance already holds 2 replications within one vCenter, the most it takes \
             (2, set in [limits])"
        );
        // What goes back makes room again.
        room.give_back(Some("a"), "ds-1", 1 << 30);
        assert_eq!(outcome(&room.admit(to_a("vm2"))), Ok("a".into()));
    }
}
