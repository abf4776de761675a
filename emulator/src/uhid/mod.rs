//! The uhid backend (Linux): each fob becomes a kernel HID device through
//! `/dev/uhid`; the kernel makes a `/dev/hidrawN` that hidapi opens.
//!
//! Layers:
//! - [`event`]: `struct uhid_event` encode/decode, sans-IO;
//! - [`device`]: one fob's devices — events in, events out, sans-IO;
//! - [`UhidFleet`]: the IO shell: one `/dev/uhid` file per HID device,
//!   served by a tokio task per fob; `UHID_DESTROY` when it stops.

pub mod device;
pub mod event;

use std::fs::{File, OpenOptions};
use std::io::{self, Read as _, Write as _};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::io::Interest;
use tokio::io::unix::AsyncFd;
use tokio::task::JoinHandle;

use crate::command::Command;
use crate::fleet::Fleet;
use crate::hid::HidOptions;

use device::{UhidFob, create_keyboard, create_vendor};
use event::{EVENT_SIZE, Event};

/// The uhid character device.
pub const UHID_PATH: &str = "/dev/uhid";

/// Why the uhid backend could not start.
#[derive(Debug, thiserror::Error)]
pub enum UhidError {
    /// `/dev/uhid` could not be opened (no `uhid` module, or no permission).
    #[error(
        "{path}: {source} (is the uhid module loaded? `modprobe uhid`; root or a udev rule is needed)"
    )]
    Open {
        /// The path tried.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// The kernel refused `UHID_CREATE2`.
    #[error("creating the HID device of {serial}: {source}")]
    Create {
        /// The fob's serial.
        serial: String,
        /// The OS error.
        source: io::Error,
    },
    /// Registering the file with the runtime failed.
    #[error("uhid: {0}")]
    Io(#[from] io::Error),
}

/// One open uhid device; `UHID_DESTROY` is written when it is dropped.
#[derive(Debug)]
struct UhidFile {
    fd: AsyncFd<File>,
}

impl UhidFile {
    fn create(path: &Path, ev: &Event, serial: &str) -> Result<UhidFile, UhidError> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(
                rustix::fs::OFlags::NONBLOCK.bits() as i32
                    | rustix::fs::OFlags::CLOEXEC.bits() as i32,
            )
            .open(path)
            .map_err(|source| UhidError::Open {
                path: path.to_path_buf(),
                source,
            })?;
        (&file)
            .write_all(&ev.encode())
            .map_err(|source| UhidError::Create {
                serial: serial.to_string(),
                source,
            })?;
        // SAFETY: the `File` owns its descriptor and the `AsyncFd` owns the
        // `File`: the descriptor stays open and the same until it is dropped.
        let fd = unsafe { AsyncFd::register_with_interest(file, Interest::READABLE) }
            .map_err(io::Error::from)?;
        Ok(UhidFile { fd })
    }

    fn write(&self, ev: &Event) -> io::Result<()> {
        // uhid handles a write synchronously and never returns EAGAIN.
        self.fd.get_ref().write_all(&ev.encode())
    }

    async fn read(&self, buf: &mut [u8]) -> io::Result<Event> {
        loop {
            let mut guard = self.fd.readable().await?;
            match guard.try_io(|f| f.get_ref().read(buf)) {
                Ok(Ok(0)) => return Err(io::ErrorKind::UnexpectedEof.into()),
                Ok(Ok(n)) => match Event::decode(&buf[..n]) {
                    Ok(ev) => return Ok(ev),
                    // A short or odd event from the kernel: skip it.
                    Err(_) => continue,
                },
                Ok(Err(e)) if e.kind() == io::ErrorKind::Interrupted => continue,
                Ok(Err(e)) => return Err(e),
                Err(_would_block) => continue,
            }
        }
    }
}

impl Drop for UhidFile {
    fn drop(&mut self) {
        // Closing the file destroys the device too; say it explicitly.
        let _ = self.write(&Event::Destroy);
    }
}

/// Where one fob's HID devices are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UhidPort {
    /// The fob's serial (the devices' `uniq`).
    pub serial: String,
    /// Its model.
    pub model: String,
    /// Whether it has a keyboard device too.
    pub keyboard: bool,
}

/// A [`Fleet`] as uhid devices, one task per fob. Dropping it (or
/// [`UhidFleet::shutdown`]) stops the tasks and destroys the devices.
#[derive(Debug)]
pub struct UhidFleet {
    ports: Vec<UhidPort>,
    tasks: Vec<JoinHandle<()>>,
}

async fn serve_fob(
    fleet: Arc<Fleet>,
    index: usize,
    vendor: UhidFile,
    keyboard: Option<UhidFile>,
    options: HidOptions,
) {
    let mut fob = UhidFob::new(options);
    let mut exec = |cmd: &Command| fleet.reply(index, cmd);
    let mut vbuf = vec![0u8; EVENT_SIZE];
    let mut kbuf = vec![0u8; EVENT_SIZE];
    loop {
        let writes = match &keyboard {
            None => match vendor.read(&mut vbuf).await {
                Ok(ev) => fob.vendor_event(ev, &mut exec),
                Err(_) => return,
            },
            Some(k) => tokio::select! {
                ev = vendor.read(&mut vbuf) => match ev {
                    Ok(ev) => fob.vendor_event(ev, &mut exec),
                    Err(_) => return,
                },
                ev = k.read(&mut kbuf) => match ev {
                    Ok(ev) => fob.keyboard_event(ev),
                    Err(_) => return,
                },
            },
        };
        for ev in &writes.vendor {
            if vendor.write(ev).is_err() {
                return;
            }
        }
        if let Some(k) = &keyboard {
            for ev in &writes.keyboard {
                if k.write(ev).is_err() {
                    return;
                }
            }
        }
    }
}

impl UhidFleet {
    /// Create one HID device per fob (two with the keyboard) through
    /// `/dev/uhid` and serve them. Must be called inside a tokio runtime
    /// with IO enabled.
    ///
    /// # Errors
    /// [`UhidError`]; devices created before the error are destroyed.
    pub fn start(fleet: Arc<Fleet>, options: HidOptions) -> Result<UhidFleet, UhidError> {
        Self::start_at(Path::new(UHID_PATH), fleet, options)
    }

    /// [`UhidFleet::start`] with another path of the uhid device.
    ///
    /// # Errors
    /// [`UhidError`].
    pub fn start_at(
        path: &Path,
        fleet: Arc<Fleet>,
        options: HidOptions,
    ) -> Result<UhidFleet, UhidError> {
        let mut me = UhidFleet {
            ports: Vec::with_capacity(fleet.len()),
            tasks: Vec::with_capacity(fleet.len()),
        };
        for (index, dev) in fleet.devices().iter().enumerate() {
            let serial = dev.serial().as_str();
            let vendor =
                UhidFile::create(path, &create_vendor(serial, dev.model(), index), serial)?;
            let keyboard = if options.keyboard {
                Some(UhidFile::create(
                    path,
                    &create_keyboard(serial, dev.model(), index),
                    serial,
                )?)
            } else {
                None
            };
            me.ports.push(UhidPort {
                serial: serial.to_string(),
                model: dev.model().to_string(),
                keyboard: options.keyboard,
            });
            me.tasks.push(tokio::spawn(serve_fob(
                Arc::clone(&fleet),
                index,
                vendor,
                keyboard,
                options,
            )));
        }
        Ok(me)
    }

    /// The fobs served, in fleet order.
    #[must_use]
    pub fn ports(&self) -> &[UhidPort] {
        &self.ports
    }

    /// Stop serving and destroy the devices (`UHID_DESTROY`).
    pub async fn shutdown(mut self) {
        for t in &self.tasks {
            t.abort();
        }
        for t in self.tasks.drain(..) {
            let _ = t.await;
        }
    }
}

impl Drop for UhidFleet {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use fobsim_core::Timestamp;

    use super::*;
    use crate::fleet::FleetSpec;
    use fobsim_clock::TrueClock;

    #[tokio::test]
    async fn a_missing_uhid_device_is_a_clear_error() {
        let spec = FleetSpec::uniform("gaht", 1, 0).unwrap();
        let fleet =
            Arc::new(Fleet::new(&spec, TrueClock::manual(Timestamp::from_secs(0)), false).unwrap());
        let e = UhidFleet::start_at(Path::new("/nonexistent/uhid"), fleet, HidOptions::default())
            .unwrap_err();
        assert!(matches!(e, UhidError::Open { .. }), "{e}");
        assert!(e.to_string().contains("modprobe uhid"), "{e}");
    }
}
