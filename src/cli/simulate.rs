//! `vrbulk simulate`: serve the simulated appliance until Ctrl-C, printing how to reach it.

use crate::exit::Exit;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use clap::Args;

use crate::sim::{
    max_replications_per_appliance_of, Ban, LinkModel, RateLimits, SimConfig, Simulator,
    DEFAULT_VERSION, MAX_REPLICATIONS_PER_SERVER,
};

#[derive(Debug, Args)]
#[command(after_help = "Examples:
  vrbulk simulate --vms 300 --fail-rate 0.05        # the appliance's limits, 5 % random 5xx
  vrbulk simulate --rate-window 2 --retry-after     # its quotas over 2 s windows, with Retry-After
  vrbulk simulate --sync-time-scale 600             # initial syncs ten simulated minutes a second
  vrbulk simulate --pairings 3                      # three target sites: vc-site-b, -c and -d
  vrbulk simulate --target-down                     # the target site unreachable (undo --local-only)
  vrbulk simulate --appliance-version 9.0.2         # VR 9.0: 400 replications per appliance
  vrbulk simulate --max-replications-per-server 3,200 --replications-elsewhere 1
                                                    # vrs-target-01 full at 3, which it does not show
It enforces the appliance's DR REST API rate limiter by default: 100 requests per client IP,
1000 for the service and 50 per session in each fixed 60 s window, 429 without Retry-After.")]
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
    /// Requests per session (x-dr-session) in one window of the rate limiter.
    #[arg(long, default_value_t = 50)]
    pub requests_per_session: u32,
    /// Requests per client IP address in one window.
    #[arg(long, default_value_t = 100)]
    pub requests_per_ip: u32,
    /// Requests to the service from everyone in one window.
    #[arg(long, default_value_t = 1000)]
    pub requests_per_service: u32,
    /// Length of the rate limiter's fixed window, in seconds.
    #[arg(long, default_value_t = 60.0, value_name = "SECONDS")]
    pub rate_window: f64,
    /// Send Retry-After with a 429 (the appliance documents none).
    #[arg(long)]
    pub retry_after: bool,
    /// Ban a key that is refused this many times in one window (with --ban-windows).
    #[arg(long, requires = "ban_windows")]
    pub ban_after: Option<u32>,
    /// Windows a ban lasts.
    #[arg(long, requires = "ban_after")]
    pub ban_windows: Option<u32>,
    /// Serve every request: no rate limiter at all.
    #[arg(long, conflicts_with_all = ["retry_after", "ban_after"])]
    pub no_rate_limit: bool,
    /// VMs one configure call may carry.
    #[arg(long, default_value_t = 20)]
    pub max_configure_specs: usize,
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
    /// Bandwidth of the replication link that initial syncs share, in Mbit/s.
    #[arg(long, default_value_t = 1000.0, value_name = "MBIT/S")]
    pub link_mbps: f64,
    /// What one sync never exceeds, in Mbit/s.
    #[arg(long, default_value_t = 200.0, value_name = "MBIT/S")]
    pub sync_ceiling_mbps: f64,
    /// Concurrent syncs past which the link's total throughput falls (B / (1 + s (n - K) / K)).
    #[arg(long, default_value_t = 10, value_name = "K")]
    pub contention_threshold: u32,
    /// How steeply the link's total falls past the threshold (s: 1 halves it at 2K, 0 keeps it).
    #[arg(long, default_value_t = 1.0, value_name = "S")]
    pub contention_falloff: f64,
    /// Simulated seconds per real second of the sync model (600: ten minutes a second).
    #[arg(long, default_value_t = 1.0)]
    pub sync_time_scale: f64,
    /// Fraction of replications that go to ERROR once configured.
    #[arg(long, default_value_t = 0.0)]
    pub replication_error_rate: f64,
    /// Fraction of replications that fall into RPO violation one RPO after their initial sync.
    #[arg(long, default_value_t = 0.0)]
    pub rpo_violation_rate: f64,
    /// The VR release the appliance presents (GET /info, pairings, VRMS); its capacity
    /// follows it: 2000 replications per appliance on 8.x, 400 on 9.x.
    #[arg(long, default_value = DEFAULT_VERSION, value_name = "VERSION")]
    pub appliance_version: String,
    /// Replications one target VR server takes [default: 200]; a list gives pairing 1's
    /// servers one each, in order (3,200), the last for the servers after them. A server
    /// holding fewer than its limit shows nothing of it: it refuses when full.
    #[arg(long, value_delimiter = ',', value_name = "N,N,…")]
    pub max_replications_per_server: Vec<usize>,
    /// Replications the appliance takes in all [default: that of --appliance-version].
    #[arg(long)]
    pub max_replications_per_appliance: Option<usize>,
    /// Replications of other VMs already on pairing 1's target VR servers, one count per
    /// server in order (e.g. 195,20).
    #[arg(long, value_delimiter = ',', value_name = "N,N,…")]
    pub replications_elsewhere: Vec<usize>,
    /// Site pairs to serve, each to a target site of its own (vc-site-b, vc-site-c, …), all
    /// from the same source site.
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub pairings: usize,
    /// Start with every target site down: calls that need it answer 500, the local-only
    /// `DELETE …/replications/{id}` and the tasks still work (`POST /__sim/target-site/up`
    /// brings it back).
    #[arg(long)]
    pub target_down: bool,
}

impl SimulateArgs {
    pub fn sim_config(&self) -> anyhow::Result<SimConfig> {
        anyhow::ensure!(
            (0.0..=1.0).contains(&self.fail_rate),
            "--fail-rate must be between 0 and 1"
        );
        anyhow::ensure!(
            self.task_seconds.is_finite() && self.task_seconds >= 0.0,
            "--task-seconds must not be negative"
        );
        anyhow::ensure!(
            self.rate_window.is_finite() && (0.1..=3600.0).contains(&self.rate_window),
            "--rate-window must be between 0.1 and 3600 seconds"
        );
        for (flag, rate) in [
            ("--replication-error-rate", self.replication_error_rate),
            ("--rpo-violation-rate", self.rpo_violation_rate),
        ] {
            anyhow::ensure!(
                (0.0..=1.0).contains(&rate),
                "{flag} must be between 0 and 1"
            );
        }
        anyhow::ensure!(
            self.contention_falloff.is_finite() && self.contention_falloff >= 0.0,
            "--contention-falloff must be a number of 0 or more"
        );
        for (flag, value) in [
            ("--link-mbps", self.link_mbps),
            ("--sync-ceiling-mbps", self.sync_ceiling_mbps),
            ("--sync-time-scale", self.sync_time_scale),
        ] {
            anyhow::ensure!(
                value.is_finite() && value > 0.0,
                "{flag} must be a number above 0"
            );
        }
        // Site A is the source; the targets are named B to Z.
        anyhow::ensure!(
            (1..=25).contains(&self.pairings),
            "--pairings must be between 1 and 25"
        );
        anyhow::ensure!(
            self.contention_threshold >= 1,
            "--contention-threshold must be at least 1"
        );
        let limits = RateLimits {
            per_ip: self.requests_per_ip,
            per_service: self.requests_per_service,
            per_session: self.requests_per_session,
            window: Duration::from_secs_f64(self.rate_window),
            retry_after: self.retry_after,
            ban: self
                .ban_after
                .zip(self.ban_windows)
                .map(|(after, windows)| Ban { after, windows }),
            offset: Duration::ZERO,
        };
        let per_server = self
            .max_replications_per_server
            .last()
            .copied()
            .unwrap_or(MAX_REPLICATIONS_PER_SERVER);
        Ok(SimConfig {
            vms: self.vms,
            seed: self.seed,
            task_seconds: self.task_seconds,
            latency_ms: self.latency_ms,
            limits: (!self.no_rate_limit).then_some(limits),
            max_configure_specs: self.max_configure_specs,
            fail_rate: self.fail_rate,
            session_ttl: self.session_ttl.map(Duration::from_secs),
            user: self.user.clone(),
            password: self.password.clone(),
            tls: !self.http,
            link: LinkModel {
                bandwidth_mbps: self.link_mbps,
                per_sync_ceiling_mbps: self.sync_ceiling_mbps,
                contention_threshold: self.contention_threshold,
                contention_falloff: self.contention_falloff,
            },
            sync_time_scale: self.sync_time_scale,
            replication_error_rate: self.replication_error_rate,
            rpo_violation_rate: self.rpo_violation_rate,
            appliance_version: self.appliance_version.clone(),
            max_replications_per_server: per_server,
            max_replications_by_server: self.max_replications_per_server.clone(),
            max_replications_per_appliance: self
                .max_replications_per_appliance
                .unwrap_or_else(|| max_replications_per_appliance_of(&self.appliance_version)),
            replications_elsewhere: self.replications_elsewhere.clone(),
            pairings: self.pairings,
            target_down: self.target_down,
        })
    }
}

pub async fn run(args: SimulateArgs) -> anyhow::Result<Exit> {
    // The simulator's errors say what of it failed, and where.
    let sim = Simulator::start_on(args.sim_config()?, args.listen).await?;
    let inv = sim.inventory();
    println!("vSphere Replication simulator listening on {}", sim.url());
    println!("  API        {}/api/rest/vr/v2", sim.url());
    println!("  user       {}", args.user);
    println!("  password   {}", args.password);
    if let Some(t) = sim.thumbprint() {
        println!("  thumbprint {t}");
    }
    for site in inv.sites() {
        println!(
            "  pairing    {} ({} -> {}), {} VMs",
            site.pairing_id,
            inv.local_vc.name,
            site.remote_vc.name,
            inv.vms.len()
        );
    }
    match &sim.state().config().limits {
        Some(l) => println!(
            "  limits     {} requests per session, {} per client IP, {} for the service, per {} s window{}",
            l.per_session,
            l.per_ip,
            l.per_service,
            l.window.as_secs_f64(),
            if l.retry_after { " (429 with Retry-After)" } else { " (429 without Retry-After)" }
        ),
        None => println!("  limits     none (--no-rate-limit)"),
    }
    let cfg = sim.state().config();
    let by_server = inv
        .replication_servers
        .iter()
        .zip(&cfg.max_replications_by_server)
        .filter(|(_, max)| **max != cfg.max_replications_per_server)
        .map(|(s, max)| format!("{} {max}", s.name.as_deref().unwrap_or(&s.id)))
        .collect::<Vec<_>>();
    let by_server = if by_server.is_empty() {
        String::new()
    } else {
        format!(" (but {})", by_server.join(", "))
    };
    println!(
        "  capacity   VR {}: {} replications per VR server{by_server}, {} per appliance",
        cfg.appliance_version, cfg.max_replications_per_server, cfg.max_replications_per_appliance
    );
    println!(
        "  link       {} Mbit/s, {} Mbit/s per sync, contention past {} syncs (falloff {}), time x{}",
        cfg.link.bandwidth_mbps,
        cfg.link.per_sync_ceiling_mbps,
        cfg.link.contention_threshold,
        cfg.link.contention_falloff,
        cfg.sync_time_scale
    );
    println!("  stats      {}/__sim/stats", sim.url());
    println!(
        "  target     {} (POST {}/__sim/target-site/down or up)",
        if cfg.target_down { "down" } else { "up" },
        sim.url()
    );
    println!(
        "  power      POST {}/__sim/vms/<vm id or name>/power-on (or power-off)",
        sim.url()
    );
    println!(
        "  mishaps    POST {}/__sim/replications/<vm>/rpo-violation?minutes=N, …/error, …/pause \
         (DELETE undoes); DELETE …/replications/<vm> removes one; POST /__sim/vms?name=NAME adds a VM",
        sim.url()
    );
    println!(
        "\nvrbulk.toml to use it:\n\n[source]\nurl = \"{}\"\nuser = \"{}\"",
        sim.url(),
        args.user
    );
    if let Some(t) = sim.thumbprint() {
        println!("thumbprint = \"{t}\"");
    }
    // A client keeps to the appliance's defaults unless told the limiter differs.
    let limits = sim.limits();
    if limits != crate::vr::Limits::APPLIANCE {
        println!(
            "requests_per_minute = {}\nrequests_per_minute_per_ip = {}\nrate_window_seconds = {}",
            limits.per_session,
            limits.per_ip,
            limits.window.as_secs_f64()
        );
    }
    println!(
        "\nand: export VRBULK_PASSWORD='{}'\n\nCtrl-C stops it.",
        args.password
    );
    tokio::signal::ctrl_c()
        .await
        .context("waiting for Ctrl-C")?;
    sim.shutdown().await;
    Ok(Exit::Ok)
}
