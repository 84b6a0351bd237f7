//! The compute devices: which libtorch sees (and a short proof that they work), which one a
//! run asks for, and what gdt does on a GPU that tch does not bind ([`stream`]: streams and
//! events; [`pinned`]: page-locked host memory; both through `ffi.cpp`).
//!
//! A GPU node is only useful if CUDA actually registered in this process: a binary linked
//! without `libtorch_cuda.so` (see build.rs) silently runs on the CPU. `gdt info` and
//! `scripts/gpu-check.sh` use this module to say so plainly.

pub(crate) mod ffi;
pub mod pinned;
pub mod stream;

use std::time::Instant;

use serde::Serialize;
use tch::{Device, Kind, Tensor};

/// What libtorch reports about the machine.
#[derive(Clone, Debug, Serialize)]
pub struct DeviceReport {
    /// Whether libtorch sees CUDA.
    pub cuda_available: bool,
    /// CUDA devices.
    pub cuda_device_count: i64,
    /// Whether cuDNN is there.
    pub cudnn_available: bool,
    /// cuDNN version as libtorch encodes it (e.g. 91000 for 9.10.0), when CUDA is present.
    pub cudnn_version: Option<i64>,
    /// libtorch's intra-op threads.
    pub cpu_threads: i32,
}

/// Asks libtorch what it sees. Never fails: absence is an answer.
pub fn report() -> DeviceReport {
    let cuda_available = tch::Cuda::is_available();
    DeviceReport {
        cuda_available,
        cuda_device_count: tch::Cuda::device_count(),
        cudnn_available: tch::Cuda::cudnn_is_available(),
        cudnn_version: cuda_available.then(tch::utils::version_cudnn),
        cpu_threads: tch::get_num_threads(),
    }
}

/// Why a device name cannot be used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DeviceError {
    /// Not a device name.
    #[error("unknown device `{name}`; use auto, cpu, cuda or cuda:N")]
    Unknown {
        /// The name given.
        name: String,
    },
    /// CUDA was asked for and libtorch sees none.
    #[error(
        "`{name}` was asked for, but libtorch sees no CUDA device in this process \
         (`gdt info` shows what this build and machine provide); use --device cpu"
    )]
    NoCuda {
        /// The name given.
        name: String,
    },
    /// A GPU number beyond the GPUs there are.
    #[error("`{name}` was asked for, but there are only {count} CUDA devices")]
    TooFewGpus {
        /// The name given.
        name: String,
        /// CUDA devices libtorch sees.
        count: i64,
    },
}

/// Turns `auto`, `cpu`, `cuda` or `cuda:N` into a device, refusing CUDA that is not there
/// rather than quietly training on the CPU.
pub fn parse_device(name: &str) -> Result<Device, DeviceError> {
    parse_device_for_rank(name, 0)
}

/// [`parse_device`] for the process of a data-parallel run whose rank on this machine is
/// `local_rank`: `cuda` and `auto` (when CUDA is there) mean `cuda:LOCAL_RANK`, one GPU per
/// rank, as torchrun and Slurm lay processes out; `cuda:N` stays what it says.
pub fn parse_device_for_rank(name: &str, local_rank: usize) -> Result<Device, DeviceError> {
    let cuda_count = tch::Cuda::device_count();
    let cuda = |i: usize| {
        if (i as i64) < cuda_count {
            Ok(Device::Cuda(i))
        } else if cuda_count == 0 {
            Err(DeviceError::NoCuda { name: name.into() })
        } else {
            Err(DeviceError::TooFewGpus {
                name: name.into(),
                count: cuda_count,
            })
        }
    };
    match name {
        "auto" if tch::Cuda::is_available() => cuda(local_rank),
        "auto" | "cpu" => Ok(Device::Cpu),
        "cuda" => cuda(local_rank),
        _ => match name.strip_prefix("cuda:").map(str::parse::<usize>) {
            Some(Ok(i)) => cuda(i),
            _ => Err(DeviceError::Unknown { name: name.into() }),
        },
    }
}

/// The outcome of running a small 3-D convolution forward and backward on one device.
#[derive(Clone, Debug, Serialize)]
pub struct SmokeTest {
    /// The device tried.
    pub device: String,
    /// Wall time of the timed repetition, milliseconds.
    pub millis: f64,
    /// Largest absolute difference from the same computation on the CPU in f64.
    pub max_abs_error: f64,
}

/// Runs conv3d forward and backward on `device` and compares it with a float64 CPU reference,
/// so a broken CUDA or cuDNN install shows up as a number rather than a crash mid-training.
pub fn smoke_test(device: Device) -> Result<SmokeTest, tch::TchError> {
    tch::manual_seed(0);
    let x = Tensor::f_randn([2, 3, 8, 32, 32], (Kind::Float, Device::Cpu))?;
    let w = Tensor::f_randn([8, 3, 3, 3, 3], (Kind::Float, Device::Cpu))? * 0.1;
    let run = |dev: Device, kind: Kind| -> Result<(Tensor, Tensor), tch::TchError> {
        let x = x.f_to_kind(kind)?.f_to_device(dev)?;
        // A private leaf per run: on the CPU, to_kind/to_device may hand back `w` itself, and
        // gradients would then accumulate across runs.
        let w = w
            .f_to_kind(kind)?
            .f_to_device(dev)?
            .detach()
            .copy()
            .set_requires_grad(true);
        let y = x.f_conv3d(&w, None::<Tensor>, [1, 1, 1], [1, 1, 1], [1, 1, 1], 1)?;
        let loss = y.f_square()?.f_mean(Kind::Float)?;
        loss.backward();
        Ok((
            y.f_to_device(Device::Cpu)?.f_to_kind(Kind::Double)?,
            w.grad().f_to_device(Device::Cpu)?.f_to_kind(Kind::Double)?,
        ))
    };
    let (y_ref, g_ref) = run(Device::Cpu, Kind::Double)?;
    let _warm_up = run(device, Kind::Float)?; // first use of a device loads its kernels
    let start = Instant::now();
    let (y, g) = run(device, Kind::Float)?;
    let millis = start.elapsed().as_secs_f64() * 1e3;
    let err_y = (y - y_ref).f_abs()?.f_max()?.f_double_value(&[])?;
    let err_g = (g - g_ref).f_abs()?.f_max()?.f_double_value(&[])?;
    Ok(SmokeTest {
        device: format!("{device:?}"),
        millis,
        max_abs_error: err_y.max(err_g),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_smoke_test_matches_the_f64_reference() {
        let r = smoke_test(Device::Cpu).unwrap();
        assert!(r.max_abs_error < 1e-3, "{r:?}");
    }

    #[test]
    fn device_names_parse_and_missing_cuda_is_refused() {
        assert_eq!(parse_device("cpu"), Ok(Device::Cpu));
        assert!(parse_device("gpu")
            .unwrap_err()
            .to_string()
            .contains("auto, cpu, cuda"));
        assert!(parse_device("cuda:x").is_err());
        if !tch::Cuda::is_available() {
            assert_eq!(parse_device("auto"), Ok(Device::Cpu));
            assert!(parse_device("cuda")
                .unwrap_err()
                .to_string()
                .contains("no CUDA device"));
            assert!(parse_device("cuda:1")
                .unwrap_err()
                .to_string()
                .contains("no CUDA device"));
        }
    }

    #[test]
    fn report_is_consistent() {
        let r = report();
        assert!(r.cpu_threads >= 1);
        if !r.cuda_available {
            assert_eq!(r.cudnn_version, None);
        }
    }
}
