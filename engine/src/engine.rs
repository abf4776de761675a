//! The engine: the seed page's rules over a [`Store`].

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use fobsim_core::{Code, Timestamp, Totp};
use fobsim_core::{Kind, SeedRecord};
use parking_lot::{Mutex, RwLock};
use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::{Rng, SeedableRng};

use crate::error::{EngineError, ErrorKind};
use crate::password;
use crate::profile::Profile;
use crate::store::{
    AccountRow, Assign, AssignOutcome, CommitResync, CommitSuccess, FailureOutcome, KeySource,
    MemoryStore, OwnedToken, PgOptions, PgStore, RecordFailure, SqliteOptions, SqliteStore, Store,
    SyncState, TokenRow, UserRow, VerifyState,
};
use crate::sync::Rule;
use crate::types::{ConsoleSignIn, MfaDevice, OutboxChannel, OutboxMessage, TokenState, UserInfo};
use fobsim_core::{Channel, Principal};

#[derive(Default)]
struct Recovery {
    pending: Option<PendingRecovery>,
    /// A completed recovery: one console sign-in without MFA until then.
    grant_until: Option<Timestamp>,
}

struct PendingRecovery {
    email_code: String,
    phone_code: String,
    expires: Timestamp,
}

/// The reference verification engine. `Send + Sync`: share it in an `Arc`.
///
/// Every operation takes `now` (true time); nothing here reads a clock.
/// Prepared TOTP keys are cached per serial, so a verification never
/// decrypts a secret or rebuilds a key.
pub struct Engine {
    profile: Profile,
    store: Box<dyn Store>,
    keys: RwLock<HashMap<String, Arc<Totp>>>,
    rng: Mutex<ChaCha20Rng>,
    recovery: Mutex<Recovery>,
    outbox: Mutex<Vec<OutboxMessage>>,
    /// A password hash of the profile's cost that no password matches
    /// by chance: unknown principals are checked against it, so that a
    /// sign-in takes the same time whether the user exists or not.
    dummy_hash: std::sync::OnceLock<String>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("profile", &self.profile)
            .finish_non_exhaustive()
    }
}

/// A ChaCha20 RNG from `seed` (deterministic: tests) or, for `None`, from
/// the operating system (falling back to std's per-process random hasher
/// keys if `getrandom` fails). Shared by the engine and the AWS key ring.
pub(crate) fn rng_from(seed: Option<u64>) -> ChaCha20Rng {
    if let Some(seed) = seed {
        return ChaCha20Rng::seed_from_u64(seed);
    }
    let mut bytes = [0u8; 32];
    if getrandom::fill(&mut bytes).is_err() {
        use std::hash::{BuildHasher, Hasher};
        for (i, chunk) in bytes.chunks_mut(8).enumerate() {
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write_usize(i);
            chunk.copy_from_slice(&h.finish().to_le_bytes());
        }
    }
    ChaCha20Rng::from_seed(bytes)
}

/// Constant-time equality of two byte strings (secrets, signatures).
pub(crate) fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// IAM's user-name rule: 1-64 characters of `[\w+=,.@-]`.
fn check_user_name(name: &str) -> Result<(), EngineError> {
    let ok = (1..=64).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_+=,.@-".contains(c));
    if ok {
        Ok(())
    } else {
        Err(EngineError::validation(format!(
            "Value at 'userName' failed to satisfy constraint: {name:?} must be 1-64 characters of [\\w+=,.@-]"
        )))
    }
}

fn check_serial(serial: &str) -> Result<(), EngineError> {
    fobsim_core::Serial::new(serial).map(|_| ()).map_err(|e| {
        EngineError::validation(format!(
            "Value at 'serialNumber' failed to satisfy constraint: {e}"
        ))
    })
}

/// Any well-formed code: 6–8 ASCII digits (the exact count is checked once
/// the token is known).
fn precheck_code(code: &str, field: &str) -> Result<(), EngineError> {
    let b = code.as_bytes();
    if (6..=8).contains(&b.len()) && b.iter().all(u8::is_ascii_digit) {
        Ok(())
    } else {
        Err(code_error(code, field, None))
    }
}

fn code_error(code: &str, field: &str, digits: Option<u8>) -> EngineError {
    let shown: String = code.chars().take(16).collect();
    let want = digits.map_or_else(|| "6 to 8".to_string(), |d| d.to_string());
    EngineError::validation(format!(
        "Value {shown:?} at '{field}' failed to satisfy constraint: must be exactly {want} ASCII digits"
    ))
}

fn parse_code(code: &str, field: &str, digits: u8) -> Result<Code, EngineError> {
    Code::parse(code, digits).map_err(|_| code_error(code, field, Some(digits)))
}

/// How many times a sign-in reads the token's state and tries its
/// compare-and-swap before giving up on a token that others keep changing.
const COMMIT_ATTEMPTS: u32 = 8;

fn step_now(totp: &Totp, now: Timestamp) -> Result<u64, EngineError> {
    totp.step_at(now.as_secs())
        .map_err(|e| EngineError::validation(e.to_string()))
}

impl Engine {
    /// An engine over any store.
    #[must_use]
    pub fn new(profile: Profile, store: impl Store + 'static) -> Self {
        Engine::with_store(profile, Box::new(store))
    }

    /// An engine over a boxed store.
    #[must_use]
    pub fn with_store(profile: Profile, store: Box<dyn Store>) -> Self {
        let rng = rng_from(profile.rng_seed);
        Engine {
            profile,
            store,
            keys: RwLock::new(HashMap::new()),
            rng: Mutex::new(rng),
            recovery: Mutex::new(Recovery::default()),
            outbox: Mutex::new(Vec::new()),
            dummy_hash: std::sync::OnceLock::new(),
        }
    }

    /// An engine with an in-memory store.
    #[must_use]
    pub fn in_memory(profile: Profile) -> Self {
        Engine::new(profile, MemoryStore::new())
    }

    /// An engine over the SQLite database at `path` (created and migrated
    /// as needed), with secrets sealed under the key from `key`.
    ///
    /// # Errors
    /// [`ErrorKind::ValidationError`] for an invalid profile,
    /// [`ErrorKind::ServiceFailure`] if the database cannot be opened, the
    /// key cannot be resolved or is not the database's key.
    pub fn sqlite(
        path: impl AsRef<Path>,
        key: &KeySource,
        profile: Profile,
    ) -> Result<Self, EngineError> {
        Engine::sqlite_with_options(path, key, SqliteOptions::default(), profile)
    }

    /// [`Engine::sqlite`] with explicit [`SqliteOptions`] (e.g.
    /// `synchronous_full` to survive power loss, not only process crashes).
    ///
    /// # Errors
    /// As [`Engine::sqlite`].
    pub fn sqlite_with_options(
        path: impl AsRef<Path>,
        key: &KeySource,
        options: SqliteOptions,
        profile: Profile,
    ) -> Result<Self, EngineError> {
        profile.validate()?;
        let store = SqliteStore::open(path, key, options)?;
        Ok(Engine::new(profile, store))
    }

    /// An engine over the PostgreSQL database at `url` (migrated as
    /// needed), with secrets sealed under the key from `key`: every
    /// replica of a deployment opens the same database with the same key.
    ///
    /// # Errors
    /// [`ErrorKind::ValidationError`] for an invalid profile,
    /// [`ErrorKind::ServiceFailure`] for a malformed URL, a server that
    /// cannot be reached or refuses the login, a schema newer than this
    /// build, or a key that is not the database's.
    pub fn postgres(
        url: &str,
        key: &KeySource,
        options: PgOptions,
        profile: Profile,
    ) -> Result<Self, EngineError> {
        profile.validate()?;
        let store = PgStore::open(url, key, options)?;
        Ok(Engine::new(profile, store))
    }

    /// The rules in force.
    #[must_use]
    pub fn profile(&self) -> &Profile {
        &self.profile
    }

    /// The store (for inspection by tests and tools).
    #[must_use]
    pub fn store(&self) -> &dyn Store {
        self.store.as_ref()
    }

    /// Run `f` with all of its store writes in one transaction: one commit
    /// (and one fsync with `synchronous_full`) for many operations. Each
    /// operation inside keeps its own result and rules; they become durable
    /// together when `batch` returns `Ok`. Other threads' operations wait
    /// while a batch runs. On the in-memory store this just calls `f`.
    ///
    /// ```
    /// # use fobsim_engine::{Engine, Profile};
    /// let e = Engine::in_memory(Profile::for_tests());
    /// let n = e.batch(|e| e.list_mfa_devices(&fobsim_core::Principal::Root).is_err()).unwrap();
    /// assert!(n);
    /// ```
    ///
    /// # Errors
    /// [`ErrorKind::ServiceFailure`] if the transaction cannot begin or
    /// commit; then none of the batch's writes persist.
    pub fn batch<R>(&self, f: impl FnOnce(&Engine) -> R) -> Result<R, EngineError> {
        let mut f = Some(f);
        let mut out = None;
        self.store.batch(&mut || {
            if let Some(f) = f.take() {
                out = Some(f(self));
            }
        })?;
        out.ok_or_else(|| EngineError::new(ErrorKind::ServiceFailure, "batch did not run"))
    }

    fn salt(&self) -> [u8; 16] {
        let mut s = [0u8; 16];
        self.rng.lock().fill_bytes(&mut s);
        s
    }

    fn account_row(&self) -> Result<AccountRow, EngineError> {
        self.store.account()?.ok_or_else(|| {
            EngineError::new(ErrorKind::NoSuchEntity, "The account has not been created.")
        })
    }

    /// Check that `who` exists (the account for root, the user otherwise).
    fn require_principal(&self, who: &Principal) -> Result<(), EngineError> {
        match who {
            Principal::Root => self.account_row().map(|_| ()),
            Principal::User(name) => {
                check_user_name(name)?;
                self.account_row()?;
                match self.store.user(name)? {
                    Some(_) => Ok(()),
                    None => Err(EngineError::no_such_user(name)),
                }
            }
        }
    }

    /// The checked input of an enable or a resync, in AWS's order of
    /// checks: the serial, both codes' shape, the principal, the token, then
    /// both codes against the token's digit count.
    fn pair_input(
        &self,
        who: &Principal,
        serial: &str,
        code1: &str,
        code2: &str,
    ) -> Result<(Arc<Totp>, Code, Code), EngineError> {
        check_serial(serial)?;
        precheck_code(code1, "authenticationCode1")?;
        precheck_code(code2, "authenticationCode2")?;
        self.require_principal(who)?;
        let totp = self
            .totp(serial)?
            .ok_or_else(|| EngineError::no_such_device(serial))?;
        let c1 = parse_code(code1, "authenticationCode1", totp.digits())?;
        let c2 = parse_code(code2, "authenticationCode2", totp.digits())?;
        Ok((totp, c1, c2))
    }

    /// The sync state two consecutive codes teach at enable or resync
    /// (`docs/engine-rules.md`): found within the sync window around the
    /// current step, above the replay barrier and outside the quarantine —
    /// or, when a server clock that stepped back left the barrier far
    /// ahead, below the current run (which is then quarantined).
    fn find_pair(
        &self,
        totp: &Totp,
        now: Timestamp,
        seen: &SyncState,
        c1: Code,
        c2: Code,
    ) -> Result<SyncState, EngineError> {
        let current = step_now(totp, now)?;
        Rule::new(&self.profile, totp)
            .pair(totp, now, current, seen, c1, c2)
            .ok_or_else(EngineError::invalid_code)
    }

    /// The prepared key of `serial`, from the cache or the store.
    fn totp(&self, serial: &str) -> Result<Option<Arc<Totp>>, EngineError> {
        if let Some(t) = self.keys.read().get(serial) {
            return Ok(Some(Arc::clone(t)));
        }
        let Some(row) = self.store.token(serial)? else {
            return Ok(None);
        };
        let totp = Arc::new(
            Totp::new(
                row.algorithm,
                row.secret.expose(),
                u32::from(row.digits),
                row.period,
                row.t0,
            )
            .map_err(|e| {
                EngineError::new(ErrorKind::ServiceFailure, format!("token {serial}: {e}"))
            })?,
        );
        self.keys
            .write()
            .insert(serial.to_string(), Arc::clone(&totp));
        Ok(Some(totp))
    }

    /// Create the account and its root user. One account per engine.
    ///
    /// # Errors
    /// [`ErrorKind::ValidationError`] for an account id that is not 12
    /// digits, a bad alias (3–63 of `[a-z0-9-]`, no leading/trailing `-`),
    /// email, phone or empty password; [`ErrorKind::EntityAlreadyExists`]
    /// if the account exists; [`ErrorKind::ServiceFailure`] on store failure.
    pub fn create_account(
        &self,
        account_id: &str,
        alias: &str,
        root_email: &str,
        root_phone: &str,
        root_password: &str,
    ) -> Result<(), EngineError> {
        if account_id.len() != 12 || !account_id.bytes().all(|b| b.is_ascii_digit()) {
            return Err(EngineError::validation(format!(
                "account id {account_id:?} must be exactly 12 digits"
            )));
        }
        let alias_ok = (3..=63).contains(&alias.len())
            && alias
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !alias.starts_with('-')
            && !alias.ends_with('-');
        if !alias_ok {
            return Err(EngineError::validation(format!(
                "account alias {alias:?} must be 3-63 characters of [a-z0-9-], not starting or ending with '-'"
            )));
        }
        let email_ok = root_email.len() <= 254
            && !root_email.chars().any(char::is_whitespace)
            && root_email
                .split_once('@')
                .is_some_and(|(l, d)| !l.is_empty() && d.contains('.') && !d.contains('@'));
        if !email_ok {
            return Err(EngineError::validation(format!(
                "root email {root_email:?} is not an email address"
            )));
        }
        let digits = root_phone.chars().filter(char::is_ascii_digit).count();
        let phone_ok = (5..=15).contains(&digits)
            && root_phone
                .chars()
                .all(|c| c.is_ascii_digit() || " +-().".contains(c));
        if !phone_ok {
            return Err(EngineError::validation(format!(
                "root phone {root_phone:?} is not a phone number"
            )));
        }
        check_password(root_password)?;
        if self.store.account()?.is_some() {
            return Err(EngineError::new(
                ErrorKind::EntityAlreadyExists,
                "The account already exists.",
            ));
        }
        let hash = password::hash(root_password, &self.salt(), self.profile.password_cost)?;
        let row = AccountRow {
            account_id: account_id.to_string(),
            alias: alias.to_string(),
            root_email: root_email.to_string(),
            root_phone: root_phone.to_string(),
            root_password_hash: hash,
        };
        if self.store.insert_account(&row)? {
            Ok(())
        } else {
            Err(EngineError::new(
                ErrorKind::EntityAlreadyExists,
                "The account already exists.",
            ))
        }
    }

    /// Create an IAM user with a console password.
    ///
    /// # Errors
    /// [`ErrorKind::ValidationError`] for a name outside 1–64 characters of
    /// `[\w+=,.@-]` or an empty password; [`ErrorKind::NoSuchEntity`]
    /// without an account; [`ErrorKind::EntityAlreadyExists`] ("User with
    /// name X already exists.").
    pub fn create_user(&self, name: &str, password: &str) -> Result<(), EngineError> {
        check_user_name(name)?;
        check_password(password)?;
        self.account_row()?;
        let exists = || {
            EngineError::new(
                ErrorKind::EntityAlreadyExists,
                format!("User with name {name} already exists."),
            )
        };
        if self.store.user(name)?.is_some() {
            return Err(exists());
        }
        let hash = password::hash(password, &self.salt(), self.profile.password_cost)?;
        let id_bytes = self.salt();
        let user_id = format!(
            "AIDA{}",
            hex::encode_upper(&id_bytes[..9])
                .chars()
                .take(17)
                .collect::<String>()
        );
        let row = UserRow {
            name: name.to_string(),
            user_id,
            password_hash: hash,
        };
        if self.store.insert_user(&row)? {
            Ok(())
        } else {
            Err(exists())
        }
    }

    /// Register hardware tokens (the vendor's seed records), all or none.
    /// Returns how many were registered.
    ///
    /// # Errors
    /// [`ErrorKind::ValidationError`] for an event-based (HOTP) token (this
    /// engine models AWS's time-based hardware tokens), a zero step, bad
    /// digits, or a serial twice in `records`; [`ErrorKind::EntityAlreadyExists`]
    /// for a serial already registered. Nothing is registered on error.
    pub fn import_seeds(&self, records: &[SeedRecord]) -> Result<usize, EngineError> {
        let mut seen = std::collections::HashSet::new();
        let mut rows = Vec::with_capacity(records.len());
        let mut prepared = Vec::with_capacity(records.len());
        for r in records {
            let serial = r.serial.as_str();
            if !seen.insert(serial) {
                return Err(EngineError::validation(format!(
                    "duplicate serial number {serial} in the seed records"
                )));
            }
            let Kind::Totp { period } = r.kind else {
                return Err(EngineError::validation(format!(
                    "token {serial} is event-based (HOTP); this engine verifies time-based (TOTP) hardware tokens only"
                )));
            };
            let totp = Totp::new(
                r.algorithm,
                r.secret.expose(),
                u32::from(r.digits),
                period,
                0,
            )
            .map_err(|e| EngineError::validation(format!("token {serial}: {e}")))?;
            prepared.push((serial.to_string(), Arc::new(totp)));
            rows.push(TokenRow {
                serial: serial.to_string(),
                algorithm: r.algorithm,
                digits: r.digits,
                period,
                t0: 0,
                secret: r.secret.clone(),
            });
        }
        if let Some(dup) = self.store.insert_tokens(&rows)? {
            return Err(EngineError::new(
                ErrorKind::EntityAlreadyExists,
                format!("A hardware MFA token with serial number {dup} is already registered."),
            ));
        }
        let mut keys = self.keys.write();
        for (serial, totp) in prepared {
            keys.insert(serial, totp);
        }
        Ok(rows.len())
    }

    /// Parse a vendor seed file (PSKC RFC 6030 or CSV
    /// `serial,hexseed,TOTP,digits,step`) and register its tokens, all or
    /// none.
    ///
    /// # Errors
    /// [`ErrorKind::ValidationError`] with the parser's line-numbered
    /// message for a malformed file or a duplicate serial in it; otherwise
    /// as [`Engine::import_seeds`].
    pub fn import_seed_file(&self, text: &str) -> Result<usize, EngineError> {
        let records = fobsim_core::seedfile::parse(text)
            .map_err(|e| EngineError::validation(format!("seed file: {e}")))?;
        self.import_seeds(&records)
    }

    /// `EnableMFADevice`: assign the token `serial` to `who` after finding
    /// `code1` and `code2` at two consecutive steps within the sync window
    /// around the current step, above the replay barrier. The learned
    /// offsets become the evidence of code2 (the offsets for which code2,
    /// pressed at most the max submit delay before `now`, was on the fob's
    /// display): codes generated long before `now` still associate the
    /// device, which is then out of sync (sign-ins fail until resync),
    /// exactly as the seed's "Important" box says. If a server clock that
    /// stepped back left the replay barrier beyond the sync window ahead,
    /// fresh codes below the used run heal it; the run is quarantined
    /// (`docs/engine-rules.md`).
    ///
    /// # Errors
    /// - [`ErrorKind::RootConsoleOnly`] (`AccessDenied` 403) for the root
    ///   user over [`Channel::Api`] (unless the profile allows it);
    /// - [`ErrorKind::ValidationError`] for a malformed serial or codes that
    ///   are not exactly the token's digit count of ASCII digits;
    /// - [`ErrorKind::NoSuchEntity`] for an unknown user or serial;
    /// - [`ErrorKind::EntityAlreadyExists`] "MFA Device is already in use.";
    /// - [`ErrorKind::LimitExceeded`] when `who` has the maximum devices;
    /// - [`ErrorKind::InvalidAuthenticationCode`] when the codes are not
    ///   found (or were already used).
    pub fn enable_mfa_device(
        &self,
        now: Timestamp,
        channel: Channel,
        who: &Principal,
        serial: &str,
        code1: &str,
        code2: &str,
    ) -> Result<(), EngineError> {
        if *who == Principal::Root && channel == Channel::Api && !self.profile.root_api_enable {
            return Err(EngineError::new(
                ErrorKind::RootConsoleOnly,
                "Hardware MFA for the root user can be enabled from the AWS Management Console only, not from the AWS CLI or AWS API.",
            ));
        }
        let (totp, c1, c2) = self.pair_input(who, serial, code1, code2)?;
        let state = self
            .store
            .token_state(serial)?
            .ok_or_else(|| EngineError::no_such_device(serial))?;
        if state.owner.is_some() {
            return Err(EngineError::device_in_use());
        }
        let max = self.profile.max_devices_per_user;
        if self.store.tokens_of(who)?.len() >= max as usize {
            return Err(limit(max));
        }
        let seen = state.verify.sync;
        let sync = self.find_pair(&totp, now, &seen, c1, c2)?;
        match self.store.assign(Assign {
            serial,
            owner: who,
            enable_date: now,
            seen,
            sync,
            max_devices: max,
        })? {
            AssignOutcome::Assigned => Ok(()),
            AssignOutcome::NoSuchToken => Err(EngineError::no_such_device(serial)),
            AssignOutcome::InUse => Err(EngineError::device_in_use()),
            AssignOutcome::LimitExceeded => Err(limit(max)),
            AssignOutcome::Replayed => Err(EngineError::invalid_code()),
        }
    }

    /// `ResyncMFADevice`: find two consecutive codes within the sync window
    /// (both above the last accepted step, outside the quarantine) and pin
    /// the learned offsets to the second code's evidence. Clears the
    /// failure count and any lock. The next step after `code2` is accepted
    /// at sign-in; `code2`'s step and earlier are not. Heals a replay
    /// barrier left far ahead by a server clock that stepped back, as
    /// [`Engine::enable_mfa_device`] does.
    ///
    /// # Errors
    /// [`ErrorKind::ValidationError`] for malformed input,
    /// [`ErrorKind::NoSuchEntity`] for an unknown user or a serial not
    /// assigned to `who`, [`ErrorKind::InvalidAuthenticationCode`] when the
    /// codes are not found.
    pub fn resync_mfa_device(
        &self,
        now: Timestamp,
        who: &Principal,
        serial: &str,
        code1: &str,
        code2: &str,
    ) -> Result<(), EngineError> {
        let (totp, c1, c2) = self.pair_input(who, serial, code1, code2)?;
        let token = OwnedToken { serial, owner: who };
        self.store.forget(serial);
        let st = self
            .store
            .verify_state(token)?
            .ok_or_else(|| EngineError::no_such_device(serial))?;
        let sync = self.find_pair(&totp, now, &st.sync, c1, c2)?;
        if self.store.commit_resync(CommitResync {
            token,
            seen: st.sync,
            sync,
        })? {
            Ok(())
        } else {
            // Unassigned or used concurrently in the meantime.
            Err(EngineError::invalid_code())
        }
    }

    /// `DeactivateMFADevice`: unassign `serial` from `who`. The token stays
    /// registered and keeps its replay barrier, run and quarantine (used
    /// codes stay used); the learned offsets are forgotten. (`now` is taken for
    /// uniformity; deactivation does not depend on time.)
    ///
    /// # Errors
    /// [`ErrorKind::ValidationError`] for a malformed serial,
    /// [`ErrorKind::NoSuchEntity`] for an unknown user or a serial not
    /// assigned to `who`.
    pub fn deactivate_mfa_device(
        &self,
        now: Timestamp,
        who: &Principal,
        serial: &str,
    ) -> Result<(), EngineError> {
        let _ = now;
        check_serial(serial)?;
        self.require_principal(who)?;
        if self.store.unassign(OwnedToken { serial, owner: who })? {
            Ok(())
        } else {
            Err(EngineError::no_such_device(serial))
        }
    }

    /// `ListMFADevices` for `who`, ordered by serial.
    ///
    /// # Errors
    /// [`ErrorKind::NoSuchEntity`] for an unknown user (or no account).
    pub fn list_mfa_devices(&self, who: &Principal) -> Result<Vec<MfaDevice>, EngineError> {
        self.require_principal(who)?;
        Ok(self
            .store
            .tokens_of(who)?
            .into_iter()
            .map(|d| MfaDevice {
                user: who.clone(),
                enable_date: d.enable_date.unwrap_or(Timestamp::EPOCH),
                serial: d.serial,
            })
            .collect())
    }

    /// `GetUser` for `who`.
    ///
    /// # Errors
    /// [`ErrorKind::NoSuchEntity`] for an unknown user (or no account).
    pub fn get_user(&self, who: &Principal) -> Result<UserInfo, EngineError> {
        self.require_principal(who)?;
        let account = self.account_row()?;
        let mfa_serials = self
            .store
            .tokens_of(who)?
            .into_iter()
            .map(|d| d.serial)
            .collect();
        Ok(match who {
            Principal::Root => UserInfo {
                principal: Principal::Root,
                user_name: "root".to_string(),
                user_id: account.account_id.clone(),
                arn: format!("arn:aws:iam::{}:root", account.account_id),
                mfa_serials,
            },
            Principal::User(name) => {
                let row = self
                    .store
                    .user(name)?
                    .ok_or_else(|| EngineError::no_such_user(name))?;
                UserInfo {
                    principal: who.clone(),
                    user_name: name.clone(),
                    user_id: row.user_id,
                    arn: format!("arn:aws:iam::{}:user/{name}", account.account_id),
                    mfa_serials,
                }
            }
        })
    }

    /// The session MFA check (behind STS `GetSessionToken` with
    /// `SerialNumber` + `TokenCode`): accept `code` if a step above the
    /// replay barrier (and outside the quarantine) shows it and that step's
    /// evidence is consistent with the token's learned offsets widened to
    /// `now` (`docs/engine-rules.md`). On success the learned offsets
    /// narrow to the evidence and the barrier moves to the highest
    /// candidate step showing the code (atomically, in the store). On
    /// failure the failure count grows and may lock the device — except for
    /// a replay of the code most recently accepted for the token, which
    /// proves possession, not guessing: refused, not counted.
    ///
    /// # Errors
    /// [`ErrorKind::ValidationError`] for a malformed serial or code (state
    /// unchanged); [`ErrorKind::DeviceLocked`] while locked (not counted);
    /// [`ErrorKind::AccessDenied`] "MultiFactorAuthentication failed ..."
    /// for a wrong or replayed code, or a serial not assigned to `who`.
    pub fn verify_session_mfa(
        &self,
        now: Timestamp,
        who: &Principal,
        serial: &str,
        code: &str,
    ) -> Result<(), EngineError> {
        check_serial(serial)?;
        precheck_code(code, "tokenCode")?;
        let Some(totp) = self.totp(serial)? else {
            return Err(not_associated());
        };
        let code = parse_code(code, "tokenCode", totp.digits())?;
        let rule = Rule::new(&self.profile, &totp);
        // Attempt 0 may use the store's cached state; anything but a
        // success is re-checked against fresh state before it counts. A
        // search that missed on a state is not run again on the same state:
        // it would miss again (a wrong code costs one search). A commit
        // that lost to a concurrent write (compare-and-swap) reads again.
        let token = OwnedToken { serial, owner: who };
        let mut missed: Option<VerifyState> = None;
        let mut refused_on: Option<VerifyState> = None;
        for attempt in 0..COMMIT_ATTEMPTS {
            let fresh = attempt > 0;
            if fresh {
                self.store.forget(serial);
            }
            let Some(st) = self.store.verify_state(token)? else {
                if fresh {
                    return Err(not_associated());
                }
                continue;
            };
            if let Some(until) = st.locked_until
                && until > now
            {
                if fresh {
                    return Err(locked(until));
                }
                continue;
            }
            if missed == Some(st) {
                refused_on = Some(st);
                break;
            }
            match rule.sign_in(&totp, now, &st.sync, code) {
                None if fresh => {
                    refused_on = Some(st);
                    break;
                }
                None => missed = Some(st),
                Some(sync) => {
                    if self.store.commit_success(CommitSuccess {
                        token,
                        seen: st.sync,
                        sync,
                        now,
                    })? {
                        return Ok(());
                    }
                }
            }
        }
        let Some(st) = refused_on else {
            // Every attempt lost to a concurrent write: refused, and not
            // counted (nothing shows the code was wrong).
            return Err(EngineError::mfa_failed());
        };
        if st
            .sync
            .last_step
            .is_some_and(|l| totp.code_for_step(l) == code)
        {
            // The code most recently accepted for this token (the barrier
            // step shows it: enable/resync's second code, or the highest
            // step showing an accepted sign-in code).
            return Err(EngineError::mfa_failed());
        }
        match self.store.record_failure(RecordFailure {
            token,
            now,
            threshold: self.profile.lockout_threshold,
            lock_ms: self.profile.lockout_period_ms,
        })? {
            FailureOutcome::NotAssigned => Err(not_associated()),
            FailureOutcome::Counted(_) | FailureOutcome::Locked(_) => {
                Err(EngineError::mfa_failed())
            }
        }
    }

    /// Console sign-in: password, then (if `who` has an MFA device) a code
    /// from it, checked as [`Engine::verify_session_mfa`] does. After a
    /// completed root recovery, the root user may sign in once with
    /// `code = None`.
    ///
    /// # Errors
    /// [`ErrorKind::AccessDenied`] for an unknown principal, a wrong
    /// password, a missing or wrong code; [`ErrorKind::DeviceLocked`] while
    /// the device is locked; [`ErrorKind::ValidationError`] for a malformed
    /// code (state unchanged).
    pub fn console_sign_in(
        &self,
        now: Timestamp,
        who: &Principal,
        password: &str,
        code: Option<&str>,
    ) -> Result<(), EngineError> {
        match self.console_sign_in_step(now, who, password, code)? {
            ConsoleSignIn::MfaRequired => Err(EngineError::new(
                ErrorKind::AccessDenied,
                "An MFA code is required: this user has an MFA device.",
            )),
            _ => Ok(()),
        }
    }

    /// [`Engine::console_sign_in`], telling how it went: a console asks
    /// for the password first and for the code on a second page
    /// ([`ConsoleSignIn::MfaRequired`] after a correct password and no
    /// code). An unknown principal's password is checked against a dummy
    /// hash of the same cost (no user-name timing oracle).
    ///
    /// # Errors
    /// As [`Engine::console_sign_in`], except that a missing code for a
    /// user with a device is `Ok(ConsoleSignIn::MfaRequired)`.
    pub fn console_sign_in_step(
        &self,
        now: Timestamp,
        who: &Principal,
        password: &str,
        code: Option<&str>,
    ) -> Result<ConsoleSignIn, EngineError> {
        let denied = || {
            EngineError::new(
                ErrorKind::AccessDenied,
                "Your authentication information is incorrect. Please try again.",
            )
        };
        let phc = match who {
            Principal::Root => self.store.account()?.map(|a| a.root_password_hash),
            Principal::User(name) => self.store.user(name)?.map(|u| u.password_hash),
        };
        let Some(phc) = phc else {
            let _ = password::verify(password, self.dummy_hash());
            return Err(denied());
        };
        if !password::verify(password, &phc) {
            return Err(denied());
        }
        let devices = self.store.tokens_of(who)?;
        if devices.is_empty() {
            return Ok(ConsoleSignIn::WithoutMfa);
        }
        let Some(code) = code else {
            if *who == Principal::Root {
                let mut rec = self.recovery.lock();
                if rec.grant_until.is_some_and(|u| u > now) {
                    rec.grant_until = None;
                    return Ok(ConsoleSignIn::Recovered);
                }
            }
            return Ok(ConsoleSignIn::MfaRequired);
        };
        let mut last_err = denied();
        for d in &devices {
            match self.verify_session_mfa(now, who, &d.serial, code) {
                Ok(()) => return Ok(ConsoleSignIn::WithMfa),
                Err(e) if e.kind == ErrorKind::ValidationError => return Err(e),
                Err(e) => last_err = e,
            }
        }
        Err(last_err)
    }

    /// The dummy hash (made once, at the profile's cost).
    fn dummy_hash(&self) -> &str {
        self.dummy_hash.get_or_init(|| {
            // A fixed salt: drawing one would move the engine's RNG.
            password::hash(
                "\u{0}fobsim-no-such-principal",
                &[0x5a; 16],
                self.profile.password_cost,
            )
            .unwrap_or_default()
        })
    }

    /// Root recovery, step 1 ("sign in using alternative factors"): send a
    /// verification code to the account email and another to the account
    /// phone (recorded in the [`Engine::outbox`]). A new start replaces a
    /// pending one.
    ///
    /// # Errors
    /// [`ErrorKind::NoSuchEntity`] without an account.
    pub fn start_root_recovery(&self, now: Timestamp) -> Result<(), EngineError> {
        let account = self.account_row()?;
        let digits = u32::from(self.profile.recovery_code_digits);
        let modulus = 10u64.pow(digits);
        let (email_code, phone_code) = {
            let mut rng = self.rng.lock();
            let mut draw = || {
                // Rejection-free enough: 2^64 mod 10^8 bias is < 1e-10.
                format!("{:0w$}", rng.next_u64() % modulus, w = digits as usize)
            };
            (draw(), draw())
        };
        let expires = Timestamp::from_millis(
            now.as_millis()
                .saturating_add(self.profile.recovery_code_ttl_ms),
        );
        {
            let mut out = self.outbox.lock();
            out.push(OutboxMessage {
                to: account.root_email,
                channel: OutboxChannel::Email,
                code: email_code.clone(),
                at: now,
            });
            out.push(OutboxMessage {
                to: account.root_phone,
                channel: OutboxChannel::Phone,
                code: phone_code.clone(),
                at: now,
            });
        }
        let mut rec = self.recovery.lock();
        rec.pending = Some(PendingRecovery {
            email_code,
            phone_code,
            expires,
        });
        Ok(())
    }

    /// Every message sent so far, oldest first.
    #[must_use]
    pub fn outbox(&self) -> Vec<OutboxMessage> {
        self.outbox.lock().clone()
    }

    /// Root recovery, step 2: verify both codes. On success the root user
    /// may sign in once without MFA (within the grant period) and then
    /// deactivate or replace the device. A wrong attempt cancels the
    /// pending recovery (start again).
    ///
    /// # Errors
    /// [`ErrorKind::RecoveryFailed`] (`AccessDenied`) when no recovery is
    /// pending, it expired, or a code is wrong.
    pub fn complete_root_recovery(
        &self,
        now: Timestamp,
        email_code: &str,
        phone_code: &str,
    ) -> Result<(), EngineError> {
        let mut rec = self.recovery.lock();
        let Some(p) = rec.pending.take() else {
            return Err(EngineError::new(
                ErrorKind::RecoveryFailed,
                "No identity verification is in progress.",
            ));
        };
        if now >= p.expires {
            return Err(EngineError::new(
                ErrorKind::RecoveryFailed,
                "The verification codes have expired; start again.",
            ));
        }
        let ok_email = ct_eq(email_code.as_bytes(), p.email_code.as_bytes());
        let ok_phone = ct_eq(phone_code.as_bytes(), p.phone_code.as_bytes());
        if !(ok_email && ok_phone) {
            return Err(EngineError::new(
                ErrorKind::RecoveryFailed,
                "The verification codes are not valid; start again.",
            ));
        }
        rec.grant_until = Some(Timestamp::from_millis(
            now.as_millis()
                .saturating_add(self.profile.recovery_grant_ttl_ms),
        ));
        Ok(())
    }

    /// Observable state of a registered token; `None` for an unknown serial
    /// (or if the store cannot be read).
    #[must_use]
    pub fn token_state(&self, serial: &str) -> Option<TokenState> {
        let d = self.store.token_state(serial).ok()??;
        let totp = self.totp(serial).ok()??;
        Some(TokenState {
            serial: d.serial,
            assigned_to: d.owner,
            enable_date: d.enable_date,
            offsets: d.verify.sync.offsets,
            last_step: d.verify.sync.last_step,
            run_start: d.verify.sync.run_start,
            run_base: d.verify.sync.run_base,
            quarantine: d.verify.sync.quarantine,
            consecutive_failures: d.verify.failures,
            locked_until: d.verify.locked_until,
            period: totp.period(),
            digits: totp.digits(),
        })
    }
}

fn check_password(password: &str) -> Result<(), EngineError> {
    if password.is_empty() || password.chars().count() > 128 {
        return Err(EngineError::validation(
            "a password must be 1-128 characters",
        ));
    }
    Ok(())
}

fn limit(max: u32) -> EngineError {
    EngineError::new(
        ErrorKind::LimitExceeded,
        format!("Cannot exceed quota for MFADevicesPerUser: {max}"),
    )
}

fn not_associated() -> EngineError {
    EngineError::new(
        ErrorKind::AccessDenied,
        "MultiFactorAuthentication failed, unable to validate MFA code. Please verify your MFA serial number is valid and associated with this user.",
    )
}

fn locked(until: Timestamp) -> EngineError {
    EngineError::new(
        ErrorKind::DeviceLocked,
        format!("The MFA device is locked after too many failed attempts until {until}."),
    )
}
