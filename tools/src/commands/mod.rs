//! One module per subcommand. Each returns the process exit status or an error with context.

mod bench;
mod copy;
mod eval;
mod info;
mod inspect;
mod merge;
mod pack;
mod preview;
mod synth;
mod train;
mod verify;

use anyhow::Result;

use crate::cli::Command;

pub fn dispatch(command: Command) -> Result<i32> {
    match command {
        Command::Synth(args) => synth::run(args),
        Command::Info(args) => info::run(args),
        Command::Pack(args) => pack::run(args),
        Command::Merge(args) => merge::run(args),
        Command::Copy(args) => copy::run(args),
        Command::Inspect(args) => inspect::run(args),
        Command::Verify(args) => verify::run(args),
        Command::Preview(args) => preview::run(args),
        Command::Bench(args) => bench::run(args),
        Command::Train(args) => train::run(args),
        Command::Eval(args) => eval::run(args),
    }
}
