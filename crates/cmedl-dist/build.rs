//! Compiles the c10d shim against the libtorch torch-sys found, and Gloo's headers (which the
//! wheel does not ship; `cargo xtask fetch-libtorch` links them as `.libtorch/gloo`).

use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-changed=src/shim.cpp");
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    println!("cargo:rerun-if-env-changed=CMEDL_GLOO_INCLUDE");
    println!("cargo:rerun-if-env-changed=CARGO_FEATURE_NCCL");
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
    let mut build = cc::Build::new();
    build
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
        .warnings(false);
    let nccl = std::env::var_os("CARGO_FEATURE_NCCL").is_some();
    if nccl {
        // NCCL's and CUDA's headers come with the torch wheel's dependencies (nvidia/nccl,
        // nvidia/cu13) and the nvidia-cuda-crt / nvidia-cuda-cccl wheels that
        // `cargo xtask fetch-libtorch --nccl` adds; ProcessGroupNCCL's layout depends on
        // NCCL_HAS_* macros, so this exact nccl.h is the one to compile against.
        let torch = torch.canonicalize().unwrap_or_else(|_| torch.to_path_buf());
        let site = torch.parent().expect("torch sits in site-packages");
        let nvidia = site.join("nvidia");
        for needed in [
            "nccl/include/nccl.h",
            "cu13/include/cuda_runtime_api.h",
            "cu13/include/crt/host_defines.h",
            "cu13/include/nv/target",
        ] {
            if !nvidia.join(needed).exists() {
                panic!(
                    "{} is missing: run `cargo xtask fetch-libtorch --nccl`",
                    nvidia.join(needed).display()
                );
            }
        }
        build
            .include(nvidia.join("nccl/include"))
            .include(nvidia.join("cu13/include"))
            .include(nvidia.join("cu13/include/cccl"))
            .define("USE_C10D_NCCL", None)
            .define("USE_NVSHMEM", None)
            .define("CMEDL_NCCL", None);
    }
    build.compile("cmedl_dist_shim");
    // This crate's own tests run without LD_LIBRARY_PATH (binaries of other crates get the
    // same from their build scripts).
    let real = lib.canonicalize().unwrap_or_else(|_| lib.clone());
    println!("cargo:rustc-link-arg=-Wl,-rpath,{}", real.display());
    println!("cargo:rustc-link-search=native={}", lib.display());
    println!("cargo:rustc-link-lib=dylib=torch_cpu");
    println!("cargo:rustc-link-lib=dylib=c10");
    if nccl {
        println!("cargo:rustc-link-lib=dylib=torch_cuda");
        println!("cargo:rustc-link-lib=dylib=c10_cuda");
    }
}
