//! `fobsim device` (not built yet: see the open issues).

use std::process::ExitCode;

/// Arguments of `fobsim device`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Run `fobsim device`.
pub fn run(_args: Args) -> anyhow::Result<ExitCode> {
    anyhow::bail!("fobsim device is not implemented yet")
}
