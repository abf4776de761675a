//! A real PostgreSQL server for tests and benchmarks, started from the
//! Debian `postgresql` package's binaries: `initdb` in a fresh directory
//! under the system's temp directory, `postgres` listening on a free
//! loopback port (no Unix socket), trust authentication for the superuser
//! `fobsim`. Run as root (as CI is), the server runs as the unprivileged
//! `postgres` user the package creates (through `setpriv`): PostgreSQL
//! refuses to run as root.
//!
//! The server is stopped by its PID (SIGINT: a fast shutdown) and its
//! directory removed when the [`PgServer`] is dropped — and also if the
//! process that started it dies first: a watchdog child waits for its
//! stdin (a pipe only this process holds) to close, then does the same.
//!
//! Where the binaries are: `$FOBSIM_PG_BIN`, else the directory of
//! `initdb` on `PATH`, else the newest `/usr/lib/postgresql/*/bin`.
//! Missing, they are a [`PgServerError::NotInstalled`] naming the package
//! (`tests/pg/setup.sh` installs it).

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Why a test server could not be started or used.
#[derive(Debug, thiserror::Error)]
pub enum PgServerError {
    /// The PostgreSQL binaries (or the unprivileged user) are missing.
    #[error(
        "PostgreSQL is not installed: {0} (install it: bash tests/pg/setup.sh, or apt-get install postgresql; or set FOBSIM_PG_BIN to the directory of initdb and postgres)"
    )]
    NotInstalled(String),
    /// A file or process operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// `initdb` or the server failed; the message has its output.
    #[error("{0}")]
    Failed(String),
    /// A statement of the test setup failed.
    #[error("postgres: {}", crate::error::postgres_message(.0))]
    Sql(#[from] postgres::Error),
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> PgServerError {
    let what = what.into();
    move |source| PgServerError::Io { what, source }
}

/// The superuser of test servers.
pub const SUPERUSER: &str = "fobsim";

/// A running (or stopped, see [`PgServer::stop`]) test server.
#[derive(Debug)]
pub struct PgServer {
    bin: PathBuf,
    dir: PathBuf,
    port: u16,
    run_as: Option<(String, u32, u32)>,
    settings: Vec<(String, String)>,
    postmaster: Option<Child>,
    watchdog: Option<Child>,
    /// Databases created by [`PgServer::database`] (serialised).
    databases: std::sync::Mutex<Vec<String>>,
}

static SCHEMAS: AtomicU64 = AtomicU64::new(0);

fn find_bin() -> Result<PathBuf, PgServerError> {
    find_bin_in(
        std::env::var_os("FOBSIM_PG_BIN"),
        std::env::var_os("PATH"),
        Path::new("/usr/lib/postgresql"),
    )
}

/// [`find_bin`] over the given `FOBSIM_PG_BIN`, `PATH` and Debian's
/// directory of versions.
fn find_bin_in(
    pg_bin: Option<std::ffi::OsString>,
    path: Option<std::ffi::OsString>,
    versions_dir: &Path,
) -> Result<PathBuf, PgServerError> {
    if let Some(dir) = pg_bin {
        let dir = PathBuf::from(dir);
        return if dir.join("initdb").is_file() && dir.join("postgres").is_file() {
            Ok(dir)
        } else {
            Err(PgServerError::NotInstalled(format!(
                "FOBSIM_PG_BIN={} has no initdb and postgres",
                dir.display()
            )))
        };
    }
    if let Some(path) = path {
        for d in std::env::split_paths(&path) {
            if d.join("initdb").is_file() && d.join("postgres").is_file() {
                return Ok(d);
            }
        }
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir(versions_dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            (bin.join("initdb").is_file() && bin.join("postgres").is_file()).then_some((v, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, b)| b).ok_or_else(|| {
        PgServerError::NotInstalled(
            "no initdb and postgres on PATH or in /usr/lib/postgresql".into(),
        )
    })
}

fn is_root() -> bool {
    // The effective uid, without libc: /proc/self/status "Uid: r e s f".
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|e| e == "0"))
        })
        .unwrap_or(false)
}

/// The uid and gid of `user` from /etc/passwd.
fn user_ids(user: &str) -> Option<(u32, u32)> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.first() == Some(&user) && f.len() > 3)
            .then(|| Some((f[2].parse().ok()?, f[3].parse().ok()?)))
            .flatten()
    })
}

fn free_port() -> Result<u16, PgServerError> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(io("finding a free port"))?;
    Ok(l.local_addr().map_err(io("finding a free port"))?.port())
}

impl PgServer {
    /// Start a server with PostgreSQL's defaults (durable: `fsync` and
    /// `synchronous_commit` on), as a deployment runs it.
    ///
    /// # Errors
    /// [`PgServerError`]: not installed, `initdb` or start-up failed.
    pub fn start() -> Result<PgServer, PgServerError> {
        PgServer::start_with(&[])
    }

    /// Start a server with these `-c name=value` settings on top of
    /// `listen_addresses=127.0.0.1`, no Unix socket and
    /// `max_connections=200`.
    ///
    /// # Errors
    /// As [`PgServer::start`].
    pub fn start_with(settings: &[(&str, &str)]) -> Result<PgServer, PgServerError> {
        let bin = find_bin()?;
        let run_as = if is_root() {
            let (uid, gid) = user_ids("postgres").ok_or_else(|| {
                PgServerError::NotInstalled(
                    "running as root needs the unprivileged user `postgres` (the postgresql package creates it)"
                        .into(),
                )
            })?;
            if !Path::new("/usr/bin/setpriv").is_file() && which("setpriv").is_none() {
                return Err(PgServerError::NotInstalled(
                    "setpriv (util-linux) is needed to drop root".into(),
                ));
            }
            Some(("postgres".to_string(), uid, gid))
        } else {
            None
        };
        let dir = std::env::temp_dir().join(format!(
            "fobsim-pg-{}-{}",
            std::process::id(),
            SCHEMAS.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir(&dir).map_err(io(format!("creating {}", dir.display())))?;
        if let Some((_, uid, gid)) = &run_as {
            std::os::unix::fs::chown(&dir, Some(*uid), Some(*gid))
                .map_err(io(format!("chown {}", dir.display())))?;
        }
        let mut all: Vec<(String, String)> = vec![
            ("listen_addresses".into(), "127.0.0.1".into()),
            ("unix_socket_directories".into(), String::new()),
            ("max_connections".into(), "200".into()),
        ];
        all.extend(
            settings
                .iter()
                .map(|(k, v)| ((*k).to_string(), (*v).to_string())),
        );
        let mut server = PgServer {
            bin,
            dir,
            port: 0,
            run_as,
            settings: all,
            postmaster: None,
            watchdog: None,
            databases: std::sync::Mutex::new(Vec::new()),
        };
        server.initdb()?;
        server.start_again()?;
        Ok(server)
    }

    fn command(&self, program: &str) -> Command {
        let exe = self.bin.join(program);
        match &self.run_as {
            Some((user, _, _)) => {
                let mut c = Command::new("setpriv");
                c.arg(format!("--reuid={user}"))
                    .arg(format!("--regid={user}"))
                    .arg("--init-groups")
                    .arg("--")
                    .arg(exe);
                c
            }
            None => Command::new(exe),
        }
    }

    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    fn log(&self) -> PathBuf {
        self.dir.join("server.log")
    }

    fn initdb(&self) -> Result<(), PgServerError> {
        let out = self
            .command("initdb")
            .arg("-D")
            .arg(self.data())
            .args([
                "-U",
                SUPERUSER,
                "--auth=trust",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ])
            .stdin(Stdio::null())
            .output()
            .map_err(io("running initdb"))?;
        if !out.status.success() {
            return Err(PgServerError::Failed(format!(
                "initdb failed ({}): {}{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )));
        }
        Ok(())
    }

    /// Start the server again after [`PgServer::stop`] (on the same port
    /// if it is still free).
    ///
    /// # Errors
    /// The server did not come up within 30 s (its log is in the message).
    pub fn start_again(&mut self) -> Result<(), PgServerError> {
        if self.postmaster.is_some() {
            return Ok(());
        }
        let mut last = String::new();
        for attempt in 0..5 {
            if self.port == 0 || attempt > 0 {
                self.port = free_port()?;
            }
            let log = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(self.log())
                .map_err(io("opening the server log"))?;
            let log2 = log.try_clone().map_err(io("opening the server log"))?;
            let mut cmd = self.command("postgres");
            cmd.arg("-D")
                .arg(self.data())
                .arg("-p")
                .arg(self.port.to_string());
            for (k, v) in &self.settings {
                cmd.arg("-c").arg(format!("{k}={v}"));
            }
            let child = cmd
                .stdin(Stdio::null())
                .stdout(log)
                .stderr(log2)
                .spawn()
                .map_err(io("starting postgres"))?;
            self.postmaster = Some(child);
            self.arm_watchdog()?;
            match self.wait_ready() {
                Ok(()) => return Ok(()),
                Err(e) => {
                    last = e.to_string();
                    self.stop_postmaster();
                }
            }
        }
        Err(PgServerError::Failed(format!(
            "postgres did not start: {last}"
        )))
    }

    /// A child that stops the server (by PID) and removes its directory
    /// when this process dies without doing so.
    fn arm_watchdog(&mut self) -> Result<(), PgServerError> {
        self.disarm_watchdog();
        let Some(pid) = self.pid() else {
            return Ok(());
        };
        let child = Command::new("sh")
            .arg("-c")
            .arg(
                "read _ ; kill -INT \"$1\" 2>/dev/null; \
                 while kill -0 \"$1\" 2>/dev/null; do sleep 0.05; done; rm -rf \"$2\"",
            )
            .arg("fobsim-pg-watchdog")
            .arg(pid.to_string())
            .arg(&self.dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(io("starting the watchdog"))?;
        self.watchdog = Some(child);
        Ok(())
    }

    fn disarm_watchdog(&mut self) {
        if let Some(mut w) = self.watchdog.take() {
            let _ = w.kill();
            let _ = w.wait();
        }
    }

    fn wait_ready(&mut self) -> Result<(), PgServerError> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(child) = self.postmaster.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                return Err(PgServerError::Failed(format!(
                    "postgres exited ({status}): {}",
                    self.log_tail()
                )));
            }
            match self.admin("postgres") {
                Ok(_) => return Ok(()),
                Err(e) if Instant::now() > deadline => {
                    return Err(PgServerError::Failed(format!(
                        "postgres not ready after 30 s ({e}): {}",
                        self.log_tail()
                    )));
                }
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    }

    /// The last lines of the server's log.
    #[must_use]
    pub fn log_tail(&self) -> String {
        let mut s = String::new();
        if let Ok(mut f) = std::fs::File::open(self.log()) {
            let _ = f.read_to_string(&mut s);
        }
        let lines: Vec<&str> = s.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// The loopback port.
    #[must_use]
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The postmaster's PID while it runs.
    #[must_use]
    pub fn pid(&self) -> Option<u32> {
        self.postmaster.as_ref().map(Child::id)
    }

    /// The URL of database `db` as the superuser.
    #[must_use]
    pub fn url(&self, db: &str) -> String {
        format!("postgres://{SUPERUSER}@127.0.0.1:{}/{db}", self.port)
    }

    /// A superuser connection to database `db`.
    ///
    /// # Errors
    /// The server refuses or cannot be reached.
    pub fn admin(&self, db: &str) -> Result<postgres::Client, PgServerError> {
        let mut c = postgres::Config::new();
        c.host("127.0.0.1")
            .port(self.port)
            .user(SUPERUSER)
            .dbname(db)
            .connect_timeout(Duration::from_secs(5));
        Ok(std::thread::scope(|s| {
            // Off any tokio runtime the caller may be in.
            s.spawn(|| c.connect(postgres::NoTls))
                .join()
                .unwrap_or_else(|p| std::panic::resume_unwind(p))
        })?)
    }

    /// Create database `name` (if missing) and return its URL.
    ///
    /// # Errors
    /// The server refuses.
    pub fn database(&self, name: &str) -> Result<String, PgServerError> {
        let mut made = self
            .databases
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if made.iter().any(|d| d == name) {
            return Ok(self.url(name));
        }
        let mut c = self.admin("postgres")?;
        let exists = c
            .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&name])?
            .is_some();
        if !exists {
            c.batch_execute(&format!(
                "CREATE DATABASE \"{}\"",
                name.replace('"', "\"\"")
            ))?;
        }
        made.push(name.to_string());
        Ok(self.url(name))
    }

    /// A URL whose tables live in a new, empty schema of database
    /// `fobsim_tests` (`search_path` set in the URL's `options`): a fresh
    /// store for each test at the cost of one `CREATE SCHEMA`.
    ///
    /// # Errors
    /// The server refuses.
    pub fn fresh_schema_url(&self) -> Result<String, PgServerError> {
        let base = self.database("fobsim_tests")?;
        let name = format!(
            "t_{}_{}",
            std::process::id(),
            SCHEMAS.fetch_add(1, Ordering::Relaxed)
        );
        let mut c = self.admin("fobsim_tests")?;
        c.batch_execute(&format!("CREATE SCHEMA {name}"))?;
        Ok(format!("{base}?options=-csearch_path%3D{name}"))
    }

    fn stop_postmaster(&mut self) {
        self.disarm_watchdog();
        if let Some(mut child) = self.postmaster.take() {
            // Fast shutdown: roll back open transactions, disconnect
            // clients, write a checkpoint.
            let _ = Command::new("kill")
                .args(["-INT", &child.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                match child.try_wait() {
                    Ok(Some(_)) | Err(_) => break,
                    Ok(None) if Instant::now() > deadline => {
                        let _ = child.kill();
                        let _ = child.wait();
                        break;
                    }
                    Ok(None) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        }
    }

    /// Stop the server by its PID (SIGINT: PostgreSQL's fast shutdown) and
    /// wait for it to exit; [`PgServer::start_again`] starts it again on
    /// the same data.
    pub fn stop(&mut self) {
        self.stop_postmaster();
    }

    /// Stop (fast shutdown) and start again on the same port.
    ///
    /// # Errors
    /// As [`PgServer::start_again`].
    pub fn restart_fast(&mut self) -> Result<(), PgServerError> {
        self.stop();
        self.start_again()
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        self.stop_postmaster();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn which(program: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join(program))
        .find(|p| p.is_file())
}

/// One server for the whole test process, started on first use and
/// stopped by its watchdog when the process exits (for the tests of one
/// binary; each test takes a [`PgServer::fresh_schema_url`]).
/// `synchronous_commit=off`: the tests need no durability across a
/// machine crash (a fast shutdown still writes everything), and it keeps
/// them quick.
///
/// # Errors
/// As [`PgServer::start`]; the same error on every call after a failure.
pub fn shared() -> Result<&'static PgServer, String> {
    static SERVER: OnceLock<Result<PgServer, String>> = OnceLock::new();
    SERVER
        .get_or_init(|| {
            PgServer::start_with(&[("synchronous_commit", "off")]).map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(Clone::clone)
}

#[cfg(test)]
mod tests {
    use super::{PgServerError, find_bin_in};

    #[test]
    fn missing_binaries_are_an_error_that_says_how_to_install_them() {
        let empty = tempfile::tempdir().unwrap();
        let e = find_bin_in(None, Some(empty.path().into()), empty.path()).unwrap_err();
        assert!(matches!(e, PgServerError::NotInstalled(_)), "{e:?}");
        let text = e.to_string();
        assert!(text.contains("apt-get install postgresql"), "{text}");
        assert!(text.contains("bash tests/pg/setup.sh"), "{text}");
        let e = find_bin_in(Some(empty.path().into()), None, empty.path()).unwrap_err();
        assert!(e.to_string().contains("has no initdb and postgres"), "{e}");
        // Found on PATH as on Debian's versioned directory.
        let v = empty.path().join("15").join("bin");
        std::fs::create_dir_all(&v).unwrap();
        for f in ["initdb", "postgres"] {
            std::fs::write(v.join(f), "").unwrap();
        }
        assert_eq!(find_bin_in(None, None, empty.path()).unwrap(), v);
        assert_eq!(
            find_bin_in(None, Some(v.clone().into()), empty.path()).unwrap(),
            v
        );
    }
}
