//! A record's descriptive metadata, stored as JSON: where it came from and what it is.
//! Nothing on the loader's hot path reads it; the geometry it needs is in the shard index.

use serde::{Deserialize, Serialize};

/// Where a record's audio came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AudioOrigin {
    /// Decoded from the source's audio stream.
    Decoded,
    /// The source had no audio and `--no-audio silence` asked for silence.
    Silence,
}

/// What a record came from: blob 0 of every record, as JSON.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RecordMeta {
    /// The input as the manifest or folder listing named it.
    pub source: String,
    /// Its class name, if the input had one.
    pub label: Option<String>,
    /// Index into the dataset's sorted label names.
    pub label_index: Option<u32>,
    /// Its split (`train`, `test`, ...), if the input had one.
    pub split: Option<String>,
    /// The source's duration, seconds, when known.
    pub source_duration_s: Option<f64>,
    /// The source's average frame rate, when known.
    pub source_fps: Option<f64>,
    /// The source's frame width.
    pub source_width: u32,
    /// The source's frame height.
    pub source_height: u32,
    /// The source's video codec (FFmpeg's name).
    pub source_video_codec: String,
    /// The source's audio codec, if it has audio.
    pub source_audio_codec: Option<String>,
    /// The source's audio rate, Hz.
    pub source_sample_rate: Option<u32>,
    /// The source's audio channels.
    pub source_channels: Option<u16>,
    /// Start of the stored window in the source, seconds from its first frame.
    pub window_start_s: f64,
    /// Which window of the source this is (0 unless long videos are split).
    pub window_index: u32,
    /// Where the record's audio came from.
    pub audio: AudioOrigin,
}
