//! Helpers shared by the integration-test modules.

pub mod bounds;
pub mod cmd;
pub mod fixtures;
pub mod harness;
pub mod openapi;
pub mod receivers;
pub mod site;
pub mod wait;
