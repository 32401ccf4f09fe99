//! End-to-end tests of the `cmedl` binary: one test binary, one module per command.

mod bad_inputs;
mod crash;
mod dicom;
mod doctor;
mod experiment;
mod predict;
mod train;
mod volumes;

use std::process::{Command, Output};

/// Runs the `cmedl` binary built for these tests.
pub fn cmedl(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cmedl"))
        .args(args)
        .output()
        .expect("the cmedl binary runs")
}

/// Stdout and stderr of a run, for assertion messages.
pub fn text(out: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}
