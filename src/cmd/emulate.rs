//! `fobsim emulate` (not built yet: see the open issues).

use std::process::ExitCode;

/// Arguments of `fobsim emulate`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Run `fobsim emulate`.
pub fn run(_args: Args) -> anyhow::Result<ExitCode> {
    anyhow::bail!("fobsim emulate is not implemented yet")
}
