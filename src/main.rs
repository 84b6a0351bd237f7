//! `gdt`: see `gdt --help`, README.md and ARCHITECTURE.md.

fn main() {
    std::process::exit(gdt_cli::main());
}
