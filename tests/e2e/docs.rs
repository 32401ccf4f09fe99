//! The commands of `docs/dicom.md`, run as the page shows them on a real export (the CT slice
//! and structure set of dicompyler-core, from `cargo xtask fixtures`), so that the page cannot
//! drift from the program. `dciodvfy` runs through a wrapper that fails on any error it reports.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The `sh` blocks of a Markdown page, in order.
fn sh_blocks(markdown: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in markdown.lines() {
        match (&mut current, line.trim_start()) {
            (None, "```sh") => current = Some(String::new()),
            (Some(block), "```") => {
                blocks.push(std::mem::take(block));
                current = None;
            }
            (Some(block), _) => {
                block.push_str(line);
                block.push('\n');
            }
            (None, _) => {}
        }
    }
    blocks
}

/// A program on the PATH.
fn which(program: &str) -> PathBuf {
    std::env::var_os("PATH")
        .and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|d| d.join(program))
                .find(|p| p.is_file())
        })
        .unwrap_or_else(|| {
            panic!("{program} is not on the PATH (dicom3tools: sudo apt install dicom3tools)")
        })
}

#[test]
fn the_dicom_page_runs_as_written_on_a_real_export() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let page = std::fs::read_to_string(root.join("docs/dicom.md")).unwrap();
    let blocks = sh_blocks(&page);
    assert!(blocks.len() >= 5, "the page's commands: {blocks:?}");
    let fixtures = match std::env::var_os("CMEDL_FIXTURES_DIR").filter(|d| !d.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => root.join(".fixtures"),
    };
    let series =
        fixtures.join("dicompyler-core-0.5.6/dicompyler-core-0.5.6/tests/testdata/example_data");
    assert!(
        series.join("rtss.dcm").exists(),
        "{} is missing: run `cargo xtask fixtures`",
        series.display()
    );
    let dir = tempfile::tempdir().unwrap();
    let data = crate::train::tiny_phantom(dir.path());
    let config = crate::train::tiny_config(dir.path(), &data);
    let run = crate::train::tiny_ct_run(dir.path(), &config, "run", &[]);
    // `cmedl` is this build's binary; `dciodvfy` fails when the validator reports an error.
    let bin = dir.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_cmedl"), bin.join("cmedl")).unwrap();
    let wrapper = bin.join("dciodvfy");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nreport=$(\"{}\" \"$@\" 2>&1)\necho \"$report\"\n! echo \"$report\" | grep -q '^Error'\n",
            which("dciodvfy").display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = std::env::join_paths(std::iter::once(bin.clone()).chain(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    )))
    .unwrap();
    let work = dir.path().join("work");
    std::fs::create_dir_all(&work).unwrap();
    for block in &blocks {
        let out = Command::new("bash")
            .args(["-euo", "pipefail", "-c", block])
            .current_dir(&work)
            .env("PATH", &path)
            .env("SERIES", &series)
            .env("RTSTRUCT", series.join("rtss.dcm"))
            .env("RUN", &run)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "docs/dicom.md:\n{block}\nstdout:\n{}\nstderr:\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    for output in [
        "ct.nii.gz",
        "body.nii.gz",
        "gtv_seg.dcm",
        "gtv_rt.dcm",
        "gtv_coded.dcm",
    ] {
        assert!(work.join(output).exists(), "{output} was written");
    }
}
