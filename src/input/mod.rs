//! PLACEHOLDER until the input branch lands: the JobSpec contract only.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VmRef {
    pub name: Option<String>,
    pub id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobSpec {
    pub line: Option<u64>,
    pub vm: VmRef,
    pub pairing: Option<String>,
    pub target_datastore: String,
    pub storage_policy: Option<String>,
    pub replication_server: Option<String>,
    pub settings: crate::workflow::ReplicationSettings,
    pub change_ticket: Option<String>,
    pub notes: Option<String>,
}
