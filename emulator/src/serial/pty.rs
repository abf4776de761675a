//! A pseudo-terminal that clients come to and go from.
//!
//! The server owns the master side; clients open the slave path
//! (`/dev/pts/N`, or the stable symlink). Linux makes the master report
//! hang-up (read → `EIO`, poll → `POLLHUP`) whenever *no* slave fd is open,
//! which would spin an event loop between clients. So:
//!
//! - **Idle**: the server holds a slave fd of its own, in raw mode. The
//!   master never hangs up; we wait for the first bytes a client writes.
//! - **Connected** ([`Pty::accept`] returned): the server closes its slave
//!   fd as soon as a client has written, so when that client closes, the
//!   master sees `EIO` — the connection's end of stream. The session (and any
//!   half line) is dropped, the server reopens its slave fd, puts it back in
//!   raw mode and flushes replies nobody read, and is idle again.
//!
//! Clients that open the port but never write change nothing. Two clients
//! talking at once share one stream (exclusive access is the client's
//! choice: `TIOCEXCL`, as the serialport crate sets it).

use std::ffi::OsString;
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStringExt as _;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use rustix::pty::OpenptFlags;
use rustix::termios::{OptionalActions, QueueSelector};
use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The master side of one pseudo-terminal, served one client at a time.
#[derive(Debug)]
pub struct Pty {
    master: Option<AsyncFd<OwnedFd>>,
    path: PathBuf,
    idle_slave: Option<OwnedFd>,
}

fn closed() -> io::Error {
    io::Error::new(io::ErrorKind::NotConnected, "pty master is closed")
}

/// Open our own slave fd: raw mode, and no stale input left for the next
/// client.
fn open_slave(master: &OwnedFd, path: &Path) -> io::Result<OwnedFd> {
    let flags = OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC;
    let fd = match rustix::pty::ioctl_tiocgptpeer(master, flags) {
        Ok(fd) => fd,
        // Kernels before 4.13 lack TIOCGPTPEER: open by path.
        Err(_) => rustix::fs::open(
            path,
            rustix::fs::OFlags::RDWR | rustix::fs::OFlags::NOCTTY | rustix::fs::OFlags::CLOEXEC,
            rustix::fs::Mode::empty(),
        )?,
    };
    let mut t = rustix::termios::tcgetattr(&fd)?;
    t.make_raw();
    rustix::termios::tcsetattr(&fd, OptionalActions::Now, &t)?;
    rustix::termios::tcflush(&fd, QueueSelector::IFlush)?;
    Ok(fd)
}

/// Register a master fd with the tokio reactor.
fn register(fd: OwnedFd) -> io::Result<AsyncFd<OwnedFd>> {
    // SAFETY: an `OwnedFd` is a valid open descriptor that stays open and
    // returns the same raw fd for as long as the `AsyncFd` owns it.
    unsafe { AsyncFd::register(fd) }.map_err(io::Error::from)
}

impl Pty {
    /// Open a new pseudo-terminal (from `/dev/ptmx`), idle. Must be called
    /// inside a tokio runtime.
    ///
    /// # Errors
    /// The system calls' errors (for instance `EMFILE`: see
    /// [`crate::raise_fd_limit`]).
    pub fn open() -> io::Result<Pty> {
        let master =
            rustix::pty::openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC)?;
        rustix::pty::grantpt(&master)?;
        rustix::pty::unlockpt(&master)?;
        let name = rustix::pty::ptsname(&master, Vec::new())?;
        let path = PathBuf::from(OsString::from_vec(name.into_bytes()));
        rustix::io::ioctl_fionbio(&master, true)?;
        let slave = open_slave(&master, &path)?;
        Ok(Pty {
            master: Some(register(master)?),
            path,
            idle_slave: Some(slave),
        })
    }

    /// The slave's path, e.g. `/dev/pts/7`.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Wait for a client to write, and return the connection to it. The
    /// connection ends (reads return 0) when the last client closes the
    /// slave.
    ///
    /// # Errors
    /// System call errors; reopening our slave fd may fail while a crashed
    /// client left the port exclusive (`EBUSY`): retry later.
    pub async fn accept(&mut self) -> io::Result<PtyConnection<'_>> {
        if self.idle_slave.is_none() {
            // Back from a connection. tokio keeps a hang-up as a final
            // readiness state, so the master is registered afresh once our
            // slave fd is open again.
            let master = self.master.take().ok_or_else(closed)?.into_inner();
            let slave = open_slave(&master, &self.path);
            self.master = Some(register(master)?);
            self.idle_slave = Some(slave?);
        }
        let master = self.master.as_ref().ok_or_else(closed)?;
        loop {
            let mut guard = master.readable().await?;
            if rustix::io::ioctl_fionread(master.get_ref())? > 0 {
                break;
            }
            guard.clear_ready();
        }
        // The client now holds the only slave fd: its close is our EOF.
        self.idle_slave = None;
        Ok(PtyConnection { pty: self })
    }
}

/// One client's conversation on a [`Pty`]: `AsyncRead + AsyncWrite` over the
/// master. Reads return 0 once the client closed the slave; writes then
/// fail with `BrokenPipe`.
#[derive(Debug)]
pub struct PtyConnection<'a> {
    pty: &'a mut Pty,
}

fn is_hangup(e: &io::Error) -> bool {
    e.raw_os_error() == Some(rustix::io::Errno::IO.raw_os_error())
}

impl AsyncRead for PtyConnection<'_> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let Some(master) = self.pty.master.as_ref() else {
            return Poll::Ready(Ok(()));
        };
        loop {
            let mut guard = ready!(master.poll_read_ready(cx))?;
            let unfilled = buf.initialize_unfilled();
            match guard.try_io(|fd| {
                rustix::io::read(fd.get_ref(), &mut *unfilled).map_err(io::Error::from)
            }) {
                Ok(Ok(n)) => {
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                Ok(Err(e)) if is_hangup(&e) => return Poll::Ready(Ok(())),
                Ok(Err(e)) => return Poll::Ready(Err(e)),
                Err(_would_block) => {}
            }
        }
    }
}

impl AsyncWrite for PtyConnection<'_> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let Some(master) = self.pty.master.as_ref() else {
            return Poll::Ready(Err(closed()));
        };
        loop {
            let mut guard = ready!(master.poll_write_ready(cx))?;
            match guard.try_io(|fd| rustix::io::write(fd.get_ref(), data).map_err(io::Error::from))
            {
                Ok(Ok(n)) => return Poll::Ready(Ok(n)),
                Ok(Err(e)) if is_hangup(&e) => {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::BrokenPipe,
                        "the client closed the port",
                    )));
                }
                Ok(Err(e)) => return Poll::Ready(Err(e)),
                Err(_would_block) => {}
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
