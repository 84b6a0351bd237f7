// Links libtorch (rpath, libtorch_cuda kept) and compiles gdt's C++ against the same
// libtorch's headers: the c10d shim (src/dist/c10d.cpp) and the device shim (streams, events,
// page-locked memory, autocast: src/device/ffi.cpp).
include!("link_libtorch.rs");

fn main() {
    let Some(lib) = link_libtorch() else {
        panic!("torch-sys did not name libtorch's directory (DEP_TCH_LIBTORCH_LIB)");
    };
    for file in ["src/dist/c10d.cpp", "src/device/ffi.cpp", "src/guarded.h"] {
        println!("cargo:rerun-if-changed={file}");
    }
    let lib = std::path::PathBuf::from(lib);
    let root = lib.parent().expect("libtorch's lib has a parent").to_path_buf();
    // Gloo's headers come from the system (Debian's libgloo-dev); its code is in libtorch_cpu.
    let mut build = cc::Build::new();
    build
        .cpp(true)
        .pic(true)
        .warnings(false)
        .include(root.join("include"))
        .include(root.join("include/torch/csrc/api/include"))
        .flag("-std=c++17")
        .flag("-D_GLIBCXX_USE_CXX11_ABI=1")
        .flag("-DUSE_C10D_GLOO");
    let nccl = std::env::var_os("CARGO_FEATURE_NCCL").is_some();
    if nccl {
        // The pip wheel's neighbours: nvidia/nccl (nccl.h) and nvidia/cu13 (CUDA runtime,
        // plus crt and cccl from nvidia-cuda-crt and nvidia-cuda-cccl, which setup.sh adds).
        let nvidia = root.parent().expect("torch sits in site-packages").join("nvidia");
        for dir in ["nccl/include", "cu13/include"] {
            let path = nvidia.join(dir);
            assert!(
                path.exists(),
                "feature `nccl`: {} is missing (run scripts/setup.sh)",
                path.display()
            );
            build.include(path);
        }
        build
            .flag("-DUSE_C10D_NCCL")
            .flag("-DUSE_CUDA")
            .flag("-DGDT_NCCL");
    }
    build
        .file("src/dist/c10d.cpp")
        .file("src/device/ffi.cpp")
        .compile("gdt_shim");
    println!("cargo:rustc-link-search=native={}", lib.display());
    println!("cargo:rustc-link-lib=dylib=torch_cpu");
    println!("cargo:rustc-link-lib=dylib=c10");
    if nccl {
        println!("cargo:rustc-link-lib=dylib=torch_cuda");
        println!("cargo:rustc-link-lib=dylib=c10_cuda");
    }
}
