//! Command-line definitions (clap derive) and dispatch; each subcommand lives in its own file.
