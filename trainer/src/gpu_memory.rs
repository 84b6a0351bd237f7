//! GPU memory in use, read through NVML (loaded at run time, so CPU machines and builds
//! without a driver are unaffected). tch 0.24 exposes no CUDA allocator statistics; NVML's
//! per-process figure includes the CUDA context and the caching allocator's reserve, which is
//! what decides whether a run fits on a card.

use nvml_wrapper::enums::device::UsedGpuMemory;
use nvml_wrapper::Nvml;

/// GPU memory in use, read through NVML loaded at run time (no link-time dependency).
pub struct GpuMemory {
    nvml: Nvml,
    index: u32,
}

impl GpuMemory {
    /// `None` when NVML cannot be loaded (no NVIDIA driver).
    pub fn open(index: usize) -> Option<GpuMemory> {
        Nvml::init().ok().map(|nvml| GpuMemory {
            nvml,
            index: index as u32,
        })
    }

    /// MiB used by this process on the device, or by the whole device when the driver does not
    /// report processes.
    pub fn used_mib(&self) -> Option<f64> {
        let device = self.nvml.device_by_index(self.index).ok()?;
        let pid = std::process::id();
        let own = device.running_compute_processes().ok().and_then(|ps| {
            ps.into_iter()
                .find(|p| p.pid == pid)
                .and_then(|p| match p.used_gpu_memory {
                    UsedGpuMemory::Used(b) => Some(b),
                    UsedGpuMemory::Unavailable => None,
                })
        });
        let bytes = match own {
            Some(b) => b,
            None => device.memory_info().ok()?.used,
        };
        Some(bytes as f64 / (1024.0 * 1024.0))
    }
}
