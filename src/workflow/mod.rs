//! The steps for one VM: the per-pairing discovery, and building its `ConfigureReplicationSpec`.
//! Retry timing is not decided here but by the runner.

pub mod pairing;
pub mod spec;

pub use pairing::choose_pairing;
pub use spec::{build_spec, Placement, ReplicationSettings};
