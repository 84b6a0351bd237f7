//! The C interface of `ffi.cpp` (streams, events, page-locked memory, autocast), and the one
//! way its errors come back: a message written into a buffer the caller owns.

use std::ffi::{c_char, c_int, c_longlong, c_void, CStr};

extern "C" {
    pub fn gdt_autocast_enter(device_type: c_int, dtype: c_int, err: *mut c_char, len: usize) -> c_int;
    pub fn gdt_autocast_exit(device_type: c_int, previous: c_int, err: *mut c_char, len: usize) -> c_int;
    pub fn gdt_autocast_dtype(device_type: c_int) -> c_int;
    pub fn gdt_pinned_empty(bytes: c_longlong, err: *mut c_char, len: usize) -> *mut c_void;
    pub fn gdt_stream_from_pool(
        device_type: c_int,
        index: c_int,
        err: *mut c_char,
        len: usize,
    ) -> *mut c_void;
    pub fn gdt_stream_current(device_type: c_int, index: c_int, err: *mut c_char, len: usize) -> *mut c_void;
    pub fn gdt_stream_free(stream: *mut c_void);
    pub fn gdt_copy_on_stream(
        stream: *mut c_void,
        src: *mut c_void,
        err: *mut c_char,
        len: usize,
    ) -> *mut c_void;
    pub fn gdt_record_stream(t: *mut c_void, stream: *mut c_void, err: *mut c_char, len: usize) -> c_int;
    pub fn gdt_event_new(device_type: c_int, err: *mut c_char, len: usize) -> *mut c_void;
    pub fn gdt_event_record(event: *mut c_void, stream: *mut c_void, err: *mut c_char, len: usize) -> c_int;
    pub fn gdt_event_block(event: *mut c_void, stream: *mut c_void, err: *mut c_char, len: usize) -> c_int;
    pub fn gdt_event_query(event: *mut c_void, err: *mut c_char, len: usize) -> c_int;
    pub fn gdt_event_synchronize(event: *mut c_void, err: *mut c_char, len: usize) -> c_int;
    pub fn gdt_event_free(event: *mut c_void);
}

const ERR_LEN: usize = 1024;

/// Calls `f` with an error buffer; `Err(message)` when `failed` says the call failed.
pub fn call<T>(
    what: &str,
    failed: impl Fn(&T) -> bool,
    f: impl FnOnce(*mut c_char, usize) -> T,
) -> Result<T, tch::TchError> {
    let mut err = [0 as c_char; ERR_LEN];
    let out = f(err.as_mut_ptr(), ERR_LEN);
    if failed(&out) {
        // SAFETY: the C++ side always NUL-terminates within the buffer; a zeroed one is empty.
        let message = unsafe { CStr::from_ptr(err.as_ptr()) }
            .to_string_lossy()
            .into_owned();
        let reason = message.lines().next().unwrap_or_default().to_string();
        return Err(tch::TchError::Torch(format!("{what}: {reason}")));
    }
    Ok(out)
}

/// c10's code of a device's type.
pub fn device_type(device: tch::Device) -> (c_int, c_int) {
    match device {
        tch::Device::Cuda(i) => (1, i as c_int),
        _ => (0, 0),
    }
}
