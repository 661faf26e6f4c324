//! Starting the in-process simulator and a client pinned to its certificate.

use std::time::Duration;

use vrbulk::secret::Secret;
use vrbulk::sim::{SimConfig, Simulator};
use vrbulk::vr::{ApiVersion, Client, ClientSettings, Credentials, Thumbprint, TlsTrust};

/// A small, fast simulator: HTTPS, 40 VMs, tasks that finish in 0.3 s, the appliance's rate
/// limits over 2 s windows.
pub fn sim_config() -> SimConfig {
    SimConfig::fast()
}

pub async fn start(cfg: SimConfig) -> Simulator {
    Simulator::start(cfg).await.expect("simulator starts")
}

/// Settings that trust the simulator by its thumbprint.
pub fn settings_for(sim: &Simulator) -> ClientSettings {
    let cfg = SimConfig::default();
    let credentials = Credentials {
        user: cfg.user,
        password: Secret::new(cfg.password),
    };
    let trust = match sim.thumbprint() {
        Some(t) => TlsTrust::Pinned(Thumbprint::parse(t).expect("simulator thumbprint parses")),
        None => TlsTrust::Verify,
    };
    ClientSettings {
        url: sim.url().parse().expect("simulator URL"),
        api_version: ApiVersion::V2,
        trust,
        timeout: Duration::from_secs(10),
        page_size: 100,
        source: credentials.clone(),
        target: credentials,
        limits: sim.limits(),
    }
}

pub async fn client_for(sim: &Simulator) -> Client {
    Client::connect(settings_for(sim)).await.expect("login")
}
