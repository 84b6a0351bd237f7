//! Mixed precision on CUDA: bf16 autocast.
//!
//! `tch::autocast` switches autocast on but leaves its dtype at libtorch's default for CUDA,
//! float16, which needs loss scaling to train. bf16 has f32's range and needs none. tch 0.24
//! has no binding for `at::autocast::set_autocast_dtype`, so we bind that one exported libtorch
//! function directly. Its two arguments are `int8_t`-backed enums, passed as integers under the
//! x86-64 and AArch64 C++ ABIs, so the plain C signature below is the same call.

use tch::Kind;

mod ffi {
    extern "C" {
        #[link_name = "_ZN2at8autocast18set_autocast_dtypeEN3c1010DeviceTypeENS1_10ScalarTypeE"]
        pub fn set_autocast_dtype(device_type: i8, dtype: i8);
        #[link_name = "_ZN2at8autocast18get_autocast_dtypeEN3c1010DeviceTypeE"]
        pub fn get_autocast_dtype(device_type: i8) -> i8;
    }
}

/// `c10::DeviceType::CUDA`.
const CUDA: i8 = 1;

/// `c10::ScalarType` codes of the kinds autocast can use.
fn scalar_type(kind: Kind) -> i8 {
    match kind {
        Kind::Half => 5,
        Kind::BFloat16 => 15,
        _ => 6, // Float
    }
}

/// Sets the dtype CUDA autocast casts to (process-wide in libtorch).
pub fn set_cuda_autocast_kind(kind: Kind) {
    // SAFETY: a plain setter on libtorch's autocast state, with valid enum values.
    unsafe { ffi::set_autocast_dtype(CUDA, scalar_type(kind)) }
}

/// The dtype CUDA autocast casts to now.
pub fn cuda_autocast_kind() -> Kind {
    // SAFETY: a plain getter.
    match unsafe { ffi::get_autocast_dtype(CUDA) } {
        5 => Kind::Half,
        15 => Kind::BFloat16,
        _ => Kind::Float,
    }
}

/// Runs `f` under bf16 autocast when `enabled` and CUDA is present; otherwise plainly.
pub fn bf16_autocast<T>(enabled: bool, f: impl FnOnce() -> T) -> T {
    if !enabled {
        return f();
    }
    set_cuda_autocast_kind(Kind::BFloat16);
    tch::autocast(true, f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_autocast_dtype_binding_reaches_libtorch() {
        // libtorch's own default for CUDA is float16; our setter must change what its getter says.
        set_cuda_autocast_kind(Kind::Half);
        assert_eq!(cuda_autocast_kind(), Kind::Half);
        set_cuda_autocast_kind(Kind::BFloat16);
        assert_eq!(cuda_autocast_kind(), Kind::BFloat16);
    }
}
