//! Mixed precision: bf16 autocast.
//!
//! bf16 has f32's range, so it trains without loss scaling (libtorch's CUDA default, float16,
//! needs it). tch's `autocast` calls libtorch's deprecated `is_enabled`/`set_enabled`, which
//! print warnings on every CUDA run; this goes through the current API (`ffi.cpp`), per
//! device type, so the same code path also runs on the CPU (CPU autocast), where tests reach it.

use tch::{Device, Kind, TchError};

use crate::device::ffi;

/// `c10::ScalarType` codes of the kinds autocast can use.
fn scalar_type(kind: Kind) -> i32 {
    match kind {
        Kind::Half => 5,
        Kind::BFloat16 => 15,
        _ => 6, // Float
    }
}

fn kind_of(code: i32) -> Kind {
    match code {
        5 => Kind::Half,
        15 => Kind::BFloat16,
        _ => Kind::Float,
    }
}

/// Runs `f` under autocast to `kind` on `device`'s type (the CPU or CUDA), then restores the
/// state it found.
pub fn autocast<T>(device: Device, kind: Kind, f: impl FnOnce() -> T) -> Result<T, TchError> {
    let (t, _) = ffi::device_type(device);
    // SAFETY: plain values and an error buffer the helper owns.
    let previous = ffi::call(
        "entering autocast",
        |p: &i32| *p < 0,
        |e, l| unsafe { ffi::gdt_autocast_enter(t, scalar_type(kind), e, l) },
    )?;
    let out = f();
    // SAFETY: as above; closes the region opened above.
    ffi::call(
        "leaving autocast",
        |rc: &i32| *rc != 0,
        |e, l| unsafe { ffi::gdt_autocast_exit(t, previous, e, l) },
    )?;
    Ok(out)
}

/// Runs `f` under bf16 autocast on `device` when `enabled`; otherwise plainly.
pub fn bf16_autocast<T>(enabled: bool, device: Device, f: impl FnOnce() -> T) -> Result<T, TchError> {
    if enabled {
        autocast(device, Kind::BFloat16, f)
    } else {
        Ok(f())
    }
}

/// The kind autocast on `device`'s type casts to now.
pub fn autocast_kind(device: Device) -> Kind {
    let (t, _) = ffi::device_type(device);
    // SAFETY: a plain getter.
    kind_of(unsafe { ffi::gdt_autocast_dtype(t) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Tensor;

    #[test]
    fn bf16_autocast_runs_convolutions_in_bf16_and_restores_the_state() {
        let x = Tensor::randn([1, 2, 4, 8, 8], (Kind::Float, Device::Cpu));
        let w = Tensor::randn([3, 2, 1, 3, 3], (Kind::Float, Device::Cpu));
        let conv = || x.conv3d(&w, None::<Tensor>, [1, 1, 1], [0, 1, 1], [1, 1, 1], 1);
        let (inside, kind) =
            bf16_autocast(true, Device::Cpu, || (conv(), autocast_kind(Device::Cpu))).unwrap();
        assert_eq!((inside.kind(), kind), (Kind::BFloat16, Kind::BFloat16));
        // Outside, and with autocast off, plain f32.
        assert_eq!(conv().kind(), Kind::Float);
        assert_eq!(
            bf16_autocast(false, Device::Cpu, conv).unwrap().kind(),
            Kind::Float
        );
        // Nested regions restore what they found.
        let outer = autocast(Device::Cpu, Kind::BFloat16, || {
            let _inner = autocast(Device::Cpu, Kind::BFloat16, conv).unwrap();
            conv().kind()
        })
        .unwrap();
        assert_eq!((outer, conv().kind()), (Kind::BFloat16, Kind::Float));
    }
}
