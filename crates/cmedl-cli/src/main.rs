//! `cmedl`: train a CT segmenter that learns from unpaired MRI (CMEDL), apply and evaluate it.
//!
//! Exit codes: 0 success, 1 internal error, 2 bad input or usage, 130 interrupted.

mod device;
mod doctor;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use device::DeviceSpec;

#[derive(Parser)]
#[command(
    name = "cmedl",
    version,
    about = "Unpaired cross-modality educed distillation (CMEDL) for CT segmentation"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Report the libtorch version, CUDA devices, and check that each device computes.
    Doctor {
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
        /// Check only this device: auto, cpu, cuda or cuda:N [default: every device].
        #[arg(long)]
        device: Option<DeviceSpec>,
    },
}

/// An error and the exit code it maps to.
enum Failure {
    /// Bad input or usage: exit code 2.
    Input(String),
    /// Something failed inside cmedl or libtorch: exit code 1.
    Internal(String),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Input(msg)) => {
            eprintln!("error: {msg}");
            ExitCode::from(2)
        }
        Err(Failure::Internal(msg)) => {
            eprintln!("error: {msg}");
            ExitCode::from(1)
        }
    }
}

fn run(cli: Cli) -> Result<(), Failure> {
    match cli.command {
        Command::Doctor { json, device } => {
            let only = doctor::devices(device).map_err(|e| Failure::Input(e.to_string()))?;
            let report = doctor::run(only);
            if json {
                let text = serde_json::to_string_pretty(&report)
                    .map_err(|e| Failure::Internal(e.to_string()))?;
                println!("{text}");
            } else {
                print!("{}", report.human());
            }
            if report.passed() {
                Ok(())
            } else {
                Err(Failure::Internal(
                    "a device check failed (see above)".to_owned(),
                ))
            }
        }
    }
}
