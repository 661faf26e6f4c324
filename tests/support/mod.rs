//! Helpers shared by the integration-test modules.

pub mod harness;
pub mod openapi;
