//! The `iam-http` adapter against an endpoint that is already running:
//! `fobsim run --engine iam-http --endpoint URL --bootstrap FILE --control SOCKET`
//! (or `--faketime-file FILE`).
//!
//! One long-running endpoint serves every scenario, so scenarios are kept
//! apart by names instead of a fresh engine each: scenario `S`'s user
//! `alice` is the endpoint's user `alice.T` and its registered fob
//! `GAHT00000001` is the endpoint's token `GAHT00000001.T`, where `T` is
//! [`tag`]`(S)` (eight hex digits of a SHA-256 of the scenario id). Time is
//! not shared state: before every request the endpoint's clock is set to
//! the scenario's time, and the request is signed at that time — through
//! the control plane (the JSON-lines protocol of `fobsim serve|emulate
//! --clock manual --control SOCKET`, documented in
//! `docs/serial-protocol.md`), or through a libfaketime timestamp file for
//! an engine that has no control plane ([`ClockControl`]).
//!
//! [`write_bootstrap`] writes the bootstrap file that provisions an
//! endpoint for a set of scenarios under a run seed: the account and a
//! root access key, every scenario's users (namespaced, each with an
//! access key and an `iam:*` policy, as the in-process `iam-http` adapter
//! gives them), and a CSV seed file with every registered fob's vendor
//! record (namespaced serial, the fob's secret) — or, with
//! [`write_bootstrap_encrypted`], an encrypted PSKC file (RFC 6030 §6) and
//! the path of its key or password file. `fobsim serve --bootstrap`
//! loads it; another engine can load the same TOML and seed file. At each
//! scenario's start the adapter checks that the bootstrap holds the
//! scenario's users and the very seed records of its fobs, so a bootstrap
//! written for another `--seed` or other scenarios is a clear setup
//! error, not a wall of wrong-code failures.
//!
//! Capabilities are those of the in-process `iam-http` adapter minus
//! `settings` (a running endpoint's rules cannot change per scenario) and
//! `import` (the seed records are the bootstrap's). A user declared with
//! two access keys gets two in the bootstrap.

use fobsim_core::Principal;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use fobsim_aws::client::Client;
use fobsim_aws::sigv4::Credentials;
use fobsim_clock::control::Request as ControlRequest;
use fobsim_clock::control::client::ControlClient;
use fobsim_core::seedfile::Protection;
use fobsim_core::{SeedRecord, Serial, Timestamp};
use fobsim_engine::api::bootstrap::Bootstrap;
use rand::RngExt as _;
use serde::Serialize;
use sha2::Digest as _;

use crate::iam_http::{ADMIN_POLICY, answer, api_principal, aws_query, setup_err, transport};
use fobsim_harness::adapter::{
    AdapterError, Answer, Capability, EngineAdapter, Reply, Request, Setup, user_password,
};
use fobsim_harness::runner::{device_spec, seed_record};
use fobsim_harness::scenario::Scenario;

const NAME: &str = "iam-http";

/// The file names [`write_bootstrap`] writes into its directory.
pub const BOOTSTRAP_FILE: &str = "bootstrap.toml";
/// The seed file (vendor CSV) next to the bootstrap file.
pub const SEEDS_FILE: &str = "seeds.csv";
/// The encrypted seed file (PSKC) next to the bootstrap file.
pub const SEEDS_PSKC_FILE: &str = "seeds.pskc";
/// The policy attached to every harness user.
pub const POLICY_FILE: &str = "harness-policy.json";

const CAPS: [Capability; 7] = [
    Capability::EnableTwoCodes,
    Capability::ApiEnable,
    Capability::SessionMfa,
    Capability::Resync,
    Capability::Deactivate,
    Capability::ListDevices,
    Capability::AccessKeys,
];

/// The namespace tag of a scenario: eight lowercase hex digits of the
/// SHA-256 of its id.
#[must_use]
pub fn tag(scenario_id: &str) -> String {
    let digest = sha2::Sha256::digest(scenario_id.as_bytes());
    hex::encode(&digest[..4])
}

/// A scenario user's name on the shared endpoint.
#[must_use]
pub fn user_name(user: &str, tag: &str) -> String {
    format!("{user}.{tag}")
}

/// A scenario fob's serial on the shared endpoint.
#[must_use]
pub fn serial_name(serial: &str, tag: &str) -> String {
    format!("{serial}.{tag}")
}

/// The access key id of a namespaced user (`AKIA` + 16 upper-case hex
/// digits of a SHA-256 of the name): stable across rewrites of the file.
fn access_key_id(name: &str) -> String {
    let digest = sha2::Sha256::digest(name.as_bytes());
    format!("AKIA{}", hex::encode_upper(&digest[..8]))
}

/// A fresh random secret access key (40 characters, as AWS's).
fn random_secret() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut rng = rand::rng();
    (0..40)
        .map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]))
        .collect()
}

/// Why a bootstrap could not be written.
#[derive(Debug, thiserror::Error)]
pub enum ProvisionError {
    /// Writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A file that holds secrets cannot be written: an existing one is a
    /// symlink or others may read it, or the write failed.
    #[error("{0}")]
    Private(#[from] fobsim_core::private_file::PrivateFileError),
    /// A scenario cannot be provisioned (bad device, name too long, ...).
    #[error("{file}: scenario {id}: {message}")]
    Scenario {
        /// Scenario file.
        file: String,
        /// Scenario id.
        id: String,
        /// Why.
        message: String,
    },
    /// Two scenarios share an id or a namespace tag.
    #[error("scenarios {first} and {second} {what}: rename one")]
    Clash {
        /// The first scenario id.
        first: String,
        /// The second.
        second: String,
        /// What they share.
        what: &'static str,
    },
    /// TOML serialization failed.
    #[error("writing TOML: {0}")]
    Toml(String),
}

/// What [`write_bootstrap`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Provisioned {
    /// The bootstrap file.
    pub bootstrap: PathBuf,
    /// The seed file.
    pub seeds: PathBuf,
    /// Scenarios provisioned.
    pub scenarios: usize,
    /// Users declared.
    pub users: usize,
    /// Seed records written.
    pub tokens: usize,
}

#[derive(Serialize)]
struct KeyOut {
    id: String,
    secret: String,
}

#[derive(Serialize)]
struct AccountOut {
    id: String,
    alias: String,
    root_email: String,
    root_phone: String,
    root_password: String,
    access_keys: Vec<KeyOut>,
}

#[derive(Serialize)]
struct UserOut {
    name: String,
    password: String,
    policies: Vec<String>,
    access_keys: Vec<KeyOut>,
}

#[derive(Serialize)]
struct CostOut {
    m_cost_kib: u32,
    t_cost: u32,
    p_cost: u32,
}

#[derive(Serialize)]
struct ProfileOut {
    rng_seed: u64,
    password_cost: CostOut,
}

/// How [`write_bootstrap_encrypted`] encrypts the seed file.
#[derive(Debug, Clone)]
pub struct SeedEncryption {
    /// The pre-shared key or password.
    pub protection: Protection,
    /// The file it was read from: the bootstrap names it (as an absolute
    /// path) beside the seed file.
    pub file: PathBuf,
}

#[derive(Serialize)]
#[serde(untagged)]
enum SeedOut {
    Path(String),
    Encrypted {
        file: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        key_file: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        password_file: Option<String>,
    },
}

#[derive(Serialize)]
struct BootstrapOut {
    seeds: Vec<SeedOut>,
    account: AccountOut,
    users: Vec<UserOut>,
    profile: ProfileOut,
}

fn write_file(path: &Path, text: &str, private: bool) -> Result<(), ProvisionError> {
    if private {
        // Secrets: written new (0600) and renamed into place; never
        // through a symlink, never into a file others may read.
        return Ok(fobsim_core::private_file::write(path, text.as_bytes())?);
    }
    std::fs::write(path, text).map_err(|source| ProvisionError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// Write `bootstrap.toml`, `seeds.csv` and `harness-policy.json` into
/// `dir` (created if missing): the provisioning of a shared endpoint for
/// `scenarios` under the run seed `seed` (see the module docs). Access
/// keys are fresh random secrets; the files that hold secrets are written
/// with mode 0600.
///
/// # Errors
/// [`ProvisionError`]: unwritable files, a device declaration that does not
/// make a fob, a namespaced name over AWS's limits, clashing ids or tags.
pub fn write_bootstrap(
    scenarios: &[Scenario],
    seed: u64,
    dir: &Path,
) -> Result<Provisioned, ProvisionError> {
    write_bootstrap_encrypted(scenarios, seed, dir, None)
}

/// [`write_bootstrap`], with the seed file encrypted when `encryption` is
/// given: `seeds.pskc` (RFC 6030 §6: AES-CBC, random IVs, a MAC on every
/// secret) instead of `seeds.csv`, and the bootstrap names its key or
/// password file (`seeds = [{ file = "seeds.pskc", key_file = "/abs/KEY" }]`).
///
/// # Errors
/// As [`write_bootstrap`].
pub fn write_bootstrap_encrypted(
    scenarios: &[Scenario],
    seed: u64,
    dir: &Path,
    encryption: Option<&SeedEncryption>,
) -> Result<Provisioned, ProvisionError> {
    std::fs::create_dir_all(dir).map_err(|source| ProvisionError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let seeds_entry = match encryption {
        None => SeedOut::Path(SEEDS_FILE.into()),
        Some(enc) => {
            let abs = std::path::absolute(&enc.file).map_err(|source| ProvisionError::Io {
                path: enc.file.clone(),
                source,
            })?;
            let abs = abs.display().to_string();
            let (key_file, password_file) = match enc.protection {
                Protection::Key(_) => (Some(abs), None),
                Protection::Password(_) => (None, Some(abs)),
            };
            SeedOut::Encrypted {
                file: SEEDS_PSKC_FILE.into(),
                key_file,
                password_file,
            }
        }
    };
    let account = fobsim_harness::adapter::Account::default();
    let mut out = BootstrapOut {
        seeds: vec![seeds_entry],
        account: AccountOut {
            id: account.id.clone(),
            alias: account.alias.clone(),
            root_email: account.root_email.clone(),
            root_phone: account.root_phone.clone(),
            root_password: account.root_password.clone(),
            access_keys: vec![KeyOut {
                id: access_key_id("root"),
                secret: random_secret(),
            }],
        },
        users: Vec::new(),
        profile: ProfileOut {
            rng_seed: seed,
            password_cost: CostOut {
                m_cost_kib: 8,
                t_cost: 1,
                p_cost: 1,
            },
        },
    };
    let mut records = Vec::new();
    let mut tags: HashMap<String, &str> = HashMap::new();
    let mut header = format!(
        "# Written by `fobsim run --write-bootstrap` for --seed {seed}: the\n\
         # provisioning of one shared IAM endpoint for {} scenarios. Scenario S's\n\
         # user U is `U.T` and its fob SERIAL is `SERIAL.T`, T = tag(S):\n",
        scenarios.len()
    );
    for sc in scenarios {
        let t = tag(&sc.id);
        if let Some(first) = tags.insert(t.clone(), &sc.id) {
            return Err(ProvisionError::Clash {
                first: first.to_string(),
                second: sc.id.clone(),
                what: if first == sc.id {
                    "have the same id"
                } else {
                    "have the same namespace tag"
                },
            });
        }
        header.push_str(&format!("#   {t}  {}\n", sc.id));
        let bad = |message: String| ProvisionError::Scenario {
            file: sc.file.clone(),
            id: sc.id.clone(),
            message,
        };
        for u in &sc.users {
            let name = user_name(u, &t);
            if name.len() > 64 {
                return Err(bad(format!(
                    "user name {name:?} is longer than IAM's 64 characters"
                )));
            }
            let keys = sc
                .access_keys
                .iter()
                .find(|(k, _)| k == u)
                .map_or(1, |(_, n)| *n);
            out.users.push(UserOut {
                password: user_password(u),
                policies: vec![POLICY_FILE.into()],
                access_keys: (1..=keys)
                    .map(|k| KeyOut {
                        // The first key keeps the id of a one-key user.
                        id: if k == 1 {
                            access_key_id(&name)
                        } else {
                            access_key_id(&format!("{name}#{k}"))
                        },
                        secret: random_secret(),
                    })
                    .collect(),
                name,
            });
        }
        for d in sc.devices.iter().filter(|d| d.registered) {
            let spec =
                device_spec(d, seed, sc.start).map_err(|m| bad(format!("line {}: {m}", d.line)))?;
            let mut rec = seed_record(&spec, d.seed_period);
            rec.serial = Serial::new(&serial_name(rec.serial.as_str(), &t))
                .map_err(|e| bad(format!("line {}: {e}", d.line)))?;
            records.push(rec);
        }
    }
    let toml = toml::to_string(&out).map_err(|e| ProvisionError::Toml(e.to_string()))?;
    let bootstrap = dir.join(BOOTSTRAP_FILE);
    write_file(&bootstrap, &format!("{header}\n{toml}"), true)?;
    let seeds = match encryption {
        None => {
            let path = dir.join(SEEDS_FILE);
            write_file(&path, &fobsim_core::seedfile::write_csv(&records), true)?;
            path
        }
        Some(enc) => {
            let path = dir.join(SEEDS_PSKC_FILE);
            let text = fobsim_core::seedfile::write_pskc_protected(
                &records,
                &enc.protection,
                &mut rand::rng(),
            );
            write_file(&path, &text, true)?;
            path
        }
    };
    write_file(&dir.join(POLICY_FILE), &format!("{ADMIN_POLICY}\n"), false)?;
    Ok(Provisioned {
        bootstrap,
        seeds,
        scenarios: scenarios.len(),
        users: out.users.len(),
        tokens: records.len(),
    })
}

/// The current scenario's names on the endpoint.
#[derive(Default)]
struct Current {
    /// A scenario user: its endpoint name and its access keys, in order.
    users: HashMap<String, (String, Vec<Credentials>)>,
    serials: HashMap<String, String>,
    unserials: HashMap<String, String>,
}

/// How the adapter moves the endpoint's clock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClockControl {
    /// fobsim's control plane: JSON lines on a Unix socket
    /// (`fobsim serve --clock manual --control SOCKET`); the clock is set
    /// to each request's time exactly.
    Socket(PathBuf),
    /// A libfaketime timestamp file: the endpoint runs with
    /// `LD_PRELOAD=libfaketime.so.1 FAKETIME_TIMESTAMP_FILE=FILE
    /// FAKETIME_NO_CACHE=1` and the adapter writes the offset from real
    /// time before each request (any engine on Linux, no control plane).
    FakeTimeFile(PathBuf),
}

impl std::fmt::Display for ClockControl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClockControl::Socket(p) => write!(f, "control socket {}", p.display()),
            ClockControl::FakeTimeFile(p) => write!(f, "faketime file {}", p.display()),
        }
    }
}

enum Clock {
    Socket {
        client: ControlClient,
        at: Option<Timestamp>,
    },
    File(PathBuf),
}

impl Clock {
    /// Put the endpoint's clock at `now`.
    fn set(&mut self, now: Timestamp) -> Result<(), AdapterError> {
        match self {
            Clock::Socket { client, at } => {
                if *at == Some(now) {
                    return Ok(());
                }
                let r = client
                    .send(&ControlRequest::Set {
                        time: now.to_string(),
                    })
                    .map_err(|e| transport(format!("control socket: {e}")))?;
                if let Some(e) = r.error {
                    return Err(transport(format!(
                        "the endpoint's clock cannot be moved ({e}): start it with --clock manual --control SOCKET"
                    )));
                }
                *at = Some(now);
            }
            // The faked clock runs at real rate from the offset written:
            // write it before every request.
            Clock::File(path) => crate::peers::write_faketime_offset(path, Some(now))
                .map_err(|e| transport(format!("faketime file {}: {e}", path.display())))?,
        }
        Ok(())
    }
}

/// The adapter for an already-running endpoint.
pub struct IamRemote {
    endpoint: String,
    bootstrap_path: PathBuf,
    clock_control: ClockControl,
    client: Client,
    clock: Clock,
    users: HashMap<String, Vec<Credentials>>,
    root: Option<Credentials>,
    seeds: HashMap<String, SeedRecord>,
    current: Option<Current>,
}

impl std::fmt::Debug for IamRemote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IamRemote")
            .field("endpoint", &self.endpoint)
            .field("bootstrap", &self.bootstrap_path)
            .field("clock", &self.clock_control)
            .field("users", &self.users.len())
            .field("tokens", &self.seeds.len())
            .finish_non_exhaustive()
    }
}

fn creds(k: &fobsim_engine::api::bootstrap::AccessKeySpec) -> Credentials {
    Credentials {
        access_key_id: k.id.clone(),
        secret_access_key: k.secret.clone(),
        session_token: None,
    }
}

/// How long [`IamRemote::connect`] waits for an endpoint (and its control
/// socket) that is not answering yet.
const START_WAIT: Duration = Duration::from_secs(10);

/// `attempt` until it succeeds or `deadline` passes (then its last error).
fn retry_until<T, E>(
    deadline: std::time::Instant,
    mut attempt: impl FnMut() -> Result<T, E>,
) -> Result<T, E> {
    loop {
        match attempt() {
            Ok(v) => return Ok(v),
            Err(e) if std::time::Instant::now() >= deadline => return Err(e),
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

impl IamRemote {
    /// Connect to `endpoint` (`http://HOST:PORT`) with the users, keys and
    /// seed records of `bootstrap` (the file the endpoint was provisioned
    /// with), moving its clock through `clock`.
    ///
    /// # Errors
    /// [`AdapterError::Setup`]: an unreadable bootstrap or seed file, a bad
    /// endpoint, an endpoint or control socket still unreachable after 10 s, a
    /// control socket whose clock cannot
    /// be moved, an unwritable faketime file.
    pub fn connect(
        endpoint: &str,
        bootstrap: &Path,
        clock: ClockControl,
    ) -> Result<IamRemote, AdapterError> {
        let boot = Bootstrap::load(bootstrap)
            .map_err(|e| setup_err(format!("{}: {e}", bootstrap.display())))?;
        let mut seeds = HashMap::new();
        for file in &boot.seeds {
            let records = file.read().map_err(|e| setup_err(e.to_string()))?;
            for r in records {
                seeds.insert(r.serial.as_str().to_string(), r);
            }
        }
        let users = boot
            .users
            .iter()
            .filter(|u| !u.access_keys.is_empty())
            .map(|u| (u.name.clone(), u.access_keys.iter().map(creds).collect()))
            .collect();
        let root = boot.account.access_keys.first().map(creds);
        let client = Client::new(endpoint).map_err(|e| setup_err(e.to_string()))?;
        // Any HTTP answer proves the endpoint is there; no answer is one clear
        // error now rather than the same one for every scenario.
        // An endpoint started a moment ago (`fobsim serve … &` on the line
        // before, as the README shows) gets a few seconds to come up.
        let deadline = std::time::Instant::now() + START_WAIT;
        retry_until(deadline, || client.send::<&str>("GET", "/", &[], b""))
            .map_err(|e| setup_err(format!("cannot reach {endpoint}: {e}")))?;
        let driver = match &clock {
            ClockControl::Socket(path) => {
                let mut c = retry_until(deadline, || {
                    ControlClient::connect(path, Duration::from_secs(10))
                })
                .map_err(|e| setup_err(e.to_string()))?;
                let state = c
                    .send(&ControlRequest::Get)
                    .map_err(|e| setup_err(e.to_string()))?;
                if let Some(e) = state.error {
                    return Err(setup_err(format!("control socket: {e}")));
                }
                Clock::Socket {
                    client: c,
                    at: None,
                }
            }
            ClockControl::FakeTimeFile(path) => {
                // The file must be writable now, not at the first request.
                crate::peers::write_faketime_offset(path, None)
                    .map_err(|e| setup_err(format!("faketime file {}: {e}", path.display())))?;
                Clock::File(path.clone())
            }
        };
        Ok(IamRemote {
            endpoint: endpoint.to_string(),
            bootstrap_path: bootstrap.to_path_buf(),
            clock_control: clock,
            client,
            clock: driver,
            users,
            root,
            seeds,
            current: None,
        })
    }

    fn stale(&self, what: String) -> AdapterError {
        setup_err(format!(
            "{what} in {}: the file was written for other scenarios or another --seed; write it again with `fobsim run --write-bootstrap DIR` (same scenarios, same --seed) and restart the endpoint with it",
            self.bootstrap_path.display()
        ))
    }
}

/// Whether a bootstrap record is the vendor record of a scenario's fob.
fn same_record(a: &SeedRecord, b: &SeedRecord) -> bool {
    a.kind == b.kind
        && a.algorithm == b.algorithm
        && a.digits == b.digits
        && a.counter == b.counter
        && a.secret.expose() == b.secret.expose()
}

impl EngineAdapter for IamRemote {
    fn name(&self) -> &str {
        NAME
    }

    fn capabilities(&self) -> &[Capability] {
        &CAPS
    }

    fn begin(&mut self, setup: &Setup) -> Result<(), AdapterError> {
        self.current = None;
        let t = tag(&setup.scenario);
        let mut cur = Current::default();
        for (u, _) in &setup.users {
            let name = user_name(u, &t);
            let Some(c) = self.users.get(&name) else {
                return Err(self.stale(format!(
                    "no user {name} (scenario {}'s {u}) with an access key",
                    setup.scenario
                )));
            };
            let want = setup
                .access_keys
                .iter()
                .find(|(k, _)| k == u)
                .map_or(1, |(_, n)| *n);
            if c.len() < want as usize {
                return Err(self.stale(format!(
                    "user {name} (scenario {}'s {u}) has {} access key(s), the scenario declares {want}",
                    setup.scenario,
                    c.len()
                )));
            }
            cur.users.insert(u.clone(), (name, c.clone()));
        }
        for rec in &setup.seeds {
            let raw = rec.serial.as_str();
            let name = serial_name(raw, &t);
            match self.seeds.get(&name) {
                None => {
                    return Err(self.stale(format!(
                        "no token {name} (scenario {}'s fob {raw})",
                        setup.scenario
                    )));
                }
                Some(have) if !same_record(have, rec) => {
                    return Err(self.stale(format!(
                        "token {name} is not scenario {}'s fob {raw}",
                        setup.scenario
                    )));
                }
                Some(_) => {}
            }
            cur.unserials.insert(name.clone(), raw.to_string());
            cur.serials.insert(raw.to_string(), name);
        }
        self.clock.set(setup.start)?;
        // Each scenario's users must start with no device. This also
        // proves the endpoint knows the bootstrap's keys.
        for (u, (name, keys)) in &cur.users {
            let Some(c) = keys.first() else {
                continue;
            };
            let list = Request::ListDevices {
                who: Principal::User(u.clone()),
            };
            let Some((service, query)) = aws_query(&list, Some(name)) else {
                return Err(transport("unreachable request kind"));
            };
            let r = self
                .client
                .call(service, &query, c, setup.start)
                .map_err(|e| setup_err(format!("{}: {e}", self.endpoint)))?;
            if r.status != 200 {
                let message = r.message().unwrap_or_default();
                let hint = if message.contains("Signature expired")
                    || r.code().as_deref() == Some("RequestExpired")
                {
                    format!(
                        "the endpoint's clock does not follow the {}",
                        self.clock_control
                    )
                } else {
                    format!(
                        "was the endpoint started with {}?",
                        self.bootstrap_path.display()
                    )
                };
                return Err(setup_err(format!(
                    "listing {name}'s devices (scenario {}'s {u}) answered HTTP {} {} ({message}): {hint}",
                    setup.scenario,
                    r.status,
                    r.code().unwrap_or_default(),
                )));
            }
            let held = fobsim_aws::xml::texts_of(&r.body, "SerialNumber");
            if !held.is_empty() {
                return Err(setup_err(format!(
                    "user {name} already holds {} on the endpoint: scenario {} already ran there, and codes used stay used. Start the endpoint on a fresh database for each run",
                    held.join(", "),
                    setup.scenario
                )));
            }
        }
        self.current = Some(cur);
        Ok(())
    }

    fn call(&mut self, now: Timestamp, request: &Request) -> Result<Answer, AdapterError> {
        let cur = self
            .current
            .as_ref()
            .ok_or_else(|| transport("call before begin"))?;
        let who = api_principal(request)?;
        let key = match request {
            Request::Session { key, .. } => *key,
            _ => 1,
        };
        let (user, creds) = match who {
            Principal::Root => match &self.root {
                Some(c) => (None, c),
                None => {
                    return Err(setup_err(format!(
                        "{} declares no root access key ([account] access_keys)",
                        self.bootstrap_path.display()
                    )));
                }
            },
            Principal::User(u) => match cur.users.get(u).and_then(|(name, keys)| {
                let i = usize::try_from(key.checked_sub(1)?).ok()?;
                Some((name, keys.get(i)?))
            }) {
                Some((name, c)) => (Some(name.as_str()), c),
                // A principal the scenario did not declare: AWS would not
                // know the key.
                None => {
                    return Ok(Answer::Error {
                        code: "InvalidClientTokenId".into(),
                        status: 403,
                        kind: None,
                        message: format!("no access key for {who}"),
                    });
                }
            },
        };
        let mapped = map_serial(request, &cur.serials);
        let Some((service, params)) = aws_query(&mapped, user) else {
            return Err(transport("unreachable request kind"));
        };
        self.clock.set(now)?;
        let mut reply = self
            .client
            .call(service, &params, creds, now)
            .map_err(|e| transport(format!("{}: {e}", self.endpoint)))?;
        // libfaketime (0.9.10) re-reads the timestamp file at every call
        // and, now and then, answers one with the real time instead (seen
        // once or twice in the ~3,000 requests of a suite run): the
        // endpoint then refuses the request's signature as too old or too
        // new before its engine sees it, so nothing changed. Such a
        // refusal is sent again, the file rewritten, at most twice; an
        // endpoint whose clock really is elsewhere is refused every time.
        for _ in 0..2 {
            let time_refused = reply.status == 403
                && reply.code().as_deref() == Some("SignatureDoesNotMatch")
                && reply.message().is_some_and(|m| m.starts_with("Signature "));
            if !(time_refused && matches!(self.clock, Clock::File(_))) {
                break;
            }
            self.clock.set(now)?;
            reply = self
                .client
                .call(service, &params, creds, now)
                .map_err(|e| transport(format!("{}: {e}", self.endpoint)))?;
        }
        Ok(answer(&reply, |r| match request {
            Request::ListDevices { .. } => Reply::Devices {
                devices: fobsim_aws::xml::texts_of(&r.body, "SerialNumber")
                    .into_iter()
                    .map(|s| cur.unserials.get(&s).cloned().unwrap_or(s))
                    .collect(),
            },
            _ => Reply::None,
        }))
    }
}

/// `request` with a registered fob's serial replaced by its endpoint name.
fn map_serial(request: &Request, serials: &HashMap<String, String>) -> Request {
    let mut r = request.clone();
    let serial = match &mut r {
        Request::Enable { serial, .. }
        | Request::Resync { serial, .. }
        | Request::Deactivate { serial, .. }
        | Request::Session { serial, .. } => serial,
        _ => return r,
    };
    if let Some(name) = serials.get(serial.as_str()) {
        serial.clone_from(name);
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use fobsim_harness::scenario::parse;

    fn scenario(id: &str, body: &str) -> Scenario {
        parse(
            &format!("{id}.scenario"),
            &format!("scenario {id}\nsource design \"a test\"\n{body}\nwait 30s\n"),
        )
        .unwrap()
    }

    #[test]
    fn tags_are_stable_and_names_fit_iam() {
        assert_eq!(
            tag("enable-two-consecutive-codes"),
            tag("enable-two-consecutive-codes")
        );
        assert_ne!(tag("a"), tag("b"));
        assert_eq!(tag("x").len(), 8);
        let name = user_name("alice", &tag("x"));
        assert!(Serial::new(&serial_name("GAHT00000001", &tag("x"))).is_ok());
        assert!(name.starts_with("alice.") && name.len() == 14);
        assert_eq!(access_key_id(&name).len(), 20);
        assert_ne!(random_secret(), random_secret());
    }

    #[test]
    fn the_bootstrap_loads_and_holds_every_scenario() {
        let dir = tempfile::tempdir().unwrap();
        let suite = fobsim_harness::suite::builtin().unwrap();
        let done = write_bootstrap(&suite, 7, dir.path()).unwrap();
        assert_eq!(done.scenarios, suite.len());
        let boot = Bootstrap::load(&done.bootstrap).unwrap();
        assert_eq!(boot.users.len(), done.users);
        assert_eq!(boot.profile.rng_seed, Some(7));
        let users: usize = suite.iter().map(|s| s.users.len()).sum();
        assert_eq!(done.users, users);
        let csv = std::fs::read_to_string(dir.path().join(SEEDS_FILE)).unwrap();
        let records = fobsim_core::seedfile::parse(&csv).unwrap();
        assert_eq!(records.len(), done.tokens);
        // Every registered fob of every scenario, under its namespaced serial,
        // with the secret the runner gives it; no unregistered fob.
        let by_serial: HashMap<_, _> = records
            .iter()
            .map(|r| (r.serial.as_str().to_string(), r))
            .collect();
        for sc in &suite {
            for d in &sc.devices {
                let spec = device_spec(d, 7, sc.start).unwrap();
                let name = serial_name(spec.serial.as_str(), &tag(&sc.id));
                match by_serial.get(&name) {
                    Some(r) => {
                        assert!(d.registered, "{name}");
                        assert!(same_record(r, &seed_record(&spec, d.seed_period)), "{name}");
                    }
                    None => assert!(!d.registered, "{name} missing"),
                }
            }
        }
        use std::os::unix::fs::PermissionsExt as _;
        for f in [BOOTSTRAP_FILE, SEEDS_FILE] {
            let mode = std::fs::metadata(dir.path().join(f))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{f}");
        }
        // Policy files resolve next to the bootstrap.
        assert!(boot.policies().is_ok());
    }

    #[test]
    fn an_encrypted_bootstrap_names_its_key_and_reads_back() {
        use fobsim_core::seedfile::{Password, TransportKey};
        use fobsim_engine::api::bootstrap::SeedKey;
        let suite: Vec<_> = fobsim_harness::suite::builtin()
            .unwrap()
            .into_iter()
            .take(4)
            .collect();
        let plain_dir = tempfile::tempdir().unwrap();
        write_bootstrap(&suite, 3, plain_dir.path()).unwrap();
        let plain = Bootstrap::load(&plain_dir.path().join(BOOTSTRAP_FILE)).unwrap();
        let want = plain.seeds[0].read().unwrap();
        assert!(!want.is_empty());
        for protection in [
            Protection::Key(TransportKey::new(vec![5; 16]).unwrap()),
            Protection::Password(Password::new("pw").unwrap().with_iterations(10).unwrap()),
        ] {
            let dir = tempfile::tempdir().unwrap();
            let file = dir.path().join("secret-file");
            let text = match &protection {
                Protection::Key(k) => k.to_hex().to_string(),
                Protection::Password(_) => "pw".to_string(),
            };
            std::fs::write(&file, text).unwrap();
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
            let enc = SeedEncryption {
                protection: protection.clone(),
                file: file.clone(),
            };
            let out = dir.path().join("boot");
            let done = write_bootstrap_encrypted(&suite, 3, &out, Some(&enc)).unwrap();
            assert_eq!(done.seeds, out.join(SEEDS_PSKC_FILE));
            assert!(!out.join(SEEDS_FILE).exists());
            let boot = Bootstrap::load(&done.bootstrap).unwrap();
            let expected = match protection {
                Protection::Key(_) => SeedKey::KeyFile(file.clone()),
                Protection::Password(_) => SeedKey::PasswordFile(file.clone()),
            };
            assert_eq!(boot.seeds[0].key, Some(expected));
            assert_eq!(boot.seeds[0].read().unwrap(), want);
            let pskc = std::fs::read_to_string(&done.seeds).unwrap();
            assert!(pskc.contains("EncryptedValue") && !pskc.contains("PlainValue>MT"));
        }
    }

    #[test]
    fn clashes_and_long_names_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let a = scenario("twice", "device fob1 gaht\nuser alice\n");
        let e = write_bootstrap(&[a.clone(), a], 1, dir.path()).unwrap_err();
        assert!(e.to_string().contains("have the same id"), "{e}");
        let long = "u".repeat(60);
        let b = scenario("long", &format!("device fob1 gaht\nuser {long}\n"));
        let e = write_bootstrap(&[b], 1, dir.path()).unwrap_err();
        assert!(e.to_string().contains("64 characters"), "{e}");
    }

    #[test]
    fn only_registered_serials_are_renamed() {
        let mut map = HashMap::new();
        map.insert(
            "GAHT00000001".to_string(),
            "GAHT00000001.abcd0123".to_string(),
        );
        let r = Request::Session {
            who: Principal::User("alice".into()),
            key: 1,
            serial: "GAHT00000001".into(),
            code: "123456".into(),
        };
        match map_serial(&r, &map) {
            Request::Session { serial, .. } => assert_eq!(serial, "GAHT00000001.abcd0123"),
            other => panic!("{other:?}"),
        }
        let r = Request::Deactivate {
            who: Principal::User("alice".into()),
            serial: "NOTDECLARED".into(),
        };
        assert_eq!(map_serial(&r, &map), r);
    }
}
