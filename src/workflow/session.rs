//! Logging in as the operator's settings say: the settings file and the environment resolved
//! into a connection, the passwords read (or asked for), then the source site; and the target
//! site of a pairing for the commands that read it. A login that fails is [`LoginFailed`],
//! naming the site (the operator contract's exit 3), with the appliance's words as its cause.

use thiserror::Error;

use crate::config::{ConfigError, ConfigFile, Connection, ProcessEnvironment};
use crate::vr::model::Pairing;
use crate::vr::{ApiError, Client, ClientSettings};

/// Logging in to a site failed.
#[derive(Debug, Error)]
#[error("logging in to {site}")]
pub struct LoginFailed {
    /// The source site's URL, or the target site's vCenter.
    pub site: String,
    pub user: String,
    #[source]
    pub source: ApiError,
}

/// No session with the source site: its settings are incomplete or wrong (exit 2), or it did not
/// take the login (exit 3).
#[derive(Debug, Error)]
pub enum ConnectError {
    #[error(transparent)]
    Settings(#[from] ConfigError),

    #[error(transparent)]
    Login(#[from] LoginFailed),
}

/// Logs in to the source site with the settings of `file` and the environment, with the
/// standard politeness: the appliance's budget, retries of transient failures.
pub async fn connect(file: &ConfigFile) -> Result<Client, ConnectError> {
    let env = ProcessEnvironment;
    let settings = Connection::resolve(file, &env)?.with_passwords(&env)?;
    Ok(login(settings).await?)
}

/// Logs in to the source site with `settings`.
pub async fn login(settings: ClientSettings) -> Result<Client, LoginFailed> {
    let (site, user) = (settings.url.to_string(), settings.source.user.clone());
    Client::connect(settings)
        .await
        .map_err(|source| LoginFailed { site, user, source })
}

/// Logs in to the target site of `pairing`, named by its vCenter: the appliance's refusal
/// names the pairing already.
pub async fn remote_login(client: &Client, pairing: &Pairing) -> Result<(), LoginFailed> {
    client
        .remote_login(&pairing.pairing_id)
        .await
        .map_err(|source| LoginFailed {
            site: pairing
                .remote_vc_server
                .name
                .clone()
                .unwrap_or_else(|| format!("the target site of pairing {}", pairing.pairing_id)),
            user: client.settings().target.user.clone(),
            source,
        })
}
