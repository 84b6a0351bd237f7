//! Per-record features: N uniformly spaced clips per record through the frozen model (eval
//! mode), averaged; and, on the way, the synchrony and direction probes, which need the
//! per-clip embeddings.

use gdt_pipeline::load::clips::ClipReader;
use gdt_pipeline::load::loader::LoadError;
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
    let shape = reader.shape();
    let (vlen, alen) = (shape.video_per_view(), shape.audio_per_view());
    let n_records = reader.records().len();
    let mut video_buf = vec![0u8; clips * vlen];
    let mut audio_buf = vec![0f32; clips * alen];
    let mut rev_buf = vec![0u8; clips * vlen];
    let mut shifted_buf = vec![0f32; clips * alen];
    // Outputs a probe read does not use (its audio, or its video).
    let (mut unused_audio, mut unused_video) = (vec![0f32; alen], vec![0u8; vlen]);
    let (mut fv, mut fa, mut ev, mut ea) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut sync, mut direction) = (Counts::default(), Counts::default());
    let vshape = |n: usize| {
        [
            n as i64,
            3,
            shape.clip as i64,
            shape.crop as i64,
            shape.crop as i64,
        ]
    };
    let ashape = |n: usize| [n as i64, 1, shape.mels as i64, shape.audio_frames as i64];
    let to_video = |buf: &[u8], n: usize| {
        normalise_video(
            &Tensor::from_slice(buf).reshape(vshape(n)).to_device(device),
            channels_last,
        )
    };
    let to_audio = |buf: &[f32], n: usize| Tensor::from_slice(buf).reshape(ashape(n)).to_device(device);

    for record in 0..n_records {
        let starts = reader.uniform_starts(record, clips);
        let n = starts.len();
        // A record shorter than a clip makes `read` below fail with the record named.
        let last = reader.records()[record].frames.saturating_sub(shape.clip);
        let probing = probe(record);
        // The synchrony probe's misaligned audio: from the far half of the record, >= 1 s away.
        let shifted: Vec<Option<usize>> = starts
            .iter()
            .map(|&s| {
                let other = if s * 2 < last { last } else { 0 };
                (other.abs_diff(s) >= SYNC_MIN_SHIFT_FRAMES).then_some(other)
            })
            .collect();
        for (i, &s) in starts.iter().enumerate() {
            let (v, a) = (
                &mut video_buf[i * vlen..(i + 1) * vlen],
                &mut audio_buf[i * alen..(i + 1) * alen],
            );
            reader.read(record, s, s, false, v, a)?;
            if probing {
                reader.read(
                    record,
                    s,
                    s,
                    true,
                    &mut rev_buf[i * vlen..(i + 1) * vlen],
                    &mut unused_audio,
                )?;
                if let Some(o) = shifted[i] {
                    reader.read(
                        record,
                        s,
                        o,
                        false,
                        &mut unused_video,
                        &mut shifted_buf[i * alen..(i + 1) * alen],
                    )?;
                }
            }
        }
        tch::no_grad(|| {
            let video_f = model.video_features(&to_video(&video_buf[..n * vlen], n), false);
            let audio_f = model.audio_features(&to_audio(&audio_buf[..n * alen], n), false);
            let video_e = model.video_head(&video_f, false);
            let audio_e = model.audio_head(&audio_f, false);
            if probing {
                let rev_e = model.video_head(
                    &model.video_features(&to_video(&rev_buf[..n * vlen], n), false),
                    false,
                );
                let aligned = (&video_e * &audio_e).sum_dim_intlist(1, false, Kind::Float);
                let reversed = (&rev_e * &audio_e).sum_dim_intlist(1, false, Kind::Float);
                let wins = Vec::<bool>::try_from(aligned.gt_tensor(&reversed)).expect("bools");
                direction.trials += n;
                direction.wins += wins.iter().filter(|w| **w).count();
                let with_shift: Vec<usize> = (0..n).filter(|&i| shifted[i].is_some()).collect();
                if !with_shift.is_empty() {
                    let idx = Tensor::from_slice(&with_shift.iter().map(|&i| i as i64).collect::<Vec<_>>())
                        .to_device(device);
                    let shifted_e = model.audio_head(
                        &model.audio_features(
                            &to_audio(&shifted_buf[..n * alen], n).index_select(0, &idx),
                            false,
                        ),
                        false,
                    );
                    let v = video_e.index_select(0, &idx);
                    let good = (&v * audio_e.index_select(0, &idx)).sum_dim_intlist(1, false, Kind::Float);
                    let bad = (&v * &shifted_e).sum_dim_intlist(1, false, Kind::Float);
                    let wins = Vec::<bool>::try_from(good.gt_tensor(&bad)).expect("bools");
                    sync.trials += wins.len();
                    sync.wins += wins.iter().filter(|w| **w).count();
                }
            }
            let mean = |t: &Tensor| {
                t.to_kind(Kind::Float)
                    .mean_dim(0, false, Kind::Float)
                    .to_device(Device::Cpu)
            };
            fv.push(mean(&video_f));
            fa.push(mean(&audio_f));
            ev.push(mean(&video_e));
            ea.push(mean(&audio_e));
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
