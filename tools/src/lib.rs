//! The `gdt` command line: parsing, progress bars and reports over the library crates.
//!
//! Nothing here decodes, packs, loads or trains: each subcommand turns its arguments into a
//! library call and its result into text or JSON. The binary at the repository root is a
//! one-line `main` that calls [`main`].

mod cli;
mod commands;

use clap::Parser;

pub use cli::Cli;

/// Exit status for usage errors and for commands that are not built yet.
pub const EXIT_USAGE: i32 = 2;

/// Runs `gdt` with the process's arguments and returns the exit status.
pub fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { EXIT_USAGE } else { 0 };
        }
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("GDT_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    match commands::dispatch(cli.command) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("gdt: error: {e:#}");
            1
        }
    }
}
