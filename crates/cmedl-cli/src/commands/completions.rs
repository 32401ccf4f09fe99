//! `cmedl completions SHELL`: a shell completion script on stdout.

use clap::CommandFactory;
use clap_complete::Shell;

use crate::failure::CmdResult;
use crate::Global;

/// Options of `cmedl completions`.
#[derive(clap::Args)]
pub struct Args {
    /// The shell (bash, zsh, fish, elvish, powershell).
    shell: Shell,
}

/// Runs `cmedl completions`: e.g. `cmedl completions bash > ~/.local/share/bash-completion/completions/cmedl`.
pub fn run(args: Args, _global: &Global) -> CmdResult {
    let mut command = crate::Cli::command();
    let mut out = Vec::new();
    clap_complete::generate(args.shell, &mut command, "cmedl", &mut out);
    let text = String::from_utf8_lossy(&out);
    out!("{text}");
    Ok(())
}
