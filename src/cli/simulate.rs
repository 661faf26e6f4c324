//! `vrbulk simulate`: serve the simulated appliance until Ctrl-C, printing how to reach it.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use clap::Args;

use crate::sim::{SimConfig, Simulator};

#[derive(Debug, Args)]
#[command(after_help = "Example:\n  vrbulk simulate --vms 200 --rate 50 --fail-rate 0.05")]
pub struct SimulateArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8443")]
    pub listen: SocketAddr,
    /// Number of source VMs (the special ones included).
    #[arg(long, default_value_t = 40)]
    pub vms: usize,
    /// Seed of the inventory and of the injected failures.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Seconds a configure task takes from QUEUED to SUCCESS or ERROR.
    #[arg(long, default_value_t = 2.0)]
    pub task_seconds: f64,
    /// Latency added to every API call, in milliseconds.
    #[arg(long, default_value_t = 0)]
    pub latency_ms: u64,
    /// Requests per second the server accepts; the excess gets 429 with Retry-After.
    #[arg(long)]
    pub rate: Option<f64>,
    /// Fraction of API calls answered with a random 500 or 503.
    #[arg(long, default_value_t = 0.0)]
    pub fail_rate: f64,
    /// Sessions expire this many seconds after login.
    #[arg(long, value_name = "SECONDS")]
    pub session_ttl: Option<u64>,
    /// User of both simulated sites.
    #[arg(long, default_value = "administrator@vsphere.local")]
    pub user: String,
    /// Password of both simulated sites (a simulator's, never a real one).
    #[arg(long, default_value = "VMware1!")]
    pub password: String,
    /// Serve plain HTTP instead of HTTPS.
    #[arg(long)]
    pub http: bool,
}

impl SimulateArgs {
    pub fn sim_config(&self) -> anyhow::Result<SimConfig> {
        anyhow::ensure!(
            (0.0..=1.0).contains(&self.fail_rate),
            "--fail-rate must be between 0 and 1"
        );
        anyhow::ensure!(
            self.task_seconds >= 0.0,
            "--task-seconds must not be negative"
        );
        Ok(SimConfig {
            vms: self.vms,
            seed: self.seed,
            task_seconds: self.task_seconds,
            latency_ms: self.latency_ms,
            rate: self.rate,
            fail_rate: self.fail_rate,
            session_ttl: self.session_ttl.map(Duration::from_secs),
            user: self.user.clone(),
            password: self.password.clone(),
            tls: !self.http,
        })
    }
}

pub async fn run(args: SimulateArgs) -> anyhow::Result<u8> {
    let sim = Simulator::start_on(args.sim_config()?, args.listen)
        .await
        .with_context(|| format!("starting the simulator on {}", args.listen))?;
    let inv = sim.inventory();
    println!("vSphere Replication simulator listening on {}", sim.url());
    println!("  API        {}/api/rest/vr/v2", sim.url());
    println!("  user       {}", args.user);
    println!("  password   {}", args.password);
    if let Some(t) = sim.thumbprint() {
        println!("  thumbprint {t}");
    }
    println!(
        "  pairing    {} ({} -> {}), {} VMs",
        inv.pairing_id,
        inv.local_vc.name,
        inv.remote_vc.name,
        inv.vms.len()
    );
    println!("  stats      {}/__sim/stats", sim.url());
    println!(
        "\nvrbulk.toml to use it:\n\n[source]\nurl = \"{}\"\nuser = \"{}\"",
        sim.url(),
        args.user
    );
    if let Some(t) = sim.thumbprint() {
        println!("thumbprint = \"{t}\"");
    }
    println!(
        "\nand: export VRBULK_PASSWORD='{}'\n\nCtrl-C stops it.",
        args.password
    );
    tokio::signal::ctrl_c()
        .await
        .context("waiting for Ctrl-C")?;
    sim.shutdown().await;
    Ok(super::exit::OK)
}
