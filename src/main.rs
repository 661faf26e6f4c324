//! The `vrbulk` binary: parse arguments, run, turn the outcome into an exit code.

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = vrbulk::cli::Cli::parse();
    match vrbulk::cli::run(cli) {
        Ok(code) => code.into(),
        Err(err) => {
            eprintln!("error: {err:#}");
            vrbulk::cli::exit_code_for(&err).into()
        }
    }
}
