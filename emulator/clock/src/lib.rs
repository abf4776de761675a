//! True time for the long-running processes (`fobsim emulate`, `fobsim
//! serve`, `fobsim up`): the system clock, or a manual clock that moves
//! only when told — and the control plane that tells it.
//!
//! - [`TrueClock`]: the system clock or a [`ManualClock`]; implements the
//!   workspace's one clock trait, [`fobsim_core::Clock`]. Share it in an
//!   `Arc`: a fleet of fobs and an engine in one process read one clock.
//! - [`ManualClock`] is sans-IO: it is handed the reading of a monotonic
//!   clock, never reads one. [`TrueClock`] is the thin shell that reads
//!   `SystemTime`/`Instant` — the one edge where a fobsim process looks at
//!   the system clock.
//! - [`control`]: JSON lines that move the clock (and, through the
//!   [`control::Fobs`] a fleet implements, change fobs), over any
//!   `AsyncRead + AsyncWrite`; a Unix-socket server and a blocking client.
//! - [`claim`]: what a running process owns (control socket, link
//!   directory, pid file) is claimed, so a second process given the same
//!   path refuses to start.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod claim;
pub mod control;

use std::sync::Mutex;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use fobsim_core::Timestamp;

/// A manual true-time clock: frozen (it reads what it was set to) or
/// running (it moves at the rate of a monotonic clock from where it was).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ManualClock {
    base: Timestamp,
    /// Monotonic reading (ms) at which `base` was true, while running.
    running_since: Option<u64>,
}

impl ManualClock {
    /// A frozen clock reading `start`.
    #[must_use]
    pub fn frozen(start: Timestamp) -> Self {
        ManualClock {
            base: start,
            running_since: None,
        }
    }

    /// The time, given the monotonic reading `mono_ms`.
    #[must_use]
    pub fn now(&self, mono_ms: u64) -> Timestamp {
        match self.running_since {
            None => self.base,
            Some(since) => self
                .base
                .add_millis(i64::try_from(mono_ms.saturating_sub(since)).unwrap_or(i64::MAX)),
        }
    }

    /// Whether the clock is frozen.
    #[must_use]
    pub fn is_frozen(&self) -> bool {
        self.running_since.is_none()
    }

    /// Jump to `t` (backwards too); a running clock runs on from there.
    pub fn set(&mut self, t: Timestamp, mono_ms: u64) {
        self.base = t;
        if self.running_since.is_some() {
            self.running_since = Some(mono_ms);
        }
    }

    /// Move by a signed number of ms (saturating at the ends of the range).
    pub fn advance(&mut self, ms: i64, mono_ms: u64) -> Timestamp {
        let t = self.now(mono_ms).add_millis(ms);
        self.set(t, mono_ms);
        t
    }

    /// Stop the clock where it is.
    pub fn freeze(&mut self, mono_ms: u64) {
        self.base = self.now(mono_ms);
        self.running_since = None;
    }

    /// Let the clock run (at real-time rate) from where it is.
    pub fn resume(&mut self, mono_ms: u64) {
        if self.running_since.is_none() {
            self.running_since = Some(mono_ms);
        }
    }
}

/// Where true time comes from: the system clock, or a manual clock moved
/// through the control plane.
#[derive(Debug)]
pub enum TrueClock {
    /// The system clock, read at each command.
    System,
    /// A [`ManualClock`], moved through the control plane.
    Manual {
        /// The clock.
        state: Mutex<ManualClock>,
        /// The origin of monotonic readings.
        origin: Instant,
    },
}

/// The system clock as a [`Timestamp`] (0 if it reads before 1970).
#[must_use]
pub fn system_now() -> Timestamp {
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    Timestamp::from_millis(ms)
}

impl TrueClock {
    /// `--clock system|manual [--start TIME]` of the commands that own a
    /// clock: the system clock, or a manual clock frozen at `start` (the
    /// system time when `None`).
    ///
    /// # Errors
    /// A `start` with the system clock.
    pub fn from_kind(kind: ClockKind, start: Option<Timestamp>) -> Result<Self, ClockError> {
        match (kind, start) {
            (ClockKind::System, None) => Ok(TrueClock::System),
            (ClockKind::System, Some(_)) => Err(ClockError::StartNeedsManual),
            (ClockKind::Manual, start) => Ok(TrueClock::manual(start.unwrap_or_else(system_now))),
        }
    }

    /// `system` or `manual`.
    #[must_use]
    pub fn source(&self) -> &'static str {
        match self {
            TrueClock::System => "system",
            TrueClock::Manual { .. } => "manual",
        }
    }

    /// A manual clock, frozen at `start`.
    #[must_use]
    pub fn manual(start: Timestamp) -> Self {
        TrueClock::Manual {
            state: Mutex::new(ManualClock::frozen(start)),
            origin: Instant::now(),
        }
    }

    /// True time now.
    #[must_use]
    pub fn now(&self) -> Timestamp {
        match self {
            TrueClock::System => system_now(),
            TrueClock::Manual { state, origin } => {
                let mono = mono_ms(*origin);
                lock(state).now(mono)
            }
        }
    }

    /// Run `f` on the manual clock with the current monotonic reading;
    /// `None` for the system clock.
    pub fn with_manual<R>(&self, f: impl FnOnce(&mut ManualClock, u64) -> R) -> Option<R> {
        match self {
            TrueClock::System => None,
            TrueClock::Manual { state, origin } => {
                let mono = mono_ms(*origin);
                Some(f(&mut lock(state), mono))
            }
        }
    }

    /// Whether the clock is frozen (the system clock never is).
    #[must_use]
    pub fn is_frozen(&self) -> bool {
        self.with_manual(|c, _| c.is_frozen()).unwrap_or(false)
    }
}

impl fobsim_core::Clock for TrueClock {
    fn now(&self) -> Timestamp {
        TrueClock::now(self)
    }
}

/// Which clock a command runs on (`--clock`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClockKind {
    /// The system clock.
    System,
    /// A clock that moves only through the control plane.
    Manual,
}

/// Why a clock could not be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClockError {
    /// `--start` was given for the system clock.
    #[error("--start needs --clock manual (the system clock cannot be set)")]
    StartNeedsManual,
}

fn mono_ms(origin: Instant) -> u64 {
    u64::try_from(origin.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// Lock a mutex, recovering from poisoning (the data stays consistent:
/// every critical section of fobsim's clocks and fleets is a plain value
/// update).
pub fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_when_told_or_running() {
        let t0 = Timestamp::from_secs(1_000);
        let mut c = ManualClock::frozen(t0);
        assert_eq!(c.now(0), t0);
        assert_eq!(c.now(50_000), t0);
        assert_eq!(c.advance(30_000, 60_000), Timestamp::from_secs(1_030));
        c.resume(100_000);
        assert!(!c.is_frozen());
        assert_eq!(c.now(101_500), Timestamp::from_millis(1_031_500));
        c.set(Timestamp::from_secs(5), 102_000);
        assert_eq!(c.now(103_000), Timestamp::from_secs(6));
        c.freeze(104_000);
        assert_eq!(c.now(900_000), Timestamp::from_secs(7));
        assert_eq!(c.advance(-10_000, 900_000), Timestamp::EPOCH);
    }
}
