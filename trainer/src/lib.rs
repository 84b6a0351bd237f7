//! GDT training on libtorch through tch.
//!
//! So far: [`device`], what libtorch sees and a smoke test per device. The models (R(2+1)D-18,
//! ResNet-9), the GDT-NCE loss and the training loop are tracked as separate work; see
//! ARCHITECTURE.md.

pub mod device;

pub use tch;
