//! The typed async client of the vSphere Replication REST API.
//!
//! It owns the session: `POST /session` with HTTP Basic, `x-dr-session` on every later call, a
//! remote login per pairing for calls that touch the target site, and a single-flight re-login
//! when the server answers 401 (an expired session takes its remote logins with it, so those are
//! redone before the new session is published). It follows `limit`/`offset` paging and decodes
//! with the path of the offending field. It does not retry transient failures itself: retry timing
//! belongs to the runner, which sees the error's class.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use reqwest::header::{HeaderValue, ACCEPT, CONTENT_TYPE, RETRY_AFTER};
use reqwest::{Method, Url};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::error::{ApiError, ErrorClass, StatusError};
use super::model::*;
use super::tls::{pinned_config, TlsTrust};
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
}

impl ClientMetrics {
    pub fn total_calls(&self) -> u64 {
        self.ops.values().map(|o| o.calls).sum()
    }

    pub fn total(&self) -> OpUsage {
        self.ops.values().fold(OpUsage::default(), |a, o| OpUsage {
            calls: a.calls + o.calls,
            throttled: a.throttled + o.throttled,
            server_errors: a.server_errors + o.server_errors,
            retries: a.retries + o.retries,
        })
    }

    pub fn calls(&self, op: &str) -> u64 {
        self.ops.get(op).map_or(0, |o| o.calls)
    }
}

/// How hard this client may press the server: a token bucket shared by every request of every
/// clone, a cap on requests in flight, and quick retries inside one request.
#[derive(Clone, Default)]
pub struct Politeness {
    pub rate: Option<Arc<governor::DefaultDirectRateLimiter>>,
    pub in_flight: Option<Arc<tokio::sync::Semaphore>>,
    pub retry: RetryPolicy,
}

impl Politeness {
    /// `rate` requests per second with bursts of `burst`, at most `in_flight` at once.
    pub fn new(rate: f64, burst: u32, in_flight: usize, retry: RetryPolicy) -> Politeness {
        let period = Duration::from_secs_f64(1.0 / rate.max(0.001));
        let burst = std::num::NonZeroU32::new(burst.max(1)).unwrap_or(std::num::NonZeroU32::MIN);
        let rate = governor::Quota::with_period(period)
            .map(|q| Arc::new(governor::RateLimiter::direct(q.allow_burst(burst))));
        Politeness {
            rate,
            in_flight: Some(Arc::new(tokio::sync::Semaphore::new(in_flight.max(1)))),
            retry,
        }
    }
}

/// Retries inside one request: transient failures of reads with exponential backoff and full
/// jitter, and 429 for any call after the server's `Retry-After` (a throttled request was not
/// processed). A write whose effect is unknown is never repeated here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    pub max_retries: u32,
    pub base: Duration,
    pub cap: Duration,
    /// A `Retry-After` longer than this is not waited out inside the request.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    /// No retries: the caller sees every failure.
    fn default() -> Self {
        RetryPolicy {
            max_retries: 0,
            base: Duration::from_millis(200),
            cap: Duration::from_secs(10),
            max_retry_after: Duration::from_secs(60),
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
        let step = self
            .base
            .saturating_mul(2u32.saturating_pow(retry))
            .min(self.cap);
        step.mul_f64(fastrand::f64())
    }
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
}

#[derive(Default)]
struct Session {
    id: Option<Secret>,
    /// Bumped at every login, so that concurrent 401s trigger one re-login, not one each.
    generation: u64,
}

/// Which credentials a session-bound request carries (login itself goes through `send_once`).
#[derive(Clone, Copy)]
enum Auth<'a> {
    Session,
    SessionAndBasic(&'a Credentials),
}

impl Client {
    /// Builds the HTTP client (no network traffic yet), with no limits and no retries.
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
                let pem = std::fs::read(path).map_err(|e| {
                    ApiError::Setup(format!("cannot read ca_file {}: {e}", path.display()))
                })?;
                let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
                    ApiError::Setup(format!("ca_file {} is not PEM: {e}", path.display()))
                })?;
                if certs.is_empty() {
                    return Err(ApiError::Setup(format!(
                        "ca_file {} holds no certificate",
                        path.display()
                    )));
                }
                certs
                    .into_iter()
                    .fold(builder.use_rustls_tls(), |b, c| b.add_root_certificate(c))
            }
            TlsTrust::Pinned(pin) => {
                let config = pinned_config(*pin)
                    .map_err(|e| ApiError::Setup(format!("TLS configuration: {e}")))?;
                builder.use_preconfigured_tls(config)
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
        let http = builder
            .build()
            .map_err(|e| ApiError::Setup(format!("HTTP client: {}", error_chain(&e))))?;
        Ok(Client {
            inner: Arc::new(Inner {
                http,
                settings,
                session: RwLock::new(Session::default()),
                relogin: tokio::sync::Mutex::new(()),
                remote_pairings: Mutex::new(BTreeSet::new()),
                metrics: Mutex::new(ClientMetrics::default()),
                politeness,
            }),
        })
    }

    /// Builds the client and logs in to the source site.
    pub async fn connect(settings: ClientSettings) -> Result<Client, ApiError> {
        let client = Client::new(settings)?;
        client.login().await?;
        Ok(client)
    }

    pub fn settings(&self) -> &ClientSettings {
        &self.inner.settings
    }

    pub fn metrics(&self) -> ClientMetrics {
        lock(&self.inner.metrics).clone()
    }

    /// `POST /session`: a new session for the source site.
    pub async fn login(&self) -> Result<(), ApiError> {
        let id = self.new_session().await?;
        let mut session = write(&self.inner.session);
        session.id = Some(id);
        session.generation += 1;
        Ok(())
    }

    /// `DELETE /session`. The server forgets the session and its remote logins.
    pub async fn logout(&self) -> Result<(), ApiError> {
        let id = write(&self.inner.session).id.take();
        if let Some(id) = id {
            self.send_once(
                "logout",
                Method::DELETE,
                &["session"],
                &[],
                None,
                None,
                Some(&id),
            )
            .await?;
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
        let target = &self.inner.settings.target;
        self.call(
            "createRemoteSession",
            Method::POST,
            &["pairings", pairing_id, "remote-session"],
            &[],
            None,
            Auth::SessionAndBasic(target),
        )
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
        let body = serde_json::to_vec(specs)
            .map_err(|e| ApiError::Setup(format!("cannot encode configure specs: {e}")))?;
        let bytes = self
            .call(
                "configureReplication",
                Method::POST,
                &path,
                &[],
                Some(&body),
                Auth::Session,
            )
            .await?;
        decode::<DrList<Task>>("POST", &display_path(&path), &bytes).map(|l| l.list)
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
            .call(op, Method::GET, path, &query, None, Auth::Session)
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
        let page_size = u64::from(self.inner.settings.page_size.max(1));
        let mut items = Vec::new();
        loop {
            let mut page_query = query.clone();
            page_query.push(("limit".into(), page_size.to_string()));
            page_query.push(("offset".into(), items.len().to_string()));
            let page: DrList<T> = self.get(op, path, page_query).await?;
            let received = page.list.len() as u64;
            items.extend(page.list);
            let more = match page.meta.and_then(|m| m.total) {
                Some(total) => (items.len() as i64) < total,
                // Without a total, a full page may be followed by another.
                None => received == page_size,
            };
            if !more || received == 0 {
                return Ok(items);
            }
        }
    }

    /// One API call, repeated once after a re-login when the session turned out to be gone, and
    /// as the [`RetryPolicy`] allows after a 429 or (for reads) a transient failure.
    async fn call(
        &self,
        op: &'static str,
        method: Method,
        path: &[&str],
        query: &[(String, String)],
        body: Option<&[u8]>,
        auth: Auth<'_>,
    ) -> Result<Vec<u8>, ApiError> {
        let policy = self.inner.politeness.retry;
        let mut retry = 0;
        loop {
            let result = self
                .call_with_session(op, method.clone(), path, query, body, auth)
                .await;
            let Err(e) = &result else { return result };
            let wait = match e.class() {
                ErrorClass::Throttled => e
                    .retry_after()
                    .filter(|d| *d <= policy.max_retry_after)
                    .or(Some(policy.delay(retry))),
                ErrorClass::Transient if method == Method::GET => Some(policy.delay(retry)),
                _ => None,
            };
            match wait {
                Some(wait) if retry < policy.max_retries => {
                    tracing::debug!(op, retry, wait_ms = wait.as_millis() as u64, error = %e, "retrying");
                    self.usage(op, |u| u.retries += 1);
                    tokio::time::sleep(wait).await;
                    retry += 1;
                }
                _ => return result,
            }
        }
    }

    async fn call_with_session(
        &self,
        op: &'static str,
        method: Method,
        path: &[&str],
        query: &[(String, String)],
        body: Option<&[u8]>,
        auth: Auth<'_>,
    ) -> Result<Vec<u8>, ApiError> {
        let mut relogged = false;
        loop {
            let (session, generation) = {
                let s = read(&self.inner.session);
                (s.id.clone(), s.generation)
            };
            let basic = match auth {
                Auth::Session => None,
                Auth::SessionAndBasic(c) => Some(c),
            };
            let result = self
                .send_once(
                    op,
                    method.clone(),
                    path,
                    query,
                    body,
                    basic,
                    session.as_ref(),
                )
                .await;
            match result {
                Err(e) if !relogged && e.class() == ErrorClass::Session => {
                    tracing::info!(op, "session rejected (401); logging in again");
                    self.relogin(generation).await?;
                    relogged = true;
                }
                other => return other,
            }
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
        for pairing_id in &pairings {
            self.send_once(
                "createRemoteSession",
                Method::POST,
                &["pairings", pairing_id, "remote-session"],
                &[],
                None,
                Some(&self.inner.settings.target),
                Some(&id),
            )
            .await?;
        }
        {
            let mut session = write(&self.inner.session);
            session.id = Some(id);
            session.generation += 1;
        }
        lock(&self.inner.metrics).relogins += 1;
        Ok(())
    }

    async fn new_session(&self) -> Result<Secret, ApiError> {
        let source = &self.inner.settings.source;
        let bytes = self
            .send_once(
                "login",
                Method::POST,
                &["session"],
                &[],
                None,
                Some(source),
                None,
            )
            .await?;
        let data: SessionIdData = decode("POST", "/session", &bytes)?;
        Ok(Secret::new(data.session_id))
    }

    #[allow(clippy::too_many_arguments)]
    async fn send_once(
        &self,
        op: &'static str,
        method: Method,
        path: &[&str],
        query: &[(String, String)],
        body: Option<&[u8]>,
        basic: Option<&Credentials>,
        session: Option<&Secret>,
    ) -> Result<Vec<u8>, ApiError> {
        let shown = display_path(path);
        let url = self.url_for(path)?;
        let mut request = self
            .inner
            .http
            .request(method.clone(), url)
            .header(ACCEPT, "application/json");
        if !query.is_empty() {
            request = request.query(query);
        }
        if let Some(c) = basic {
            request = request.basic_auth(&c.user, Some(c.password.expose()));
        }
        if let Some(id) = session {
            let mut value = HeaderValue::from_str(id.expose()).map_err(|_| ApiError::Decode {
                method: method.to_string(),
                path: shown.clone(),
                detail: "the session id the server gave is not a valid header value".into(),
            })?;
            value.set_sensitive(true);
            request = request.header("x-dr-session", value);
        }
        if let Some(b) = body {
            request = request
                .header(CONTENT_TYPE, "application/json")
                .body(b.to_vec());
        }

        let _permit = match &self.inner.politeness.in_flight {
            Some(s) => s.acquire().await.ok(),
            None => None,
        };
        if let Some(rate) = &self.inner.politeness.rate {
            rate.until_ready().await;
        }
        self.usage(op, |u| u.calls += 1);
        let started = Instant::now();
        let response = request
            .send()
            .await
            .map_err(|e| self.transport_error(&method, &shown, e))?;
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let bytes = response
            .bytes()
            .await
            .map_err(|e| self.transport_error(&method, &shown, e))?;
        tracing::debug!(
            op,
            method = %method,
            path = %shown,
            status,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "VR API call"
        );
        if (200..300).contains(&status) {
            return Ok(bytes.to_vec());
        }
        if status == 429 {
            self.usage(op, |u| u.throttled += 1);
        } else if status >= 500 {
            self.usage(op, |u| u.server_errors += 1);
        }
        let error: ResponseError = serde_json::from_slice(&bytes).unwrap_or_default();
        let message = error.message.unwrap_or_else(|| {
            let text = String::from_utf8_lossy(&bytes).trim().to_string();
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
        Err(ApiError::Status(Box::new(StatusError {
            method: method.to_string(),
            path: shown,
            status,
            error_code: error.error_code,
            message,
            op_id: error.op_id,
            retry_after,
        })))
    }

    fn usage(&self, op: &str, f: impl FnOnce(&mut OpUsage)) {
        f(lock(&self.inner.metrics)
            .ops
            .entry(op.to_string())
            .or_default());
    }

    fn url_for(&self, path: &[&str]) -> Result<Url, ApiError> {
        let mut url = self.inner.settings.url.clone();
        {
            let mut segments = url.path_segments_mut().map_err(|_| {
                ApiError::Setup(format!(
                    "{} cannot be used as a base URL",
                    self.inner.settings.url
                ))
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

    fn transport_error(&self, method: &Method, path: &str, e: reqwest::Error) -> ApiError {
        if e.is_timeout() {
            return ApiError::Timeout {
                method: method.to_string(),
                path: path.to_string(),
                timeout: self.inner.settings.timeout,
                source: e,
            };
        }
        let mut detail = format!("{}: {}", self.inner.settings.url, error_chain(&e));
        if detail.contains("certificate") || detail.contains("thumbprint") {
            detail.push_str(
                " (trust the appliance with [source] ca_file = \"vmca.pem\" or thumbprint = \
                 \"AB:CD:…\" in vrbulk.toml)",
            );
        }
        ApiError::Connect {
            method: method.to_string(),
            path: path.to_string(),
            detail,
            source: e,
        }
    }
}

fn display_path(path: &[&str]) -> String {
    path.iter().fold(String::new(), |mut s, seg| {
        s.push('/');
        s.push_str(seg);
        s
    })
}

/// Decodes JSON, naming the path of the field that did not fit (`list[3].disks[0].capacity`).
fn decode<T: DeserializeOwned>(method: &str, path: &str, bytes: &[u8]) -> Result<T, ApiError> {
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(de).map_err(|e| ApiError::Decode {
        method: method.to_string(),
        path: path.to_string(),
        detail: format!("at `{}`: {}", e.path(), e.inner()),
    })
}

/// reqwest's own message is terse ("error sending request"); the reason is down the chain.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut parts = vec![e.to_string()];
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = s.source();
    }
    parts.join(": ")
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
