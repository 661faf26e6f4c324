//! `vrbulk completions SHELL`: the shell completion script, generated from the clap definitions
//! so it never falls behind the commands.

use crate::exit::Exit;
use std::io::Write;

use clap::{Args, CommandFactory};
use clap_complete::Shell;

use super::Cli;

#[derive(Debug, Args)]
#[command(after_help = "Examples:
  vrbulk completions bash > ~/.local/share/bash-completion/completions/vrbulk
  vrbulk completions zsh > \"${fpath[1]}/_vrbulk\"
  vrbulk completions fish > ~/.config/fish/completions/vrbulk.fish
  vrbulk completions powershell >> $PROFILE")]
pub struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_enum)]
    pub shell: Shell,
}

pub fn run(args: CompletionsArgs) -> anyhow::Result<Exit> {
    let mut command = Cli::command();
    // Into memory first: the generator panics on a write error, and a closed stdout (`| head`)
    // must end quietly instead.
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut command, "vrbulk", &mut script);
    std::io::stdout().write_all(&script)?;
    Ok(Exit::Ok)
}
