//! fobsim's transports: fobs a host can talk to, on ptys, as uhid devices
//! and behind a USB/IP server; the fleet they share.
//!
//! - [`fleet`]: many fobs sharing one true clock
//!   ([`fobsim_clock::TrueClock`]), whatever transport exposes them;
//! - [`command`]: the fob's transport-neutral command set (commands,
//!   replies, [`command::execute`]);
//! - [`control`]: the fleet's side of the control plane
//!   ([`fobsim_clock::control`]): drift changes and the list of fobs;
//! - [`serial`]: one pseudo-terminal per fob, a line protocol
//!   (`docs/serial-protocol.md`), and a client.
//! - [`hid`]: the fob as a USB HID device, sans-IO (descriptors, the
//!   binary framing of the same commands: `docs/hid-protocol.md`), and a
//!   hidapi client;
//! - [`uhid`]: fobs as Linux kernel HID devices through `/dev/uhid`;
//! - [`usbip`]: a USB/IP server exporting fobs as USB devices, and a client;
//! - [`http`]: the fob panel page and the HTTP+JSON control API.
//!
//! Every wire format is a sans-IO module (parse/emit over bytes); the IO
//! shells are generic over `AsyncRead + AsyncWrite` or thin.

#![warn(missing_docs)]

pub mod command;
pub mod control;
pub mod fleet;
pub mod hid;
pub mod http;
pub mod serial;
pub mod testing;
pub mod uhid;
pub mod usbip;

pub use fleet::{CreateError, Fleet, FleetError, FleetSpec};
pub use serial::SerialFleet;

/// Raise the soft limit on open files to the hard limit (each fob on a pty
/// takes up to two descriptors). Returns the new soft limit.
///
/// # Errors
/// The `setrlimit` error.
pub fn raise_fd_limit() -> std::io::Result<u64> {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let cur = getrlimit(Resource::Nofile);
    if cur.current.is_some() && cur.current == cur.maximum {
        return Ok(cur.current.unwrap_or(u64::MAX));
    }
    let new = Rlimit {
        current: cur.maximum,
        maximum: cur.maximum,
    };
    setrlimit(Resource::Nofile, new)?;
    Ok(new.current.unwrap_or(u64::MAX))
}
