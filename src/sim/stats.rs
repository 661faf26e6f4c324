//! What the simulator counted and received: calls per operation, error answers, configure
//! attempts per VM and the configure tasks that failed and why (so a test can prove that a
//! client never configured a VM twice, and tell a retry after a refusal from that), day-2
//! operations per replication (nothing unconfigured twice, nothing outside a batch touched), when
//! each replication was configured and synced (an admission cap kept, the time each VM took to be
//! protected), and the journal of every request (nothing changed after a change window, one
//! refused login per site).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Counters since start, also served as JSON at `GET /__sim/stats`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SimStats {
    /// Calls per the spec's `operationId` (`login`, `getLocalVms`, `configureReplication`, …);
    /// requests that matched no route count under `unknown`.
    pub calls: BTreeMap<String, u64>,
    /// Every 4xx answer, 429 included.
    pub status_4xx: u64,
    pub status_5xx: u64,
    pub status_429: u64,
    /// Successful `POST /session` logins (remote-site logins not included).
    pub logins: u64,
    /// pairing id -> successful remote-site logins (`POST /pairings/{p}/remote-session`)
    /// through it: a client that discovers each pairing once logs in to each target site once
    /// a session.
    #[serde(default)]
    pub remote_logins: BTreeMap<String, u64>,
    /// vm_id -> specs accepted (tasks created) for it.
    pub configure_attempts: BTreeMap<String, u64>,
    /// vm_id -> specs rejected because the VM already had a replication or a configure task in
    /// flight, or appeared twice in one request body.
    pub configure_rejected: BTreeMap<String, u64>,
    /// VM ids configured more than once: a second configure task of the VM succeeded, a
    /// second replication. A correct client never causes this. A configure whose task failed
    /// created nothing (it is in `configure_failures`), so trying the VM again after it is not
    /// one.
    pub configured_more_than_once: Vec<String>,
    /// Every configure task that ended in ERROR (nothing created), in the order they ended.
    #[serde(default)]
    pub configure_failures: Vec<ConfigureFailure>,
    /// The rate limiter's refusals and peaks, per tier.
    pub limiter: super::LimiterStats,
    /// The most initial full syncs that were ever on the link at once.
    pub peak_initial_syncs: usize,
    /// replication id -> its life, for every replication a configure task created.
    pub replications: BTreeMap<String, ReplicationTimeline>,
    /// replication id -> operation (`unconfigure`, `reconfigure`, `pause`, `resume`, `sync`,
    /// `destroy`) -> requests accepted (tasks created).
    pub operations: BTreeMap<String, BTreeMap<String, u64>>,
    /// replication id -> operation -> requests refused for the replication's state.
    pub operations_refused: BTreeMap<String, BTreeMap<String, u64>>,
    /// Replications whose accepted unconfigure or destroy asked to keep the replica disks.
    pub replica_disks_retained: Vec<String>,
    /// Every API request, in the order it arrived: the appliance's own record of what it was
    /// sent, when and from where, which a test judges a client's promises by.
    pub journal: Vec<Received>,
    /// Logins refused for their credentials, source and target sites alike, in order: what an
    /// SSO server counts towards locking the account.
    pub refused_logins: Vec<RefusedLogin>,
}

/// A login whose credentials the simulator refused (401).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefusedLogin {
    /// Unix ms, wall clock.
    pub at_ms: i64,
    /// `source`, or the pairing id whose target site refused it.
    pub site: String,
    /// The user name given (empty when none was).
    pub user: String,
}

/// One API request as the simulator received and answered it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Received {
    /// When it arrived (Unix ms, wall clock), before any latency or limiter.
    pub at_ms: i64,
    /// The spec's `operationId` (`unknown` when no route matched).
    pub op: String,
    /// The HTTP status it was answered with.
    pub status: u16,
    /// The client's address.
    pub ip: String,
    /// The pairing its path names, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pairing: Option<String>,
}

/// The operations that change a replication: what a closed change window must not let through.
const CHANGE_OPERATIONS: [&str; 7] = [
    "configureReplication",
    "unconfigureReplication",
    "reconfigureReplication",
    "pauseReplication",
    "resumeReplication",
    "syncReplication",
    "destroyReplication",
];

impl Received {
    /// The appliance accepted it (a 2xx answer).
    pub fn accepted(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// An accepted request that changed a replication (configure or a day-2 action).
    pub fn accepted_change(&self) -> bool {
        self.accepted() && CHANGE_OPERATIONS.contains(&self.op.as_str())
    }
}

impl SimStats {
    /// The accepted requests that changed a replication, oldest first.
    pub fn accepted_changes(&self) -> impl Iterator<Item = &Received> {
        self.journal.iter().filter(|r| r.accepted_change())
    }
}

/// An instant twice over: on the wall clock (as the API's times) and on the simulated clock (as
/// the sync model sees it).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Moment {
    /// Milliseconds since the epoch, wall clock.
    pub at_ms: i64,
    /// Simulated milliseconds since the simulator started: wall time × `sync_time_scale`.
    pub sim_ms: u64,
}

/// A configure task that failed, and why, in the words its task gave.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigureFailure {
    pub vm_id: String,
    pub vm_name: String,
    /// The target VR server it was placed on (its name), when the spec named or got one.
    pub server: Option<String>,
    pub message: String,
}

/// When one replication was asked for, configured, and through its initial full sync.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicationTimeline {
    pub vm_id: String,
    pub vm_name: String,
    /// The target VR server it is on (its name).
    #[serde(default)]
    pub server: Option<String>,
    /// What the initial full sync copies: the enabled disks, in bytes.
    pub bytes: u64,
    /// Its configure call was accepted.
    pub submitted: Moment,
    /// Its configure task succeeded.
    pub configured: Moment,
    /// It first went onto the link (`None`: not yet, e.g. its VM is powered off).
    pub sync_started: Option<Moment>,
    /// Its initial full sync ended: from then on it had had a sync since it was configured.
    pub sync_ended: Option<Moment>,
}

impl SimStats {
    pub(crate) fn count_call(&mut self, op: &str) {
        *self.calls.entry(op.to_string()).or_default() += 1;
    }

    pub(crate) fn count_status(&mut self, status: u16) {
        match status {
            429 => {
                self.status_429 += 1;
                self.status_4xx += 1;
            }
            400..=499 => self.status_4xx += 1,
            500..=599 => self.status_5xx += 1,
            _ => {}
        }
    }

    pub(crate) fn count_remote_login(&mut self, pairing_id: &str) {
        *self
            .remote_logins
            .entry(pairing_id.to_string())
            .or_default() += 1;
    }

    pub(crate) fn count_accepted(&mut self, vm_id: &str) {
        *self
            .configure_attempts
            .entry(vm_id.to_string())
            .or_default() += 1;
    }

    /// A configure task of `line`'s VM succeeded: a second one for the same VM is a VM
    /// configured more than once.
    pub(crate) fn count_configured(&mut self, id: &str, line: ReplicationTimeline) {
        let vm = line.vm_id.clone();
        let again = self.replications.values().any(|r| r.vm_id == vm);
        if again && !self.configured_more_than_once.contains(&vm) {
            self.configured_more_than_once.push(vm);
        }
        self.replications.insert(id.to_string(), line);
    }

    pub(crate) fn count_operation(&mut self, replication_id: &str, operation: &str) {
        *self
            .operations
            .entry(replication_id.to_string())
            .or_default()
            .entry(operation.to_string())
            .or_default() += 1;
    }

    pub(crate) fn count_refused(&mut self, replication_id: &str, operation: &str) {
        *self
            .operations_refused
            .entry(replication_id.to_string())
            .or_default()
            .entry(operation.to_string())
            .or_default() += 1;
    }

    pub(crate) fn count_rejected(&mut self, vm_id: &str) {
        *self
            .configure_rejected
            .entry(vm_id.to_string())
            .or_default() += 1;
    }
}
