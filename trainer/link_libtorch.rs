// Link libtorch so that a `gdt` binary works without any environment set up. Included by
// trainer/build.rs and the root package's build.rs (the `gdt` binary).
//
// torch-sys exposes its library directory to direct dependents as `DEP_TCH_LIBTORCH_LIB`.
// Two things are added to the link line of this package's binaries and tests (the root
// package's build.rs includes this file for the `gdt` binary):
// - an rpath to that directory, so the binary finds libtorch on the machine it was built on;
//   on another machine `LD_LIBRARY_PATH` takes precedence (the linker writes RUNPATH);
// - `libtorch_cuda.so` with `--no-as-needed`: nothing references its symbols directly, so
//   rustc's default `--as-needed` drops it and CUDA never registers on a GPU machine.

/// Returns the libtorch library directory, when torch-sys names one.
fn link_libtorch() -> Option<String> {
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    let dir = std::env::var("DEP_TCH_LIBTORCH_LIB").ok()?;
    println!("cargo:rustc-link-arg=-Wl,-rpath,{dir}");
    if std::path::Path::new(&dir).join("libtorch_cuda.so").exists() {
        println!("cargo:rustc-link-arg=-Wl,--no-as-needed,-ltorch_cuda,--as-needed");
    }
    Some(dir)
}
