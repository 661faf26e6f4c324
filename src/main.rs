//! The `vrbulk` binary: parse arguments, run, turn the outcome into an exit code.

use clap::Parser;
use vrbulk::exit::Exit;

fn main() -> std::process::ExitCode {
    // `vrbulk report | head` must end quietly, as other Unix tools do. SIGPIPE stays ignored
    // (Rust's default): restoring its default action would also kill vrbulk, without a word or
    // a released lease, whenever the appliance drops a connection mid-write (socket writes
    // through writev carry no MSG_NOSIGNAL). A closed stdout is recognised where it surfaces.
    quiet_on_closed_stdout();
    let cli = vrbulk::cli::Cli::parse();
    match vrbulk::cli::run(cli) {
        Ok(exit) => exit.into(),
        Err(err) if is_closed_pipe(&err) => Exit::ClosedPipe.into(),
        Err(err) => {
            eprintln!("error: {err:#}");
            if let Some(hint) = vrbulk::cli::hint_for(&err) {
                eprintln!("{hint}");
            }
            vrbulk::cli::exit_code_for(&err).into()
        }
    }
}

/// `println!` panics when stdout is a closed pipe: end quietly instead.
fn quiet_on_closed_stdout() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let payload = info.payload();
        let message = payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied())
            .unwrap_or("");
        if message.starts_with("failed printing to stdout") && message.contains("Broken pipe") {
            std::process::exit(i32::from(Exit::ClosedPipe.code()));
        }
        default(info)
    }));
}

fn is_closed_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
