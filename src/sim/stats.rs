//! What the simulator counted: calls per operation, error answers, and above all configure attempts
//! per VM, so a test can prove that a client never configured a VM twice.

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
    /// vm_id -> specs accepted (tasks created) for it.
    pub configure_attempts: BTreeMap<String, u64>,
    /// vm_id -> specs rejected because the VM already had a replication or a configure task in
    /// flight, or appeared twice in one request body.
    pub configure_rejected: BTreeMap<String, u64>,
    /// VM ids with `configure_attempts > 1`: a correct client never causes this.
    pub configured_more_than_once: Vec<String>,
    /// The rate limiter's refusals and peaks, per tier.
    pub limiter: super::LimiterStats,
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

    pub(crate) fn count_accepted(&mut self, vm_id: &str) {
        let n = self
            .configure_attempts
            .entry(vm_id.to_string())
            .or_default();
        *n += 1;
        if *n == 2 {
            self.configured_more_than_once.push(vm_id.to_string());
        }
    }

    pub(crate) fn count_rejected(&mut self, vm_id: &str) {
        *self
            .configure_rejected
            .entry(vm_id.to_string())
            .or_default() += 1;
    }
}
