//! Starting a privacyIDEA server: the one piece of code the matrix adapter
//! ([`super::PrivacyIdea`]) and `fobsim bench` (its `verify` group) share.
//!
//! [`Server::start`] makes a temp folder with `pi.cfg` (SQLite), runs
//! `pi-manage setup create_enckey / create_audit_keys / create_tables` and
//! `pi-manage admin add` (each bounded by a deadline), then starts the HTTP
//! server on `127.0.0.1` as a process-group leader, registered with
//! [`crate::cleanup`]: either `pi-manage run` (Flask's development server)
//! or gunicorn with sync workers ([`Http`]), optionally under libfaketime
//! with a clock file the caller moves ([`Server::set_clock`]). It returns
//! once `/healthz/` answers 200. Dropping the [`Server`] stops the whole
//! process group by PID and removes the folder.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use fobsim_core::Timestamp;
use fobsim_harness::adapter::SetupProblem;

use crate::cleanup;
use crate::peers::{libfaketime, run_bounded, tail, write_faketime_offset};

/// The admin [`Server::start`] creates.
pub const ADMIN: &str = "admin";
/// The admin's password.
pub const ADMIN_PASSWORD: &str = "Admin-Pass-1";

/// How long a `pi-manage` setup step may take.
const SETUP_STEP: Duration = Duration::from_secs(120);
/// How long the server may take to answer `/healthz/`.
const READY: Duration = Duration::from_secs(90);

/// Who answers HTTP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Http {
    /// `pi-manage run`: Flask's development server.
    DevServer,
    /// gunicorn with this many sync workers, as privacyIDEA is deployed
    /// (`tests/perf/peers.sh` adds gunicorn to the venv).
    Gunicorn {
        /// Worker processes.
        workers: usize,
    },
}

/// What goes into `pi.cfg` besides the paths.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Config {
    /// privacyIDEA's defaults: signed responses and audit entries, its
    /// default password hash. What the benchmark measures.
    Stock,
    /// Unsigned responses and audit entries, and a cheap hash (pbkdf2,
    /// 1000 rounds) for the throw-away admin: the matrix adapter logs in
    /// again whenever a clock jump made its JWT expired or not yet valid
    /// (argon2 costs ~0.5 s a login).
    Lean,
}

/// How to start a [`Server`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerOptions {
    /// The virtualenv with `bin/pi-manage` (and `bin/gunicorn` for
    /// [`Http::Gunicorn`]).
    pub venv: PathBuf,
    /// Who answers HTTP.
    pub http: Http,
    /// What goes into `pi.cfg`.
    pub config: Config,
    /// Run the server under libfaketime, its clock set by
    /// [`Server::set_clock`] (real time until then).
    pub faketime: bool,
}

impl ServerOptions {
    /// The matrix adapter's server: the development server under
    /// libfaketime, [`Config::Lean`], from [`super::venv_dir`].
    #[must_use]
    pub fn matrix() -> Self {
        ServerOptions {
            venv: super::venv_dir(),
            http: Http::DevServer,
            config: Config::Lean,
            faketime: true,
        }
    }

    /// The benchmark's server: [`Config::Stock`] at real time, on gunicorn
    /// with `workers` sync workers if `venv` has gunicorn, else on the
    /// development server.
    #[must_use]
    pub fn bench(venv: PathBuf, workers: usize) -> Self {
        let http = if venv.join("bin/gunicorn").is_file() {
            Http::Gunicorn { workers }
        } else {
            Http::DevServer
        };
        ServerOptions {
            venv,
            http,
            config: Config::Stock,
            faketime: false,
        }
    }
}

/// A running privacyIDEA server on `127.0.0.1` (stopped on drop).
pub struct Server {
    dir: tempfile::TempDir,
    child: Option<Child>,
    pid: u32,
    port: u16,
    http: Http,
    clock_file: Option<PathBuf>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("pid", &self.pid)
            .field("port", &self.port)
            .field("http", &self.http)
            .field("dir", &self.dir.path())
            .finish_non_exhaustive()
    }
}

fn problem(missing: impl Into<String>) -> SetupProblem {
    super::problem(missing)
}

fn pi_cfg(dir: &Path, config: Config) -> String {
    let d = dir.display();
    let mut text = format!(
        "SQLALCHEMY_DATABASE_URI = 'sqlite:///{d}/data.sqlite'\nSECRET_KEY = 'fobsim-secret-0123456789'\nPI_PEPPER = 'fobsim-pepper'\nPI_ENCFILE = '{d}/enckey'\nPI_AUDIT_KEY_PRIVATE = '{d}/private.pem'\nPI_AUDIT_KEY_PUBLIC = '{d}/public.pem'\nPI_AUDIT_SQL_TRUNCATE = True\nPI_LOGFILE = '{d}/privacyidea.log'\nPI_LOGLEVEL = 30\n"
    );
    if config == Config::Lean {
        text.push_str("PI_NO_RESPONSE_SIGN = True\nPI_AUDIT_NO_SIGN = True\nPI_HASH_ALGO_LIST = ['pbkdf2_sha512']\nPI_HASH_ALGO_PARAMS = {'pbkdf2_sha512__rounds': 1000}\n");
    }
    text
}

impl Server {
    /// Set up and start a server (~10 s); returns once `/healthz/` answers.
    ///
    /// # Errors
    /// [`SetupProblem`] if the venv (or gunicorn in it, or libfaketime) is
    /// missing, a setup step fails or the server does not come up (with
    /// the tail of its log).
    pub fn start(opts: &ServerOptions) -> Result<Server, SetupProblem> {
        let manage = opts.venv.join("bin/pi-manage");
        if !manage.is_file() {
            return Err(problem(format!("{} not found", manage.display())));
        }
        let gunicorn = opts.venv.join("bin/gunicorn");
        if let Http::Gunicorn { .. } = opts.http
            && !gunicorn.is_file()
        {
            return Err(SetupProblem::new(
                super::NAME,
                format!("{} not found", gunicorn.display()),
                "bash tests/perf/peers.sh",
            ));
        }
        let faketime = if opts.faketime {
            Some(libfaketime(super::NAME)?)
        } else {
            None
        };
        let dir = tempfile::Builder::new()
            .prefix("fobsim-privacyidea-")
            .tempdir()
            .map_err(|e| problem(format!("temp folder: {e}")))?;
        cleanup::register_dir(dir.path());
        // From here on, dropping `dir` must also unregister it.
        let forget = |e: SetupProblem, dir: &tempfile::TempDir| {
            cleanup::forget_dir(dir.path());
            e
        };
        let cfg = dir.path().join("pi.cfg");
        std::fs::write(&cfg, pi_cfg(dir.path(), opts.config))
            .map_err(|e| forget(problem(format!("pi.cfg: {e}")), &dir))?;
        for args in [
            &["setup", "create_enckey"][..],
            &["setup", "create_audit_keys"],
            &["setup", "create_tables"],
            &["admin", "add", ADMIN, "-p", ADMIN_PASSWORD],
        ] {
            run_bounded(
                Command::new(&manage)
                    .args(args)
                    .env("PRIVACYIDEA_CONFIGFILE", &cfg),
                SETUP_STEP,
            )
            .map_err(|e| forget(problem(format!("pi-manage {}: {e}", args.join(" "))), &dir))?;
        }
        let port = cleanup::free_port()
            .map_err(|e| forget(problem(format!("no free port: {e}")), &dir))?;
        let mut cmd = match opts.http {
            Http::DevServer => {
                let mut c = Command::new(&manage);
                c.args(["run", "-h", "127.0.0.1", "-p", &port.to_string()]);
                c
            }
            Http::Gunicorn { workers } => {
                let mut c = Command::new(&gunicorn);
                c.args([
                    "-w",
                    &workers.max(1).to_string(),
                    "-k",
                    "sync",
                    "-b",
                    &format!("127.0.0.1:{port}"),
                    "--timeout",
                    "120",
                ])
                .arg(format!(
                    "privacyidea.app:create_app(config_name='production', config_file='{}', silent=True)",
                    cfg.display()
                ));
                c
            }
        };
        cmd.env("PRIVACYIDEA_CONFIGFILE", &cfg)
            .current_dir(dir.path());
        let clock_file = match &faketime {
            None => None,
            Some(lib) => {
                let file = dir.path().join("faketime");
                write_faketime_offset(&file, None)
                    .map_err(|e| forget(problem(format!("clock file: {e}")), &dir))?;
                cmd.env("LD_PRELOAD", lib)
                    .env("FAKETIME_TIMESTAMP_FILE", &file)
                    .env("FAKETIME_NO_CACHE", "1")
                    .env("FAKETIME_DONT_RESET", "1");
                Some(file)
            }
        };
        let child =
            cleanup::spawn_server(&mut cmd, &dir.path().join("server.log")).map_err(|e| {
                forget(
                    problem(format!("cannot start {:?}: {e}", cmd.get_program())),
                    &dir,
                )
            })?;
        let mut me = Server {
            pid: child.id(),
            child: Some(child),
            dir,
            port,
            http: opts.http,
            clock_file,
        };
        me.wait_ready()?;
        Ok(me)
    }

    fn wait_ready(&mut self) -> Result<(), SetupProblem> {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(5)))
            .build()
            .into();
        let url = format!("{}/healthz/", self.endpoint());
        let until = Instant::now() + READY;
        loop {
            if let Some(c) = self.child.as_mut()
                && let Ok(Some(status)) = c.try_wait()
            {
                return Err(problem(format!(
                    "the server exited ({status}): {}",
                    self.log_tail()
                )));
            }
            if agent
                .get(&url)
                .call()
                .is_ok_and(|r| r.status().as_u16() == 200)
            {
                return Ok(());
            }
            if Instant::now() > until {
                return Err(problem(format!(
                    "the server did not answer /healthz/ within {} s: {}",
                    READY.as_secs(),
                    self.log_tail()
                )));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// The server's PID (a process-group leader; gunicorn's workers are in
    /// its group).
    #[must_use]
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The TCP port on `127.0.0.1`.
    #[must_use]
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `127.0.0.1:PORT`, the `Host` header.
    #[must_use]
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `http://127.0.0.1:PORT`.
    #[must_use]
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.host())
    }

    /// The temp folder (`pi.cfg`, the database, the logs).
    #[must_use]
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Who answers HTTP.
    #[must_use]
    pub fn http(&self) -> Http {
        self.http
    }

    /// Who answers HTTP, in words (for reports).
    #[must_use]
    pub fn serving(&self) -> String {
        match self.http {
            Http::DevServer => "pi-manage run (Flask dev server)".to_string(),
            Http::Gunicorn { workers } => format!("gunicorn, {workers} sync workers"),
        }
    }

    /// Put the server's clock at `now` (`None`: real time): rewrites the
    /// libfaketime clock file, read on every call.
    ///
    /// # Errors
    /// The server does not run under libfaketime
    /// ([`ServerOptions::faketime`]), or the file cannot be written.
    pub fn set_clock(&self, now: Option<Timestamp>) -> std::io::Result<()> {
        let file = self
            .clock_file
            .as_deref()
            .ok_or_else(|| std::io::Error::other("the server does not run under libfaketime"))?;
        write_faketime_offset(file, now)
    }

    /// The last lines of the server's and privacyIDEA's logs.
    #[must_use]
    pub fn log_tail(&self) -> String {
        let mut s = String::new();
        for f in ["server.log", "privacyidea.log"] {
            if let Ok(b) = std::fs::read(self.dir.path().join(f)) {
                s.push_str(&tail(&b, 400));
                s.push(' ');
            }
        }
        s
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        cleanup::stop_server(self.pid, self.child.take(), self.dir.path());
    }
}
