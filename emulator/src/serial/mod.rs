//! The serial transport: one pseudo-terminal per fob, a line protocol.
//!
//! Layers, bottom up:
//! - [`line`](mod@line): framing (CR/LF/CRLF, bounded lines), sans-IO;
//! - [`session`]: framing + commands for one conversation, sans-IO;
//! - [`server::serve`]: a session over any `AsyncRead + AsyncWrite`;
//! - [`pty`]: the pseudo-terminal, clients coming and going;
//! - [`SerialFleet`]: a [`Fleet`] on ptys, with stable symlinks;
//! - [`client`]: the host side, over the `serialport` crate;
//! - [`driver`]: fobs on ptys driven from blocking code, call for call like
//!   an in-process fob (for the harness's serial transport).

pub mod client;
pub mod driver;
pub mod line;
pub mod pty;
pub mod server;
pub mod session;

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::task::JoinHandle;

pub use crate::command::{Command, ErrorCode, PROTOCOL_VERSION, Reply};
pub use line::MAX_LINE;

use crate::fleet::Fleet;
use fobsim_clock::claim::{Claim, ClaimError};

/// Where one fob of a [`SerialFleet`] can be reached.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Port {
    /// The fob's serial number.
    pub serial: String,
    /// Its model.
    pub model: String,
    /// The pty slave, e.g. `/dev/pts/7` (changes every run).
    pub path: PathBuf,
    /// The stable symlink to it, if a link directory was given.
    pub link: Option<PathBuf>,
}

/// The file name of a fob's symlink: the serial, with `/` (allowed in
/// serials such as ARNs) written `%2F`. Injective: serials never hold `%`.
#[must_use]
pub fn link_name(serial: &str) -> String {
    serial.replace('/', "%2F")
}

/// A symlink we made, removed on drop if it still points where we made it
/// point.
#[derive(Debug)]
struct Link {
    path: PathBuf,
    target: PathBuf,
}

impl Link {
    fn create(dir: &Path, serial: &str, target: &Path) -> io::Result<Link> {
        let path = dir.join(link_name(serial));
        match std::fs::symlink_metadata(&path) {
            // A stale link from an earlier run is replaced; anything else is not ours.
            Ok(m) if m.file_type().is_symlink() => std::fs::remove_file(&path)?,
            Ok(_) => {
                return Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    format!("{} exists and is not a symlink", path.display()),
                ));
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        std::os::unix::fs::symlink(target, &path)?;
        Ok(Link {
            path,
            target: target.to_path_buf(),
        })
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        if std::fs::read_link(&self.path).is_ok_and(|t| t == self.target) {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// A [`Fleet`] served on pseudo-terminals, one per fob, each by its own
/// task. Dropping it (or [`SerialFleet::shutdown`]) stops the tasks, closes
/// the ptys and removes the symlinks.
#[derive(Debug)]
pub struct SerialFleet {
    ports: Vec<Port>,
    tasks: Vec<JoinHandle<()>>,
    links: Vec<Link>,
    ended: Vec<Arc<AtomicU64>>,
    /// The link directory's claim (released after the links are gone).
    claim: Option<Claim>,
}

/// The pid file that claims a link directory for one process.
pub const LINK_DIR_PID_FILE: &str = ".fobsim.pid";

/// Claim `dir` for this process (its pid file [`LINK_DIR_PID_FILE`]).
fn claim_link_dir(dir: &Path) -> io::Result<Claim> {
    const WHAT: &str = "link directory";
    Claim::acquire(&dir.join(LINK_DIR_PID_FILE), WHAT).map_err(|e| match e {
        ClaimError::InUse { pid, .. } => ClaimError::InUse {
            what: WHAT.to_string(),
            path: dir.to_path_buf(),
            pid,
        }
        .into(),
        e => e.into(),
    })
}

/// Serve fob `index` of `fleet` on `pty` until the task is aborted.
async fn run_port(mut pty: pty::Pty, fleet: Arc<Fleet>, index: usize, ended: Arc<AtomicU64>) {
    let mut exec = |cmd: &Command| fleet.reply(index, cmd);
    loop {
        match pty.accept().await {
            // An IO error ends one client's connection, never the port.
            Ok(conn) => {
                drop(server::serve(conn, &mut exec).await);
                ended.fetch_add(1, Ordering::Release);
            }
            // Reopening our slave end failed (e.g. a crashed client left the
            // port exclusive): try again shortly.
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

impl SerialFleet {
    /// Open one pty per fob and serve it; with `link_dir`, make a symlink
    /// `link_dir/<serial>` to each (the directory is created if missing).
    /// The directory is claimed for this process (the pid file
    /// [`LINK_DIR_PID_FILE`] in it): one that another live process serves
    /// is refused ("link directory … is in use by PID N"); stale links of
    /// an earlier run are replaced. Must be called inside a multi-threaded
    /// or current-thread tokio runtime.
    ///
    /// # Errors
    /// [`io::ErrorKind::AddrInUse`] for a link directory in use; IO errors
    /// opening ptys (`EMFILE`: raise the limit with
    /// [`crate::raise_fd_limit`]) or making links. Nothing is left behind.
    pub fn start(fleet: Arc<Fleet>, link_dir: Option<&Path>) -> io::Result<SerialFleet> {
        let claim = match link_dir {
            Some(dir) => {
                std::fs::create_dir_all(dir)?;
                Some(claim_link_dir(dir)?)
            }
            None => None,
        };
        let mut me = SerialFleet {
            ports: Vec::with_capacity(fleet.len()),
            tasks: Vec::with_capacity(fleet.len()),
            links: Vec::new(),
            ended: Vec::with_capacity(fleet.len()),
            claim,
        };
        for (index, dev) in fleet.devices().iter().enumerate() {
            let pty = pty::Pty::open()?;
            let path = pty.path().to_path_buf();
            let link = match link_dir {
                Some(dir) => {
                    let l = Link::create(dir, dev.serial().as_str(), &path)?;
                    let p = l.path.clone();
                    me.links.push(l);
                    Some(p)
                }
                None => None,
            };
            me.ports.push(Port {
                serial: dev.serial().to_string(),
                model: dev.model().to_string(),
                path,
                link,
            });
            let ended = Arc::new(AtomicU64::new(0));
            me.ended.push(Arc::clone(&ended));
            me.tasks.push(tokio::spawn(run_port(
                pty,
                Arc::clone(&fleet),
                index,
                ended,
            )));
        }
        Ok(me)
    }

    /// Where each fob is, in fleet order.
    #[must_use]
    pub fn ports(&self) -> &[Port] {
        &self.ports
    }

    /// How many client connections to fob `index` have ended (the server
    /// saw the last client close the port and dropped its session).
    #[must_use]
    pub fn connections_ended(&self, index: usize) -> Option<u64> {
        self.ended.get(index).map(|e| e.load(Ordering::Acquire))
    }

    /// Stop serving, close the ptys and remove the symlinks.
    pub async fn shutdown(mut self) {
        for t in &self.tasks {
            t.abort();
        }
        for t in self.tasks.drain(..) {
            let _ = t.await;
        }
        self.links.clear();
        self.claim = None;
    }
}

impl Drop for SerialFleet {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_link_directory_in_use_is_refused_and_a_stale_one_taken_over() {
        let dir = tempfile::tempdir().unwrap();
        let links = dir.path().join("fobs");
        let spec = crate::FleetSpec::uniform("gaht", 1, 0).unwrap();
        let fleet = Arc::new(Fleet::new(&spec, fobsim_clock::TrueClock::System, false).unwrap());
        let first = SerialFleet::start(Arc::clone(&fleet), Some(&links)).unwrap();
        let link = first.ports()[0].link.clone().unwrap();
        let target = std::fs::read_link(&link).unwrap();
        let e = SerialFleet::start(Arc::clone(&fleet), Some(&links)).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AddrInUse);
        assert_eq!(
            e.to_string(),
            format!(
                "link directory {} is in use by PID {}",
                links.display(),
                std::process::id()
            )
        );
        assert_eq!(std::fs::read_link(&link).unwrap(), target, "left alone");
        first.shutdown().await;
        assert!(!link.exists() && !links.join(LINK_DIR_PID_FILE).exists());
        // Stale: a link and a pid file of a process that is gone.
        std::os::unix::fs::symlink("/dev/pts/nonexistent", &link).unwrap();
        std::fs::write(links.join(LINK_DIR_PID_FILE), "999999999\n").unwrap();
        let second = SerialFleet::start(fleet, Some(&links)).unwrap();
        assert_eq!(std::fs::read_link(&link).unwrap(), second.ports()[0].path);
        second.shutdown().await;
    }

    #[test]
    fn link_names_are_file_names() {
        assert_eq!(link_name("GAHT00000001"), "GAHT00000001");
        assert_eq!(
            link_name("arn:aws:iam::123456789012:mfa/alice"),
            "arn:aws:iam::123456789012:mfa%2Falice"
        );
    }

    #[test]
    fn links_replace_stale_links_only_and_clean_up_after_themselves() {
        let dir = tempfile::tempdir().unwrap();
        let stale = dir.path().join("GAHT00000001");
        std::os::unix::fs::symlink("/dev/pts/nonexistent", &stale).unwrap();
        let link = Link::create(dir.path(), "GAHT00000001", Path::new("/dev/pts/7")).unwrap();
        assert_eq!(std::fs::read_link(&stale).unwrap(), Path::new("/dev/pts/7"));
        drop(link);
        assert!(
            std::fs::symlink_metadata(&stale).is_err(),
            "removed on drop"
        );

        // Not ours: a regular file is never replaced.
        let file = dir.path().join("GAHT00000002");
        std::fs::write(&file, "keep").unwrap();
        let err = Link::create(dir.path(), "GAHT00000002", Path::new("/dev/pts/8")).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "keep");

        // Re-pointed by someone else meanwhile: left alone on drop.
        let link = Link::create(dir.path(), "GAHT00000003", Path::new("/dev/pts/9")).unwrap();
        let p = dir.path().join("GAHT00000003");
        std::fs::remove_file(&p).unwrap();
        std::os::unix::fs::symlink("/dev/pts/10", &p).unwrap();
        drop(link);
        assert_eq!(std::fs::read_link(&p).unwrap(), Path::new("/dev/pts/10"));
    }
}
