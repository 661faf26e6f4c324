//! The typed async client of the vSphere Replication REST API.
//!
//! It owns the session: `POST /session` with HTTP Basic, `x-dr-session` on every later call, a
//! remote login per pairing for calls that touch the target site, and a single-flight re-login
//! when the server answers 401 (an expired session takes its remote logins with it, so those are
//! redone before the new session is published). It follows `limit`/`offset` paging and decodes
//! with the path of the offending field. Every request of every client of one appliance goes
//! through that appliance's [`Budget`], and a 429 is waited out there, never handed to the caller
//! before `max_throttled`. Reads are retried a few times on transient failures ([`RetryPolicy`]);
//! writes never are: what happened to a write whose answer was lost is for the caller to find out.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::future::Future;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use reqwest::header::{HeaderValue, ACCEPT, CONTENT_TYPE, RETRY_AFTER};
use reqwest::{Method, Url};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::budget::{Budget, Limits, Outcome};
use super::error::{
    ApiError, CredentialsRefused, ErrorClass, SetupError, Site, StatusError, UntrustedError,
};
use super::model::*;
use super::tls::{pinned_config, presented_thumbprint, TlsTrust};
use crate::secret::Secret;

/// Which REST API generation to speak; v1 shares v2's shapes for everything vrbulk calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ApiVersion {
    V1,
    #[default]
    V2,
}

impl ApiVersion {
    pub fn as_str(self) -> &'static str {
        match self {
            ApiVersion::V1 => "v1",
            ApiVersion::V2 => "v2",
        }
    }
}

impl std::str::FromStr for ApiVersion {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "v1" | "1" => Ok(ApiVersion::V1),
            "v2" | "2" => Ok(ApiVersion::V2),
            other => Err(format!("api_version `{other}`: expected v1 or v2")),
        }
    }
}

/// A user of one site. The password is a [`Secret`], so `Debug` is safe to log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    pub user: String,
    pub password: Secret,
}

/// Everything needed to talk to one VR appliance and its paired site.
#[derive(Debug, Clone)]
pub struct ClientSettings {
    /// `https://host[:port]`, without the API prefix.
    pub url: Url,
    pub api_version: ApiVersion,
    pub trust: TlsTrust,
    /// Per-request timeout.
    pub timeout: Duration,
    /// `limit` sent on list calls.
    pub page_size: u32,
    pub source: Credentials,
    /// The target site's user for `POST /pairings/{p}/remote-session`.
    pub target: Credentials,
    /// The appliance's rate limiter, which the shared [`Budget`] keeps to.
    pub limits: Limits,
}

/// `filter_property=<property>&filter=<v1>&filter=<v2>…`
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filter {
    pub property: String,
    pub values: Vec<String>,
}

impl Filter {
    pub fn new(
        property: impl Into<String>,
        values: impl IntoIterator<Item = impl Into<String>>,
    ) -> Self {
        Filter {
            property: property.into(),
            values: values.into_iter().map(Into::into).collect(),
        }
    }

    /// The query pairs of an optional filter.
    fn query(filter: Option<&Filter>) -> Vec<(String, String)> {
        let Some(f) = filter else { return Vec::new() };
        std::iter::once(("filter_property".to_string(), f.property.clone()))
            .chain(f.values.iter().map(|v| ("filter".to_string(), v.clone())))
            .collect()
    }
}

/// One page of a list and the number of items the server counts in the whole list.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub total: Option<i64>,
}

/// What one API operation (the spec's operationId) has cost the server so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct OpUsage {
    /// HTTP requests sent, retries included.
    pub calls: u64,
    /// Answers with 429.
    pub throttled: u64,
    /// Answers with 5xx.
    pub server_errors: u64,
    /// Requests repeated after a transient failure or a 429.
    pub retries: u64,
}

/// What this client has cost the server so far.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ClientMetrics {
    pub ops: BTreeMap<String, OpUsage>,
    pub relogins: u64,
    /// When the last request that changes a replication left (Unix ms).
    pub last_change_at: Option<i64>,
}

impl OpUsage {
    fn zip(self, other: OpUsage, f: impl Fn(u64, u64) -> u64) -> OpUsage {
        OpUsage {
            calls: f(self.calls, other.calls),
            throttled: f(self.throttled, other.throttled),
            server_errors: f(self.server_errors, other.server_errors),
            retries: f(self.retries, other.retries),
        }
    }

    pub fn plus(self, other: OpUsage) -> OpUsage {
        self.zip(other, u64::saturating_add)
    }

    /// What was spent between `earlier` and this.
    pub fn since(self, earlier: OpUsage) -> OpUsage {
        self.zip(earlier, u64::saturating_sub)
    }
}

impl ClientMetrics {
    pub fn total_calls(&self) -> u64 {
        self.total().calls
    }

    pub fn total(&self) -> OpUsage {
        self.ops
            .values()
            .fold(OpUsage::default(), |a, o| a.plus(*o))
    }

    pub fn calls(&self, op: &str) -> u64 {
        self.ops.get(op).map_or(0, |o| o.calls)
    }

    /// What was spent between `earlier` (a snapshot of the same client) and this.
    pub fn since(&self, earlier: &ClientMetrics) -> ClientMetrics {
        ClientMetrics {
            ops: self
                .ops
                .iter()
                .map(|(op, u)| {
                    let before = earlier.ops.get(op).copied().unwrap_or_default();
                    (op.clone(), u.since(before))
                })
                .collect(),
            relogins: self.relogins.saturating_sub(earlier.relogins),
            last_change_at: self.last_change_at,
        }
    }
}

/// How hard this client may press the server beyond the appliance's budget, which every client
/// shares: a cap on requests in flight, and quick retries inside one request.
#[derive(Clone, Default)]
pub struct Politeness {
    pub in_flight: Option<Arc<tokio::sync::Semaphore>>,
    pub retry: RetryPolicy,
}

impl Politeness {
    /// At most `in_flight` requests at once, `retry` inside each.
    pub fn new(in_flight: usize, retry: RetryPolicy) -> Politeness {
        Politeness {
            in_flight: Some(Arc::new(tokio::sync::Semaphore::new(in_flight.max(1)))),
            retry,
        }
    }

    /// What every command that talks to an appliance uses: 8 requests in flight, transient
    /// failures of reads retried four times.
    pub fn standard() -> Politeness {
        Politeness::new(8, RetryPolicy::patient(4))
    }
}

/// Retries inside one request: transient failures of reads (and of the remote login, which
/// only renews a session) with exponential backoff and full jitter (or the server's
/// `Retry-After`), and 429s of any call, which the budget waits out. A write whose effect is
/// unknown is never repeated here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    pub max_retries: u32,
    pub base: Duration,
    pub cap: Duration,
    /// A `Retry-After` longer than this on a transient failure is not waited out here.
    pub max_retry_after: Duration,
    /// How long one request waits out refusals (429) before its caller sees one.
    pub max_throttled: Duration,
}

impl Default for RetryPolicy {
    /// No retries of transient failures: the caller sees each. Throttling is waited out.
    fn default() -> Self {
        RetryPolicy {
            max_retries: 0,
            base: Duration::from_millis(200),
            cap: Duration::from_secs(10),
            max_retry_after: Duration::from_secs(60),
            max_throttled: Duration::from_secs(30 * 60),
        }
    }
}

impl RetryPolicy {
    pub fn patient(max_retries: u32) -> Self {
        RetryPolicy {
            max_retries,
            ..RetryPolicy::default()
        }
    }

    /// Full jitter: a random wait between zero and the exponential step.
    pub fn delay(&self, retry: u32) -> Duration {
        full_jitter(self.base, self.cap, retry)
    }
}

/// A random wait between zero and `base * 2^n`, at most `cap` (the "full jitter" of AWS's
/// backoff study): retries of many clients spread out instead of arriving together.
pub fn full_jitter(base: Duration, cap: Duration, n: u32) -> Duration {
    base.saturating_mul(2u32.saturating_pow(n))
        .min(cap)
        .mul_f64(fastrand::f64())
}

/// A cheap-to-clone handle; clones share the session, the re-login lock and the metrics.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("url", &self.inner.settings.url.as_str())
            .field("user", &self.inner.settings.source.user)
            .finish_non_exhaustive()
    }
}

struct Inner {
    http: reqwest::Client,
    settings: ClientSettings,
    session: RwLock<Session>,
    relogin: tokio::sync::Mutex<()>,
    /// Pairings whose remote login must be redone after a re-login.
    remote_pairings: Mutex<BTreeSet<String>>,
    metrics: Mutex<ClientMetrics>,
    politeness: Politeness,
    budget: Arc<Budget>,
    /// The end of the change window (Unix ms): no change leaves after it.
    changes_until: RwLock<Option<i64>>,
    /// The sites that refused the user's credentials, and how: never asked again.
    refused: Mutex<HashMap<Site, CredentialsRefused>>,
    /// How long the appliance keeps a session, as learnt from the sessions it ended.
    lifetime: Mutex<Lifetime>,
}

/// The spec does not say how long a session lives; the ages at which the appliance ended them
/// do. Two ends alike (within a quarter) make a lifetime; an end unlike the one before (a
/// restart, an admin closing sessions) unlearns it, so that one odd end never makes the client
/// log in again and again.
#[derive(Debug, Default)]
struct Lifetime {
    /// The last session seen to end (its birth: many requests may meet the same end), and its
    /// age then.
    last: Option<Instant>,
    last_end: Option<Duration>,
    learnt: Option<Duration>,
}

impl Lifetime {
    fn ended(&mut self, born: Instant) {
        if self.last == Some(born) {
            return;
        }
        let age = born.elapsed();
        self.learnt = self
            .last_end
            .filter(|last| age.as_secs_f64() >= last.as_secs_f64() * 0.75)
            .filter(|last| age.as_secs_f64() <= last.as_secs_f64() * 1.25)
            .map(|last| last.min(age));
        self.last = Some(born);
        self.last_end = Some(age);
    }
}

#[derive(Default)]
struct Session {
    id: Option<Secret>,
    /// Bumped at every login, so that concurrent 401s trigger one re-login, not one each.
    generation: u64,
    /// When the appliance gave it.
    born: Option<Instant>,
}

/// Which credentials a session-bound request carries (login itself goes through `send_once`).
#[derive(Clone, Copy)]
enum Auth<'a> {
    Session,
    /// A site's login on top of the session: the credentials, and the site they are for.
    SessionAndBasic(&'a Credentials, &'a Site),
}

/// One request, as the spec names it.
struct Call<'a> {
    /// The spec's operationId, for metrics and logs.
    op: &'static str,
    method: Method,
    path: &'a [&'a str],
    query: &'a [(String, String)],
    body: Option<&'a [u8]>,
    /// Sending it twice does no harm, so a transient failure may be retried here.
    idempotent: bool,
    /// It changes a replication (configure, a day-2 action): it must not leave after the
    /// change window.
    change: bool,
}

impl<'a> Call<'a> {
    fn get(op: &'static str, path: &'a [&'a str], query: &'a [(String, String)]) -> Self {
        Call {
            op,
            method: Method::GET,
            path,
            query,
            body: None,
            idempotent: true,
            change: false,
        }
    }

    fn post(op: &'static str, path: &'a [&'a str], body: Option<&'a [u8]>) -> Self {
        Call {
            op,
            method: Method::POST,
            path,
            query: &[],
            body,
            idempotent: false,
            change: false,
        }
    }

    /// A request that changes a replication.
    fn change(op: &'static str, path: &'a [&'a str], body: Option<&'a [u8]>) -> Self {
        Call {
            change: true,
            ..Call::post(op, path, body)
        }
    }
}

impl Client {
    /// Builds the HTTP client (no network traffic yet): the appliance's budget, no retries of
    /// transient failures.
    pub fn new(settings: ClientSettings) -> Result<Client, ApiError> {
        Client::with_politeness(settings, Politeness::default())
    }

    pub fn with_politeness(
        settings: ClientSettings,
        politeness: Politeness,
    ) -> Result<Client, ApiError> {
        let builder = reqwest::Client::builder()
            .timeout(settings.timeout)
            .connect_timeout(settings.timeout.min(Duration::from_secs(30)))
            .user_agent(concat!("vrbulk/", env!("CARGO_PKG_VERSION")));
        let builder = match &settings.trust {
            TlsTrust::Verify => builder.use_rustls_tls(),
            TlsTrust::VerifyWithCa(path) => {
                let pem = std::fs::read(path).map_err(|source| SetupError::CaFile {
                    path: path.clone(),
                    source,
                })?;
                let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|source| {
                    SetupError::CaFileNotPem {
                        path: path.clone(),
                        source,
                    }
                })?;
                if certs.is_empty() {
                    return Err(SetupError::CaFileEmpty { path: path.clone() }.into());
                }
                certs
                    .into_iter()
                    .fold(builder.use_rustls_tls(), |b, c| b.add_root_certificate(c))
            }
            TlsTrust::Pinned(pin) => {
                builder.use_preconfigured_tls(pinned_config(*pin).map_err(SetupError::Tls)?)
            }
            TlsTrust::Insecure => {
                tracing::warn!(
                    url = settings.url.as_str(),
                    "TLS certificate verification is OFF (insecure = true): anyone on the path can \
                     impersonate the appliance; pin its thumbprint instead"
                );
                builder.use_rustls_tls().danger_accept_invalid_certs(true)
            }
        };
        let http = builder.build().map_err(SetupError::HttpClient)?;
        let budget = Budget::shared(&settings.url, settings.limits);
        Ok(Client {
            inner: Arc::new(Inner {
                http,
                settings,
                session: RwLock::new(Session::default()),
                relogin: tokio::sync::Mutex::new(()),
                remote_pairings: Mutex::new(BTreeSet::new()),
                metrics: Mutex::new(ClientMetrics::default()),
                politeness,
                budget,
                changes_until: RwLock::new(None),
                refused: Mutex::new(HashMap::new()),
                lifetime: Mutex::new(Lifetime::default()),
            }),
        })
    }

    /// Builds a client with [`Politeness::standard`] and logs in to the source site.
    pub async fn connect(settings: ClientSettings) -> Result<Client, ApiError> {
        let client = Client::with_politeness(settings, Politeness::standard())?;
        client.login().await?;
        Ok(client)
    }

    pub fn settings(&self) -> &ClientSettings {
        &self.inner.settings
    }

    pub fn metrics(&self) -> ClientMetrics {
        lock(&self.inner.metrics).clone()
    }

    /// The appliance's request budget this client spends.
    pub fn budget(&self) -> &Arc<Budget> {
        &self.inner.budget
    }

    /// No request that changes a replication leaves this client if it could reach the appliance
    /// at `until` (Unix ms) or later: it is answered [`ApiError::WindowClosed`] without being
    /// sent. Checked when the request's turn comes (after its wait for a slot of the budget, a
    /// retry's backoff, a re-login), so that the end of a change window holds however long the
    /// wait was.
    pub fn close_changes_at(&self, until: Option<i64>) {
        *write(&self.inner.changes_until) = until;
    }

    /// `POST /session`: a new session for the source site.
    pub async fn login(&self) -> Result<(), ApiError> {
        let id = self.new_session().await?;
        self.publish(id);
        Ok(())
    }

    fn publish(&self, id: Secret) {
        let mut session = write(&self.inner.session);
        session.id = Some(id);
        session.generation += 1;
        session.born = Some(Instant::now());
    }

    /// `DELETE /session`. The server forgets the session and its remote logins.
    pub async fn logout(&self) -> Result<(), ApiError> {
        let id = write(&self.inner.session).id.take();
        if let Some(id) = id {
            let call = Call {
                method: Method::DELETE,
                ..Call::get("logout", &["session"], &[])
            };
            self.send_once(&call, None, Some(&id)).await?;
        }
        lock(&self.inner.remote_pairings).clear();
        Ok(())
    }

    /// `GET /session`
    pub async fn session_info(&self) -> Result<SessionInfo, ApiError> {
        self.get("getCurrentSession", &["session"], Vec::new())
            .await
    }

    /// `GET /pairings`
    pub async fn pairings(&self) -> Result<Vec<Pairing>, ApiError> {
        self.list("getVrPairings", &["pairings"], Vec::new()).await
    }

    /// `POST /pairings/{p}/remote-session` with the target site's credentials. Remembered, so a
    /// re-login after an expired session restores it.
    pub async fn remote_login(&self, pairing_id: &str) -> Result<(), ApiError> {
        let site = Site::Target {
            pairing_id: pairing_id.to_string(),
        };
        self.not_refused(&site)?;
        let target = &self.inner.settings.target;
        let path = ["pairings", pairing_id, "remote-session"];
        // Logging in again only renews the remote session: safe to retry.
        let call = Call {
            idempotent: true,
            ..Call::post("createRemoteSession", &path, None)
        };
        self.call(&call, Auth::SessionAndBasic(target, &site))
            .await?;
        lock(&self.inner.remote_pairings).insert(pairing_id.to_string());
        Ok(())
    }

    /// `GET /pairings/{p}/remote-session`
    pub async fn remote_session_info(&self, pairing_id: &str) -> Result<SessionInfo, ApiError> {
        self.get(
            "getRemoteSession",
            &["pairings", pairing_id, "remote-session"],
            Vec::new(),
        )
        .await
    }

    /// `GET /info`: the appliance this client talks to, its version included.
    pub async fn info(&self) -> Result<VrmsInfo, ApiError> {
        self.get("getVrInfo", &["info"], Vec::new()).await
    }

    /// `GET /pairings/{p}/vrs`: the VRMS of both sites.
    pub async fn vrms(&self, pairing_id: &str) -> Result<Vec<VrmsInfo>, ApiError> {
        self.get::<DrList<VrmsInfo>>(
            "getAllVrDetailsInPairing",
            &["pairings", pairing_id, "vrs"],
            Vec::new(),
        )
        .await
        .map(|l| l.list)
    }

    /// `GET /pairings/{p}/vrs/{vr}/replication-servers`
    pub async fn replication_servers(
        &self,
        pairing_id: &str,
        vrms_id: &str,
    ) -> Result<Vec<ReplicationServerInfo>, ApiError> {
        self.list(
            "getAllVrServersInPairing",
            &[
                "pairings",
                pairing_id,
                "vrs",
                vrms_id,
                "replication-servers",
            ],
            Vec::new(),
        )
        .await
    }

    /// `GET /pairings/{p}/vcenters/{vc}/vms`, with their disks.
    pub async fn vms(
        &self,
        pairing_id: &str,
        vcenter_id: &str,
        suitable_for_replication: bool,
        filter: Option<&Filter>,
    ) -> Result<Vec<VirtualMachine>, ApiError> {
        let mut query = Filter::query(filter);
        if suitable_for_replication {
            query.push(("suitable_for_replication".into(), "true".into()));
        }
        self.list(
            "getLocalVms",
            &["pairings", pairing_id, "vcenters", vcenter_id, "vms"],
            query,
        )
        .await
    }

    /// One page of `GET /pairings/{p}/vcenters/{vc}/vms`, from `offset`, with the total the
    /// server counts: for a caller that decides after the first page whether listing on is
    /// cheaper than asking by name.
    pub async fn vms_page(
        &self,
        pairing_id: &str,
        vcenter_id: &str,
        suitable_for_replication: bool,
        offset: usize,
    ) -> Result<Page<VirtualMachine>, ApiError> {
        let query = if suitable_for_replication {
            vec![("suitable_for_replication".into(), "true".into())]
        } else {
            Vec::new()
        };
        self.page(
            "getLocalVms",
            &["pairings", pairing_id, "vcenters", vcenter_id, "vms"],
            &query,
            offset,
        )
        .await
    }

    /// `GET /pairings/{p}/vcenters/{vc}/vms/{vm}/disks`
    pub async fn vm_disks(
        &self,
        pairing_id: &str,
        vcenter_id: &str,
        vm_id: &str,
    ) -> Result<Vec<VmDisk>, ApiError> {
        self.list(
            "getLocalVmDisks",
            &[
                "pairings", pairing_id, "vcenters", vcenter_id, "vms", vm_id, "disks",
            ],
            Vec::new(),
        )
        .await
    }

    /// `GET /pairings/{p}/vcenters/{vc}/vms/{vm}/capability`
    pub async fn vm_capability(
        &self,
        pairing_id: &str,
        vcenter_id: &str,
        vm_id: &str,
    ) -> Result<VmCapabilities, ApiError> {
        self.get::<DrEntity<VmCapabilities>>(
            "getVmCapability",
            &[
                "pairings",
                pairing_id,
                "vcenters",
                vcenter_id,
                "vms",
                vm_id,
                "capability",
            ],
            Vec::new(),
        )
        .await
        .map(|e| e.entity)
    }

    /// `GET /pairings/{p}/vcenters/{vc}/datastores`
    pub async fn datastores(
        &self,
        pairing_id: &str,
        vcenter_id: &str,
    ) -> Result<Vec<Datastore>, ApiError> {
        self.list(
            "getVrCapableTargetDatastores",
            &["pairings", pairing_id, "vcenters", vcenter_id, "datastores"],
            Vec::new(),
        )
        .await
    }

    /// `GET /pairings/{p}/vcenters/{vc}/storage-policies`
    pub async fn storage_policies(
        &self,
        pairing_id: &str,
        vcenter_id: &str,
    ) -> Result<Vec<StoragePolicy>, ApiError> {
        self.list(
            "getVcStoragePolicies",
            &[
                "pairings",
                pairing_id,
                "vcenters",
                vcenter_id,
                "storage-policies",
            ],
            Vec::new(),
        )
        .await
    }

    /// `GET /pairings/{p}/replications`
    pub async fn replications(
        &self,
        pairing_id: &str,
        filter: Option<&Filter>,
    ) -> Result<Vec<ReplicationInfo>, ApiError> {
        let query = Filter::query(filter);
        self.list(
            "getAllReplications",
            &["pairings", pairing_id, "replications"],
            query,
        )
        .await
    }

    /// `POST /pairings/{p}/replications`: one task per spec, in the order of `specs`.
    ///
    /// Not idempotent: the caller must find out what happened before repeating a call whose
    /// answer was lost. Only a 401 (nothing was done) is repeated here, after the re-login.
    pub async fn configure_replications(
        &self,
        pairing_id: &str,
        specs: &[ConfigureReplicationSpec],
    ) -> Result<Vec<Task>, ApiError> {
        let path = ["pairings", pairing_id, "replications"];
        let body = serde_json::to_vec(specs).map_err(SetupError::Encode)?;
        let bytes = self
            .call(
                &Call::change("configureReplication", &path, Some(&body)),
                Auth::Session,
            )
            .await?;
        decode::<DrList<Task>>("POST", &display_path(&path), &bytes).map(|l| l.list)
    }

    /// `GET /pairings/{p}/replications/{id}`
    pub async fn replication(
        &self,
        pairing_id: &str,
        replication_id: &str,
    ) -> Result<ReplicationInfo, ApiError> {
        self.get::<DrEntity<ReplicationInfo>>(
            "getReplicationInfo",
            &["pairings", pairing_id, "replications", replication_id],
            Vec::new(),
        )
        .await
        .map(|e| e.entity)
    }

    /// `GET /pairings/{p}/replications/{id}/disks`: every disk of the VM, replicated or not, as a
    /// reconfigure must send them back.
    pub async fn replication_disks(
        &self,
        pairing_id: &str,
        replication_id: &str,
    ) -> Result<Vec<ReplicatedVmDisk>, ApiError> {
        self.list(
            "getReplicatedVmDisks",
            &[
                "pairings",
                pairing_id,
                "replications",
                replication_id,
                "disks",
            ],
            Vec::new(),
        )
        .await
    }

    /// `POST /pairings/{p}/replications/{id}/actions/unconfigure`: the task that removes the
    /// replication on both sites. Not idempotent (as every call below that changes a
    /// replication): the caller finds out what happened before sending it again.
    pub async fn unconfigure_replication(
        &self,
        pairing_id: &str,
        replication_id: &str,
        retain_replica_disks: bool,
    ) -> Result<Task, ApiError> {
        let path = [
            "pairings",
            pairing_id,
            "replications",
            replication_id,
            "actions",
            "unconfigure",
        ];
        let query = [(
            "retain_replica_disks".to_string(),
            retain_replica_disks.to_string(),
        )];
        let call = Call {
            query: &query,
            ..Call::change("unconfigureReplication", &path, None)
        };
        let bytes = self.call(&call, Auth::Session).await?;
        decode::<DrEntity<Task>>("POST", &display_path(&path), &bytes).map(|e| e.entity)
    }

    /// `POST /pairings/{p}/replications/{id}/actions/reconfigure`: the task that applies `spec`
    /// (the whole configuration, every disk of the VM included).
    pub async fn reconfigure_replication(
        &self,
        pairing_id: &str,
        replication_id: &str,
        spec: &ReconfigureReplicationSpec,
    ) -> Result<Task, ApiError> {
        let path = [
            "pairings",
            pairing_id,
            "replications",
            replication_id,
            "actions",
            "reconfigure",
        ];
        let body = serde_json::to_vec(spec).map_err(SetupError::Encode)?;
        let bytes = self
            .call(
                &Call::change("reconfigureReplication", &path, Some(&body)),
                Auth::Session,
            )
            .await?;
        decode::<DrEntity<Task>>("POST", &display_path(&path), &bytes).map(|e| e.entity)
    }

    /// `POST /pairings/{p}/replications/{id}/actions/pause`
    pub async fn pause_replication(
        &self,
        pairing_id: &str,
        replication_id: &str,
    ) -> Result<Task, ApiError> {
        self.replication_action("pauseReplication", pairing_id, replication_id, "pause")
            .await
    }

    /// `POST /pairings/{p}/replications/{id}/actions/resume`
    pub async fn resume_replication(
        &self,
        pairing_id: &str,
        replication_id: &str,
    ) -> Result<Task, ApiError> {
        self.replication_action("resumeReplication", pairing_id, replication_id, "resume")
            .await
    }

    /// `POST /pairings/{p}/replications/{id}/actions/sync`: a sync now.
    pub async fn sync_replication(
        &self,
        pairing_id: &str,
        replication_id: &str,
    ) -> Result<Task, ApiError> {
        self.replication_action("syncReplication", pairing_id, replication_id, "sync")
            .await
    }

    /// `POST /pairings/{p}/replications/{id}/actions/{action}` without a body.
    async fn replication_action(
        &self,
        operation: &'static str,
        pairing_id: &str,
        replication_id: &str,
        action: &str,
    ) -> Result<Task, ApiError> {
        let path = [
            "pairings",
            pairing_id,
            "replications",
            replication_id,
            "actions",
            action,
        ];
        let bytes = self
            .call(&Call::change(operation, &path, None), Auth::Session)
            .await?;
        decode::<DrEntity<Task>>("POST", &display_path(&path), &bytes).map(|e| e.entity)
    }

    /// `DELETE /pairings/{p}/replications/{id}`: the task that removes the replication on the
    /// local site only. Meant for when the remote site is down: the target site keeps whatever
    /// it had, to be cleaned up there.
    pub async fn destroy_replication(
        &self,
        pairing_id: &str,
        replication_id: &str,
        retain_replica_disks: bool,
    ) -> Result<Task, ApiError> {
        let path = ["pairings", pairing_id, "replications", replication_id];
        let query = [(
            "retain_replica_disks".to_string(),
            retain_replica_disks.to_string(),
        )];
        let call = Call {
            method: Method::DELETE,
            query: &query,
            ..Call::change("destroyReplication", &path, None)
        };
        let bytes = self.call(&call, Auth::Session).await?;
        decode::<DrEntity<Task>>("DELETE", &display_path(&path), &bytes).map(|e| e.entity)
    }

    /// `GET /tasks`: the server's recent tasks.
    pub async fn tasks(&self, filter: Option<&Filter>) -> Result<Vec<Task>, ApiError> {
        self.list("getRecentTasksInfo", &["tasks"], Filter::query(filter))
            .await
    }

    /// `GET /tasks/{id}`
    pub async fn task(&self, task_id: &str) -> Result<Task, ApiError> {
        self.get::<DrEntity<Task>>("getTaskInfo", &["tasks", task_id], Vec::new())
            .await
            .map(|e| e.entity)
    }

    async fn get<T: DeserializeOwned>(
        &self,
        op: &'static str,
        path: &[&str],
        query: Vec<(String, String)>,
    ) -> Result<T, ApiError> {
        let bytes = self
            .call(&Call::get(op, path, &query), Auth::Session)
            .await?;
        decode("GET", &display_path(path), &bytes)
    }

    /// Follows `limit`/`offset` until `_meta.total` items have arrived.
    async fn list<T: DeserializeOwned>(
        &self,
        op: &'static str,
        path: &[&str],
        query: Vec<(String, String)>,
    ) -> Result<Vec<T>, ApiError> {
        let page_size = self.page_size();
        let mut items = Vec::new();
        loop {
            let page: Page<T> = self.page(op, path, &query, items.len()).await?;
            let received = page.items.len();
            items.extend(page.items);
            let more = match page.total {
                Some(total) => (items.len() as i64) < total,
                // Without a total, a full page may be followed by another.
                None => received == page_size,
            };
            if !more || received == 0 {
                return Ok(items);
            }
        }
    }

    /// One page of a list, `limit` being the configured page size.
    async fn page<T: DeserializeOwned>(
        &self,
        op: &'static str,
        path: &[&str],
        query: &[(String, String)],
        offset: usize,
    ) -> Result<Page<T>, ApiError> {
        let mut page_query = query.to_vec();
        page_query.push(("limit".into(), self.page_size().to_string()));
        page_query.push(("offset".into(), offset.to_string()));
        let list: DrList<T> = self.get(op, path, page_query).await?;
        Ok(Page {
            total: list.meta.and_then(|m| m.total),
            items: list.list,
        })
    }

    /// Items per page of every list call.
    pub fn page_size(&self) -> usize {
        self.inner.settings.page_size.max(1) as usize
    }

    /// One API call, repeated once after a re-login when the session turned out to be gone,
    /// after every 429 (the budget waits for the server's next window), and as the
    /// [`RetryPolicy`] allows after a transient failure of a read.
    async fn call(&self, call: &Call<'_>, auth: Auth<'_>) -> Result<Vec<u8>, ApiError> {
        self.retrying(call, || self.call_with_session(call, auth))
            .await
    }

    /// Repeats `attempt` after every 429 (the budget waits for the server's next window) and,
    /// for an idempotent call, as the [`RetryPolicy`] allows after a transient failure.
    async fn retrying<F, Fut>(&self, call: &Call<'_>, attempt: F) -> Result<Vec<u8>, ApiError>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<Vec<u8>, ApiError>>,
    {
        let policy = self.inner.politeness.retry;
        let mut retries = 0;
        let mut throttled_since = None;
        loop {
            let result = attempt().await;
            let Err(e) = &result else { return result };
            match e.class() {
                // Back-pressure, not failure: the budget has closed until the server's window
                // is over, so the next try waits for it. It is not one of the request's retries.
                ErrorClass::Throttled => {
                    let since = *throttled_since.get_or_insert_with(Instant::now);
                    if since.elapsed() >= policy.max_throttled {
                        return result;
                    }
                }
                ErrorClass::Transient if call.idempotent && retries < policy.max_retries => {
                    let wait = e
                        .retry_after()
                        .filter(|d| *d <= policy.max_retry_after)
                        .unwrap_or_else(|| policy.delay(retries));
                    tracing::debug!(op = call.op, retries, wait_ms = wait.as_millis() as u64, error = %super::error::error_chain(&e), "retrying");
                    self.usage(call.op, |u| u.retries += 1);
                    tokio::time::sleep(wait).await;
                    retries += 1;
                }
                _ => return result,
            }
        }
    }

    async fn call_with_session(
        &self,
        call: &Call<'_>,
        auth: Auth<'_>,
    ) -> Result<Vec<u8>, ApiError> {
        let mut relogged = false;
        loop {
            let (session, generation, born) = {
                let s = read(&self.inner.session);
                (s.id.clone(), s.generation, s.born)
            };
            if !relogged && self.outlived(born) {
                tracing::debug!(
                    op = call.op,
                    "renewing the session before the appliance ends it"
                );
                self.relogin(generation).await?;
                relogged = true;
                continue;
            }
            let basic = match auth {
                Auth::Session => None,
                Auth::SessionAndBasic(c, _) => Some(c),
            };
            match self.send_once(call, basic, session.as_ref()).await {
                Err(e) if e.class() == ErrorClass::Session => {
                    // A 401 to a request that carries a site's credentials may be about either:
                    // while the session lives, it is the credentials, and asking again with them
                    // would only count towards the account's lockout.
                    if let Auth::SessionAndBasic(c, site) = auth {
                        if self.session_alive(session.as_ref()).await? {
                            return Err(self.refusal(site.clone(), &c.user, e));
                        }
                    }
                    if relogged {
                        return Err(e);
                    }
                    self.learn_lifetime(born);
                    tracing::info!(op = call.op, "session rejected (401); logging in again");
                    self.relogin(generation).await?;
                    relogged = true;
                }
                other => return other,
            }
        }
    }

    /// Whether the appliance still knows the session (`GET /session`).
    async fn session_alive(&self, session: Option<&Secret>) -> Result<bool, ApiError> {
        let Some(id) = session else { return Ok(false) };
        let call = Call::get("getCurrentSession", &["session"], &[]);
        match self.send_once(&call, None, Some(id)).await {
            Ok(_) => Ok(true),
            Err(e) if e.class() == ErrorClass::Session => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// A session that the appliance ended tells how long it keeps one ([`Lifetime`]).
    fn learn_lifetime(&self, born: Option<Instant>) {
        if let Some(b) = born {
            lock(&self.inner.lifetime).ended(b);
        }
    }

    /// Whether a session born then is near the end of the lifetime learnt, so that renewing it
    /// now spares a request its 401 (a configure among them).
    fn outlived(&self, born: Option<Instant>) -> bool {
        let lifetime = lock(&self.inner.lifetime).learnt;
        match (born, lifetime) {
            (Some(b), Some(l)) => b.elapsed() >= l.mul_f64(RENEW_AT),
            _ => false,
        }
    }

    /// Single flight: the first caller that saw generation `seen` logs in again, with the remote
    /// logins, before publishing the new session; the others wait on the lock and find it done.
    async fn relogin(&self, seen: u64) -> Result<(), ApiError> {
        let _flight = self.inner.relogin.lock().await;
        if read(&self.inner.session).generation != seen {
            return Ok(());
        }
        let id = self.new_session().await?;
        let pairings: Vec<String> = lock(&self.inner.remote_pairings).iter().cloned().collect();
        let target = &self.inner.settings.target;
        for pairing_id in &pairings {
            let path = ["pairings", pairing_id.as_str(), "remote-session"];
            let call = Call {
                idempotent: true,
                ..Call::post("createRemoteSession", &path, None)
            };
            let site = Site::Target {
                pairing_id: pairing_id.clone(),
            };
            self.not_refused(&site)?;
            match self
                .retrying(&call, || self.send_once(&call, Some(target), Some(&id)))
                .await
            {
                // As in `call_with_session`: a 401 while the session lives is the credentials.
                Err(e)
                    if e.class() == ErrorClass::Session
                        && self.session_alive(Some(&id)).await? =>
                {
                    return Err(self.refusal(site, &target.user, e));
                }
                other => other?,
            };
        }
        self.publish(id);
        lock(&self.inner.metrics).relogins += 1;
        Ok(())
    }

    /// `POST /session`, retried as a read is (logging in twice does no harm). A 401 is the
    /// source site refusing its user: said once, never asked again.
    async fn new_session(&self) -> Result<Secret, ApiError> {
        self.not_refused(&Site::Source)?;
        let source = &self.inner.settings.source;
        let call = Call {
            idempotent: true,
            ..Call::post("login", &["session"], None)
        };
        let bytes = self
            .retrying(&call, || self.send_once(&call, Some(source), None))
            .await
            .map_err(|e| self.refusal(Site::Source, &source.user, e))?;
        let data: SessionIdData = decode("POST", "/session", &bytes)?;
        Ok(Secret::new(data.session_id))
    }

    /// The refusal `site` gave earlier, if it did: the login is not tried again.
    fn not_refused(&self, site: &Site) -> Result<(), ApiError> {
        match lock(&self.inner.refused).get(site) {
            Some(r) => Err(ApiError::CredentialsRefused(Box::new(r.clone()))),
            None => Ok(()),
        }
    }

    /// A login's error: a 401 is `site` refusing `user`, remembered for the rest of the run.
    fn refusal(&self, site: Site, user: &str, e: ApiError) -> ApiError {
        let ApiError::Status(status) = &e else {
            return e;
        };
        if status.status != 401 {
            return e;
        }
        let refused = CredentialsRefused {
            site: site.clone(),
            user: user.to_string(),
            method: status.method.clone(),
            path: status.path.clone(),
            message: status.message.clone(),
        };
        lock(&self.inner.refused).insert(site, refused.clone());
        ApiError::CredentialsRefused(Box::new(refused))
    }

    /// One HTTP exchange: waits for a request slot (in flight, then the appliance's budget),
    /// sends, and tells the budget what the server answered.
    async fn send_once(
        &self,
        call: &Call<'_>,
        basic: Option<&Credentials>,
        session: Option<&Secret>,
    ) -> Result<Vec<u8>, ApiError> {
        let request = self.request(call, basic, session)?;
        let _permit = match &self.inner.politeness.in_flight {
            Some(s) => s.acquire().await.ok(),
            None => None,
        };
        let budget = &self.inner.budget;
        let ticket = budget.acquire().await;
        if call.change {
            if let Some(closed_at) = self.changes_closed() {
                budget.unsend(ticket);
                return Err(ApiError::WindowClosed {
                    method: call.method.to_string(),
                    path: display_path(call.path),
                    closed_at,
                });
            }
        }
        self.usage(call.op, |u| u.calls += 1);
        if call.change {
            lock(&self.inner.metrics).last_change_at = Some(unix_ms());
        }
        let started = Instant::now();
        let answer = async {
            let response = request.send().await?;
            let status = response.status().as_u16();
            let retry_after = response
                .headers()
                .get(RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(Duration::from_secs);
            let bytes = response.bytes().await?;
            Ok::<_, reqwest::Error>((status, retry_after, bytes))
        }
        .await;
        let (status, retry_after, bytes) = match answer {
            Ok(a) => a,
            Err(e) => {
                budget.settle(ticket, Outcome::Unknown);
                return Err(self.transport_error(call, e).await);
            }
        };
        budget.settle(
            ticket,
            if status == 429 {
                Outcome::Refused { retry_after }
            } else {
                Outcome::Admitted
            },
        );
        tracing::debug!(
            op = call.op,
            method = %call.method,
            path = %display_path(call.path),
            status,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "VR API call"
        );
        if (200..300).contains(&status) {
            return Ok(bytes.to_vec());
        }
        Err(self.status_error(call, status, retry_after, &bytes))
    }

    fn request(
        &self,
        call: &Call<'_>,
        basic: Option<&Credentials>,
        session: Option<&Secret>,
    ) -> Result<reqwest::RequestBuilder, ApiError> {
        let mut request = self
            .inner
            .http
            .request(call.method.clone(), self.url_for(call.path)?)
            .header(ACCEPT, "application/json");
        if !call.query.is_empty() {
            request = request.query(call.query);
        }
        if let Some(c) = basic {
            request = request.basic_auth(&c.user, Some(c.password.expose()));
        }
        if let Some(id) = session {
            let mut value = HeaderValue::from_str(id.expose()).map_err(|_| ApiError::Decode {
                method: call.method.to_string(),
                path: display_path(call.path),
                detail: "the session id the server gave is not a valid header value".into(),
            })?;
            value.set_sensitive(true);
            request = request.header("x-dr-session", value);
        }
        if let Some(b) = call.body {
            request = request
                .header(CONTENT_TYPE, "application/json")
                .body(b.to_vec());
        }
        Ok(request)
    }

    /// A non-2xx answer as a typed error with the server's own words.
    fn status_error(
        &self,
        call: &Call<'_>,
        status: u16,
        retry_after: Option<Duration>,
        bytes: &[u8],
    ) -> ApiError {
        if status == 429 {
            self.usage(call.op, |u| u.throttled += 1);
        } else if status >= 500 {
            self.usage(call.op, |u| u.server_errors += 1);
        }
        let error: ResponseError = serde_json::from_slice(bytes).unwrap_or_default();
        let message = error.message.unwrap_or_else(|| {
            let text = String::from_utf8_lossy(bytes).trim().to_string();
            if text.is_empty() {
                reqwest::StatusCode::from_u16(status)
                    .ok()
                    .and_then(|s| s.canonical_reason())
                    .unwrap_or("no message")
                    .to_string()
            } else {
                text.chars().take(500).collect()
            }
        });
        ApiError::Status(Box::new(StatusError {
            method: call.method.to_string(),
            path: display_path(call.path),
            status,
            error_code: error.error_code,
            message,
            op_id: error.op_id,
            retry_after,
        }))
    }

    /// The end of the change window, once a request leaving now could reach the appliance
    /// after it.
    fn changes_closed(&self) -> Option<i64> {
        let until = (*read(&self.inner.changes_until))?;
        let margin = CHANGE_TRANSIT.as_millis() as i64;
        (unix_ms() + margin >= until).then_some(until)
    }

    fn usage(&self, op: &str, f: impl FnOnce(&mut OpUsage)) {
        f(lock(&self.inner.metrics)
            .ops
            .entry(op.to_string())
            .or_default());
    }

    fn url_for(&self, path: &[&str]) -> Result<Url, ApiError> {
        let base = &self.inner.settings.url;
        let mut url = base.clone();
        {
            let mut segments = url.path_segments_mut().map_err(|_| SetupError::BaseUrl {
                url: base.to_string(),
            })?;
            segments.pop_if_empty().extend([
                "api",
                "rest",
                "vr",
                self.inner.settings.api_version.as_str(),
            ]);
            segments.extend(path);
        }
        Ok(url)
    }

    async fn transport_error(&self, call: &Call<'_>, e: reqwest::Error) -> ApiError {
        let (method, path) = (call.method.to_string(), display_path(call.path));
        let url = self
            .inner
            .settings
            .url
            .as_str()
            .trim_end_matches('/')
            .to_string();
        if e.is_timeout() {
            return ApiError::Timeout {
                method,
                path,
                timeout: self.inner.settings.timeout,
                source: e.without_url(),
            };
        }
        if let Some(reason) = certificate_error(&e) {
            let presented =
                presented_thumbprint(&self.inner.settings.url, self.inner.settings.timeout).await;
            return ApiError::Untrusted(Box::new(UntrustedError {
                method,
                path,
                url,
                reason,
                presented,
            }));
        }
        ApiError::Connect {
            method,
            path,
            url,
            source: e.without_url(),
        }
    }
}

/// What the TLS layer said, when the handshake failed on the server's certificate. rustls'
/// error travels inside `io::Error`s (one in another), whose `source()` skips what they wrap,
/// hence the `get_ref`s.
fn certificate_error(e: &reqwest::Error) -> Option<String> {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(c) = cause {
        let mut inner = Some(c);
        while let Some(i) = inner {
            match i.downcast_ref::<rustls::Error>() {
                Some(e @ rustls::Error::InvalidCertificate(_)) => return Some(e.to_string()),
                Some(rustls::Error::General(why)) => return Some(why.clone()),
                _ => {}
            }
            inner = i
                .downcast_ref::<std::io::Error>()
                .and_then(|io| io.get_ref())
                .map(|e| e as &(dyn std::error::Error + 'static));
        }
        cause = c.source();
    }
    None
}

fn display_path(path: &[&str]) -> String {
    path.iter().fold(String::new(), |mut s, seg| {
        s.push('/');
        s.push_str(seg);
        s
    })
}

/// The wall clock in Unix ms, as change windows are given.
fn unix_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// How long a change may take to reach the appliance: one that could arrive after the end of
/// its change window is not sent.
const CHANGE_TRANSIT: Duration = Duration::from_secs(1);

/// A session is renewed once it has lived this share of the lifetime learnt: early enough that
/// the requests under way when it is due do not meet its end.
const RENEW_AT: f64 = 0.8;

/// Decodes JSON, naming the path of the field that did not fit (`list[3].disks[0].capacity`).
fn decode<T: DeserializeOwned>(method: &str, path: &str, bytes: &[u8]) -> Result<T, ApiError> {
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(de).map_err(|e| ApiError::Decode {
        method: method.to_string(),
        path: path.to_string(),
        detail: format!("at `{}`: {}", e.path(), e.inner()),
    })
}

// A poisoned lock only means another task panicked mid-update of plain counters or ids, which
// stay usable; refusing every later call would turn one bug into a failed batch.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn read<T>(m: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    m.read().unwrap_or_else(|p| p.into_inner())
}

fn write<T>(m: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    m.write().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(url: &str) -> ClientSettings {
        ClientSettings {
            url: Url::parse(url).unwrap(),
            api_version: ApiVersion::V2,
            trust: TlsTrust::Verify,
            timeout: Duration::from_secs(5),
            page_size: 100,
            source: Credentials {
                user: "administrator@vsphere.local".into(),
                password: Secret::new("s3cret!"),
            },
            target: Credentials {
                user: "administrator@vsphere.local".into(),
                password: Secret::new("s3cret!"),
            },
            limits: Limits::APPLIANCE,
        }
    }

    #[test]
    fn urls_carry_the_api_prefix_and_encode_segments() {
        let client = Client::new(settings("https://vr.example.com/")).unwrap();
        let url = client
            .url_for(&["pairings", "p 1", "vcenters", "vc", "vms"])
            .unwrap();
        assert_eq!(
            url.as_str(),
            "https://vr.example.com/api/rest/vr/v2/pairings/p%201/vcenters/vc/vms"
        );
    }

    #[test]
    fn debug_output_never_shows_the_password() {
        let client = Client::new(settings("https://vr.example.com")).unwrap();
        let shown = format!("{client:?} {:?}", client.settings());
        assert!(!shown.contains("s3cret"), "{shown}");
    }

    #[test]
    fn filters_become_repeated_query_values() {
        let q = Filter::query(Some(&Filter::new("name", ["a", "b c"])));
        let q: Vec<_> = q.iter().map(|(k, v)| format!("{k}={v}")).collect();
        assert_eq!(q, ["filter_property=name", "filter=a", "filter=b c"]);
    }
}
