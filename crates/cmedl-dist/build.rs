//! Compiles the c10d shim against the libtorch torch-sys found, and Gloo's headers (which the
//! wheel does not ship; `cargo xtask fetch-libtorch` links them as `.libtorch/gloo`).

use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-changed=src/shim.cpp");
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    println!("cargo:rerun-if-env-changed=CMEDL_GLOO_INCLUDE");
    let lib = PathBuf::from(
        std::env::var("DEP_TCH_LIBTORCH_LIB")
            .expect("torch-sys reports its libtorch folder (DEP_TCH_LIBTORCH_LIB)"),
    );
    let torch = lib.parent().expect("libtorch's lib folder has a parent");
    let include = torch.join("include");
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    let gloo = std::env::var_os("CMEDL_GLOO_INCLUDE")
        .map(PathBuf::from)
        .unwrap_or_else(|| manifest.join("../../.libtorch/gloo"));
    if !gloo.join("gloo/algorithm.h").exists() {
        panic!(
            "Gloo's headers are missing from {}: run `cargo xtask fetch-libtorch` (it unpacks \
             Debian's libgloo-dev) or set CMEDL_GLOO_INCLUDE to a folder holding gloo/",
            gloo.display()
        );
    }
    cc::Build::new()
        .cpp(true)
        .file("src/shim.cpp")
        .include(&include)
        .include(include.join("torch/csrc/api/include"))
        .include(&gloo)
        .define("USE_C10D_GLOO", None)
        .define("USE_DISTRIBUTED", None)
        .define("_GLIBCXX_USE_CXX11_ABI", "1")
        .flag("-std=c++17")
        .flag_if_supported("-Wno-unused-parameter")
        .flag_if_supported("-Wno-deprecated-declarations")
        .warnings(false)
        .compile("cmedl_dist_shim");
    // This crate's own tests run without LD_LIBRARY_PATH (binaries of other crates get the
    // same from their build scripts).
    let real = lib.canonicalize().unwrap_or_else(|_| lib.clone());
    println!("cargo:rustc-link-arg=-Wl,-rpath,{}", real.display());
    println!("cargo:rustc-link-search=native={}", lib.display());
    println!("cargo:rustc-link-lib=dylib=torch_cpu");
    println!("cargo:rustc-link-lib=dylib=c10");
}
