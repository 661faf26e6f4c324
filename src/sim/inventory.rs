//! The simulator's fixed world: the source site with its VMs and their disks, and one target
//! site per pairing with its vCenter, VRMS, datastores, storage policies and VR servers, all
//! derived deterministically from `(vms, seed, pairings)` so that a test can name what it
//! expects.
//!
//! Pairing 1 (to `vc-site-b.corp.local`) is in the inventory's own fields, as it always was;
//! the others ([`SimConfig::pairings`](super::SimConfig::pairings) > 1) are in
//! [`Inventory::extra_pairings`]: pairing `k` to `vc-site-c.corp.local`, `vc-site-d…`, each with
//! its own VRMS, the same datastore and policy names as site B (names repeat across sites, as
//! they do in real life; ids do not, as a datastore's carries its vCenter's id) and as many VR
//! servers (`vrs-site-c-01`, …; host names are unique on a network). Every pairing starts from
//! the same source vCenter. The extra sites come from their own seeded streams, so adding them
//! changes no id of pairing 1's, and site C's ids do not depend on how many sites follow.
//! [`SiteRef`] looks at any pairing's target site alike.
//!
//! Disk sizes are a mix that makes the sync model meaningful: six VMs in ten are small (data disks
//! of 10 to 40 GiB), three medium (60 to 200 GiB), one large (a first data disk of 500 GiB to
//! 1 TiB, the others medium), so that at 1 Gbit/s an initial sync lasts from minutes to hours. No
//! VM needs more than 1.4 TiB, so each fits on any target datastore but the full one.
//!
//! `Inventory` is also the snapshot that `Simulator::inventory()` hands to tests; the live parts
//! (replications that configure tasks created, power states changed since) are merged in by
//! `state`.

use serde::Serialize;

use crate::vr::model::{
    ConfigurationState, ConnectionState, Datastore, DatastorePathData, DatastoreType, DiskFormat,
    FileSystemType, OverallStatus, PowerState, RecoveryState, ReplicationInfo,
    ReplicationServerInfo, ReplicationStatus, ReplicationType, StoragePolicy, VirtualMachine,
    VmDisk,
};

pub const LOCAL_VC_NAME: &str = "vc-site-a.corp.local";
pub const REMOTE_VC_NAME: &str = "vc-site-b.corp.local";
pub const LOCAL_VRMS_NAME: &str = "vrms-site-a.corp.local";
pub const REMOTE_VRMS_NAME: &str = "vrms-site-b.corp.local";

pub const TEMPLATE_VM: &str = "tmpl-rhel9-golden";
pub const NVME_VM: &str = "db-nvme-01";
pub const REPLICATED_VM: &str = "legacy-erp-01";
pub const POWERED_OFF_VM: &str = "build-agent-07";
pub const UNUSUAL_NAME_VM: &str = "Finance Server Ünïcødé 01";

pub const FULL_DATASTORE: &str = "ds-full-01";

/// What one VR server takes (the embedded one included), and one appliance in all, on VR 8.x
/// (VR operational limits; DESIGN.md, "The appliance's limits").
pub const MAX_REPLICATIONS_PER_SERVER: usize = 200;
pub const MAX_REPLICATIONS_PER_APPLIANCE: usize = 2000;
/// What a newly deployed VR 9.x appliance takes in all: a localized page of VR 9.0's
/// operational limits (up to 4000 after extra configuration; not confirmed in English). It
/// gives no per-server figure: 8.x's is kept.
pub const MAX_REPLICATIONS_PER_APPLIANCE_9: usize = 400;
/// The VR release the simulator presents unless told otherwise.
pub const DEFAULT_VERSION: &str = "8.8.0";

/// The replications an appliance of `version` takes in all, by the simulator's own reading of
/// the documentation (9.x: 400; before: 2000).
pub fn max_replications_per_appliance_of(version: &str) -> usize {
    let major: u32 = version
        .split('.')
        .next()
        .and_then(|m| m.trim().parse().ok())
        .unwrap_or(0);
    if major >= 9 {
        MAX_REPLICATIONS_PER_APPLIANCE_9
    } else {
        MAX_REPLICATIONS_PER_APPLIANCE
    }
}

/// The device key this simulator gives the VM home pseudo-disk. Real data disks start at 2000
/// (SCSI) or 31000 (NVMe), so -1 can never collide with one.
pub const VM_HOME_DEVICE_KEY: i32 = -1;

const KIB_PER_GIB: i64 = 1024 * 1024;
const BYTES_PER_GIB: i64 = 1024 * 1024 * 1024;
const BYTES_PER_TIB: i64 = 1024 * BYTES_PER_GIB;

/// A vCenter or VRMS: its id (a UUID) and host name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Site {
    pub id: String,
    pub name: String,
}

/// Why a VM is in the inventory: most are ordinary, a few exist to exercise one client path each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum VmKind {
    Normal,
    /// `template: true`; configure is rejected.
    Template,
    /// One data disk on an NVMe controller (`supported_for_replication: false`).
    UnsupportedDisk,
    /// Has a replication (configuration_state OK) from the start.
    AlreadyReplicated,
    /// POWERED_OFF, still replicable.
    PoweredOff,
    /// Spaces and non-ASCII letters in the name, replicable.
    UnusualName,
}

/// A source-site VM (with its disks embedded, VM home first) and why it is there.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SimVm {
    pub vm: VirtualMachine,
    pub kind: VmKind,
}

impl SimVm {
    pub fn disks(&self) -> &[VmDisk] {
        self.vm.disks.as_deref().unwrap_or(&[])
    }

    pub fn disk(&self, device_key: i32) -> Option<&VmDisk> {
        self.disks()
            .iter()
            .find(|d| d.device_key == Some(device_key))
    }
}

/// The target site of one pairing beyond the first: its remote vCenter and VRMS, and what that
/// site offers a replication.
#[derive(Debug, Clone, Serialize)]
pub struct TargetSite {
    pub pairing_id: String,
    pub remote_vc: Site,
    pub remote_vrms: Site,
    pub datastores: Vec<Datastore>,
    pub storage_policies: Vec<StoragePolicy>,
    /// Its VR servers, as many as pairing 1's target site has; the first is the embedded one.
    pub replication_servers: Vec<ReplicationServerInfo>,
}

impl TargetSite {
    pub fn site(&self) -> SiteRef<'_> {
        SiteRef {
            pairing_id: &self.pairing_id,
            remote_vc: &self.remote_vc,
            remote_vrms: &self.remote_vrms,
            datastores: &self.datastores,
            storage_policies: &self.storage_policies,
            replication_servers: &self.replication_servers,
        }
    }
}

/// A pairing's target site, borrowed from the inventory: pairing 1's from the inventory's own
/// fields, any other's from its [`TargetSite`].
#[derive(Debug, Clone, Copy)]
pub struct SiteRef<'a> {
    pub pairing_id: &'a str,
    pub remote_vc: &'a Site,
    pub remote_vrms: &'a Site,
    pub datastores: &'a [Datastore],
    pub storage_policies: &'a [StoragePolicy],
    pub replication_servers: &'a [ReplicationServerInfo],
}

impl<'a> SiteRef<'a> {
    pub fn datastore(&self, id: &str) -> Option<&'a Datastore> {
        self.datastores.iter().find(|d| d.id == id)
    }

    pub fn datastore_by_name(&self, name: &str) -> Option<&'a Datastore> {
        self.datastores.iter().find(|d| d.name == name)
    }

    pub fn storage_policy(&self, id: &str) -> Option<&'a StoragePolicy> {
        self.storage_policies
            .iter()
            .find(|p| p.storage_policy_id == id)
    }

    pub fn storage_policy_by_name(&self, name: &str) -> Option<&'a StoragePolicy> {
        self.storage_policies
            .iter()
            .find(|p| p.storage_policy_name == name)
    }

    pub fn replication_server(&self, id: &str) -> Option<&'a ReplicationServerInfo> {
        self.replication_servers.iter().find(|s| s.id == id)
    }

    pub fn replication_server_by_name(&self, name: &str) -> Option<&'a ReplicationServerInfo> {
        self.replication_servers
            .iter()
            .find(|s| s.name.as_deref() == Some(name))
    }
}

/// The simulator's truth, as tests see it. The pairing fields (`pairing_id` to
/// `replication_servers`) are pairing 1's; [`Inventory::sites`] walks every pairing.
#[derive(Debug, Clone, Serialize)]
pub struct Inventory {
    pub pairing_id: String,
    pub local_vc: Site,
    pub remote_vc: Site,
    pub local_vrms: Site,
    pub remote_vrms: Site,
    /// Source site VMs.
    pub vms: Vec<SimVm>,
    /// Target site datastores.
    pub datastores: Vec<Datastore>,
    pub source_datastores: Vec<Datastore>,
    /// Target site storage policies.
    pub storage_policies: Vec<StoragePolicy>,
    pub source_storage_policies: Vec<StoragePolicy>,
    /// Target site VR servers (two, both connected).
    pub replication_servers: Vec<ReplicationServerInfo>,
    /// The source site's own VR server (the one embedded in its VRMS).
    pub source_replication_servers: Vec<ReplicationServerInfo>,
    /// Every replication that exists right now (at snapshot time), including those a configure
    /// task is still creating (`IN_PROGRESS`), of every pairing: a replication's
    /// `target_vc_id` names its pairing's remote vCenter.
    pub replications: Vec<ReplicationInfo>,
    /// Pairings 2, 3, …: empty unless the simulator serves several.
    pub extra_pairings: Vec<TargetSite>,
}

impl Inventory {
    /// Builds the world for `vms` source VMs (at least the five special ones) from `seed`.
    pub fn generate(vms: usize, seed: u64) -> Inventory {
        let mut rng = fastrand::Rng::with_seed(seed);
        let pairing_id = uuid(&mut rng);
        let local_vc = Site {
            id: uuid(&mut rng),
            name: LOCAL_VC_NAME.into(),
        };
        let remote_vc = Site {
            id: uuid(&mut rng),
            name: REMOTE_VC_NAME.into(),
        };
        let local_vrms = Site {
            id: uuid(&mut rng),
            name: LOCAL_VRMS_NAME.into(),
        };
        let remote_vrms = Site {
            id: uuid(&mut rng),
            name: REMOTE_VRMS_NAME.into(),
        };

        let source_datastores: Vec<Datastore> = (1..=3)
            .map(|i| {
                datastore(
                    &local_vc.id,
                    10 + i,
                    &format!("src-ds-0{i}"),
                    4 * BYTES_PER_TIB,
                    (1 + i as i64) * 512 * BYTES_PER_GIB,
                    FileSystemType::Vmfs,
                )
            })
            .collect();
        let datastores = target_datastores(&remote_vc.id);
        let storage_policies = ["VR Gold", "VR Silver", "vSAN Default Storage Policy"]
            .iter()
            .map(|name| StoragePolicy {
                storage_policy_name: (*name).into(),
                storage_policy_id: uuid(&mut rng),
                vm_encryption_supported: Some(*name != "VR Silver"),
            })
            .collect();
        let source_storage_policies = ["vSAN Default Storage Policy", "Datastore Default"]
            .iter()
            .map(|name| StoragePolicy {
                storage_policy_name: (*name).into(),
                storage_policy_id: uuid(&mut rng),
                vm_encryption_supported: Some(false),
            })
            .collect();
        let replication_servers = (1..=2)
            .map(|i| {
                let u = uuid(&mut rng);
                replication_server(
                    format!("HmsRemoteHbrServer:HBRSRV-{u}:{}", remote_vc.id),
                    u,
                    format!("vrs-target-{i:02}"),
                    i == 1,
                )
            })
            .collect();
        let source_replication_servers = {
            let u = uuid(&mut rng);
            vec![replication_server(
                format!("HmsHbrServer:HBRSRV-{u}:{}", local_vc.id),
                u,
                "vrs-source-01".into(),
                true,
            )]
        };

        let names = vm_names(vms);
        let mut vm_number = 1000;
        let mut sim_vms = Vec::with_capacity(names.len());
        for (name, kind) in names {
            vm_number += 1 + rng.u32(0..3);
            let id = format!("VirtualMachine:vm-{vm_number}:{}", local_vc.id);
            let ds = &source_datastores[rng.usize(0..source_datastores.len())];
            let data_disks = if kind == VmKind::UnsupportedDisk {
                2
            } else {
                1 + rng.usize(0..3)
            };
            let mut disks = vec![vm_home(&id, &name, ds)];
            for (n, gib) in (1..=data_disks).zip(disk_sizes(&mut rng, data_disks)) {
                let nvme = kind == VmKind::UnsupportedDisk && n == 2;
                let format = if rng.bool() {
                    DiskFormat::Thin
                } else {
                    DiskFormat::Thick
                };
                let disk = DataDisk {
                    n,
                    gib,
                    format,
                    nvme,
                };
                disks.push(data_disk(&id, &name, ds, &disk));
            }
            let template = kind == VmKind::Template;
            let powered_off = template || kind == VmKind::PoweredOff;
            sim_vms.push(SimVm {
                vm: VirtualMachine {
                    id,
                    name,
                    power_state: Some(if powered_off {
                        PowerState::PoweredOff
                    } else {
                        PowerState::PoweredOn
                    }),
                    connection_state: Some(ConnectionState::Connected),
                    template: Some(template),
                    managed_by_info: None,
                    vr_privilege_granted: Some(true),
                    disks: Some(disks),
                },
                kind,
            });
        }

        let mut inv = Inventory {
            pairing_id,
            local_vc,
            remote_vc,
            local_vrms,
            remote_vrms,
            vms: sim_vms,
            datastores,
            source_datastores,
            storage_policies,
            source_storage_policies,
            replication_servers,
            source_replication_servers,
            replications: Vec::new(),
            extra_pairings: Vec::new(),
        };
        let legacy = legacy_replication(&mut rng, &inv);
        inv.replications.extend(legacy);
        inv.size_for_its_vms(seed);
        inv
    }

    /// An appliance sized for its inventory, as one that protects it would be: a VR server
    /// for every 200 VMs (up to the nine additional servers a VRMS takes), and healthy target
    /// datastores that can hold every VM. The extra servers' ids come from their own stream,
    /// so small inventories keep the ids they always had.
    fn size_for_its_vms(&mut self, seed: u64) {
        let mut rng = fastrand::Rng::with_seed(seed ^ 0x5E4F_E45E_5EED);
        let servers = (self.vms.len().div_ceil(MAX_REPLICATIONS_PER_SERVER) + 1).clamp(2, 10);
        for i in self.replication_servers.len() + 1..=servers {
            let u = uuid(&mut rng);
            self.replication_servers.push(replication_server(
                format!("HmsRemoteHbrServer:HBRSRV-{u}:{}", self.remote_vc.id),
                u,
                format!("vrs-target-{i:02}"),
                false,
            ));
        }
        let factor = room_factor(&self.vms, &self.datastores);
        scale_datastores(&mut self.datastores, factor);
    }

    /// A new powered-on VM named `name` with one 10 GiB data disk, as someone creates one in
    /// vCenter while vrbulk runs; its id. The name must be new.
    pub fn add_vm(&mut self, name: &str) -> Result<String, String> {
        if self.vm_by_name(name).is_some() {
            return Err(format!("a VM named {name:?} exists already"));
        }
        let ds = self
            .source_datastores
            .first()
            .cloned()
            .ok_or("the source site has no datastore")?;
        let highest = self
            .vms
            .iter()
            .filter_map(|v| {
                v.vm.id
                    .split(':')
                    .nth(1)?
                    .strip_prefix("vm-")?
                    .parse::<u32>()
                    .ok()
            })
            .max()
            .unwrap_or(1000);
        let id = format!("VirtualMachine:vm-{}:{}", highest + 1, self.local_vc.id);
        let disk = DataDisk {
            n: 1,
            gib: 10,
            format: DiskFormat::Thin,
            nvme: false,
        };
        let disks = vec![vm_home(&id, name, &ds), data_disk(&id, name, &ds, &disk)];
        self.vms.push(SimVm {
            vm: VirtualMachine {
                id: id.clone(),
                name: name.to_string(),
                power_state: Some(PowerState::PoweredOn),
                connection_state: Some(ConnectionState::Connected),
                template: Some(false),
                managed_by_info: None,
                vr_privilege_granted: Some(true),
                disks: Some(disks),
            },
            kind: VmKind::Normal,
        });
        Ok(id)
    }

    pub fn vm(&self, id: &str) -> Option<&SimVm> {
        self.vms.iter().find(|v| v.vm.id == id)
    }

    pub fn vm_by_name(&self, name: &str) -> Option<&SimVm> {
        self.vms.iter().find(|v| v.vm.name == name)
    }

    /// The target datastore `id` on any pairing's site: its id names its vCenter, so it is
    /// one site's.
    pub fn datastore(&self, id: &str) -> Option<&Datastore> {
        self.sites().find_map(|s| s.datastore(id))
    }

    /// Pairing 1's target datastore `name` (names repeat across sites: ask a [`SiteRef`] for
    /// another site's).
    pub fn datastore_by_name(&self, name: &str) -> Option<&Datastore> {
        self.first_site().datastore_by_name(name)
    }

    /// The storage policy `id` on any pairing's target site.
    pub fn storage_policy(&self, id: &str) -> Option<&StoragePolicy> {
        self.sites().find_map(|s| s.storage_policy(id))
    }

    /// Pairing 1's target storage policy `name`.
    pub fn storage_policy_by_name(&self, name: &str) -> Option<&StoragePolicy> {
        self.first_site().storage_policy_by_name(name)
    }

    /// The target VR server `id` on any pairing's site.
    pub fn replication_server(&self, id: &str) -> Option<&ReplicationServerInfo> {
        self.sites().find_map(|s| s.replication_server(id))
    }

    /// Pairing 1's target site, from the inventory's own fields.
    pub fn first_site(&self) -> SiteRef<'_> {
        SiteRef {
            pairing_id: &self.pairing_id,
            remote_vc: &self.remote_vc,
            remote_vrms: &self.remote_vrms,
            datastores: &self.datastores,
            storage_policies: &self.storage_policies,
            replication_servers: &self.replication_servers,
        }
    }

    /// Every pairing's target site, pairing 1's first.
    pub fn sites(&self) -> impl Iterator<Item = SiteRef<'_>> {
        std::iter::once(self.first_site()).chain(self.extra_pairings.iter().map(TargetSite::site))
    }

    /// The target site of the pairing `pairing_id`.
    pub fn site(&self, pairing_id: &str) -> Option<SiteRef<'_>> {
        self.sites().find(|s| s.pairing_id == pairing_id)
    }

    /// The target site whose vCenter is `vc_id`: the pairing a replication to it belongs to.
    pub fn site_of_vc(&self, vc_id: &str) -> Option<SiteRef<'_>> {
        self.sites().find(|s| s.remote_vc.id == vc_id)
    }

    /// Adds target sites until the simulator serves `pairings` pairings (at least the first),
    /// each sized like pairing 1's: as many VR servers, datastores that hold every VM.
    pub fn add_pairings(&mut self, pairings: usize, seed: u64) {
        for n in self.extra_pairings.len() + 2..=pairings {
            let site = self.target_site(n, seed);
            self.extra_pairings.push(site);
        }
    }

    /// The target site of pairing `n` (2, 3, …), from a stream of its own.
    fn target_site(&self, n: usize, seed: u64) -> TargetSite {
        let mut rng = fastrand::Rng::with_seed(seed ^ 0x5173_0F5E_ED00_0000 ^ n as u64);
        let label = site_label(n);
        let pairing_id = uuid(&mut rng);
        let remote_vc = Site {
            id: uuid(&mut rng),
            name: format!("vc-{label}.corp.local"),
        };
        let remote_vrms = Site {
            id: uuid(&mut rng),
            name: format!("vrms-{label}.corp.local"),
        };
        let mut datastores = target_datastores(&remote_vc.id);
        let factor = room_factor(&self.vms, &datastores);
        scale_datastores(&mut datastores, factor);
        let storage_policies = self
            .storage_policies
            .iter()
            .map(|p| StoragePolicy {
                storage_policy_id: uuid(&mut rng),
                ..p.clone()
            })
            .collect();
        let replication_servers = (1..=self.replication_servers.len())
            .map(|i| {
                let u = uuid(&mut rng);
                replication_server(
                    format!("HmsRemoteHbrServer:HBRSRV-{u}:{}", remote_vc.id),
                    u,
                    format!("vrs-{label}-{i:02}"),
                    i == 1,
                )
            })
            .collect();
        TargetSite {
            pairing_id,
            remote_vc,
            remote_vrms,
            datastores,
            storage_policies,
            replication_servers,
        }
    }
}

/// `site-c` for pairing 2, `site-d` for 3, …: site A is the source, B pairing 1's target. Past
/// `site-z`, the number.
fn site_label(pairing: usize) -> String {
    match u8::try_from(pairing).ok().filter(|n| *n <= 25) {
        Some(n) => format!("site-{}", char::from(b'a' + n)),
        None => format!("site-{pairing}"),
    }
}

/// A target site's datastores, as pairing 1's were before they were sized for the VMs.
fn target_datastores(vc: &str) -> Vec<Datastore> {
    vec![
        datastore(
            vc,
            21,
            "ds-gold-01",
            8 * BYTES_PER_TIB,
            5 * BYTES_PER_TIB,
            FileSystemType::Vsan,
        ),
        datastore(
            vc,
            22,
            "ds-silver-01",
            6 * BYTES_PER_TIB,
            3 * BYTES_PER_TIB,
            FileSystemType::Vmfs,
        ),
        datastore(
            vc,
            23,
            "ds-bronze-01",
            10 * BYTES_PER_TIB,
            7 * BYTES_PER_TIB,
            FileSystemType::Nfs41,
        ),
        // Nearly full: every configure onto it fails in the task, not at submit time, as a
        // real VRMS only finds out when it creates the replica disks.
        datastore(
            vc,
            24,
            FULL_DATASTORE,
            2 * BYTES_PER_TIB,
            BYTES_PER_GIB * 12 / 10,
            FileSystemType::Vmfs,
        ),
    ]
}

/// How many times their size the healthy `datastores` must be for the smallest to hold every
/// one of `vms` with a quarter to spare.
fn room_factor(vms: &[SimVm], datastores: &[Datastore]) -> i64 {
    let all: i64 = vms
        .iter()
        .flat_map(|v| v.disks())
        .filter_map(|d| d.capacity)
        .sum::<i64>()
        * 1024;
    let smallest = datastores
        .iter()
        .filter(|d| d.name != FULL_DATASTORE)
        .filter_map(|d| d.free_space)
        .min()
        .unwrap_or(1)
        .max(1);
    ((all + all / 4 + smallest - 1) / smallest).max(1)
}

/// Scales the healthy datastores alike, so that their order by size stays what it was.
fn scale_datastores(datastores: &mut [Datastore], factor: i64) {
    for ds in datastores.iter_mut().filter(|d| d.name != FULL_DATASTORE) {
        ds.free_space = ds.free_space.map(|f| f * factor);
        ds.capacity = ds.capacity.map(|c| c * factor);
    }
}

/// A random (version 4 shaped) UUID from the seeded generator, so ids repeat with the seed.
pub(crate) fn uuid(rng: &mut fastrand::Rng) -> String {
    let mut b = [0u8; 16];
    rng.fill(&mut b);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// Ordinary names first (`app-001`, with some `db-`/`web-`), the five special VMs spread in.
fn vm_names(total: usize) -> Vec<(String, VmKind)> {
    let specials = [
        (TEMPLATE_VM, VmKind::Template),
        (NVME_VM, VmKind::UnsupportedDisk),
        (REPLICATED_VM, VmKind::AlreadyReplicated),
        (POWERED_OFF_VM, VmKind::PoweredOff),
        (UNUSUAL_NAME_VM, VmKind::UnusualName),
    ];
    let total = total.max(specials.len());
    let mut names: Vec<(String, VmKind)> = (1..=total - specials.len())
        .map(|i| {
            let prefix = match i % 10 {
                3 => "db",
                7 => "web",
                _ => "app",
            };
            (format!("{prefix}-{i:03}"), VmKind::Normal)
        })
        .collect();
    for (k, (name, kind)) in specials.iter().enumerate() {
        let at = ((k + 1) * total / (specials.len() + 1)).min(names.len());
        names.insert(at, ((*name).to_string(), *kind));
    }
    names
}

fn datastore(
    vc: &str,
    n: u32,
    name: &str,
    capacity: i64,
    free: i64,
    fs: FileSystemType,
) -> Datastore {
    Datastore {
        id: format!("Datastore:datastore-{n}:{vc}"),
        name: name.into(),
        parent: Some(format!("Folder:group-s{}:{vc}", 5)),
        parent_name: Some("datastore".into()),
        capacity: Some(capacity),
        free_space: Some(free),
        file_system_type: Some(fs),
        maintenance_mode: Some("normal".into()),
        overall_status: Some(OverallStatus::Green),
        accessible: Some(true),
        kind: Some(DatastoreType::Datastore),
        nkp_supported: Some(true),
        path: Some(format!("/vmfs/volumes/{name}")),
    }
}

fn replication_server(
    id: String,
    uuid: String,
    name: String,
    embedded: bool,
) -> ReplicationServerInfo {
    ReplicationServerInfo {
        id,
        replication_count: Some(0),
        connected: Some(true),
        decommissioned: Some(false),
        internally_managed: Some(embedded),
        uuid: Some(uuid),
        hostname: Some(format!("{name}.corp.local")),
        configuration_url: Some(format!("https://{name}.corp.local:5480")),
        name: Some(name),
        fault: None,
    }
}

fn vm_home(vm_id: &str, vm_name: &str, ds: &Datastore) -> VmDisk {
    VmDisk {
        vm_id: vm_id.into(),
        device_key: Some(VM_HOME_DEVICE_KEY),
        is_vm_home: Some(true),
        encrypted: Some(false),
        // KiB, like every VmDisk capacity in the spec.
        capacity: Some(8 * 1024),
        source_disk_format: None,
        source_path: Some(DatastorePathData {
            datastore_id: ds.id.clone(),
            datastore_name: Some(ds.name.clone()),
            path: Some(format!("{vm_name}/")),
            filename: Some(format!("{vm_name}.vmx")),
        }),
        source_storage_policy_name: None,
        source_storage_policy_id: None,
        label: Some("VM home".into()),
        controller_key: None,
        controller_label: None,
        supported_for_replication: Some(true),
    }
}

/// The sizes of a VM's `n` data disks in GiB, after the VM's size class (see the module doc).
fn disk_sizes(rng: &mut fastrand::Rng, n: usize) -> Vec<i64> {
    const SMALL: [i64; 4] = [10, 20, 30, 40];
    const MEDIUM: [i64; 5] = [60, 80, 100, 150, 200];
    const LARGE: [i64; 3] = [500, 750, 1000];
    let class = rng.u32(0..10);
    (0..n)
        .map(|i| {
            let sizes: &[i64] = match class {
                0..=5 => &SMALL,
                6..=8 => &MEDIUM,
                _ if i == 0 => &LARGE,
                _ => &MEDIUM,
            };
            sizes[rng.usize(0..sizes.len())]
        })
        .collect()
}

/// What sets one data disk apart: its number on the VM (from 1), size, format, controller.
struct DataDisk {
    n: usize,
    gib: i64,
    format: DiskFormat,
    nvme: bool,
}

fn data_disk(vm_id: &str, vm_name: &str, ds: &Datastore, disk: &DataDisk) -> VmDisk {
    let DataDisk {
        n,
        gib,
        format,
        nvme,
    } = *disk;
    let (device_key, controller_key, controller_label) = if nvme {
        (31000, 31000, "NVME controller 0")
    } else {
        (2000 + n as i32 - 1, 1000, "SCSI controller 0")
    };
    let filename = if n == 1 {
        format!("{vm_name}.vmdk")
    } else {
        format!("{vm_name}_{}.vmdk", n - 1)
    };
    VmDisk {
        vm_id: vm_id.into(),
        device_key: Some(device_key),
        is_vm_home: Some(false),
        encrypted: Some(false),
        capacity: Some(gib * KIB_PER_GIB),
        source_disk_format: Some(format.as_str().to_string()),
        source_path: Some(DatastorePathData {
            datastore_id: ds.id.clone(),
            datastore_name: Some(ds.name.clone()),
            path: Some(format!("{vm_name}/")),
            filename: Some(filename),
        }),
        source_storage_policy_name: Some("Datastore Default".into()),
        source_storage_policy_id: None,
        label: Some(format!("Hard disk {n}")),
        controller_key: Some(controller_key),
        controller_label: Some(controller_label.into()),
        supported_for_replication: Some(!nvme),
    }
}

/// `legacy-erp-01` is protected before any test starts.
fn legacy_replication(rng: &mut fastrand::Rng, inv: &Inventory) -> Option<ReplicationInfo> {
    let vm = inv.vm_by_name(REPLICATED_VM)?;
    let server = inv.replication_servers.first()?;
    Some(protected(rng, inv, &vm.vm.id, &vm.vm.name, server))
}

impl Inventory {
    /// Replications of VMs outside this inventory (`elsewhere-0001`, …): `per_server[i]` on
    /// the `i`-th target VR server. They count against the server's and the appliance's limits
    /// and are listed like any other, as on an appliance that already protects other VMs.
    pub fn add_replications_elsewhere(&mut self, per_server: &[usize], seed: u64) {
        let mut rng = fastrand::Rng::with_seed(seed ^ 0xE15E_3E7E);
        let mut added = Vec::new();
        for (server, &count) in self.replication_servers.iter().zip(per_server) {
            for _ in 0..count {
                let n = added.len() + 1;
                let vm_id = format!("VirtualMachine:vm-{}:{}", 900_000 + n, self.local_vc.id);
                let name = format!("elsewhere-{n:04}");
                added.push(protected(&mut rng, self, &vm_id, &name, server));
            }
        }
        self.replications.extend(added);
    }
}

/// A replication of `vm_id` onto `server`, configured and synced long ago.
fn protected(
    rng: &mut fastrand::Rng,
    inv: &Inventory,
    vm_id: &str,
    vm_name: &str,
    server: &ReplicationServerInfo,
) -> ReplicationInfo {
    ReplicationInfo {
        id: format!("GID-{}", uuid(rng)),
        name: Some(vm_name.to_string()),
        vm_id: Some(vm_id.to_string()),
        source_site_name: Some(inv.local_vc.name.clone()),
        source_vc_id: Some(inv.local_vc.id.clone()),
        target_site_name: Some(inv.remote_vc.name.clone()),
        target_vc_id: Some(inv.remote_vc.id.clone()),
        status: Some(crate::vr::model::CompoundReplicationStatus {
            status: Some(ReplicationStatus::Ok),
            rpo_violation: Some(false),
        }),
        rpo: Some(60),
        kind: Some(ReplicationType::VcToVc),
        replication_server_name: server.name.clone(),
        configuration_state: Some(ConfigurationState::Ok),
        configuration_error: None,
        recovery_state: Some(RecoveryState::NotStarted),
        target_replication_server_uuid: server.uuid.clone(),
        // A fixed instant (2025-01-01T00:00:00Z) keeps the inventory a pure function of the seed.
        last_sync_time: 1_735_689_600_000,
        quiescing_enabled: Some(false),
        network_compression_enabled: Some(true),
        encryption_enabled: Some(false),
        auto_replicate_new_disks_enabled: Some(false),
        mpit_enabled: Some(false),
        ..ReplicationInfo::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disk_sizes_mix_small_medium_and_large_vms() {
        let inv = Inventory::generate(300, 1);
        let gib =
            |v: &SimVm| v.disks().iter().filter_map(|d| d.capacity).sum::<i64>() / KIB_PER_GIB;
        let sizes: Vec<i64> = inv.vms.iter().map(gib).collect();
        let small = sizes.iter().filter(|s| **s <= 120).count();
        let large = sizes.iter().filter(|s| **s >= 500).count();
        assert!((120..=240).contains(&small), "{small} small of 300");
        assert!((10..=60).contains(&large), "{large} large of 300");
        assert!(sizes.iter().all(|s| *s <= 1400), "{sizes:?}");
    }

    #[test]
    fn same_seed_same_world_and_special_vms_present() {
        let a = Inventory::generate(40, 7);
        let b = Inventory::generate(40, 7);
        assert_eq!(
            serde_json::to_string(&a).unwrap(),
            serde_json::to_string(&b).unwrap()
        );
        assert_eq!(a.vms.len(), 40);
        for name in [
            TEMPLATE_VM,
            NVME_VM,
            REPLICATED_VM,
            POWERED_OFF_VM,
            UNUSUAL_NAME_VM,
        ] {
            assert!(a.vm_by_name(name).is_some(), "{name}");
        }
        let c = Inventory::generate(40, 8);
        assert_ne!(a.pairing_id, c.pairing_id);
    }

    #[test]
    fn ids_are_unique_and_shaped_like_the_spec() {
        let inv = Inventory::generate(250, 1);
        let mut ids: Vec<_> = inv.vms.iter().map(|v| v.vm.id.clone()).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), 250);
        let mut names: Vec<_> = inv.vms.iter().map(|v| v.vm.name.clone()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), 250);
        assert!(ids[0].starts_with("VirtualMachine:vm-"));
        assert!(ids[0].ends_with(&inv.local_vc.id));
        for v in &inv.vms {
            let disks = v.disks();
            assert!(disks[0].is_vm_home());
            assert!((2..=4).contains(&disks.len()));
        }
    }
}
