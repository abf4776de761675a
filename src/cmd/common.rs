//! Arguments shared by several subcommands.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;

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
    /// Start time of the manual clock: Unix seconds, @UNIX_SECONDS or RFC
    /// 3339 UTC (default: the system time at start).
    #[arg(long, value_name = "TIME")]
    pub start: Option<String>,
    /// Serve the control plane (JSON lines) on this Unix socket.
    #[arg(long, value_name = "SOCKET")]
    pub control: Option<PathBuf>,
}

impl ClockArgs {
    /// The true clock these arguments describe; `mover` is another way the
    /// command offers to move a manual clock (`("--http ADDR", given)`),
    /// if it has one.
    ///
    /// # Errors
    /// `--start` without a manual clock, a manual clock without a control
    /// socket or other mover (nothing could move it), a malformed `--start`.
    pub fn true_clock(&self, mover: Option<(&str, bool)>) -> anyhow::Result<Arc<TrueClock>> {
        let kind = match self.clock {
            ClockArg::System => ClockKind::System,
            ClockArg::Manual => {
                anyhow::ensure!(
                    self.control.is_some() || mover.is_some_and(|(_, given)| given),
                    "--clock manual needs --control SOCKET{} (time moves only through it)",
                    mover.map(|(m, _)| format!(" or {m}")).unwrap_or_default()
                );
                ClockKind::Manual
            }
        };
        anyhow::ensure!(
            self.start.is_none() || kind == ClockKind::Manual,
            "--start needs --clock manual (the system clock cannot be set)"
        );
        let start = self
            .start
            .as_deref()
            .map(|s| parse_time(s).context("--start"))
            .transpose()?;
        Ok(Arc::new(TrueClock::from_kind(kind, start)?))
    }
}

/// `--pid-file FILE` of the long-running commands (`fobsim emulate`,
/// `fobsim serve`).
#[derive(Debug, Clone, clap::Args)]
pub struct PidFileArgs {
    /// Write this process's PID to FILE while it runs (removed on exit).
    /// A pid file another live process holds is refused ("in use by PID
    /// N"); a stale one is taken over.
    #[arg(long, value_name = "FILE")]
    pub pid_file: Option<PathBuf>,
}

impl PidFileArgs {
    /// Claim the pid file, if one was asked for: hold the result while the
    /// process runs.
    ///
    /// # Errors
    /// The pid file is in use by another process, or cannot be written.
    pub fn claim(&self) -> anyhow::Result<Option<fobsim_clock::claim::Claim>> {
        Ok(match &self.pid_file {
            Some(p) => Some(fobsim_clock::claim::Claim::acquire(p, "pid file")?),
            None => None,
        })
    }
}

/// The accepted forms of a time on the command line, for error messages.
pub const TIME_FORMS: &str =
    "Unix seconds (1700000000), @UNIX_SECONDS (@1700000000) or RFC 3339 UTC (2026-01-01T00:00:00Z)";

/// A true time from the command line: Unix seconds (`1700000000`, as
/// `oathtool -N` and `date +%s` give them), `@1700000000`, or RFC 3339 UTC.
///
/// # Errors
/// Anything else, or a time past the representable range, with the
/// accepted forms in the message.
pub fn parse_time(s: &str) -> anyhow::Result<Timestamp> {
    let bad = || anyhow::anyhow!("bad time {s:?}: expected {TIME_FORMS}");
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        let secs: u64 = s.parse().map_err(|_| bad())?;
        return secs
            .checked_mul(1000)
            .map(Timestamp::from_millis)
            .ok_or_else(bad);
    }
    s.parse::<Timestamp>().map_err(|_| bad())
}

/// Largest crystal skew a fob accepts, in ppm either way.
pub const MAX_PPM: f64 = 100_000.0;

/// `--ppm X`: a finite skew within ±[`MAX_PPM`].
///
/// # Errors
/// Not a number, not finite, or out of range (the message does not echo
/// a 309-digit rendering of `1e308`).
pub fn ppm(s: &str) -> Result<f64, String> {
    let v: f64 = s
        .parse()
        .map_err(|_| "expected a skew in ppm, e.g. 20 or -3.5".to_string())?;
    if v.is_finite() && v.abs() <= MAX_PPM {
        Ok(v)
    } else {
        Err(format!(
            "out of range: expected -{MAX_PPM} to {MAX_PPM} ppm"
        ))
    }
}

/// `--store NAME` of the commands that open the built-in engine (`fobsim
/// run`, `fobsim sweep`): parsed by [`StoreKind`]'s `FromStr`, with each
/// name explained in `--help`.
pub fn store_parser() -> StoreParser {
    StoreParser
}

/// The parser of `--store`: `memory`, `sqlite` or a `postgres://…` URL.
#[derive(Clone, Copy, Debug)]
pub struct StoreParser;

impl clap::builder::TypedValueParser for StoreParser {
    type Value = StoreKind;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        arg: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> Result<StoreKind, clap::Error> {
        let text = value
            .to_str()
            .ok_or_else(|| clap::Error::new(clap::error::ErrorKind::InvalidUtf8).with_cmd(cmd))?;
        text.parse::<StoreKind>().map_err(|e| {
            let name = arg.map_or_else(|| "--store".to_string(), ToString::to_string);
            clap::Error::raw(
                clap::error::ErrorKind::InvalidValue,
                format!("invalid value {text:?} for '{name}': {e}\n"),
            )
            .with_cmd(cmd)
        })
    }

    fn possible_values(
        &self,
    ) -> Option<Box<dyn Iterator<Item = clap::builder::PossibleValue> + '_>> {
        use clap::builder::PossibleValue;
        Some(Box::new(
            [
                PossibleValue::new("memory").help("In memory (fastest)"),
                PossibleValue::new("sqlite")
                    .help("A fresh SQLite database per scenario in the temp directory"),
                PossibleValue::new("postgres://USER@HOST:PORT/DB").help(
                    "A fresh schema per scenario in this PostgreSQL database (builtin, iam-http)",
                ),
            ]
            .into_iter(),
        ))
    }
}

/// The key or password that encrypts an exported PSKC file (RFC 6030 §6),
/// from `--pskc-key-file FILE` or `--pskc-password-file FILE`: never from
/// the command line itself. A missing key file is created with a fresh
/// random AES-128 key (mode 0600) and said so on stderr; a key or password
/// file that group or others may access is refused.
///
/// # Errors
/// An unreadable, malformed or too open file.
pub fn pskc_protection(
    key_file: Option<&std::path::Path>,
    password_file: Option<&std::path::Path>,
) -> anyhow::Result<Option<fobsim_core::seedfile::Protection>> {
    use fobsim_core::seedfile::{Protection, read_or_create_key_file, read_password_file};
    match (key_file, password_file) {
        (Some(_), Some(_)) => {
            anyhow::bail!("give --pskc-key-file or --pskc-password-file, not both")
        }
        (Some(path), None) => {
            let (key, created) = read_or_create_key_file(path, &mut rand::rng())?;
            if created {
                eprintln!(
                    "fobsim: created the transport key {} (AES-128, 32 hex digits, mode 0600): the importer needs it",
                    path.display()
                );
            }
            Ok(Some(Protection::Key(key)))
        }
        (None, Some(path)) => Ok(Some(Protection::Password(read_password_file(path)?))),
        (None, None) => Ok(None),
    }
}

/// Bind the control socket at `path`; a socket another live process holds
/// is refused with its own message ("control socket … is in use by PID N").
///
/// # Errors
/// The socket is in use, or cannot be bound.
pub fn bind_control(
    path: &std::path::Path,
) -> anyhow::Result<fobsim_clock::control::server::ControlSocket> {
    fobsim_clock::control::server::ControlSocket::bind(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AddrInUse {
            anyhow::Error::new(e)
        } else {
            anyhow::Error::new(e).context(format!("binding the control socket {}", path.display()))
        }
    })
}
