//! The `vrbulk` binary: parse arguments, run, turn the outcome into an exit code.

use clap::Parser;

fn main() -> std::process::ExitCode {
    // `vrbulk plan | head` must end quietly, as other Unix tools do, not panic on a closed pipe.
    #[cfg(unix)]
    // SAFETY: restoring the default disposition of SIGPIPE before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let cli = vrbulk::cli::Cli::parse();
    match vrbulk::cli::run(cli) {
        Ok(code) => code.into(),
        Err(err) => {
            eprintln!("error: {err:#}");
            vrbulk::cli::exit_code_for(&err).into()
        }
    }
}
