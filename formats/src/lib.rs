//! gdt's on-disk formats, with no FFmpeg and no torch, so that any tool can read packed data.
//!
//! So far: [`atomic_file`], the write-then-rename discipline every gdt file follows. The
//! record and shard layout (`FORMAT.md`) is tracked as separate work; see ARCHITECTURE.md.

pub mod atomic_file;
