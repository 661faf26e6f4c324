//! The steps for one VM: the per-pairing discovery, looking VMs up in groups, deciding what to
//! do with each, and building its `ConfigureReplicationSpec`. Retry timing is not decided here
//! but by the runner.

pub mod capacity;
pub mod day2;
pub mod desired;
pub mod discovery;
pub mod forecast;
pub mod import;
pub mod inventory;
pub mod operation_plan;
pub mod operations;
pub mod pairing;
pub mod plan;
pub mod protection;
pub mod reads;
pub mod rerun;
pub mod resolve;
pub mod retry;
pub mod session;
pub mod spec;
pub mod wave;

pub use capacity::{applied, Capacity, Full};
pub use discovery::{appliance_version, Discovery, DiscoveryError, DiscoverySummary};
pub use pairing::{choose_pairing, PairingError};
pub use plan::{plan_jobs, Plan, PlanAction, PlanCapacity, PlanError, PlanRow};
pub use resolve::{decide, lookup_vms, plan_configure, vm_key, Decision, VmLookup, LOOKUP_GROUP};
pub use session::{connect, ConnectError, LoginFailed};
pub use spec::build_spec;
