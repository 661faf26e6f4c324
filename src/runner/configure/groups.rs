//! Configure calls in groups: up to G specs a call, the call's tasks matched back to its jobs,
//! and a group the server rejects (400) split until the bad spec stands alone.

use std::collections::HashMap;
use std::sync::Arc;

use tokio::time::Instant;

use crate::queue::JobId;
use crate::vr::model::{ConfigureReplicationSpec, Task};
use crate::vr::{ApiError, Client, ErrorClass};

/// What a configure call answered for one job.
pub(super) enum Submitted {
    /// Accepted: the task, and when its answer came (a group waiting for the budget may be
    /// answered long after the first).
    Task(Box<Task>, Instant),
    /// The server refused this spec alone (4xx): nothing was created.
    Rejected(Arc<ApiError>),
    /// The call failed in a way that leaves its effect unknown.
    Unknown(Arc<ApiError>),
}

type Submission<'a> =
    std::pin::Pin<Box<dyn std::future::Future<Output = Vec<(JobId, Submitted)>> + Send + 'a>>;

/// One configure call; a 400 splits the group in halves, down to the spec that is at fault.
pub(super) fn submit_group<'a>(
    client: &'a Client,
    pairing: &'a str,
    group: Vec<(JobId, ConfigureReplicationSpec)>,
) -> Submission<'a> {
    Box::pin(async move {
        let specs: Vec<ConfigureReplicationSpec> = group.iter().map(|(_, s)| s.clone()).collect();
        match client.configure_replications(pairing, &specs).await {
            Ok(tasks) => match_tasks(group, tasks),
            Err(e) if e.status() == Some(400) && group.len() > 1 => {
                let mut group = group;
                let second = group.split_off(group.len() / 2);
                let (a, b) = tokio::join!(
                    submit_group(client, pairing, group),
                    submit_group(client, pairing, second)
                );
                a.into_iter().chain(b).collect()
            }
            Err(e) => {
                // Only an answer that says no (a 4xx) proves nothing was created; an answer
                // that cannot be read may well be a 2xx.
                let refused =
                    matches!(e, ApiError::Status(_)) && e.class() == ErrorClass::Permanent;
                let e = Arc::new(e);
                group
                    .into_iter()
                    .map(|(id, _)| {
                        let outcome = if refused {
                            Submitted::Rejected(e.clone())
                        } else {
                            Submitted::Unknown(e.clone())
                        };
                        (id, outcome)
                    })
                    .collect()
            }
        }
    })
}

/// Tasks come back one per spec, in order; the task's entity, when given, must be the VM.
fn match_tasks(
    group: Vec<(JobId, ConfigureReplicationSpec)>,
    tasks: Vec<Task>,
) -> Vec<(JobId, Submitted)> {
    let in_order = tasks.len() == group.len()
        && group
            .iter()
            .zip(&tasks)
            .all(|((_, s), t)| t.entity.as_deref().is_none_or(|e| e == s.vm_id));
    let mut by_entity: HashMap<String, Task> = if in_order {
        HashMap::new()
    } else {
        tasks
            .iter()
            .filter_map(|t| Some((t.entity.clone()?, t.clone())))
            .collect()
    };
    let mut in_order_tasks = tasks.into_iter();
    group
        .into_iter()
        .map(|(id, spec)| {
            let task = if in_order {
                in_order_tasks.next()
            } else {
                by_entity.remove(&spec.vm_id)
            };
            match task {
                Some(t) => (id, Submitted::Task(Box::new(t), Instant::now())),
                None => (
                    id,
                    Submitted::Unknown(Arc::new(ApiError::Decode {
                        method: "POST".into(),
                        path: "/replications".into(),
                        detail: format!("no task in the answer for VM {}", spec.vm_id),
                    })),
                ),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Placement, ReplicationSettings};
    use crate::secret::Secret;
    use crate::sim::{SimConfig, Simulator, VmKind};
    use crate::vr::{ApiVersion, ClientSettings, Credentials, TlsTrust};
    use crate::workflow::build_spec;

    #[tokio::test]
    async fn a_group_with_one_bad_spec_is_split_until_only_that_one_fails() {
        let sim = Simulator::start(SimConfig {
            tls: false,
            ..SimConfig::fast()
        })
        .await
        .unwrap();
        let inv = sim.inventory();
        let who = Credentials {
            user: "administrator@vsphere.local".into(),
            password: Secret::new("VMware1!"),
        };
        let client = Client::connect(ClientSettings {
            url: sim.url().parse().unwrap(),
            api_version: ApiVersion::V2,
            trust: TlsTrust::Verify,
            timeout: std::time::Duration::from_secs(5),
            page_size: 100,
            source: who.clone(),
            target: who,
            limits: sim.limits(),
        })
        .await
        .unwrap();
        client.remote_login(&inv.pairing_id).await.unwrap();
        let placement = Placement {
            target_vc_id: inv.remote_vc.id.clone(),
            datastore_id: inv.datastores[0].id.clone(),
            storage_policy_id: None,
            replication_server_id: None,
        };
        let group: Vec<(JobId, ConfigureReplicationSpec)> = inv
            .vms
            .iter()
            .filter(|v| v.kind == VmKind::Normal)
            .take(5)
            .enumerate()
            .map(|(i, vm)| {
                let (mut spec, _) = build_spec(&vm.vm, &placement, &ReplicationSettings::default());
                if i == 3 {
                    spec.rpo = 2;
                }
                (i as JobId, spec)
            })
            .collect();

        let results = submit_group(&client, &inv.pairing_id, group).await;

        let mut tasks = 0;
        for (id, outcome) in &results {
            match outcome {
                Submitted::Task(..) => tasks += 1,
                Submitted::Rejected(e) => {
                    assert_eq!(*id, 3);
                    assert!(e.server_message().unwrap().contains("rpo"), "{e}");
                }
                Submitted::Unknown(e) => panic!("job {id}: {e}"),
            }
        }
        assert_eq!((results.len(), tasks), (5, 4));
        let stats = sim.stats();
        assert_eq!(stats.configure_attempts.len(), 4);
        // 5 ✗ -> 2 ✓ + 3 ✗ -> 1 ✓ + 2 ✗ -> 1 ✗ + 1 ✓: seven calls, each half split again
        // only while it still holds the bad spec.
        assert_eq!(stats.calls.get("configureReplication"), Some(&7));
    }
}
