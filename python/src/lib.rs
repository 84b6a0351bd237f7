//! `gdt._gdt`: the native half of `import gdt`. The pipeline's loader runs on its own Rust
//! threads; a batch crosses into Python without a copy (its pooled buffers become numpy
//! arrays whose base is the batch, and go back to the pool when Python drops the last
//! reference); the transformation spec and its masks are the trainer's own (`gdt_pipeline::
//! spec`). The torch-facing API is `gdt/__init__.py`; this module never links libtorch.

use std::path::PathBuf;
use std::time::Duration;

use std::ptr::NonNull;
use std::sync::Arc;

use gdt_pipeline::load::batch::{Batch as RustBatch, ViewMeta};
use gdt_pipeline::load::host::{HostMemory, ALIGN};
use gdt_pipeline::load::loader::{LoadError, Loader as RustLoader, LoaderBuilder, LoaderState, Poll};
use gdt_pipeline::load::settings::LoaderSettings;
use gdt_pipeline::spec::{Pairs, SpecError as RustSpecError, TransformSpec as RustSpec};
use numpy::ndarray::{Array2, Array3, ArrayView, Ix4, Ix6};
use numpy::{IntoPyArray, PyArray, PyArray2, PyArray3, PyReadonlyArray2};
use pyo3::create_exception;
use pyo3::exceptions::{PyException, PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyDict;

create_exception!(_gdt, GdtError, PyException, "Base class of gdt's errors.");
create_exception!(
    _gdt,
    FormatError,
    GdtError,
    "A dataset, shard or record is missing, damaged or of another version (the message names the file)."
);
create_exception!(
    _gdt,
    LoaderError,
    GdtError,
    "The loader cannot go on: settings that do not fit the dataset, a record it cannot read in strict mode, a failed worker."
);
create_exception!(
    _gdt,
    SpecError,
    GdtError,
    "A transformation spec that is invalid, or that a batch layout cannot express."
);

fn load_error(e: LoadError) -> PyErr {
    match e {
        LoadError::Format(f) => FormatError::new_err(f.to_string()),
        other => LoaderError::new_err(other.to_string()),
    }
}

fn spec_error(e: RustSpecError) -> PyErr {
    SpecError::new_err(e.to_string())
}

/// How long one wait for a batch lasts before Python gets to handle signals (Ctrl-C).
const SIGNAL_SLICE: Duration = Duration::from_millis(50);

/// The loader: an iterator of ready batches produced by Rust worker threads.
#[pyclass(module = "gdt._gdt")]
struct Loader {
    inner: Option<RustLoader>,
    /// The process that started the worker threads; a fork does not copy them.
    pid: u32,
}

#[pymethods]
impl Loader {
    /// `settings`: the JSON of a `LoaderSettings` (see `loader_defaults`); unknown keys are
    /// refused by name.
    ///
    /// `host_memory`: an object whose `allocate(nbytes) -> address` and `free(address)` give
    /// the batch buffers (page-locked memory from torch, for copies to a GPU); every buffer
    /// is allocated when the loader starts, so worker threads never call into Python.
    #[new]
    #[pyo3(signature = (path, settings, *, seed, epochs, rank, world, drop_last=true, state=None, host_memory=None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        path: PathBuf,
        settings: &str,
        seed: u64,
        epochs: u64,
        rank: usize,
        world: usize,
        drop_last: bool,
        state: Option<(u64, usize)>,
        host_memory: Option<Py<PyAny>>,
    ) -> PyResult<Loader> {
        let settings: LoaderSettings = serde_json::from_str(settings)
            .map_err(|e| PyValueError::new_err(format!("loader settings: {e}")))?;
        let mut builder = LoaderBuilder::new(&path)
            .settings(&settings)
            .seed(seed)
            .epochs(epochs)
            .rank(rank, world)
            .drop_last(drop_last);
        if let Some((epoch, batch)) = state {
            builder = builder.resume(LoaderState { epoch, batch });
        }
        if let Some(obj) = host_memory {
            builder = builder.host_memory(Arc::new(PyHostMemory { obj }));
        }
        // Opening maps the shards and checks them; only a host memory's allocator touches
        // Python meanwhile (it takes the GIL back for each call).
        let loader = py.detach(|| builder.build()).map_err(load_error)?;
        Ok(Loader {
            inner: Some(loader),
            pid: std::process::id(),
        })
    }

    /// The next batch, or None at the end. Waits without the GIL, in slices, so other Python
    /// threads run and Ctrl-C interrupts the wait.
    fn next_batch(&mut self, py: Python<'_>) -> PyResult<Option<Batch>> {
        let loader = self.running()?;
        loop {
            match py.detach(|| loader.next_within(SIGNAL_SLICE)) {
                Poll::Ready(Ok(batch)) => return Ok(Some(Batch { inner: batch })),
                Poll::Ready(Err(e)) => return Err(load_error(e)),
                Poll::Done => return Ok(None),
                Poll::Pending => py.check_signals()?,
            }
        }
    }

    /// Where the loader is: (epoch, batch) of the next batch it would yield.
    fn state(&mut self) -> PyResult<(u64, usize)> {
        let s = self.running()?.state();
        Ok((s.epoch, s.batch))
    }

    /// Batches per epoch for this rank.
    fn batches_per_epoch(&mut self) -> PyResult<usize> {
        Ok(self.running()?.batches_per_epoch())
    }

    /// views, clip, crop, mels, audio_frames of every batch.
    fn shape<'py>(&mut self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let s = self.running()?.shape();
        let d = PyDict::new(py);
        d.set_item("views", s.views)?;
        d.set_item("clip", s.clip)?;
        d.set_item("crop", s.crop)?;
        d.set_item("mels", s.mels)?;
        d.set_item("audio_frames", s.audio_frames)?;
        Ok(d)
    }

    /// Records left out as damaged so far (skip mode), each with its shard and cause.
    fn skipped(&mut self) -> PyResult<Vec<String>> {
        Ok(self.running()?.skipped().into_iter().map(|s| s.error).collect())
    }

    /// Buffers the batch pool has allocated so far (constant in steady state).
    fn buffer_allocations(&mut self) -> PyResult<usize> {
        Ok(self.running()?.buffer_allocations())
    }

    /// Stops and joins the worker threads.
    fn close(&mut self, py: Python<'_>) {
        if let Some(loader) = self.inner.take() {
            py.detach(move || drop(loader));
        }
    }
}

impl Drop for Loader {
    fn drop(&mut self) {
        // Garbage-collected without close(): the GIL is held here, and workers (or a host
        // memory's free) may need it to finish, so join them with it released.
        if let Some(loader) = self.inner.take() {
            Python::attach(|py| py.detach(move || drop(loader)));
        }
    }
}

/// Batch buffers from a Python allocator (`allocate(nbytes) -> address`, `free(address)`):
/// how `gdt.Loader(device="cuda")` puts them in page-locked memory from torch.
struct PyHostMemory {
    obj: Py<PyAny>,
}

impl HostMemory for PyHostMemory {
    fn allocate(&self, bytes: usize) -> Option<NonNull<u8>> {
        let address: usize = Python::attach(|py| {
            self.obj
                .call_method1(py, "allocate", (bytes,))
                .and_then(|a| a.extract::<usize>(py))
                .ok()
        })?;
        NonNull::new(address as *mut u8).filter(|p| (p.as_ptr() as usize).is_multiple_of(ALIGN))
    }

    unsafe fn free(&self, ptr: NonNull<u8>, _bytes: usize) {
        Python::attach(|py| {
            let _ = self.obj.call_method1(py, "free", (ptr.as_ptr() as usize,));
        });
    }

    fn up_front(&self) -> bool {
        true
    }

    fn name(&self) -> &str {
        "Python-allocated"
    }
}

impl Loader {
    fn running(&mut self) -> PyResult<&mut RustLoader> {
        if std::process::id() != self.pid {
            return Err(PyRuntimeError::new_err(
                "gdt.Loader was created in another process and cannot be used after a fork \
                 (e.g. inside a torch DataLoader's worker processes): its threads do not survive \
                 it. Iterate the gdt.Loader directly in the training process; it already \
                 decodes and augments on its own threads (threads=N).",
            ));
        }
        self.inner
            .as_mut()
            .ok_or_else(|| PyRuntimeError::new_err("the loader is closed"))
    }
}

/// One batch, owning its pooled buffers until Python drops the last array viewing them.
#[pyclass(module = "gdt._gdt", frozen)]
struct Batch {
    inner: RustBatch,
}

#[pymethods]
impl Batch {
    /// u8 `[records, views, 3, clip, crop, crop]`, RGB, viewing the batch's buffer.
    fn video<'py>(slf: Bound<'py, Self>) -> PyResult<Bound<'py, PyArray<u8, Ix6>>> {
        let b = &slf.get().inner;
        let s = b.shape;
        let dims = (b.records, s.views, 3, s.clip, s.crop, s.crop);
        let view =
            ArrayView::from_shape(dims, b.video()).map_err(|e| PyValueError::new_err(e.to_string()))?;
        // SAFETY: the buffer belongs to the batch, which is immutable from Python ("frozen")
        // and lives at least as long as the array (its base); it is never reallocated.
        Ok(unsafe { PyArray::borrow_from_array(&view, slf.clone().into_any()) })
    }

    /// f32 `[records, views, mels, audio_frames]` log-mel, viewing the batch's buffer.
    fn audio<'py>(slf: Bound<'py, Self>) -> PyResult<Bound<'py, PyArray<f32, Ix4>>> {
        let b = &slf.get().inner;
        let s = b.shape;
        let dims = (b.records, s.views, s.mels, s.audio_frames);
        let view =
            ArrayView::from_shape(dims, b.audio()).map_err(|e| PyValueError::new_err(e.to_string()))?;
        // SAFETY: as for `video`.
        Ok(unsafe { PyArray::borrow_from_array(&view, slf.clone().into_any()) })
    }

    /// Address of the video buffer (to check that tensors view it).
    fn video_address(&self) -> usize {
        self.inner.video().as_ptr() as usize
    }

    /// Address of the audio buffer.
    fn audio_address(&self) -> usize {
        self.inner.audio().as_ptr() as usize
    }

    #[getter]
    fn epoch(&self) -> u64 {
        self.inner.epoch
    }

    #[getter]
    fn index(&self) -> usize {
        self.inner.index
    }

    #[getter]
    fn records(&self) -> usize {
        self.inner.records
    }

    /// Per-view metadata as `[records, views]` arrays (see `Views.meta`).
    fn meta<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        self.views().meta(py)
    }

    /// The batch's view metadata alone, without its buffers: what the masks need, kept by a
    /// batch copied to a GPU after its host buffers went back to the loader.
    fn views(&self) -> Views {
        let b = &self.inner;
        Views {
            records: b.records,
            per_record: b.shape.views,
            views: b.views().to_vec(),
        }
    }
}

/// Every view's metadata of one batch (a small copy: a few bytes a view).
#[pyclass(module = "gdt._gdt", frozen)]
struct Views {
    records: usize,
    per_record: usize,
    views: Vec<ViewMeta>,
}

#[pymethods]
impl Views {
    /// Per-view metadata as `[records, views]` arrays (crop_box `[records, views, 4]`):
    /// record, label (-1: none), shift, start_frame, audio_start, reversed, flip, scale,
    /// crop_box, gain_log.
    fn meta<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let (r, v) = (self.records, self.per_record);
        let views = &self.views;
        let d = PyDict::new(py);
        let shape = (r, v);
        put(&d, "record", per_view(views, shape, |m| m.record as i64))?;
        put(
            &d,
            "label",
            per_view(views, shape, |m| m.label.map_or(-1, |l| l as i64)),
        )?;
        put(&d, "shift", per_view(views, shape, |m| m.shift as i64))?;
        put(
            &d,
            "start_frame",
            per_view(views, shape, |m| m.start_frame as i64),
        )?;
        put(
            &d,
            "audio_start",
            per_view(views, shape, |m| m.audio_start as i64),
        )?;
        put(&d, "reversed", per_view(views, shape, |m| m.reversed))?;
        put(&d, "flip", per_view(views, shape, |m| m.video.flip))?;
        put(&d, "scale", per_view(views, shape, |m| m.video.scale))?;
        put(&d, "gain_log", per_view(views, shape, |m| m.audio.gain_log))?;
        let boxes: Bound<'py, PyArray3<f32>> =
            Array3::from_shape_fn((r, v, 4), |(i, j, c)| views[i * v + j].video.crop_box[c]).into_pyarray(py);
        d.set_item("crop_box", boxes)?;
        Ok(d)
    }

    fn __len__(&self) -> usize {
        self.views.len()
    }
}

/// The view metadata of a `Batch` or a `Views`.
fn views_of(obj: &Bound<'_, PyAny>) -> PyResult<Vec<ViewMeta>> {
    if let Ok(b) = obj.cast::<Batch>() {
        return Ok(b.get().inner.views().to_vec());
    }
    match obj.cast::<Views>() {
        Ok(v) => Ok(v.get().views.clone()),
        Err(_) => Err(PyValueError::new_err("expected a gdt batch or its views")),
    }
}

/// One value per view as a `[records, views]` array (the views are record-major).
fn per_view<T>(views: &[ViewMeta], (r, v): (usize, usize), f: impl Fn(&ViewMeta) -> T) -> Array2<T> {
    Array2::from_shape_fn((r, v), |(i, j)| f(&views[i * v + j]))
}

/// `d[name] = a` as a numpy array.
fn put<T: numpy::Element>(d: &Bound<'_, PyDict>, name: &str, a: Array2<T>) -> PyResult<()> {
    d.set_item(name, a.into_pyarray(d.py()))
}

/// The c and w masks of a batch, as numpy arrays.
type MaskPair<'py> = (Bound<'py, PyArray2<f32>>, Bound<'py, PyArray2<f32>>);

/// Which transformations the representation is invariant or distinct to (the trainer's own
/// spec type, with its validation and errors).
#[pyclass(module = "gdt._gdt", frozen)]
struct TransformSpec {
    inner: RustSpec,
}

#[pymethods]
impl TransformSpec {
    /// `factors`: factor name -> "invariant" | "distinct" (sample, modality, shift,
    /// reversal, flip, scale, crop, jitter; unnamed ones invariant, sample distinct);
    /// `pairs`: "cross-modal" or "all".
    #[new]
    #[pyo3(signature = (factors=None, pairs="cross-modal"))]
    fn new(factors: Option<std::collections::BTreeMap<String, String>>, pairs: &str) -> PyResult<Self> {
        let pairs = Pairs::parse(pairs).map_err(spec_error)?;
        let inner = RustSpec::new(&factors.unwrap_or_default(), pairs).map_err(spec_error)?;
        Ok(TransformSpec { inner })
    }

    /// The spec of a named experiment, with the view layout it needs:
    /// (spec, shifts, reversal).
    #[staticmethod]
    fn preset(name: &str) -> PyResult<(TransformSpec, usize, bool)> {
        let p = RustSpec::preset(name).map_err(spec_error)?;
        Ok((TransformSpec { inner: p.spec }, p.shifts, p.reversal))
    }

    /// Every preset's name.
    #[staticmethod]
    fn preset_names() -> Vec<&'static str> {
        gdt_pipeline::spec::preset_names().collect()
    }

    /// factor -> "invariant" | "distinct".
    fn factors(&self) -> std::collections::BTreeMap<String, String> {
        self.inner.to_map()
    }

    /// "cross-modal" or "all".
    #[getter]
    fn pairs(&self) -> &'static str {
        self.inner.pairs.name()
    }

    /// Refuses a view layout (shifts per record, reversed views or not) that cannot express
    /// the spec, with the reason.
    fn check_layout(&self, shifts: usize, reversal: bool) -> PyResult<()> {
        self.inner.check_layout(shifts, reversal).map_err(spec_error)
    }

    /// The contrast mask c and the weight mask w of `batch` (a `Batch` or its `Views`;
    /// `[2N, 2N]` float32 0/1, rows the N views' video clips then their audio clips).
    fn masks<'py>(&self, py: Python<'py>, batch: &Bound<'py, PyAny>) -> PyResult<MaskPair<'py>> {
        let m = self.inner.masks(&views_of(batch)?).map_err(spec_error)?;
        let (c, w) = m.as_f32();
        let square = |v: Vec<f32>| Array2::from_shape_vec((m.n, m.n), v).expect("n x n");
        Ok((square(c).into_pyarray(py), square(w).into_pyarray(py)))
    }

    /// GDT-NCE of `embeddings` (`[2N, d]`, f64) on `batch` in plain f64 loops: the oracle the
    /// PyTorch loss (`gdt.nce_loss`) and the trainer's libtorch loss are tested against.
    fn reference_loss(
        &self,
        batch: &Bound<'_, PyAny>,
        embeddings: PyReadonlyArray2<f64>,
        temperature: f64,
    ) -> PyResult<f64> {
        let m = self.inner.masks(&views_of(batch)?).map_err(spec_error)?;
        let z = embeddings.as_array();
        if z.nrows() != m.n {
            return Err(PyValueError::new_err(format!(
                "{} embedding rows for a batch of {} samples",
                z.nrows(),
                m.n
            )));
        }
        let rows: Vec<Vec<f64>> = z.rows().into_iter().map(|r| r.to_vec()).collect();
        Ok(m.reference_loss(&rows, temperature, &[], &|_, _| false))
    }

    fn __str__(&self) -> String {
        self.inner.to_string()
    }

    fn __repr__(&self) -> String {
        format!("TransformSpec({})", self.inner)
    }
}

/// xxh3-64 over a sequence of byte strings: the digest `gdt bench load --digest` prints, to
/// compare batches across languages.
#[pyclass(module = "gdt._gdt")]
struct Digest {
    state: xxhash_rust::xxh3::Xxh3,
}

#[pymethods]
impl Digest {
    #[new]
    fn new() -> Self {
        Digest {
            state: xxhash_rust::xxh3::Xxh3::new(),
        }
    }

    fn update(&mut self, data: &[u8]) {
        self.state.update(data);
    }

    fn hexdigest(&self) -> String {
        format!("{:016x}", self.state.digest())
    }
}

/// The loader's default settings (`LoaderSettings::default()`, the reference setup) as
/// JSON: `gdt.Loader`'s keyword defaults, the same as `gdt train`'s and `gdt bench load`'s.
#[pyfunction]
fn loader_defaults() -> String {
    serde_json::to_string(&LoaderSettings::default()).expect("settings serialise")
}

#[pymodule]
fn _gdt(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(loader_defaults, m)?)?;
    m.add_class::<Loader>()?;
    m.add_class::<Batch>()?;
    m.add_class::<Views>()?;
    m.add_class::<TransformSpec>()?;
    m.add_class::<Digest>()?;
    m.add("GdtError", m.py().get_type::<GdtError>())?;
    m.add("FormatError", m.py().get_type::<FormatError>())?;
    m.add("LoaderError", m.py().get_type::<LoaderError>())?;
    m.add("SpecError", m.py().get_type::<SpecError>())?;
    Ok(())
}
