//! One process at a time: what a long-running fobsim process owns while it
//! runs — its control socket, its serial link directory, its pid file — is
//! claimed, so that a second `fobsim serve` or `fobsim emulate` given the
//! same path refuses to start ("… is in use by PID N") instead of taking
//! the first one's place and deleting it on exit.
//!
//! The mechanism is a pid file held under an exclusive `flock(2)`
//! ([`Claim`]): the kernel drops the lock when its process ends, however it
//! ends, so a pid file nobody holds is stale and is taken over. A control
//! socket is also probed: a socket file somebody answers on is in use (by
//! the PID its peer credentials name) even without a pid file beside it;
//! one nobody answers on is stale and replaced.

use std::fs::File;
use std::io::{self, Read as _, Seek as _, Write as _};
use std::os::fd::{AsFd as _, OwnedFd};
use std::path::{Path, PathBuf};

use rustix::fs::{FlockOperation, Mode, OFlags};

/// Why a path cannot be claimed.
#[derive(Debug, thiserror::Error)]
pub enum ClaimError {
    /// A live process holds it.
    #[error("{what} {} is in use by {}", path.display(), holder(*pid))]
    InUse {
        /// What the path is (`control socket`, `link directory`, `pid file`).
        what: String,
        /// The path.
        path: PathBuf,
        /// The holder's PID, when it could be learnt.
        pid: Option<u32>,
    },
    /// Something else than what was expected is there (a regular file
    /// where a socket goes, a symlink for a pid file).
    #[error("{what} {}: {why}", path.display())]
    NotOurs {
        /// What the path is.
        what: String,
        /// The path.
        path: PathBuf,
        /// What is there instead.
        why: String,
    },
    /// A system call failed.
    #[error("{what} {}: {source}", path.display())]
    Io {
        /// What the path is.
        what: String,
        /// The path.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
}

fn holder(pid: Option<u32>) -> String {
    match pid {
        Some(p) => format!("PID {p}"),
        None => "another process".to_string(),
    }
}

impl From<ClaimError> for io::Error {
    fn from(e: ClaimError) -> Self {
        let kind = match &e {
            ClaimError::InUse { .. } => io::ErrorKind::AddrInUse,
            ClaimError::NotOurs { .. } => io::ErrorKind::AlreadyExists,
            ClaimError::Io { source, .. } => source.kind(),
        };
        io::Error::new(kind, e.to_string())
    }
}

/// A pid file held under an exclusive lock, with this process's PID in
/// it. Dropping it removes the file (if it is still the one we made) and
/// releases the lock.
#[derive(Debug)]
pub struct Claim {
    path: PathBuf,
    file: File,
    ino: (u64, u64),
}

fn identity(st: &rustix::fs::Stat) -> (u64, u64) {
    #[allow(clippy::useless_conversion)]
    (u64::from(st.st_dev), u64::from(st.st_ino))
}

impl Claim {
    /// Claim the pid file `path` for `what` (named in errors): create it
    /// (mode 0600; a symlink is refused), take its lock, write this
    /// process's PID. A pid file whose lock nobody holds is stale: it is
    /// taken over.
    ///
    /// # Errors
    /// [`ClaimError::InUse`] when a live process holds it (its PID as the
    /// file says), [`ClaimError::NotOurs`] when `path` is a symlink or not
    /// a regular file, [`ClaimError::Io`] otherwise.
    pub fn acquire(path: &Path, what: &str) -> Result<Claim, ClaimError> {
        let io_err = |source: io::Error| ClaimError::Io {
            what: what.to_string(),
            path: path.to_path_buf(),
            source,
        };
        let not_ours = |why: &str| ClaimError::NotOurs {
            what: what.to_string(),
            path: path.to_path_buf(),
            why: why.to_string(),
        };
        // A few rounds at most: each retry means an owner just left.
        for _ in 0..16 {
            let fd: OwnedFd = match rustix::fs::open(
                path,
                OFlags::RDWR | OFlags::CREATE | OFlags::CLOEXEC | OFlags::NOFOLLOW,
                Mode::from_raw_mode(0o600),
            ) {
                Ok(fd) => fd,
                Err(rustix::io::Errno::LOOP) => return Err(not_ours("is a symlink")),
                Err(e) => return Err(io_err(e.into())),
            };
            let st = rustix::fs::fstat(&fd).map_err(|e| io_err(e.into()))?;
            if rustix::fs::FileType::from_raw_mode(st.st_mode) != rustix::fs::FileType::RegularFile
            {
                return Err(not_ours("is not a regular file"));
            }
            let mut file = File::from(fd);
            match rustix::fs::flock(file.as_fd(), FlockOperation::NonBlockingLockExclusive) {
                Ok(()) => {}
                Err(rustix::io::Errno::WOULDBLOCK) => {
                    let mut text = String::new();
                    let _ = file.read_to_string(&mut text);
                    return Err(ClaimError::InUse {
                        what: what.to_string(),
                        path: path.to_path_buf(),
                        pid: text.trim().parse().ok(),
                    });
                }
                Err(e) => return Err(io_err(e.into())),
            }
            // The owner before us may have removed the file between our
            // open and our lock: then the lock is on a file nobody sees.
            match rustix::fs::lstat(path) {
                Ok(now) if identity(&now) == identity(&st) => {}
                Ok(_) | Err(rustix::io::Errno::NOENT) => continue,
                Err(e) => return Err(io_err(e.into())),
            }
            file.set_len(0).map_err(io_err)?;
            file.rewind().map_err(io_err)?;
            writeln!(file, "{}", std::process::id()).map_err(io_err)?;
            file.flush().map_err(io_err)?;
            return Ok(Claim {
                path: path.to_path_buf(),
                file,
                ino: identity(&st),
            });
        }
        Err(io_err(io::Error::other(
            "the pid file keeps changing: another process is starting and stopping",
        )))
    }

    /// The pid file.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        // Remove it while we still hold the lock, and only if it is ours.
        if rustix::fs::lstat(&self.path).is_ok_and(|st| identity(&st) == self.ino) {
            let _ = std::fs::remove_file(&self.path);
        }
        let _ = &self.file;
    }
}

/// `path` with `suffix` appended (`clock.sock` → `clock.sock.pid`).
#[must_use]
pub fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_os_string();
    s.push(suffix);
    PathBuf::from(s)
}

/// Whether somebody answers on the Unix socket at `path`: `Some(pid)`
/// (the PID when the peer credentials say it) if a connection is taken,
/// `None` if nobody listens (a stale socket file).
///
/// # Errors
/// System call failures other than "nobody listens".
pub fn probe_socket(path: &Path) -> io::Result<Option<Option<u32>>> {
    use rustix::net::{AddressFamily, SocketAddrUnix, SocketFlags, SocketType};
    let sock = rustix::net::socket_with(
        AddressFamily::UNIX,
        SocketType::STREAM,
        SocketFlags::CLOEXEC | SocketFlags::NONBLOCK,
        None,
    )?;
    let addr = SocketAddrUnix::new(path)?;
    match rustix::net::connect(&sock, &addr) {
        Ok(()) => {
            let pid = rustix::net::sockopt::socket_peercred(&sock)
                .ok()
                .and_then(|c| u32::try_from(c.pid.as_raw_nonzero().get()).ok());
            Ok(Some(pid))
        }
        // Listening, with a full backlog: alive, PID unknown.
        Err(rustix::io::Errno::AGAIN | rustix::io::Errno::INPROGRESS) => Ok(Some(None)),
        Err(rustix::io::Errno::CONNREFUSED | rustix::io::Errno::NOENT) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_held_pid_file_is_refused_with_its_pid_and_a_released_one_is_taken_over() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.pid");
        let a = Claim::acquire(&path, "pid file").unwrap();
        let me = std::process::id();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), format!("{me}\n"));
        let e = Claim::acquire(&path, "pid file").unwrap_err();
        assert!(
            matches!(&e, ClaimError::InUse { pid: Some(p), .. } if *p == me),
            "{e}"
        );
        assert_eq!(
            e.to_string(),
            format!("pid file {} is in use by PID {me}", path.display())
        );
        drop(a);
        assert!(!path.exists(), "removed on drop");
        // A stale file (its process died: nobody holds the lock).
        std::fs::write(&path, "999999999\n").unwrap();
        let b = Claim::acquire(&path, "pid file").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), format!("{me}\n"));
        drop(b);
    }

    #[test]
    fn symlinks_and_directories_are_not_pid_files() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("target");
        std::fs::write(&target, "keep").unwrap();
        let link = dir.path().join("link.pid");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let e = Claim::acquire(&link, "pid file").unwrap_err();
        assert!(matches!(e, ClaimError::NotOurs { .. }), "{e}");
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep");
        let e = Claim::acquire(dir.path(), "pid file").unwrap_err();
        assert!(!matches!(e, ClaimError::InUse { .. }), "{e}");
    }

    #[test]
    fn a_socket_somebody_answers_on_is_alive_and_names_its_pid() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sock");
        assert_eq!(probe_socket(&path).unwrap(), None);
        let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
        assert_eq!(probe_socket(&path).unwrap(), Some(Some(std::process::id())));
        drop(listener);
        // The file stays; nobody answers: stale.
        assert!(path.exists());
        assert_eq!(probe_socket(&path).unwrap(), None);
    }
}
