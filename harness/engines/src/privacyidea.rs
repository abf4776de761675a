//! privacyIDEA 3.x through its REST API, started by the adapter itself.
//!
//! Startup (once per adapter, ~10 s): a [`Server`] (shared with `fobsim
//! bench`: a temp folder with `pi.cfg` (SQLite), `pi-manage setup
//! create_enckey / create_audit_keys / create_tables`, an admin, then
//! `pi-manage run -h 127.0.0.1 -p PORT` as a process-group leader under
//! libfaketime (`LD_PRELOAD`, `FAKETIME_TIMESTAMP_FILE` +
//! `FAKETIME_NO_CACHE=1`), see [`ServerOptions::matrix`]); then a
//! `passwdresolver` over a users file in the temp folder and a realm
//! `fobsim`. The server is stopped by PID (its group) on drop and on
//! interrupt ([`super::cleanup`]).
//!
//! The clock: before each request the timestamp file is rewritten with the
//! offset that puts the server's clock at the step's true time (a running
//! clock, so privacyIDEA's config cache and JWTs keep working; the request
//! itself adds a few ms).
//!
//! Per scenario: the users file is rewritten (privacyIDEA re-reads it), the
//! adapter's earlier tokens are deleted and each vendor seed becomes an
//! unassigned token (`/token/init` type totp, hex `otpkey`, `genkey=0`,
//! `otplen`, `hashlib`, `timeStep`).
//!
//! Mapping (privacyIDEA's defaults, no policies):
//!
//! | request | privacyIDEA |
//! |---|---|
//! | enable (2 codes) | `/token/assign` (user, realm, token PIN = the user's password), then `/token/resync` with both codes; refused → `/token/unassign` |
//! | sign-in | `/validate/check` user + realm, `pass` = PIN + code |
//! | session | `/validate/check` user + realm + serial, `pass` = PIN + code |
//! | resync | `/token/resync` (the token must be the user's) |
//! | deactivate | `/token/unassign` (the token must be the user's) |
//! | list devices | `/token/?user=&realm=` |
//! | device state | `/token/?serial=`: locked when `failcount >= maxfail` |
//! | import | `/token/init` as at setup; a refusal is `ValidationError` |
//!
//! A refused check whose message names the fail counter is reported with
//! the kind `DeviceLocked` (error kinds declared). Not declared: API
//! enable, root user, root recovery, settings, access keys.

use fobsim_core::Principal;
use std::collections::HashSet;
use std::path::PathBuf;

use fobsim_aws::client::{Client, ClientError};
use fobsim_aws::query::encode_form;
use fobsim_core::{Kind, SeedRecord, Timestamp};
use serde_json::Value;

use crate::peers::{refuse, setup_err, transport, venv};
use fobsim_harness::adapter::SetupProblem;
use fobsim_harness::adapter::{
    AdapterError, Answer, Capability, EngineAdapter, Reply, Request, Setup,
};

mod server;

pub use server::{ADMIN, ADMIN_PASSWORD, Config, Http, Server, ServerOptions};

const NAME: &str = "privacyidea";
const REALM: &str = "fobsim";

const CAPS: [Capability; 9] = [
    Capability::EnableTwoCodes,
    Capability::ConsoleSignIn,
    Capability::SessionMfa,
    Capability::Resync,
    Capability::Deactivate,
    Capability::ListDevices,
    Capability::ObserveLockout,
    Capability::Import,
    Capability::ErrorKinds,
];

/// The privacyIDEA adapter (owns the server process).
pub struct PrivacyIdea {
    server: Server,
    endpoint: String,
    client: Client,
    jwt: Option<String>,
    passwords: std::collections::HashMap<String, String>,
    tokens: HashSet<String>,
    requests: u64,
}

impl std::fmt::Debug for PrivacyIdea {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PrivacyIdea")
            .field("server", &self.server)
            .field("requests", &self.requests)
            .finish_non_exhaustive()
    }
}

fn problem(missing: impl Into<String>) -> SetupProblem {
    SetupProblem::new(
        NAME,
        missing,
        "python3 -m venv target/peers/venv-pi && target/peers/venv-pi/bin/pip install privacyidea",
    )
}

/// The virtualenv (`FOBSIM_PRIVACYIDEA_VENV`, else `<peers>/venv-pi`).
#[must_use]
pub fn venv_dir() -> PathBuf {
    venv("FOBSIM_PRIVACYIDEA_VENV", "venv-pi")
}

fn user_name(w: &Principal) -> String {
    w.to_string()
}

impl PrivacyIdea {
    /// Set up and start a privacyIDEA server (takes ~10 s).
    ///
    /// # Errors
    /// [`SetupProblem`] if the venv or libfaketime is missing, or the server
    /// does not come up (with the tail of its log).
    pub fn new() -> Result<Self, SetupProblem> {
        let server = Server::start(&ServerOptions::matrix())?;
        std::fs::write(server.dir().join("passwd"), "")
            .map_err(|e| problem(format!("users file: {e}")))?;
        let endpoint = server.endpoint();
        let client = Client::new(&endpoint).map_err(|e| problem(e.to_string()))?;
        let mut me = PrivacyIdea {
            endpoint,
            client,
            server,
            jwt: None,
            passwords: std::collections::HashMap::new(),
            tokens: HashSet::new(),
            requests: 0,
        };
        me.configure().map_err(|e| {
            problem(format!(
                "configuring the server: {e}; log: {}",
                me.server.log_tail()
            ))
        })?;
        Ok(me)
    }

    /// The server's PID (a process-group leader).
    #[must_use]
    pub fn pid(&self) -> u32 {
        self.server.pid()
    }

    /// REST requests sent so far.
    #[must_use]
    pub fn requests(&self) -> u64 {
        self.requests
    }

    /// The server's address, `http://127.0.0.1:PORT` (for requests the
    /// adapter does not make itself, e.g. a PSKC import with curl).
    #[must_use]
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// An administrator's token for the REST API (the `Authorization`
    /// header's value), at the server's real time.
    ///
    /// # Errors
    /// [`AdapterError::Transport`] when the server does not log the
    /// administrator in.
    pub fn admin_token(&mut self) -> Result<String, AdapterError> {
        self.set_clock(None)?;
        self.login()?;
        self.jwt
            .clone()
            .ok_or_else(|| transport(NAME, "/auth gave no token"))
    }

    /// Whether privacyIDEA accepts `otp` for the token `serial` (no user,
    /// no PIN: `/validate/check` with `serial` and `pass`), and its message,
    /// at the server's real time.
    ///
    /// # Errors
    /// [`AdapterError::Transport`] when the server does not answer.
    pub fn check_serial(
        &mut self,
        serial: &str,
        otp: &str,
    ) -> Result<(bool, String), AdapterError> {
        self.set_clock(None)?;
        self.validate(&[("serial", serial), ("pass", otp)])
    }

    /// What privacyIDEA knows of the token `serial` (`/token/?serial=`),
    /// `None` when it has no such token.
    ///
    /// # Errors
    /// [`AdapterError::Transport`] when the server does not answer.
    pub fn token_info(&mut self, serial: &str) -> Result<Option<Value>, AdapterError> {
        self.set_clock(None)?;
        let q = encode_form(&[("serial", serial)]);
        Ok(self.token(&q)?.into_iter().next())
    }

    fn configure(&mut self) -> Result<(), AdapterError> {
        self.set_clock(None)?;
        let passwd = self.server.dir().join("passwd").display().to_string();
        self.admin(
            "POST",
            "/resolver/fobsimres",
            &[("type", "passwdresolver"), ("fileName", &passwd)],
        )?;
        self.admin(
            "POST",
            &format!("/realm/{REALM}"),
            &[("resolvers", "fobsimres")],
        )?;
        // Let the server load the new configuration while its clock is
        // still real: privacyIDEA reloads its config by comparing
        // timestamps, which a clock moved back would confuse.
        let realms = self.admin("GET", "/realm/", &[])?;
        if realms.pointer(&format!("/result/value/{REALM}")).is_none() {
            return Err(transport(NAME, "the realm was not created"));
        }
        Ok(())
    }

    /// Put the server's clock at `now` (`None`: real time).
    fn set_clock(&self, now: Option<Timestamp>) -> Result<(), AdapterError> {
        self.server
            .set_clock(now)
            .map_err(|e| transport(NAME, format!("clock file: {e}")))
    }

    /// One HTTP request: (status, JSON body or Null).
    fn http(
        &mut self,
        method: &str,
        path: &str,
        form: &[(&str, &str)],
        auth: bool,
    ) -> Result<(u16, Value), AdapterError> {
        self.try_http(method, path, form, auth)
            .map_err(|e| transport(NAME, format!("{method} {path}: {e}")))
    }

    /// [`PrivacyIdea::http`] with the client's error.
    fn try_http(
        &mut self,
        method: &str,
        path: &str,
        form: &[(&str, &str)],
        auth: bool,
    ) -> Result<(u16, Value), ClientError> {
        let body = encode_form(form);
        // The development server closes every connection: one per request.
        let mut headers = vec![("Connection", "close"), ("Accept", "application/json")];
        if auth && let Some(j) = &self.jwt {
            headers.push(("Authorization", j));
        }
        if method != "GET" {
            headers.push(("Content-Type", "application/x-www-form-urlencoded"));
        }
        self.requests += 1;
        let r = self.client.send(method, path, &headers, body.as_bytes())?;
        let v = serde_json::from_str(&r.body).unwrap_or(Value::Null);
        Ok((r.status, v))
    }

    fn login(&mut self) -> Result<(), AdapterError> {
        let (status, v) = self.http(
            "POST",
            "/auth",
            &[("username", ADMIN), ("password", ADMIN_PASSWORD)],
            false,
        )?;
        let jwt = v
            .pointer("/result/value/token")
            .and_then(Value::as_str)
            .ok_or_else(|| {
                transport(
                    NAME,
                    format!("/auth answered HTTP {status} without a token"),
                )
            })?;
        self.jwt = Some(jwt.to_string());
        Ok(())
    }

    /// An admin request (logs in again once if the JWT expired — the clock
    /// jumps); the JSON `result` must have `status: true`.
    fn admin(
        &mut self,
        method: &str,
        path: &str,
        form: &[(&str, &str)],
    ) -> Result<Value, AdapterError> {
        if self.jwt.is_none() {
            self.login()?;
        }
        let (mut status, mut v) = self.http(method, path, form, true)?;
        if status == 401 || status == 403 || error_message(&v).contains("uthentication") {
            self.login()?;
            (status, v) = self.http(method, path, form, true)?;
        }
        if v.pointer("/result/status").and_then(Value::as_bool) == Some(true) {
            Ok(v)
        } else {
            Err(transport(
                NAME,
                format!("{method} {path}: HTTP {status}: {}", error_message(&v)),
            ))
        }
    }

    /// An admin request whose refusal is an answer, not an adapter error:
    /// `Ok(Err(message))` when privacyIDEA said no.
    fn admin_try(
        &mut self,
        method: &str,
        path: &str,
        form: &[(&str, &str)],
    ) -> Result<Result<Value, String>, AdapterError> {
        match self.admin(method, path, form) {
            Ok(v) => Ok(Ok(v)),
            Err(AdapterError::Transport { message, .. }) if message.contains(": HTTP ") => {
                Ok(Err(message))
            }
            Err(e) => Err(e),
        }
    }

    fn validate(&mut self, form: &[(&str, &str)]) -> Result<(bool, String), AdapterError> {
        let (status, v) = match self.try_http("POST", "/validate/check", form, false) {
            Ok(r) => r,
            // The server took the request and closed the connection without
            // an answer (it does at year 2603): the engine's failure to
            // validate, not the adapter's.
            Err(e) if e.closed_without_answer() => {
                return Ok((
                    false,
                    "no answer: the server closed the connection".to_string(),
                ));
            }
            Err(e) => return Err(transport(NAME, format!("POST /validate/check: {e}"))),
        };
        let ok = v.pointer("/result/value").and_then(Value::as_bool);
        let msg = v
            .pointer("/detail/message")
            .and_then(Value::as_str)
            .map(str::to_string)
            .unwrap_or_else(|| error_message(&v));
        match ok {
            Some(b) => Ok((b, msg)),
            None if status < 500 => Ok((false, msg)),
            None => Err(transport(
                NAME,
                format!("/validate/check: HTTP {status}: {msg}"),
            )),
        }
    }

    fn token(&mut self, query: &str) -> Result<Vec<Value>, AdapterError> {
        let v = self.admin("GET", &format!("/token/?{query}"), &[])?;
        Ok(v.pointer("/result/value/tokens")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default())
    }

    fn owns(&mut self, user: &str, serial: &str) -> Result<bool, AdapterError> {
        let q = encode_form(&[("serial", serial), ("user", user), ("realm", REALM)]);
        Ok(!self.token(&q)?.is_empty())
    }

    /// `/token/init` of a vendor seed record (an unassigned token):
    /// `Ok(Err(message))` when privacyIDEA refuses it.
    fn init_token(&mut self, s: &SeedRecord) -> Result<Result<(), String>, AdapterError> {
        let serial = s.serial.to_string();
        let hex = s.secret.to_hex();
        let digits = s.digits.to_string();
        let hash = s.algorithm.as_str();
        let mut form = vec![
            ("serial", serial.as_str()),
            ("otpkey", hex.as_str()),
            ("genkey", "0"),
            ("otplen", digits.as_str()),
            ("hashlib", hash),
        ];
        let step;
        match s.kind {
            Kind::Totp { period } => {
                step = period.to_string();
                form.push(("type", "totp"));
                form.push(("timeStep", step.as_str()));
            }
            Kind::Hotp => form.push(("type", "hotp")),
        }
        let r = self.admin_try("POST", "/token/init", &form)?;
        if r.is_ok() {
            self.tokens.insert(serial);
        }
        Ok(r.map(|_| ()))
    }

    fn pin(&self, user: &str) -> String {
        self.passwords.get(user).cloned().unwrap_or_default()
    }
}

fn error_message(v: &Value) -> String {
    v.pointer("/result/error/message")
        .and_then(Value::as_str)
        .map_or_else(|| "no error message".to_string(), str::to_string)
}

fn denied(msg: &str) -> Answer {
    let locked = msg.contains("failcounter") || msg.contains("Failcounter");
    refuse(
        "AccessDenied",
        403,
        locked.then_some("DeviceLocked"),
        format!("privacyIDEA: {msg}"),
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

impl EngineAdapter for PrivacyIdea {
    fn name(&self) -> &str {
        NAME
    }

    fn capabilities(&self) -> &[Capability] {
        &CAPS
    }

    fn begin(&mut self, setup: &Setup) -> Result<(), AdapterError> {
        self.set_clock(Some(setup.start))?;
        // No fresh login here (~0.5 s each): `admin` logs in again when the
        // clock jump made the JWT expire or not yet valid.
        let old: Vec<String> = self.tokens.drain().collect();
        for serial in old {
            let _ = self.admin_try("DELETE", &format!("/token/{serial}"), &[])?;
        }
        let mut users = setup.users.clone();
        users.push(("root".into(), setup.account.root_password.clone()));
        let passwd: String = users
            .iter()
            .enumerate()
            .map(|(i, (u, _))| format!("{u}:x:{}:{}:{u}:/home/{u}:/bin/sh\n", 2000 + i, 2000 + i))
            .collect();
        std::fs::write(self.server.dir().join("passwd"), passwd)
            .map_err(|e| setup_err(NAME, format!("users file: {e}")))?;
        self.passwords = users.into_iter().collect();
        for s in &setup.seeds {
            self.init_token(s)?
                .map_err(|e| setup_err(NAME, format!("token {}: {e}", s.serial)))?;
        }
        Ok(())
    }

    fn call(&mut self, now: Timestamp, request: &Request) -> Result<Answer, AdapterError> {
        self.set_clock(Some(now))?;
        Ok(match request {
            Request::Enable {
                who,
                serial,
                code1,
                code2,
                ..
            } => {
                let user = user_name(who);
                let pin = self.pin(&user);
                let assigned = self.admin_try(
                    "POST",
                    "/token/assign",
                    &[
                        ("serial", serial),
                        ("user", &user),
                        ("realm", REALM),
                        ("pin", &pin),
                    ],
                )?;
                if let Err(msg) = assigned {
                    return Ok(if msg.contains("already assigned") {
                        refuse(
                            "EntityAlreadyExists",
                            409,
                            None,
                            format!("privacyIDEA: {msg}"),
                        )
                    } else if msg.contains("does not exist") || msg.contains("No token") {
                        no_such(serial)
                    } else {
                        refuse("InvalidInput", 400, None, format!("privacyIDEA: {msg}"))
                    });
                }
                let synced = self.admin_try(
                    "POST",
                    "/token/resync",
                    &[("serial", serial), ("otp1", code1), ("otp2", code2)],
                )?;
                let ok = matches!(&synced, Ok(v) if v.pointer("/result/value").and_then(Value::as_bool) == Some(true));
                if ok {
                    Answer::ok()
                } else {
                    self.admin_try("POST", "/token/unassign", &[("serial", serial)])?
                        .map_err(|m| {
                            transport(NAME, format!("unassign after a refused enable: {m}"))
                        })?;
                    refuse(
                        "InvalidAuthenticationCode",
                        403,
                        None,
                        "Authentication code for device is not valid.",
                    )
                }
            }
            Request::SignIn {
                who,
                password_ok,
                code,
            } => {
                let user = user_name(who);
                let mut pass = self.pin(&user);
                if !password_ok {
                    pass.push_str("-wrong");
                }
                pass.push_str(code.as_deref().unwrap_or(""));
                let (ok, msg) =
                    self.validate(&[("user", &user), ("realm", REALM), ("pass", &pass)])?;
                if ok { Answer::ok() } else { denied(&msg) }
            }
            Request::Session {
                who, serial, code, ..
            } => {
                let user = user_name(who);
                let pass = format!("{}{code}", self.pin(&user));
                let (ok, msg) = self.validate(&[
                    ("user", &user),
                    ("realm", REALM),
                    ("serial", serial),
                    ("pass", &pass),
                ])?;
                if ok { Answer::ok() } else { denied(&msg) }
            }
            Request::Resync {
                who,
                serial,
                code1,
                code2,
            } => {
                if !self.owns(&user_name(who), serial)? {
                    return Ok(no_such(serial));
                }
                let r = self.admin_try(
                    "POST",
                    "/token/resync",
                    &[("serial", serial), ("otp1", code1), ("otp2", code2)],
                )?;
                match r {
                    Ok(v) if v.pointer("/result/value").and_then(Value::as_bool) == Some(true) => {
                        Answer::ok()
                    }
                    _ => refuse(
                        "InvalidAuthenticationCode",
                        403,
                        None,
                        "Authentication code for device is not valid.",
                    ),
                }
            }
            Request::Deactivate { who, serial } => {
                if !self.owns(&user_name(who), serial)? {
                    return Ok(no_such(serial));
                }
                match self.admin_try("POST", "/token/unassign", &[("serial", serial)])? {
                    Ok(_) => Answer::ok(),
                    Err(m) => refuse("InvalidInput", 400, None, format!("privacyIDEA: {m}")),
                }
            }
            Request::ListDevices { who } => {
                let q = encode_form(&[("user", &user_name(who)), ("realm", REALM)]);
                let devices = self
                    .token(&q)?
                    .iter()
                    .filter_map(|t| t.get("serial").and_then(Value::as_str).map(str::to_string))
                    .collect();
                Answer::Ok {
                    data: Reply::Devices { devices },
                }
            }
            Request::DeviceState { serial } => {
                let q = encode_form(&[("serial", serial)]);
                match self.token(&q)?.first() {
                    None => no_such(serial),
                    Some(t) => {
                        let fail = t.get("failcount").and_then(Value::as_i64).unwrap_or(0);
                        let max = t.get("maxfail").and_then(Value::as_i64).unwrap_or(10);
                        let user = t
                            .get("username")
                            .and_then(Value::as_str)
                            .filter(|u| !u.is_empty())
                            .map(str::to_string);
                        Answer::Ok {
                            data: Reply::State {
                                locked: fail >= max,
                                assigned_to: user,
                            },
                        }
                    }
                }
            }
            Request::Import { seed } => match self.init_token(seed)? {
                Ok(()) => Answer::ok(),
                Err(m) => refuse("ValidationError", 400, None, format!("privacyIDEA: {m}")),
            },
            other => {
                return Err(transport(
                    NAME,
                    format!("capability {} not declared", other.capability().as_str()),
                ));
            }
        })
    }
}
