//! `vrbulk demo`: the configure workflow end to end against the built-in simulator (HTTPS,
//! pinned by its thumbprint), printed step by step. Until the job queue lands it protects a few
//! VMs directly; later it drives a whole batch.

use std::time::Duration;

use anyhow::{bail, Context};
use clap::Args;

use crate::secret::Secret;
use crate::sim::{SimConfig, Simulator};
use crate::vr::model::TaskStatus;
use crate::vr::{ApiVersion, Client, ClientSettings, Credentials, Filter, Thumbprint, TlsTrust};
use crate::workflow::{build_spec, Placement, ReplicationSettings};

#[derive(Debug, Args)]
#[command(after_help = "Example:\n  cargo run --release -- demo --vms 5")]
pub struct DemoArgs {
    /// How many VMs to protect.
    #[arg(long, default_value_t = 3)]
    pub vms: usize,
}

pub async fn run(args: DemoArgs) -> anyhow::Result<u8> {
    let cfg = SimConfig {
        task_seconds: 1.0,
        ..SimConfig::default()
    };
    let sim = Simulator::start(cfg.clone())
        .await
        .context("starting the simulator")?;
    let thumbprint = sim
        .thumbprint()
        .context("the simulator serves no certificate")?;
    println!("simulator      {} (certificate {thumbprint})", sim.url());
    let credentials = Credentials {
        user: cfg.user.clone(),
        password: Secret::new(cfg.password.clone()),
    };
    let client = Client::connect(ClientSettings {
        url: sim.url().parse().context("simulator URL")?,
        api_version: ApiVersion::V2,
        trust: TlsTrust::Pinned(Thumbprint::parse(thumbprint).map_err(anyhow::Error::msg)?),
        timeout: Duration::from_secs(10),
        page_size: 100,
        source: credentials.clone(),
        target: credentials,
    })
    .await
    .context("login")?;
    println!("1 login        OK as {}", cfg.user);

    let pairing = client
        .pairings()
        .await?
        .into_iter()
        .next()
        .context("the simulator has no pairing")?;
    let local_vc = pairing
        .local_vc_server
        .id
        .clone()
        .context("local vCenter id")?;
    let remote_vc = pairing
        .remote_vc_server
        .id
        .clone()
        .context("remote vCenter id")?;
    println!(
        "2 pairing      {} -> {}",
        pairing.local_vc_server.name.as_deref().unwrap_or("?"),
        pairing.remote_vc_server.name.as_deref().unwrap_or("?")
    );
    client.remote_login(&pairing.pairing_id).await?;
    println!("3 remote login OK");
    let vrms = client
        .vrms(&pairing.pairing_id)
        .await?
        .into_iter()
        .find(|v| v.vc_guid.as_deref() == Some(remote_vc.as_str()))
        .context("no VRMS on the target site")?;
    let servers = client
        .replication_servers(&pairing.pairing_id, &vrms.id)
        .await?;
    println!(
        "4 target VRMS  {} with {} VR servers",
        vrms.name.as_deref().unwrap_or("?"),
        servers.len()
    );
    let datastore = client
        .datastores(&pairing.pairing_id, &remote_vc)
        .await?
        .into_iter()
        .find(|d| d.name == "ds-gold-01")
        .context("datastore ds-gold-01 not found")?;
    let policy = client
        .storage_policies(&pairing.pairing_id, &remote_vc)
        .await?
        .into_iter()
        .find(|p| p.storage_policy_name == "VR Gold")
        .context("storage policy VR Gold not found")?;
    println!(
        "5 target       datastore {}, policy {}",
        datastore.name, policy.storage_policy_name
    );

    let replicated: Vec<String> = client
        .replications(&pairing.pairing_id, None)
        .await?
        .into_iter()
        .filter_map(|r| r.vm_id)
        .collect();
    let vms: Vec<_> = client
        .vms(&pairing.pairing_id, &local_vc, true, None)
        .await?
        .into_iter()
        .filter(|vm| !replicated.contains(&vm.id))
        .take(args.vms)
        .collect();
    let names: Vec<&str> = vms.iter().map(|v| v.name.as_str()).collect();
    println!("6 VMs          {}", names.join(", "));

    let placement = Placement {
        target_vc_id: remote_vc.clone(),
        datastore_id: datastore.id.clone(),
        storage_policy_id: Some(policy.storage_policy_id.clone()),
        replication_server_id: None,
    };
    let specs: Vec<_> = vms
        .iter()
        .map(|vm| build_spec(vm, &placement, &ReplicationSettings::default()).0)
        .collect();
    let tasks = client
        .configure_replications(&pairing.pairing_id, &specs)
        .await?;
    println!("7 configure    {} tasks submitted in one call", tasks.len());

    let ids: Vec<String> = tasks.iter().map(|t| t.id.clone()).collect();
    let finished = loop {
        let now = client.tasks(Some(&Filter::new("id", ids.clone()))).await?;
        if now.len() == ids.len() && now.iter().all(|t| t.status.is_finished()) {
            break now;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    for t in &finished {
        println!(
            "8 task         {} {:?}{}",
            t.entity_name.as_deref().unwrap_or(&t.id),
            t.status,
            t.error_text().map(|e| format!(": {e}")).unwrap_or_default()
        );
    }
    let ok = finished
        .iter()
        .filter(|t| t.status == TaskStatus::Success)
        .count();
    let protected = client
        .replications(
            &pairing.pairing_id,
            Some(&Filter::new("vm_id", vms.iter().map(|v| v.id.clone()))),
        )
        .await?;
    println!(
        "9 verify       {} of {} VMs now have a replication",
        protected.len(),
        vms.len()
    );
    let metrics = client.metrics();
    println!("API calls      {} in all", metrics.total_calls());
    client.logout().await?;
    sim.shutdown().await;
    if ok != vms.len() {
        bail!("{} of {} tasks did not succeed", vms.len() - ok, vms.len());
    }
    Ok(super::exit::OK)
}
