//! The crate's single integration-test binary: one module per area, shared helpers in `support`.

mod support;

mod admission;
mod batches;
mod capacity;
mod cli;
mod client;
mod day2;
mod desired;
mod faults;
mod input_corpus;
mod inventory;
mod kills;
mod link;
mod monitor;
mod openapi_validator;
mod operations;
mod operator;
mod ops;
mod pairings;
mod protection;
mod queue;
mod report;
mod report_operations;
mod run;
mod spec_conformance;
mod status;
mod workflow;
