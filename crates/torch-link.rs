//! Build script shared by every crate whose binaries or test binaries link libtorch.
//!
//! The linker's default `--as-needed` drops `libtorch_cuda.so`, because no symbol of it is
//! referenced directly: its kernels register themselves when the library is loaded. Without
//! it CUDA silently disappears, so we keep it as a NEEDED entry, and add an rpath to the
//! libtorch folder so the binaries run without `LD_LIBRARY_PATH`.

use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    let Some(lib) = std::env::var_os("DEP_TCH_LIBTORCH_LIB").map(PathBuf::from) else {
        println!("cargo:warning=torch-sys did not report its libtorch folder; no rpath added");
        return;
    };
    // The workspace reaches libtorch through a link; the binary should not depend on it.
    let lib = lib.canonicalize().unwrap_or(lib);
    println!("cargo:rustc-link-arg=-Wl,-rpath,{}", lib.display());
    if lib.join("libtorch_cuda.so").exists() {
        println!("cargo:rustc-link-arg=-Wl,--no-as-needed");
        println!("cargo:rustc-link-arg=-L{}", lib.display());
        println!("cargo:rustc-link-arg=-ltorch_cuda");
    }
    if let Some(version) = torch_version(&lib) {
        println!("cargo:rustc-env=CMEDL_LIBTORCH_BUILD_VERSION={version}");
    }
}

/// Reads `__version__` from the torch package's `version.py`, next to `lib/`.
fn torch_version(lib: &std::path::Path) -> Option<String> {
    let file = lib.parent()?.join("version.py");
    println!("cargo:rerun-if-changed={}", file.display());
    let text = std::fs::read_to_string(file).ok()?;
    text.lines()
        .find_map(|line| line.strip_prefix("__version__"))
        .map(|rest| {
            rest.trim_start_matches([' ', '='])
                .trim()
                .trim_matches(['\'', '"'])
                .to_owned()
        })
}
