//! The adapter for fobsim's own engine (`fobsim-engine`), in-process, over
//! the in-memory store (default), SQLite or PostgreSQL.

use fobsim_core::Principal;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use fobsim_core::Timestamp;

use fobsim_engine::store::{is_postgres_url, redact_url};
use fobsim_engine::{
    Engine, EngineError, KeySource, OutboxChannel, PasswordCost, PgOptions, Profile,
};

use fobsim_harness::adapter::{
    AdapterError, Answer, Capability, EngineAdapter, Message, Reply, Request, Setup,
};

/// Which store the built-in engine keeps its state in. By name (its
/// [`Display`](std::fmt::Display) and [`FromStr`](std::str::FromStr), as
/// `fobsim run --store` takes it): `memory`, `sqlite` (in the system's
/// temp directory) or a `postgres://…` URL.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum StoreKind {
    /// In memory (default; fastest).
    #[default]
    Memory,
    /// A fresh SQLite database per scenario, in this directory.
    Sqlite {
        /// Directory for the database files (removed after each scenario).
        dir: PathBuf,
    },
    /// A fresh schema per scenario in this PostgreSQL database (created
    /// with `CREATE SCHEMA`, dropped after the scenario).
    Postgres {
        /// `postgres://user[:password]@host[:port]/dbname`.
        url: String,
    },
}

/// A store name other than `memory`, `sqlite` and a PostgreSQL URL.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown store {0:?}: expected memory, sqlite or a postgres:// URL")]
pub struct UnknownStore(pub String);

impl std::str::FromStr for StoreKind {
    type Err = UnknownStore;

    fn from_str(name: &str) -> Result<Self, UnknownStore> {
        match name {
            "memory" => Ok(StoreKind::Memory),
            "sqlite" => Ok(StoreKind::Sqlite {
                dir: std::env::temp_dir(),
            }),
            url if is_postgres_url(url) => Ok(StoreKind::Postgres {
                url: url.to_string(),
            }),
            _ => Err(UnknownStore(name.to_string())),
        }
    }
}

impl std::fmt::Display for StoreKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreKind::Memory => f.write_str("memory"),
            StoreKind::Sqlite { .. } => f.write_str("sqlite"),
            StoreKind::Postgres { url } => f.write_str(&redact_url(url)),
        }
    }
}

/// What a scenario's store leaves behind, removed on drop (after the
/// engine that used it): a SQLite file or a PostgreSQL schema.
#[derive(Debug)]
pub(crate) enum Scratch {
    /// Nothing (in memory).
    None,
    /// A SQLite database file (and its journal files).
    Sqlite(PathBuf),
    /// A schema of a PostgreSQL database.
    Postgres {
        /// The database's URL (without the schema).
        url: String,
        /// The schema's name.
        schema: String,
    },
}

impl Drop for Scratch {
    fn drop(&mut self) {
        match self {
            Scratch::None => {}
            Scratch::Sqlite(p) => {
                for f in db_files(p) {
                    crate::cleanup::remove_file(&f);
                }
            }
            Scratch::Postgres { url, schema } => {
                let _ = pg_execute(url, &format!("DROP SCHEMA IF EXISTS {schema} CASCADE"));
            }
        }
    }
}

/// A database's file and SQLite's companions of it.
fn db_files(path: &std::path::Path) -> impl Iterator<Item = PathBuf> + '_ {
    ["", "-wal", "-shm", "-journal"]
        .into_iter()
        .map(move |suffix| {
            let mut s = path.as_os_str().to_os_string();
            s.push(suffix);
            PathBuf::from(s)
        })
}

/// Run one statement on the database at `url` (on a thread of its own: the
/// `postgres` client runs its own async runtime, which must not nest).
fn pg_execute(url: &str, sql: &str) -> Result<(), String> {
    let (url, sql) = (url.to_string(), sql.to_string());
    std::thread::spawn(move || {
        let mut c = postgres::Client::connect(&url, postgres::NoTls)
            .map_err(|e| format!("{}: {e}", redact_url(&url)))?;
        c.batch_execute(&sql)
            .map_err(|e| format!("{}: {e}", redact_url(&url)))
    })
    .join()
    .map_err(|_| "the PostgreSQL client panicked".to_string())?
}

static SCRATCH_RUNS: AtomicU64 = AtomicU64::new(0);

/// A fresh engine over `store` for one scenario, and what to remove after
/// it (drop the engine first).
pub(crate) fn open_engine(
    store: &StoreKind,
    profile: Profile,
) -> Result<(Engine, Scratch), String> {
    let run = SCRATCH_RUNS.fetch_add(1, Ordering::Relaxed) + 1;
    match store {
        StoreKind::Memory => Ok((Engine::in_memory(profile), Scratch::None)),
        StoreKind::Sqlite { dir } => {
            let path = dir.join(format!("fobsim-run-{}-{run}.sqlite", std::process::id()));
            // Removed by the next scenario, by drop, or on Ctrl-C
            // (cleanup::install_signal_handlers).
            for f in db_files(&path) {
                crate::cleanup::register_file(&f);
            }
            let scratch = Scratch::Sqlite(path.clone());
            let engine = Engine::sqlite(&path, &KeySource::Bytes([0x5e; 32]), profile)
                .map_err(|e| e.to_string())?;
            Ok((engine, scratch))
        }
        StoreKind::Postgres { url } => {
            let schema = format!("fobsim_run_{}_{run}", std::process::id());
            pg_execute(url, &format!("CREATE SCHEMA {schema}"))?;
            let scratch = Scratch::Postgres {
                url: url.clone(),
                schema: schema.clone(),
            };
            let sep = if url.contains('?') { '&' } else { '?' };
            let scoped = format!("{url}{sep}options=-csearch_path%3D{schema}");
            let options = PgOptions {
                pool_size: 2,
                ..PgOptions::default()
            };
            let engine = Engine::postgres(&scoped, &KeySource::Bytes([0x5e; 32]), options, profile)
                .map_err(|e| e.to_string())?;
            Ok((engine, scratch))
        }
    }
}

/// The built-in engine as an [`EngineAdapter`].
pub struct Builtin {
    store: StoreKind,
    seed: u64,
    engine: Option<Engine>,
    root_password: String,
    passwords: HashMap<String, String>,
    scratch: Scratch,
}

/// Every capability. `access-keys`: in-process, a session is the
/// principal's — every access key of a user resolves to that user before the
/// engine judges the code (its API face does that; the `iam-http` adapter
/// drives that path with real keys), so which key signs makes no
/// difference here and is accepted as written.
const CAPS: [Capability; 14] = Capability::ALL;

impl std::fmt::Debug for Builtin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Builtin")
            .field("store", &self.store)
            .field("seed", &self.seed)
            .finish_non_exhaustive()
    }
}

impl Builtin {
    /// An adapter over `store`; `seed` fixes the engine's RNG (recovery
    /// codes, salts) so transcripts are deterministic.
    #[must_use]
    pub fn new(store: StoreKind, seed: u64) -> Self {
        Builtin {
            store,
            seed,
            engine: None,
            root_password: String::new(),
            passwords: HashMap::new(),
            scratch: Scratch::None,
        }
    }

    /// The in-memory engine.
    #[must_use]
    pub fn in_memory(seed: u64) -> Self {
        Builtin::new(StoreKind::Memory, seed)
    }

    /// The engine of the current scenario (after [`EngineAdapter::begin`]).
    #[must_use]
    pub fn engine(&self) -> Option<&Engine> {
        self.engine.as_ref()
    }

    fn remove_db(&mut self) {
        self.scratch = Scratch::None;
    }

    fn setup_err(message: impl Into<String>) -> AdapterError {
        AdapterError::Setup {
            adapter: "builtin".into(),
            message: message.into(),
        }
    }
}

impl Drop for Builtin {
    fn drop(&mut self) {
        self.engine = None;
        self.remove_db();
    }
}

/// The profile for a scenario: the default rules with scenario settings
/// (TOML keys of [`Profile::from_toml`]), cheap password hashing and a
/// fixed RNG seed.
///
/// # Errors
/// [`AdapterError::Setting`] for an unknown key or a bad value.
pub fn profile_for(settings: &[(String, String)], seed: u64) -> Result<Profile, AdapterError> {
    let mut toml = String::new();
    for (k, v) in settings {
        let bare = v.parse::<i64>().is_ok() || v == "true" || v == "false";
        let value = if bare { v.clone() } else { format!("{v:?}") };
        toml.push_str(&format!("{k} = {value}\n"));
    }
    let mut p = Profile::from_toml(&toml).map_err(|e| AdapterError::Setting {
        adapter: "builtin".into(),
        key: settings
            .iter()
            .map(|(k, _)| k.as_str())
            .collect::<Vec<_>>()
            .join(","),
        message: e.to_string(),
    })?;
    p.password_cost = PasswordCost::TESTING;
    p.rng_seed = Some(seed);
    Ok(p)
}

/// Whether the built-in engine's profile takes `key=value` (what
/// [`EngineAdapter::check_setting`] answers for `builtin` and `iam-http`):
/// the engine's own reason, in one line, when it does not.
///
/// # Errors
/// The reason.
pub fn check_setting(key: &str, value: &str) -> Result<(), String> {
    match profile_for(&[(key.to_string(), value.to_string())], 0) {
        Ok(_) => Ok(()),
        Err(AdapterError::Setting { message, .. }) => Err(one_line(&message)),
        Err(e) => Err(one_line(&e.to_string())),
    }
}

/// The last non-empty line of a (TOML) error message, without the
/// `profile: ` prefix.
fn one_line(message: &str) -> String {
    let last = message
        .lines()
        .map(str::trim)
        .rfind(|l| !l.is_empty() && !l.starts_with('|') && !l.starts_with('^'))
        .unwrap_or(message);
    last.trim_start_matches("profile: ").to_string()
}

/// Put a scenario's account, users and registered tokens into a fresh
/// engine (shared with the `iam-http` adapter, which serves that engine).
///
/// # Errors
/// What the engine refused, as a message naming the step.
pub(crate) fn populate(engine: &Engine, setup: &Setup) -> Result<(), String> {
    let a = &setup.account;
    engine
        .create_account(
            &a.id,
            &a.alias,
            &a.root_email,
            &a.root_phone,
            &a.root_password,
        )
        .map_err(|e| format!("create account: {e}"))?;
    for (u, p) in &setup.users {
        engine
            .create_user(u, p)
            .map_err(|e| format!("create user {u}: {e}"))?;
    }
    engine
        .import_seeds(&setup.seeds)
        .map_err(|e| format!("import seeds: {e}"))?;
    Ok(())
}

fn answer(r: Result<(), EngineError>) -> Answer {
    match r {
        Ok(()) => Answer::ok(),
        Err(e) => error_answer(&e),
    }
}

/// An engine error in the transcript's terms.
#[must_use]
pub fn error_answer(e: &EngineError) -> Answer {
    let kind = format!("{:?}", e.kind);
    Answer::Error {
        code: e.aws_code().to_string(),
        status: e.http_status(),
        kind: (kind != e.aws_code()).then_some(kind),
        message: e.message.clone(),
    }
}

impl EngineAdapter for Builtin {
    fn name(&self) -> &str {
        "builtin"
    }

    fn capabilities(&self) -> &[Capability] {
        &CAPS
    }

    fn begin(&mut self, setup: &Setup) -> Result<(), AdapterError> {
        self.engine = None;
        self.remove_db();
        let profile = profile_for(&setup.settings, self.seed)?;
        let (engine, scratch) = open_engine(&self.store, profile).map_err(Self::setup_err)?;
        self.scratch = scratch;
        populate(&engine, setup).map_err(Self::setup_err)?;
        self.root_password = setup.account.root_password.clone();
        self.passwords = setup.users.iter().cloned().collect();
        self.engine = Some(engine);
        Ok(())
    }

    fn check_setting(&self, key: &str, value: &str) -> Result<(), String> {
        check_setting(key, value)
    }

    fn call(&mut self, now: Timestamp, request: &Request) -> Result<Answer, AdapterError> {
        let Some(engine) = self.engine.as_ref() else {
            return Err(AdapterError::Transport {
                adapter: "builtin".into(),
                message: "call before begin".into(),
            });
        };
        Ok(match request {
            Request::Enable {
                who,
                serial,
                code1,
                code2,
                channel,
            } => answer(engine.enable_mfa_device(now, *channel, who, serial, code1, code2)),
            Request::Resync {
                who,
                serial,
                code1,
                code2,
            } => answer(engine.resync_mfa_device(now, who, serial, code1, code2)),
            Request::Deactivate { who, serial } => {
                answer(engine.deactivate_mfa_device(now, who, serial))
            }
            Request::ListDevices { who } => match engine.list_mfa_devices(who) {
                Ok(list) => Answer::Ok {
                    data: Reply::Devices {
                        devices: list.into_iter().map(|d| d.serial).collect(),
                    },
                },
                Err(e) => error_answer(&e),
            },
            Request::SignIn {
                who,
                password_ok,
                code,
            } => {
                let right = match who {
                    Principal::Root => self.root_password.clone(),
                    Principal::User(u) => self.passwords.get(u).cloned().unwrap_or_default(),
                };
                let pw = if *password_ok {
                    right
                } else {
                    format!("{right}-wrong")
                };
                answer(engine.console_sign_in(now, who, &pw, code.as_deref()))
            }
            Request::Session {
                who, serial, code, ..
            } => answer(engine.verify_session_mfa(now, who, serial, code)),
            Request::Import { seed } => match engine.import_seeds(std::slice::from_ref(seed)) {
                Ok(_) => Answer::ok(),
                Err(e) => error_answer(&e),
            },
            Request::StartRecovery => answer(engine.start_root_recovery(now)),
            Request::Outbox => Answer::Ok {
                data: Reply::Messages {
                    messages: engine
                        .outbox()
                        .into_iter()
                        .map(|m| Message {
                            channel: match m.channel {
                                OutboxChannel::Email => "email".into(),
                                OutboxChannel::Phone => "phone".into(),
                            },
                            to: m.to,
                            code: m.code,
                        })
                        .collect(),
                },
            },
            Request::CompleteRecovery {
                email_code,
                phone_code,
            } => answer(engine.complete_root_recovery(now, email_code, phone_code)),
            Request::DeviceState { serial } => match engine.token_state(serial) {
                Some(s) => Answer::Ok {
                    data: Reply::State {
                        locked: s.locked_until.is_some_and(|u| now < u),
                        assigned_to: s.assigned_to.map(|p| p.to_string()),
                    },
                },
                None => Answer::Error {
                    code: "NoSuchEntity".into(),
                    status: 404,
                    kind: None,
                    message: format!("MFA Device with serial number {serial} does not exist."),
                },
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::StoreKind;

    #[test]
    fn store_kinds_parse_from_the_names_they_display() {
        for name in ["memory", "sqlite"] {
            let kind: StoreKind = name.parse().unwrap();
            assert_eq!(kind.to_string(), name);
        }
        assert_eq!("memory".parse::<StoreKind>().unwrap(), StoreKind::default());
        assert_eq!(
            "sqlite".parse::<StoreKind>().unwrap(),
            StoreKind::Sqlite {
                dir: std::env::temp_dir()
            }
        );
        let e = "Sqlite".parse::<StoreKind>().unwrap_err();
        assert_eq!(
            e.to_string(),
            "unknown store \"Sqlite\": expected memory, sqlite or a postgres:// URL"
        );
        let pg: StoreKind = "postgres://fob:s3cret@db:5432/fobsim".parse().unwrap();
        assert_eq!(
            pg,
            StoreKind::Postgres {
                url: "postgres://fob:s3cret@db:5432/fobsim".into()
            }
        );
        assert_eq!(pg.to_string(), "postgres://fob:***@db:5432/fobsim");
    }
}
