//! Per-record features: N uniformly spaced clips per record through the frozen model (eval
//! mode), averaged; and, on the way, the synchrony and direction probes, which need the
//! per-clip embeddings.

use gdt_pipeline::load::clips::ClipReader;
use gdt_pipeline::load::error::LoadError;
use tch::{Device, Kind, Tensor};

use crate::input::normalise_video;
use crate::model::GdtModel;

/// Frames of separation below which audio counts as aligned (1 s at 30 fps).
pub const SYNC_MIN_SHIFT_FRAMES: usize = 30;

/// Every record's features, averaged over its clips.
pub struct RecordFeatures {
    /// Encoder features averaged over clips, `[records, 512 * width]`, L2-normalised.
    pub video: Tensor,
    /// Audio encoder features.
    pub audio: Tensor,
    /// Head embeddings averaged over clips, `[records, 256]`, L2-normalised.
    pub video_embedding: Tensor,
    /// Audio head embeddings.
    pub audio_embedding: Tensor,
    /// The synchrony probe's counts.
    pub sync: Counts,
    /// The direction probe's counts.
    pub direction: Counts,
}

/// Wins out of trials for a two-way probe.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize)]
pub struct Counts {
    /// Trials decided right.
    pub wins: usize,
    /// Trials.
    pub trials: usize,
}

impl Counts {
    /// Share decided right, if any trial ran.
    pub fn rate(&self) -> Option<f64> {
        (self.trials > 0).then(|| self.wins as f64 / self.trials as f64)
    }
}

/// Extracts features of every record. `probe(record)` says which records also get the
/// synchrony and direction probes (evaluation uses the test split). `progress(done, total)`
/// is called after each record.
pub fn extract(
    model: &GdtModel,
    reader: &mut ClipReader,
    clips: usize,
    device: Device,
    channels_last: bool,
    probe: impl Fn(usize) -> bool,
    mut progress: impl FnMut(usize, usize),
) -> Result<RecordFeatures, LoadError> {
    let mut clip_set = ClipSet::new(reader, clips, device, channels_last);
    let n_records = reader.records().len();
    let (mut fv, mut fa, mut ev, mut ea) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut sync, mut direction) = (Counts::default(), Counts::default());
    for record in 0..n_records {
        let probing = probe(record);
        clip_set.read(reader, record, probing)?;
        tch::no_grad(|| {
            let e = clip_set.embed(model);
            if probing {
                clip_set.probe_direction(model, &e, &mut direction);
                clip_set.probe_sync(model, &e, &mut sync);
            }
            let mean = |t: &Tensor| {
                t.to_kind(Kind::Float)
                    .mean_dim(0, false, Kind::Float)
                    .to_device(Device::Cpu)
            };
            fv.push(mean(&e.video_features));
            fa.push(mean(&e.audio_features));
            ev.push(mean(&e.video));
            ea.push(mean(&e.audio));
        });
        progress(record + 1, n_records);
    }
    let stack = |v: &[Tensor]| super::metrics::normalise(&Tensor::stack(v, 0));
    Ok(RecordFeatures {
        video: stack(&fv),
        audio: stack(&fa),
        video_embedding: stack(&ev),
        audio_embedding: stack(&ea),
        sync,
        direction,
    })
}

/// One record's clips through the model: encoder features and head embeddings of each.
struct Embedded {
    video_features: Tensor,
    audio_features: Tensor,
    video: Tensor,
    audio: Tensor,
}

/// The clips of one record, read into reused buffers: forward clips with their audio, and
/// for the probes the reversed clips and the misaligned audio.
struct ClipSet {
    device: Device,
    channels_last: bool,
    shape: gdt_pipeline::load::batch::BatchShape,
    clips: usize,
    /// Clips read for the current record.
    n: usize,
    video: Vec<u8>,
    audio: Vec<f32>,
    reversed: Vec<u8>,
    shifted: Vec<f32>,
    /// Per clip: whether it has misaligned audio (the synchrony probe's trials).
    has_shift: Vec<bool>,
    /// Outputs a probe read does not use (its audio, or its video).
    unused_audio: Vec<f32>,
    unused_video: Vec<u8>,
}

impl ClipSet {
    fn new(reader: &ClipReader, clips: usize, device: Device, channels_last: bool) -> ClipSet {
        let shape = reader.shape();
        let (vlen, alen) = (shape.video_per_view(), shape.audio_per_view());
        ClipSet {
            device,
            channels_last,
            shape,
            clips,
            n: 0,
            video: vec![0u8; clips * vlen],
            audio: vec![0f32; clips * alen],
            reversed: vec![0u8; clips * vlen],
            shifted: vec![0f32; clips * alen],
            has_shift: Vec::with_capacity(clips),
            unused_audio: vec![0f32; alen],
            unused_video: vec![0u8; vlen],
        }
    }

    /// Reads `record`'s uniformly spaced clips; with `probing`, also each clip reversed and,
    /// where the record is long enough, audio from its far half at least 1 s away.
    fn read(&mut self, reader: &mut ClipReader, record: usize, probing: bool) -> Result<(), LoadError> {
        let (vlen, alen) = (self.shape.video_per_view(), self.shape.audio_per_view());
        let starts = reader.uniform_starts(record, self.clips);
        self.n = starts.len();
        // A record shorter than a clip makes `read` below fail with the record named.
        let last = reader.records()[record].frames.saturating_sub(self.shape.clip);
        self.has_shift.clear();
        for (i, &s) in starts.iter().enumerate() {
            let (v, a) = (
                &mut self.video[i * vlen..(i + 1) * vlen],
                &mut self.audio[i * alen..(i + 1) * alen],
            );
            reader.read(record, s, s, false, v, a)?;
            if !probing {
                continue;
            }
            let reversed = &mut self.reversed[i * vlen..(i + 1) * vlen];
            reader.read(record, s, s, true, reversed, &mut self.unused_audio)?;
            let other = if s * 2 < last { last } else { 0 };
            let shifted = other.abs_diff(s) >= SYNC_MIN_SHIFT_FRAMES;
            if shifted {
                let audio = &mut self.shifted[i * alen..(i + 1) * alen];
                reader.read(record, s, other, false, &mut self.unused_video, audio)?;
            }
            self.has_shift.push(shifted);
        }
        Ok(())
    }

    fn video_tensor(&self, buf: &[u8]) -> Tensor {
        let s = &self.shape;
        let shape = [self.n as i64, 3, s.clip as i64, s.crop as i64, s.crop as i64];
        let n = self.n * s.video_per_view();
        normalise_video(
            &Tensor::from_slice(&buf[..n])
                .reshape(shape)
                .to_device(self.device),
            self.channels_last,
        )
    }

    fn audio_tensor(&self, buf: &[f32]) -> Tensor {
        let s = &self.shape;
        let shape = [self.n as i64, 1, s.mels as i64, s.audio_frames as i64];
        let n = self.n * s.audio_per_view();
        Tensor::from_slice(&buf[..n])
            .reshape(shape)
            .to_device(self.device)
    }

    /// The forward clips and their aligned audio through the model.
    fn embed(&self, model: &GdtModel) -> Embedded {
        let video_features = model.video_features(&self.video_tensor(&self.video), false);
        let audio_features = model.audio_features(&self.audio_tensor(&self.audio), false);
        Embedded {
            video: model.video_head(&video_features, false),
            audio: model.audio_head(&audio_features, false),
            video_features,
            audio_features,
        }
    }

    /// Direction: each forward clip scores higher with its audio than its reversal does.
    fn probe_direction(&self, model: &GdtModel, e: &Embedded, counts: &mut Counts) {
        let rev = model.video_head(
            &model.video_features(&self.video_tensor(&self.reversed), false),
            false,
        );
        let aligned = (&e.video * &e.audio).sum_dim_intlist(1, false, Kind::Float);
        let reversed = (&rev * &e.audio).sum_dim_intlist(1, false, Kind::Float);
        let wins = Vec::<bool>::try_from(aligned.gt_tensor(&reversed)).expect("bools");
        counts.trials += self.n;
        counts.wins += wins.iter().filter(|w| **w).count();
    }

    /// Synchrony: each clip scores higher with its aligned audio than with audio from
    /// elsewhere in the same record.
    fn probe_sync(&self, model: &GdtModel, e: &Embedded, counts: &mut Counts) {
        let with_shift: Vec<i64> = (0..self.n as i64)
            .filter(|&i| self.has_shift[i as usize])
            .collect();
        if with_shift.is_empty() {
            return;
        }
        let idx = Tensor::from_slice(&with_shift).to_device(self.device);
        let shifted_audio = self.audio_tensor(&self.shifted).index_select(0, &idx);
        let shifted = model.audio_head(&model.audio_features(&shifted_audio, false), false);
        let v = e.video.index_select(0, &idx);
        let good = (&v * e.audio.index_select(0, &idx)).sum_dim_intlist(1, false, Kind::Float);
        let bad = (&v * &shifted).sum_dim_intlist(1, false, Kind::Float);
        let wins = Vec::<bool>::try_from(good.gt_tensor(&bad)).expect("bools");
        counts.trials += wins.len();
        counts.wins += wins.iter().filter(|w| **w).count();
    }
}
