//! `cargo xtask fetch-libtorch`: PyTorch 2.11.0 from PyPI in a cached virtual environment.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};

use anyhow::{bail, Context, Result};

/// The PyTorch release tch 0.24 is built for.
pub const TORCH_VERSION: &str = "2.11.0";
/// Environment variable that overrides the cache folder.
pub const DIR_ENV: &str = "CMEDL_LIBTORCH_DIR";

/// Options of `fetch-libtorch`.
#[derive(clap::Args, Default)]
pub struct FetchArgs {
    /// Virtual environment folder [default: $CMEDL_LIBTORCH_DIR, else
    /// ~/.cache/cmedl/libtorch-2.11.0].
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Python interpreter used to create the environment.
    #[arg(long, default_value = "python3")]
    pub python: Option<String>,
    /// Package index for pip, e.g. <https://download.pytorch.org/whl/cpu> for CPU-only wheels.
    #[arg(long)]
    pub index_url: Option<String>,
    /// Also install CUDA's crt and cccl headers (small wheels), which building cmedl-dist with
    /// NCCL (`--features nccl`) needs besides the torch wheel's own NCCL and CUDA headers.
    #[arg(long)]
    pub nccl: bool,
}

/// Installs (when needed) and links libtorch; returns the torch package folder.
pub fn fetch(root: &Path, args: &FetchArgs) -> Result<PathBuf> {
    let venv = venv_dir(args)?;
    let torch = match installed_torch(&venv) {
        Some(torch) => torch,
        None => install(&venv, args)?,
    };
    let version = torch_version(&torch)?;
    if !version.starts_with(TORCH_VERSION) {
        bail!(
            "{} holds torch {version}, but cmedl needs {TORCH_VERSION}; remove that folder and run \
             `cargo xtask fetch-libtorch` again",
            venv.display()
        );
    }
    link_workspace(root, &torch)?;
    if args.nccl {
        nccl_headers(&venv, args)?;
    }
    let gloo = gloo_headers(&venv)?;
    crate::link(&root.join(".libtorch").join("gloo"), &gloo)?;
    eprintln!("libtorch {version} ready: {}", torch.display());
    Ok(torch)
}

/// The CUDA headers (crt/, nv/target) that compiling `ProcessGroupNCCL.hpp` needs and the torch
/// wheel's dependencies lack.
fn nccl_headers(venv: &Path, args: &FetchArgs) -> Result<()> {
    let torch = installed_torch(venv).context("torch is not installed")?;
    let include = torch
        .parent()
        .context("torch sits in site-packages")?
        .join("nvidia/cu13/include");
    if include.join("crt/host_defines.h").exists() && include.join("nv/target").exists() {
        return Ok(());
    }
    eprintln!("installing CUDA's crt and cccl headers for the NCCL build");
    let status = pip_install(
        &venv.join("bin").join("python"),
        args,
        &[
            "--no-deps",
            "nvidia-cuda-crt==13.0.*",
            "nvidia-cuda-cccl==13.0.*",
        ],
    )?;
    if !status.success() {
        bail!("installing nvidia-cuda-crt and nvidia-cuda-cccl failed ({status})");
    }
    Ok(())
}

/// Gloo's headers, which `ProcessGroupGloo.hpp` includes but the wheel does not ship: Debian's
/// `libgloo-dev` unpacked (without installing it, so no root is needed) next to the venv, or
/// the system's own copy. Returns the include folder that holds `gloo/`.
fn gloo_headers(venv: &Path) -> Result<PathBuf> {
    let system = Path::new("/usr/include");
    if system.join("gloo/algorithm.h").exists() {
        return Ok(system.to_path_buf());
    }
    let dest = venv.join("gloo-headers");
    let include = dest.join("usr/include");
    if include.join("gloo/algorithm.h").exists() {
        return Ok(include);
    }
    eprintln!("fetching Gloo's headers (Debian package libgloo-dev)");
    let work = venv.join(".gloo-download");
    if work.exists() {
        std::fs::remove_dir_all(&work)
            .with_context(|| format!("cannot remove {}", work.display()))?;
    }
    std::fs::create_dir_all(&work).with_context(|| format!("cannot create {}", work.display()))?;
    let status = Command::new("apt-get")
        .args(["download", "libgloo-dev"])
        .current_dir(&work)
        .status()
        .context("cannot run apt-get (Gloo's headers come from Debian's libgloo-dev)")?;
    if !status.success() {
        bail!("`apt-get download libgloo-dev` failed ({status}); install libgloo-dev instead");
    }
    let deb = std::fs::read_dir(&work)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|e| e == "deb"))
        .context("apt-get download left no .deb file")?;
    let partial = venv.join(".gloo-headers.partial");
    if partial.exists() {
        std::fs::remove_dir_all(&partial)?;
    }
    let status = Command::new("dpkg-deb")
        .arg("-x")
        .arg(&deb)
        .arg(&partial)
        .status()
        .context("cannot run dpkg-deb")?;
    if !status.success() || !partial.join("usr/include/gloo/algorithm.h").exists() {
        bail!("unpacking {} failed ({status})", deb.display());
    }
    if dest.exists() {
        std::fs::remove_dir_all(&dest)?;
    }
    std::fs::rename(&partial, &dest)?;
    let _ = std::fs::remove_dir_all(&work);
    Ok(include)
}

fn venv_dir(args: &FetchArgs) -> Result<PathBuf> {
    if let Some(dir) = &args.dir {
        return Ok(dir.clone());
    }
    if let Some(dir) = std::env::var_os(DIR_ENV).filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(dir));
    }
    Ok(crate::cache_dir("pass --dir or set CMEDL_LIBTORCH_DIR")?
        .join(format!("libtorch-{TORCH_VERSION}")))
}

/// The torch package of a complete earlier install, found without starting Python.
fn installed_torch(venv: &Path) -> Option<PathBuf> {
    let lib = std::fs::read_dir(venv.join("lib")).ok()?;
    lib.filter_map(|entry| entry.ok())
        .map(|entry| entry.path().join("site-packages").join("torch"))
        .find(|torch| {
            torch.join("lib").join("libtorch_cpu.so").exists()
                && torch_version(torch).is_ok_and(|v| v.starts_with(TORCH_VERSION))
        })
}

fn install(venv: &Path, args: &FetchArgs) -> Result<PathBuf> {
    let python = args.python.as_deref().unwrap_or("python3");
    check_python(python)?;
    let venv_python = venv.join("bin").join("python");
    if !venv_python.exists() {
        eprintln!("creating virtual environment {}", venv.display());
        if let Some(parent) = venv.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
        let out = Command::new(python)
            .args(["-m", "venv"])
            .arg(venv)
            .output()
            .with_context(|| format!("cannot run {python}"))?;
        if !out.status.success() {
            bail!(
                "`{python} -m venv {}` failed: {}\nthe venv module is missing; on Debian/Ubuntu: \
                 sudo apt install python3-venv",
                venv.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
    }
    let pip_ok = Command::new(&venv_python)
        .args(["-m", "pip", "--version"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !pip_ok {
        bail!(
            "pip is not available in {}; on Debian/Ubuntu: sudo apt install python3-pip \
             python3-venv, then remove that folder and run `cargo xtask fetch-libtorch` again",
            venv.display()
        );
    }
    eprintln!("installing torch=={TORCH_VERSION} from PyPI (about 5 GB, a few minutes)");
    let status = pip_install(&venv_python, args, &[&format!("torch=={TORCH_VERSION}")])?;
    if !status.success() {
        bail!(
            "`pip install torch=={TORCH_VERSION}` failed ({status}); check the network access to \
             PyPI and the free disk space (about 5 GB), then run `cargo xtask fetch-libtorch` again"
        );
    }
    installed_torch(venv).with_context(|| {
        format!(
            "pip finished but {} holds no torch {TORCH_VERSION} with libtorch_cpu.so",
            venv.display()
        )
    })
}

/// `python -m pip install ARGS`, quietly non-interactive, from `--index-url` when given.
fn pip_install(python: &Path, args: &FetchArgs, install: &[&str]) -> Result<ExitStatus> {
    let mut pip = Command::new(python);
    pip.args([
        "-m",
        "pip",
        "install",
        "--disable-pip-version-check",
        "--no-input",
    ]);
    if let Some(url) = &args.index_url {
        pip.args(["--index-url", url]);
    }
    pip.args(install).status().context("cannot run pip")
}

fn check_python(python: &str) -> Result<()> {
    let out = Command::new(python)
        .args([
            "-c",
            "import sys; print(sys.version_info[0], sys.version_info[1])",
        ])
        .output();
    let out = match out {
        Ok(out) if out.status.success() => out,
        _ => bail!(
            "`{python}` was not found or does not run; install Python 3.9 or newer (Debian/Ubuntu: \
             sudo apt install python3 python3-venv) or pass --python PATH"
        ),
    };
    let text = String::from_utf8_lossy(&out.stdout);
    let mut parts = text
        .split_whitespace()
        .filter_map(|p| p.parse::<u32>().ok());
    let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    if (major, minor) < (3, 9) {
        bail!(
            "{python} is Python {major}.{minor}; PyTorch {TORCH_VERSION} needs Python 3.9 or newer"
        );
    }
    Ok(())
}

/// The `__version__` string in `torch/version.py`.
fn torch_version(torch: &Path) -> Result<String> {
    let file = torch.join("version.py");
    let text = std::fs::read_to_string(&file)
        .with_context(|| format!("cannot read {}", file.display()))?;
    text.lines()
        .find_map(|line| line.strip_prefix("__version__"))
        .map(|rest| {
            rest.trim_start_matches([' ', '='])
                .trim()
                .trim_matches(['\'', '"'])
                .to_owned()
        })
        .with_context(|| format!("{} has no __version__", file.display()))
}

/// Points `ROOT/.libtorch/torch` (the `LIBTORCH` of `.cargo/config.toml`) at `torch`.
fn link_workspace(root: &Path, torch: &Path) -> Result<()> {
    crate::link(&root.join(".libtorch").join("torch"), torch)
}
