//! The simulator's mutable state behind one lock: sessions (with their remote-site logins), tasks,
//! replications, counters and the fault knobs. Nothing runs in the background: whoever takes the
//! lock first brings the world up to the present (`lifecycle`'s `advance`), event by event, so
//! task progress, sync progress and every status are those of the instant of the request.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::error::{ApiError, SimError};
use super::inventory::{uuid, Inventory, SiteRef};
use super::lifecycle::Life;
use super::limiter::Limiter;
use super::operations::Operation;
use super::replication::{At, Replications};
use super::stats::{Moment, SimStats};
use super::SimConfig;
use crate::vr::model::{
    PowerState, ReplicationInfo, ReplicationServerInfo, Task, TaskError, TaskStatus,
};
use axum::http::StatusCode;
use base64::Engine as _;

/// How long `GET /tasks` keeps showing a task, unless a test shrinks it.
pub const DEFAULT_RECENT_TASK_WINDOW: Duration = Duration::from_secs(600);

/// Everything a handler needs; cheap to clone (one `Arc`).
#[derive(Clone)]
pub struct SimState {
    inner: Arc<Shared>,
}

struct Shared {
    cfg: SimConfig,
    world: Mutex<World>,
}

pub(crate) struct Session {
    pub user: String,
    /// When it logged in, on the world's clock: a skip ages it.
    pub created: Instant,
    /// pairing id -> the user logged in on that pairing's remote site.
    pub remote: HashMap<String, String>,
}

/// A task: a configure task, which creates its replication, or a day-2 operation's on one.
pub(crate) struct SimTask {
    pub id: String,
    pub vm_id: String,
    pub vm_name: String,
    pub replication_id: String,
    pub created: Instant,
    /// `created` on the world's clock: views and effects both use it, so that they agree on the
    /// instant the task ends.
    pub created_s: f64,
    pub queued_ms: i64,
    pub work: Work,
}

/// What a task does.
pub(crate) enum Work {
    /// Creates the replication; `Some(failure)`: ends in ERROR with it (and rolls it back).
    Configure {
        failure: Option<Refusal>,
    },
    Operation(Operation),
}

/// Why a configure task fails: its message, and the advice its details give.
#[derive(Debug, Clone)]
pub(crate) struct Refusal {
    pub message: String,
    pub details: &'static str,
}

/// Where a task is at a given instant.
pub(crate) struct TaskView {
    pub status: TaskStatus,
    pub progress: i32,
    pub start_ms: Option<i64>,
    pub complete_ms: Option<i64>,
}

/// Why a VM cannot be configured again.
pub(crate) enum Busy {
    Replicated(String),
    TaskInFlight(String),
}

pub(crate) struct World {
    pub inv: Inventory,
    pub sessions: HashMap<String, Session>,
    /// Every task, oldest first.
    tasks: Vec<SimTask>,
    task_by_id: HashMap<String, usize>,
    /// Indexes of the tasks that have not ended: their effects are still to come.
    pub(super) pending: BTreeSet<usize>,
    /// Every replication there is, the inventory's first, then in creation order.
    pub(super) replications: Replications,
    /// The sync model's settings and the world's clock.
    pub(super) life: Life,
    pub stats: SimStats,
    pub fail_next: VecDeque<StatusCode>,
    /// Answers for the next `POST /session` logins, before the credentials are looked at.
    pub fail_next_login: VecDeque<StatusCode>,
    pub fail_after_commit: usize,
    pub garble_after_commit: usize,
    limiter: Option<Limiter>,
    pub rng: fastrand::Rng,
    pub recent_window: Duration,
    pub task_seconds: f64,
    pub max_per_server: usize,
    /// Servers (by id) whose limit differs from `max_per_server`.
    pub max_by_server: HashMap<String, usize>,
    pub max_per_appliance: usize,
    /// The VR release the appliance presents.
    pub version: String,
    /// Every target site is unreachable: calls that need one answer 500 (see `handlers`).
    pub target_down: bool,
}

impl SimState {
    /// Builds the inventory from `cfg.vms` and `cfg.seed`, and the rate limiter from
    /// `cfg.limits`.
    pub fn new(cfg: SimConfig) -> SimState {
        let world = World::new(&cfg);
        SimState {
            inner: Arc::new(Shared {
                cfg,
                world: Mutex::new(world),
            }),
        }
    }

    pub fn config(&self) -> &SimConfig {
        &self.inner.cfg
    }

    /// The world, brought up to this instant.
    pub(crate) fn world(&self) -> MutexGuard<'_, World> {
        // A handler that panicked mid-update leaves counters at worst slightly off; keep serving.
        let mut w = self
            .inner
            .world
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let now = w.present();
        w.advance(now);
        w
    }

    /// Moves the simulator's clock `d` ahead of the wall clock: see [`super::Simulator::skip`].
    pub fn skip(&self, d: Duration) {
        self.world().skip(d);
    }

    /// Snapshot of the truth, replications as they are at this instant.
    pub fn inventory(&self) -> Inventory {
        let w = self.world();
        let mut inv = w.inv.clone();
        inv.replications = w.replications();
        inv.replication_servers =
            w.servers_with_counts(&inv.replication_servers, &inv.replications);
        for site in &mut inv.extra_pairings {
            site.replication_servers =
                w.servers_with_counts(&site.replication_servers, &inv.replications);
        }
        inv
    }

    /// Powers the VM (by id or name) on or off, as its owner would in vCenter. Its replication
    /// follows from this instant: a powered-off VM's is `NOT_ACTIVE` and copies nothing.
    pub fn set_power(&self, vm: &str, on: bool) -> Result<(), SimError> {
        self.world().set_power(vm, on)
    }

    pub fn stats(&self) -> SimStats {
        let w = self.world();
        let mut stats = w.stats.clone();
        if let Some(l) = &w.limiter {
            stats.limiter = l.stats.clone();
        }
        stats
    }

    /// The next `n` API calls (not `/__sim`, not `POST /session`) answer `status`.
    pub fn fail_next(&self, n: usize, status: u16) {
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut w = self.world();
        w.fail_next.extend(std::iter::repeat_n(status, n));
    }

    /// The next `n` logins (`POST /session`) answer `status`, as an appliance whose SSO is
    /// restarting does.
    pub fn fail_next_login(&self, n: usize, status: u16) {
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
        let mut w = self.world();
        w.fail_next_login.extend(std::iter::repeat_n(status, n));
    }

    /// The next `n` configure calls create their tasks, then answer 500 anyway.
    pub fn fail_next_configure_after_commit(&self, n: usize) {
        self.world().fail_after_commit += n;
    }

    /// The next `n` configure calls create their tasks, then answer 202 with a body that does
    /// not decode as the spec's task list.
    pub fn garble_next_configure_answer(&self, n: usize) {
        self.world().garble_after_commit += n;
    }

    /// Forgets every session (and with them every remote-site login).
    pub fn expire_sessions(&self) {
        self.world().sessions.clear();
    }

    /// Takes every target site down (`true`) or brings it back: while down, the appliance still
    /// answers for its own site, and every call that needs the remote one gets a 500 naming it.
    pub fn set_target_down(&self, down: bool) {
        self.world().target_down = down;
    }

    /// How long `GET /tasks` lists a task after it was created (default 10 minutes).
    pub fn set_recent_task_window(&self, window: Duration) {
        self.world().recent_window = window;
    }

    /// Applies what precedes every API call: latency, the rate limiter, injected failures and
    /// the session check. Returns the caller's session id (`None` for login).
    pub(crate) async fn admit(
        &self,
        op: &str,
        ip: &str,
        session_header: Option<&str>,
    ) -> Result<Option<String>, ApiError> {
        let cfg = &self.inner.cfg;
        if cfg.latency_ms > 0 {
            tokio::time::sleep(Duration::from_millis(cfg.latency_ms)).await;
        }
        if let Some(limiter) = &mut self.world().limiter {
            limiter.check(tokio::time::Instant::now(), ip, session_header)?;
        }
        let is_login = op == "login";
        let mut w = self.world();
        if !is_login {
            if let Some(status) = w.fail_next.pop_front() {
                return Err(ApiError::injected(status));
            }
            if cfg.fail_rate > 0.0 && w.rng.f64() < cfg.fail_rate {
                let status = if w.rng.bool() {
                    StatusCode::INTERNAL_SERVER_ERROR
                } else {
                    StatusCode::SERVICE_UNAVAILABLE
                };
                return Err(ApiError::injected(status));
            }
        }
        if is_login {
            return match w.fail_next_login.pop_front() {
                Some(status) => Err(ApiError::injected(status)),
                None => Ok(None),
            };
        }
        let Some(id) = session_header else {
            return Err(ApiError::unauthorized(
                "missing x-dr-session header: log in with POST /session first",
            ));
        };
        let expired = match w.sessions.get(id) {
            None => {
                return Err(ApiError::unauthorized(
                    "the session is not authenticated or has expired: log in again",
                ))
            }
            Some(s) => cfg
                .session_ttl
                .is_some_and(|ttl| w.now().saturating_duration_since(s.created) > ttl),
        };
        if expired {
            w.sessions.remove(id);
            return Err(ApiError::unauthorized(
                "the session has expired: log in again",
            ));
        }
        Ok(Some(id.to_string()))
    }

    pub(crate) fn count_call(&self, op: &str) {
        self.world().stats.count_call(op);
    }

    /// Counts the answer's status and keeps the request in the journal.
    pub(crate) fn record(&self, received: super::stats::Received) {
        let mut w = self.world();
        w.stats.count_status(received.status);
        w.stats.journal.push(received);
    }
}

impl World {
    /// The world at the simulator's start: the inventory from `cfg.vms`, `cfg.seed` and
    /// `cfg.pairings`, its replications, the rate limiter from `cfg.limits`, the clock at 0.
    pub(crate) fn new(cfg: &SimConfig) -> World {
        let mut inv = Inventory::generate(cfg.vms, cfg.seed);
        inv.add_pairings(cfg.pairings, cfg.seed);
        inv.add_replications_elsewhere(&cfg.replications_elsewhere, cfg.seed);
        let replications = super::lifecycle::from_inventory(&mut inv);
        let max_by_server = inv
            .replication_servers
            .iter()
            .zip(&cfg.max_replications_by_server)
            .map(|(s, &max)| (s.id.clone(), max))
            .collect();
        World {
            inv,
            sessions: HashMap::new(),
            tasks: Vec::new(),
            task_by_id: HashMap::new(),
            pending: BTreeSet::new(),
            replications,
            life: Life::new(cfg),
            stats: SimStats::default(),
            fail_next: VecDeque::new(),
            fail_next_login: VecDeque::new(),
            fail_after_commit: 0,
            garble_after_commit: 0,
            limiter: cfg.limits.map(Limiter::new),
            // Distinct from the inventory's stream so that adding a VM does not shift ids
            // handed out at run time, and vice versa.
            rng: fastrand::Rng::with_seed(cfg.seed ^ 0x5EED_0F5E_5510_7500),
            recent_window: DEFAULT_RECENT_TASK_WINDOW,
            task_seconds: cfg.task_seconds.max(0.0),
            max_per_server: cfg.max_replications_per_server,
            max_by_server,
            max_per_appliance: cfg.max_replications_per_appliance,
            version: cfg.appliance_version.clone(),
            target_down: cfg.target_down,
        }
    }

    /// Powers the VM (by id or name) on or off, from the instant the world is at.
    pub(crate) fn set_power(&mut self, vm: &str, on: bool) -> Result<(), SimError> {
        let Some(found) = self
            .inv
            .vms
            .iter_mut()
            .find(|v| v.vm.id == vm || v.vm.name == vm)
        else {
            return Err(SimError::UnknownVm { vm: vm.to_string() });
        };
        found.vm.power_state = Some(if on {
            PowerState::PoweredOn
        } else {
            PowerState::PoweredOff
        });
        let id = found.vm.id.clone();
        if let Some(r) = self.replications.of_vm_mut(&id) {
            r.powered_on = on;
        }
        self.note_link();
        Ok(())
    }

    pub fn new_session(&mut self, user: &str) -> String {
        let id = uuid(&mut self.rng);
        // Real session ids are base64 of a UUID string; clients must treat them as opaque.
        let sid = base64::engine::general_purpose::STANDARD.encode(id);
        self.sessions.insert(
            sid.clone(),
            Session {
                user: user.to_string(),
                created: self.life.now,
                remote: HashMap::new(),
            },
        );
        self.stats.logins += 1;
        sid
    }

    /// The instant the world has been brought up to: handlers judge tasks and replications as
    /// of this instant, so that what they answer agrees with the effects already applied.
    pub fn now(&self) -> Instant {
        self.life.now
    }

    /// When `task` starts running and when it ends, on the world's clock.
    pub(super) fn task_span(&self, task: &SimTask) -> (f64, f64) {
        let total = self.task_seconds;
        (task.created_s + total / 4.0, task.created_s + total)
    }

    pub fn view(&self, task: &SimTask) -> TaskView {
        let t = self.life.clock;
        let (starts, ends) = self.task_span(task);
        let ms = |at: f64| task.queued_ms + ((at - task.created_s) * 1000.0) as i64;
        if t < starts {
            TaskView {
                status: TaskStatus::Queued,
                progress: 0,
                start_ms: None,
                complete_ms: None,
            }
        } else if t < ends {
            let frac = (t - starts) / (ends - starts);
            TaskView {
                status: TaskStatus::Running,
                progress: ((frac * 100.0) as i32).clamp(0, 99),
                start_ms: Some(ms(starts)),
                complete_ms: None,
            }
        } else {
            let failed = matches!(task.work, Work::Configure { failure: Some(_) });
            TaskView {
                status: if failed {
                    TaskStatus::Error
                } else {
                    TaskStatus::Success
                },
                progress: 100,
                start_ms: Some(ms(starts)),
                complete_ms: Some(ms(ends)),
            }
        }
    }

    /// The spec's `Task` for one of ours, as of now.
    pub fn task_json(&self, task: &SimTask) -> Task {
        let v = self.view(task);
        let (error, result) = match (v.status, &task.work) {
            (TaskStatus::Error, Work::Configure { failure }) => (
                Some(TaskError {
                    message: failure.as_ref().map(|f| f.message.clone()),
                    details: failure.as_ref().map(|f| f.details.to_string()),
                }),
                None,
            ),
            (TaskStatus::Success, _) => (
                None,
                Some(serde_json::json!({ "replication_id": task.replication_id })),
            ),
            _ => (None, None),
        };
        let description_id = match &task.work {
            Work::Configure { .. } => "com.vmware.vr.ConfigureReplicationTask",
            Work::Operation(op) => op.description_id(),
        };
        Task {
            id: task.id.clone(),
            description_id: Some(description_id.into()),
            entity: Some(task.vm_id.clone()),
            entity_name: Some(task.vm_name.clone()),
            status: v.status,
            error,
            result,
            progress: Some(v.progress),
            queued_time: Some(task.queued_ms),
            start_time: v.start_ms,
            complete_time: v.complete_ms,
        }
    }

    /// How a record is looked at now.
    pub(super) fn at(&self, r: &super::replication::SimReplication) -> At {
        let syncing = r
            .operation
            .and_then(|i| self.tasks.get(i))
            .is_some_and(|t| {
                matches!(t.work, Work::Operation(Operation::Sync))
                    && self.view(t).status == TaskStatus::Running
            });
        At {
            t: self.life.clock,
            scale: self.life.scale,
            syncing,
        }
    }

    /// Whether the API shows the replication: not while its configure task is QUEUED (the
    /// group does not exist yet), from the moment that task runs.
    pub(super) fn listed(&self, r: &super::replication::SimReplication) -> bool {
        r.configuring
            .and_then(|i| self.tasks.get(i))
            .is_none_or(|t| self.view(t).status != TaskStatus::Queued)
    }

    /// The replication with this id, if the API shows it.
    pub(super) fn listed_replication(
        &self,
        id: &str,
    ) -> Option<&super::replication::SimReplication> {
        self.replications.get(id).filter(|r| self.listed(r))
    }

    /// The replication with this id, if the API shows it through the pairing of `site`: the
    /// one it was configured through, whose remote vCenter is its target.
    pub(super) fn pairing_replication(
        &self,
        site: SiteRef<'_>,
        id: &str,
    ) -> Option<&super::replication::SimReplication> {
        self.listed_replication(id)
            .filter(|r| r.info.target_vc_id.as_deref() == Some(site.remote_vc.id.as_str()))
    }

    /// The replications the API shows through the pairing of `site`.
    pub fn pairing_replications(&self, site: SiteRef<'_>) -> Vec<ReplicationInfo> {
        let mut all = self.replications();
        all.retain(|r| r.target_vc_id.as_deref() == Some(site.remote_vc.id.as_str()));
        all
    }

    /// The replications the API shows now: the inventory's, plus one per configure task that is
    /// RUNNING (`IN_PROGRESS`) or has succeeded and not been unconfigured since. A QUEUED task
    /// has not created its group yet, and a failed one has rolled it back.
    pub fn replications(&self) -> Vec<ReplicationInfo> {
        self.replications
            .iter()
            .filter(|r| self.listed(r))
            .map(|r| r.info_at(self.at(r)))
            .collect()
    }

    /// `servers` with `replication_count` counted from `replications` (a server's uuid is its
    /// own, whichever pairing's site it is on).
    pub fn servers_with_counts(
        &self,
        servers: &[ReplicationServerInfo],
        replications: &[ReplicationInfo],
    ) -> Vec<ReplicationServerInfo> {
        let mut servers = servers.to_vec();
        for s in &mut servers {
            let n = replications
                .iter()
                .filter(|r| {
                    r.target_replication_server_uuid.is_some()
                        && r.target_replication_server_uuid == s.uuid
                })
                .count();
            s.replication_count = Some(n as i32);
        }
        servers
    }

    /// Whether the VM already has a replication or a configure task that has not failed.
    pub fn busy(&self, vm_id: &str) -> Option<Busy> {
        let r = self.replications.of_vm(vm_id)?;
        Some(match r.configuring.and_then(|i| self.tasks.get(i)) {
            Some(t) => Busy::TaskInFlight(t.id.clone()),
            None => Busy::Replicated(r.info.id.clone()),
        })
    }

    pub fn task(&self, id: &str) -> Option<&SimTask> {
        self.task_by_id.get(id).and_then(|i| self.tasks.get(*i))
    }

    pub(super) fn task_at(&self, index: usize) -> Option<&SimTask> {
        self.tasks.get(index)
    }

    pub fn tasks(&self) -> &[SimTask] {
        &self.tasks
    }

    /// Adds a task whose effect is still to come; returns its index.
    pub(super) fn add_task(&mut self, task: SimTask) -> usize {
        let index = self.tasks.len();
        self.task_by_id.insert(task.id.clone(), index);
        self.pending.insert(index);
        self.tasks.push(task);
        index
    }

    /// A new task for `replication_id` of `vm_id`, created now.
    pub(super) fn new_task(
        &mut self,
        vm_id: &str,
        vm_name: &str,
        replication_id: &str,
        work: Work,
    ) -> SimTask {
        SimTask {
            id: format!("HTask:{}", uuid(&mut self.rng)),
            vm_id: vm_id.to_string(),
            vm_name: vm_name.to_string(),
            replication_id: replication_id.to_string(),
            created: self.life.now,
            created_s: self.life.clock,
            queued_ms: self.life.epoch_ms(self.life.clock),
            work,
        }
    }

    /// `t` on the world's clock as a [`Moment`].
    pub(super) fn moment(&self, t: f64) -> Moment {
        self.life.moment(t)
    }
}

/// Milliseconds since the epoch, as the spec's task times are.
pub(crate) fn epoch_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}
