//! Fobs behind real serial ptys: the emulator's `PtyHost`/`PtyFob` as a
//! [`FobBackend`], so the runner presses over the line protocol instead of
//! calling the fob in-process (`fobsim run --transport serial`). Verdicts
//! and transcripts are the same as in-process; a test checks it on the
//! whole built-in suite.

use std::time::Duration;

use fobsim_core::Timestamp;
use fobsim_emulator::serial::driver::{PtyFob, PtyFobError, PtyHost};
use fobsim_firmware::{Display, Drift, FobInfo, FobSpec};

use crate::driver::{DriverError, FobBackend, FobDriver};

/// Fobs on serial ptys in this process, driven over the line protocol.
pub struct SerialBackend(PtyHost);

impl SerialBackend {
    /// A pty host whose clients wait up to `timeout` for each answer.
    ///
    /// # Errors
    /// [`DriverError::Transport`] if the pty host cannot start.
    pub fn new(timeout: Duration) -> Result<Self, DriverError> {
        PtyHost::new(timeout)
            .map(SerialBackend)
            .map_err(|e| DriverError::Transport {
                serial: String::new(),
                message: e.to_string(),
            })
    }
}

/// One fob on a pty.
struct SerialFob(PtyFob);

fn driver_error(e: PtyFobError) -> DriverError {
    match e {
        PtyFobError::Fob(f) => DriverError::Fob(f),
        PtyFobError::Transport { serial, message } => DriverError::Transport { serial, message },
    }
}

impl FobDriver for SerialFob {
    fn info(&self) -> FobInfo {
        self.0.info()
    }
    fn press(&mut self, now: Timestamp) -> Result<Display, DriverError> {
        self.0.press(now).map_err(driver_error)
    }
    fn display(&mut self, now: Timestamp) -> Result<Display, DriverError> {
        self.0.display(now).map_err(driver_error)
    }
    fn clock_offset_ms(&mut self, now: Timestamp) -> Result<Option<i64>, DriverError> {
        self.0.clock_offset_ms(now).map_err(driver_error)
    }
    fn set_drift(&mut self, now: Timestamp, drift: Drift) -> Result<(), DriverError> {
        self.0.set_drift(now, drift).map_err(driver_error)
    }
    fn drain_battery(&mut self, now: Timestamp) -> Result<(), DriverError> {
        self.0.drain_battery(now).map_err(driver_error)
    }
    fn swap_battery(&mut self, now: Timestamp) -> Result<(), DriverError> {
        self.0.swap_battery(now).map_err(driver_error)
    }
}

impl FobBackend for SerialBackend {
    fn name(&self) -> &'static str {
        "serial"
    }
    fn attach(&mut self, spec: FobSpec) -> Result<Box<dyn FobDriver>, DriverError> {
        Ok(Box::new(SerialFob(
            self.0.attach(spec).map_err(driver_error)?,
        )))
    }
}
