//! gdt's on-disk formats, with no FFmpeg and no torch, so that any tool can read packed data.
//!
//! - [`shard`]: the shard file (header, blobs, index, footer), its writer and its validating,
//!   memory-mapped reader. The byte layout is in `formats/FORMAT.md`.
//! - [`field`]: one module per stored field (frames, spectrogram, metadata).
//! - [`dataset`]: `dataset.json`, the directory-level description.
//! - [`params`]: the packing parameters every shard carries.
//! - [`storage`]: datasets in object stores (`s3://`, `gs://`, `az://`): ranged reads,
//!   uploads, a local cache.
//! - [`atomic_file`]: write to a temporary name, then rename.
//!
//! ```
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use gdt_formats::{field::meta::{AudioOrigin, RecordMeta}, params::PackParams, shard::*};
//! let dir = tempfile::tempdir()?;
//! let params = PackParams { mels: 4, ..PackParams::default() };
//! let meta = RecordMeta {
//!     source: "a.mp4".into(), label: None, label_index: None, split: None,
//!     source_duration_s: Some(1.0), source_fps: Some(30.0), source_width: 8, source_height: 8,
//!     source_video_codec: "h264".into(), source_audio_codec: None, source_sample_rate: None,
//!     source_channels: None, window_start_s: 0.0, window_index: 0, audio: AudioOrigin::Silence,
//! };
//! let frames = vec![7u8; 10 * 3 * 8 * 8];
//! let mel = vec![0.5f32; 4 * 20];
//! let mut w = ShardWriter::create(&dir.path().join("s.gdt"), &params)?;
//! w.append(&EncodedRecord::encode(&meta, &frames, 8, 8, &mel, 20, &params)?)?;
//! w.finish()?;
//! let shard = Shard::open(&dir.path().join("s.gdt"))?;
//! let mut out = Vec::new();
//! let mut decoder = gdt_formats::field::frames::ChunkDecoder::new()?;
//! shard.record(0)?.read_frames(&mut decoder, 3, 5, &mut out)?;
//! assert_eq!(out, vec![7u8; 5 * 3 * 8 * 8]);
//! # Ok(()) }
//! ```

#![deny(missing_docs)]

pub mod atomic_file;
pub mod dataset;
pub mod error;
pub mod field;
pub mod params;
pub mod shard;
pub mod storage;

pub use error::{FileError, FormatError};
