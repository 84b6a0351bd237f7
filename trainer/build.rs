// Links libtorch (rpath, libtorch_cuda kept) and compiles the c10d shim
// (src/dist/c10d.cpp) against the same libtorch's headers.
include!("link_libtorch.rs");

fn main() {
    let Some(lib) = link_libtorch() else {
        panic!("torch-sys did not name libtorch's directory (DEP_TCH_LIBTORCH_LIB)");
    };
    println!("cargo:rerun-if-changed=src/dist/c10d.cpp");
    let root = std::path::Path::new(&lib)
        .parent()
        .expect("libtorch's lib has a parent")
        .to_path_buf();
    // Gloo's headers come from the system (Debian's libgloo-dev); its code is in libtorch_cpu.
    cc::Build::new()
        .cpp(true)
        .pic(true)
        .warnings(false)
        .include(root.join("include"))
        .include(root.join("include/torch/csrc/api/include"))
        .flag("-std=c++17")
        .flag("-D_GLIBCXX_USE_CXX11_ABI=1")
        .flag("-DUSE_C10D_GLOO")
        .file("src/dist/c10d.cpp")
        .compile("gdt_c10d");
    println!("cargo:rustc-link-search=native={lib}");
    println!("cargo:rustc-link-lib=dylib=torch_cpu");
    println!("cargo:rustc-link-lib=dylib=c10");
}
