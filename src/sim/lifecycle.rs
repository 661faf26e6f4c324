//! The life of a replication over time: `CONFIGURING → INITIAL_FULL_SYNC → OK`, with the
//! detours the configuration asks for (`NOT_ACTIVE` while its VM is powered off, `ERROR` after
//! configuration, RPO violation later), and the replication link the syncs share.
//!
//! Nothing runs in the background. [`World::advance`] brings the world from the instant it was
//! last looked at up to now, one event at a time (a task ends, a sync ends): between two events
//! every sync on the link moves at the same constant rate, so progress is integrated piecewise
//! and a sync that starts or ends changes the others' rates from exactly that instant.
//!
//! Neighbours: `replication` says what a record looks like at an instant, `link` how fast a sync
//! goes, `operations` what a day-2 operation does when its task ends.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::inventory::{uuid, Inventory, SimVm, Site};
use super::link::LinkModel;
use super::operations;
use super::replication::{Fault, ReplicaDisk, Replications, SimReplication, Transfer};
use super::state::{epoch_ms, Refusal, Work, World};
use super::stats::{ConfigureFailure, Moment, ReplicationTimeline};
use super::validate::{AcceptedDisk, AcceptedSpec};
use super::SimConfig;
use crate::vr::model::{
    Datastore, PowerState, RecoveryState, ReplicationInfo, ReplicationServerInfo, ReplicationType,
    Task, TaskError,
};

/// The sync model's settings and the world's clock.
#[derive(Debug, Clone)]
pub(crate) struct Life {
    pub link: LinkModel,
    /// Simulated seconds per real second (non-negative; 0 stops every sync).
    pub scale: f64,
    pub error_rate: f64,
    pub rpo_violation_rate: f64,
    pub seed: u64,
    /// The simulator's start, the origin of the world's clock, and the epoch time of it.
    started: Instant,
    started_ms: i64,
    /// Seconds since `started` up to which the world has been advanced.
    pub clock: f64,
    /// The same instant as an `Instant`.
    pub now: Instant,
    /// How far a test has moved the world ahead of the wall clock ([`World::skip`]).
    pub ahead: Duration,
}

impl Life {
    pub fn new(cfg: &SimConfig) -> Life {
        let now = Instant::now();
        let finite = |x: f64| if x.is_finite() { x } else { 0.0 };
        Life {
            link: cfg.link,
            scale: finite(cfg.sync_time_scale).max(0.0),
            error_rate: finite(cfg.replication_error_rate),
            rpo_violation_rate: finite(cfg.rpo_violation_rate),
            seed: cfg.seed,
            started: now,
            started_ms: epoch_ms(),
            clock: 0.0,
            now,
            ahead: Duration::ZERO,
        }
    }

    fn secs(&self, now: Instant) -> f64 {
        now.saturating_duration_since(self.started).as_secs_f64()
    }

    /// `t` on the world's clock as milliseconds since the epoch.
    pub fn epoch_ms(&self, t: f64) -> i64 {
        self.started_ms + (t * 1000.0) as i64
    }

    pub fn moment(&self, t: f64) -> Moment {
        Moment {
            at_ms: self.epoch_ms(t),
            sim_ms: (t * self.scale * 1000.0) as u64,
        }
    }

    /// Bytes per real second for each of `n` syncs on the link.
    fn rate(&self, n: usize) -> f64 {
        self.link.per_sync_bytes_per_second(n) * self.scale
    }

    /// Real seconds until `minutes` of simulated time have passed (never, at scale 0).
    pub fn real_seconds(&self, minutes: f64) -> f64 {
        if self.scale > 0.0 {
            minutes * 60.0 / self.scale
        } else {
            f64::INFINITY
        }
    }

    /// What becomes of the `attempt`-th configuration of `vm_id`: decided from the seed and the
    /// VM alone, so that the same VMs fail whatever order a client configures them in.
    fn fate(&self, vm_id: &str, attempt: u64) -> Fate {
        let mut rng = fastrand::Rng::with_seed(
            self.seed ^ fnv1a(vm_id) ^ attempt.wrapping_mul(0x9E37_79B9_7F4A_7C15),
        );
        // Every draw is made whatever the rates, so that one rate does not shift the other.
        let error = rng.f64() < self.error_rate;
        let configuration = rng.bool();
        let rpo_violation = rng.f64() < self.rpo_violation_rate;
        Fate {
            fault: error.then_some(if configuration {
                FaultKind::Configuration
            } else {
                FaultKind::Group
            }),
            rpo_violation,
        }
    }
}

struct Fate {
    fault: Option<FaultKind>,
    rpo_violation: bool,
}

#[derive(Debug, Clone, Copy)]
enum FaultKind {
    Configuration,
    Group,
}

/// The next thing that changes the world.
enum Event {
    TaskEnds(usize),
    SyncEnds(String),
}

/// Moves the inventory's replications (those that exist before any client comes) into records:
/// configured, synced long ago, every supported disk replicated onto the first target datastore.
pub(crate) fn from_inventory(inv: &mut Inventory) -> Replications {
    let mut all = Replications::default();
    let datastore = inv
        .datastores
        .first()
        .map(|d| d.id.clone())
        .unwrap_or_default();
    for info in std::mem::take(&mut inv.replications) {
        let vm_id = info.vm_id.clone().unwrap_or_default();
        let vm = inv.vm(&vm_id);
        let disks = vm
            .map(|v| {
                v.disks()
                    .iter()
                    .filter_map(|d| {
                        Some(ReplicaDisk {
                            device_key: d.device_key?,
                            enabled: d.is_supported(),
                            datastore_id: datastore.clone(),
                            storage_policy_id: None,
                            bytes: kib_to_bytes(d.capacity),
                        })
                    })
                    .collect()
            })
            .unwrap_or_default();
        all.insert(SimReplication {
            vm_name: vm.map(|v| v.vm.name.clone()).unwrap_or_default(),
            powered_on: vm.is_none_or(|v| v.vm.power_state != Some(PowerState::PoweredOff)),
            vm_id,
            info,
            disks,
            configuring: None,
            operation: None,
            paused: false,
            fault: None,
            transfer: None,
            rpo_fate: false,
            rpo_violated_from: None,
        });
    }
    all
}

/// The replica disks a validated spec asks for, each sized after the VM's own disk.
pub(crate) fn replica_disks(vm: Option<&SimVm>, disks: &[AcceptedDisk]) -> Vec<ReplicaDisk> {
    disks
        .iter()
        .map(|d| ReplicaDisk {
            device_key: d.device_key,
            enabled: d.enabled,
            datastore_id: d.datastore_id.clone(),
            storage_policy_id: d.storage_policy_id.clone(),
            bytes: kib_to_bytes(
                vm.and_then(|v| v.disk(d.device_key))
                    .and_then(|x| x.capacity),
            ),
        })
        .collect()
}

/// The spec's `VmDisk.capacity` (KiB) in bytes.
pub(crate) fn kib_to_bytes(kib: Option<i64>) -> u64 {
    u64::try_from(kib.unwrap_or_default())
        .unwrap_or_default()
        .saturating_mul(1024)
}

impl World {
    /// The instant the world stands at when it is looked at: the wall clock's, plus whatever a
    /// test has skipped.
    pub(crate) fn present(&self) -> Instant {
        Instant::now() + self.life.ahead
    }

    /// Moves the world `d` ahead of the wall clock, and brings it there: what would have happened
    /// in `d` (tasks ending, syncs copying, RPOs passing, sessions ageing) has happened.
    pub(crate) fn skip(&mut self, d: Duration) {
        self.life.ahead += d;
        self.advance(self.present());
    }

    /// Brings the world up to `now`, event by event.
    pub(crate) fn advance(&mut self, now: Instant) {
        if now <= self.life.now {
            return;
        }
        self.life.now = now;
        let target = self.life.secs(now);
        loop {
            let n = self.replications.iter().filter(|r| r.on_link()).count();
            let rate = self.life.rate(n);
            let next = self.next_event(rate).filter(|(t, _)| *t <= target);
            let Some((t, event)) = next else {
                self.flow(rate, target - self.life.clock);
                self.life.clock = self.life.clock.max(target);
                return;
            };
            self.flow(rate, t - self.life.clock);
            self.life.clock = self.life.clock.max(t);
            match event {
                Event::TaskEnds(index) => self.end_task(index),
                Event::SyncEnds(id) => self.end_transfer(&id),
            }
            self.note_link();
        }
    }

    /// The earliest task end or sync end, on the world's clock (a task first on a tie).
    fn next_event(&self, rate: f64) -> Option<(f64, Event)> {
        let clock = self.life.clock;
        let task = self
            .pending
            .iter()
            .filter_map(|i| Some((self.task_span(self.task_at(*i)?).1, *i)))
            .min_by(|a, b| a.0.total_cmp(&b.0));
        let sync = self
            .replications
            .iter()
            .filter(|r| r.on_link())
            .filter_map(|r| {
                let left = r.transfer.as_ref()?.remaining();
                let t = if left <= 0.0 {
                    clock
                } else if rate > 0.0 {
                    clock + left / rate
                } else {
                    return None;
                };
                Some((t, r.info.id.as_str()))
            })
            .min_by(|a, b| a.0.total_cmp(&b.0));
        match (task, sync) {
            (Some((tt, i)), Some((ts, _))) if tt <= ts => Some((tt, Event::TaskEnds(i))),
            (_, Some((ts, id))) => Some((ts, Event::SyncEnds(id.to_string()))),
            (Some((tt, i)), None) => Some((tt, Event::TaskEnds(i))),
            (None, None) => None,
        }
    }

    /// Every sync on the link copies `rate × dt` bytes.
    fn flow(&mut self, rate: f64, dt: f64) {
        if dt <= 0.0 || rate <= 0.0 {
            return;
        }
        for r in self.replications.iter_mut().filter(|r| r.on_link()) {
            if let Some(t) = &mut r.transfer {
                t.done = (t.done + rate * dt).min(t.total);
            }
        }
    }

    /// Marks the syncs that have just gone onto the link as started, and keeps the peak.
    pub(crate) fn note_link(&mut self) {
        let clock = self.life.clock;
        let mut initial = 0;
        let mut started = Vec::new();
        for r in self.replications.iter_mut().filter(|r| r.on_link()) {
            let Some(t) = &mut r.transfer else { continue };
            if t.started.is_none() {
                t.started = Some(clock);
                if t.initial {
                    started.push(r.info.id.clone());
                }
            }
            initial += usize::from(t.initial);
        }
        let moment = self.moment(clock);
        for id in started {
            if let Some(line) = self.stats.replications.get_mut(&id) {
                line.sync_started = Some(moment);
            }
        }
        self.stats.peak_initial_syncs = self.stats.peak_initial_syncs.max(initial);
    }

    fn end_task(&mut self, index: usize) {
        self.pending.remove(&index);
        let Some(task) = self.task_at(index) else {
            return;
        };
        let id = task.replication_id.clone();
        match &task.work {
            Work::Configure {
                failure: Some(failure),
            } => {
                let message = failure.message.clone();
                // Rolled back: the group the running task had created is gone, the VM free.
                if let Some(r) = self
                    .replications
                    .get(&id)
                    .filter(|r| r.configuring == Some(index))
                {
                    self.stats.configure_failures.push(ConfigureFailure {
                        vm_id: r.vm_id.clone(),
                        vm_name: r.vm_name.clone(),
                        server: r.info.replication_server_name.clone(),
                        message,
                    });
                    self.replications.remove(&id);
                }
            }
            Work::Configure { failure: None } => self.configured(&id, index),
            Work::Operation(op) => {
                let op = op.clone();
                operations::apply(self, &id, &op);
            }
        }
    }

    /// The configure task `index` has succeeded: the replication starts its initial full sync
    /// (at once, or when its VM is powered on), or meets the fault its fate holds.
    fn configured(&mut self, id: &str, index: usize) {
        let Some(task) = self.task_at(index) else {
            return;
        };
        let submitted = self.moment(task.created_s);
        let configured = self.moment(self.life.clock);
        let Some(r) = self.replications.get(id) else {
            return;
        };
        let attempt = self
            .stats
            .configure_attempts
            .get(&r.vm_id)
            .copied()
            .unwrap_or(1);
        let fate = self.life.fate(&r.vm_id, attempt);
        let fault = fate.fault.map(|kind| fault(kind, r, &self.inv));
        let bytes = r.enabled_bytes();
        self.stats.count_configured(
            id,
            ReplicationTimeline {
                vm_id: r.vm_id.clone(),
                vm_name: r.vm_name.clone(),
                server: r.info.replication_server_name.clone(),
                bytes,
                submitted,
                configured,
                sync_started: None,
                sync_ended: None,
            },
        );
        if let Some(r) = self.replications.get_mut(id) {
            r.configuring = None;
            r.fault = fault;
            r.rpo_fate = fate.rpo_violation;
            r.transfer = Some(Transfer {
                initial: true,
                total: bytes as f64,
                done: 0.0,
                started: None,
            });
        }
    }

    /// A full sync has copied its last byte: the replica is consistent as of now.
    fn end_transfer(&mut self, id: &str) {
        let clock = self.life.clock;
        let moment = self.moment(clock);
        let last_sync_time = self.life.epoch_ms(clock);
        let scale = self.life.scale;
        let Some(r) = self.replications.get_mut(id) else {
            return;
        };
        let Some(t) = r.transfer.take() else { return };
        r.info.last_sync_time = last_sync_time;
        // Simulated seconds: the model's duration, as the RPO is in simulated minutes.
        r.info.last_sync_duration =
            Some(((clock - t.started.unwrap_or(clock)) * scale).round() as i64);
        r.info.last_sync_size = Some(t.total.round() as i64);
        if !t.initial {
            return;
        }
        if std::mem::take(&mut r.rpo_fate) {
            let rpo = r.info.rpo.unwrap_or(60) as f64;
            r.rpo_violated_from = Some(clock + self.life.real_seconds(rpo));
        }
        if let Some(line) = self.stats.replications.get_mut(id) {
            line.sync_ended = Some(moment);
        }
    }

    /// Accepts one validated configure spec: its task, and its replication (listed once the
    /// task runs). Decides now whether the task will fail (a target datastore without room for
    /// the disks placed on it).
    pub(crate) fn accept_configure(&mut self, spec: &AcceptedSpec) -> Task {
        let vm = self.inv.vm(&spec.vm_id);
        let vm_name = vm.map(|v| v.vm.name.clone()).unwrap_or_default();
        let powered_on = vm.is_none_or(|v| v.vm.power_state != Some(PowerState::PoweredOff));
        let disks = replica_disks(vm, &spec.disks);
        let server = self.target_server(spec).cloned();
        let failure = self
            .over_limit(server.as_ref())
            .or_else(|| self.no_room(&disks));
        let mut task = self.new_task(&spec.vm_id, &vm_name, "", Work::Configure { failure });
        let id = format!("GID-{}", uuid(&mut self.rng));
        task.replication_id = id.clone();
        let target = self.inv.site_of_vc(&spec.target_vc_id).map(|s| s.remote_vc);
        let info = self.new_replication_info(spec, &id, &vm_name, server.as_ref(), target);
        let answer = self.task_json(&task);
        let index = self.add_task(task);
        self.replications.insert(SimReplication {
            info,
            vm_id: spec.vm_id.clone(),
            vm_name,
            disks,
            configuring: Some(index),
            operation: None,
            powered_on,
            paused: false,
            fault: None,
            transfer: None,
            rpo_fate: false,
            rpo_violated_from: None,
        });
        self.stats.count_accepted(&spec.vm_id);
        answer
    }

    /// The target VR server a spec lands on: the one it names or, placed automatically, the
    /// usable one of its target site with the fewest replications.
    fn target_server(&self, spec: &AcceptedSpec) -> Option<&ReplicationServerInfo> {
        let servers = self.inv.site_of_vc(&spec.target_vc_id)?.replication_servers;
        match &spec.target_replication_server_id {
            Some(wanted) => servers.iter().find(|s| &s.id == wanted),
            None => servers
                .iter()
                .filter(|s| s.connected != Some(false) && s.decommissioned != Some(true))
                .min_by_key(|s| self.on_server(s)),
        }
    }

    /// Replications (configured or being configured) on the target VR server `s`.
    pub(crate) fn on_server(&self, s: &ReplicationServerInfo) -> usize {
        self.replications
            .iter()
            .filter(|r| r.info.target_replication_server_uuid.is_some())
            .filter(|r| r.info.target_replication_server_uuid == s.uuid)
            .count()
    }

    /// Why a configure fails for the appliance's limits: the appliance (every pairing's
    /// replications together) or the VR server it lands on already holds all it may.
    fn over_limit(&self, server: Option<&ReplicationServerInfo>) -> Option<Refusal> {
        if self.replications.iter().count() >= self.max_per_appliance {
            return Some(Refusal {
                message: format!(
                    "The maximum number of replications ({}) supported by the vSphere \
                     Replication Management Server has been reached",
                    self.max_per_appliance
                ),
                details: "Unconfigure replications that are no longer needed.",
            });
        }
        let s = server?;
        let max = self
            .max_by_server
            .get(&s.id)
            .copied()
            .unwrap_or(self.max_per_server);
        (self.on_server(s) >= max).then(|| Refusal {
            message: format!(
                "The vSphere Replication server '{}' has reached the maximum number of \
                 replications ({max})",
                s.name.as_deref().unwrap_or(&s.id),
            ),
            details: "Choose another vSphere Replication server, or register a new one.",
        })
    }

    /// What `ds` has free now: what it had at the start, less the replica disks on it (a
    /// replication being configured holds its room; one removed gives it back).
    pub(crate) fn free_space(&self, ds: &Datastore) -> i64 {
        let used: u64 = self
            .replications
            .iter()
            .flat_map(|r| &r.disks)
            .filter(|d| d.enabled && d.datastore_id == ds.id)
            .map(|d| d.bytes)
            .sum();
        ds.free_space
            .unwrap_or_default()
            .saturating_sub(i64::try_from(used).unwrap_or(i64::MAX))
    }

    /// A target site's datastores as its vCenter shows them now.
    pub(crate) fn datastores_now(&self, datastores: &[Datastore]) -> Vec<Datastore> {
        let mut all = datastores.to_vec();
        for ds in &mut all {
            ds.free_space = Some(self.free_space(ds));
        }
        all
    }

    /// Why a configure onto these datastores fails: the first datastore with less free space
    /// than the enabled disks placed on it need.
    fn no_room(&self, disks: &[ReplicaDisk]) -> Option<Refusal> {
        let mut needed: HashMap<&str, u64> = HashMap::new();
        for d in disks.iter().filter(|d| d.enabled) {
            *needed.entry(d.datastore_id.as_str()).or_default() += d.bytes;
        }
        // Datastore ids carry their vCenter's: a disk's id is on one site only.
        let mut every = self.inv.sites().flat_map(|s| s.datastores.iter());
        every.find_map(|ds| {
            let need = i64::try_from(needed.get(ds.id.as_str()).copied().unwrap_or_default())
                .unwrap_or(i64::MAX);
            let free = self.free_space(ds);
            (need > free).then(|| Refusal {
                message: format!(
                    "Insufficient disk space on datastore '{}': {} free, {} required",
                    ds.name,
                    crate::units::gib(free),
                    crate::units::gib(need)
                ),
                details: "Choose another target datastore or free up space on this one.",
            })
        })
    }

    /// The new replication's ids and settings (its status is a matter of time).
    fn new_replication_info(
        &self,
        spec: &AcceptedSpec,
        id: &str,
        vm_name: &str,
        server: Option<&ReplicationServerInfo>,
        target: Option<&Site>,
    ) -> ReplicationInfo {
        ReplicationInfo {
            id: id.to_string(),
            name: Some(vm_name.to_string()),
            vm_id: Some(spec.vm_id.clone()),
            source_site_name: Some(self.inv.local_vc.name.clone()),
            source_vc_id: Some(self.inv.local_vc.id.clone()),
            target_site_name: target.map(|t| t.name.clone()),
            target_vc_id: Some(spec.target_vc_id.clone()),
            rpo: Some(spec.rpo),
            kind: Some(ReplicationType::VcToVc),
            replication_server_name: server.and_then(|s| s.name.clone()),
            recovery_state: Some(RecoveryState::NotStarted),
            target_replication_server_uuid: server.and_then(|s| s.uuid.clone()),
            quiescing_enabled: Some(spec.quiesce),
            network_compression_enabled: Some(spec.network_compression),
            encryption_enabled: Some(spec.lwd_encryption),
            auto_replicate_new_disks_enabled: Some(spec.auto_replicate_new_disks),
            mpit_enabled: Some(spec.mpit_enabled),
            mpit_instances: spec.mpit_enabled.then_some(spec.mpit_instances).flatten(),
            mpit_days: spec
                .mpit_enabled
                .then_some(spec.mpit_days.or(Some(1)))
                .flatten(),
            ..ReplicationInfo::default()
        }
    }
}

/// The fault an appliance would report, in its words.
fn fault(kind: FaultKind, r: &SimReplication, inv: &Inventory) -> Fault {
    let vm = &r.vm_name;
    match kind {
        FaultKind::Configuration => {
            let datastore = r
                .disks
                .iter()
                .find(|d| d.enabled)
                .and_then(|d| inv.datastore(&d.datastore_id))
                .map_or("the target datastore", |d| d.name.as_str());
            let server = r
                .info
                .replication_server_name
                .as_deref()
                .unwrap_or("the target vSphere Replication server");
            Fault::Configuration(TaskError {
                message: Some(format!(
                    "Cannot access datastore '{datastore}' on the target site for virtual machine '{vm}'"
                )),
                details: Some(format!(
                    "The vSphere Replication server '{server}' cannot reach the datastore. Check the \
                     storage connectivity of its host, then reconfigure the replication."
                )),
            })
        }
        FaultKind::Group => {
            let host = fnv1a(&r.vm_id) % 4 + 1;
            Fault::Group(TaskError {
                message: Some(format!(
                    "No connection to VR Server for virtual machine '{vm}' on host \
                     'esx-0{host}.corp.local' in cluster 'Cluster-A' in 'Datacenter-A': Unknown"
                )),
                details: Some(
                    "The source host cannot reach the vSphere Replication server; replication \
                     of this virtual machine is stopped until the connection is restored."
                        .into(),
                ),
            })
        }
    }
}

/// FNV-1a: a hash that stays the same across Rust releases, unlike `DefaultHasher`'s promise.
fn fnv1a(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::sim::POWERED_OFF_VM;
    use crate::vr::model::{ConfigurationState, ReplicationStatus};

    /// Tasks that end at once, a link whose numbers are easy to follow.
    fn config(link: LinkModel) -> SimConfig {
        SimConfig {
            task_seconds: 0.0,
            link,
            ..SimConfig::default()
        }
    }

    fn link(bandwidth_mbps: f64, contention_threshold: u32) -> LinkModel {
        LinkModel {
            bandwidth_mbps,
            per_sync_ceiling_mbps: bandwidth_mbps,
            contention_threshold,
            contention_falloff: 1.0,
        }
    }

    /// What a valid configure spec for `vm_name` is reduced to: every supported disk enabled.
    fn spec(w: &World, vm_name: &str) -> AcceptedSpec {
        let vm = w.inv.vm_by_name(vm_name).unwrap();
        let ds = w.inv.datastore_by_name("ds-gold-01").unwrap();
        AcceptedSpec {
            vm_id: vm.vm.id.clone(),
            target_vc_id: w.inv.remote_vc.id.clone(),
            rpo: 60,
            quiesce: false,
            network_compression: true,
            lwd_encryption: false,
            auto_replicate_new_disks: false,
            mpit_enabled: false,
            mpit_instances: None,
            mpit_days: None,
            target_replication_server_id: None,
            disks: vm
                .disks()
                .iter()
                .map(|d| AcceptedDisk {
                    device_key: d.device_key.unwrap(),
                    enabled: d.is_supported(),
                    datastore_id: ds.id.clone(),
                    storage_policy_id: None,
                })
                .collect(),
        }
    }

    /// Configures `names` now; returns their replication ids.
    fn configure(w: &mut World, names: &[&str]) -> Vec<String> {
        names
            .iter()
            .map(|n| {
                let spec = spec(w, n);
                let task = w.accept_configure(&spec);
                task.result.unwrap()["replication_id"]
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect()
    }

    fn at(w: &mut World, t0: Instant, secs: f64) {
        w.advance(t0 + Duration::from_secs_f64(secs));
    }

    fn info(w: &World, id: &str) -> ReplicationInfo {
        w.replications().into_iter().find(|r| r.id == id).unwrap()
    }

    fn status(w: &World, id: &str) -> ReplicationStatus {
        info(w, id).status.unwrap().status.unwrap()
    }

    fn bytes(w: &World, vm_name: &str) -> f64 {
        let vm = w.inv.vm_by_name(vm_name).unwrap();
        vm.disks()
            .iter()
            .filter(|d| d.is_supported())
            .map(|d| kib_to_bytes(d.capacity) as f64)
            .sum()
    }

    #[test]
    fn two_syncs_share_the_link_until_one_ends_then_the_other_has_it_all() {
        let mut w = World::new(&config(link(100.0, 10)));
        let t0 = w.now();
        let (small, large) = {
            let (a, b) = (bytes(&w, "app-001"), bytes(&w, "app-002"));
            if a < b {
                (("app-001", a), ("app-002", b))
            } else {
                (("app-002", b), ("app-001", a))
            }
        };
        assert!(small.1 < large.1, "the test needs two sizes");
        let ids = configure(&mut w, &[small.0, large.0]);
        // 100 Mbit/s shared by two: 6.25 MB/s each, then 12.5 MB/s for the one left.
        let first_end = small.1 / 6.25e6;
        let second_end = first_end + (large.1 - small.1) / 12.5e6;

        at(&mut w, t0, first_end / 2.0);
        let p = info(&w, &ids[0]).sync_progress.unwrap();
        let expected = 6.25e6 * first_end / 2.0;
        assert!(
            (p.transferred_current.unwrap() as f64 - expected).abs() < 1e4,
            "{p:?} vs {expected}"
        );
        assert_eq!(p.transferred_total, Some(small.1 as i64));
        assert_eq!(status(&w, &ids[0]), ReplicationStatus::InitialFullSync);

        at(&mut w, t0, second_end + 1.0);
        for id in &ids {
            let r = info(&w, id);
            assert_eq!(
                r.status.as_ref().unwrap().status,
                Some(ReplicationStatus::Ok)
            );
            assert!(r.sync_progress.is_none());
            assert!(r.last_sync_time > 0);
        }
        let lines = &w.stats.replications;
        let ended = |id: &String| lines[id].sync_ended.unwrap().sim_ms as f64 / 1000.0;
        assert!(
            (ended(&ids[0]) - first_end).abs() < 0.01,
            "{}",
            ended(&ids[0])
        );
        assert!(
            (ended(&ids[1]) - second_end).abs() < 0.01,
            "{}",
            ended(&ids[1])
        );
        assert_eq!(lines[&ids[1]].bytes, large.1 as u64);
        assert_eq!(w.stats.peak_initial_syncs, 2);
    }

    #[test]
    fn past_the_threshold_every_sync_slows_down() {
        // K = 1: two syncs get 100 / (1 + 1) = 50 Mbit/s in all, 3.125 MB/s each.
        let mut w = World::new(&config(link(100.0, 1)));
        let t0 = w.now();
        let ids = configure(&mut w, &["app-001", "app-002"]);
        at(&mut w, t0, 100.0);
        for id in &ids {
            let done = info(&w, id)
                .sync_progress
                .unwrap()
                .transferred_current
                .unwrap();
            assert!((done as f64 - 3.125e8).abs() < 1e3, "{done}");
        }
    }

    #[test]
    fn a_ceiling_holds_a_lone_sync_and_the_time_scale_speeds_it_up() {
        let mut w = World::new(&SimConfig {
            sync_time_scale: 600.0,
            ..config(LinkModel {
                bandwidth_mbps: 1000.0,
                per_sync_ceiling_mbps: 200.0,
                contention_threshold: 10,
                contention_falloff: 1.0,
            })
        });
        let t0 = w.now();
        let ids = configure(&mut w, &["app-001"]);
        at(&mut w, t0, 1.0);
        // 200 Mbit/s for ten simulated minutes.
        let done = info(&w, &ids[0])
            .sync_progress
            .unwrap()
            .transferred_current
            .unwrap();
        assert!((done as f64 - 25e6 * 600.0).abs() < 1e4, "{done}");
    }

    #[test]
    fn a_powered_off_vm_is_not_active_and_syncs_once_powered_on() {
        let mut w = World::new(&config(link(100.0, 10)));
        let t0 = w.now();
        let ids = configure(&mut w, &[POWERED_OFF_VM, "app-001"]);
        at(&mut w, t0, 10.0);
        assert_eq!(status(&w, &ids[0]), ReplicationStatus::NotActive);
        let r = info(&w, &ids[0]);
        assert_eq!(r.sync_progress.unwrap().transferred_current, Some(0));
        assert_eq!(r.last_sync_time, 0);
        // Alone on the link, the other went at full speed.
        let done = info(&w, &ids[1])
            .sync_progress
            .unwrap()
            .transferred_current
            .unwrap();
        assert!((done as f64 - 12.5e7).abs() < 1e3, "{done}");
        assert!(w.stats.replications[&ids[0]].sync_started.is_none());

        w.set_power(POWERED_OFF_VM, true).unwrap();
        assert_eq!(status(&w, &ids[0]), ReplicationStatus::InitialFullSync);
        assert!(w.stats.replications[&ids[0]].sync_started.is_some());
        assert!(w.set_power("no-such-vm", true).is_err());
    }

    #[test]
    fn faults_strike_the_same_vms_whatever_the_order_of_configuration() {
        let names = [
            "app-001", "app-002", "app-004", "app-005", "app-006", "app-008",
        ];
        let faulted = |order: &[&str]| {
            let mut w = World::new(&SimConfig {
                replication_error_rate: 0.5,
                ..config(link(100.0, 10))
            });
            let t0 = w.now();
            configure(&mut w, order);
            at(&mut w, t0, 1.0);
            let mut out: Vec<(String, Option<ConfigurationState>)> = w
                .replications()
                .into_iter()
                .filter(|r| r.status.as_ref().unwrap().status == Some(ReplicationStatus::Error))
                .map(|r| (r.name.unwrap(), r.configuration_state))
                .collect();
            out.sort_by(|a, b| a.0.cmp(&b.0));
            out
        };
        let forward = faulted(&names);
        let mut reversed = names;
        reversed.reverse();
        assert_eq!(forward, faulted(&reversed));

        let mut w = World::new(&SimConfig {
            replication_error_rate: 1.0,
            ..config(link(100.0, 10))
        });
        let t0 = w.now();
        configure(&mut w, &names);
        at(&mut w, t0, 1.0);
        let all = w.replications();
        let configuration = all
            .iter()
            .filter(|r| r.configuration_state == Some(ConfigurationState::Error))
            .inspect(|r| assert!(r.configuration_error.is_some() && r.last_group_error.is_none()))
            .count();
        let group = all
            .iter()
            .filter(|r| r.last_group_error.is_some())
            .inspect(|r| assert_eq!(r.configuration_state, Some(ConfigurationState::Ok)))
            .count();
        assert_eq!(configuration + group, names.len());
        assert!(configuration > 0 && group > 0, "{configuration} / {group}");
        assert_eq!(
            w.stats.peak_initial_syncs, 0,
            "a faulted replication copies nothing"
        );
    }

    #[test]
    fn an_rpo_violation_comes_one_rpo_after_the_initial_sync() {
        // At 60x, an RPO of 60 minutes passes in 60 real seconds.
        let mut w = World::new(&SimConfig {
            rpo_violation_rate: 1.0,
            sync_time_scale: 60.0,
            ..config(link(100_000.0, 10))
        });
        let t0 = w.now();
        let ids = configure(&mut w, &["app-001"]);
        at(&mut w, t0, 1.0);
        assert_eq!(status(&w, &ids[0]), ReplicationStatus::Ok);
        let synced = w.stats.replications[&ids[0]].sync_ended.unwrap().at_ms;
        let synced_s = (synced - w.life.started_ms) as f64 / 1000.0;
        at(&mut w, t0, synced_s + 59.0);
        assert_eq!(status(&w, &ids[0]), ReplicationStatus::Ok);
        at(&mut w, t0, synced_s + 60.0 + 3.5);
        let r = info(&w, &ids[0]);
        let s = r.status.unwrap();
        assert_eq!(s.status, Some(ReplicationStatus::RpoViolation));
        assert_eq!(s.rpo_violation, Some(true));
        assert_eq!(r.current_rpo_violation, Some(3));
    }

    #[test]
    fn a_failed_configure_rolls_its_replication_back_when_its_task_ends() {
        let mut w = World::new(&SimConfig {
            task_seconds: 1.0,
            ..SimConfig::default()
        });
        let t0 = w.now();
        let mut s = spec(&w, "app-001");
        let full = w
            .inv
            .datastore_by_name(crate::sim::FULL_DATASTORE)
            .unwrap()
            .id
            .clone();
        for d in &mut s.disks {
            d.datastore_id = full.clone();
        }
        w.accept_configure(&s);
        assert_eq!(w.replications().len(), 1, "not listed while QUEUED");
        at(&mut w, t0, 0.5);
        assert_eq!(w.replications().len(), 2, "listed while RUNNING");
        at(&mut w, t0, 1.5);
        assert_eq!(w.replications().len(), 1, "only the inventory's is left");
        assert!(w.busy(&s.vm_id).is_none());
    }
    #[test]
    fn a_reconfigure_changes_what_the_sync_copies() {
        use crate::sim::operations::{apply, Operation};
        use crate::sim::validate::AcceptedReconfigure;

        let mut w = World::new(&config(link(100.0, 10)));
        let t0 = w.now();
        let vm = w
            .inv
            .vms
            .iter()
            .find(|v| v.kind == crate::sim::VmKind::Normal && v.disks().len() >= 3)
            .unwrap()
            .vm
            .name
            .clone();
        let ids = configure(&mut w, &[vm.as_str()]);
        at(&mut w, t0, 10.0);
        let before = info(&w, &ids[0]).sync_progress.unwrap();
        let mut spec = spec(&w, &vm);
        let dropped = spec.disks.last().unwrap().device_key;
        let dropped_bytes = kib_to_bytes(
            w.inv
                .vm_by_name(&vm)
                .unwrap()
                .disk(dropped)
                .unwrap()
                .capacity,
        );
        spec.disks.last_mut().unwrap().enabled = false;
        let reconfigure = |spec: &AcceptedSpec| {
            Operation::Reconfigure(Box::new(AcceptedReconfigure {
                rpo: 30,
                quiesce: None,
                network_compression: true,
                lwd_encryption: false,
                auto_replicate_new_disks: false,
                mpit_enabled: false,
                mpit_instances: None,
                mpit_days: None,
                target_replication_server_id: None,
                disks: spec.disks.clone(),
            }))
        };
        apply(&mut w, &ids[0], &reconfigure(&spec));
        let after = info(&w, &ids[0]);
        assert_eq!(after.rpo, Some(30));
        let p = after.sync_progress.unwrap();
        let total = before.transferred_total.unwrap() as u64;
        assert_eq!(p.transferred_total.unwrap() as u64, total - dropped_bytes);
        assert!(p.transferred_current < before.transferred_current);
        assert_eq!(w.stats.replications[&ids[0]].bytes, total - dropped_bytes);

        at(&mut w, t0, 1e6);
        assert_eq!(status(&w, &ids[0]), ReplicationStatus::Ok);
        // Enabled again: that disk alone is copied in a full sync of its own.
        spec.disks.last_mut().unwrap().enabled = true;
        apply(&mut w, &ids[0], &reconfigure(&spec));
        w.note_link();
        let r = info(&w, &ids[0]);
        assert_eq!(r.status.unwrap().status, Some(ReplicationStatus::FullSync));
        assert_eq!(
            r.sync_progress.unwrap().transferred_total,
            Some(dropped_bytes as i64)
        );
        assert_eq!(
            w.stats.peak_initial_syncs, 1,
            "a full sync is not an initial one"
        );
        at(&mut w, t0, 2e6);
        assert_eq!(status(&w, &ids[0]), ReplicationStatus::Ok);
    }
}
