//! GDT training on libtorch through tch: the encoders, the generalised contrastive loss from a
//! declarative spec, and the training loop fed by the `pipeline` loader.
//!
//! - [`spec`]: which factors are invariant or distinct, presets, the c and w masks;
//! - [`gdt_loss`]: GDT-NCE from those masks;
//! - [`r2plus1d`], [`resnet9`], [`head`], [`model`]: R(2+1)D-18, ResNet-9, projection heads;
//!   [`layers`] holds the reference's initialisation;
//! - [`eval`]: retrieval, kNN and linear probes, synchrony and direction probes;
//! - [`train`]: the loop; [`config`], [`schedule`], [`sgd`], [`checkpoint`], [`run_log`],
//!   [`plot`], [`input`] (batch upload), [`precision`] (bf16 autocast),
//!   [`gpu_memory`], [`device`];
//! - [`dist`]: torch.distributed's c10d process groups and collectives, and the launch
//!   variables of torchrun and Slurm ([`train::train_data_parallel`] runs on them).
//!
//! ```no_run
//! use gdt_trainer::{config::TrainConfig, train};
//! let mut cfg = TrainConfig::from_toml("steps = 100\n[model]\nwidth = 0.25\n", "inline", &[]).unwrap();
//! cfg.dataset = Some("packed/".into());
//! let resolved = cfg.resolve().unwrap();
//! let summary = train::train(&resolved, "runs/demo".as_ref(), false, &mut train::Silent).unwrap();
//! println!("loss {:.3} at {:.0} clips/s", summary.final_loss, summary.clips_per_s);
//! ```

#![deny(missing_docs)]

pub mod checkpoint;
pub mod config;
pub mod device;
pub mod dist;
pub mod eval;
pub mod gdt_loss;
pub mod gpu_memory;
pub mod head;
pub mod input;
pub mod layers;
pub mod model;
pub mod plot;
pub mod precision;
pub mod r2plus1d;
pub mod resnet9;
pub mod run_log;
pub mod schedule;
pub mod sgd;
/// The transformation spec and its masks live in the torch-free pipeline crate, shared with
/// the Python package.
pub use gdt_pipeline::spec;
pub mod train;

pub use tch;
