//! The USB/IP backend: a server that exports each fob as a USB HID device
//! (`usbip list -r HOST` lists them over TCP; `usbip attach` makes them
//! real USB devices through vhci-hcd), and an in-repo client.
//!
//! Layers:
//! - [`pdu`]: the wire format, sans-IO;
//! - [`descriptors`]: the fob's USB descriptors;
//! - [`device`]: the USB device model (control requests, interrupt
//!   endpoints, pending URBs, unlink), sans-IO;
//! - [`server`]: the IO shell, generic over `AsyncRead + AsyncWrite`;
//! - [`client`]: a USB/IP client (list, import, control and interrupt
//!   transfers, press).

pub mod client;
pub mod descriptors;
pub mod device;
pub mod pdu;
pub mod server;

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;

pub use server::{Timeouts, UsbipServer, bus_id};

use crate::fleet::Fleet;
use crate::hid::HidOptions;

/// The USB/IP port (IANA).
pub const DEFAULT_PORT: u16 = 3240;

/// Bind `addr` and serve `fleet` over USB/IP forever. The CLI's
/// `fobsim emulate --transport usbip --listen ADDR`.
///
/// # Errors
/// Binding or accepting fails.
pub async fn serve(fleet: Arc<Fleet>, addr: SocketAddr, options: HidOptions) -> io::Result<()> {
    let listener = TcpListener::bind(addr).await?;
    Arc::new(UsbipServer::new(fleet, options))
        .run(listener)
        .await
}
