//! The API routes, mounted under both `/api/rest/vr/v2` and `/api/rest/vr/v1`, and the gate every
//! API call passes first (counting, latency, rate limit, injected faults, session check).
//!
//! Answers are built from the spec's models in `vr::model` (serialization only); request bodies
//! are checked by `validate` on raw JSON. The day-2 operations' handlers live in `operations`;
//! the route table here lists them with the rest.

use axum::body::Bytes;
use axum::extract::{MatchedPath, OriginalUri, Path, Query, Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, on, post, MethodFilter, MethodRouter};
use axum::{Extension, Json, Router};
use base64::Engine as _;
use serde_json::Value;

use super::error::ApiError;
use super::inventory::{SimVm, SiteRef, VmKind};
use super::listing::ListQuery;
use super::operations;
use super::state::{SimState, World};
use super::validate::{self, Rejection};
use crate::vr::model::{
    HrefDrData, MetaLinks, MetadataList, Pairing, ReplicationInfo, ServerInfo, ServerStatus,
    SessionIdData, SessionInfo, VmCapabilities, VmValidationStatus, VrmsInfo,
};

/// The API prefixes the simulator answers on; v1 is kept for older clients, as appliances do.
pub const API_PREFIXES: [&str; 2] = ["/api/rest/vr/v2", "/api/rest/vr/v1"];

const SESSION_HEADER: &str = "x-dr-session";

/// Builds the route of one operation for its method.
pub(super) type Handler = fn(MethodFilter) -> MethodRouter<SimState>;

/// Every API operation the simulator serves: (method, path under the prefix, the spec's
/// operationId, handler). The one table both the router and the stats' operation names come
/// from.
pub(super) const OPERATIONS: &[(MethodFilter, &str, &str, Handler)] = &[
    (MethodFilter::POST, "/session", "login", |m| on(m, login)),
    (MethodFilter::GET, "/session", "getCurrentSession", |m| {
        on(m, get_session)
    }),
    (MethodFilter::DELETE, "/session", "logout", |m| {
        on(m, logout)
    }),
    (MethodFilter::GET, "/info", "getVrInfo", |m| on(m, get_info)),
    (MethodFilter::GET, "/pairings", "getVrPairings", |m| {
        on(m, get_pairings)
    }),
    (
        MethodFilter::GET,
        "/pairings/{pairing_id}",
        "getVrPairing",
        |m| on(m, get_pairing),
    ),
    (
        MethodFilter::GET,
        "/pairings/{pairing_id}/remote-session",
        "getRemoteSession",
        |m| on(m, get_remote_session),
    ),
    (
        MethodFilter::POST,
        "/pairings/{pairing_id}/remote-session",
        "createRemoteSession",
        |m| on(m, create_remote_session),
    ),
    (
        MethodFilter::GET,
        "/pairings/{pairing_id}/vrs",
        "getAllVrDetailsInPairing",
        |m| on(m, get_vrs),
    ),
    (
        MethodFilter::GET,
        "/pairings/{pairing_id}/vrs/{vr_id}",
        "getVrInfoInPairing",
        |m| on(m, get_vr),
    ),
    (
        MethodFilter::GET,
        "/pairings/{pairing_id}/vrs/{vr_id}/replication-servers",
        "getAllVrServersInPairing",
        |m| on(m, get_vr_servers),
    ),
    (
        MethodFilter::GET,
        "/pairings/{pairing_id}/vcenters/{vcenter_id}/vms",
        "getLocalVms",
        |m| on(m, get_vms),
    ),
    (
        MethodFilter::GET,
        "/pairings/{pairing_id}/vcenters/{vcenter_id}/vms/{vm_id}/disks",
        "getLocalVmDisks",
        |m| on(m, get_vm_disks),
    ),
    (
        MethodFilter::GET,
        "/pairings/{pairing_id}/vcenters/{vcenter_id}/vms/{vm_id}/capability",
        "getVmCapability",
        |m| on(m, get_vm_capability),
    ),
    (
        MethodFilter::GET,
        "/pairings/{pairing_id}/vcenters/{vcenter_id}/datastores",
        "getVrCapableTargetDatastores",
        |m| on(m, get_datastores),
    ),
    (
        MethodFilter::GET,
        "/pairings/{pairing_id}/vcenters/{vcenter_id}/storage-policies",
        "getVcStoragePolicies",
        |m| on(m, get_storage_policies),
    ),
    (
        MethodFilter::GET,
        "/pairings/{pairing_id}/replications",
        "getAllReplications",
        |m| on(m, get_replications),
    ),
    (
        MethodFilter::POST,
        "/pairings/{pairing_id}/replications",
        "configureReplication",
        |m| on(m, configure_replications),
    ),
    (
        MethodFilter::GET,
        "/pairings/{pairing_id}/replications/{replication_id}",
        "getReplicationInfo",
        |m| on(m, get_replication),
    ),
    (
        MethodFilter::DELETE,
        "/pairings/{pairing_id}/replications/{replication_id}",
        "destroyReplication",
        |m| on(m, operations::destroy),
    ),
    (
        MethodFilter::GET,
        "/pairings/{pairing_id}/replications/{replication_id}/disks",
        "getReplicatedVmDisks",
        |m| on(m, operations::disks),
    ),
    (
        MethodFilter::POST,
        "/pairings/{pairing_id}/replications/{replication_id}/actions/unconfigure",
        "unconfigureReplication",
        |m| on(m, operations::unconfigure),
    ),
    (
        MethodFilter::POST,
        "/pairings/{pairing_id}/replications/{replication_id}/actions/reconfigure",
        "reconfigureReplication",
        |m| on(m, operations::reconfigure),
    ),
    (
        MethodFilter::POST,
        "/pairings/{pairing_id}/replications/{replication_id}/actions/pause",
        "pauseReplication",
        |m| on(m, operations::pause),
    ),
    (
        MethodFilter::POST,
        "/pairings/{pairing_id}/replications/{replication_id}/actions/resume",
        "resumeReplication",
        |m| on(m, operations::resume),
    ),
    (
        MethodFilter::POST,
        "/pairings/{pairing_id}/replications/{replication_id}/actions/sync",
        "syncReplication",
        |m| on(m, operations::sync),
    ),
    (MethodFilter::GET, "/tasks", "getRecentTasksInfo", |m| {
        on(m, get_tasks)
    }),
    (MethodFilter::GET, "/tasks/{task_id}", "getTaskInfo", |m| {
        on(m, get_task)
    }),
];

/// What the gate learned about a request, for the handler.
#[derive(Debug, Clone)]
pub(crate) struct ReqCtx {
    /// The caller's live session (`None` only for login).
    pub(super) session: Option<String>,
    /// Absolute URL of the request without its query, for `_meta.links`.
    pub(super) self_url: String,
    pub(super) query: Vec<(String, String)>,
}

/// The whole simulator: both API prefixes, `GET /__sim/stats`, and the test knobs
/// `POST /__sim/vms/{vm}/power-on` and `…/power-off` (VM by id or name), and
/// `POST /__sim/target-site/down` and `…/up` (every target site unreachable, or back).
pub fn router(state: SimState) -> Router {
    let api = api_routes().layer(middleware::from_fn_with_state(state.clone(), gate));
    let mut app = Router::new();
    for prefix in API_PREFIXES {
        app = app.nest(prefix, api.clone());
    }
    app.route("/__sim/stats", get(sim_stats))
        .route("/__sim/vms/{vm}/power-on", post(power_on))
        .route("/__sim/vms/{vm}/power-off", post(power_off))
        .route("/__sim/target-site/down", post(target_site_down))
        .route("/__sim/target-site/up", post(target_site_up))
        .merge(super::admin::routes())
        .fallback(unknown_route)
        .with_state(state)
}

/// The routes of [`OPERATIONS`]; two methods on one path share its route.
fn api_routes() -> Router<SimState> {
    OPERATIONS
        .iter()
        .fold(Router::new(), |router, (method, path, _, handler)| {
            router.route(path, handler(*method))
        })
}

fn operation_id(method: &Method, matched: Option<&str>) -> &'static str {
    let (Some(path), Ok(method)) = (matched, MethodFilter::try_from(method.clone())) else {
        return "unknown";
    };
    let rel = API_PREFIXES
        .iter()
        .find_map(|p| path.strip_prefix(p))
        .unwrap_or(path);
    OPERATIONS
        .iter()
        .find(|(m, p, ..)| *m == method && *p == rel)
        .map(|(_, _, op, _)| *op)
        .unwrap_or("unknown")
}

/// Runs before every API route: counts the call, applies latency, the rate limit and injected
/// faults, checks the session, and counts the answer's status.
async fn gate(State(state): State<SimState>, mut req: Request, next: Next) -> Response {
    let op = operation_id(
        req.method(),
        req.extensions()
            .get::<MatchedPath>()
            .map(MatchedPath::as_str),
    );
    state.count_call(op);
    let arrived = super::state::epoch_ms();
    // In-process tests call the router without a socket: one "address" for them all.
    let ip = req
        .extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map_or_else(|| "in-process".to_string(), |c| c.0.ip().to_string());
    let pairing = pairing_in(req.uri().path());
    let resp = if op == "unknown" {
        // A wrong method on a known path: let the router say 405.
        next.run(req).await
    } else {
        let header = req
            .headers()
            .get(SESSION_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        match state.admit(op, &ip, header.as_deref()).await {
            Err(e) => e.into_response(),
            Ok(session) => {
                let ctx = ReqCtx {
                    session,
                    self_url: self_url(&state, &req),
                    query: Query::<Vec<(String, String)>>::try_from_uri(req.uri())
                        .map(|q| q.0)
                        .unwrap_or_default(),
                };
                req.extensions_mut().insert(ctx);
                next.run(req).await
            }
        }
    };
    state.record(super::stats::Received {
        at_ms: arrived,
        op: op.to_string(),
        status: resp.status().as_u16(),
        ip,
        pairing,
    });
    resp
}

/// The `{pairing_id}` segment of a path under `/pairings/`.
fn pairing_in(path: &str) -> Option<String> {
    let mut segments = path.split('/').skip_while(|s| *s != "pairings").skip(1);
    segments
        .next()
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

fn self_url(state: &SimState, req: &Request) -> String {
    let scheme = if state.config().tls { "https" } else { "http" };
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_string)
        .or_else(|| req.uri().authority().map(|a| a.to_string()))
        .unwrap_or_else(|| "localhost".into());
    // Inside a nested router the URI has lost its prefix; links need the full path.
    let path = req
        .extensions()
        .get::<OriginalUri>()
        .map(|u| u.0.path().to_string())
        .unwrap_or_else(|| req.uri().path().to_string());
    format!("{scheme}://{host}{path}")
}

async fn unknown_route(method: Method, uri: axum::http::Uri) -> ApiError {
    ApiError::not_found(format!("no such resource: {method} {}", uri.path()))
}

async fn sim_stats(State(state): State<SimState>) -> Json<super::SimStats> {
    Json(state.stats())
}

async fn power_on(
    State(state): State<SimState>,
    Path(vm): Path<String>,
) -> Result<StatusCode, ApiError> {
    power(&state, &vm, true)
}

async fn power_off(
    State(state): State<SimState>,
    Path(vm): Path<String>,
) -> Result<StatusCode, ApiError> {
    power(&state, &vm, false)
}

async fn target_site_down(State(state): State<SimState>) -> StatusCode {
    state.set_target_down(true);
    StatusCode::NO_CONTENT
}

async fn target_site_up(State(state): State<SimState>) -> StatusCode {
    state.set_target_down(false);
    StatusCode::NO_CONTENT
}

fn power(state: &SimState, vm: &str, on: bool) -> Result<StatusCode, ApiError> {
    state
        .set_power(vm, on)
        .map(|()| StatusCode::NO_CONTENT)
        .map_err(|e| ApiError::not_found(e.to_string()))
}

// ---- sessions ----

fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_string(), password.to_string()))
}

/// Checks Basic credentials against the configured user (names compare case-insensitively, as
/// vSphere SSO does); returns the user name as configured. A refusal is recorded against
/// `record_as` (`source`, or the pairing id), as an SSO server counts failed logins.
fn authenticate(
    state: &SimState,
    headers: &HeaderMap,
    site: &str,
    record_as: &str,
) -> Result<String, ApiError> {
    let cfg = state.config();
    let given = basic_credentials(headers);
    if let Some((user, password)) = &given {
        if user.eq_ignore_ascii_case(&cfg.user) && *password == cfg.password {
            return Ok(cfg.user.clone());
        }
    }
    state
        .world()
        .stats
        .refused_logins
        .push(super::stats::RefusedLogin {
            at_ms: super::state::epoch_ms(),
            site: record_as.to_string(),
            user: given
                .as_ref()
                .map(|(user, _)| user.clone())
                .unwrap_or_default(),
        });
    Err(ApiError::unauthorized(match given {
        None => format!("HTTP Basic credentials for the {site} site are required"),
        Some(_) => format!("cannot log in to the {site} site: wrong user name or password"),
    }))
}

/// `POST /session`. The spec lists no 401 for login; like real appliances we answer wrong or
/// missing credentials with 401 and a `ResponseError`.
async fn login(State(state): State<SimState>, headers: HeaderMap) -> Result<Response, ApiError> {
    let user = authenticate(&state, &headers, "local", "source")?;
    let session_id = state.world().new_session(&user);
    Ok(Json(SessionIdData { session_id }).into_response())
}

fn session_id(ctx: &ReqCtx) -> Result<&str, ApiError> {
    ctx.session
        .as_deref()
        .ok_or_else(|| ApiError::unauthorized("no session"))
}

async fn get_session(
    State(state): State<SimState>,
    Extension(ctx): Extension<ReqCtx>,
) -> Result<Json<SessionInfo>, ApiError> {
    let sid = session_id(&ctx)?;
    let w = state.world();
    let s = w
        .sessions
        .get(sid)
        .ok_or_else(|| ApiError::unauthorized("no session"))?;
    Ok(Json(SessionInfo {
        username: Some(s.user.clone()),
    }))
}

async fn logout(
    State(state): State<SimState>,
    Extension(ctx): Extension<ReqCtx>,
) -> Result<StatusCode, ApiError> {
    let sid = session_id(&ctx)?;
    state.world().sessions.remove(sid);
    Ok(StatusCode::NO_CONTENT)
}

// ---- pairings, remote login, VRMS ----

/// The target site of the pairing `pairing_id`: what every `/pairings/{id}/…` route serves.
pub(super) fn pairing_site<'w>(w: &'w World, pairing_id: &str) -> Result<SiteRef<'w>, ApiError> {
    w.inv.site(pairing_id).ok_or_else(|| {
        ApiError::not_found(format!("pairing_id: no pairing with id '{pairing_id}'"))
    })
}

/// Calls that read or write the target site need that site up, and this session's remote login
/// for the pairing.
pub(super) fn require_remote(w: &World, ctx: &ReqCtx, pairing_id: &str) -> Result<(), ApiError> {
    reach_target(w, pairing_id)?;
    let sid = session_id(ctx)?;
    let logged_in = w
        .sessions
        .get(sid)
        .is_some_and(|s| s.remote.contains_key(pairing_id));
    if logged_in {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "REMOTE_SESSION_REQUIRED",
            format!(
                "the remote site login is missing for pairing '{pairing_id}': \
                 POST /pairings/{pairing_id}/remote-session first"
            ),
        ))
    }
}

/// The target site of `pairing_id` is down (`SimConfig::target_down`): the appliance cannot
/// reach its peer, and says so with a 500 (the only server error the spec lists) naming it.
fn reach_target(w: &World, pairing_id: &str) -> Result<(), ApiError> {
    if !w.target_down {
        return Ok(());
    }
    let (vc, vrms) = pairing_site(w, pairing_id)
        .map(|site| (site.remote_vc.name.as_str(), site.remote_vrms.name.as_str()))
        .unwrap_or(("the remote vCenter", "the remote VRMS"));
    Err(ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "REMOTE_SITE_UNREACHABLE",
        format!(
            "cannot reach the remote site of pairing '{pairing_id}': the vSphere Replication \
             Management server {vrms} ({vc}) is not responding"
        ),
    ))
}

/// A target site that is down shows in its servers' status (the spec's `PARTIAL_DATA`).
fn remote_status(w: &World) -> ServerStatus {
    if w.target_down {
        ServerStatus::Error
    } else {
        ServerStatus::Ok
    }
}

fn pairing_json(w: &World, site: SiteRef<'_>) -> Pairing {
    let inv = &w.inv;
    let server = |site: &super::Site, version: &str, status: ServerStatus| ServerInfo {
        id: Some(site.id.clone()),
        url: Some(format!("https://{}:443", site.name)),
        name: Some(site.name.clone()),
        server_status: Some(status),
        version: Some(version.into()),
    };
    let remote = remote_status(w);
    Pairing {
        pairing_id: site.pairing_id.to_string(),
        local_vc_server: server(&inv.local_vc, "8.0.3", ServerStatus::Ok),
        remote_vc_server: server(site.remote_vc, "8.0.3", remote),
        local_vrms: Some(server(&inv.local_vrms, &w.version, ServerStatus::Ok)),
        remote_vrms: Some(server(site.remote_vrms, &w.version, remote)),
    }
}

/// The VRMS of a pairing: the local one and that of the pairing's target site.
fn vrms_json(w: &World, site: SiteRef<'_>) -> Vec<VrmsInfo> {
    let inv = &w.inv;
    [
        vrms_info(w, &inv.local_vrms, &inv.local_vc, ServerStatus::Ok),
        vrms_info(w, site.remote_vrms, site.remote_vc, remote_status(w)),
    ]
    .into()
}

/// One VRMS, registered with the vCenter `vc`.
fn vrms_info(w: &World, vrms: &super::Site, vc: &super::Site, status: ServerStatus) -> VrmsInfo {
    VrmsInfo {
        id: vrms.id.clone(),
        url: Some(format!("https://{}:8043", vrms.name)),
        name: Some(vrms.name.clone()),
        server_status: Some(status),
        version: Some(w.version.clone()),
        vc_guid: Some(vc.id.clone()),
        vc_name: Some(vc.name.clone()),
        extension_key: Some("com.vmware.vcHms".into()),
    }
}

/// `GET /info`: the appliance itself, the local VRMS.
async fn get_info(State(state): State<SimState>) -> Json<VrmsInfo> {
    let w = state.world();
    let inv = &w.inv;
    Json(vrms_info(
        &w,
        &inv.local_vrms,
        &inv.local_vc,
        ServerStatus::Ok,
    ))
}

async fn get_pairings(
    State(state): State<SimState>,
    Extension(ctx): Extension<ReqCtx>,
) -> Result<Json<Value>, ApiError> {
    let q = ListQuery::parse(&ctx.query)?;
    let w = state.world();
    let all: Vec<Pairing> = w.inv.sites().map(|site| pairing_json(&w, site)).collect();
    Ok(Json(q.respond(&all, &ctx.self_url)))
}

async fn get_pairing(
    State(state): State<SimState>,
    Path(pairing_id): Path<String>,
) -> Result<Json<Pairing>, ApiError> {
    let w = state.world();
    let site = pairing_site(&w, &pairing_id)?;
    Ok(Json(pairing_json(&w, site)))
}

async fn create_remote_session(
    State(state): State<SimState>,
    Extension(ctx): Extension<ReqCtx>,
    Path(pairing_id): Path<String>,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    {
        let w = state.world();
        pairing_site(&w, &pairing_id)?;
        // The credentials are the remote site's to check: with it down, nobody can.
        reach_target(&w, &pairing_id)?;
    }
    let user = authenticate(&state, &headers, "remote", &pairing_id)?;
    let sid = session_id(&ctx)?;
    let mut w = state.world();
    let s = w
        .sessions
        .get_mut(sid)
        .ok_or_else(|| ApiError::unauthorized("no session"))?;
    s.remote.insert(pairing_id.clone(), user);
    w.stats.count_remote_login(&pairing_id);
    Ok(StatusCode::NO_CONTENT)
}

/// No remote login on this session: 401 (the client's cue to log in to the remote site).
async fn get_remote_session(
    State(state): State<SimState>,
    Extension(ctx): Extension<ReqCtx>,
    Path(pairing_id): Path<String>,
) -> Result<Json<SessionInfo>, ApiError> {
    let w = state.world();
    pairing_site(&w, &pairing_id)?;
    require_remote(&w, &ctx, &pairing_id)?;
    let user = w
        .sessions
        .get(session_id(&ctx)?)
        .and_then(|s| s.remote.get(&pairing_id))
        .cloned();
    Ok(Json(SessionInfo { username: user }))
}

async fn get_vrs(
    State(state): State<SimState>,
    Extension(ctx): Extension<ReqCtx>,
    Path(pairing_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let q = ListQuery::parse(&ctx.query)?;
    let w = state.world();
    let site = pairing_site(&w, &pairing_id)?;
    Ok(Json(q.respond(&vrms_json(&w, site), &ctx.self_url)))
}

async fn get_vr(
    State(state): State<SimState>,
    Path((pairing_id, vr_id)): Path<(String, String)>,
) -> Result<Json<VrmsInfo>, ApiError> {
    let w = state.world();
    let site = pairing_site(&w, &pairing_id)?;
    vrms_json(&w, site)
        .into_iter()
        .find(|v| v.id == vr_id)
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("vr_id: no VRMS with id '{vr_id}'")))
}

async fn get_vr_servers(
    State(state): State<SimState>,
    Extension(ctx): Extension<ReqCtx>,
    Path((pairing_id, vr_id)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let q = ListQuery::parse(&ctx.query)?;
    let w = state.world();
    let site = pairing_site(&w, &pairing_id)?;
    let servers = if vr_id == site.remote_vrms.id {
        require_remote(&w, &ctx, &pairing_id)?;
        w.servers_with_counts(site.replication_servers, &w.replications())
    } else if vr_id == w.inv.local_vrms.id {
        w.inv.source_replication_servers.clone()
    } else {
        return Err(ApiError::not_found(format!(
            "vr_id: no VRMS with id '{vr_id}' in this pairing"
        )));
    };
    Ok(Json(q.respond(&servers, &ctx.self_url)))
}

// ---- vCenter inventory ----

#[derive(Debug, Clone, Copy)]
enum Side<'w> {
    Local,
    /// The pairing's target site.
    Remote(SiteRef<'w>),
}

/// Which site of the pairing a vCenter id names (another pairing's target vCenter is none of
/// this one's); the target site also needs the remote login.
fn side<'w>(
    w: &'w World,
    ctx: &ReqCtx,
    pairing_id: &str,
    vc_id: &str,
) -> Result<Side<'w>, ApiError> {
    let site = pairing_site(w, pairing_id)?;
    if vc_id == w.inv.local_vc.id {
        Ok(Side::Local)
    } else if vc_id == site.remote_vc.id {
        require_remote(w, ctx, pairing_id)?;
        Ok(Side::Remote(site))
    } else {
        Err(ApiError::not_found(format!(
            "vcenter_id: no vCenter with id '{vc_id}' in pairing '{pairing_id}'"
        )))
    }
}

fn validation_status(w: &World, vm: &SimVm) -> VmValidationStatus {
    if vm.kind == VmKind::Template || vm.vm.template == Some(true) {
        VmValidationStatus::IsVmTemplate
    } else if w.busy(&vm.vm.id).is_some() {
        VmValidationStatus::AlreadyConfigured
    } else {
        VmValidationStatus::Ok
    }
}

/// `suitable_for_replication=true` keeps only VMs whose capability check says OK: templates and
/// VMs that already have a replication (or a configure task in flight) are left out. A VM with
/// some unsupported disks stays: it can be replicated without them.
async fn get_vms(
    State(state): State<SimState>,
    Extension(ctx): Extension<ReqCtx>,
    Path((pairing_id, vc_id)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let q = ListQuery::parse(&ctx.query)?;
    let suitable = q.bool_param("suitable_for_replication", false)?;
    let w = state.world();
    let vms: Vec<_> = match side(&w, &ctx, &pairing_id, &vc_id)? {
        // The simulator models no VMs on the target site.
        Side::Remote(_) => Vec::new(),
        Side::Local => w
            .inv
            .vms
            .iter()
            .filter(|vm| !suitable || validation_status(&w, vm) == VmValidationStatus::Ok)
            .map(|vm| &vm.vm)
            .collect(),
    };
    Ok(Json(q.respond(&vms, &ctx.self_url)))
}

fn local_vm<'w>(
    w: &'w World,
    ctx: &ReqCtx,
    pairing_id: &str,
    vc_id: &str,
    vm_id: &str,
) -> Result<&'w SimVm, ApiError> {
    let not_found = || {
        ApiError::not_found(format!(
            "vm_id: no VM with id '{vm_id}' on vCenter '{vc_id}'"
        ))
    };
    match side(w, ctx, pairing_id, vc_id)? {
        Side::Remote(_) => Err(not_found()),
        Side::Local => w.inv.vm(vm_id).ok_or_else(not_found),
    }
}

async fn get_vm_disks(
    State(state): State<SimState>,
    Extension(ctx): Extension<ReqCtx>,
    Path((pairing_id, vc_id, vm_id)): Path<(String, String, String)>,
) -> Result<Json<Value>, ApiError> {
    let q = ListQuery::parse(&ctx.query)?;
    let w = state.world();
    let vm = local_vm(&w, &ctx, &pairing_id, &vc_id, &vm_id)?;
    Ok(Json(q.respond(vm.disks(), &ctx.self_url)))
}

async fn get_vm_capability(
    State(state): State<SimState>,
    Extension(ctx): Extension<ReqCtx>,
    Path((pairing_id, vc_id, vm_id)): Path<(String, String, String)>,
) -> Result<Json<VmCapabilities>, ApiError> {
    let w = state.world();
    let vm = local_vm(&w, &ctx, &pairing_id, &vc_id, &vm_id)?;
    let status = validation_status(&w, vm);
    let mut reasons: Vec<Option<String>> = Vec::new();
    match status {
        VmValidationStatus::IsVmTemplate => {
            reasons.push(Some("The virtual machine is a template.".into()))
        }
        VmValidationStatus::AlreadyConfigured => reasons.push(Some(
            "The virtual machine is already configured for replication.".into(),
        )),
        _ => {}
    }
    for d in vm.disks().iter().filter(|d| !d.is_supported()) {
        reasons.push(Some(format!(
            "{} is attached to {}, which is not supported for replication.",
            d.label.as_deref().unwrap_or("A disk"),
            d.controller_label
                .as_deref()
                .unwrap_or("an unsupported controller")
        )));
    }
    Ok(Json(VmCapabilities {
        vm_id: Some(vm.vm.id.clone()),
        vm_validation_status: Some(status),
        quiescing_supported: Some(true),
        network_compression_supported: Some(true),
        mpit_supported: Some(true),
        lwd_encryption_supported: Some(true),
        vm_crypt_supported: Some(false),
        vm_encrypted: Some(false),
        vm_encryption_key_provider_type: None,
        replication_not_supported_reasons: Some(reasons),
        auto_replicate_new_disks_supported: Some(true),
        min_rpo_mins: Some(5),
        nvme_disk_controller_supported: Some(false),
        ds_cluster_as_target_supported: Some(true),
        reconfigure_vm_disks_supported: Some(true),
    }))
}

async fn get_datastores(
    State(state): State<SimState>,
    Extension(ctx): Extension<ReqCtx>,
    Path((pairing_id, vc_id)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let q = ListQuery::parse(&ctx.query)?;
    let w = state.world();
    let list = match side(&w, &ctx, &pairing_id, &vc_id)? {
        Side::Local => w.inv.source_datastores.clone(),
        Side::Remote(site) => w.datastores_now(site.datastores),
    };
    Ok(Json(q.respond(&list, &ctx.self_url)))
}

async fn get_storage_policies(
    State(state): State<SimState>,
    Extension(ctx): Extension<ReqCtx>,
    Path((pairing_id, vc_id)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let q = ListQuery::parse(&ctx.query)?;
    let w = state.world();
    let list = match side(&w, &ctx, &pairing_id, &vc_id)? {
        Side::Local => w.inv.source_storage_policies.as_slice(),
        Side::Remote(site) => site.storage_policies,
    };
    Ok(Json(q.respond(list, &ctx.self_url)))
}

// ---- replications ----

async fn get_replications(
    State(state): State<SimState>,
    Extension(ctx): Extension<ReqCtx>,
    Path(pairing_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let q = ListQuery::parse(&ctx.query)?;
    q.bool_param("extended_info", false)?;
    let w = state.world();
    let site = pairing_site(&w, &pairing_id)?;
    require_remote(&w, &ctx, &pairing_id)?;
    let mut list = w.pairing_replications(site);
    if let Some(vc) = q.param("source_vc_guid") {
        list.retain(|r| r.source_vc_id.as_deref() == Some(vc));
    }
    Ok(Json(q.respond(&list, &ctx.self_url)))
}

async fn get_replication(
    State(state): State<SimState>,
    Extension(ctx): Extension<ReqCtx>,
    Path((pairing_id, replication_id)): Path<(String, String)>,
) -> Result<Json<ReplicationInfo>, ApiError> {
    let w = state.world();
    let site = pairing_site(&w, &pairing_id)?;
    require_remote(&w, &ctx, &pairing_id)?;
    w.pairing_replication(site, &replication_id)
        .map(|r| Json(r.info_at(w.at(r))))
        .ok_or_else(|| operations::not_found(&replication_id))
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"))
}

/// A request body that must be JSON, as `Content-Type` must say.
pub(super) fn json_body(headers: &HeaderMap, body: &[u8]) -> Result<Value, ApiError> {
    if !is_json(headers) {
        return Err(ApiError::bad_request(
            "Content-Type: must be application/json",
        ));
    }
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("body: not valid JSON: {e}")))
}

/// A refused body as one 400: every error found, the first one's code.
pub(super) fn rejected(rej: Rejection) -> ApiError {
    let code = rej
        .errors
        .first()
        .map(|e| e.kind.code())
        .unwrap_or("INVALID_REQUEST_BODY");
    let message: Vec<String> = rej.errors.into_iter().map(|e| e.message).collect();
    ApiError::new(StatusCode::BAD_REQUEST, code, message.join("; "))
}

/// `POST /pairings/{p}/replications`: validates the whole body, then creates one task per spec, in
/// order. Nothing is created when any spec is invalid.
async fn configure_replications(
    State(state): State<SimState>,
    Extension(ctx): Extension<ReqCtx>,
    Path(pairing_id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let mut w = state.world();
    let site = pairing_site(&w, &pairing_id)?;
    require_remote(&w, &ctx, &pairing_id)?;
    let body = json_body(&headers, &body)?;
    let max = state.config().max_configure_specs;
    if body.as_array().is_some_and(|specs| specs.len() > max) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "VR_OPERATION_LIMIT_EXCEEDED",
            format!(
                "Cannot configure replication for more than {max} virtual machines in one operation"
            ),
        ));
    }
    let specs = match validate::configure_body(&body, &w, site) {
        Ok(specs) => specs,
        Err(rej) => {
            for vm in &rej.busy_vms {
                w.stats.count_rejected(vm);
            }
            return Err(rejected(rej));
        }
    };
    let tasks: Vec<_> = specs.iter().map(|spec| w.accept_configure(spec)).collect();
    if w.fail_after_commit > 0 {
        w.fail_after_commit -= 1;
        return Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "INTERNAL_SERVER_ERROR",
            "simulated failure after the configure tasks were created",
        ));
    }
    if w.garble_after_commit > 0 {
        w.garble_after_commit -= 1;
        return Ok((
            StatusCode::ACCEPTED,
            [(header::CONTENT_TYPE, "application/json")],
            "{\"list\": [{\"id\": ",
        )
            .into_response());
    }
    let n = tasks.len() as i64;
    let meta = MetadataList {
        errors: None,
        total: Some(n),
        offset: Some(0),
        limit: Some(n),
        links: Some(MetaLinks {
            self_: Some(HrefDrData {
                href: Some(ctx.self_url.clone()),
            }),
            next: None,
            previous: None,
        }),
    };
    let body = serde_json::json!({ "list": tasks, "_meta": meta });
    Ok((StatusCode::ACCEPTED, Json(body)).into_response())
}

// ---- tasks ----

async fn get_tasks(
    State(state): State<SimState>,
    Extension(ctx): Extension<ReqCtx>,
) -> Result<Json<Value>, ApiError> {
    let q = ListQuery::parse(&ctx.query)?;
    let w = state.world();
    let now = w.now();
    let recent: Vec<_> = w
        .tasks()
        .iter()
        .filter(|t| now.saturating_duration_since(t.created) <= w.recent_window)
        .map(|t| w.task_json(t))
        .collect();
    Ok(Json(q.respond(&recent, &ctx.self_url)))
}

async fn get_task(
    State(state): State<SimState>,
    Path(task_id): Path<String>,
) -> Result<Response, ApiError> {
    let w = state.world();
    let task = w
        .task(&task_id)
        .ok_or_else(|| ApiError::not_found(format!("task_id: no task with id '{task_id}'")))?;
    Ok(Json(w.task_json(task)).into_response())
}
