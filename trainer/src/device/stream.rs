//! CUDA streams and events, through libtorch's device-generic API (`ffi.cpp`): what lets the
//! next batch's copy to the GPU run beside the current step. tch 0.24 has none of them.

use std::ffi::c_void;
use std::ptr::NonNull;

use tch::{Device, TchError, Tensor};

use super::ffi;

/// A queue of work on one device.
pub struct Stream {
    raw: NonNull<c_void>,
    device: Device,
}

// SAFETY: a c10::Stream is an immutable value (device, id); libtorch itself passes streams
// between threads.
unsafe impl Send for Stream {}
unsafe impl Sync for Stream {}

impl Stream {
    /// A stream of the device's pool, beside the one the step runs on.
    pub fn from_pool(device: Device) -> Result<Stream, TchError> {
        let (t, i) = ffi::device_type(device);
        // SAFETY: plain values and an error buffer the helper owns.
        let raw = ffi::call(
            "a stream from the pool",
            |p: &*mut c_void| p.is_null(),
            |e, l| unsafe { ffi::gdt_stream_from_pool(t, i, e, l) },
        )?;
        Ok(Stream {
            raw: NonNull::new(raw).expect("checked"),
            device,
        })
    }

    /// The stream libtorch launches this thread's work on for `device`.
    pub fn current(device: Device) -> Result<Stream, TchError> {
        let (t, i) = ffi::device_type(device);
        // SAFETY: as above.
        let raw = ffi::call(
            "the current stream",
            |p: &*mut c_void| p.is_null(),
            |e, l| unsafe { ffi::gdt_stream_current(t, i, e, l) },
        )?;
        Ok(Stream {
            raw: NonNull::new(raw).expect("checked"),
            device,
        })
    }

    /// Its device.
    pub fn device(&self) -> Device {
        self.device
    }

    /// `src` (page-locked host memory) copied to this stream's device, queued on this stream:
    /// returns at once. The host memory must stay untouched until the copy is done (an
    /// [`Event`] recorded after it says when).
    pub fn copy_to_device(&self, src: &Tensor) -> Result<Tensor, TchError> {
        // SAFETY: `src` is a live at::Tensor (tch's C_tensor); the new tensor is handed to tch.
        let out = ffi::call(
            "copying a batch to the device",
            |p: &*mut c_void| p.is_null(),
            |e, l| unsafe { ffi::gdt_copy_on_stream(self.raw.as_ptr(), src.as_ptr() as *mut c_void, e, l) },
        )?;
        // SAFETY: a new at::Tensor* that tch now owns.
        Ok(unsafe { Tensor::from_ptr(out as *mut _) })
    }

    /// Tells the caching allocator that `t` is used on this stream too.
    pub fn record_use(&self, t: &Tensor) -> Result<(), TchError> {
        // SAFETY: both pointers are live.
        ffi::call(
            "recording a tensor's stream",
            |rc: &i32| *rc != 0,
            |e, l| unsafe { ffi::gdt_record_stream(t.as_ptr() as *mut c_void, self.raw.as_ptr(), e, l) },
        )
        .map(|_| ())
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        // SAFETY: created by gdt_stream_* and freed once.
        unsafe { ffi::gdt_stream_free(self.raw.as_ptr()) }
    }
}

/// A point in a stream's work, to wait for from another stream or from the host.
pub struct Event {
    raw: NonNull<c_void>,
}

// SAFETY: c10::Event may be queried and synchronized from any thread.
unsafe impl Send for Event {}

impl Event {
    /// Records the point `stream` has reached.
    pub fn record(stream: &Stream) -> Result<Event, TchError> {
        let (t, _) = ffi::device_type(stream.device);
        // SAFETY: plain values.
        let raw = ffi::call(
            "creating an event",
            |p: &*mut c_void| p.is_null(),
            |e, l| unsafe { ffi::gdt_event_new(t, e, l) },
        )?;
        let event = Event {
            raw: NonNull::new(raw).expect("checked"),
        };
        // SAFETY: both live.
        ffi::call(
            "recording an event",
            |rc: &i32| *rc != 0,
            |e, l| unsafe { ffi::gdt_event_record(event.raw.as_ptr(), stream.raw.as_ptr(), e, l) },
        )?;
        Ok(event)
    }

    /// Makes `stream` wait for this point, on the device: the host goes on at once.
    pub fn block(&self, stream: &Stream) -> Result<(), TchError> {
        // SAFETY: both live.
        ffi::call(
            "making a stream wait",
            |rc: &i32| *rc != 0,
            |e, l| unsafe { ffi::gdt_event_block(self.raw.as_ptr(), stream.raw.as_ptr(), e, l) },
        )
        .map(|_| ())
    }

    /// Whether the point has been reached.
    pub fn query(&self) -> Result<bool, TchError> {
        // SAFETY: live.
        let done = ffi::call(
            "querying an event",
            |rc: &i32| *rc < 0,
            |e, l| unsafe { ffi::gdt_event_query(self.raw.as_ptr(), e, l) },
        )?;
        Ok(done == 1)
    }

    /// Blocks the host until the point is reached.
    pub fn synchronize(&self) -> Result<(), TchError> {
        // SAFETY: live.
        ffi::call(
            "waiting for an event",
            |rc: &i32| *rc != 0,
            |e, l| unsafe { ffi::gdt_event_synchronize(self.raw.as_ptr(), e, l) },
        )
        .map(|_| ())
    }
}

impl Drop for Event {
    fn drop(&mut self) {
        // SAFETY: created by gdt_event_new and freed once.
        unsafe { ffi::gdt_event_free(self.raw.as_ptr()) }
    }
}
