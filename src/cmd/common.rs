//! Arguments shared by several subcommands.

use std::path::PathBuf;
use std::sync::Arc;

use fobsim_clock::{ClockKind, TrueClock};
use fobsim_core::Timestamp;
use fobsim_engines::StoreKind;

/// Where true time comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ClockArg {
    /// The system clock.
    System,
    /// A clock that moves only through the control socket (`fobsim clock`).
    Manual,
}

/// `--clock KIND [--start TIME] [--control SOCKET]` of the commands that own
/// a true clock (`fobsim emulate`, `fobsim serve`).
#[derive(Debug, Clone, clap::Args)]
pub struct ClockArgs {
    /// Where true time comes from.
    #[arg(long, value_enum, default_value_t = ClockArg::System)]
    pub clock: ClockArg,
    /// Start time of the manual clock: RFC 3339 UTC or @UNIX_SECONDS
    /// (default: the system time at start).
    #[arg(long, value_name = "TIME", requires = "control")]
    pub start: Option<String>,
    /// Serve the control plane (JSON lines) on this Unix socket.
    #[arg(long, value_name = "SOCKET")]
    pub control: Option<PathBuf>,
}

impl ClockArgs {
    /// The true clock these arguments describe.
    ///
    /// # Errors
    /// `--start` without a manual clock, a manual clock without a control
    /// socket (nothing could move it), a malformed `--start`.
    pub fn true_clock(&self) -> anyhow::Result<Arc<TrueClock>> {
        let kind = match self.clock {
            ClockArg::System => ClockKind::System,
            ClockArg::Manual => {
                anyhow::ensure!(
                    self.control.is_some(),
                    "--clock manual needs --control SOCKET (time moves only through it)"
                );
                ClockKind::Manual
            }
        };
        let start = self
            .start
            .as_deref()
            .map(str::parse::<Timestamp>)
            .transpose()?;
        Ok(Arc::new(TrueClock::from_kind(kind, start)?))
    }
}

/// `--store NAME` of the commands that open the built-in engine (`fobsim
/// run`, `fobsim sweep`): parsed by [`StoreKind`]'s `FromStr`, with each
/// name explained in `--help`.
pub fn store_parser() -> impl clap::builder::TypedValueParser<Value = StoreKind> {
    use clap::builder::{PossibleValue, PossibleValuesParser, TypedValueParser as _};
    PossibleValuesParser::new([
        PossibleValue::new("memory").help("In memory (fastest)"),
        PossibleValue::new("sqlite")
            .help("A fresh SQLite database per scenario in the temp directory"),
    ])
    .try_map(|name| name.parse::<StoreKind>())
}
