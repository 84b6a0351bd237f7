//! What each input adds to a dataset. One pack's report line, the tally a dataset's
//! description is summed from and the description's totals all carry the same counters,
//! so they are declared once, here, and added up rather than copied field by field.

use serde::{Deserialize, Serialize};

/// The counters one input contributes (and, summed, a whole dataset holds).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct InputCounts {
    /// Records.
    pub records: usize,
    /// Stored video frames.
    pub frames: u64,
    /// Stored seconds of video.
    pub seconds: f64,
    /// Bytes the frames take as raw u8 (the compression baseline).
    pub raw_frame_bytes: u64,
    /// Bytes of the source files.
    pub source_bytes: u64,
}

impl std::ops::AddAssign for InputCounts {
    fn add_assign(&mut self, other: InputCounts) {
        self.records += other.records;
        self.frames += other.frames;
        self.seconds += other.seconds;
        self.raw_frame_bytes += other.raw_frame_bytes;
        self.source_bytes += other.source_bytes;
    }
}

/// One input as a dataset's description counts it: packed (with its counters) or skipped.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct InputTally {
    /// Its label, if any.
    pub label: Option<String>,
    /// Why it was skipped (the histogram key); `None` when it was packed.
    pub skipped: Option<String>,
    /// What it gave.
    pub counts: InputCounts,
}
