//! The bootstrap file of `fobsim serve`: the account, its users (passwords,
//! access keys, attached policy files), the vendor seed files to import,
//! and optionally the engine's rules. Paths are relative to the file.
//!
//! ```toml
//! seeds = ["seeds.csv"]            # PSKC or CSV seed files
//! # an encrypted PSKC file (RFC 6030 §6) names its key or password file:
//! # seeds = [{ file = "vendor.pskc", key_file = "vendor.key" }]
//! # seeds = [{ file = "vendor.pskc", password_file = "vendor.pass" }]
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
//! access keys and policies are read from the file at every start. Every
//! seed file is read (and decrypted, its MACs checked) before any token is
//! imported: a bad file imports nothing. Key and password files must be
//! accessible by their owner only (mode 0600), as ssh wants private keys.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;
use serde::de::{self, MapAccess, Visitor};

use fobsim_core::SeedRecord;
use fobsim_core::seedfile::{EncryptionError, KeyFileError, Protection, SeedFileError};

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
    /// A seed file does not parse or decrypt; nothing of it is imported.
    #[error("{}: {error}{hint}", path.display())]
    SeedFile {
        /// The seed file.
        path: PathBuf,
        /// What is wrong (line, key package).
        error: Box<SeedFileError>,
        /// What to do about it, when there is something to say.
        hint: String,
    },
    /// A seed file's key or password file cannot be used.
    #[error("{}: {error}", seeds.display())]
    SeedKey {
        /// The seed file.
        seeds: PathBuf,
        /// Why its key cannot be used (in the message: not a `source`,
        /// which would repeat it).
        error: KeyFileError,
    },
}

/// What unlocks an encrypted seed file (RFC 6030 §6).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SeedKey {
    /// A file holding the pre-shared transport key (hex).
    KeyFile(PathBuf),
    /// A file holding the password (PBKDF2).
    PasswordFile(PathBuf),
}

/// One entry of `seeds`: a seed file, and for an encrypted PSKC file the
/// file its key or password is in. In TOML: `"seeds.csv"`, or
/// `{ file = "vendor.pskc", key_file = "vendor.key" }`, or
/// `{ file = "vendor.pskc", password_file = "vendor.pass" }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeedFile {
    /// The seed file (PSKC or CSV).
    pub path: PathBuf,
    /// What unlocks it, when it is encrypted.
    pub key: Option<SeedKey>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SeedTable {
    file: PathBuf,
    key_file: Option<PathBuf>,
    password_file: Option<PathBuf>,
}

impl<'de> Deserialize<'de> for SeedFile {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<SeedFile, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = SeedFile;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(
                    "a seed file path, or { file = PATH, key_file = PATH } / { file = PATH, password_file = PATH }",
                )
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<SeedFile, E> {
                Ok(SeedFile {
                    path: PathBuf::from(v),
                    key: None,
                })
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<SeedFile, A::Error> {
                let t = SeedTable::deserialize(de::value::MapAccessDeserializer::new(map))?;
                let key = match (t.key_file, t.password_file) {
                    (Some(_), Some(_)) => {
                        return Err(de::Error::custom(format!(
                            "seed file {}: give key_file or password_file, not both",
                            t.file.display()
                        )));
                    }
                    (Some(k), None) => Some(SeedKey::KeyFile(k)),
                    (None, Some(p)) => Some(SeedKey::PasswordFile(p)),
                    (None, None) => None,
                };
                Ok(SeedFile { path: t.file, key })
            }
        }
        d.deserialize_any(V)
    }
}

impl SeedFile {
    /// The key or password that unlocks the file, read from its file.
    ///
    /// # Errors
    /// [`BootstrapError::SeedKey`]: unreadable, malformed, or accessible by
    /// group or others.
    pub fn protection(&self) -> Result<Option<Protection>, BootstrapError> {
        let err = |error| BootstrapError::SeedKey {
            seeds: self.path.clone(),
            error,
        };
        Ok(match &self.key {
            None => None,
            Some(SeedKey::KeyFile(p)) => Some(Protection::Key(
                fobsim_core::seedfile::read_key_file(p).map_err(err)?,
            )),
            Some(SeedKey::PasswordFile(p)) => Some(Protection::Password(
                fobsim_core::seedfile::read_password_file(p).map_err(err)?,
            )),
        })
    }

    /// Read the file's seed records, decrypting them with its key.
    ///
    /// # Errors
    /// [`BootstrapError::Io`], [`BootstrapError::SeedKey`], or
    /// [`BootstrapError::SeedFile`] for a file that does not parse or
    /// decrypt.
    pub fn read(&self) -> Result<Vec<SeedRecord>, BootstrapError> {
        let text = read(&self.path)?;
        let protection = self.protection()?;
        fobsim_core::seedfile::parse_with(&text, protection.as_ref()).map_err(|e| {
            let hint = match &e {
                SeedFileError::Encrypted {
                    problem: EncryptionError::NoKey { .. },
                    ..
                } => format!(
                    "; name its key or password file in the bootstrap: seeds = [{{ file = \"{}\", key_file = \"KEY\" }}] (or password_file)",
                    self.path.file_name().unwrap_or_default().to_string_lossy()
                ),
                _ => String::new(),
            };
            BootstrapError::SeedFile {
                path: self.path.clone(),
                error: Box::new(e),
                hint,
            }
        })
    }
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
    seeds: Vec<SeedFile>,
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
    /// Seed files and their keys (resolved paths).
    pub seeds: Vec<SeedFile>,
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

/// Register the tokens of `records` that `engine` does not know yet (a
/// serial it knows keeps its secret and state); how many were new.
/// `source` names where the records come from in errors.
///
/// # Errors
/// The store cannot be read, or the engine refuses a record (a duplicate
/// serial, an event-based token, a bad secret): then nothing is imported.
pub fn import_new_seeds(
    engine: &Engine,
    records: Vec<SeedRecord>,
    source: &str,
) -> Result<usize, BootstrapError> {
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
    engine
        .import_seeds(&fresh)
        .map_err(engine_err(format!("importing {source}")))
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
            seeds: raw
                .seeds
                .into_iter()
                .map(|f| SeedFile {
                    path: base.join(&f.path),
                    key: f.key.map(|k| match k {
                        SeedKey::KeyFile(p) => SeedKey::KeyFile(base.join(p)),
                        SeedKey::PasswordFile(p) => SeedKey::PasswordFile(base.join(p)),
                    }),
                })
                .collect(),
            profile,
        })
    }

    /// Create what is missing in `engine`: the account, the users, the
    /// tokens of the seed files. Every seed file is read first: one that
    /// cannot be read, decrypted or parsed changes nothing.
    ///
    /// # Errors
    /// [`BootstrapError::AccountMismatch`] when the database holds another
    /// account; errors reading seed files or their keys; the engine's
    /// refusals.
    pub fn apply(&self, engine: &Engine) -> Result<Applied, BootstrapError> {
        let seeds = self
            .seeds
            .iter()
            .map(|f| f.read().map(|records| (f, records)))
            .collect::<Result<Vec<_>, _>>()?;
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
        for (file, records) in seeds {
            done.tokens_imported +=
                import_new_seeds(engine, records, &file.path.display().to_string())?;
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

    const ACCOUNT: &str = "[account]\nid=\"123456789012\"\nalias=\"abc\"\nroot_email=\"r@x.io\"\nroot_phone=\"+1 555 0100\"\nroot_password=\"p\"\n";

    fn totp(serial: &str) -> SeedRecord {
        SeedRecord {
            serial: fobsim_core::Serial::new(serial).unwrap(),
            kind: fobsim_core::Kind::Totp { period: 30 },
            algorithm: fobsim_core::Algorithm::Sha1,
            digits: 6,
            secret: fobsim_core::Secret::from_hex("3132333435363738393031323334353637383930")
                .unwrap(),
            counter: 0,
        }
    }

    fn private(path: &Path, text: &str) {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::write(path, text).unwrap();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
    }

    /// A directory with `vendor.pskc` (under `transport.key`), `pw.pskc`
    /// (under the password in `pw.pass`) and `plain.csv`.
    fn encrypted_files() -> tempfile::TempDir {
        use fobsim_core::seedfile::{Password, TransportKey, write_csv, write_pskc_protected};
        use rand_chacha::rand_core::SeedableRng as _;
        let dir = tempfile::tempdir().unwrap();
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(9);
        let key = TransportKey::new(vec![0x42; 16]).unwrap();
        private(
            &dir.path().join("transport.key"),
            &format!("{}\n", key.to_hex().as_str()),
        );
        let text = write_pskc_protected(
            &[totp("VENDOR000001"), totp("VENDOR000002")],
            &Protection::Key(key),
            &mut rng,
        );
        std::fs::write(dir.path().join("vendor.pskc"), text).unwrap();
        private(&dir.path().join("pw.pass"), "a long passphrase\n");
        let pw = Password::new("a long passphrase")
            .unwrap()
            .with_iterations(1000)
            .unwrap();
        let text =
            write_pskc_protected(&[totp("VENDOR000003")], &Protection::Password(pw), &mut rng);
        std::fs::write(dir.path().join("pw.pskc"), text).unwrap();
        std::fs::write(
            dir.path().join("plain.csv"),
            write_csv(&[totp("VENDOR000004")]),
        )
        .unwrap();
        dir
    }

    #[test]
    fn encrypted_seed_files_load_with_their_key_files() {
        let dir = encrypted_files();
        let b = Bootstrap::parse(
            &format!("seeds = [{{ file = \"vendor.pskc\", key_file = \"transport.key\" }}, {{ file = \"pw.pskc\", password_file = \"pw.pass\" }}, \"plain.csv\"]\n{ACCOUNT}"),
            dir.path(),
        )
        .unwrap();
        assert_eq!(
            b.seeds[0].key,
            Some(SeedKey::KeyFile(dir.path().join("transport.key")))
        );
        let e = Engine::in_memory(Profile::for_tests());
        assert_eq!(b.apply(&e).unwrap().tokens_imported, 4);
        for s in [
            "VENDOR000001",
            "VENDOR000002",
            "VENDOR000003",
            "VENDOR000004",
        ] {
            assert!(e.store().token_state(s).unwrap().is_some(), "{s}");
        }
    }

    #[test]
    fn a_bad_seed_file_or_key_imports_nothing() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = encrypted_files();
        let load = |seeds: &str| {
            let b = Bootstrap::parse(&format!("seeds = [{seeds}]\n{ACCOUNT}"), dir.path()).unwrap();
            let e = Engine::in_memory(Profile::for_tests());
            let err = b.apply(&e).unwrap_err();
            // Nothing at all: not the account, not the good file's tokens.
            assert!(e.store().account().unwrap().is_none(), "{err}");
            assert!(
                e.store().token_state("VENDOR000004").unwrap().is_none(),
                "{err}"
            );
            err.to_string()
        };
        // No key for an encrypted file: the error says where to put it.
        let m = load("\"plain.csv\", \"vendor.pskc\"");
        assert!(m.contains("KeyPackage 1") && m.contains("key_file"), "{m}");
        // The wrong key, the wrong kind, a tampered file.
        private(&dir.path().join("other.key"), &"11".repeat(16));
        let m = load("\"plain.csv\", { file = \"vendor.pskc\", key_file = \"other.key\" }");
        assert!(
            m.contains("KeyPackage 1") && m.contains("pre-shared key"),
            "{m}"
        );
        let m = load("\"plain.csv\", { file = \"vendor.pskc\", password_file = \"pw.pass\" }");
        assert!(m.contains("but a password was given"), "{m}");
        let text = std::fs::read_to_string(dir.path().join("vendor.pskc")).unwrap();
        let mac = text
            .split("<pskc:ValueMAC>")
            .nth(2)
            .unwrap()
            .split('<')
            .next()
            .unwrap();
        let first = if mac.starts_with('A') { "B" } else { "A" };
        let tampered = text.replace(mac, &format!("{first}{}", &mac[1..]));
        assert_ne!(tampered, text);
        std::fs::write(dir.path().join("tampered.pskc"), tampered).unwrap();
        let m = load("\"plain.csv\", { file = \"tampered.pskc\", key_file = \"transport.key\" }");
        assert!(
            m.contains("KeyPackage 2") && m.contains("ValueMAC does not match"),
            "{m}"
        );
        // A key file others may read is refused, as ssh refuses such keys.
        std::fs::set_permissions(
            dir.path().join("transport.key"),
            std::fs::Permissions::from_mode(0o644),
        )
        .unwrap();
        let m = load("\"plain.csv\", { file = \"vendor.pskc\", key_file = \"transport.key\" }");
        assert!(
            m.contains("0644 are too open") && m.contains("chmod 600"),
            "{m}"
        );
        // A key for a file that is not encrypted.
        let m = load("{ file = \"plain.csv\", password_file = \"pw.pass\" }");
        assert!(m.contains("holds no encrypted values"), "{m}");
    }

    #[test]
    fn seed_entries_are_checked() {
        let base = Path::new(".");
        for (seeds, want) in [
            (
                "{ file = \"a.pskc\", key_file = \"k\", password_file = \"p\" }",
                "not both",
            ),
            (
                "{ file = \"a.pskc\", kye_file = \"k\" }",
                "unknown field `kye_file`",
            ),
            ("{ key_file = \"k\" }", "missing field `file`"),
            ("3", "a seed file path"),
        ] {
            let e = Bootstrap::parse(&format!("seeds = [{seeds}]\n{ACCOUNT}"), base).unwrap_err();
            assert!(e.to_string().contains(want), "{seeds}: {e}");
        }
    }
}
