//! `fobsim clock` (not built yet: see the open issues).

use std::process::ExitCode;

/// Arguments of `fobsim clock`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Run `fobsim clock`.
pub fn run(_args: Args) -> anyhow::Result<ExitCode> {
    anyhow::bail!("fobsim clock is not implemented yet")
}
