//! A spec-faithful vSphere Replication REST API simulator (axum), for tests, demos and benchmarks.
//!
//! It serves the configure workflow and the day-2 operations of `vsphere-replication-api-v2.json`
//! under both `/api/rest/vr/v2` and `/api/rest/vr/v1`: sessions and remote-site logins, pairings,
//! VRMS and VR servers, a deterministic source inventory (VMs with disks, including a few awkward
//! ones), target datastores and storage policies, configure with server-side validation, tasks that
//! progress with time, the replications they create and how those live on (initial sync, faults,
//! RPO), and unconfigure, reconfigure, pause, resume, sync and destroy on them. It enforces the
//! appliance's limits at their defaults unless told otherwise (DESIGN.md, "The appliance's
//! limits"): the DR REST API rate limiter ([`limiter`]) and at most 20 VMs in one configure call.
//! Knobs inject latency, random and scheduled failures and session expiry, and power VMs on and
//! off ([`Simulator::power_on`], `POST /__sim/vms/{vm}/power-on`), and take the target sites
//! down and up (below); `GET /__sim/stats` and
//! [`Simulator::stats`] count what a client did, above all whether it ever configured a VM twice
//! or went over a quota, and when each replication was configured and synced; its `journal`
//! keeps every API request (when it arrived, its operation, the answer's status, the client's
//! address), the record a test judges a client's promises by.
//!
//! # The life of a replication
//!
//! `CONFIGURING` while its configure task runs (`configuration_state: IN_PROGRESS`), then
//! `INITIAL_FULL_SYNC` while its enabled disks are copied (`sync_progress`: `transferred_current`
//! of `transferred_total` bytes, `progress` in percent; `checksum_*` are 0, as nothing is seeded),
//! then `OK` with `last_sync_time` (and `last_sync_duration`, `last_sync_size`) set and
//! `status.rpo_violation` false: from then on it has had a sync since it was configured. On the
//! way:
//!
//! - A powered-off VM's replication is `NOT_ACTIVE` and copies nothing until the VM is powered on.
//! - With [`SimConfig::replication_error_rate`], a fraction of replications (drawn from the seed
//!   and the VM id, so the same VMs whatever the order of configuration) go to `ERROR` as their
//!   configure task succeeds: half with `configuration_state: ERROR` and a `configuration_error`
//!   (the target datastore unreachable), half with configuration `OK` and a `last_group_error`
//!   (no connection to the VR server). A reconfigure clears the fault.
//! - With [`SimConfig::rpo_violation_rate`], a fraction fall into `RPO_VIOLATION`
//!   (`rpo_violation: true`, `current_rpo_violation` in minutes) one RPO after their initial sync
//!   ends, until a sync (`actions/sync`).
//! - Day-2 operations take `task_seconds` like a configure task and act when their task ends:
//!   unconfigure and destroy remove the replication (the VM may be configured again); reconfigure
//!   replaces its settings and disks (disks newly enabled are copied in full: with the initial
//!   sync if it still runs, in a `FULL_SYNC` of their own otherwise); pause makes it `PAUSED`
//!   (its sync, if any, stops) until a resume; a sync shows `SYNC` while its task runs, then a new
//!   `last_sync_time`.
//!
//! # Several pairings
//!
//! With [`SimConfig::pairings`] above 1 (`vrbulk simulate --pairings N`) the appliance is paired
//! with several target sites, all reached from the same source vCenter and its VMs; pairing 1 is
//! the one a single-pairing simulator serves, with the same ids ([`Inventory::extra_pairings`]
//! names the others, [`Inventory::sites`] walks them all). `GET /pairings` lists every pairing,
//! and every `/pairings/{p}/…` route serves the target site of pairing `p`: its own remote login,
//! its VRMS and VR servers, its vCenter's datastores and storage policies; another pairing's
//! remote vCenter is no vCenter of `p` (404). As an appliance does:
//!
//! - A replication belongs to the pairing it was configured through: its `target_vc_id` is that
//!   pairing's remote vCenter. It is listed, read, and operated on (day-2 operations, its disks)
//!   through that pairing only; through another its id is unknown (404).
//! - A configure through pairing `p` must name `p`'s remote vCenter and `p`'s datastores,
//!   policies and VR servers: another site's are 400 naming the field, like an unknown one,
//!   with a hint that says whose they are. Automatic placement picks among `p`'s servers.
//! - A VM has one replication at most, whatever the pairing: a configure through another
//!   pairing of a VM already replicated (or being configured) is refused as one through the
//!   same pairing is, and capability and `suitable_for_replication` say so through every
//!   pairing.
//! - Limits: [`SimConfig::max_replications_per_server`] for each target VR server (or, for
//!   pairing 1's servers, [`SimConfig::max_replications_by_server`]), and
//!   [`SimConfig::max_replications_per_appliance`] for every pairing's replications together.
//!   `GET /tasks` is the appliance's, every pairing's tasks in one list. The replication link
//!   (below) is the source site's: every pairing's syncs share it.
//!
//! # The target site down
//!
//! With [`SimConfig::target_down`] (`vrbulk simulate --target-down`), or from
//! [`Simulator::set_target_down`] (`POST /__sim/target-site/down`) until it is brought back
//! (`…/up`), every target site is unreachable, as when the peer site is down: the appliance
//! still answers for its own site. What it does then is the spec's, per operation (its
//! `x-dr-remote-site-connectivity-contract`, `server-down`):
//!
//! - `ERROR`: the remote login (`POST …/remote-session`), reading it, configure, unconfigure,
//!   reconfigure, pause, resume and sync answer 500 `REMOTE_SITE_UNREACHABLE` (the only server
//!   error the spec lists), naming the remote VRMS and vCenter, whether or not the session had
//!   logged in to that site before it went down.
//! - `PARTIAL_DATA`: the pairing's replication list, one replication and its disks answer the
//!   same 500. Stricter than the spec, which lets the appliance answer with what its own site
//!   knows: a client that passes here does not lean on that partial data, which cannot say what
//!   the target site still holds. `GET /pairings` and `GET …/vrs` answer in full, with the remote
//!   vCenter's and VRMS's `server_status: ERROR`.
//! - `DEPENDS_ON_PROVIDED_PARAMS`: the target site's datastores, storage policies, VMs and VR
//!   servers answer the 500; the source site's answer as ever.
//! - `OK` and `FULL_DATA`: `DELETE …/replications/{id}` removes the local site's half (the
//!   simulator models no leftovers on the target site), and `GET /tasks`, `GET /tasks/{id}`
//!   follow its task.
//!
//! # Release and capacity
//!
//! The appliance presents [`SimConfig::appliance_version`] (default [`DEFAULT_VERSION`], 8.8.0)
//! in `GET /info` and as every pairing's and VRMS's `version`, and enforces the capacity of that
//! release by default: 200 replications per VR server and 2000 per appliance on 8.x (the
//! operational limits), 400 per appliance on 9.x ([`SimConfig::with_version`]; a localized page
//! of 9.0's operational limits, not confirmed in English; it names no per-server figure, so
//! 8.x's 200 stays). A configure that would go past either fails in its task, in words that
//! name the limit: `The vSphere Replication server 'vrs-target-01' has reached the maximum
//! number of replications (200)`, `The maximum number of replications (2000) supported by the
//! vSphere Replication Management Server has been reached` (the product's wording is not
//! documented; these follow the operational limits' own). The replications being configured
//! count. A server's `replication_count` is what it holds, whatever its limit: a server whose
//! real limit is lower ([`SimConfig::max_replications_by_server`]) shows it only by refusing.
//! The limit "within one vCenter" (1000) is not modelled: the simulator's pairings all join two
//! vCenters.
//!
//! # The link model (an assumption, stated)
//!
//! The product documentation only warns that many concurrent initial syncs slow each other down;
//! it gives no numbers. The simulator assumes ([`LinkModel`], in [`SimConfig::link`]): one
//! replication link of bandwidth `B` (`bandwidth_mbps`, default 1000 Mbit/s) shared by every full
//! sync on it (`n`: initial syncs, and full syncs of disks a reconfigure enabled); a ceiling per
//! sync (`per_sync_ceiling_mbps`, default 200 Mbit/s) that one sync never exceeds; and contention
//! past `K` concurrent syncs (`contention_threshold`, default 10): the link's total is `B` while
//! `n <= K` and `B / (1 + s (n − K)/K)` beyond, `s` saying how steeply (`contention_falloff`,
//! default 1). The total is shared equally, each share capped by
//! the ceiling: each sync moves `min(total(n) / n, ceiling)`. A sync is on the link while its
//! replication is configured, healthy, not paused and its VM powered on; it copies the VM's
//! enabled disks (`VmDisk.capacity` KiB × 1024 bytes, the VM home included). Rates change
//! whenever a sync starts or ends, so progress is integrated piecewise, event by event, up to the
//! instant of each request (no background timer).
//!
//! [`SimConfig::sync_time_scale`] (default 1.0 = real time; 600 = ten simulated minutes a real
//! second) multiplies the link's speed and divides the wait for an RPO violation; configure and
//! operation tasks keep to `task_seconds`. Instants the API shows (`last_sync_time`, task times)
//! are wall-clock, so they agree with a client's clock; durations the model produces
//! (`last_sync_duration`, `current_rpo_violation`) are simulated. [`SimStats`] records the peak
//! number of concurrent initial syncs and, per replication ([`ReplicationTimeline`]), when it was
//! submitted, configured, and when its initial sync started and ended, on both clocks
//! ([`Moment`]).
//!
//! # The clock a test moves
//!
//! [`Simulator::skip`] moves the simulator's clock ahead of the wall clock, for a test that needs
//! time to pass in the model and not in the test: what would have happened meanwhile (tasks
//! ending, syncs copying, an RPO passing, sessions ageing past [`SimConfig::session_ttl`], tasks
//! leaving the recent-task window) has happened at once, and the instants the API shows move with
//! it. The rate limiter and the journal keep the wall clock: they judge a client, whose clock is
//! the wall clock, and a skip must not hand it a new window it did not wait for.
//!
//! # Where the spec is silent
//!
//! Behaviour where the spec is silent (each chosen to be what a VRMS does, or the stricter
//! reading, so that a client that passes here also passes there):
//!
//! - Login with wrong or missing Basic credentials answers 401 with a `ResponseError`, although the
//!   spec lists only 200/400/500 for `POST /session`; appliances do answer 401.
//! - A call without a live `x-dr-session` answers 401 (`ResponseError` body), including
//!   `GET /session`. `GET /pairings/{p}/remote-session` without a remote login answers 401 too.
//! - The remote login belongs to the local session: a new session has none, and expiry or logout
//!   drops it. Target-site calls without it answer 401 `REMOTE_SESSION_REQUIRED`; every call on a
//!   replication is one, except `DELETE …/replications/{id}`, which cleans up the local site only
//!   (it is meant for a remote site that is down; the simulator models no leftovers there).
//! - `suitable_for_replication=true` omits the VMs whose capability is not `OK`: templates, and
//!   VMs that already have a replication or a configure task in flight. VMs with some unsupported
//!   disks stay (they are replicable without those disks).
//! - A task (configure or day-2) is QUEUED for the first quarter of `task_seconds`, then RUNNING.
//!   While a configure task is RUNNING its replication is listed with `configuration_state:
//!   IN_PROGRESS` (status `CONFIGURING`); while QUEUED it is not listed yet (only the task shows
//!   it, and `GET …/replications/{id}` is 404), and on ERROR it disappears (rolled back). A client
//!   that reconciles an in-doubt submit must therefore look at tasks as well as replications. A
//!   day-2 task's `entity` is the VM, its `result` on SUCCESS the `replication_id`.
//! - `VmDisk.capacity` is in KiB, as the spec says; datastore sizes are in bytes.
//! - Configure and reconfigure bodies are checked strictly: unknown fields, `null` in non-nullable
//!   fields, an empty array, a missing `Content-Type: application/json`, and every disk of the VM
//!   not being listed are all 400. All errors found are joined into `message`; `error_code` is the
//!   first's. In a reconfigure, optional fields left out keep their current value and a `null`
//!   VR server keeps the current one.
//! - The rate limiter and injected failures (`fail_next`, `fail_rate`) come before the session
//!   check; injected failures apply to any API call but `POST /session` (which is still rate
//!   limited, and fails only when asked to by `fail_next_login`).
//! - A configure body of more than 20 specs is refused whole with 400
//!   `VR_OPERATION_LIMIT_EXCEEDED`, in the words of the operational limits ("at most 20 VMs in
//!   one configure operation").
//! - A day-2 operation the replication's state does not allow is 400 (the spec documents no 409):
//!   `OPERATION_IN_PROGRESS` while it is being configured or another operation's task is in flight
//!   (one at a time), `INVALID_REPLICATION_STATE` for a pause of a paused replication, a resume of
//!   one not paused, and a sync of one that is not `OK` or `RPO_VIOLATION` (in initial or full
//!   sync, paused, `NOT_ACTIVE`, `ERROR`). Unconfigure, destroy and reconfigure are allowed in any
//!   other state. An unknown replication id is 404.
//!
//! Neighbours: `vr::model` provides the response shapes only; request bodies are validated in
//! `validate` from the spec on raw JSON, so that the simulator catches client bugs instead of
//! sharing them.

mod admin;
mod error;
mod handlers;
mod inventory;
mod lifecycle;
pub mod limiter;
mod link;
mod listing;
mod operations;
mod replication;
mod state;
mod stats;
mod tls;
mod validate;

#[cfg(test)]
mod tests;

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

pub use admin::Mishap;
pub use error::SimError;
pub use handlers::{router, API_PREFIXES};
pub use inventory::{
    max_replications_per_appliance_of, Inventory, SimVm, Site, SiteRef, TargetSite, VmKind,
    DEFAULT_VERSION, FULL_DATASTORE, MAX_REPLICATIONS_PER_APPLIANCE,
    MAX_REPLICATIONS_PER_APPLIANCE_9, MAX_REPLICATIONS_PER_SERVER, NVME_VM, POWERED_OFF_VM,
    REPLICATED_VM, TEMPLATE_VM, UNUSUAL_NAME_VM, VM_HOME_DEVICE_KEY,
};
pub use limiter::{Ban, LimiterStats, RateLimits};
pub use link::LinkModel;
pub use listing::{DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE};
pub use state::{SimState, DEFAULT_RECENT_TASK_WINDOW};
pub use stats::{ConfigureFailure, Moment, Received, RefusedLogin, ReplicationTimeline, SimStats};
pub use tls::thumbprint;

/// How the simulator behaves; `Default` is a healthy HTTPS appliance with 40 VMs and the
/// appliance's limits; [`SimConfig::fast`] keeps those limits' proportions over 2 s windows.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Source VMs in total, the five special ones included.
    pub vms: usize,
    /// Seeds the inventory (ids, disks) and the run-time ids and random failures.
    pub seed: u64,
    /// A configure task is QUEUED for the first quarter of this, RUNNING until it has passed,
    /// then SUCCESS or ERROR.
    pub task_seconds: f64,
    /// Added to every API request.
    pub latency_ms: u64,
    /// The DR REST API rate limiter; `None` admits everything.
    pub limits: Option<RateLimits>,
    /// Specs one configure call may carry.
    pub max_configure_specs: usize,
    /// Fraction of API calls (not `POST /session`, not `/__sim`) answered 500 or 503 at random
    /// (seeded), before any effect.
    pub fail_rate: f64,
    /// A session older than this (since login) gets 401.
    pub session_ttl: Option<Duration>,
    /// The user of both sites.
    pub user: String,
    pub password: String,
    /// HTTPS with a self-signed certificate generated at start; `false` serves plain HTTP.
    pub tls: bool,
    /// The replication link that full syncs share.
    pub link: LinkModel,
    /// Simulated seconds per real second of the sync model: 1.0 is real time, 600 ten minutes
    /// a second. Configure and operation tasks keep to `task_seconds` whatever it is.
    pub sync_time_scale: f64,
    /// Fraction of replications (seeded, per VM) that go to `ERROR` once configured, half with a
    /// `configuration_error`, half with a `last_group_error`.
    pub replication_error_rate: f64,
    /// Fraction of replications (seeded, per VM) that fall into RPO violation one RPO
    /// (simulated) after their initial sync, until a sync.
    pub rpo_violation_rate: f64,
    /// The VR release the appliance presents (`GET /info`, each pairing's and VRMS's
    /// `version`); [`SimConfig::with_version`] sets it with its appliance limit.
    pub appliance_version: String,
    /// Replications one target VR server takes; a configure onto a full one fails in its task.
    pub max_replications_per_server: usize,
    /// Replications each of pairing 1's target VR servers takes, in order, where it differs
    /// from `max_replications_per_server`: a server whose real limit is lower than the
    /// documented one (its replication count does not show it).
    pub max_replications_by_server: Vec<usize>,
    /// Replications the appliance takes in all.
    pub max_replications_per_appliance: usize,
    /// Replications of VMs outside the inventory already on each of pairing 1's target VR
    /// servers, in order (an appliance that protects other VMs already).
    pub replications_elsewhere: Vec<usize>,
    /// Site pairs the appliance serves, each to a target site of its own (pairing 1 to
    /// `vc-site-b.corp.local`, pairing 2 to `vc-site-c…`), all from the same source site; 0
    /// counts as 1.
    pub pairings: usize,
    /// Every target site is down from the start (see "The target site down");
    /// [`Simulator::set_target_down`] changes it at run time.
    pub target_down: bool,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            vms: 40,
            seed: 1,
            task_seconds: 2.0,
            latency_ms: 0,
            limits: Some(RateLimits::APPLIANCE),
            max_configure_specs: 20,
            fail_rate: 0.0,
            session_ttl: None,
            user: "administrator@vsphere.local".into(),
            password: "VMware1!".into(),
            tls: true,
            link: LinkModel::default(),
            sync_time_scale: 1.0,
            replication_error_rate: 0.0,
            rpo_violation_rate: 0.0,
            appliance_version: DEFAULT_VERSION.into(),
            max_replications_per_server: MAX_REPLICATIONS_PER_SERVER,
            max_replications_by_server: Vec::new(),
            max_replications_per_appliance: MAX_REPLICATIONS_PER_APPLIANCE,
            replications_elsewhere: Vec::new(),
            pairings: 1,
            target_down: false,
        }
    }
}

/// The window tests use: the appliance's quotas, thirty times as fast.
pub const FAST_WINDOW: Duration = Duration::from_secs(2);

impl SimConfig {
    /// The appliance's limits over [`FAST_WINDOW`] and tasks of 0.3 s: for tests.
    pub fn fast() -> SimConfig {
        SimConfig {
            task_seconds: 0.3,
            limits: Some(RateLimits::scaled(FAST_WINDOW)),
            ..SimConfig::default()
        }
    }

    /// The appliance of release `version` (`9.0.2`), with the replications that release
    /// takes in all ([`max_replications_per_appliance_of`]).
    pub fn with_version(self, version: &str) -> SimConfig {
        SimConfig {
            appliance_version: version.to_string(),
            max_replications_per_appliance: max_replications_per_appliance_of(version),
            ..self
        }
    }

    /// What a client must keep to against this simulator; a generous budget when it has no
    /// limiter.
    pub fn client_limits(&self) -> crate::vr::Limits {
        self.limits.map_or(
            crate::vr::Limits {
                per_session: 100_000,
                per_ip: 100_000,
                window: Duration::from_secs(1),
            },
            |l| l.client_limits(),
        )
    }
}

/// A running simulator on a local port; the server stops when this is dropped.
pub struct Simulator {
    state: SimState,
    url: String,
    addr: SocketAddr,
    thumbprint: Option<String>,
    certificate_pem: Option<String>,
    handle: axum_server::Handle,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl std::fmt::Debug for Simulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Simulator")
            .field("url", &self.url)
            .field("thumbprint", &self.thumbprint)
            .finish_non_exhaustive()
    }
}

impl Simulator {
    /// Starts on `127.0.0.1` with a port the OS picks.
    pub async fn start(cfg: SimConfig) -> Result<Simulator, SimError> {
        Simulator::start_on(cfg, SocketAddr::from((Ipv4Addr::LOCALHOST, 0))).await
    }

    pub async fn start_on(cfg: SimConfig, addr: SocketAddr) -> Result<Simulator, SimError> {
        let bind_err = |source| SimError::Bind { addr, source };
        let listener = std::net::TcpListener::bind(addr).map_err(bind_err)?;
        // axum-server hands the socket to tokio, which requires non-blocking mode.
        listener.set_nonblocking(true).map_err(bind_err)?;
        let local = listener.local_addr().map_err(bind_err)?;

        let tls = if cfg.tls {
            Some(tls::self_signed()?)
        } else {
            None
        };
        let scheme = if tls.is_some() { "https" } else { "http" };
        let state = SimState::new(cfg);
        let app = router(state.clone()).into_make_service_with_connect_info::<SocketAddr>();
        let handle = axum_server::Handle::new();
        let (task, thumbprint, certificate_pem) = match tls {
            Some(id) => {
                let server = axum_server::from_tcp_rustls(
                    listener,
                    axum_server::tls_rustls::RustlsConfig::from_config(id.config),
                )
                .handle(handle.clone());
                let task = tokio::spawn(async move {
                    if let Err(e) = server.serve(app).await {
                        tracing::error!(error = %crate::vr::error::error_chain(&e), "simulator stopped");
                    }
                });
                (task, Some(id.thumbprint), Some(id.certificate_pem))
            }
            None => {
                let server = axum_server::from_tcp(listener).handle(handle.clone());
                let task = tokio::spawn(async move {
                    if let Err(e) = server.serve(app).await {
                        tracing::error!(error = %crate::vr::error::error_chain(&e), "simulator stopped");
                    }
                });
                (task, None, None)
            }
        };
        // The socket is bound already, so connections queue; waiting for the accept loop only
        // makes start-up errors (none expected) surface before the caller proceeds.
        handle.listening().await;
        Ok(Simulator {
            state,
            url: format!("{scheme}://{local}"),
            addr: local,
            thumbprint,
            certificate_pem,
            handle,
            task: Some(task),
        })
    }

    /// `scheme://127.0.0.1:port`, without the API prefix and without a trailing slash.
    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// SHA-256 of the certificate (DER), `AB:CD:…`; `None` over plain HTTP.
    pub fn thumbprint(&self) -> Option<&str> {
        self.thumbprint.as_deref()
    }

    pub fn certificate_pem(&self) -> Option<&str> {
        self.certificate_pem.as_deref()
    }

    /// The simulator's state, for knobs not on `Simulator` (such as the recent-task window).
    pub fn state(&self) -> &SimState {
        &self.state
    }

    pub fn inventory(&self) -> Inventory {
        self.state.inventory()
    }

    pub fn stats(&self) -> SimStats {
        self.state.stats()
    }

    /// What a client must keep to against this simulator.
    pub fn limits(&self) -> crate::vr::Limits {
        self.state.config().client_limits()
    }

    /// The next `n` API calls (not `/__sim`, not `POST /session`) answer `status` with a
    /// `ResponseError`, before any effect.
    pub fn fail_next(&self, n: usize, status: u16) {
        self.state.fail_next(n, status);
    }

    /// The next `n` logins (`POST /session`) answer `status` (503 comes with `Retry-After`).
    pub fn fail_next_login(&self, n: usize, status: u16) {
        self.state.fail_next_login(n, status);
    }

    /// The next `n` `POST /replications` create their tasks, then answer 500 anyway.
    pub fn fail_next_configure_after_commit(&self, n: usize) {
        self.state.fail_next_configure_after_commit(n);
    }

    /// The next `n` `POST /replications` create their tasks, then answer 202 with a body that
    /// is not the spec's list of tasks (a proxy's page, a truncated answer).
    pub fn garble_next_configure_answer(&self, n: usize) {
        self.state.garble_next_configure_answer(n);
    }

    /// Powers the VM (by id or name) on: its replication, `NOT_ACTIVE` until now, starts its
    /// initial sync.
    pub fn power_on(&self, vm: &str) -> Result<(), SimError> {
        self.state.set_power(vm, true)
    }

    /// Powers the VM (by id or name) off: its replication is `NOT_ACTIVE` and copies nothing.
    pub fn power_off(&self, vm: &str) -> Result<(), SimError> {
        self.state.set_power(vm, false)
    }

    /// Takes every target site down (`true`) or brings it back (`false`), as
    /// `POST /__sim/target-site/down` and `…/up` do: see "The target site down".
    pub fn set_target_down(&self, down: bool) {
        self.state.set_target_down(down);
    }

    /// Moves the simulator's clock `d` ahead: see "The clock a test moves".
    pub fn skip(&self, d: Duration) {
        self.state.skip(d);
    }

    /// Forgets every session: the next call with any old id gets 401.
    pub fn expire_sessions(&self) {
        self.state.expire_sessions();
    }

    /// Stops accepting, lets requests in flight finish (up to a second), and waits for the end.
    pub async fn shutdown(mut self) {
        self.handle.graceful_shutdown(Some(Duration::from_secs(1)));
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for Simulator {
    fn drop(&mut self) {
        self.handle.shutdown();
    }
}
