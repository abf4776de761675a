//! A blocking control-plane client (behind `fobsim clock`).

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{ControlError, MAX_REQUEST, Request, Response};

/// Why a control request failed.
#[derive(Debug, thiserror::Error)]
pub enum ControlClientError {
    /// The socket could not be reached.
    #[error(
        "cannot connect to {path}: {source} (is `fobsim emulate --clock manual --control {path}` running?)"
    )]
    Connect {
        /// The socket.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Reading or writing failed.
    #[error("control socket IO: {0}")]
    Io(#[from] std::io::Error),
    /// The emulator closed the connection.
    #[error("the emulator closed the control connection")]
    Closed,
    /// The reply was not a control response.
    #[error("malformed control response: {0}")]
    Malformed(String),
    /// The emulator refused the request.
    #[error("refused: {0}")]
    Refused(ControlError),
}

/// A connection to an emulator's control socket.
#[derive(Debug)]
pub struct ControlClient {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

impl ControlClient {
    /// Connect; every answer must come within `timeout`.
    ///
    /// # Errors
    /// [`ControlClientError::Connect`].
    pub fn connect(path: &Path, timeout: Duration) -> Result<Self, ControlClientError> {
        let connect = || -> std::io::Result<(UnixStream, UnixStream)> {
            let s = UnixStream::connect(path)?;
            s.set_read_timeout(Some(timeout))?;
            s.set_write_timeout(Some(timeout))?;
            Ok((s.try_clone()?, s))
        };
        let (r, writer) = connect().map_err(|source| ControlClientError::Connect {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(ControlClient {
            reader: BufReader::new(r),
            writer,
        })
    }

    /// Send a request and read its response (`ok: false` included).
    ///
    /// # Errors
    /// IO errors, [`ControlClientError::Closed`], [`ControlClientError::Malformed`].
    pub fn send(&mut self, req: &Request) -> Result<Response, ControlClientError> {
        self.writer.write_all(&req.to_line())?;
        self.writer.flush()?;
        let mut line = Vec::new();
        let n = std::io::Read::by_ref(&mut self.reader)
            .take(MAX_REQUEST as u64 * 16)
            .read_until(b'\n', &mut line)?;
        if n == 0 {
            return Err(ControlClientError::Closed);
        }
        Response::parse(&line).map_err(|e| ControlClientError::Malformed(e.to_string()))
    }

    /// Send a request; a refusal is an error.
    ///
    /// # Errors
    /// As [`ControlClient::send`], and [`ControlClientError::Refused`].
    pub fn request(&mut self, req: &Request) -> Result<Response, ControlClientError> {
        let r = self.send(req)?;
        match (&r.ok, &r.error) {
            (true, _) => Ok(r),
            (false, Some(e)) => Err(ControlClientError::Refused(e.clone())),
            (false, None) => Err(ControlClientError::Malformed(
                "ok=false without error".into(),
            )),
        }
    }
}
