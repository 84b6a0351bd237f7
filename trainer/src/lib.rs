//! GDT training on libtorch through tch: the encoders, the generalised contrastive loss from a
//! declarative spec, and the training loop fed by the `pipeline` loader.
//!
//! - [`config`]: the training config (`[data]` is the pipeline's loader settings), its
//!   resolution and the command line's request ([`config::Invocation`]);
//! - [`model`]: R(2+1)D-18, ResNet-9, the heads, their layers, and the function that builds
//!   the pair;
//! - [`spec`] (the pipeline's): which factors are invariant or distinct, presets, the c and w
//!   masks; [`gdt_loss`]: GDT-NCE from those masks;
//! - [`train`]: the loop ([`train::train`], [`train::train_data_parallel`]), with
//!   [`schedule`], [`sgd`], [`checkpoint`], [`run_log`], [`plot`], [`input`] (batches to the
//!   device), [`precision`] (bf16 autocast), [`gpu_memory`] and [`device`];
//! - [`dist`]: torch.distributed's c10d process groups and collectives, the data-parallel
//!   step ([`dist::DataParallel`]), and the launch variables of torchrun and Slurm;
//! - [`splits`]: which records pretraining reads and evaluation holds out;
//! - [`eval`]: retrieval, kNN and linear probes, synchrony and direction probes;
//! - [`proof`]: the proof-of-learning protocol (train a small model, evaluate it against
//!   random init);
//! - [`error`]: [`TrainError`], the one error type.
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
pub mod error;
pub mod eval;
pub mod gdt_loss;
pub mod gpu_memory;
pub mod input;
pub mod model;
pub mod plot;
pub mod precision;
pub mod proof;
pub mod run_log;
pub mod schedule;
pub mod sgd;
pub mod splits;
/// The transformation spec and its masks live in the torch-free pipeline crate, shared with
/// the Python package.
pub use gdt_pipeline::spec;
pub mod train;

pub use error::TrainError;
pub use tch;
