//! django-otp (PyPI `django-otp`, the OTP framework of the Django world)
//! through its own API, in a small Django project the adapter creates.
//!
//! Startup (once per adapter, ~2 s): a temp folder with a Django project
//! (`fobsim_site/settings.py`: SQLite, `django.contrib.auth`,
//! `django_otp`, `django_otp.plugins.otp_totp` and the driver app
//! `fobsim_driver`), `manage.py migrate`, then `manage.py fobsim_serve` as a
//! process-group leader under libfaketime (`LD_PRELOAD`,
//! `FAKETIME_TIMESTAMP_FILE` + `FAKETIME_NO_CACHE=1`), stopped by PID (its
//! group) on drop and on interrupt ([`super::cleanup`]).
//!
//! Why a long-running management command and not an HTTP view: the adapter
//! needs django-otp's verdicts, not Django's request handling, and one
//! process answering JSON lines on stdin/stdout calls the same API a view
//! would (`TOTPDevice.verify_token`, `django_otp.match_token`,
//! `django_otp.verify_token`, `devices_for_user`, the throttling of
//! `ThrottlingMixin`) with no port to find, no CSRF or URL layer to write,
//! and Django started once (~0.5 s) instead of per request. The driver
//! (`fobsim_serve.py`, embedded here) judges nothing itself.
//!
//! The clock: before each request the timestamp file is rewritten with the
//! engine's time, frozen (`YYYY-MM-DD hh:mm:ss`, UTC, whole seconds — as
//! the PAM adapters freeze theirs): django-otp reads `int(time.time())`
//! and `timezone.now()`, so whole seconds judge every step exactly, and a
//! frozen clock does not run on by the request's latency (a running one,
//! as privacyIDEA's, would put a code typed a millisecond before a step
//! boundary into the next step). Python cannot represent times past 2262
//! (`OverflowError` in `time.time()`): a check there is refused with that
//! message (the RFC 6238 vector at 2603).
//!
//! Mapping (django-otp's defaults: `tolerance` 1, `OTP_TOTP_SYNC` on,
//! throttle factor 1):
//!
//! | request | django-otp |
//! |---|---|
//! | enable (2 codes) | a `TOTPDevice` (name = serial, key = the seed's hex, `digits`, `step`) for the user, unconfirmed; `verify_token(code1)` then `verify_token(code2)`; both → confirmed, else deleted (`InvalidAuthenticationCode`) |
//! | sign-in | `authenticate(username, password)`, then `match_token(user, code)` when the user has a confirmed device (none: the password alone) |
//! | session | the user's confirmed device named by the serial, `django_otp.verify_token(user, persistent_id, code)` |
//! | deactivate | delete the user's device of that name |
//! | list devices | `devices_for_user(user)` |
//! | device state | locked while `verify_is_allowed()` says no (throttled) |
//! | import | `TOTPDevice(...).full_clean()`: django-otp's own validation (digits 6 or 8, a hex key); HOTP and SHA-256/512 seeds are refused by the adapter (only `otp_totp` is installed, and it is HMAC-SHA1 only) |
//!
//! A refusal while throttled is reported with the kind `DeviceLocked`
//! (error kinds declared). Not declared: API enable, resync (django-otp
//! has none: it learns `drift` from every verified code), root user, root
//! recovery, settings, access keys.

use std::collections::HashMap;
use std::io::{BufRead as _, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::Duration;

use fobsim_core::{Algorithm, Kind, Principal, SeedRecord, Timestamp};
use serde_json::{Value, json};

use crate::cleanup;
use crate::peers::{Seeds, libfaketime, refuse, setup_err, transport, unsupported_token, venv};
use fobsim_harness::adapter::{
    AdapterError, Answer, Capability, EngineAdapter, Reply, Request, Setup, SetupProblem,
};

const NAME: &str = "django-otp";

/// The driver: a Django management command (embedded, written into the
/// project the adapter creates).
const DRIVER: &str = include_str!("fobsim_serve.py");

const SETTINGS: &str = "\
from pathlib import Path
BASE_DIR = Path(__file__).resolve().parent.parent
SECRET_KEY = 'fobsim-django-otp-matrix-0123456789'
DEBUG = False
ALLOWED_HOSTS = []
INSTALLED_APPS = [
    'django.contrib.auth',
    'django.contrib.contenttypes',
    'django_otp',
    'django_otp.plugins.otp_totp',
    'fobsim_driver',
]
# A throw-away database: no fsync per commit.
DATABASES = {'default': {'ENGINE': 'django.db.backends.sqlite3', 'NAME': BASE_DIR / 'db.sqlite3',
                         'OPTIONS': {'init_command': 'PRAGMA synchronous=OFF; PRAGMA journal_mode=MEMORY;'}}}
USE_TZ = True
TIME_ZONE = 'UTC'
# A cheap hash for throw-away users (the default costs ~0.3 s a login).
PASSWORD_HASHERS = ['django.contrib.auth.hashers.MD5PasswordHasher']
DEFAULT_AUTO_FIELD = 'django.db.models.AutoField'
";

const MANAGE: &str = "\
import os, sys
os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'fobsim_site.settings')
from django.core.management import execute_from_command_line
execute_from_command_line(sys.argv)
";

const CAPS: [Capability; 8] = [
    Capability::EnableTwoCodes,
    Capability::ConsoleSignIn,
    Capability::SessionMfa,
    Capability::Deactivate,
    Capability::ListDevices,
    Capability::ObserveLockout,
    Capability::Import,
    Capability::ErrorKinds,
];

/// How long one request may take before the driver counts as hung.
const TIMEOUT: Duration = Duration::from_secs(60);

/// The django-otp adapter (owns the driver process).
pub struct DjangoOtp {
    dir: tempfile::TempDir,
    child: Option<Child>,
    pid: u32,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    clock_file: PathBuf,
    versions: String,
    seeds: Seeds,
    passwords: HashMap<String, String>,
    requests: u64,
}

impl std::fmt::Debug for DjangoOtp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DjangoOtp")
            .field("pid", &self.pid)
            .field("dir", &self.dir.path())
            .field("versions", &self.versions)
            .field("requests", &self.requests)
            .finish_non_exhaustive()
    }
}

fn problem(missing: impl Into<String>) -> SetupProblem {
    SetupProblem::new(
        NAME,
        missing,
        "python3 -m venv target/peers/venv-django && target/peers/venv-django/bin/pip install django-otp",
    )
}

/// The virtualenv (`FOBSIM_DJANGO_VENV`, else `<peers>/venv-django`).
#[must_use]
pub fn venv_dir() -> PathBuf {
    venv("FOBSIM_DJANGO_VENV", "venv-django")
}

fn write(path: &Path, text: &str) -> Result<(), SetupProblem> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .map_err(|e| problem(format!("{}: {e}", parent.display())))?;
    }
    std::fs::write(path, text).map_err(|e| problem(format!("{}: {e}", path.display())))
}

fn log_tail(dir: &Path) -> String {
    std::fs::read(dir.join("driver.log"))
        .map(|b| crate::peers::tail(&b, 400))
        .unwrap_or_default()
}

fn denied() -> Answer {
    refuse(
        "AccessDenied",
        403,
        None,
        "MultiFactorAuthentication failed with invalid MFA one time pass code.",
    )
}

fn no_such(serial: &str) -> Answer {
    refuse(
        "NoSuchEntity",
        404,
        None,
        format!("MFA Device with serial number {serial} does not exist."),
    )
}

/// What django-otp cannot take, before asking it: an event-based token (no
/// HOTP plugin in the project) or another hash than SHA-1 (`TOTPDevice`
/// has no algorithm field: a SHA-256 key would be verified as SHA-1).
fn unsupported(seed: &SeedRecord) -> Option<Answer> {
    if seed.kind == Kind::Hotp {
        return Some(unsupported_token(
            "django-otp: the project has otp_totp only, no event-based (HOTP) devices",
        ));
    }
    if seed.algorithm != Algorithm::Sha1 {
        return Some(unsupported_token(format!(
            "django-otp: TOTPDevice verifies HMAC-SHA1 only, not {}",
            seed.algorithm.as_str()
        )));
    }
    None
}

/// The fields of a `TOTPDevice` for a seed record.
fn device_fields(seed: &SeedRecord) -> Value {
    let step = match seed.kind {
        Kind::Totp { period } => period,
        Kind::Hotp => 30,
    };
    json!({
        "name": seed.serial.as_str(),
        "key": seed.secret.to_hex(),
        "digits": seed.digits,
        "step": step,
    })
}

/// Point the libfaketime timestamp file at `now`, frozen, in whole seconds
/// (`None`: real time). Replaced by a rename, so a reader never sees half a
/// line.
fn write_frozen(file: &Path, now: Option<Timestamp>) -> std::io::Result<()> {
    let text = match now {
        None => "+0\n".to_string(),
        Some(t) => {
            // "2026-01-01T00:00:45.000Z" -> "2026-01-01 00:00:45"
            let s = Timestamp::from_secs(t.as_secs()).to_string();
            format!("{}\n", s.get(..19).unwrap_or(&s).replace('T', " "))
        }
    };
    let tmp = file.with_extension("new");
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, file)
}

fn user_name(who: &Principal) -> String {
    who.to_string()
}

impl DjangoOtp {
    /// Create the project, migrate it, and start the driver (~2 s).
    ///
    /// # Errors
    /// [`SetupProblem`] if the venv or libfaketime is missing, or Django
    /// does not come up (with the tail of its output).
    pub fn new() -> Result<Self, SetupProblem> {
        let venv = venv_dir();
        let python = venv.join("bin/python");
        if !python.is_file() {
            return Err(problem(format!("{} not found", python.display())));
        }
        let faketime = libfaketime(NAME)?;
        let dir = tempfile::Builder::new()
            .prefix("fobsim-django-otp-")
            .tempdir()
            .map_err(|e| problem(format!("temp folder: {e}")))?;
        cleanup::register_dir(dir.path());
        let root = dir.path();
        write(&root.join("manage.py"), MANAGE)?;
        write(&root.join("fobsim_site/__init__.py"), "")?;
        write(&root.join("fobsim_site/settings.py"), SETTINGS)?;
        write(&root.join("fobsim_driver/__init__.py"), "")?;
        write(&root.join("fobsim_driver/management/__init__.py"), "")?;
        write(
            &root.join("fobsim_driver/management/commands/__init__.py"),
            "",
        )?;
        write(
            &root.join("fobsim_driver/management/commands/fobsim_serve.py"),
            DRIVER,
        )?;
        let out = Command::new(&python)
            .args(["manage.py", "migrate", "--noinput"])
            .current_dir(root)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| problem(format!("{}: {e}", python.display())))?;
        if !out.status.success() {
            return Err(problem(format!(
                "manage.py migrate failed (is django-otp installed in {}?): {}",
                venv.display(),
                crate::peers::tail(&out.stderr, 300)
            )));
        }
        let clock_file = root.join("faketime");
        write_frozen(&clock_file, None).map_err(|e| problem(format!("clock file: {e}")))?;
        let log = std::fs::File::create(root.join("driver.log"))
            .map_err(|e| problem(format!("driver log: {e}")))?;
        let mut child = {
            use std::os::unix::process::CommandExt as _;
            Command::new(&python)
                .args(["-u", "manage.py", "fobsim_serve"])
                .current_dir(root)
                .env("LD_PRELOAD", &faketime)
                .env("FAKETIME_TIMESTAMP_FILE", &clock_file)
                .env("FAKETIME_NO_CACHE", "1")
                .env("FAKETIME_DONT_RESET", "1")
                .env("TZ", "UTC")
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(log)
                .process_group(0)
                .spawn()
                .map_err(|e| problem(format!("cannot start manage.py fobsim_serve: {e}")))?
        };
        let pid = child.id();
        cleanup::register_process(pid);
        let stdin = child.stdin.take();
        let stdout = child.stdout.take();
        let (tx, lines) = channel();
        if let Some(stdout) = stdout {
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            });
        }
        let mut me = DjangoOtp {
            dir,
            child: Some(child),
            pid,
            stdin,
            lines,
            clock_file,
            versions: String::new(),
            seeds: Seeds::default(),
            passwords: HashMap::new(),
            requests: 0,
        };
        let ready = me.read_line().map_err(|e| {
            problem(format!(
                "the driver did not start: {e}; log: {}",
                log_tail(me.dir.path())
            ))
        })?;
        let v: Value = serde_json::from_str(&ready).unwrap_or(Value::Null);
        if v.get("ready").and_then(Value::as_bool) != Some(true) {
            return Err(problem(format!(
                "the driver said {ready:?}; log: {}",
                log_tail(me.dir.path())
            )));
        }
        me.versions = format!(
            "Django {}, django-otp {}",
            v.get("django").and_then(Value::as_str).unwrap_or("?"),
            v.get("django_otp").and_then(Value::as_str).unwrap_or("?")
        );
        Ok(me)
    }

    /// The driver's PID (a process-group leader).
    #[must_use]
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Django's and django-otp's versions, as the driver reported them.
    #[must_use]
    pub fn versions(&self) -> &str {
        &self.versions
    }

    /// Requests answered so far.
    #[must_use]
    pub fn requests(&self) -> u64 {
        self.requests
    }

    fn read_line(&mut self) -> Result<String, String> {
        match self.lines.recv_timeout(TIMEOUT) {
            Ok(l) => Ok(l),
            Err(RecvTimeoutError::Timeout) => Err(format!("no answer within {TIMEOUT:?}")),
            Err(RecvTimeoutError::Disconnected) => Err("the driver exited".to_string()),
        }
    }

    /// One request at the engine's time `now` (`None`: real time).
    fn ask(&mut self, now: Option<Timestamp>, req: &Value) -> Result<Value, AdapterError> {
        write_frozen(&self.clock_file, now)
            .map_err(|e| transport(NAME, format!("clock file: {e}")))?;
        let op = req
            .get("op")
            .and_then(Value::as_str)
            .unwrap_or("?")
            .to_string();
        let Some(stdin) = self.stdin.as_mut() else {
            return Err(transport(NAME, "the driver's input is closed"));
        };
        writeln!(stdin, "{req}")
            .and_then(|()| stdin.flush())
            .map_err(|e| {
                transport(
                    NAME,
                    format!("{op}: {e}; log: {}", log_tail(self.dir.path())),
                )
            })?;
        self.requests += 1;
        let line = self.read_line().map_err(|e| {
            transport(
                NAME,
                format!("{op}: {e}; log: {}", log_tail(self.dir.path())),
            )
        })?;
        let v: Value = serde_json::from_str(&line)
            .map_err(|e| transport(NAME, format!("{op}: not JSON ({e}): {line:?}")))?;
        if let Some(err) = v.get("error").and_then(Value::as_str) {
            return Err(transport(NAME, format!("{op}: {err}")));
        }
        Ok(v)
    }

    /// A refusal from the driver's `reason`.
    fn refusal(&self, v: &Value, serial: &str) -> Answer {
        match v.get("reason").and_then(Value::as_str) {
            Some("password") => refuse(
                "AccessDenied",
                403,
                Some("WrongPassword"),
                "django-otp: authenticate() refused the password",
            ),
            Some("throttled") => {
                let t = v.get("throttle").cloned().unwrap_or(Value::Null);
                refuse(
                    "AccessDenied",
                    403,
                    Some("DeviceLocked"),
                    format!(
                        "django-otp: verification throttled after {} failures, until {}",
                        t.get("failures").and_then(Value::as_u64).unwrap_or(0),
                        t.get("until").and_then(Value::as_str).unwrap_or("?")
                    ),
                )
            }
            Some("not-assigned" | "no-device") => no_such(serial),
            Some("overflow") => refuse(
                "AccessDenied",
                403,
                None,
                format!(
                    "django-otp: no verdict at this time: {}",
                    v.get("message")
                        .and_then(Value::as_str)
                        .unwrap_or("overflow")
                ),
            ),
            _ => denied(),
        }
    }

    fn enable(
        &mut self,
        now: Timestamp,
        user: &str,
        serial: &str,
        code1: &str,
        code2: &str,
    ) -> Result<Answer, AdapterError> {
        let Some(seed) = self.seeds.get(serial).cloned() else {
            return Ok(no_such(serial));
        };
        if let Some(refusal) = unsupported(&seed) {
            return Ok(refusal);
        }
        let mut req = device_fields(&seed);
        req["op"] = json!("enable");
        req["user"] = json!(user);
        req["code1"] = json!(code1);
        req["code2"] = json!(code2);
        let v = self.ask(Some(now), &req)?;
        Ok(match v.get("reason").and_then(Value::as_str) {
            None => Answer::ok(),
            Some("invalid") => unsupported_token(format!(
                "django-otp: {}",
                v.get("message")
                    .and_then(Value::as_str)
                    .unwrap_or("invalid")
            )),
            Some(_) => refuse(
                "InvalidAuthenticationCode",
                403,
                None,
                "Authentication code for device is not valid.",
            ),
        })
    }
}

impl Drop for DjangoOtp {
    fn drop(&mut self) {
        // Closing its input ends the driver's loop; then stop it by PID.
        self.stdin = None;
        cleanup::stop_server(self.pid, self.child.take(), self.dir.path());
    }
}

impl EngineAdapter for DjangoOtp {
    fn name(&self) -> &str {
        NAME
    }

    fn capabilities(&self) -> &[Capability] {
        &CAPS
    }

    fn begin(&mut self, setup: &Setup) -> Result<(), AdapterError> {
        self.seeds = Seeds::new(&setup.seeds);
        let mut users = setup.users.clone();
        users.push(("root".into(), setup.account.root_password.clone()));
        self.passwords = users.iter().cloned().collect();
        let v = self.ask(Some(setup.start), &json!({"op": "reset", "users": users}))?;
        if v.get("ok").and_then(Value::as_bool) != Some(true) {
            return Err(setup_err(NAME, format!("reset: {v}")));
        }
        Ok(())
    }

    fn call(&mut self, now: Timestamp, request: &Request) -> Result<Answer, AdapterError> {
        Ok(match request {
            Request::Enable {
                who,
                serial,
                code1,
                code2,
                ..
            } => self.enable(now, &user_name(who), serial, code1, code2)?,
            Request::SignIn {
                who,
                password_ok,
                code,
            } => {
                let user = user_name(who);
                let mut password = self.passwords.get(&user).cloned().unwrap_or_default();
                if !password_ok {
                    password.push_str("-wrong");
                }
                let v = self.ask(
                    Some(now),
                    &json!({"op": "sign_in", "user": user, "password": password, "code": code}),
                )?;
                if v.get("ok").and_then(Value::as_bool) == Some(true) {
                    Answer::ok()
                } else {
                    self.refusal(&v, "")
                }
            }
            Request::Session {
                who, serial, code, ..
            } => {
                let v = self.ask(
                    Some(now),
                    &json!({"op": "session", "user": user_name(who), "name": serial, "code": code}),
                )?;
                if v.get("ok").and_then(Value::as_bool) == Some(true) {
                    Answer::ok()
                } else if v.get("reason").and_then(Value::as_str) == Some("not-assigned") {
                    // STS answers a serial that is not the user's as a failed check.
                    denied()
                } else {
                    self.refusal(&v, serial)
                }
            }
            Request::Deactivate { who, serial } => {
                let v = self.ask(
                    Some(now),
                    &json!({"op": "deactivate", "user": user_name(who), "name": serial}),
                )?;
                if v.get("ok").and_then(Value::as_bool) == Some(true) {
                    Answer::ok()
                } else {
                    no_such(serial)
                }
            }
            Request::ListDevices { who } => {
                let v = self.ask(Some(now), &json!({"op": "list", "user": user_name(who)}))?;
                let devices = v
                    .get("devices")
                    .and_then(Value::as_array)
                    .map(|a| {
                        a.iter()
                            .filter_map(Value::as_str)
                            .map(str::to_string)
                            .collect()
                    })
                    .unwrap_or_default();
                Answer::Ok {
                    data: Reply::Devices { devices },
                }
            }
            Request::DeviceState { serial } => {
                let v = self.ask(Some(now), &json!({"op": "state", "name": serial}))?;
                if v.get("ok").and_then(Value::as_bool) == Some(true) {
                    Answer::Ok {
                        data: Reply::State {
                            locked: v.get("locked").and_then(Value::as_bool) == Some(true),
                            assigned_to: v.get("user").and_then(Value::as_str).map(str::to_string),
                        },
                    }
                } else {
                    no_such(serial)
                }
            }
            Request::Import { seed } => {
                if let Some(refusal) = unsupported(seed) {
                    return Ok(refusal);
                }
                let mut req = device_fields(seed);
                req["op"] = json!("check_token");
                let v = self.ask(Some(now), &req)?;
                if v.get("ok").and_then(Value::as_bool) == Some(true) {
                    self.seeds.insert(seed.clone());
                    Answer::ok()
                } else {
                    unsupported_token(format!(
                        "django-otp: {}",
                        v.get("message")
                            .and_then(Value::as_str)
                            .unwrap_or("invalid")
                    ))
                }
            }
            other => {
                return Err(transport(
                    NAME,
                    format!("capability {} not declared", other.capability().as_str()),
                ));
            }
        })
    }
}
