//! `fobsim bench`: one benchmark run that measures fobsim and its peers on
//! the same machine, in the same process run, and returns one table
//! ([`Report`], [`Report::markdown`]). The `fobsim bench` subcommand and
//! `tests/perf/run.sh` drive it; `docs/PERFORMANCE.md` shows a run.
//!
//! One module per group (see [`Group`], `fobsim bench --only GROUP`):
//!
//! | group | module | measures |
//! |---|---|---|
//! | `otp` | `otp` | TOTP generation, codes/s: our core (one code per call, and the 64-code batch API) against totp-rs in-process, pyotp (`TOTP.at`, in a venv) and oathtool (one process per code, and the marginal per-code cost inside one process with `-w`) |
//! | `verify` | `verify` | sign-in verification, ops/s and p50/p99: our engine in-process (memory, SQLite; one thread and `concurrency` threads), our AWS Query server (`GetSessionToken` with MFA over loopback HTTP) and privacyIDEA's `/validate/check` (gunicorn, 2 sync workers), all at the same client concurrency; CPU per request |
//! | `search` | `search` | the enable/resync search, worst case (no match) per call, for windows of 10, 100, 1000 and 10000 steps, against the same search written with totp-rs |
//! | `emulator` | `emulator` | in-process fleet memory (VmRSS delta per fob, up to 100,000 fobs), pty `PRESS` round trip, USB/IP round trip |
//! | `harness` | `harness` | the built-in suite's wall time and the fleet simulation ([`simulation`]) |
//! | `console` | `console` | the console's sign-in (password and MFA code, 5 HTTP requests) against `fobsim serve`'s routes, sign-ins/s and p50/p99, at the engine's default Argon2id cost and the example bootstrap's cheap one |
//!
//! What the groups share is in [`measure`] (medians, percentiles, rates,
//! bounded child processes, CPU time and memory from `/proc`; percentiles
//! and memory also for the `pty_fleet` bench) and `report` (rows, ratios
//! to the peers, the targets, the table).
//!
//! Nothing here asserts on a number: every result is a row of the table.
//! Peers that are not installed give a row without a value and a note.
//! Every peer process is started in its own process group and stopped by
//! PID (also when a measurement fails); servers listen on loopback only;
//! every loop is bounded by a count and a deadline.

pub mod simulation;

mod console;
mod emulator;
mod harness;
mod keepalive;
pub mod measure;
mod otp;
mod report;
mod search;
mod verify;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde::Serialize;

pub use report::{Machine, Ratio, Report, Row, Target};

/// Why a benchmark could not run.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// Setting up one of our own components failed.
    #[error("{what}: {message}")]
    Setup {
        /// What was being set up.
        what: String,
        /// Why it failed.
        message: String,
    },
    /// A peer (pyotp, oathtool, privacyIDEA) misbehaved or is missing.
    #[error("peer {peer}: {message}")]
    Peer {
        /// The peer's name.
        peer: String,
        /// What went wrong.
        message: String,
    },
    /// An I/O error.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

pub(crate) fn setup(what: &str, e: impl std::fmt::Display) -> BenchError {
    BenchError::Setup {
        what: what.to_string(),
        message: e.to_string(),
    }
}

pub(crate) fn peer(peer: &str, e: impl std::fmt::Display) -> BenchError {
    BenchError::Peer {
        peer: peer.to_string(),
        message: e.to_string(),
    }
}

/// A group of measurements (`fobsim bench --only GROUP`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Group {
    /// TOTP generation.
    Otp,
    /// Verification: engine in-process, HTTP, privacyIDEA.
    Verify,
    /// Enable/resync search cost against the window size.
    Search,
    /// Emulator: fleet memory, pty and USB/IP round trips.
    Emulator,
    /// Harness: built-in suite, fleet simulation.
    Harness,
    /// Console: sign-in over HTTP (password + MFA code).
    Console,
}

impl Group {
    /// Every group, in table order.
    pub const ALL: [Group; 6] = [
        Group::Otp,
        Group::Verify,
        Group::Search,
        Group::Emulator,
        Group::Harness,
        Group::Console,
    ];

    /// The name used on the command line and in JSON.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Group::Otp => "otp",
            Group::Verify => "verify",
            Group::Search => "search",
            Group::Emulator => "emulator",
            Group::Harness => "harness",
            Group::Console => "console",
        }
    }

    /// Parse a group name.
    #[must_use]
    pub fn parse(s: &str) -> Option<Group> {
        Group::ALL.into_iter().find(|g| g.name() == s)
    }
}

/// What to run.
#[derive(Debug, Clone)]
pub struct Options {
    /// Shorter runs and smaller sizes (the output says so).
    pub quick: bool,
    /// Groups to run; empty = all.
    pub only: Vec<Group>,
    /// Client concurrency for every verification row.
    pub concurrency: usize,
    /// Measure the peers (pyotp, oathtool, privacyIDEA).
    pub peers: bool,
    /// A Python with pyotp.
    pub pyotp_python: PathBuf,
    /// The oathtool binary.
    pub oathtool: PathBuf,
    /// The privacyIDEA virtualenv (with gunicorn, else `pi-manage run`).
    pub privacyidea_venv: PathBuf,
    /// Progress lines on stderr.
    pub progress: bool,
}

impl Options {
    /// Defaults: all groups, concurrency 8, peers where
    /// `tests/perf/peers.sh` installs them.
    #[must_use]
    pub fn new(quick: bool) -> Options {
        Options {
            quick,
            only: Vec::new(),
            concurrency: 8,
            peers: true,
            pyotp_python: fobsim_engines::peers::venv("FOBSIM_PYOTP_VENV", "venv-pyotp")
                .join("bin/python"),
            oathtool: PathBuf::from("oathtool"),
            privacyidea_venv: fobsim_engines::privacyidea::venv_dir(),
            progress: false,
        }
    }

    pub(crate) fn wants(&self, g: Group) -> bool {
        self.only.is_empty() || self.only.contains(&g)
    }

    pub(crate) fn runs(&self) -> usize {
        if self.quick { 3 } else { 5 }
    }

    pub(crate) fn min_time(&self) -> Duration {
        Duration::from_millis(if self.quick { 50 } else { 300 })
    }

    pub(crate) fn say(&self, msg: &str) {
        if self.progress {
            eprintln!("bench: {msg}");
        }
    }
}

/// Run the selected groups. A group that fails to set up contributes a row
/// with the error as its note; peers that are missing likewise.
///
/// # Errors
/// Never for a failed measurement (it becomes a note); only for failures
/// to probe the machine (none at present) — kept for forward compatibility.
pub fn run(opts: &Options) -> Result<Report, BenchError> {
    let started = Instant::now();
    let mut machine = Machine::probe();
    let mut rows = Vec::new();
    let mut groups = Vec::new();
    // Fleet memory first: the VmRSS delta is cleanest before other groups
    // have grown and freed the heap.
    let fleet_mem = if opts.wants(Group::Emulator) {
        opts.say("emulator: in-process fleet memory");
        Some(emulator::fleet_memory())
    } else {
        None
    };
    for g in Group::ALL {
        if !opts.wants(g) {
            continue;
        }
        groups.push(g);
        opts.say(&format!("group {}", g.name()));
        let r = match g {
            Group::Otp => otp::run(opts, &mut rows),
            Group::Verify => verify::run(opts, &mut rows),
            Group::Search => search::run(opts, &mut rows),
            Group::Emulator => {
                if let Some(m) = &fleet_mem {
                    rows.extend(m.iter().cloned());
                }
                emulator::run(opts, &mut rows)
            }
            Group::Harness => harness::run(opts, &mut rows),
            Group::Console => console::run(opts, &mut rows),
        };
        if let Err(e) = r {
            rows.push(Row::missing(
                &format!("{}.error", g.name()),
                g,
                "group failed",
                "",
                e.to_string(),
            ));
        }
    }
    machine.load_after = report::loadavg();
    let ratios = report::ratios(&rows);
    let targets = report::targets(&rows, &ratios);
    Ok(Report {
        machine,
        quick: opts.quick,
        concurrency: opts.concurrency,
        groups,
        rows,
        ratios,
        targets,
        wall_s: started.elapsed().as_secs_f64(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_round_trip() {
        for g in Group::ALL {
            assert_eq!(Group::parse(g.name()), Some(g));
        }
        assert_eq!(Group::parse("nope"), None);
    }
}
