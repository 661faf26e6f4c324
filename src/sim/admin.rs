//! What happens to replications outside any client's doing, for tests and demos of `vrbulk
//! monitor`: a replication falls behind its RPO (by so many minutes, as the appliance's
//! `current_rpo_violation` counts them), goes to `ERROR` with a group error, is paused or
//! removed by someone in the vSphere Client, and a VM appears in the inventory. Each is a
//! `/__sim` route (outside the API: no session, no rate limit, not in the journal) and a method
//! of [`SimState`]. A VM is named by id or name; its replication must be configured.
//!
//! - `POST /__sim/replications/{vm}/rpo-violation?minutes=N`, `DELETE …` (a sync caught up)
//! - `POST /__sim/replications/{vm}/error?message=…`, `DELETE …` (the fault was repaired)
//! - `POST /__sim/replications/{vm}/pause`, `DELETE …` (resumed)
//! - `DELETE /__sim/replications/{vm}` (removed outside vrbulk)
//! - `POST /__sim/vms?name=NAME` (a new powered-on VM; answers its id)

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::post;
use axum::Router;
use serde::Deserialize;

use super::error::ApiError;
use super::replication::{Fault, SimReplication};
use super::state::{SimState, World};
use crate::vr::model::TaskError;

/// The admin routes, merged into the simulator's router.
pub(crate) fn routes() -> Router<SimState> {
    Router::new()
        .route(
            "/__sim/replications/{vm}/rpo-violation",
            post(rpo_on).delete(rpo_off),
        )
        .route(
            "/__sim/replications/{vm}/error",
            post(error_on).delete(error_off),
        )
        .route(
            "/__sim/replications/{vm}/pause",
            post(pause_on).delete(pause_off),
        )
        .route("/__sim/replications/{vm}", axum::routing::delete(remove))
        .route("/__sim/vms", post(add_vm))
}

/// What happens to a replication.
#[derive(Debug, Clone, PartialEq)]
pub enum Mishap {
    /// Behind its RPO by this many simulated minutes from now on (the count grows with the
    /// simulator's clock, as the appliance's does).
    RpoViolation {
        minutes: u32,
    },
    /// Back within its RPO, as after a sync.
    RpoRecovered,
    /// `ERROR` with this group error.
    Error {
        message: String,
    },
    Repaired,
    Paused,
    Resumed,
    /// Gone, as after an unconfigure in the vSphere Client.
    Removed,
}

impl SimState {
    /// Makes `mishap` happen to the replication of `vm` (id or name).
    pub fn befall(&self, vm: &str, mishap: Mishap) -> Result<(), String> {
        self.world().befall(vm, mishap)
    }

    /// Adds a powered-on VM named `name` to the source inventory; its id.
    pub fn add_vm(&self, name: &str) -> Result<String, String> {
        self.world().inv.add_vm(name)
    }
}

impl World {
    fn befall(&mut self, vm: &str, mishap: Mishap) -> Result<(), String> {
        let vm_id = self
            .inv
            .vms
            .iter()
            .find(|v| v.vm.id == vm || v.vm.name == vm)
            .map(|v| v.vm.id.clone())
            .ok_or_else(|| format!("the simulator has no VM with id or name '{vm}'"))?;
        let clock = self.life.clock;
        let scale = self.life.scale;
        let r: &mut SimReplication = self
            .replications
            .of_vm_mut(&vm_id)
            .filter(|r| r.configured())
            .ok_or_else(|| format!("VM '{vm}' has no configured replication"))?;
        match mishap {
            Mishap::RpoViolation { minutes } => {
                if r.transfer.is_some() {
                    return Err(format!(
                        "VM '{vm}' is still in a full sync: an RPO is counted from the end of a sync"
                    ));
                }
                if scale <= 0.0 {
                    return Err("the simulator's sync_time_scale is 0: its RPO clock stands".into());
                }
                // `current_rpo_violation` counts whole minutes since this instant; the half
                // minute keeps the count at `minutes` until the next one passes.
                r.rpo_violated_from = Some(clock - (f64::from(minutes) + 0.5) * 60.0 / scale);
            }
            Mishap::RpoRecovered => r.rpo_violated_from = None,
            Mishap::Error { message } => {
                r.fault = Some(Fault::Group(TaskError {
                    message: Some(message),
                    details: None,
                }))
            }
            Mishap::Repaired => r.fault = None,
            Mishap::Paused => r.paused = true,
            Mishap::Resumed => r.paused = false,
            Mishap::Removed => {
                let id = r.info.id.clone();
                self.replications.remove(&id);
            }
        }
        self.note_link();
        Ok(())
    }
}

#[derive(Debug, Deserialize)]
struct Minutes {
    minutes: u32,
}

#[derive(Debug, Deserialize)]
struct Message {
    message: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Name {
    name: String,
}

fn befall(state: &SimState, vm: &str, mishap: Mishap) -> Result<StatusCode, ApiError> {
    state
        .befall(vm, mishap)
        .map(|()| StatusCode::NO_CONTENT)
        .map_err(ApiError::not_found)
}

async fn rpo_on(
    State(s): State<SimState>,
    Path(vm): Path<String>,
    Query(q): Query<Minutes>,
) -> Result<StatusCode, ApiError> {
    befall(&s, &vm, Mishap::RpoViolation { minutes: q.minutes })
}

async fn rpo_off(
    State(s): State<SimState>,
    Path(vm): Path<String>,
) -> Result<StatusCode, ApiError> {
    befall(&s, &vm, Mishap::RpoRecovered)
}

async fn error_on(
    State(s): State<SimState>,
    Path(vm): Path<String>,
    Query(q): Query<Message>,
) -> Result<StatusCode, ApiError> {
    let message = q
        .message
        .unwrap_or_else(|| format!("No connection to VR Server for virtual machine '{vm}'"));
    befall(&s, &vm, Mishap::Error { message })
}

async fn error_off(
    State(s): State<SimState>,
    Path(vm): Path<String>,
) -> Result<StatusCode, ApiError> {
    befall(&s, &vm, Mishap::Repaired)
}

async fn pause_on(
    State(s): State<SimState>,
    Path(vm): Path<String>,
) -> Result<StatusCode, ApiError> {
    befall(&s, &vm, Mishap::Paused)
}

async fn pause_off(
    State(s): State<SimState>,
    Path(vm): Path<String>,
) -> Result<StatusCode, ApiError> {
    befall(&s, &vm, Mishap::Resumed)
}

async fn remove(State(s): State<SimState>, Path(vm): Path<String>) -> Result<StatusCode, ApiError> {
    befall(&s, &vm, Mishap::Removed)
}

async fn add_vm(
    State(s): State<SimState>,
    Query(q): Query<Name>,
) -> Result<(StatusCode, String), ApiError> {
    s.add_vm(&q.name)
        .map(|id| (StatusCode::CREATED, id))
        .map_err(ApiError::bad_request)
}
