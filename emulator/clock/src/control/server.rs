//! Serving the control plane: over any `AsyncRead + AsyncWrite`, and on a
//! Unix socket.

use std::io;
use std::os::unix::fs::{FileTypeExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::net::UnixListener;

use super::{Fobs, Session};
use crate::TrueClock;

/// Serve one control connection until the client closes it.
///
/// # Errors
/// IO errors of the stream.
pub async fn serve<T>(mut io: T, clock: &TrueClock, fobs: &dyn Fobs) -> io::Result<()>
where
    T: AsyncRead + AsyncWrite + Unpin,
{
    let mut session = Session::new();
    let mut buf = [0u8; 4096];
    let mut out = Vec::new();
    loop {
        let n = io.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        session.feed(clock, fobs, &buf[..n], &mut out);
        if !out.is_empty() {
            io.write_all(&out).await?;
            io.flush().await?;
            out.clear();
        }
    }
}

/// A bound control socket. The socket file (mode 0600: whoever may move
/// the clock may fake any code's timing) is removed on drop.
#[derive(Debug)]
pub struct ControlSocket {
    listener: UnixListener,
    path: PathBuf,
}

impl ControlSocket {
    /// Bind `path`, replacing a stale socket file left by an earlier run
    /// (never any other kind of file). Must be called inside a tokio runtime.
    ///
    /// # Errors
    /// [`io::ErrorKind::AlreadyExists`] if `path` is something else than a
    /// socket, and bind errors.
    pub fn bind(path: &Path) -> io::Result<ControlSocket> {
        match std::fs::symlink_metadata(path) {
            Ok(m) if m.file_type().is_socket() => std::fs::remove_file(path)?,
            Ok(_) => {
                return Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    format!("{} exists and is not a socket", path.display()),
                ));
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        let listener = UnixListener::bind(path)?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
        Ok(ControlSocket {
            listener,
            path: path.to_path_buf(),
        })
    }

    /// The socket's path.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Accept and serve clients forever, each on its own task.
    pub async fn run(&self, clock: Arc<TrueClock>, fobs: Arc<dyn Fobs>) {
        loop {
            match self.listener.accept().await {
                Ok((stream, _)) => {
                    let clock = Arc::clone(&clock);
                    let fobs = Arc::clone(&fobs);
                    tokio::spawn(async move {
                        let _ = serve(stream, &clock, fobs.as_ref()).await;
                    });
                }
                // EMFILE and friends: back off instead of spinning.
                Err(_) => tokio::time::sleep(std::time::Duration::from_millis(50)).await,
            }
        }
    }
}

impl Drop for ControlSocket {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}
