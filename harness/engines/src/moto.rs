//! moto's IAM/STS mock (`moto_server`, PyPI `moto[server]`) through the AWS
//! Query API, as a contrast: moto accepts **any** codes for
//! EnableMFADevice, answers ResyncMFADevice with HTTP 500 (not
//! implemented) and ignores the code of GetSessionToken.
//!
//! The adapter starts `moto_server -H 127.0.0.1 -p PORT` from the venv
//! (`FOBSIM_MOTO_VENV`, else `<peers>/venv-moto`) as a process-group
//! leader, stops it by PID on drop and on interrupt ([`super::cleanup`]),
//! resets moto's state per scenario (`POST /moto-api/reset`) and creates
//! the scenario's IAM users. Requests are SigV4-signed at the step's time
//! with dummy keys (moto does not check signatures); moto has no clock to
//! move, and it never needs one: it checks no code.
//!
//! Declared: enable (console = the same IAM call, and API), session MFA,
//! resync, deactivate, list devices. Not: console sign-in, root user,
//! root recovery, lockout state, settings.

use fobsim_core::Principal;
use std::path::PathBuf;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use fobsim_aws::Service;
use fobsim_aws::client::{Client, HttpResponse};
use fobsim_aws::sigv4::Credentials;
use fobsim_aws::xml::texts_of;
use fobsim_core::Timestamp;

use crate::cleanup;
use crate::peers::{setup_err, transport, venv};
use fobsim_harness::adapter::SetupProblem;
use fobsim_harness::adapter::{
    AdapterError, Answer, Capability, EngineAdapter, Reply, Request, Setup,
};

const NAME: &str = "moto";

const CAPS: [Capability; 6] = [
    Capability::EnableTwoCodes,
    Capability::ApiEnable,
    Capability::SessionMfa,
    Capability::Resync,
    Capability::Deactivate,
    Capability::ListDevices,
];

/// The moto adapter (owns the `moto_server` process).
pub struct Moto {
    child: Option<Child>,
    pid: u32,
    endpoint: String,
    dir: tempfile::TempDir,
}

impl std::fmt::Debug for Moto {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Moto")
            .field("pid", &self.pid)
            .field("endpoint", &self.endpoint)
            .finish_non_exhaustive()
    }
}

fn problem(missing: impl Into<String>) -> SetupProblem {
    SetupProblem::new(
        NAME,
        missing,
        "python3 -m venv target/peers/venv-moto && target/peers/venv-moto/bin/pip install 'moto[server]'",
    )
}

/// The virtualenv (`FOBSIM_MOTO_VENV`, else `<peers>/venv-moto`).
#[must_use]
pub fn venv_dir() -> PathBuf {
    venv("FOBSIM_MOTO_VENV", "venv-moto")
}

fn creds() -> Credentials {
    Credentials {
        access_key_id: "AKIAFOBSIMMOTO000001".into(),
        secret_access_key: "fobsim-moto-any-secret".into(),
        session_token: None,
    }
}

fn answer(r: &HttpResponse, data: Reply) -> Answer {
    if r.status == 200 {
        return Answer::Ok { data };
    }
    Answer::Error {
        code: r.code().unwrap_or_else(|| format!("HTTP{}", r.status)),
        status: r.status,
        kind: None,
        message: r
            .message()
            .unwrap_or_else(|| crate::peers::tail(r.body.as_bytes(), 120)),
    }
}

impl Moto {
    /// Start `moto_server` (~2 s).
    ///
    /// # Errors
    /// [`SetupProblem`] if the venv is missing or the server does not start.
    pub fn new() -> Result<Self, SetupProblem> {
        let program = venv_dir().join("bin/moto_server");
        if !program.is_file() {
            return Err(problem(format!("{} not found", program.display())));
        }
        let dir = tempfile::Builder::new()
            .prefix("fobsim-moto-")
            .tempdir()
            .map_err(|e| problem(format!("temp folder: {e}")))?;
        cleanup::register_dir(dir.path());
        let port = cleanup::free_port().map_err(|e| problem(format!("no free port: {e}")))?;
        let child = cleanup::spawn_server(
            Command::new(&program).args(["-H", "127.0.0.1", "-p", &port.to_string()]),
            &dir.path().join("server.log"),
        )
        .map_err(|e| problem(format!("cannot start moto_server: {e}")))?;
        let pid = child.id();
        let mut me = Moto {
            child: Some(child),
            pid,
            endpoint: format!("http://127.0.0.1:{port}"),
            dir,
        };
        let until = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(c) = me.child.as_mut()
                && let Ok(Some(status)) = c.try_wait()
            {
                let log = std::fs::read(me.dir.path().join("server.log")).unwrap_or_default();
                return Err(problem(format!(
                    "moto_server exited ({status}): {}",
                    crate::peers::tail(&log, 300)
                )));
            }
            if me
                .raw("POST", "/moto-api/reset")
                .is_ok_and(|r| r.status == 200)
            {
                return Ok(me);
            }
            if Instant::now() > until {
                return Err(problem("moto_server did not answer within 60 s"));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The server's PID (a process-group leader).
    #[must_use]
    pub fn pid(&self) -> u32 {
        self.pid
    }

    fn client(&self) -> Result<Client, AdapterError> {
        Client::new(&self.endpoint).map_err(|e| transport(NAME, e.to_string()))
    }

    fn raw(&self, method: &str, path: &str) -> Result<HttpResponse, AdapterError> {
        self.client()?
            .send(method, path, &[("Connection", "close")], b"")
            .map_err(|e| transport(NAME, format!("{method} {path}: {e}")))
    }

    fn call_aws(
        &self,
        service: Service,
        params: &[(&str, &str)],
        now: Timestamp,
    ) -> Result<HttpResponse, AdapterError> {
        self.client()?
            .call(service, params, &creds(), now)
            .map_err(|e| transport(NAME, e.to_string()))
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        cleanup::stop_server(self.pid, self.child.take(), self.dir.path());
    }
}

impl EngineAdapter for Moto {
    fn name(&self) -> &str {
        NAME
    }

    fn capabilities(&self) -> &[Capability] {
        &CAPS
    }

    fn begin(&mut self, setup: &Setup) -> Result<(), AdapterError> {
        let r = self.raw("POST", "/moto-api/reset")?;
        if r.status != 200 {
            return Err(setup_err(NAME, format!("reset: HTTP {}", r.status)));
        }
        for (user, _) in &setup.users {
            let r = self.call_aws(
                Service::Iam,
                &[("Action", "CreateUser"), ("UserName", user)],
                setup.start,
            )?;
            if r.status != 200 {
                return Err(setup_err(
                    NAME,
                    format!("CreateUser {user}: HTTP {}", r.status),
                ));
            }
        }
        Ok(())
    }

    fn call(&mut self, now: Timestamp, request: &Request) -> Result<Answer, AdapterError> {
        let user = match request {
            Request::Enable { who, .. }
            | Request::Resync { who, .. }
            | Request::Deactivate { who, .. }
            | Request::ListDevices { who }
            | Request::Session { who, .. } => match who {
                Principal::User(u) => Some(u.clone()),
                Principal::Root => None,
            },
            other => {
                return Err(transport(
                    NAME,
                    format!("capability {} not declared", other.capability().as_str()),
                ));
            }
        };
        let Some((service, params)) = crate::iam_http::aws_query(request, user.as_deref()) else {
            return Err(transport(NAME, "unreachable request kind"));
        };
        let r = self.call_aws(service, &params, now)?;
        let data = match request {
            Request::ListDevices { .. } if r.status == 200 => Reply::Devices {
                devices: texts_of(&r.body, "SerialNumber"),
            },
            _ => Reply::None,
        };
        Ok(answer(&r, data))
    }
}
