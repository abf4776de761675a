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
use crate::claim::{self, Claim, ClaimError};

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
/// the clock may fake any code's timing) is claimed for this process by
/// the pid file `SOCKET.pid` ([`crate::claim`]), and both are removed on
/// drop.
#[derive(Debug)]
pub struct ControlSocket {
    listener: UnixListener,
    path: PathBuf,
    /// The socket file we bound (device, inode): removed on drop only if
    /// it is still ours.
    ino: Option<(u64, u64)>,
    _claim: Claim,
}

fn identity(m: &std::fs::Metadata) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt as _;
    (m.dev(), m.ino())
}

impl ControlSocket {
    /// Bind `path`. A socket some live process holds (its pid file
    /// `SOCKET.pid` is locked, or somebody answers on it) is refused
    /// ("control socket … is in use by PID N"); a stale socket file left by
    /// an earlier run (nobody answers) is replaced; any other kind of file
    /// is never touched. Must be called inside a tokio runtime.
    ///
    /// # Errors
    /// [`io::ErrorKind::AddrInUse`] when the socket is in use,
    /// [`io::ErrorKind::AlreadyExists`] if `path` is something else than a
    /// socket, and bind errors.
    pub fn bind(path: &Path) -> io::Result<ControlSocket> {
        const WHAT: &str = "control socket";
        let claim = Claim::acquire(&claim::with_suffix(path, ".pid"), WHAT).map_err(|e| {
            // Name the socket, not its pid file.
            match e {
                ClaimError::InUse { pid, .. } => ClaimError::InUse {
                    what: WHAT.to_string(),
                    path: path.to_path_buf(),
                    pid,
                },
                e => e,
            }
        })?;
        match std::fs::symlink_metadata(path) {
            Ok(m) if m.file_type().is_socket() => match claim::probe_socket(path)? {
                Some(pid) => {
                    return Err(ClaimError::InUse {
                        what: WHAT.to_string(),
                        path: path.to_path_buf(),
                        pid,
                    }
                    .into());
                }
                None => std::fs::remove_file(path)?,
            },
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
        let ino = std::fs::symlink_metadata(path).ok().map(|m| identity(&m));
        Ok(ControlSocket {
            listener,
            path: path.to_path_buf(),
            ino,
            _claim: claim,
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
        // Before the claim goes: nobody else can have bound it meanwhile,
        // but a user may have moved another file into its place.
        if std::fs::symlink_metadata(&self.path).is_ok_and(|m| Some(identity(&m)) == self.ino) {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_live_socket_is_refused_and_a_stale_one_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("clock.sock");
        let pid_file = dir.path().join("clock.sock.pid");
        let me = std::process::id();

        let first = ControlSocket::bind(&path).unwrap();
        assert_eq!(
            std::fs::read_to_string(&pid_file).unwrap(),
            format!("{me}\n")
        );
        let e = ControlSocket::bind(&path).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AddrInUse);
        assert_eq!(
            e.to_string(),
            format!("control socket {} is in use by PID {me}", path.display())
        );
        assert!(path.exists(), "the first one's socket is left alone");
        drop(first);
        assert!(!path.exists() && !pid_file.exists(), "both removed on drop");

        // Stale: a socket file nobody answers on, and a pid file nobody holds.
        drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
        std::fs::write(&pid_file, "999999999\n").unwrap();
        let again = ControlSocket::bind(&path).unwrap();
        assert!(claim::probe_socket(&path).unwrap().is_some());
        drop(again);

        // Live without a pid file (another program, an older fobsim):
        // refused with the PID its peer credentials name.
        let other = std::os::unix::net::UnixListener::bind(&path).unwrap();
        let e = ControlSocket::bind(&path).unwrap_err();
        assert!(
            e.to_string().ends_with(&format!("in use by PID {me}")),
            "{e}"
        );
        assert!(path.exists() && !pid_file.exists());
        drop(other);

        // Not a socket: never touched.
        std::fs::remove_file(&path).unwrap();
        std::fs::write(&path, "keep").unwrap();
        let e = ControlSocket::bind(&path).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "keep");
    }
}
