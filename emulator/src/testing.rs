//! An in-process serial fleet for tests and the harness: a manual-clock
//! [`Fleet`] on real ptys, served by a tokio runtime of its own, driven from
//! blocking code.

use std::sync::Arc;
use std::time::Duration;

use fobsim_core::Timestamp;

use crate::fleet::{Fleet, FleetError, FleetSpec};
use crate::serial::client::{ClientError, SerialClient};
use crate::serial::{Port, SerialFleet};
use fobsim_clock::TrueClock;

/// Why a testbed could not start.
#[derive(Debug, thiserror::Error)]
pub enum TestbedError {
    /// The fleet is invalid.
    #[error(transparent)]
    Fleet(#[from] FleetError),
    /// The runtime or a pty could not be set up.
    #[error("starting the serial fleet: {0}")]
    Io(#[from] std::io::Error),
}

/// A fleet on ptys with a manual clock, running in the background until
/// dropped (ptys closed, tasks stopped).
#[derive(Debug)]
pub struct SerialTestbed {
    fleet: Arc<Fleet>,
    serial: Option<SerialFleet>,
    rt: Option<tokio::runtime::Runtime>,
}

impl SerialTestbed {
    /// Start `spec` on ptys (no symlinks), the manual clock frozen at
    /// `start`.
    ///
    /// # Errors
    /// [`TestbedError`].
    pub fn start(
        spec: &FleetSpec,
        start: Timestamp,
        test_mode: bool,
    ) -> Result<Self, TestbedError> {
        let fleet = Arc::new(Fleet::new(spec, TrueClock::manual(start), test_mode)?);
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .thread_name("fobsim-serial")
            .build()?;
        let serial = rt.block_on(async { SerialFleet::start(Arc::clone(&fleet), None) })?;
        Ok(SerialTestbed {
            fleet,
            serial: Some(serial),
            rt: Some(rt),
        })
    }

    /// The fleet (its clock, its fobs).
    #[must_use]
    pub fn fleet(&self) -> &Arc<Fleet> {
        &self.fleet
    }

    /// Where each fob is.
    #[must_use]
    pub fn ports(&self) -> &[Port] {
        self.serial.as_ref().map_or(&[], SerialFleet::ports)
    }

    /// True time now.
    #[must_use]
    pub fn now(&self) -> Timestamp {
        self.fleet.now()
    }

    /// Set true time.
    pub fn set_time(&self, t: Timestamp) {
        self.fleet.clock().with_manual(|c, mono| c.set(t, mono));
    }

    /// Move true time by `ms` (negative: back).
    pub fn advance(&self, ms: i64) -> Timestamp {
        self.fleet
            .clock()
            .with_manual(|c, mono| c.advance(ms, mono))
            .unwrap_or_else(|| self.fleet.now())
    }

    /// How many client connections to fob `index` have ended (see
    /// [`SerialFleet::connections_ended`]).
    #[must_use]
    pub fn connections_ended(&self, index: usize) -> u64 {
        self.serial
            .as_ref()
            .and_then(|s| s.connections_ended(index))
            .unwrap_or(0)
    }

    /// Block until at least `n` connections to fob `index` have ended, or
    /// `timeout` passes; returns whether they did.
    #[must_use]
    pub fn wait_connections_ended(&self, index: usize, n: u64, timeout: Duration) -> bool {
        let deadline = std::time::Instant::now() + timeout;
        while self.connections_ended(index) < n {
            if std::time::Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        true
    }

    /// Open an exclusive client to fob `index`.
    ///
    /// # Errors
    /// [`ClientError`]; an index out of range is [`ClientError::Closed`].
    pub fn client(&self, index: usize, timeout: Duration) -> Result<SerialClient, ClientError> {
        let port = self.ports().get(index).ok_or(ClientError::Closed)?;
        SerialClient::open(&port.path, timeout)
    }
}

impl Drop for SerialTestbed {
    fn drop(&mut self) {
        if let (Some(rt), Some(serial)) = (self.rt.take(), self.serial.take()) {
            rt.block_on(serial.shutdown());
            rt.shutdown_timeout(Duration::from_secs(1));
        }
    }
}
