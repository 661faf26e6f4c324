//! What a run learns once per pairing and keeps: the pairing's vCenters, the target VRMS and
//! its VR servers, the target datastores and storage policies, and the replications that already
//! exist. Everything a job names is resolved against this, without further calls. Work that must
//! go on with the target site down (a local-only removal) uses [`Discovery::local`]: the pairing
//! alone, as the local site sees it. [`appliance_version`] says which VR release the appliance
//! runs, which its capacity figures follow.

use std::collections::HashMap;

use serde::Serialize;
use thiserror::Error;

use crate::domain::JobSpec;
use crate::vr::model::{Datastore, Pairing, ReplicationInfo, ReplicationServerInfo, StoragePolicy};
use crate::vr::{ApiError, Client};

use super::{choose_pairing, PairingError};
use crate::domain::Placement;

#[derive(Debug, Error)]
pub enum DiscoveryError {
    #[error(transparent)]
    Pairing(#[from] PairingError),
    #[error("pairing {pairing}: {what}")]
    Api {
        pairing: String,
        what: &'static str,
        #[source]
        source: ApiError,
    },
    #[error("pairing {pairing}: {message}")]
    Incomplete { pairing: String, message: String },

    #[error("{}", target_login(.pairing, .source))]
    TargetLogin {
        pairing: String,
        #[source]
        source: ApiError,
    },
}

/// The words of a failed login to the target site of `pairing`: a refusal names the site and
/// the pairing itself ('the target site of pairing P refused the login of U'), so that only
/// the step is said before it.
pub(crate) fn target_login(pairing: &str, source: &ApiError) -> String {
    if source.names_its_site() {
        "logging in".to_string()
    } else {
        format!("logging in to the target site of pairing {pairing}")
    }
}

impl DiscoveryError {
    pub fn api_error(&self) -> Option<&ApiError> {
        match self {
            DiscoveryError::Api { source, .. } | DiscoveryError::TargetLogin { source, .. } => {
                Some(source)
            }
            _ => None,
        }
    }
}

/// One pairing, discovered.
#[derive(Debug, Clone)]
pub struct Discovery {
    pub pairing: Pairing,
    pub local_vc_id: String,
    pub remote_vc_id: String,
    pub remote_vc_name: String,
    pub target_vrms_id: String,
    pub replication_servers: Vec<ReplicationServerInfo>,
    pub datastores: Vec<Datastore>,
    pub storage_policies: Vec<StoragePolicy>,
    /// Existing replications by VM id, when discovery ran.
    pub replications: HashMap<String, ReplicationInfo>,
}

/// What the report keeps of a discovery (names and counts, no secrets).
#[derive(Debug, Clone, Serialize)]
pub struct DiscoverySummary {
    pub pairing_id: String,
    pub local_vc: String,
    pub remote_vc: String,
    pub target_vrms_id: String,
    pub replication_servers: Vec<String>,
    /// Each target VR server's name by its id: what names the server a job's placement
    /// (which keeps the id) chose, in the report.
    pub replication_server_names: std::collections::BTreeMap<String, String>,
    pub datastores: Vec<String>,
    pub storage_policies: Vec<String>,
    pub existing_replications: usize,
}

impl Discovery {
    /// Discovers the pairing `wanted` names (or the only one) among `pairings`: remote login,
    /// target VRMS, VR servers, datastores, policies and existing replications.
    pub async fn run(
        client: &Client,
        pairings: &[Pairing],
        wanted: Option<&str>,
    ) -> Result<Discovery, DiscoveryError> {
        // What the local site knows first; then the target site's half.
        let mut d = Discovery::local(pairings, wanted)?;
        let id = d.pairing.pairing_id.clone();
        let api = |what| {
            let pairing = id.clone();
            move |source| DiscoveryError::Api {
                pairing,
                what,
                source,
            }
        };
        let incomplete = |message: &str| DiscoveryError::Incomplete {
            pairing: id.clone(),
            message: message.to_string(),
        };
        if d.pairing.remote_vc_server.id.is_none() {
            return Err(incomplete("the server names no remote vCenter id"));
        }
        let (local_vc_id, remote_vc_id) = (&d.local_vc_id, &d.remote_vc_id);
        // Within one vCenter the local session already reaches the "target".
        if local_vc_id != remote_vc_id {
            client
                .remote_login(&id)
                .await
                .map_err(|source| DiscoveryError::TargetLogin {
                    pairing: id.clone(),
                    source,
                })?;
        }
        let vrms = client.vrms(&id).await.map_err(api("listing the VRMS"))?;
        let target_vrms_id = vrms
            .iter()
            .find(|v| v.vc_guid.as_deref() == Some(remote_vc_id.as_str()))
            .map(|v| v.id.clone())
            .ok_or_else(|| incomplete("no VRMS of the pairing serves the remote vCenter"))?;
        let (servers, datastores, policies, replications) = tokio::try_join!(
            async {
                client
                    .replication_servers(&id, &target_vrms_id)
                    .await
                    .map_err(api("listing the target VR servers"))
            },
            async {
                client
                    .datastores(&id, remote_vc_id)
                    .await
                    .map_err(api("listing the target datastores"))
            },
            async {
                client
                    .storage_policies(&id, remote_vc_id)
                    .await
                    .map_err(api("listing the target storage policies"))
            },
            async {
                client
                    .replications(&id, None)
                    .await
                    .map_err(api("listing the existing replications"))
            },
        )?;
        d.target_vrms_id = target_vrms_id;
        d.replication_servers = servers;
        d.datastores = datastores;
        d.storage_policies = policies;
        d.replications = replications
            .into_iter()
            .filter_map(|r| Some((r.vm_id.clone()?, r)))
            .collect();
        Ok(d)
    }

    /// The pairing `wanted` names (or the only one) as the local site alone sees it: its two
    /// vCenters from the pairing, and nothing of the target site (no remote login, no VRMS,
    /// VR servers, datastores, policies or replications: those lists stay empty). For work
    /// that must go on while the target site is down, such as a local-only removal, which
    /// names each replication by the id its configure recorded. No call is made.
    pub fn local(pairings: &[Pairing], wanted: Option<&str>) -> Result<Discovery, DiscoveryError> {
        let pairing = choose_pairing(pairings, wanted)
            .map_err(DiscoveryError::Pairing)?
            .clone();
        let incomplete = |message: &str| DiscoveryError::Incomplete {
            pairing: pairing.pairing_id.clone(),
            message: message.to_string(),
        };
        let local_vc_id = pairing
            .local_vc_server
            .id
            .clone()
            .ok_or_else(|| incomplete("the server names no local vCenter id"))?;
        let remote_vc_id = pairing.remote_vc_server.id.clone().unwrap_or_default();
        let remote_vc_name = pairing
            .remote_vc_server
            .name
            .clone()
            .unwrap_or_else(|| remote_vc_id.clone());
        Ok(Discovery {
            pairing,
            local_vc_id,
            remote_vc_id,
            remote_vc_name,
            target_vrms_id: String::new(),
            replication_servers: Vec::new(),
            datastores: Vec::new(),
            storage_policies: Vec::new(),
            replications: HashMap::new(),
        })
    }

    pub fn pairing_id(&self) -> &str {
        &self.pairing.pairing_id
    }

    /// How many replications the pairing holds with `vm_ids` configured besides those it had:
    /// the size of its unfiltered replication list, for choosing how to read it.
    pub fn size_with(&self, vm_ids: &[String]) -> usize {
        self.replications.len() + vm_ids.len()
    }

    pub fn summary(&self) -> DiscoverySummary {
        DiscoverySummary {
            pairing_id: self.pairing.pairing_id.clone(),
            local_vc: self
                .pairing
                .local_vc_server
                .name
                .clone()
                .unwrap_or_else(|| self.local_vc_id.clone()),
            remote_vc: self.remote_vc_name.clone(),
            target_vrms_id: self.target_vrms_id.clone(),
            replication_servers: self
                .replication_servers
                .iter()
                .map(|s| s.name.clone().unwrap_or_else(|| s.id.clone()))
                .collect(),
            replication_server_names: self
                .replication_servers
                .iter()
                .filter_map(|s| Some((s.id.clone(), s.name.clone()?)))
                .collect(),
            datastores: self.datastores.iter().map(|d| d.name.clone()).collect(),
            storage_policies: self
                .storage_policies
                .iter()
                .map(|p| p.storage_policy_name.clone())
                .collect(),
            existing_replications: self.replications.len(),
        }
    }

    /// The datastore, policy and VR server a job names, as ids; or why not, with the names that
    /// do exist.
    pub fn placement(&self, job: &JobSpec) -> Result<Placement, String> {
        let datastore = find_named(
            &self.datastores,
            &job.target_datastore,
            |d| &d.name,
            "datastore",
            &self.remote_vc_name,
        )?;
        Ok(Placement {
            target_vc_id: self.remote_vc_id.clone(),
            datastore_id: datastore.id.clone(),
            storage_policy_id: job
                .storage_policy
                .as_deref()
                .map(|name| self.storage_policy_id(name))
                .transpose()?,
            replication_server_id: match &job.replication_server {
                None => None,
                Some(name) => self.replication_server_id(name)?,
            },
        })
    }

    /// The id of the target site's storage policy `name`.
    pub fn storage_policy_id(&self, name: &str) -> Result<String, String> {
        Ok(find_named(
            &self.storage_policies,
            name,
            |p| &p.storage_policy_name,
            "storage policy",
            &self.remote_vc_name,
        )?
        .storage_policy_id
        .clone())
    }

    /// The id of the connected target VR server `name`; `None` for `auto` (the appliance picks).
    pub fn replication_server_id(&self, name: &str) -> Result<Option<String>, String> {
        if name.eq_ignore_ascii_case("auto") {
            return Ok(None);
        }
        let server = find_named(
            &self.replication_servers,
            name,
            |s| s.name.as_deref().unwrap_or(&s.id),
            "VR server",
            &self.remote_vc_name,
        )?;
        if server.connected == Some(false) {
            return Err(format!(
                "VR server `{name}` on {} is not connected",
                self.remote_vc_name
            ));
        }
        Ok(Some(server.id.clone()))
    }

    /// The name of the target VR server `id` (its id when it has none or is not known).
    pub fn replication_server_name<'a>(&'a self, id: &'a str) -> &'a str {
        self.replication_servers
            .iter()
            .find(|s| s.id == id)
            .and_then(|s| s.name.as_deref())
            .unwrap_or(id)
    }

    pub fn datastore(&self, id: &str) -> Option<&Datastore> {
        self.datastores.iter().find(|d| d.id == id)
    }
}

/// The version of the appliance vrbulk talks to (`8.8.0`), which its capacity figures follow
/// (`capacity::applied`). Every pairing names it (`local_vrms.version`, from the pairing list
/// each plan and run reads anyway, so it costs no call); only when none does is `GET /info`
/// asked. `None` when the appliance does not say: a failed read is no reason to stop, the
/// figures are then assumed, and say so.
pub async fn appliance_version(client: &Client, pairings: &[Pairing]) -> Option<String> {
    let named = pairings
        .iter()
        .find_map(|p| p.local_vrms.as_ref()?.version.clone());
    if named.is_some() {
        return named;
    }
    match client.info().await {
        Ok(info) => info.version,
        Err(e) => {
            tracing::warn!(error = %crate::vr::error::error_chain(&e), "the appliance's version could not be read: its capacity figures are assumed");
            None
        }
    }
}

/// Exact name first, then case-insensitive when that is unambiguous.
fn find_named<'a, T>(
    items: &'a [T],
    wanted: &str,
    name: impl Fn(&T) -> &str,
    what: &str,
    site: &str,
) -> Result<&'a T, String> {
    if let Some(hit) = items.iter().find(|i| name(i) == wanted) {
        return Ok(hit);
    }
    let folded: Vec<&T> = items
        .iter()
        .filter(|i| name(i).eq_ignore_ascii_case(wanted))
        .collect();
    if let [one] = folded[..] {
        return Ok(one);
    }
    let mut known: Vec<&str> = items.iter().map(&name).collect();
    known.sort_unstable();
    Err(format!(
        "{what} `{wanted}` not found on {site}; known: {}",
        if known.is_empty() {
            "none".to_string()
        } else {
            known.join(", ")
        }
    ))
}
