//! The host side: a blocking client over the `serialport` crate.
//!
//! Exclusive access: by default the port is opened as the serialport crate
//! does — `TIOCEXCL` plus an exclusive `flock`. While one client holds it, a
//! second [`SerialClient::open`] fails with [`ClientError::Busy`] (from the
//! flock even for root, whom the kernel lets past `TIOCEXCL`), and other
//! programs (picocom, socat) get `EBUSY` unless they run as root.
//! [`SerialClient::open_shared`] takes a shared flock instead and lets
//! several clients in (their conversations then interleave: one at a time
//! is the protocol's assumption). The exclusive flag is dropped on close.

use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use fobsim_firmware::Display;
use serialport::{ClearBuffer, SerialPort as _, TTYPort};

use crate::command::{Command, InfoReply, MalformedReply, Response, parse_display};

/// Longest reply line read.
const MAX_REPLY: usize = 1024;

/// Why talking to a fob failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Another client holds the port exclusively.
    #[error("{path}: busy: another client holds the port (TIOCEXCL/flock)")]
    Busy {
        /// The port.
        path: PathBuf,
    },
    /// The port could not be opened.
    #[error("{path}: {source}")]
    Open {
        /// The port.
        path: PathBuf,
        /// What serialport said.
        source: serialport::Error,
    },
    /// Reading or writing failed.
    #[error("serial IO: {0}")]
    Io(#[from] std::io::Error),
    /// No complete reply within the timeout.
    #[error("no reply within {0:?}")]
    Timeout(Duration),
    /// The port closed.
    #[error("the port closed before a reply came")]
    Closed,
    /// The fob answered `ERR`.
    #[error("the fob refused: ERR {code} {message}")]
    Refused {
        /// Error number.
        code: u16,
        /// Error text.
        message: String,
    },
    /// The reply was not understood.
    #[error(transparent)]
    Malformed(#[from] MalformedReply),
}

/// A connection to one fob's serial port.
#[derive(Debug)]
pub struct SerialClient {
    port: TTYPort,
    timeout: Duration,
    buf: Vec<u8>,
}

impl SerialClient {
    /// Open `path` exclusively (see the module documentation); replies must
    /// come within `timeout`.
    ///
    /// # Errors
    /// [`ClientError::Busy`] if another client holds it, [`ClientError::Open`]
    /// otherwise.
    pub fn open(path: &Path, timeout: Duration) -> Result<Self, ClientError> {
        Self::open_with(path, timeout, true)
    }

    /// Open `path` sharing it with other shared openers.
    ///
    /// # Errors
    /// As [`SerialClient::open`].
    pub fn open_shared(path: &Path, timeout: Duration) -> Result<Self, ClientError> {
        Self::open_with(path, timeout, false)
    }

    fn open_with(path: &Path, timeout: Duration, exclusive: bool) -> Result<Self, ClientError> {
        let mut builder = serialport::new(path.to_string_lossy(), 115_200).timeout(timeout);
        if !exclusive {
            builder = builder.exclusive(false);
        }
        let port = builder.open_native().map_err(|source| {
            if source.kind() == serialport::ErrorKind::NoDevice {
                ClientError::Busy {
                    path: path.to_path_buf(),
                }
            } else {
                ClientError::Open {
                    path: path.to_path_buf(),
                    source,
                }
            }
        })?;
        // Nothing read before our first request is ours.
        let _ = port.clear(ClearBuffer::Input);
        let mut me = SerialClient {
            port,
            timeout,
            buf: Vec::with_capacity(64),
        };
        me.sync()?;
        Ok(me)
    }

    /// Resynchronise: end any half line a previous client left (CRLF), send
    /// `PING <fresh token>` and skip every line up to its `OK PONG <token>`
    /// (stale replies, the `ERR` for the half line). Done on open; needed
    /// only when a previous client may have left within microseconds of
    /// this one arriving, before the emulator saw it go.
    ///
    /// # Errors
    /// IO errors, [`ClientError::Timeout`], or [`ClientError::Malformed`] if
    /// no pong comes among 64 lines.
    pub fn sync(&mut self) -> Result<(), ClientError> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let token = format!(
            "sync-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        self.write_raw(format!("\r\nPING {token}\r\n").as_bytes())?;
        let want = format!("OK PONG {token}");
        for _ in 0..64 {
            if self.read_line()? == want {
                return Ok(());
            }
        }
        Err(MalformedReply(format!("no {want:?} among 64 lines")).into())
    }

    /// Send one raw line and read one reply line.
    ///
    /// # Errors
    /// IO errors, [`ClientError::Timeout`], [`ClientError::Closed`],
    /// [`ClientError::Malformed`].
    pub fn request_line(&mut self, line: &str) -> Result<Response, ClientError> {
        let mut msg = Vec::with_capacity(line.len() + 2);
        msg.extend_from_slice(line.as_bytes());
        msg.extend_from_slice(b"\r\n");
        self.port.write_all(&msg)?;
        self.port.flush()?;
        loop {
            let reply = self.read_line()?;
            if !reply.is_empty() {
                return Ok(Response::parse(&reply)?);
            }
        }
    }

    /// Write raw bytes (no terminator added): for tests of garbage and
    /// half lines.
    ///
    /// # Errors
    /// IO errors.
    pub fn write_raw(&mut self, bytes: &[u8]) -> Result<(), ClientError> {
        self.port.write_all(bytes)?;
        self.port.flush()?;
        Ok(())
    }

    /// Read one reply line (terminator stripped; may be empty).
    ///
    /// # Errors
    /// IO errors, [`ClientError::Timeout`], [`ClientError::Closed`], or
    /// [`ClientError::Malformed`] for a line longer than 1 KiB.
    pub fn read_line(&mut self) -> Result<String, ClientError> {
        loop {
            if let Some(pos) = self.buf.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=pos).collect();
                let text = String::from_utf8_lossy(&line);
                return Ok(text.trim_end_matches(['\r', '\n']).to_string());
            }
            if self.buf.len() > MAX_REPLY {
                let text = String::from_utf8_lossy(&self.buf).into_owned();
                self.buf.clear();
                return Err(MalformedReply(text.chars().take(80).collect()).into());
            }
            let mut chunk = [0u8; 256];
            match self.port.read(&mut chunk) {
                Ok(0) => return Err(ClientError::Closed),
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {
                    return Err(ClientError::Timeout(self.timeout));
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Send a command; the text after `OK` on success.
    ///
    /// # Errors
    /// [`ClientError::Refused`] for an `ERR` reply, and those of
    /// [`SerialClient::request_line`].
    pub fn request(&mut self, cmd: &Command) -> Result<String, ClientError> {
        match self.request_line(&cmd.to_line())? {
            Response::Ok(rest) => Ok(rest),
            Response::Err { code, message } => Err(ClientError::Refused { code, message }),
        }
    }

    /// `INFO`.
    ///
    /// # Errors
    /// As [`SerialClient::request`].
    pub fn info(&mut self) -> Result<InfoReply, ClientError> {
        Ok(InfoReply::parse(&self.request(&Command::Info)?)?)
    }

    /// `PRESS`: the code now displayed.
    ///
    /// # Errors
    /// As [`SerialClient::request`].
    pub fn press(&mut self) -> Result<Display, ClientError> {
        Ok(parse_display(&self.request(&Command::Press)?)?)
    }

    /// `DISPLAY`: what the display shows.
    ///
    /// # Errors
    /// As [`SerialClient::request`].
    pub fn display(&mut self) -> Result<Display, ClientError> {
        Ok(parse_display(&self.request(&Command::Display)?)?)
    }
}
