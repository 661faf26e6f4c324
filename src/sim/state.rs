//! The simulator's mutable state behind one lock: sessions (with their remote-site logins), configure
//! tasks, counters and the fault knobs. Task progress and the replications that tasks create are
//! computed from elapsed time whenever they are read, so no background timer is needed.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::error::ApiError;
use super::inventory::{uuid, Inventory};
use super::limiter::Limiter;
use super::stats::SimStats;
use super::SimConfig;
use crate::vr::model::{
    CompoundReplicationStatus, ConfigurationState, ReplicationInfo, ReplicationStatus, Task,
    TaskError, TaskStatus,
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
    pub created: Instant,
    /// pairing id -> the user logged in on that pairing's remote site.
    pub remote: HashMap<String, String>,
}

/// A configure task and the replication it creates when it succeeds.
pub(crate) struct SimTask {
    pub id: String,
    pub vm_id: String,
    pub vm_name: String,
    pub created: Instant,
    pub queued_ms: i64,
    /// `Some(message)`: the task ends in ERROR with it.
    pub failure: Option<String>,
    pub replication: ReplicationInfo,
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
    /// Every configure task, oldest first.
    tasks: Vec<SimTask>,
    /// vm id -> indexes into `tasks`, so per-VM checks stay cheap with thousands of tasks.
    tasks_by_vm: HashMap<String, Vec<usize>>,
    task_by_id: HashMap<String, usize>,
    pub stats: SimStats,
    pub fail_next: VecDeque<StatusCode>,
    pub fail_after_commit: usize,
    pub garble_after_commit: usize,
    limiter: Option<Limiter>,
    pub rng: fastrand::Rng,
    pub recent_window: Duration,
    pub task_seconds: f64,
}

impl SimState {
    /// Builds the inventory from `cfg.vms` and `cfg.seed`, and the rate limiter from
    /// `cfg.limits`.
    pub fn new(cfg: SimConfig) -> SimState {
        let inv = Inventory::generate(cfg.vms, cfg.seed);
        let world = World {
            inv,
            sessions: HashMap::new(),
            tasks: Vec::new(),
            tasks_by_vm: HashMap::new(),
            task_by_id: HashMap::new(),
            stats: SimStats::default(),
            fail_next: VecDeque::new(),
            fail_after_commit: 0,
            garble_after_commit: 0,
            limiter: cfg.limits.map(Limiter::new),
            // Distinct from the inventory's stream so that adding a VM does not shift ids
            // handed out at run time, and vice versa.
            rng: fastrand::Rng::with_seed(cfg.seed ^ 0x5EED_0F5E_5510_7500),
            recent_window: DEFAULT_RECENT_TASK_WINDOW,
            task_seconds: cfg.task_seconds.max(0.0),
        };
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

    pub(crate) fn world(&self) -> MutexGuard<'_, World> {
        // A handler that panicked mid-update leaves counters at worst slightly off; keep serving.
        self.inner
            .world
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Snapshot of the truth, replications as they are at this instant.
    pub fn inventory(&self) -> Inventory {
        let w = self.world();
        let mut inv = w.inv.clone();
        inv.replications = w.replications(Instant::now());
        inv.replication_servers = w.servers_with_counts(&inv.replications);
        inv
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
            return Ok(None);
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
            Some(s) => cfg.session_ttl.is_some_and(|ttl| s.created.elapsed() > ttl),
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

    pub(crate) fn count_status(&self, status: u16) {
        self.world().stats.count_status(status);
    }
}

impl World {
    pub fn new_session(&mut self, user: &str) -> String {
        let id = uuid(&mut self.rng);
        // Real session ids are base64 of a UUID string; clients must treat them as opaque.
        let sid = base64::engine::general_purpose::STANDARD.encode(id);
        self.sessions.insert(
            sid.clone(),
            Session {
                user: user.to_string(),
                created: Instant::now(),
                remote: HashMap::new(),
            },
        );
        self.stats.logins += 1;
        sid
    }

    pub fn view(&self, task: &SimTask, now: Instant) -> TaskView {
        let total = self.task_seconds;
        let elapsed = now.saturating_duration_since(task.created).as_secs_f64();
        let start_after = total / 4.0;
        let ms = |secs: f64| task.queued_ms + (secs * 1000.0) as i64;
        if elapsed < start_after {
            TaskView {
                status: TaskStatus::Queued,
                progress: 0,
                start_ms: None,
                complete_ms: None,
            }
        } else if elapsed < total {
            let frac = (elapsed - start_after) / (total - start_after);
            TaskView {
                status: TaskStatus::Running,
                progress: ((frac * 100.0) as i32).clamp(0, 99),
                start_ms: Some(ms(start_after)),
                complete_ms: None,
            }
        } else {
            TaskView {
                status: if task.failure.is_some() {
                    TaskStatus::Error
                } else {
                    TaskStatus::Success
                },
                progress: 100,
                start_ms: Some(ms(start_after)),
                complete_ms: Some(ms(total)),
            }
        }
    }

    /// The spec's `Task` for one of ours, as of `now`.
    pub fn task_json(&self, task: &SimTask, now: Instant) -> Task {
        let v = self.view(task, now);
        let (error, result) = match v.status {
            TaskStatus::Error => (
                Some(TaskError {
                    message: task.failure.clone(),
                    details: Some(
                        "Choose another target datastore or free up space on this one.".into(),
                    ),
                }),
                None,
            ),
            TaskStatus::Success => (
                None,
                Some(serde_json::json!({ "replication_id": task.replication.id })),
            ),
            _ => (None, None),
        };
        Task {
            id: task.id.clone(),
            description_id: Some("com.vmware.vr.ConfigureReplicationTask".into()),
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

    /// Replications that exist at `now`: those of the initial inventory, plus one per configure
    /// task that is RUNNING (`IN_PROGRESS`) or has succeeded (`OK`). A QUEUED task has not created
    /// its group yet, and a failed one has rolled it back.
    pub fn replications(&self, now: Instant) -> Vec<ReplicationInfo> {
        let mut out = self.inv.replications.clone();
        for t in &self.tasks {
            let v = self.view(t, now);
            let mut r = t.replication.clone();
            match v.status {
                TaskStatus::Running => {
                    r.configuration_state = Some(ConfigurationState::InProgress);
                    r.status = Some(CompoundReplicationStatus {
                        status: Some(ReplicationStatus::Configuring),
                        rpo_violation: Some(false),
                    });
                }
                TaskStatus::Success => {
                    r.configuration_state = Some(ConfigurationState::Ok);
                    r.status = Some(CompoundReplicationStatus {
                        status: Some(ReplicationStatus::Ok),
                        rpo_violation: Some(false),
                    });
                    r.last_sync_time = v.complete_ms.unwrap_or_default();
                }
                _ => continue,
            }
            out.push(r);
        }
        out
    }

    /// Target VR servers with `replication_count` counted from `replications`.
    pub fn servers_with_counts(
        &self,
        replications: &[ReplicationInfo],
    ) -> Vec<crate::vr::model::ReplicationServerInfo> {
        let mut servers = self.inv.replication_servers.clone();
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
    pub fn busy(&self, vm_id: &str, now: Instant) -> Option<Busy> {
        if let Some(r) = self
            .inv
            .replications
            .iter()
            .find(|r| r.vm_id.as_deref() == Some(vm_id))
        {
            return Some(Busy::Replicated(r.id.clone()));
        }
        let indexes = self
            .tasks_by_vm
            .get(vm_id)
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        for t in indexes.iter().filter_map(|i| self.tasks.get(*i)) {
            match self.view(t, now).status {
                TaskStatus::Queued | TaskStatus::Running => {
                    return Some(Busy::TaskInFlight(t.id.clone()))
                }
                TaskStatus::Success => return Some(Busy::Replicated(t.replication.id.clone())),
                _ => {}
            }
        }
        None
    }

    pub fn task(&self, id: &str) -> Option<&SimTask> {
        self.task_by_id.get(id).and_then(|i| self.tasks.get(*i))
    }

    pub fn tasks(&self) -> &[SimTask] {
        &self.tasks
    }

    pub fn add_task(&mut self, task: SimTask) {
        self.tasks_by_vm
            .entry(task.vm_id.clone())
            .or_default()
            .push(self.tasks.len());
        self.task_by_id.insert(task.id.clone(), self.tasks.len());
        self.tasks.push(task);
    }
}

/// Milliseconds since the epoch, as the spec's task times are.
pub(crate) fn epoch_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}
