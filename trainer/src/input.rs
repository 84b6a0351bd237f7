//! A loader batch on the training device, and how it gets there.
//!
//! On the CPU the tensors are copies of the batch's buffers, and the batch goes back to the
//! loader's pool at once. On CUDA the loader writes into page-locked buffers
//! ([`PinnedHost`]), and the [`Uploader`] copies them on a stream of their own while the
//! current step computes: no staging copy, nothing on the training thread waits. An event
//! recorded after the copy marks its end; the step's stream waits for that event on the GPU
//! (not the host) before it reads the batch ([`DeviceBatch::ready`]), and the host buffers
//! go back to the pool only once the event says the copy is done.
//!
//! The video is normalised on the device, where it costs nothing next to the encoder.
//!
//! [`PinnedHost`]: crate::device::pinned::PinnedHost

use std::sync::Arc;

use gdt_pipeline::load::batch::{Batch, ViewMeta};
use gdt_pipeline::load::host::HostMemory;
use tch::{Device, Kind, TchError, Tensor};

use crate::device::pinned::PinnedHost;
use crate::device::stream::{Event, Stream};
use crate::model::channels_last_3d;

/// Per-channel normalisation of the reference: `(x / 255 - MEAN) / STD`.
pub const VIDEO_MEAN: f64 = 0.45;
/// Per-channel std of video normalisation.
pub const VIDEO_STD: f64 = 0.225;

/// The end of a batch's copy to the device, as the copy's stream marks it.
pub trait CopyDone: Send {
    /// Whether the copy has finished.
    fn finished(&self) -> Result<bool, TchError>;
    /// Blocks the host until it has.
    fn wait(&self) -> Result<(), TchError>;
    /// Orders what the step's stream does next after the copy (on the device; the host goes
    /// on), and tells the caching allocator the copied tensors are used there.
    fn order_before_use(&self, tensors: &[&Tensor]) -> Result<(), TchError>;
}

/// A copy that may still run: the host buffers it reads and the mark of its end.
struct InFlight {
    host: Batch,
    done: Box<dyn CopyDone>,
}

/// A loader batch on the device, with its view metadata.
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
    /// The copy, while its host buffers are held.
    copy: Option<InFlight>,
}

impl DeviceBatch {
    fn new(batch: &Batch, video: Tensor, audio: Tensor) -> DeviceBatch {
        DeviceBatch {
            video,
            audio,
            views: batch.views().to_vec(),
            epoch: batch.epoch,
            index: batch.index,
            copy: None,
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

    /// Call before a step reads the tensors: the step's stream then waits for the copy.
    pub fn ready(&self) -> Result<(), TchError> {
        match &self.copy {
            Some(c) => c.done.order_before_use(&[&self.video, &self.audio]),
            None => Ok(()),
        }
    }

    /// Gives the host buffers back to the loader's pool if the copy has finished; whether
    /// none are held any more.
    pub fn release_host(&mut self) -> Result<bool, TchError> {
        match &self.copy {
            Some(c) if !c.done.finished()? => Ok(false),
            _ => {
                self.copy = None;
                Ok(true)
            }
        }
    }

    /// Whether the batch still holds its host buffers.
    pub fn holds_host(&self) -> bool {
        self.copy.is_some()
    }
}

impl Drop for DeviceBatch {
    fn drop(&mut self) {
        if let Some(c) = self.copy.take() {
            // The buffers go back to a pool the workers write into: never while a copy may
            // still read them. (A failed wait means the device failed; the run is over.)
            let _ = c.done.wait();
            drop(c.host);
        }
    }
}

/// How batches reach the device: on the CPU by copy, on CUDA from page-locked memory on a
/// stream of their own.
pub struct Uploader {
    device: Device,
    cuda: Option<CudaCopy>,
}

/// The copy stream and the stream the steps run on.
struct CudaCopy {
    copy: Stream,
    compute: Arc<Stream>,
}

impl Uploader {
    /// For `device`: on CUDA a copy stream from its pool beside the current stream.
    pub fn new(device: Device) -> Result<Uploader, TchError> {
        let cuda = match device {
            Device::Cuda(_) => Some(CudaCopy {
                copy: Stream::from_pool(device)?,
                compute: Arc::new(Stream::current(device)?),
            }),
            _ => None,
        };
        Ok(Uploader { device, cuda })
    }

    /// Where the loader's batch buffers should live for this device: page-locked memory on
    /// CUDA (copies from it run asynchronously), the heap otherwise.
    pub fn host_memory(&self) -> Option<Arc<dyn HostMemory>> {
        self.cuda
            .as_ref()
            .map(|_| Arc::new(PinnedHost::default()) as Arc<dyn HostMemory>)
    }

    /// Starts `batch` on its way to the device (on CUDA the copy runs on while this returns).
    pub fn upload(&self, batch: Batch) -> Result<DeviceBatch, TchError> {
        let s = batch.shape;
        let n = (batch.records * s.views) as i64;
        let vshape = [n, 3, s.clip as i64, s.crop as i64, s.crop as i64];
        let ashape = [n, 1, s.mels as i64, s.audio_frames as i64];
        let Some(cuda) = &self.cuda else {
            let video = Tensor::from_slice(batch.video())
                .reshape(vshape)
                .to_device(self.device);
            let audio = Tensor::from_slice(batch.audio())
                .reshape(ashape)
                .to_device(self.device);
            return Ok(DeviceBatch::new(&batch, video, audio));
        };
        // SAFETY: the views borrow `batch`'s buffers, which the returned DeviceBatch keeps
        // until the copy that reads them has finished (see `Drop`); they never reallocate.
        let (host_video, host_audio) = unsafe {
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
        let video = cuda.copy.copy_to_device(&host_video)?;
        let audio = cuda.copy.copy_to_device(&host_audio)?;
        let done = CudaDone {
            event: Event::record(&cuda.copy)?,
            compute: cuda.compute.clone(),
        };
        let mut db = DeviceBatch::new(&batch, video, audio);
        db.copy = Some(InFlight {
            host: batch,
            done: Box::new(done),
        });
        Ok(db)
    }
}

/// The end of a CUDA copy: an event on the copy stream, and the stream the step runs on.
struct CudaDone {
    event: Event,
    compute: Arc<Stream>,
}

impl CopyDone for CudaDone {
    fn finished(&self) -> Result<bool, TchError> {
        self.event.query()
    }

    fn wait(&self) -> Result<(), TchError> {
        self.event.synchronize()
    }

    fn order_before_use(&self, tensors: &[&Tensor]) -> Result<(), TchError> {
        self.event.block(&self.compute)?;
        tensors.iter().try_for_each(|t| self.compute.record_use(t))
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
    use gdt_pipeline::load::loader::LoaderBuilder;
    use gdt_pipeline::synth::packed::SmallDataset;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    #[test]
    fn normalisation_matches_the_reference_constants() {
        let v = Tensor::from_slice(&[0u8, 255, 128]).reshape([1, 3, 1, 1, 1]);
        let got = Vec::<f32>::try_from(normalise_video(&v, false).flatten(0, -1)).unwrap();
        let want = [0.0f64, 255.0, 128.0].map(|x| ((x / 255.0 - 0.45) / 0.225) as f32);
        for (g, w) in got.iter().zip(want) {
            assert!((g - w).abs() < 1e-5, "{got:?} vs {want:?}");
        }
    }

    /// A copy whose end the test decides, counting what the batch asks of it: the CUDA
    /// branch's bookkeeping, run on the CPU.
    #[derive(Clone, Default)]
    struct Fake {
        finished: Arc<AtomicBool>,
        waits: Arc<AtomicUsize>,
        orders: Arc<AtomicUsize>,
    }

    impl CopyDone for Fake {
        fn finished(&self) -> Result<bool, TchError> {
            Ok(self.finished.load(Ordering::SeqCst))
        }
        fn wait(&self) -> Result<(), TchError> {
            self.waits.fetch_add(1, Ordering::SeqCst);
            self.finished.store(true, Ordering::SeqCst);
            Ok(())
        }
        fn order_before_use(&self, tensors: &[&Tensor]) -> Result<(), TchError> {
            assert_eq!(tensors.len(), 2, "video and audio");
            self.orders.fetch_add(1, Ordering::SeqCst);
            Ok(())
        }
    }

    fn small_loader(dir: &std::path::Path, epochs: u64) -> gdt_pipeline::load::loader::Loader {
        let settings = gdt_pipeline::load::settings::LoaderSettings {
            batch_size: 2,
            clip: 8,
            crop: 32,
            threads: Some(1),
            ..Default::default()
        };
        LoaderBuilder::new(dir)
            .settings(&settings)
            .epochs(epochs)
            .build()
            .unwrap()
    }

    /// `batch` as the CUDA branch holds it while its copy runs.
    fn in_flight(batch: Batch, fake: &Fake) -> DeviceBatch {
        let zeros = |kind| Tensor::zeros([1], (kind, Device::Cpu));
        let mut db = DeviceBatch::new(&batch, zeros(Kind::Uint8), zeros(Kind::Float));
        db.copy = Some(InFlight {
            host: batch,
            done: Box::new(fake.clone()),
        });
        db
    }

    #[test]
    fn host_buffers_go_back_only_once_their_copy_has_finished() {
        let dir = tempfile::tempdir().unwrap();
        SmallDataset::default().small_frames().write(dir.path()).unwrap();
        let mut loader = small_loader(dir.path(), 2);

        let fake = Fake::default();
        let mut db = in_flight(loader.next().unwrap().unwrap(), &fake);
        db.ready().unwrap();
        assert_eq!(
            fake.orders.load(Ordering::SeqCst),
            1,
            "the step waits for the copy"
        );
        assert!(
            !db.release_host().unwrap() && db.holds_host(),
            "copy still running"
        );
        fake.finished.store(true, Ordering::SeqCst);
        assert!(db.release_host().unwrap() && !db.holds_host());
        drop(db);
        assert_eq!(
            fake.waits.load(Ordering::SeqCst),
            0,
            "released already: nothing to wait for"
        );

        // Dropped while the copy may run: the host waits for it before the buffers go back.
        let fake = Fake::default();
        drop(in_flight(loader.next().unwrap().unwrap(), &fake));
        assert_eq!(fake.waits.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn on_the_cpu_batches_are_copies_and_need_no_host_memory() {
        let dir = tempfile::tempdir().unwrap();
        SmallDataset::default().small_frames().write(dir.path()).unwrap();
        let mut loader = small_loader(dir.path(), 1);
        let up = Uploader::new(Device::Cpu).unwrap();
        assert!(up.host_memory().is_none());
        let batch = loader.next().unwrap().unwrap();
        let video = batch.video().to_vec();
        let mut db = up.upload(batch).unwrap();
        assert!(!db.holds_host() && db.release_host().unwrap());
        db.ready().unwrap();
        assert_eq!(Vec::<u8>::try_from(db.video.flatten(0, -1)).unwrap(), video);
        assert_eq!(db.video.size()[0] as usize, db.len());
    }
}
