//! The workspace's `rust-version` must be true: no locked dependency may need a newer Rust.
//! (Clippy's `incompatible_msrv` lint checks the workspace's own code against the same
//! version.)

use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context, Result};

/// `1.88` or `1.88.0` as (major, minor, patch).
fn parse(v: &str) -> Option<(u64, u64, u64)> {
    let mut parts = v.trim().split('.').map(|p| p.parse::<u64>().ok());
    let major = parts.next()??;
    let minor = parts.next().unwrap_or(Some(0))?;
    let patch = parts.next().unwrap_or(Some(0))?;
    Some((major, minor, patch))
}

/// Fails when a package of the locked dependency graph declares a newer `rust-version` than
/// the workspace's.
pub fn check(root: &Path) -> Result<()> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let out = Command::new(&cargo)
        .args(["metadata", "--format-version", "1", "--locked"])
        .current_dir(root)
        .output()
        .with_context(|| format!("cannot run {cargo} metadata"))?;
    if !out.status.success() {
        bail!(
            "cargo metadata failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    let packages = meta["packages"].as_array().context("no packages")?;
    let members: Vec<&str> = meta["workspace_members"]
        .as_array()
        .context("no workspace members")?
        .iter()
        .filter_map(|m| m.as_str())
        .collect();
    let version_of = |p: &serde_json::Value| p["rust_version"].as_str().and_then(parse);
    let ours = packages
        .iter()
        .filter(|p| p["name"].as_str().is_some_and(|n| n.starts_with("cmedl")))
        .filter_map(version_of)
        .max()
        .context("no cmedl crate declares a rust-version")?;
    let used: Vec<&str> = meta["resolve"]["nodes"]
        .as_array()
        .context("no resolve graph")?
        .iter()
        .filter_map(|n| n["id"].as_str())
        .collect();
    let mut newer: Vec<String> = packages
        .iter()
        .filter(|p| {
            p["id"]
                .as_str()
                .is_some_and(|id| used.contains(&id) && !members.contains(&id))
        })
        .filter(|p| version_of(p).is_some_and(|v| v > ours))
        .map(|p| {
            format!(
                "{} {} (rust-version {})",
                p["name"], p["version"], p["rust_version"]
            )
        })
        .collect();
    newer.sort();
    if !newer.is_empty() {
        bail!(
            "the workspace's rust-version {}.{} is older than what these dependencies need: {}",
            ours.0,
            ours.1,
            newer.join(", ")
        );
    }
    eprintln!(
        "rust-version {}.{}: no locked dependency needs a newer Rust",
        ours.0, ours.1
    );
    Ok(())
}
