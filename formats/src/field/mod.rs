//! One module per stored field: how its bytes are encoded and decoded. Adding a field type
//! means adding a file here; the shard layout does not change.

pub mod frames;
pub mod meta;
pub mod spectrogram;
