//! A loader batch on the training device: the u8 video and f32 audio buffers copied over
//! (from page-locked memory without blocking the host, on CUDA), and the video normalised there,
//! where it costs nothing next to the encoder, instead of on the loader's CPU threads.

use gdt_pipeline::load::batch::{Batch, ViewMeta};
use tch::{Device, Kind, Tensor};

use crate::model::channels_last_3d;

/// Per-channel normalisation of the reference: `(x / 255 - MEAN) / STD`.
pub const VIDEO_MEAN: f64 = 0.45;
/// Per-channel std of video normalisation.
pub const VIDEO_STD: f64 = 0.225;

/// A loader batch uploaded to the device, with its view metadata.
pub struct DeviceBatch {
    /// `[records * views, 3, clip, crop, crop]` u8.
    pub video: Tensor,
    /// `[records * views, 1, mels, frames]` f32.
    pub audio: Tensor,
    /// Every view's metadata, in row order.
    pub views: Vec<ViewMeta>,
    /// The loader epoch it came from.
    pub epoch: u64,
    /// Its batch number within the epoch.
    pub index: usize,
    /// The page-locked host copies a non-blocking transfer still reads from: kept alive until
    /// this batch is dropped, after the step that used it has synchronised.
    _staging: Option<(Tensor, Tensor)>,
}

impl DeviceBatch {
    /// Copies `batch` to `device`. The loader's buffers go back to its pool on return.
    pub fn upload(batch: Batch, device: Device) -> DeviceBatch {
        let s = batch.shape;
        let n = (batch.records * s.views) as i64;
        let vshape = [n, 3, s.clip as i64, s.crop as i64, s.crop as i64];
        let ashape = [n, 1, s.mels as i64, s.audio_frames as i64];
        let (video, audio, staging) = if device.is_cuda() {
            // SAFETY: the views borrow `batch`'s buffers, which outlive them: pin_memory copies
            // into fresh page-locked memory before `batch` is dropped at the end of this call.
            let (hv, ha) = unsafe {
                (
                    Tensor::from_blob(batch.video().as_ptr(), &vshape, &[], Kind::Uint8, Device::Cpu),
                    Tensor::from_blob(
                        batch.audio().as_ptr() as *const u8,
                        &ashape,
                        &[],
                        Kind::Float,
                        Device::Cpu,
                    ),
                )
            };
            let (pv, pa) = (hv.pin_memory(device), ha.pin_memory(device));
            let v = pv.to_device_(device, Kind::Uint8, true, false);
            let a = pa.to_device_(device, Kind::Float, true, false);
            (v, a, Some((pv, pa)))
        } else {
            (
                Tensor::from_slice(batch.video()).reshape(vshape),
                Tensor::from_slice(batch.audio()).reshape(ashape),
                None,
            )
        };
        DeviceBatch {
            video,
            audio,
            views: batch.views().to_vec(),
            epoch: batch.epoch,
            index: batch.index,
            _staging: staging,
        }
    }

    /// Views in this batch (records x views per record).
    pub fn len(&self) -> usize {
        self.views.len()
    }

    /// Whether it holds no view.
    pub fn is_empty(&self) -> bool {
        self.views.is_empty()
    }
}

/// u8 video -> normalised f32, optionally with channels-last-3d strides.
pub fn normalise_video(video: &Tensor, channels_last: bool) -> Tensor {
    let x = video.to_kind(Kind::Float) * (1.0 / (255.0 * VIDEO_STD)) - VIDEO_MEAN / VIDEO_STD;
    if channels_last {
        channels_last_3d(&x)
    } else {
        x
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalisation_matches_the_reference_constants() {
        let v = Tensor::from_slice(&[0u8, 255, 128]).reshape([1, 3, 1, 1, 1]);
        let got = Vec::<f32>::try_from(normalise_video(&v, false).flatten(0, -1)).unwrap();
        let want = [0.0f64, 255.0, 128.0].map(|x| ((x / 255.0 - 0.45) / 0.225) as f32);
        for (g, w) in got.iter().zip(want) {
            assert!((g - w).abs() < 1e-5, "{got:?} vs {want:?}");
        }
    }
}
