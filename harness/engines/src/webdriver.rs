//! One headless Chromium driven over WebDriver: a `chromedriver` started on
//! a free loopback port, one browser session on it, and a private tokio
//! runtime so callers stay synchronous ([`Browser::block_on`]). Used by the
//! `console` adapter ([`crate::console`]) and by browser tests.
//!
//! Where the programs are: `FOBSIM_CHROMEDRIVER` and `FOBSIM_CHROMIUM`
//! if set, else `chromedriver` and `chromium` on `PATH` (Debian's
//! packages `chromium-driver` and `chromium`; `tests/browser/setup.sh`
//! installs them). A missing one is a [`SetupProblem`] naming the package,
//! never a silent skip.
//!
//! `chromedriver` runs in a process group of its own (the browser it starts
//! with it), registered with [`crate::cleanup`]: stopped on drop, and by
//! [`crate::cleanup::install_signal_handlers`] on Ctrl-C. The browser keeps
//! its profile in a temporary folder, removed the same way.

use std::future::Future;
use std::path::PathBuf;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder};
use fobsim_harness::adapter::SetupProblem;
use hyper_util::client::legacy::connect::HttpConnector;

use crate::cleanup;

/// How to install the browser and its driver (Debian).
pub const INSTALL: &str =
    "apt-get install chromium chromium-driver (as root; or bash tests/browser/setup.sh)";

/// The browser's command-line switches: headless, no sandbox (CI runs as
/// root), no `/dev/shm` (small in containers), and nothing that talks to
/// the network on its own.
pub const CHROMIUM_ARGS: [&str; 12] = [
    "--headless=new",
    "--no-sandbox",
    "--disable-dev-shm-usage",
    "--disable-gpu",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-extensions",
    "--disable-sync",
    "--disable-background-networking",
    "--disable-component-update",
    "--password-store=basic",
    "--disable-features=Translate,PasswordLeakDetection,AutofillServerCommunication,OptimizationHints,MediaRouter",
];

/// The programs a [`Browser`] needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tools {
    /// `chromedriver`.
    pub chromedriver: PathBuf,
    /// The browser (`chromium`).
    pub chromium: PathBuf,
}

/// A setup problem of `engine` with this module's install hint.
fn problem(engine: &str, missing: impl Into<String>) -> SetupProblem {
    SetupProblem {
        engine: engine.to_string(),
        missing: missing.into(),
        hint: INSTALL.to_string(),
    }
}

fn locate(engine: &str, var: &str, program: &str) -> Result<PathBuf, SetupProblem> {
    match std::env::var_os(var) {
        Some(p) if !p.is_empty() => {
            let p = PathBuf::from(p);
            if p.is_file() {
                Ok(p)
            } else {
                Err(problem(
                    engine,
                    format!("{var}={} is not a file", p.display()),
                ))
            }
        }
        _ => crate::peers::which(program).ok_or_else(|| {
            problem(
                engine,
                format!("program `{program}` not found on PATH (nor {var})"),
            )
        }),
    }
}

/// Find `chromedriver` and `chromium` (`FOBSIM_CHROMEDRIVER`,
/// `FOBSIM_CHROMIUM`, else `PATH`).
///
/// # Errors
/// [`SetupProblem`] for `engine` naming what is missing and how to install
/// it.
pub fn find_tools(engine: &str) -> Result<Tools, SetupProblem> {
    Ok(Tools {
        chromedriver: locate(engine, "FOBSIM_CHROMEDRIVER", "chromedriver")?,
        chromium: locate(engine, "FOBSIM_CHROMIUM", "chromium")?,
    })
}

/// The `chromedriver` process and the browser's folder: stopped and
/// removed on drop.
struct Driver {
    child: Option<Child>,
    pid: u32,
    dir: tempfile::TempDir,
}

impl Drop for Driver {
    fn drop(&mut self) {
        cleanup::stop_server(self.pid, self.child.take(), self.dir.path());
    }
}

/// A running `chromedriver` with one headless browser session.
pub struct Browser {
    // Field order is drop order: the session, its runtime, then the driver.
    client: Client,
    rt: tokio::runtime::Runtime,
    driver: Driver,
    port: u16,
}

impl std::fmt::Debug for Browser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Browser")
            .field("chromedriver_pid", &self.driver.pid)
            .field("port", &self.port)
            .finish_non_exhaustive()
    }
}

impl Browser {
    /// Start `chromedriver` on a free loopback port and open one headless
    /// Chromium session on it (about a second).
    ///
    /// # Errors
    /// [`SetupProblem`] for `engine` when a program is missing, or the
    /// driver or the browser does not start (with the end of the driver's
    /// log).
    pub fn start(engine: &str) -> Result<Browser, SetupProblem> {
        let tools = find_tools(engine)?;
        let problem = |m: String| problem(engine, m);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| problem(format!("tokio runtime: {e}")))?;
        let dir = tempfile::Builder::new()
            .prefix("fobsim-chromium-")
            .tempdir()
            .map_err(|e| problem(format!("temp folder: {e}")))?;
        cleanup::register_dir(dir.path());
        let port = cleanup::free_port().map_err(|e| problem(format!("no free port: {e}")))?;
        let log = dir.path().join("chromedriver.log");
        let child = cleanup::spawn_server(
            Command::new(&tools.chromedriver).args([
                format!("--port={port}"),
                "--allowed-ips=127.0.0.1".to_string(),
                "--log-level=WARNING".to_string(),
            ]),
            &log,
        );
        let child = match child {
            Ok(c) => c,
            Err(e) => {
                cleanup::forget_dir(dir.path());
                return Err(problem(format!(
                    "cannot start {}: {e}",
                    tools.chromedriver.display()
                )));
            }
        };
        let mut driver = Driver {
            pid: child.id(),
            child: Some(child),
            dir,
        };
        let log_tail = || crate::peers::tail(&std::fs::read(&log).unwrap_or_default(), 400);
        let profile = driver.dir.path().join("profile");
        let mut args: Vec<String> = CHROMIUM_ARGS.iter().map(|s| (*s).to_string()).collect();
        args.push(format!("--user-data-dir={}", profile.display()));
        let caps = serde_json::json!({
            "browserName": "chrome",
            "pageLoadStrategy": "normal",
            "goog:chromeOptions": {
                "binary": tools.chromium,
                "args": args,
            },
        });
        let serde_json::Value::Object(caps) = caps else {
            return Err(problem("capabilities are not an object".into()));
        };
        let url = format!("http://127.0.0.1:{port}");
        let until = Instant::now() + Duration::from_secs(30);
        // The driver listens after a moment; the first session can take a
        // few seconds (the browser's first start).
        loop {
            if let Some(c) = driver.child.as_mut()
                && let Ok(Some(status)) = c.try_wait()
            {
                return Err(problem(format!(
                    "chromedriver exited ({status}): {}",
                    log_tail()
                )));
            }
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                // No Nagle: each WebDriver command is a small request
                // whose answer waits for it (40 ms per command otherwise).
                let mut http = HttpConnector::new();
                http.set_nodelay(true);
                let mut builder = ClientBuilder::new(http);
                builder.capabilities(caps.clone());
                let connect = builder.connect(&url);
                return match rt.block_on(async {
                    tokio::time::timeout(Duration::from_secs(30), connect).await
                }) {
                    Ok(Ok(client)) => Ok(Browser {
                        client,
                        rt,
                        driver,
                        port,
                    }),
                    Ok(Err(e)) => Err(problem(format!(
                        "no browser session ({}): {e}; chromedriver says: {}",
                        tools.chromium.display(),
                        log_tail()
                    ))),
                    Err(_) => Err(problem("the browser did not start within 30 s".to_string())),
                };
            }
            if Instant::now() > until {
                return Err(problem(format!(
                    "chromedriver did not listen on 127.0.0.1:{port} within 30 s"
                )));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The WebDriver session.
    #[must_use]
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Replace the tab by a new one (and close the old): what a page
    /// left behind in its renderer goes with it. Headless Chromium's
    /// renderer grows with every navigation of a tab (hundreds of MiB
    /// over a few thousand pages), and slows down with it.
    ///
    /// # Errors
    /// The WebDriver command that failed.
    pub fn fresh_tab(&self) -> Result<(), fantoccini::error::CmdError> {
        let c = &self.client;
        self.rt.block_on(async {
            let new = c.new_window(true).await?;
            // The current tab is still the old one: close it.
            c.close_window().await?;
            c.switch_to_window(new.handle).await
        })
    }

    /// Run `f` (WebDriver commands) to completion on the browser's runtime.
    pub fn block_on<F: Future>(&self, f: F) -> F::Output {
        self.rt.block_on(f)
    }

    /// The `chromedriver` process (a process-group leader, registered with
    /// [`crate::cleanup`] while it runs).
    #[must_use]
    pub fn driver_pid(&self) -> u32 {
        self.driver.pid
    }

    /// The folder of the browser's profile and the driver's log.
    #[must_use]
    pub fn dir(&self) -> &std::path::Path {
        self.driver.dir.path()
    }
}

impl Drop for Browser {
    /// End the session (the browser quits); then the driver's process
    /// group is stopped and the profile removed ([`Driver`]'s drop).
    fn drop(&mut self) {
        let c = self.client.clone();
        let _ = self
            .rt
            .block_on(async { tokio::time::timeout(Duration::from_secs(10), c.close()).await });
    }
}
