//! `vrbulk pause`, `vrbulk resume` and `vrbulk sync`: the same operation on every replication a
//! configure batch created (or those of the VMs `--vm` names). They share everything but the
//! operation, so they share this file; each has its own example in `--help` (`cli::Command`).

use crate::exit::Exit;
use clap::Args;

use super::operate::{operate, Globals, OperationArgs};
use crate::domain::OperationSpec;
use crate::workflow::day2::{Asked, OperationRequest};

#[derive(Debug, Args)]
pub struct StateArgs {
    #[command(flatten)]
    pub common: OperationArgs,
}

/// Runs `operation` (pause, resume or sync) on the batch's replications.
pub async fn run(
    operation: OperationSpec,
    args: StateArgs,
    globals: Globals<'_>,
) -> anyhow::Result<Exit> {
    let request = OperationRequest {
        acts_on: args.common.batch,
        vms: args.common.vms.clone(),
        only_finished: args.common.only_finished,
        asked: Asked::Each(operation),
    };
    operate(request, &args.common, globals, |_| Ok(())).await
}
