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
            eprintln!("gdt: error: {}", report(&e));
            1
        }
    }
}

/// The error and its causes on one line. The library errors already print their source
/// (`"{path}: {source}"`), so a cause whose text the line holds already is not repeated.
fn report(e: &anyhow::Error) -> String {
    let mut line = e.to_string();
    for cause in e.chain().skip(1) {
        let text = cause.to_string();
        if !line.contains(&text) {
            line.push_str(": ");
            line.push_str(&text);
        }
    }
    line
}

#[cfg(test)]
mod tests {
    use anyhow::Context;

    #[test]
    fn causes_already_in_the_message_are_not_repeated() {
        let io = std::io::Error::other("File too large (os error 27)");
        let e = gdt_formats::FormatError::from(gdt_formats::FileError {
            path: "ds/.shard-00000.gdt.tmp".into(),
            source: io,
        });
        let e = Err::<(), _>(e).context("packing into ds").unwrap_err();
        assert_eq!(
            super::report(&e),
            "packing into ds: ds/.shard-00000.gdt.tmp: File too large (os error 27)"
        );
        let plain = Err::<(), _>(std::io::Error::other("disk on fire"))
            .context("writing x")
            .unwrap_err();
        assert_eq!(super::report(&plain), "writing x: disk on fire");
    }
}
