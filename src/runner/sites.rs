//! What a run knows of each pairing: the pairings the appliance listed, and each one's
//! discovery (its target site's datastores, policies, VR servers and existing replications),
//! done once per run the first time a held job names the pairing. The phases work pairing by
//! pairing, on the held jobs grouped here by the discovery they share.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use tokio::time::Instant;

use super::held::HeldJob;
use super::{RunError, Runner};
use crate::queue::JobId;
use crate::vr::error::error_chain;
use crate::vr::model::Pairing;
use crate::vr::{ApiError, ErrorClass, Site};
use crate::workflow::{Discovery, DiscoveryError};

/// Held jobs of one pairing, with its discovery.
pub(super) type PairingGroup = (Arc<Discovery>, Vec<JobId>);

/// The pairings and their discoveries, by the pairing a job names (`None`: the only one).
pub(super) struct Sites {
    pairings: Vec<Pairing>,
    discoveries: HashMap<Option<String>, Result<Arc<Discovery>, Arc<DiscoveryError>>>,
}

impl Sites {
    pub fn new(pairings: Vec<Pairing>) -> Sites {
        Sites {
            pairings,
            discoveries: HashMap::new(),
        }
    }

    /// The target site's vCenter of `site`, by name, when the pairing says it.
    pub fn name_of(&self, site: &Site) -> Option<String> {
        match site {
            Site::Target { pairing_id } => self
                .pairings
                .iter()
                .find(|p| &p.pairing_id == pairing_id)
                .and_then(|p| p.remote_vc_server.name.clone()),
            Site::Source => None,
        }
    }

    /// Held jobs that match, grouped by their pairing's discovery; jobs of a pairing not yet
    /// discovered are left out.
    fn grouped<'a>(
        &self,
        jobs: impl Iterator<Item = &'a HeldJob>,
        matches: impl Fn(&HeldJob) -> bool,
    ) -> Vec<PairingGroup> {
        let mut groups: BTreeMap<String, PairingGroup> = BTreeMap::new();
        for a in jobs.filter(|a| matches(a)) {
            if let Some(Ok(disc)) = self.discoveries.get(&a.pairing_key()) {
                groups
                    .entry(disc.pairing.pairing_id.clone())
                    .or_insert_with(|| (disc.clone(), Vec::new()))
                    .1
                    .push(a.job.id);
            }
        }
        groups.into_values().collect()
    }
}

impl Runner {
    /// Discovers each pairing the held jobs name, once per run; returns the pairings discovered
    /// now. A run that must not ask the target site (`asks_target_site` false) takes the
    /// pairing from the list it has ([`Discovery::local`]).
    pub(super) async fn discover(
        &mut self,
        asks_target_site: bool,
    ) -> Result<Vec<Arc<Discovery>>, RunError> {
        let mut keys: Vec<Option<String>> = self
            .held
            .values()
            .map(HeldJob::pairing_key)
            .filter(|k| !matches!(self.sites.discoveries.get(k), Some(Ok(_))))
            .collect();
        keys.sort();
        keys.dedup();
        let mut found = Vec::new();
        for key in keys {
            if self.stop.stopping() {
                break;
            }
            if let Some(Err(e)) = self.sites.discoveries.get(&key) {
                let reason = error_chain(e.as_ref());
                for id in self.held_with(&key) {
                    self.fail(id, reason.clone(), None).await?;
                }
                continue;
            }
            let discovery = if asks_target_site {
                let work = Discovery::run(&self.client, &self.sites.pairings, key.as_deref());
                let Some(d) = self.stop.guarded(work).await else {
                    break;
                };
                d
            } else {
                Discovery::local(&self.sites.pairings, key.as_deref())
            };
            match discovery {
                Ok(d) => {
                    let summary = serde_json::to_value(d.summary()).unwrap_or_default();
                    let (batch, pairing) = (self.batch, d.pairing.pairing_id.clone());
                    self.db
                        .run(move |q| q.record_discovery(batch, &pairing, &summary))
                        .await?;
                    tracing::info!(pairing = %d.pairing.pairing_id, remote = %d.remote_vc_name, "discovered");
                    let d = Arc::new(d);
                    self.sites.discoveries.insert(key, Ok(d.clone()));
                    found.push(d);
                }
                Err(e) => self.undiscovered(key, e).await?,
            }
        }
        Ok(found)
    }

    /// A pairing's discovery failed: its jobs try again later, or fail when the appliance's
    /// answer was final (and so do the jobs that name it after them).
    async fn undiscovered(
        &mut self,
        key: Option<String>,
        e: DiscoveryError,
    ) -> Result<(), RunError> {
        let ids = self.held_with(&key);
        match e.api_error() {
            Some(api) if api.class() != ErrorClass::Permanent => self.setback_all(ids, api).await,
            _ => {
                let reason = error_chain(&e);
                let status = e.api_error().and_then(ApiError::status);
                self.sites.discoveries.insert(key, Err(Arc::new(e)));
                for id in ids {
                    self.fail(id, reason.clone(), status).await?;
                }
                Ok(())
            }
        }
    }

    /// Held jobs that match, grouped by their pairing's discovery (jobs of a pairing not yet
    /// discovered, and jobs set back for a while, are left for a later pass).
    pub(super) fn by_pairing(&self, matches: impl Fn(&HeldJob) -> bool) -> Vec<PairingGroup> {
        let now = Instant::now();
        self.sites
            .grouped(self.held.values(), |a| a.due(now) && matches(a))
    }

    /// The in-doubt jobs of each pairing where one of them is due: the others ride along in
    /// the same lookup, instead of costing one of their own a moment later, and the ones that
    /// did not reach the appliance go out again together, in full groups.
    pub(super) fn in_doubt_by_pairing(&self) -> Vec<PairingGroup> {
        let now = Instant::now();
        let mut groups = self.sites.grouped(self.held.values(), |a| a.in_doubt);
        groups.retain(|(_, ids)| ids.iter().any(|id| self.held[id].due(now)));
        groups
    }

    /// Held jobs that name the pairing `key`.
    fn held_with(&self, key: &Option<String>) -> Vec<JobId> {
        self.held.ids(|a| &a.pairing_key() == key)
    }
}
