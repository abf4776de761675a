//! `fobsim run` (not built yet: see the open issues).

use std::process::ExitCode;

/// Arguments of `fobsim run`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Run `fobsim run`.
pub fn run(_args: Args) -> anyhow::Result<ExitCode> {
    anyhow::bail!("fobsim run is not implemented yet")
}
