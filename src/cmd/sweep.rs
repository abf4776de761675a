//! `fobsim sweep` (not built yet: see the open issues).

use std::process::ExitCode;

/// Arguments of `fobsim sweep`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Run `fobsim sweep`.
pub fn run(_args: Args) -> anyhow::Result<ExitCode> {
    anyhow::bail!("fobsim sweep is not implemented yet")
}
