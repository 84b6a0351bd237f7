// The `gdt` binary links libtorch exactly as the trainer's own tests do.
include!("trainer/build.rs");
