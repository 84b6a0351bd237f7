// The command line's own test binaries link libtorch through the trainer: give them the
// same rpath and link flags as the `gdt` binary (see trainer/link_libtorch.rs).
include!("../trainer/link_libtorch.rs");

fn main() {
    link_libtorch();
}
