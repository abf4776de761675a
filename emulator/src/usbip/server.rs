//! The USB/IP server: a fleet's fobs as exported USB devices, one bus id
//! per fob (`1-1`, `1-2`, ...). Each connection is served by
//! [`UsbipServer::serve_connection`], generic over `AsyncRead +
//! AsyncWrite` (tests use `tokio::io::duplex`); [`UsbipServer::run`]
//! accepts TCP clients. A malformed PDU or a client vanishing ends that
//! connection only; so does silence ([`Timeouts`]): a connection that
//! never asks, or an importing host that sends nothing while the fob owes
//! it nothing, is closed, and the fob it held is free again.

use std::collections::HashSet;
use std::io;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::net::TcpListener;

use crate::command::Command;
use crate::fleet::Fleet;
use crate::hid::{DEVICE_VERSION, HidOptions, PRODUCT_ID, VENDOR_ID, product_name};
use fobsim_clock::lock;

use super::descriptors::Descriptors;
use super::device::UsbFob;
use super::pdu::{Cmd, DeviceInfo, InterfaceInfo, OpReply, OpRequest, PduError, SPEED_FULL};

/// How a connection ended badly.
#[derive(Debug, thiserror::Error)]
pub enum ConnectionError {
    /// Reading or writing failed.
    #[error("usbip connection: {0}")]
    Io(#[from] io::Error),
    /// The client sent something that is not USB/IP.
    #[error("usbip connection: {0}")]
    Pdu(#[from] PduError),
    /// The client closed the connection in the middle of a PDU.
    #[error("usbip connection: closed in the middle of a PDU ({0} bytes held)")]
    Truncated(usize),
    /// The client sent nothing for too long (see [`Timeouts`]).
    #[error("usbip connection: nothing received for {0:?}")]
    TimedOut(Duration),
}

/// How long a USB/IP client may stay silent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// Time for a new connection's request (`OP_REQ_DEVLIST`,
    /// `OP_REQ_IMPORT`): `usbip list` and `usbip attach` send it at once.
    pub handshake: Duration,
    /// Time an importing connection may send nothing while the fob owes it
    /// nothing (no IN transfer pending); then it is closed and the fob is
    /// free for the next import. While an IN transfer is pending the host
    /// is waiting on the fob, and only a dead peer ends the connection
    /// (TCP keepalive). `None`: never.
    pub idle: Option<Duration>,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            handshake: HANDSHAKE_TIMEOUT,
            idle: Some(IDLE_TIMEOUT),
        }
    }
}

/// The default [`Timeouts::handshake`].
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);

/// The default [`Timeouts::idle`].
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(300);

/// TCP keepalive of accepted connections: a host that vanishes (crash,
/// network gone) is noticed after about `IDLE + 3 × INTERVAL`, and its
/// import released, even while an IN transfer is pending.
const KEEPALIVE_IDLE: Duration = Duration::from_secs(60);
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(10);
const KEEPALIVE_PROBES: u32 = 3;

/// The bus id of fob `index` (0-based): `1-<index+1>`.
#[must_use]
pub fn bus_id(index: usize) -> String {
    format!("1-{}", index + 1)
}

/// One exported fob.
#[derive(Debug)]
struct Export {
    info: DeviceInfo,
    desc: Descriptors,
}

/// A fleet exported over USB/IP.
#[derive(Debug)]
pub struct UsbipServer {
    fleet: Arc<Fleet>,
    options: HidOptions,
    exports: Vec<Export>,
    imported: Mutex<HashSet<usize>>,
    timeouts: Timeouts,
}

/// Releases an imported device when its connection ends.
struct Imported<'a> {
    set: &'a Mutex<HashSet<usize>>,
    index: usize,
}

impl Drop for Imported<'_> {
    fn drop(&mut self) {
        lock(self.set).remove(&self.index);
    }
}

/// Read more bytes into `buf`; `Ok(false)` at end of stream.
async fn fill<T: AsyncRead + Unpin>(io: &mut T, buf: &mut Vec<u8>) -> io::Result<bool> {
    let mut chunk = [0u8; 16 * 1024];
    let n = io.read(&mut chunk).await?;
    buf.extend_from_slice(&chunk[..n]);
    Ok(n > 0)
}

impl UsbipServer {
    /// Export every fob of `fleet`.
    #[must_use]
    pub fn new(fleet: Arc<Fleet>, options: HidOptions) -> Self {
        let exports = fleet
            .devices()
            .iter()
            .enumerate()
            .map(|(i, d)| {
                let desc = Descriptors::new(
                    d.serial().as_str(),
                    &product_name(d.model()),
                    options.keyboard,
                );
                let mut interfaces = vec![InterfaceInfo {
                    class: 3,
                    subclass: 0,
                    protocol: 0,
                }];
                if options.keyboard {
                    interfaces.push(InterfaceInfo {
                        class: 3,
                        subclass: 1,
                        protocol: 1,
                    });
                }
                let busid = bus_id(i);
                Export {
                    info: DeviceInfo {
                        path: format!("/sys/devices/platform/fobsim/usb1/{busid}"),
                        busid,
                        busnum: 1,
                        devnum: u32::try_from(i + 2).unwrap_or(u32::MAX),
                        speed: SPEED_FULL,
                        vendor: VENDOR_ID,
                        product: PRODUCT_ID,
                        bcd_device: DEVICE_VERSION,
                        class: 0,
                        subclass: 0,
                        protocol: 0,
                        configuration_value: 1,
                        num_configurations: 1,
                        interfaces,
                    },
                    desc,
                }
            })
            .collect();
        UsbipServer {
            fleet,
            options,
            exports,
            imported: Mutex::new(HashSet::new()),
            timeouts: Timeouts::default(),
        }
    }

    /// The same server with other [`Timeouts`].
    #[must_use]
    pub fn with_timeouts(mut self, timeouts: Timeouts) -> Self {
        self.timeouts = timeouts;
        self
    }

    /// The exported devices, in fleet order.
    #[must_use]
    pub fn devices(&self) -> Vec<DeviceInfo> {
        self.exports.iter().map(|e| e.info.clone()).collect()
    }

    /// Serve one client: operations (`OP_REQ_DEVLIST`, `OP_REQ_IMPORT`),
    /// then, after an import, URBs until the client leaves. A device is
    /// imported by one connection at a time; it is free again when that
    /// connection ends.
    ///
    /// # Errors
    /// [`ConnectionError`] when the client breaks the protocol or the
    /// stream fails; the caller just drops the connection.
    pub async fn serve_connection<T>(&self, mut io: T) -> Result<(), ConnectionError>
    where
        T: AsyncRead + AsyncWrite + Unpin,
    {
        let mut buf = Vec::new();
        let deadline = tokio::time::Instant::now() + self.timeouts.handshake;
        let request = loop {
            if let Some((req, used)) = OpRequest::decode(&buf)? {
                buf.drain(..used);
                break req;
            }
            let more = tokio::time::timeout_at(deadline, fill(&mut io, &mut buf))
                .await
                .map_err(|_| ConnectionError::TimedOut(self.timeouts.handshake))?;
            if !more? {
                return if buf.is_empty() {
                    Ok(())
                } else {
                    Err(ConnectionError::Truncated(buf.len()))
                };
            }
        };
        match request {
            OpRequest::DevList => {
                io.write_all(&OpReply::DevList(self.devices()).emit())
                    .await?;
                io.flush().await?;
                Ok(())
            }
            OpRequest::Import { busid } => {
                let index = self.exports.iter().position(|e| e.info.busid == busid);
                let claimed = index.filter(|&i| lock(&self.imported).insert(i));
                let Some(index) = claimed else {
                    io.write_all(&OpReply::Import(None).emit()).await?;
                    io.flush().await?;
                    return Ok(());
                };
                let _guard = Imported {
                    set: &self.imported,
                    index,
                };
                let export = &self.exports[index];
                io.write_all(&OpReply::Import(Some(export.info.clone())).emit())
                    .await?;
                io.flush().await?;
                self.serve_urbs(io, buf, index).await
            }
        }
    }

    async fn serve_urbs<T>(
        &self,
        mut io: T,
        mut buf: Vec<u8>,
        index: usize,
    ) -> Result<(), ConnectionError>
    where
        T: AsyncRead + AsyncWrite + Unpin,
    {
        let export = &self.exports[index];
        let mut dev = UsbFob::new(export.desc.clone(), self.options);
        let fleet = &self.fleet;
        let mut exec = |cmd: &Command| fleet.reply(index, cmd);
        let mut out = Vec::new();
        loop {
            while let Some((cmd, used)) = Cmd::decode(&buf)? {
                buf.drain(..used);
                match cmd {
                    Cmd::Submit(s) => {
                        for r in dev.submit(s, &mut exec) {
                            out.extend(r.emit());
                        }
                    }
                    Cmd::Unlink(u) => out.extend(dev.unlink(u).emit()),
                }
            }
            if !out.is_empty() {
                io.write_all(&out).await?;
                io.flush().await?;
                out.clear();
            }
            let more = match self.timeouts.idle {
                // The fob owes the host nothing: an idle host may go.
                Some(idle) if dev.pending_urbs() == 0 => {
                    tokio::time::timeout(idle, fill(&mut io, &mut buf))
                        .await
                        .map_err(|_| ConnectionError::TimedOut(idle))?
                }
                _ => fill(&mut io, &mut buf).await,
            };
            if !more? {
                return if buf.is_empty() {
                    Ok(())
                } else {
                    Err(ConnectionError::Truncated(buf.len()))
                };
            }
        }
    }

    /// Accept TCP clients on `listener` forever, each served by its own
    /// task; a failing connection never stops the others.
    ///
    /// # Errors
    /// Only if accepting fails fatally (e.g. the listener is closed).
    pub async fn run(self: Arc<Self>, listener: TcpListener) -> io::Result<()> {
        loop {
            let (stream, _peer) = match listener.accept().await {
                Ok(s) => s,
                // Out of descriptors and the like: back off and go on.
                Err(e) if is_transient(&e) => {
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
                Err(e) => return Err(e),
            };
            let _ = stream.set_nodelay(true);
            let _ = keepalive(&stream);
            let me = Arc::clone(&self);
            tokio::spawn(async move {
                // A broken connection is the client's problem; it is dropped.
                let _ = me.serve_connection(stream).await;
            });
        }
    }
}

/// Probe a silent peer, so a host that vanished releases its import.
fn keepalive(stream: &tokio::net::TcpStream) -> io::Result<()> {
    use rustix::net::sockopt;
    sockopt::set_socket_keepalive(stream, true)?;
    sockopt::set_tcp_keepidle(stream, KEEPALIVE_IDLE)?;
    sockopt::set_tcp_keepintvl(stream, KEEPALIVE_INTERVAL)?;
    sockopt::set_tcp_keepcnt(stream, KEEPALIVE_PROBES)?;
    Ok(())
}

fn is_transient(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
    ) || e.raw_os_error().is_some_and(|n| n == 24 || n == 23)
}
