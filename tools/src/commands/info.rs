//! `gdt info`: what this build and this machine can do.

use anyhow::Result;
use gdt_trainer::device;
use gdt_trainer::tch::Device;

use crate::cli::InfoArgs;

pub fn run(args: InfoArgs) -> Result<i32> {
    let report = device::report();
    let mut smoke = Vec::new();
    if args.smoke {
        smoke.push(device::smoke_test(Device::Cpu).map_err(|e| e.to_string()));
        for i in 0..report.cuda_device_count.max(0) as usize {
            smoke.push(device::smoke_test(Device::Cuda(i)).map_err(|e| format!("cuda:{i}: {e}")));
        }
    }
    if args.json {
        let value = serde_json::json!({
            "version": env!("CARGO_PKG_VERSION"),
            "ffmpeg": gdt_pipeline::HAS_FFMPEG,
            "torch": report,
            "smoke": smoke.iter().map(|r| match r {
                Ok(s) => serde_json::to_value(s).expect("plain struct"),
                Err(e) => serde_json::json!({ "error": e }),
            }).collect::<Vec<_>>(),
        });
        println!("{}", serde_json::to_string_pretty(&value)?);
    } else {
        println!("gdt {}", env!("CARGO_PKG_VERSION"));
        println!(
            "  ffmpeg        {}",
            if gdt_pipeline::HAS_FFMPEG {
                "yes (decode, pack, synth)"
            } else {
                "no (built without the `ffmpeg` feature: packed data only)"
            }
        );
        println!(
            "  cuda          {}",
            if report.cuda_available {
                format!("yes, {} device(s)", report.cuda_device_count)
            } else {
                "no".to_string()
            }
        );
        println!(
            "  cudnn         {}",
            match (report.cudnn_available, report.cudnn_version) {
                (true, Some(v)) => format!("yes, version {v}"),
                (true, None) => "yes".to_string(),
                _ => "no".to_string(),
            }
        );
        println!("  cpu threads   {}", report.cpu_threads);
        for r in &smoke {
            match r {
                Ok(s) => println!(
                    "  smoke {:<8} conv3d fwd+bwd {:.2} ms, max error vs f64 CPU {:.2e}",
                    s.device, s.millis, s.max_abs_error
                ),
                Err(e) => println!("  smoke FAILED  {e}"),
            }
        }
    }
    // Float32 on a GPU (TF32 may be on) differs from float64 by far less than this.
    let smoke_ok = smoke.iter().all(|r| matches!(r, Ok(s) if s.max_abs_error < 5e-2));
    if !smoke_ok {
        eprintln!("gdt info: a device failed its smoke test");
        return Ok(1);
    }
    if args.require_cuda && !report.cuda_available {
        eprintln!("gdt info: CUDA is not available to libtorch in this process");
        return Ok(1);
    }
    Ok(0)
}
