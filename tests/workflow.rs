//! The documented configure workflow, step by step, for three VMs against the simulator.

use std::time::Duration;

use vrbulk::domain::{Placement, ReplicationSettings};
use vrbulk::sim::VmKind;
use vrbulk::vr::model::{ConfigurationState, TaskStatus};
use vrbulk::vr::Filter;
use vrbulk::workflow::build_spec;

use crate::support::harness::{client_for, sim_config, start};
use crate::support::wait::eventually;

#[tokio::test]
async fn protects_three_vms_through_the_documented_steps() {
    let sim = start(sim_config()).await;
    let inv = sim.inventory();

    // 1. login
    let client = client_for(&sim).await;

    // 2. pairings: pick by remote vCenter name
    let pairing = client
        .pairings()
        .await
        .unwrap()
        .into_iter()
        .find(|p| p.remote_vc_server.name.as_deref() == Some("vc-site-b.corp.local"))
        .expect("pairing to site B");
    let local_vc = pairing.local_vc_server.id.clone().unwrap();
    let remote_vc = pairing.remote_vc_server.id.clone().unwrap();

    // 3. VMs by name, with their disks
    let names: Vec<String> = inv
        .vms
        .iter()
        .filter(|v| v.kind == VmKind::Normal)
        .take(3)
        .map(|v| v.vm.name.clone())
        .collect();
    let vms = client
        .vms(
            &pairing.pairing_id,
            &local_vc,
            true,
            Some(&Filter::new("name", names.clone())),
        )
        .await
        .unwrap();
    assert_eq!(vms.len(), 3);

    // 4. remote session
    client.remote_login(&pairing.pairing_id).await.unwrap();

    // 5. target VRMS and its replication servers
    let vrms = client
        .vrms(&pairing.pairing_id)
        .await
        .unwrap()
        .into_iter()
        .find(|v| v.vc_guid.as_deref() == Some(remote_vc.as_str()))
        .unwrap();
    let servers = client
        .replication_servers(&pairing.pairing_id, &vrms.id)
        .await
        .unwrap();
    let server = servers
        .iter()
        .find(|s| s.name.as_deref() == Some("vrs-target-01"))
        .unwrap();

    // 6. datastores and storage policies by name
    let datastore = client
        .datastores(&pairing.pairing_id, &remote_vc)
        .await
        .unwrap()
        .into_iter()
        .find(|d| d.name == "ds-gold-01")
        .unwrap();
    let policy = client
        .storage_policies(&pairing.pairing_id, &remote_vc)
        .await
        .unwrap()
        .into_iter()
        .find(|p| p.storage_policy_name == "VR Gold")
        .unwrap();

    // 7. disks (the listing already carried them; the fallback agrees)
    for vm in &vms {
        let disks = client
            .vm_disks(&pairing.pairing_id, &local_vc, &vm.id)
            .await
            .unwrap();
        assert_eq!(Some(&disks), vm.disks.as_ref(), "{}", vm.name);
    }

    // 8. one POST for the three specs, then the tasks to SUCCESS
    let placement = Placement {
        target_vc_id: remote_vc.clone(),
        datastore_id: datastore.id.clone(),
        storage_policy_id: Some(policy.storage_policy_id.clone()),
        replication_server_id: Some(server.id.clone()),
    };
    let settings = ReplicationSettings {
        rpo: 15,
        mpit_instances: 3,
        mpit_days: 1,
        network_compression: true,
        ..ReplicationSettings::default()
    };
    let specs: Vec<_> = vms
        .iter()
        .map(|vm| build_spec(vm, &placement, &settings).0)
        .collect();
    let tasks = client
        .configure_replications(&pairing.pairing_id, &specs)
        .await
        .unwrap();
    assert_eq!(tasks.len(), 3);
    let ids: Vec<String> = tasks.iter().map(|t| t.id.clone()).collect();
    let finished = eventually(
        Duration::from_secs(10),
        "the three configure tasks to end",
        async || {
            let now = client
                .tasks(Some(&Filter::new("id", ids.clone())))
                .await
                .unwrap();
            if now.len() == 3 && now.iter().all(|t| t.status.is_finished()) {
                Ok(now)
            } else {
                Err(format!("{now:?}"))
            }
        },
    )
    .await;
    assert!(
        finished.iter().all(|t| t.status == TaskStatus::Success),
        "{finished:?}"
    );

    // verify: each VM now has a replication in configuration state OK with the asked settings
    let replications = client
        .replications(
            &pairing.pairing_id,
            Some(&Filter::new("vm_id", vms.iter().map(|v| v.id.clone()))),
        )
        .await
        .unwrap();
    assert_eq!(replications.len(), 3);
    for r in &replications {
        assert_eq!(r.configuration_state, Some(ConfigurationState::Ok), "{r:?}");
        assert_eq!(r.rpo, Some(15));
        assert_eq!(r.target_vc_id.as_deref(), Some(remote_vc.as_str()));
    }
    let stats = sim.stats();
    assert!(stats.configured_more_than_once.is_empty());
    assert_eq!(stats.calls.get("configureReplication"), Some(&1));
}
