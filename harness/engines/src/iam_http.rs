//! The `iam-http` adapter: fobsim's engine behind its AWS Query API (IAM
//! and STS), driven over real HTTP on loopback with SigV4-signed requests —
//! the wire path of `fobsim serve` (query parsing, signature checks,
//! policy evaluation, XML answers), with a fresh engine per scenario and
//! the server's clock set to the scenario's time before each request.
//!
//! Mapping: enable/resync/deactivate/list are IAM calls signed with the
//! acting user's own access key and `UserName` = that user; `session` is
//! STS `GetSessionToken` with `SerialNumber` + `TokenCode`. Users get an
//! `iam:*` policy (the seed's policy would deny deactivation without an
//! MFA session, which scenarios do not model); the policy path itself is
//! covered by `engine/tests/aws_server.rs` and `tests/aws/`. Root acts
//! with root keys and no `UserName` (API channel), which the engine
//! refuses for enable, as the seed says; the console channel, console
//! sign-in, recovery and device state have no HTTP API, so those
//! capabilities are not declared (steps that need them are `n/a`).
//!
//! A user declared with two access keys (`user alice keys=2`) gets two, and
//! `session alice key=2 ...` signs with the second. `import` gives the
//! served engine the seed record directly (the seed's IAM API has no
//! import action; the harness owns the server). Answers are the AWS error
//! shape — a code and a message — so the engine's finer kinds
//! (`DeviceLocked`, ...) do not come through: `error-kinds` is not
//! declared, and an expectation that names one is `n/a` with a note on the
//! step (match the message instead: `-> AccessDenied ~"locked"`).

use fobsim_core::Principal;
use std::collections::HashMap;
use std::sync::Arc;

use fobsim_aws::Service;
use fobsim_aws::client::{Client, HttpResponse};
use fobsim_aws::sigv4::Credentials;
use fobsim_core::{SimClock, Timestamp};
use fobsim_engine::api::credentials::KeyRing;
use fobsim_engine::api::policy::Policy;
use fobsim_engine::api::server::{Limits, Loopback};
use fobsim_engine::api::service::{AwsService, ServiceConfig};

use fobsim_engine::Engine;
use fobsim_engine::console::{Console, ConsoleConfig, Routes};

use crate::builtin::{Scratch, StoreKind, open_engine, profile_for};
use fobsim_harness::adapter::{
    AdapterError, Answer, Capability, EngineAdapter, Reply, Request, Setup,
};

const NAME: &str = "iam-http";

pub(crate) const ADMIN_POLICY: &str =
    r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"iam:*","Resource":"*"}]}"#;

const CAPS: [Capability; 9] = [
    Capability::EnableTwoCodes,
    Capability::ApiEnable,
    Capability::SessionMfa,
    Capability::Resync,
    Capability::Deactivate,
    Capability::ListDevices,
    Capability::Settings,
    Capability::Import,
    Capability::AccessKeys,
];

struct Live {
    // Dropped first: the client's connection, then the server.
    client: Client,
    /// `http://127.0.0.1:PORT`.
    endpoint: String,
    /// Each principal's access keys, by number (1-based).
    keys: HashMap<(Principal, u32), Credentials>,
    clock: Arc<SimClock>,
    _server: Loopback,
    // After the server: the engine's last handle goes here, not in a
    // server task while its runtime shuts down (closing a PostgreSQL
    // store's connections blocks).
    engine: Arc<Engine>,
    // Last: the scenario's database, removed once the engine is gone.
    scratch: Scratch,
}

impl Drop for Live {
    /// On PostgreSQL the server's task runs the engine in `block_in_place`
    /// and finishes its poll (re-arming the connection's idle timer) after
    /// the answer is out: the server's runtime must not shut down under
    /// it. A moment's wait lets it finish. (Moot once the server runs the
    /// engine on the blocking pool, as on branch harden.)
    fn drop(&mut self) {
        if matches!(self.scratch, Scratch::Postgres { .. }) {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
}

/// The adapter. `seed` drives the engine's RNG (as the builtin adapter's);
/// `store` is where the served engine keeps its state.
pub struct IamHttp {
    seed: u64,
    store: StoreKind,
    /// Serve the console (`/console/*`, docs/console.md) next to the API,
    /// as `fobsim serve` does (the `console` adapter's server).
    console: bool,
    live: Option<Live>,
}

impl std::fmt::Debug for IamHttp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IamHttp")
            .field("seed", &self.seed)
            .field("store", &self.store)
            .field("running", &self.live.is_some())
            .finish()
    }
}

pub(crate) fn setup_err(message: impl Into<String>) -> AdapterError {
    AdapterError::Setup {
        adapter: NAME.into(),
        message: message.into(),
    }
}

pub(crate) fn transport(message: impl Into<String>) -> AdapterError {
    AdapterError::Transport {
        adapter: NAME.into(),
        message: message.into(),
    }
}

fn key_for(index: usize, seed: u64) -> Credentials {
    Credentials {
        access_key_id: format!("AKIAHARNESS{index:09}"),
        secret_access_key: format!("harness-{seed:016x}-{index:06}-secret"),
        session_token: None,
    }
}

/// An HTTP answer as an adapter [`Answer`].
pub(crate) fn answer(r: &HttpResponse, ok_data: impl FnOnce(&HttpResponse) -> Reply) -> Answer {
    if r.status == 200 {
        return Answer::Ok { data: ok_data(r) };
    }
    Answer::Error {
        code: r.code().unwrap_or_else(|| format!("HTTP{}", r.status)),
        status: r.status,
        kind: None,
        message: r.message().unwrap_or_default(),
    }
}

impl IamHttp {
    /// A new adapter over the in-memory store (no server until a scenario
    /// begins).
    #[must_use]
    pub fn new(seed: u64) -> Self {
        IamHttp::with_store(StoreKind::Memory, seed)
    }

    /// A new adapter whose served engine keeps its state in `store` (a
    /// fresh database per scenario, as the builtin adapter's).
    #[must_use]
    pub fn with_store(store: StoreKind, seed: u64) -> Self {
        IamHttp {
            seed,
            store,
            console: false,
            live: None,
        }
    }

    /// This adapter with the console mounted under `/console` on each
    /// scenario's server, next to the API: the same engine, policies and
    /// clock, as `fobsim serve` combines them.
    #[must_use]
    pub fn with_console(mut self) -> Self {
        self.console = true;
        self
    }

    /// `http://127.0.0.1:PORT` of the current scenario's server (after
    /// [`EngineAdapter::begin`]).
    #[must_use]
    pub fn endpoint(&self) -> Option<String> {
        self.live.as_ref().map(|l| l.endpoint.clone())
    }

    /// The current scenario's served engine (after [`EngineAdapter::begin`]).
    #[must_use]
    pub fn engine(&self) -> Option<&Arc<Engine>> {
        self.live.as_ref().map(|l| &l.engine)
    }

    /// Set the server's clock (what the API and the console judge by).
    pub fn set_clock(&self, now: Timestamp) {
        if let Some(l) = &self.live {
            l.clock.set(now);
        }
    }

    fn start(&self, setup: &Setup) -> Result<Live, AdapterError> {
        let profile = profile_for(&setup.settings, self.seed).map_err(|e| match e {
            AdapterError::Setting { key, message, .. } => AdapterError::Setting {
                adapter: NAME.into(),
                key,
                message,
            },
            other => other,
        })?;
        let (engine, scratch) = open_engine(&self.store, profile).map_err(setup_err)?;
        let engine = Arc::new(engine);
        crate::builtin::populate(&engine, setup).map_err(setup_err)?;
        let mut ring = KeyRing::new(&[0x11; 32], Some(self.seed));
        let mut keys = HashMap::new();
        let root = key_for(0, self.seed);
        ring.add_access_key(
            &root.access_key_id,
            &root.secret_access_key,
            Principal::Root,
        )
        .map_err(|e| setup_err(e.to_string()))?;
        keys.insert((Principal::Root, 1), root);
        let admin = Arc::new(Policy::parse(ADMIN_POLICY).map_err(|e| setup_err(e.to_string()))?);
        let mut policies = HashMap::new();
        for (i, (user, _)) in setup.users.iter().enumerate() {
            let n = setup
                .access_keys
                .iter()
                .find(|(u, _)| u == user)
                .map_or(1, |(_, n)| *n);
            for k in 1..=n {
                // Key 1 keeps the numbering of a one-key run; later keys
                // are numbered past every user's first.
                let index = i + 1 + (k as usize - 1) * 100_000;
                let creds = key_for(index, self.seed);
                ring.add_access_key(
                    &creds.access_key_id,
                    &creds.secret_access_key,
                    Principal::user(user),
                )
                .map_err(|e| setup_err(e.to_string()))?;
                keys.insert((Principal::User(user.clone()), k), creds);
            }
            policies.insert(user.clone(), vec![Arc::clone(&admin)]);
        }
        let console_policies = policies.clone();
        let clock = Arc::new(SimClock::new(setup.start));
        let service = AwsService::new(
            Arc::clone(&engine),
            ring,
            policies,
            Arc::clone(&clock) as Arc<dyn fobsim_core::Clock>,
            ServiceConfig::default(),
        )
        .map_err(|e| setup_err(e.to_string()))?;
        let service = Arc::new(service);
        let server = if self.console {
            let console = Console::new(
                Arc::clone(&engine),
                console_policies,
                setup.users.iter().map(|(u, _)| u.clone()).collect(),
                Arc::clone(&clock) as Arc<dyn fobsim_core::Clock>,
                ConsoleConfig::default(),
            )
            .map_err(|e| setup_err(format!("console: {e}")))?;
            let limits = Limits {
                max_body: service.config().max_body,
                ..Limits::default()
            };
            Loopback::start_with(Arc::new(Routes::new(service, Arc::new(console))), limits, 1)
        } else {
            Loopback::start(service, 1)
        }
        .map_err(|e| setup_err(format!("loopback server: {e}")))?;
        let endpoint = server.endpoint();
        let client = Client::new(&endpoint).map_err(|e| setup_err(e.to_string()))?;
        Ok(Live {
            client,
            endpoint,
            keys,
            clock,
            engine,
            _server: server,
            scratch,
        })
    }
}

impl EngineAdapter for IamHttp {
    fn name(&self) -> &str {
        NAME
    }

    fn capabilities(&self) -> &[Capability] {
        &CAPS
    }

    fn begin(&mut self, setup: &Setup) -> Result<(), AdapterError> {
        self.live = None;
        self.live = Some(self.start(setup)?);
        Ok(())
    }

    fn check_setting(&self, key: &str, value: &str) -> Result<(), String> {
        crate::builtin::check_setting(key, value)
    }

    fn call(&mut self, now: Timestamp, request: &Request) -> Result<Answer, AdapterError> {
        let live = self
            .live
            .as_mut()
            .ok_or_else(|| transport("call before begin"))?;
        live.clock.set(now);
        if let Request::Import { seed } = request {
            return Ok(match live.engine.import_seeds(std::slice::from_ref(seed)) {
                Ok(_) => Answer::ok(),
                Err(e) => Answer::Error {
                    code: e.aws_code().to_string(),
                    status: e.http_status(),
                    kind: None,
                    message: e.message.clone(),
                },
            });
        }
        let who = api_principal(request)?;
        let key = match request {
            Request::Session { key, .. } => *key,
            _ => 1,
        };
        let Some(creds) = live.keys.get(&(who.clone(), key)).cloned() else {
            // A principal the setup did not create: AWS would not know the key.
            return Ok(Answer::Error {
                code: "InvalidClientTokenId".into(),
                status: 403,
                kind: None,
                message: format!("no access key for {who}"),
            });
        };
        let user = match who {
            Principal::User(u) => Some(u.as_str()),
            Principal::Root => None,
        };
        let Some((service, params)) = aws_query(request, user) else {
            return Err(transport("unreachable request kind"));
        };
        let reply = live
            .client
            .call(service, &params, &creds, now)
            .map_err(|e| transport(e.to_string()))?;
        Ok(answer(&reply, |r| match request {
            Request::ListDevices { .. } => Reply::Devices {
                devices: fobsim_aws::xml::texts_of(&r.body, "SerialNumber"),
            },
            _ => Reply::None,
        }))
    }
}

/// Principal acts in a request that has an AWS API; an adapter error for the
/// others (the runner never sends them: their capabilities are not declared).
pub(crate) fn api_principal(request: &Request) -> Result<&Principal, AdapterError> {
    match request {
        Request::Enable { who, .. }
        | Request::Resync { who, .. }
        | Request::Deactivate { who, .. }
        | Request::ListDevices { who }
        | Request::Session { who, .. } => Ok(who),
        other => Err(transport(format!(
            "{:?} has no HTTP API (capability {} not declared)",
            other.capability(),
            other.capability().as_str()
        ))),
    }
}

/// The AWS Query service and parameters of `request` (with `UserName` for
/// IAM actions when `user` is given); `None` for requests that have no AWS
/// API (console sign-in, root recovery, ...). Shared by every adapter that
/// speaks the IAM/STS Query protocol (ours over HTTP, moto).
pub(crate) fn aws_query<'a>(
    request: &'a Request,
    user: Option<&'a str>,
) -> Option<(Service, Vec<(&'static str, &'a str)>)> {
    let mut params: Vec<(&'static str, &'a str)> = Vec::with_capacity(6);
    let service = match request {
        Request::Enable {
            serial,
            code1,
            code2,
            ..
        }
        | Request::Resync {
            serial,
            code1,
            code2,
            ..
        } => {
            let action = if matches!(request, Request::Enable { .. }) {
                "EnableMFADevice"
            } else {
                "ResyncMFADevice"
            };
            params.push(("Action", action));
            params.push(("SerialNumber", serial));
            params.push(("AuthenticationCode1", code1));
            params.push(("AuthenticationCode2", code2));
            Service::Iam
        }
        Request::Deactivate { serial, .. } => {
            params.push(("Action", "DeactivateMFADevice"));
            params.push(("SerialNumber", serial));
            Service::Iam
        }
        Request::ListDevices { .. } => {
            params.push(("Action", "ListMFADevices"));
            params.push(("MaxItems", "1000"));
            Service::Iam
        }
        Request::Session { serial, code, .. } => {
            params.push(("Action", "GetSessionToken"));
            params.push(("SerialNumber", serial));
            params.push(("TokenCode", code));
            Service::Sts
        }
        _ => return None,
    };
    if service == Service::Iam
        && let Some(u) = user
    {
        params.push(("UserName", u));
    }
    Some((service, params))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::builtin::Builtin;
    use fobsim_harness::driver::InProcess;
    use fobsim_harness::runner::{DEFAULT_SEED, Runner, Verdict};
    use fobsim_harness::suite;

    /// Over HTTP, every scenario gets the in-process verdict, except those
    /// that need a capability HTTP cannot express (`n/a`).
    #[test]
    fn same_verdicts_as_in_process() {
        let scenarios = suite::builtin().unwrap();
        let mut http = IamHttp::new(DEFAULT_SEED);
        let mut builtin = Builtin::in_memory(DEFAULT_SEED);
        let (mut same, mut na) = (0, 0);
        for sc in &scenarios {
            let a = Runner::new(&mut builtin, &mut InProcess, DEFAULT_SEED).run(sc);
            let b = Runner::new(&mut http, &mut InProcess, DEFAULT_SEED).run(sc);
            if let Verdict::NotApplicable { capability, .. } = &b.verdict {
                // Only what has no HTTP API may be missing, and the finer
                // kinds the AWS error shape does not carry.
                assert!(
                    matches!(
                        capability,
                        Capability::ConsoleSignIn
                            | Capability::RootUser
                            | Capability::RootRecovery
                            | Capability::ObserveLockout
                            | Capability::ErrorKinds
                    ),
                    "{}: n/a for {}",
                    sc.id,
                    capability.as_str()
                );
                na += 1;
                continue;
            }
            assert_eq!(a.verdict, b.verdict, "{}", sc.id);
            same += 1;
        }
        assert!(same >= 20, "{same} same, {na} n/a of {}", scenarios.len());
    }

    #[test]
    fn a_session_scenario_passes_over_http() {
        let sc = suite::builtin()
            .unwrap()
            .into_iter()
            .find(|s| s.id == "session-token-with-mfa")
            .unwrap();
        let mut http = IamHttp::new(1);
        let r = Runner::new(&mut http, &mut InProcess, 1).run(&sc);
        assert_eq!(r.verdict, Verdict::Pass);
        assert_eq!(http.name(), "iam-http");
        assert!(format!("{http:?}").contains("running: true"));
    }
}
