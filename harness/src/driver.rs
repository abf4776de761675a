//! How the runner reaches a fob: the [`FobDriver`] trait.
//!
//! In-process first ([`InProcess`]); a serial-pty or HID driver (in the
//! `emulator` crate) implements the same small, object-safe trait: every call
//! carries the true time `now`, so a driver for an external emulator sets
//! the emulator's clock to `now` before sending the command.

use fobsim_core::Timestamp;
use fobsim_firmware::{Display, Drift, Fob, FobError, FobInfo, FobSpec};

/// Errors from a fob driver.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DriverError {
    /// The fob refused the spec or a drift value.
    #[error(transparent)]
    Fob(#[from] FobError),
    /// A transport-level failure (a pty closed, a timeout...).
    #[error("transport error talking to {serial}: {message}")]
    Transport {
        /// The fob's serial.
        serial: String,
        /// What went wrong.
        message: String,
    },
    /// The driver cannot do this (e.g. drift control without test mode).
    #[error("the {driver} driver cannot {what}")]
    Unsupported {
        /// Driver name.
        driver: &'static str,
        /// What was asked.
        what: &'static str,
    },
}

/// One fob as the runner sees it: a button, a display, and test-mode
/// controls for its clock and battery.
pub trait FobDriver {
    /// Public facts about the fob.
    fn info(&self) -> FobInfo;
    /// Press the button at true time `now`; what the display then shows.
    ///
    /// # Errors
    /// [`DriverError`] if the fob cannot be reached.
    fn press(&mut self, now: Timestamp) -> Result<Display, DriverError>;
    /// What the display shows at `now`, without pressing.
    ///
    /// # Errors
    /// [`DriverError`] if the fob cannot be reached.
    fn display(&mut self, now: Timestamp) -> Result<Display, DriverError>;
    /// Device time minus true time at `now`, in ms (`None`: dead battery).
    ///
    /// # Errors
    /// [`DriverError`] if the fob cannot be reached.
    fn clock_offset_ms(&mut self, now: Timestamp) -> Result<Option<i64>, DriverError>;
    /// Reset the device clock's drift from `now` on.
    ///
    /// # Errors
    /// [`DriverError`] for an invalid drift or an unreachable fob.
    fn set_drift(&mut self, now: Timestamp, drift: Drift) -> Result<(), DriverError>;
    /// The battery dies.
    ///
    /// # Errors
    /// [`DriverError`] if the fob cannot be reached.
    fn drain_battery(&mut self, now: Timestamp) -> Result<(), DriverError>;
    /// A fresh battery; the RTC resets.
    ///
    /// # Errors
    /// [`DriverError`] if the fob cannot be reached.
    fn swap_battery(&mut self, now: Timestamp) -> Result<(), DriverError>;
}

/// Makes drivers for fob specs (one per scenario device).
pub trait FobBackend {
    /// Short name for reports (`in-process`, `pty`, ...).
    fn name(&self) -> &'static str;
    /// Build (or attach to) a fob made from `spec`.
    ///
    /// # Errors
    /// [`DriverError`] if the fob cannot be built or reached.
    fn attach(&mut self, spec: FobSpec) -> Result<Box<dyn FobDriver>, DriverError>;
}

/// Fobs simulated in this process by `fobsim-firmware`.
#[derive(Debug, Default, Clone, Copy)]
pub struct InProcess;

/// An in-process fob.
#[derive(Debug, Clone)]
pub struct InProcessFob(pub Fob);

impl FobDriver for InProcessFob {
    fn info(&self) -> FobInfo {
        self.0.info()
    }
    fn press(&mut self, now: Timestamp) -> Result<Display, DriverError> {
        Ok(self.0.press(now))
    }
    fn display(&mut self, now: Timestamp) -> Result<Display, DriverError> {
        Ok(self.0.display(now))
    }
    fn clock_offset_ms(&mut self, now: Timestamp) -> Result<Option<i64>, DriverError> {
        Ok(self
            .0
            .device_ms(now)
            .map(|d| d.saturating_sub(i64::try_from(now.as_millis()).unwrap_or(i64::MAX))))
    }
    fn set_drift(&mut self, now: Timestamp, drift: Drift) -> Result<(), DriverError> {
        Ok(self.0.set_drift(now, drift)?)
    }
    fn drain_battery(&mut self, now: Timestamp) -> Result<(), DriverError> {
        self.0.drain_battery(now);
        Ok(())
    }
    fn swap_battery(&mut self, now: Timestamp) -> Result<(), DriverError> {
        self.0.swap_battery(now);
        Ok(())
    }
}

impl FobBackend for InProcess {
    fn name(&self) -> &'static str {
        "in-process"
    }
    fn attach(&mut self, spec: FobSpec) -> Result<Box<dyn FobDriver>, DriverError> {
        Ok(Box::new(InProcessFob(Fob::new(spec)?)))
    }
}
