//! Driving fobs through real ptys from blocking code: what the harness's
//! serial transport (`fobsim run --transport serial`) needs.
//!
//! A [`PtyHost`] owns a small tokio runtime; [`PtyHost::attach`] puts a fob
//! built from an exact [`FobSpec`] (the scenario's own secret, drift, RTC)
//! on a pty of its own, with a manual clock in test mode, and returns a
//! [`PtyFob`] whose methods mirror the harness's `FobDriver`: every call
//! takes the true time `now`, sets the fob's clock to it, then talks the
//! line protocol over the pty (the serialport client). The same calls on an
//! in-process `Fob` give the same answers.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use fobsim_core::Timestamp;
use fobsim_firmware::{Display, Drift, FobError, FobInfo, FobSpec};

use super::SerialFleet;
use super::client::{ClientError, SerialClient};
use crate::command::{BatteryOp, Command};
use crate::fleet::{Fleet, FleetError};
use fobsim_clock::TrueClock;
use fobsim_firmware::DriftChange;

/// Why a fob on a pty could not be driven.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PtyFobError {
    /// The firmware refused the spec or a drift (same error as in-process).
    #[error(transparent)]
    Fob(#[from] FobError),
    /// The pty, the client or the protocol failed.
    #[error("transport error talking to {serial}: {message}")]
    Transport {
        /// The fob's serial.
        serial: String,
        /// What went wrong.
        message: String,
    },
}

/// Runs the ptys of attached fobs.
#[derive(Debug)]
pub struct PtyHost {
    rt: tokio::runtime::Runtime,
    timeout: Duration,
}

impl PtyHost {
    /// A host with its own runtime (two worker threads); replies must come
    /// within `timeout`.
    ///
    /// # Errors
    /// The runtime could not start.
    pub fn new(timeout: Duration) -> std::io::Result<Self> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .thread_name("fobsim-pty")
            .build()?;
        Ok(PtyHost { rt, timeout })
    }

    /// Put a fob made from `spec` on a new pty and connect to it.
    ///
    /// # Errors
    /// [`PtyFobError::Fob`] if the firmware refuses the spec,
    /// [`PtyFobError::Transport`] if the pty cannot be opened or reached.
    pub fn attach(&self, spec: FobSpec) -> Result<PtyFob, PtyFobError> {
        let serial = spec.serial.to_string();
        let transport = |message: String| PtyFobError::Transport {
            serial: serial.clone(),
            message,
        };
        let start = spec.rtc_set_at;
        let fleet =
            Fleet::from_specs(vec![spec], TrueClock::manual(start), true).map_err(|e| match e {
                FleetError::Fob { source, .. } => PtyFobError::Fob(source),
                other => transport(other.to_string()),
            })?;
        let fleet = Arc::new(fleet);
        let info = fleet
            .with_fob(0, |fob, _| fob.info())
            .ok_or_else(|| transport("empty fleet".into()))?;
        let ptys = {
            let _guard = self.rt.enter();
            SerialFleet::start(Arc::clone(&fleet), None).map_err(|e| transport(e.to_string()))?
        };
        let path = ptys.ports()[0].path.clone();
        let mut client =
            SerialClient::open(&path, self.timeout).map_err(|e| transport(e.to_string()))?;
        // The fob on the wire is the one asked for.
        let wire = client.info().map_err(|e| transport(e.to_string()))?;
        if wire.serial != info.serial.as_str() || wire.digits != info.digits {
            return Err(transport(format!(
                "INFO says {} with {} digits",
                wire.serial, wire.digits
            )));
        }
        Ok(PtyFob {
            info,
            fleet,
            ptys,
            client,
        })
    }
}

/// One fob on a pty, driven over the serial line protocol.
#[derive(Debug)]
pub struct PtyFob {
    info: FobInfo,
    fleet: Arc<Fleet>,
    ptys: SerialFleet,
    client: SerialClient,
}

impl PtyFob {
    /// Public facts about the fob.
    #[must_use]
    pub fn info(&self) -> FobInfo {
        self.info.clone()
    }

    /// The fob's pty.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.ptys.ports()[0].path
    }

    fn at(&mut self, now: Timestamp) {
        self.fleet.clock().with_manual(|c, mono| c.set(now, mono));
    }

    fn transport(&self, e: &ClientError) -> PtyFobError {
        PtyFobError::Transport {
            serial: self.info.serial.to_string(),
            message: e.to_string(),
        }
    }

    fn request(&mut self, now: Timestamp, cmd: &Command) -> Result<String, PtyFobError> {
        self.at(now);
        self.client.request(cmd).map_err(|e| self.transport(&e))
    }

    /// Press the button at `now`; what the display then shows.
    ///
    /// # Errors
    /// [`PtyFobError::Transport`].
    pub fn press(&mut self, now: Timestamp) -> Result<Display, PtyFobError> {
        self.at(now);
        self.client.press().map_err(|e| self.transport(&e))
    }

    /// What the display shows at `now`.
    ///
    /// # Errors
    /// [`PtyFobError::Transport`].
    pub fn display(&mut self, now: Timestamp) -> Result<Display, PtyFobError> {
        self.at(now);
        self.client.display().map_err(|e| self.transport(&e))
    }

    /// Device minus true time at `now`, in ms (`None`: dead battery).
    ///
    /// # Errors
    /// [`PtyFobError::Transport`].
    pub fn clock_offset_ms(&mut self, now: Timestamp) -> Result<Option<i64>, PtyFobError> {
        self.at(now);
        match self.client.request(&Command::Clock) {
            Ok(rest) => rest
                .split(' ')
                .find_map(|w| w.strip_prefix("offset_ms="))
                .and_then(|v| v.parse().ok())
                .map(Some)
                .ok_or_else(|| PtyFobError::Transport {
                    serial: self.info.serial.to_string(),
                    message: format!("CLOCK reply without offset_ms: {rest:?}"),
                }),
            Err(ClientError::Refused { code: 409, .. }) => Ok(None),
            Err(e) => Err(self.transport(&e)),
        }
    }

    /// Set the drift from `now` on.
    ///
    /// # Errors
    /// [`PtyFobError::Fob`] for a drift the firmware refuses (the same
    /// [`FobError::Drift`] as in-process), [`PtyFobError::Transport`].
    pub fn set_drift(&mut self, now: Timestamp, drift: Drift) -> Result<(), PtyFobError> {
        let cmd = Command::Drift(DriftChange {
            offset_ms: Some(drift.offset_ms),
            ppm: Some(drift.ppm),
            jitter_ms: Some(drift.jitter_ms),
        });
        // The firmware's own check, on a copy, so a refused drift is the
        // very error an in-process fob gives; the change itself goes over
        // the wire.
        if let Some(Err(e)) = self
            .fleet
            .with_fob(0, |fob, _| fob.clone().set_drift(now, drift))
        {
            return Err(PtyFobError::Fob(e));
        }
        self.at(now);
        match self.client.request(&cmd) {
            Ok(_) => Ok(()),
            Err(ClientError::Refused { code: 422, message }) => {
                Err(PtyFobError::Fob(FobError::Drift(
                    message
                        .strip_prefix("invalid drift: ")
                        .unwrap_or(&message)
                        .to_string(),
                )))
            }
            Err(e) => Err(self.transport(&e)),
        }
    }

    /// The battery dies.
    ///
    /// # Errors
    /// [`PtyFobError::Transport`].
    pub fn drain_battery(&mut self, now: Timestamp) -> Result<(), PtyFobError> {
        self.request(now, &Command::Battery(BatteryOp::Drain))
            .map(drop)
    }

    /// A fresh battery; the RTC resets.
    ///
    /// # Errors
    /// [`PtyFobError::Transport`].
    pub fn swap_battery(&mut self, now: Timestamp) -> Result<(), PtyFobError> {
        self.request(now, &Command::Battery(BatteryOp::Swap))
            .map(drop)
    }
}
