// The `gdt` binary links libtorch exactly as the trainer's own tests do.
include!("trainer/link_libtorch.rs");

fn main() {
    link_libtorch();
}
