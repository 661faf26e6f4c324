//! vrbulk: protect hundreds of VMs with vSphere Replication in one audited, resumable batch.
//!
//! The library holds everything; `main.rs` only parses arguments and maps outcomes to exit codes.

pub mod cli;
pub mod config;
pub mod domain;
pub mod exit;
pub mod input;
pub mod monitor;
pub mod notify;
pub mod operator;
pub mod queue;
pub mod report;
pub mod runner;
pub mod secret;
pub mod settings;
pub mod sim;
pub mod timefmt;
pub mod units;
pub mod vr;
pub mod workflow;
