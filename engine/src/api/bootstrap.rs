//! The bootstrap file of `fobsim serve`: the account, its users (passwords,
//! access keys, attached policy files), the vendor seed files to import,
//! and optionally the engine's rules. Paths are relative to the file.
//!
//! ```toml
//! seeds = ["seeds.csv"]            # PSKC or CSV seed files
//! [account]
//! id = "123456789012"
//! alias = "fobsim-example"
//! root_email = "root@example.com"
//! root_phone = "+1 555 0100"
//! root_password = "root-Password-1"
//! access_keys = [{ id = "AKIAROOTEXAMPLE00001", secret = "..." }]
//! [[users]]
//! name = "alice"
//! password = "alice-Password-1"
//! policies = ["../policies/manage-own-mfa.json"]
//! access_keys = [{ id = "AKIAALICEEXAMPLE0001", secret = "..." }]
//! [profile]                          # optional: Profile::from_toml keys
//! max_devices_per_user = 1
//! ```
//!
//! Applying it is idempotent: on a restart over the same database, the
//! account, users and tokens that exist are kept (their state included);
//! access keys and policies are read from the file at every start.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;

use super::credentials::{CredentialError, KeyRing};
use super::policy::{Policy, PolicyError};
use crate::engine::Engine;
use crate::error::{EngineError, ErrorKind};
use crate::profile::Profile;
use fobsim_core::Principal;

/// Why a bootstrap file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    /// A file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The TOML is malformed or has unknown keys.
    #[error("bootstrap: {0}")]
    Toml(String),
    /// The `[profile]` table is invalid.
    #[error("bootstrap [profile]: {0}")]
    Profile(#[from] crate::error::ProfileError),
    /// A policy file is invalid.
    #[error("{path}: {source}")]
    Policy {
        /// The policy file.
        path: PathBuf,
        /// Why.
        #[source]
        source: PolicyError,
    },
    /// An access key is invalid.
    #[error("bootstrap: {0}")]
    Credential(#[from] CredentialError),
    /// The engine refused part of the bootstrap.
    #[error("bootstrap: {what}: {source}")]
    Engine {
        /// What was being done.
        what: String,
        /// The engine's error.
        #[source]
        source: EngineError,
    },
    /// The database belongs to another account.
    #[error("the database holds account {found}, the bootstrap file declares {declared}")]
    AccountMismatch {
        /// In the database.
        found: String,
        /// In the file.
        declared: String,
    },
    /// The same user twice.
    #[error("bootstrap: user {0} is declared twice")]
    DuplicateUser(String),
}

/// An access key as declared.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessKeySpec {
    /// Access key id (`AKIA...`).
    pub id: String,
    /// Secret access key.
    pub secret: String,
}

impl std::fmt::Debug for AccessKeySpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessKeySpec")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// The `[account]` table.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountSpec {
    /// 12-digit account id.
    pub id: String,
    /// Account alias.
    pub alias: String,
    /// Root user email.
    pub root_email: String,
    /// Root user phone.
    pub root_phone: String,
    /// Root user password.
    pub root_password: String,
    /// Root access keys (policies do not apply to the root user).
    #[serde(default)]
    pub access_keys: Vec<AccessKeySpec>,
}

impl std::fmt::Debug for AccountSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccountSpec")
            .field("id", &self.id)
            .field("alias", &self.alias)
            .field("access_keys", &self.access_keys)
            .finish_non_exhaustive()
    }
}

/// One `[[users]]` entry.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserSpec {
    /// User name.
    pub name: String,
    /// Console password.
    pub password: String,
    /// Attached policy files.
    #[serde(default)]
    pub policies: Vec<PathBuf>,
    /// Access keys.
    #[serde(default)]
    pub access_keys: Vec<AccessKeySpec>,
}

impl std::fmt::Debug for UserSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserSpec")
            .field("name", &self.name)
            .field("policies", &self.policies)
            .field("access_keys", &self.access_keys)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBootstrap {
    #[serde(default)]
    seeds: Vec<PathBuf>,
    account: AccountSpec,
    #[serde(default)]
    users: Vec<UserSpec>,
    profile: Option<toml::Table>,
}

/// A parsed bootstrap file (paths resolved against its directory).
#[derive(Debug, Clone)]
pub struct Bootstrap {
    /// The account.
    pub account: AccountSpec,
    /// The users.
    pub users: Vec<UserSpec>,
    /// Seed files (resolved paths).
    pub seeds: Vec<PathBuf>,
    /// The engine's rules (default: the seed's).
    pub profile: Profile,
}

/// What [`Bootstrap::apply`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Applied {
    /// Whether the account was created (false: it existed).
    pub account_created: bool,
    /// Users created.
    pub users_created: usize,
    /// Tokens registered (tokens already registered are skipped).
    pub tokens_imported: usize,
}

fn read(path: &Path) -> Result<String, BootstrapError> {
    std::fs::read_to_string(path).map_err(|source| BootstrapError::Io {
        path: path.to_path_buf(),
        source,
    })
}

fn engine_err(what: impl Into<String>) -> impl FnOnce(EngineError) -> BootstrapError {
    let what = what.into();
    move |source| BootstrapError::Engine { what, source }
}

impl Bootstrap {
    /// Read and parse a bootstrap file.
    ///
    /// # Errors
    /// [`BootstrapError`] for IO, TOML, profile or duplicate-user problems.
    pub fn load(path: &Path) -> Result<Bootstrap, BootstrapError> {
        let text = read(path)?;
        let base = path.parent().unwrap_or_else(|| Path::new("."));
        Bootstrap::parse(&text, base)
    }

    /// Parse bootstrap TOML; relative paths are resolved against `base`.
    ///
    /// # Errors
    /// [`BootstrapError::Toml`], [`BootstrapError::Profile`],
    /// [`BootstrapError::DuplicateUser`].
    pub fn parse(text: &str, base: &Path) -> Result<Bootstrap, BootstrapError> {
        let raw: RawBootstrap =
            toml::from_str(text).map_err(|e| BootstrapError::Toml(e.to_string()))?;
        let profile = match raw.profile {
            None => Profile::default(),
            Some(t) => Profile::from_toml(
                &toml::to_string(&t).map_err(|e| BootstrapError::Toml(e.to_string()))?,
            )?,
        };
        let mut users = raw.users;
        let mut seen = std::collections::HashSet::new();
        for u in &mut users {
            if !seen.insert(u.name.clone()) {
                return Err(BootstrapError::DuplicateUser(u.name.clone()));
            }
            for p in &mut u.policies {
                *p = base.join(&*p);
            }
        }
        Ok(Bootstrap {
            account: raw.account,
            users,
            seeds: raw.seeds.iter().map(|p| base.join(p)).collect(),
            profile,
        })
    }

    /// Create what is missing in `engine`: the account, the users, the
    /// tokens of the seed files.
    ///
    /// # Errors
    /// [`BootstrapError::AccountMismatch`] when the database holds another
    /// account; IO errors reading seed files; the engine's refusals.
    pub fn apply(&self, engine: &Engine) -> Result<Applied, BootstrapError> {
        let mut done = Applied::default();
        let a = &self.account;
        match engine.store().account() {
            Ok(Some(row)) => {
                if row.account_id != a.id {
                    return Err(BootstrapError::AccountMismatch {
                        found: row.account_id,
                        declared: a.id.clone(),
                    });
                }
            }
            Ok(None) => {
                engine
                    .create_account(
                        &a.id,
                        &a.alias,
                        &a.root_email,
                        &a.root_phone,
                        &a.root_password,
                    )
                    .map_err(engine_err("creating the account"))?;
                done.account_created = true;
            }
            Err(e) => return Err(engine_err("reading the account")(e.into())),
        }
        for u in &self.users {
            match engine.create_user(&u.name, &u.password) {
                Ok(()) => done.users_created += 1,
                Err(e) if e.kind == ErrorKind::EntityAlreadyExists => {}
                Err(e) => return Err(engine_err(format!("creating user {}", u.name))(e)),
            }
        }
        for path in &self.seeds {
            let text = read(path)?;
            let records =
                fobsim_core::seedfile::parse(&text).map_err(|e| BootstrapError::Engine {
                    what: format!("reading {}", path.display()),
                    source: EngineError::new(ErrorKind::ValidationError, e.to_string()),
                })?;
            let mut fresh = Vec::new();
            for r in records {
                let known = engine
                    .store()
                    .token_state(r.serial.as_str())
                    .map_err(|e| engine_err("reading tokens")(e.into()))?
                    .is_some();
                if !known {
                    fresh.push(r);
                }
            }
            done.tokens_imported += engine
                .import_seeds(&fresh)
                .map_err(engine_err(format!("importing {}", path.display())))?;
        }
        Ok(done)
    }

    /// The access keys of the file, with sessions sealed under `session_key`.
    ///
    /// # Errors
    /// [`BootstrapError::Credential`] for a malformed or duplicate key.
    pub fn key_ring(
        &self,
        session_key: &[u8; 32],
        rng_seed: Option<u64>,
    ) -> Result<KeyRing, BootstrapError> {
        let mut ring = KeyRing::new(session_key, rng_seed);
        for k in &self.account.access_keys {
            ring.add_access_key(&k.id, &k.secret, Principal::Root)?;
        }
        for u in &self.users {
            for k in &u.access_keys {
                ring.add_access_key(&k.id, &k.secret, Principal::user(&u.name))?;
            }
        }
        Ok(ring)
    }

    /// Each user's attached policies, read and parsed.
    ///
    /// # Errors
    /// [`BootstrapError::Io`] or [`BootstrapError::Policy`].
    pub fn policies(&self) -> Result<HashMap<String, Vec<Arc<Policy>>>, BootstrapError> {
        let mut cache: HashMap<PathBuf, Arc<Policy>> = HashMap::new();
        let mut out = HashMap::new();
        for u in &self.users {
            let mut list = Vec::new();
            for path in &u.policies {
                let p = match cache.get(path) {
                    Some(p) => Arc::clone(p),
                    None => {
                        let p = Arc::new(Policy::parse(&read(path)?).map_err(|source| {
                            BootstrapError::Policy {
                                path: path.clone(),
                                source,
                            }
                        })?);
                        cache.insert(path.clone(), Arc::clone(&p));
                        p
                    }
                };
                list.push(p);
            }
            out.insert(u.name.clone(), list);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example() -> Bootstrap {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/bootstrap");
        Bootstrap::load(&dir.join("example.toml")).unwrap()
    }

    #[test]
    fn the_example_file_loads_and_applies_idempotently() {
        let b = example();
        assert_eq!(b.account.id, "123456789012");
        assert_eq!(b.profile, Profile::for_tests());
        let pol = b.policies().unwrap();
        assert_eq!(pol["alice"].len(), 1);
        let ring = b.key_ring(&[1; 32], Some(1)).unwrap();
        assert!(ring.len() >= 3);
        let e = Engine::in_memory(b.profile.clone());
        let first = b.apply(&e).unwrap();
        assert!(first.account_created);
        assert_eq!(first.users_created, b.users.len());
        assert!(first.tokens_imported >= 2);
        let again = b.apply(&e).unwrap();
        assert_eq!(again, Applied::default());
        assert!(!format!("{b:?}").contains("secret"), "no secrets in Debug");
    }

    #[test]
    fn errors_name_the_problem() {
        let base = Path::new(".");
        let e = Bootstrap::parse("[account]\nid = 1\n", base).unwrap_err();
        assert!(matches!(e, BootstrapError::Toml(_)));
        let acct = "[account]\nid=\"123456789012\"\nalias=\"abc\"\nroot_email=\"r@x.io\"\nroot_phone=\"+1 555 0100\"\nroot_password=\"p\"\n";
        let e = Bootstrap::parse(&format!("{acct}[[users]]\nname=\"a\"\npassword=\"p\"\n[[users]]\nname=\"a\"\npassword=\"q\"\n"), base).unwrap_err();
        assert!(matches!(e, BootstrapError::DuplicateUser(n) if n == "a"));
        let e = Bootstrap::parse(
            &format!("{acct}[profile]\nmax_devices_per_user = 0\n"),
            base,
        )
        .unwrap_err();
        assert!(matches!(e, BootstrapError::Profile(_)));
        let b = Bootstrap::parse(
            &format!(
                "{acct}[[users]]\nname=\"a\"\npassword=\"p\"\npolicies=[\"/nonexistent.json\"]\n"
            ),
            base,
        )
        .unwrap();
        assert!(matches!(b.policies(), Err(BootstrapError::Io { .. })));
        let b = Bootstrap::parse(acct, base).unwrap();
        let e = Engine::in_memory(Profile::for_tests());
        e.create_account("999999999999", "other", "r@x.io", "+1 555 0100", "p")
            .unwrap();
        assert!(matches!(
            b.apply(&e),
            Err(BootstrapError::AccountMismatch { .. })
        ));
    }
}
