//! `pam_google_authenticator` and `pam_oath`, driven through `pamtester`
//! with libfaketime preloaded (`LD_PRELOAD`, `FAKETIME='YYYY-MM-DD
//! hh:mm:ss'`): a clock frozen at each step's true time (whole seconds).
//!
//! Not the `faketime` wrapper: it creates a named semaphore and shared
//! memory keyed by its PID and leaks them (`/dev/shm/faketime_*`); when a
//! later PID repeats, `sem_open` fails with "File exists" and the wrapper
//! exits 1 — which looked exactly like pamtester refusing a valid code
//! (about one enable in two hundred). A refusal now counts only when
//! pamtester itself reports it.
//!
//! Each adapter writes one pam.d service, `/etc/pam.d/fobsim-<module>-<pid>-<n>`
//! (removed by `Drop`, and on interrupt through [`super::cleanup`]); every
//! other file lives in its temp folder:
//!
//! ```text
//! auth requisite pam_exec.so expose_authtok quiet DIR/checkpw     # the password: DIR/pw/$PAM_USER
//! auth required  pam_google_authenticator.so secret=DIR/google/${USER} user=root
//! #  or          pam_oath.so usersfile=DIR/users.oath window=1 digits=D
//! account required pam_permit.so
//! ```
//!
//! `pamtester SERVICE USER authenticate` reads the password, then the code,
//! from its standard input. Provisioning is the modules' own: a secret file
//! per user (base32 secret, `" WINDOW_SIZE 3` = ±1 step, `" DISALLOW_REUSE`,
//! `" TOTP_AUTH`, `" STEP_SIZE` for 60 s tokens) for pam_google, one
//! usersfile line `HOTP/T<period>/<digits> USER - KEYHEX` for pam_oath
//! (`window=1` = ±1 step). Neither takes SHA-256/512 tokens, and
//! pam_google only 6 digits: such enables answer `UnsupportedToken`.
//! The module keeps its own state (pam_google rewrites the secret file
//! with used steps and learned skew; pam_oath the usersfile with the last
//! OTP), which is what the replay scenarios observe.

use std::io::Write as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use fobsim_core::{Algorithm, Kind, SeedRecord, Timestamp};

use crate::cleanup;
use crate::peers::{require, setup_err, transport, unique};
use crate::shim::{Checker, Shim};
use fobsim_harness::adapter::SetupProblem;
use fobsim_harness::adapter::{AdapterError, Answer, Setup};

/// Which PAM module.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Module {
    /// `pam_google_authenticator.so` (`pam-google`).
    Google,
    /// `pam_oath.so` (`pam-oath`).
    Oath,
}

impl Module {
    /// Adapter name.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Module::Google => "pam-google",
            Module::Oath => "pam-oath",
        }
    }

    fn so(self) -> &'static str {
        match self {
            Module::Google => "pam_google_authenticator.so",
            Module::Oath => "pam_oath.so",
        }
    }

    fn package(self) -> &'static str {
        match self {
            Module::Google => "libpam-google-authenticator",
            Module::Oath => "libpam-oath",
        }
    }
}

/// A PAM adapter.
pub type Pam = Shim<PamChecker>;

/// Open a PAM adapter (writes its pam.d service).
///
/// # Errors
/// [`SetupProblem`] if pamtester, faketime or the module is missing, or the
/// pam.d service cannot be written (not root).
pub fn open(module: Module) -> Result<Pam, SetupProblem> {
    Ok(Shim::new(PamChecker::new(module)?))
}

/// Where PAM modules are installed.
const MODULE_DIRS: [&str; 4] = [
    "/lib/x86_64-linux-gnu/security",
    "/usr/lib/x86_64-linux-gnu/security",
    "/lib/aarch64-linux-gnu/security",
    "/usr/lib/security",
];

/// The pam.d service, a password checker and the module's files.
#[derive(Debug)]
pub struct PamChecker {
    module: Module,
    dir: tempfile::TempDir,
    service: String,
    pamd: PathBuf,
    pamtester: PathBuf,
    libfaketime: PathBuf,
    digits: u8,
}

fn io(module: Module, what: &str, e: &std::io::Error) -> AdapterError {
    setup_err(module.name(), format!("{what}: {e}"))
}

fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)?;
    f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    f.write_all(text.as_bytes())
}

impl PamChecker {
    /// A checker with its pam.d service written.
    ///
    /// # Errors
    /// [`SetupProblem`] if a program or the module is missing or the
    /// service cannot be written.
    pub fn new(module: Module) -> Result<Self, SetupProblem> {
        let name = module.name();
        let pamtester = require(name, "pamtester", "pamtester")?;
        let libfaketime = crate::peers::libfaketime(name)?;
        if !MODULE_DIRS
            .iter()
            .any(|d| Path::new(d).join(module.so()).is_file())
        {
            return Err(SetupProblem::new(
                name,
                format!("{} not found in {}", module.so(), MODULE_DIRS.join(", ")),
                &format!("apt-get install {}", module.package()),
            ));
        }
        let broken = |what: &str, e: std::io::Error| {
            SetupProblem::new(
                name,
                format!("{what}: {e}"),
                "run as root (pam.d services live in /etc/pam.d)",
            )
        };
        let dir = tempfile::Builder::new()
            .prefix(&format!("fobsim-{name}-"))
            .tempdir()
            .map_err(|e| broken("temp folder", e))?;
        cleanup::register_dir(dir.path());
        let service = format!("fobsim-{}", unique(name));
        let pamd = Path::new("/etc/pam.d").join(&service);
        let c = PamChecker {
            module,
            dir,
            service,
            pamd,
            pamtester,
            libfaketime,
            digits: 6,
        };
        std::fs::create_dir_all(c.dir.path().join("pw")).map_err(|e| broken("temp folder", e))?;
        std::fs::create_dir_all(c.dir.path().join("google"))
            .map_err(|e| broken("temp folder", e))?;
        let script = c.dir.path().join("checkpw");
        let text = format!(
            "#!/bin/sh\n# fobsim: the password factor (the login stack's password module)\nIFS= read -r got\n[ -n \"$PAM_USER\" ] && [ \"$got\" = \"$(cat '{}/pw/'\"$PAM_USER\" 2>/dev/null)\" ]\n",
            c.dir.path().display()
        );
        std::fs::write(&script, text).map_err(|e| broken("password checker", e))?;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| broken("password checker", e))?;
        cleanup::register_file(&c.pamd);
        c.write_service().map_err(|e| broken("pam.d service", e))?;
        Ok(c)
    }

    /// The pam.d service name.
    #[must_use]
    pub fn service(&self) -> &str {
        &self.service
    }

    /// The pam.d file (removed on drop).
    #[must_use]
    pub fn pamd_path(&self) -> &Path {
        &self.pamd
    }

    fn write_service(&self) -> std::io::Result<()> {
        let d = self.dir.path().display();
        let module_line = match self.module {
            Module::Google => {
                format!(
                    "auth    required  pam_google_authenticator.so secret={d}/google/${{USER}} user=root"
                )
            }
            Module::Oath => format!(
                "auth    required  pam_oath.so usersfile={d}/users.oath window=1 digits={}",
                self.digits
            ),
        };
        let text = format!(
            "# fobsim matrix ({}): temporary, removed when the run ends\nauth    requisite pam_exec.so expose_authtok quiet {d}/checkpw\n{module_line}\naccount required  pam_permit.so\n",
            self.module.name()
        );
        std::fs::write(&self.pamd, text)
    }

    fn users_file(&self) -> PathBuf {
        self.dir.path().join("users.oath")
    }

    fn remove_oath_user(&self, user: &str) -> Result<(), AdapterError> {
        let path = self.users_file();
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        let kept: String = text
            .lines()
            .filter(|l| l.split_whitespace().nth(1) != Some(user))
            .map(|l| format!("{l}\n"))
            .collect();
        write_private(&path, &kept).map_err(|e| io(self.module, "usersfile", &e))
    }

    fn unsupported(&self, why: &str) -> Option<Answer> {
        Some(crate::peers::unsupported_token(format!(
            "{}: {why}",
            self.module.so()
        )))
    }
}

/// `YYYY-MM-DD hh:mm:ss` (UTC) of `now`, whole seconds: libfaketime's
/// frozen-clock format.
fn frozen(now: Timestamp) -> String {
    let s = Timestamp::from_secs(now.as_secs()).to_string();
    // "2026-01-01T00:00:45.000Z" -> "2026-01-01 00:00:45"
    s.get(..19).map_or(s.clone(), |x| x.replace('T', " "))
}

impl Drop for PamChecker {
    fn drop(&mut self) {
        cleanup::remove_file(&self.pamd);
        cleanup::forget_dir(self.dir.path());
    }
}

impl Checker for PamChecker {
    fn name(&self) -> &'static str {
        self.module.name()
    }

    fn reset(&mut self, setup: &Setup) -> Result<(), AdapterError> {
        let m = self.module;
        let root = self.dir.path().to_path_buf();
        for sub in ["pw", "google"] {
            let d = root.join(sub);
            let _ = std::fs::remove_dir_all(&d);
            std::fs::create_dir_all(&d).map_err(|e| io(m, "temp folder", &e))?;
        }
        write_private(&self.users_file(), "").map_err(|e| io(m, "usersfile", &e))?;
        let mut users = setup.users.clone();
        users.push(("root".into(), setup.account.root_password.clone()));
        for (u, p) in &users {
            write_private(&root.join("pw").join(u), &format!("{p}\n"))
                .map_err(|e| io(m, "password file", &e))?;
        }
        Ok(())
    }

    fn refuse_token(&self, seed: &SeedRecord) -> Option<Answer> {
        if seed.kind == Kind::Hotp {
            return self.unsupported("event-based (HOTP) hardware tokens are not set up here");
        }
        if seed.algorithm != Algorithm::Sha1 {
            return self.unsupported("only HMAC-SHA1 tokens are supported");
        }
        if self.module == Module::Google && seed.digits != 6 {
            return self.unsupported("only 6-digit codes are supported");
        }
        None
    }

    fn provision(&mut self, user: &str, seed: &SeedRecord) -> Result<Option<Answer>, AdapterError> {
        if let Some(refusal) = self.refuse_token(seed) {
            return Ok(Some(refusal));
        }
        let Kind::Totp { period } = seed.kind else {
            return Ok(self.unsupported("event-based (HOTP) hardware tokens are not set up here"));
        };
        let m = self.module;
        match m {
            Module::Google => {
                let mut text = seed.secret.to_base32().trim_end_matches('=').to_string();
                text.push('\n');
                if period != 30 {
                    text.push_str(&format!("\" STEP_SIZE {period}\n"));
                }
                text.push_str("\" WINDOW_SIZE 3\n\" DISALLOW_REUSE\n\" TOTP_AUTH\n");
                let path = self.dir.path().join("google").join(user);
                let _ = std::fs::remove_file(&path);
                write_private(&path, &text).map_err(|e| io(m, "secret file", &e))?;
            }
            Module::Oath => {
                self.remove_oath_user(user)?;
                if seed.digits != self.digits {
                    self.digits = seed.digits;
                    self.write_service()
                        .map_err(|e| io(m, "pam.d service", &e))?;
                }
                let path = self.users_file();
                let mut text = std::fs::read_to_string(&path).unwrap_or_default();
                text.push_str(&format!(
                    "HOTP/T{period}/{} {user} - {}\n",
                    seed.digits,
                    seed.secret.to_hex()
                ));
                write_private(&path, &text).map_err(|e| io(m, "usersfile", &e))?;
            }
        }
        Ok(None)
    }

    fn unprovision(&mut self, user: &str) -> Result<(), AdapterError> {
        match self.module {
            Module::Google => {
                let _ = std::fs::remove_file(self.dir.path().join("google").join(user));
                Ok(())
            }
            Module::Oath => self.remove_oath_user(user),
        }
    }

    fn check(
        &mut self,
        now: Timestamp,
        user: &str,
        password: &str,
        code: &str,
        _seed: &SeedRecord,
    ) -> Result<bool, AdapterError> {
        let name = self.module.name();
        if password.contains('\n') || code.contains('\n') {
            return Ok(false);
        }
        let mut child = Command::new(&self.pamtester)
            // A frozen clock (`YYYY-MM-DD hh:mm:ss`, TZ=UTC), not `@T`: a
            // running clock made verdicts depend on machine load.
            .env("LD_PRELOAD", &self.libfaketime)
            .env("FAKETIME", frozen(now))
            .env("TZ", "UTC")
            .arg(&self.service)
            .arg(user)
            .arg("authenticate")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| transport(name, format!("cannot run pamtester: {e}")))?;
        if let Some(mut stdin) = child.stdin.take() {
            // A module that stops reading early closes the pipe: not an error.
            let _ = stdin.write_all(format!("{password}\n{code}\n").as_bytes());
        }
        let out = child
            .wait_with_output()
            .map_err(|e| transport(name, format!("pamtester: {e}")))?;
        match out.status.code() {
            Some(0) => Ok(true),
            // pamtester reports a refusal as "pamtester: <PAM error>"; exit 1
            // without it is a failure to run, not an answer.
            Some(1) if String::from_utf8_lossy(&out.stderr).contains("pamtester: ") => Ok(false),
            other => Err(transport(
                name,
                format!(
                    "pamtester exited {other:?}: {}",
                    crate::peers::tail(&out.stderr, 200)
                ),
            )),
        }
    }

    fn checks_password(&self) -> bool {
        true
    }
}
