//! End-to-end tests of the `cmedl` binary: one test binary, one module per command, every run
//! through [`TestCommand`].

mod bad_inputs;
mod crash;
mod dicom;
#[cfg(feature = "fixtures")]
mod docs;
mod doctor;
mod experiment;
mod parallel;
mod predict;
mod train;
mod volumes;

use std::ffi::OsStr;
use std::process::{Child, Command, Output, Stdio};

/// A program of the virtual environment that provides libtorch (its `python` has PyTorch,
/// `torchrun` launches data-parallel runs): VENV/lib/pythonX.Y/site-packages/torch → VENV/bin.
pub fn venv_bin(name: &str) -> std::path::PathBuf {
    let torch = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../.libtorch/torch")
        .canonicalize()
        .expect("run `cargo xtask fetch-libtorch` first");
    let bin = torch.ancestors().nth(4).unwrap().join("bin").join(name);
    assert!(bin.exists(), "{} is missing", bin.display());
    bin
}

/// A `cmedl` invocation being built, run and checked (in the manner of ripgrep's test
/// `TestCommand`): `TestCommand::new("info").arg(&path).arg("--json").stdout()`.
pub struct TestCommand {
    cmd: Command,
    shown: Vec<String>,
}

impl TestCommand {
    /// `cmedl SUBCOMMAND`.
    pub fn new(subcommand: &str) -> Self {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_cmedl"));
        cmd.arg(subcommand);
        Self {
            cmd,
            shown: vec![subcommand.to_owned()],
        }
    }

    /// Appends an argument (a string or a path).
    pub fn arg(&mut self, arg: impl AsRef<OsStr>) -> &mut Self {
        self.shown.push(arg.as_ref().to_string_lossy().into_owned());
        self.cmd.arg(arg);
        self
    }

    /// Appends arguments.
    pub fn args<I: IntoIterator<Item = S>, S: AsRef<OsStr>>(&mut self, args: I) -> &mut Self {
        for a in args {
            self.arg(a);
        }
        self
    }

    /// Sets an environment variable of the process.
    pub fn env(&mut self, key: &str, value: &str) -> &mut Self {
        self.cmd.env(key, value);
        self
    }

    /// Runs the command to its end.
    pub fn output(&mut self) -> Output {
        self.cmd.output().expect("the cmedl binary runs")
    }

    /// Runs the command and checks its exit code; the output comes back for more checks.
    pub fn expect_exit(&mut self, code: i32) -> Output {
        let out = self.output();
        assert_eq!(out.status.code(), Some(code), "{}", self.describe(&out));
        assert!(
            !stderr(&out).contains("panicked"),
            "{}",
            self.describe(&out)
        );
        out
    }

    /// Runs the command, which must succeed.
    pub fn succeeds(&mut self) -> Output {
        self.expect_exit(0)
    }

    /// Runs the command, which must succeed, and returns its stdout.
    pub fn stdout(&mut self) -> String {
        String::from_utf8_lossy(&self.succeeds().stdout).into_owned()
    }

    /// Runs the command, which must exit with `code` and a message containing `needle`;
    /// returns stderr.
    pub fn fails_with(&mut self, code: i32, needle: &str) -> String {
        let out = self.expect_exit(code);
        let err = stderr(&out);
        assert!(
            err.contains(needle),
            "no '{needle}' in: {}",
            self.describe(&out)
        );
        err
    }

    /// Starts the command in the background with its output captured (`wait_with_output`).
    pub fn spawn(&mut self) -> Child {
        self.cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the cmedl binary starts")
    }

    /// Starts the command in the background with its output discarded.
    pub fn spawn_silent(&mut self) -> Child {
        self.cmd
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("the cmedl binary starts")
    }

    /// The command line, exit code and output, for assertion messages.
    pub fn describe(&self, out: &Output) -> String {
        format!(
            "cmedl {}\nstatus {:?}\nstdout:\n{}\nstderr:\n{}",
            self.shown.join(" "),
            out.status.code(),
            String::from_utf8_lossy(&out.stdout),
            stderr(out)
        )
    }
}

/// The stderr of a run as text.
pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}
