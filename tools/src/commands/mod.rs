//! One module per subcommand. Each returns the process exit status or an error with context.

mod bench;
mod info;
mod inspect;
mod pack;
mod preview;
mod synth;
mod train;
mod verify;

use anyhow::Result;

use crate::cli::Command;
use crate::EXIT_USAGE;

pub fn dispatch(command: Command) -> Result<i32> {
    match command {
        Command::Synth(args) => synth::run(args),
        Command::Info(args) => info::run(args),
        Command::Pack(args) => pack::run(args),
        Command::Inspect(args) => inspect::run(args),
        Command::Verify(args) => verify::run(args),
        Command::Preview(args) => preview::run(args),
        Command::Bench(args) => bench::run(args),
        Command::Train(args) => train::run(args),
        Command::Eval(_) => Ok(not_built("eval", "evaluation")),
    }
}

/// The plain answer of a command that does not exist yet: says so, does nothing, exits 2.
pub fn not_built(command: &str, what: &str) -> i32 {
    eprintln!("gdt {command}: not built yet: {what} is planned but not implemented in this version. Nothing was done.");
    EXIT_USAGE
}
