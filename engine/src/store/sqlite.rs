//! SQLite store: WAL, schema migrations via `PRAGMA user_version`, secrets
//! sealed with XChaCha20-Poly1305, conditional updates for every rule.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use fobsim_core::{Algorithm, Secret, Timestamp};
use parking_lot::ReentrantMutex;
use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension, params};
use zeroize::Zeroizing;

use super::{
    AccountRow, Assign, AssignOutcome, CommitResync, CommitSuccess, FailureOutcome, OffsetWindow,
    OwnedToken, RecordFailure, StepRange, Store, SyncState, TokenRow, TokenStateRow, UserRow,
    VerifyState,
};
use crate::error::StoreError;
use crate::types::StorageKey as _;
use fobsim_core::Principal;

/// Where the 256-bit secret-encryption key comes from.
#[derive(Clone)]
pub enum KeySource {
    /// A file holding 64 hex digits; created with a random key (mode 0600)
    /// on first use. A key file that group or others may read is refused,
    /// as ssh refuses such a private key.
    File(PathBuf),
    /// An environment variable holding 64 hex digits (must be set).
    Env(String),
    /// The variable if set, else the key file (generated on first use).
    EnvOrFile {
        /// Environment variable name.
        var: String,
        /// Key file path.
        path: PathBuf,
    },
    /// The key itself (tests, or a caller with its own key management).
    Bytes([u8; 32]),
}

impl std::fmt::Debug for KeySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeySource::File(p) => f.debug_tuple("File").field(p).finish(),
            KeySource::Env(v) => f.debug_tuple("Env").field(v).finish(),
            KeySource::EnvOrFile { var, path } => f
                .debug_struct("EnvOrFile")
                .field("var", var)
                .field("path", path)
                .finish(),
            KeySource::Bytes(_) => f.write_str("Bytes(<redacted>)"),
        }
    }
}

fn parse_hex_key(text: &str, what: &str) -> Result<Zeroizing<[u8; 32]>, StoreError> {
    let bytes = Zeroizing::new(
        hex::decode(text.trim()).map_err(|_| StoreError::Key(format!("{what}: not hex")))?,
    );
    if bytes.len() != 32 {
        return Err(StoreError::Key(format!(
            "{what}: expected 32 bytes (64 hex digits), got {}",
            bytes.len()
        )));
    }
    let mut k = Zeroizing::new([0u8; 32]);
    k.copy_from_slice(&bytes);
    Ok(k)
}

pub(super) fn random_bytes(buf: &mut [u8]) -> Result<(), StoreError> {
    getrandom::fill(buf).map_err(|e| StoreError::Random(e.to_string()))
}

fn key_from_file(path: &Path) -> Result<Zeroizing<[u8; 32]>, StoreError> {
    use fobsim_core::private_file;
    let io = |source| StoreError::KeyFile {
        path: path.display().to_string(),
        source,
    };
    let read = || -> Result<Zeroizing<[u8; 32]>, StoreError> {
        // Refused if group or others may read it, as ssh refuses a key.
        let text = Zeroizing::new(private_file::read_to_string(path)?);
        parse_hex_key(&text, &path.display().to_string())
    };
    match std::fs::symlink_metadata(path) {
        Ok(_) => read(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut k = Zeroizing::new([0u8; 32]);
            random_bytes(k.as_mut())?;
            let text = Zeroizing::new(hex::encode(k.as_ref()));
            match private_file::create_new(path, text.as_bytes()) {
                Ok(true) => Ok(k),
                // Another process created it first: use theirs.
                Ok(false) => read(),
                Err(e) => Err(e.into()),
            }
        }
        Err(e) => Err(io(e)),
    }
}

/// Make the database file private before SQLite opens it (it holds the
/// password hashes and the sealed secrets): a new one is created with mode
/// 0600 — SQLite gives its `-wal` and `-shm` files the database's mode —
/// and an existing one that group or others may read is made 0600, with
/// its `-wal` and `-shm`.
fn make_private(path: &Path) -> Result<(), StoreError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
        let io = |source| StoreError::DatabaseFile {
            path: path.display().to_string(),
            source,
        };
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
        {
            Ok(_) => return Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(io(e)),
        }
        for suffix in ["", "-wal", "-shm"] {
            let mut p = path.as_os_str().to_os_string();
            p.push(suffix);
            let p = PathBuf::from(p);
            if let Ok(m) = std::fs::metadata(&p)
                && m.is_file()
                && m.permissions().mode() & 0o077 != 0
            {
                let mode = m.permissions().mode() & 0o700;
                std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).map_err(io)?;
            }
        }
    }
    Ok(())
}

impl KeySource {
    /// Resolve the key, generating the key file if needed.
    ///
    /// # Errors
    /// [`StoreError::Key`] for a malformed or missing key,
    /// [`StoreError::KeyFile`] for IO failures.
    pub fn resolve(&self) -> Result<Zeroizing<[u8; 32]>, StoreError> {
        match self {
            KeySource::Bytes(b) => Ok(Zeroizing::new(*b)),
            KeySource::File(p) => key_from_file(p),
            KeySource::Env(var) => match std::env::var(var) {
                Ok(v) => parse_hex_key(&v, var),
                Err(_) => Err(StoreError::Key(format!(
                    "environment variable {var} is not set"
                ))),
            },
            KeySource::EnvOrFile { var, path } => match std::env::var(var) {
                Ok(v) => parse_hex_key(&v, var),
                Err(_) => key_from_file(path),
            },
        }
    }
}

/// Durability and locking settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SqliteOptions {
    /// `synchronous=FULL` (fsync every commit: survives power loss) instead
    /// of `NORMAL` (the WAL default: survives a process crash, may lose the
    /// last commits on power loss).
    pub synchronous_full: bool,
    /// How long to wait for a lock held by another connection, in ms.
    pub busy_timeout_ms: u32,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        SqliteOptions {
            synchronous_full: false,
            busy_timeout_ms: 5_000,
        }
    }
}

const SCHEMA_VERSION: i64 = 2;

const MIGRATIONS: &[&str] = &[
    // v1
    "CREATE TABLE meta (k TEXT PRIMARY KEY, v BLOB NOT NULL);
     CREATE TABLE account (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        account_id TEXT NOT NULL,
        alias TEXT NOT NULL,
        root_email TEXT NOT NULL,
        root_phone TEXT NOT NULL,
        root_password_hash TEXT NOT NULL);
     CREATE TABLE users (
        name TEXT PRIMARY KEY,
        user_id TEXT NOT NULL,
        password_hash TEXT NOT NULL) WITHOUT ROWID;
     CREATE TABLE tokens (
        serial TEXT PRIMARY KEY,
        algorithm TEXT NOT NULL,
        digits INTEGER NOT NULL,
        period INTEGER NOT NULL,
        t0 INTEGER NOT NULL,
        secret BLOB NOT NULL,
        owner TEXT,
        enable_date INTEGER,
        drift_offset INTEGER NOT NULL DEFAULT 0,
        last_step INTEGER,
        failures INTEGER NOT NULL DEFAULT 0,
        locked_until INTEGER,
        CHECK ((owner IS NULL) = (enable_date IS NULL))) WITHOUT ROWID;
     CREATE INDEX tokens_owner ON tokens(owner) WHERE owner IS NOT NULL;",
    // v2: the sync rule keeps an interval of fob-clock offsets (ms) instead
    // of a point offset in steps, the current run of acceptances and a
    // quarantine of used steps (docs/engine-rules.md). A v1 offset L (steps)
    // says the fob's step and the engine's differed by L at the last
    // evidence: the fob's offset was then within one step either way of
    // L steps, anchored at the enable date. The run of a v1 token is
    // unknown: it is recorded as starting at the barrier with the barrier
    // as its base, which makes a heal by resync impossible for it (a used
    // code is never accepted again) until the token starts a new run.
    "ALTER TABLE tokens ADD COLUMN off_lo_ms INTEGER NOT NULL DEFAULT 0;
     ALTER TABLE tokens ADD COLUMN off_hi_ms INTEGER NOT NULL DEFAULT 0;
     ALTER TABLE tokens ADD COLUMN anchored_at INTEGER NOT NULL DEFAULT 0;
     ALTER TABLE tokens ADD COLUMN run_start INTEGER;
     ALTER TABLE tokens ADD COLUMN run_base INTEGER;
     ALTER TABLE tokens ADD COLUMN quarantine_first INTEGER;
     ALTER TABLE tokens ADD COLUMN quarantine_last INTEGER;
     UPDATE tokens SET
        off_lo_ms = (drift_offset - 1) * period * 1000,
        off_hi_ms = (drift_offset + 1) * period * 1000,
        anchored_at = enable_date
        WHERE owner IS NOT NULL;
     UPDATE tokens SET run_start = last_step, run_base = last_step;
     ALTER TABLE tokens DROP COLUMN drift_offset;",
];

/// A token's verification state as last read or written by this store,
/// so the sign-in hot path needs one statement (the conditional UPDATE)
/// instead of two. The conditional writes re-check everything that matters
/// (owner, replay barrier, lock), so a stale entry (another connection
/// wrote the row) can never let a replay or a locked/unassigned device
/// through; the engine calls [`Store::forget`] and retries with fresh state
/// before it counts a failure.
#[derive(Clone)]
struct CachedState {
    owner: Option<String>,
    state: VerifyState,
}

struct Conn {
    conn: RefCell<Connection>,
    batch_depth: Cell<u32>,
    cache: RefCell<HashMap<String, CachedState>>,
}

/// A store in one SQLite file. One connection, serialised by a reentrant
/// lock (so [`Store::batch`] can hold it across many operations). Several
/// stores (processes) may share a file: every rule is a conditional write,
/// and the per-token state cache that spares the sign-in path a `SELECT`
/// is only a hint (see [`Store::forget`]).
pub struct SqliteStore {
    conn: ReentrantMutex<Conn>,
    cipher: XChaCha20Poly1305,
    path: PathBuf,
    /// How long an operation waits for the connection (another thread's
    /// operation) before it gives up with [`StoreError::Busy`].
    wait: std::time::Duration,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

fn i64_of(v: u64, what: &str) -> Result<i64, StoreError> {
    i64::try_from(v).map_err(|_| StoreError::Corrupt(format!("{what} {v} does not fit SQLite")))
}

fn u64_of(v: i64, what: &str) -> Result<u64, StoreError> {
    u64::try_from(v).map_err(|_| StoreError::Corrupt(format!("{what} {v} is negative")))
}

fn ts_of(v: Option<i64>) -> Result<Option<Timestamp>, StoreError> {
    v.map(|ms| u64_of(ms, "timestamp").map(Timestamp::from_millis))
        .transpose()
}

pub(super) fn aad(serial: &str) -> Vec<u8> {
    let mut a = b"fobsim-token-secret-v1:".to_vec();
    a.extend_from_slice(serial.as_bytes());
    a
}

pub(super) const KEY_CHECK_PLAIN: &[u8] = b"fobsim key check v1";
pub(super) const KEY_CHECK_AAD: &[u8] = b"fobsim-key-check";

impl SqliteStore {
    /// Open (or create) the database at `path`, migrate it to the current
    /// schema and check that `key` is the key it was created with.
    ///
    /// # Errors
    /// [`StoreError`] for SQLite failures, a key that cannot be resolved, a
    /// wrong key ([`StoreError::Decrypt`]) or a newer schema.
    pub fn open(
        path: impl AsRef<Path>,
        key: &KeySource,
        options: SqliteOptions,
    ) -> Result<Self, StoreError> {
        let path = path.as_ref().to_path_buf();
        let k = key.resolve()?;
        let cipher = XChaCha20Poly1305::new(k.as_ref().into());
        make_private(&path)?;
        let mut conn = Connection::open(&path)?;
        conn.busy_timeout(std::time::Duration::from_millis(u64::from(
            options.busy_timeout_ms,
        )))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(
            None,
            "synchronous",
            if options.synchronous_full {
                "FULL"
            } else {
                "NORMAL"
            },
        )?;
        // 16 MiB page cache: a 10,000-token registry stays in memory.
        conn.pragma_update(None, "cache_size", -16_384)?;
        migrate(&mut conn)?;
        let store = SqliteStore {
            conn: ReentrantMutex::new(Conn {
                conn: RefCell::new(conn),
                batch_depth: Cell::new(0),
                cache: RefCell::new(HashMap::new()),
            }),
            cipher,
            path,
            wait: std::time::Duration::from_millis(u64::from(options.busy_timeout_ms)),
        };
        store.check_key()?;
        Ok(store)
    }

    /// The database file.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `PRAGMA integrity_check`: `"ok"` for a sound database file.
    ///
    /// # Errors
    /// [`StoreError::Sqlite`] if the check cannot run.
    pub fn integrity_check(&self) -> Result<String, StoreError> {
        self.with(|c| Ok(c.query_row("PRAGMA integrity_check", [], |r| r.get(0))?))
    }

    fn seal(&self, plain: &[u8], aad: &[u8]) -> Result<Vec<u8>, StoreError> {
        let mut nonce = [0u8; 24];
        random_bytes(&mut nonce)?;
        let ct = self
            .cipher
            .encrypt(XNonce::from_slice(&nonce), Payload { msg: plain, aad })
            .map_err(|_| StoreError::Key("encryption failed".into()))?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&ct);
        Ok(out)
    }

    fn open_sealed(
        &self,
        blob: &[u8],
        aad: &[u8],
        what: &str,
    ) -> Result<Zeroizing<Vec<u8>>, StoreError> {
        let fail = || StoreError::Decrypt {
            what: what.to_string(),
        };
        if blob.len() < 24 {
            return Err(fail());
        }
        let (nonce, ct) = blob.split_at(24);
        self.cipher
            .decrypt(XNonce::from_slice(nonce), Payload { msg: ct, aad })
            .map(Zeroizing::new)
            .map_err(|_| fail())
    }

    fn check_key(&self) -> Result<(), StoreError> {
        let g = self.conn.lock();
        let conn = g.conn.borrow();
        let existing: Option<Vec<u8>> = conn
            .query_row("SELECT v FROM meta WHERE k = 'key_check'", [], |r| r.get(0))
            .optional()?;
        match existing {
            Some(blob) => {
                let plain = self.open_sealed(&blob, KEY_CHECK_AAD, "key check")?;
                if plain.as_slice() != KEY_CHECK_PLAIN {
                    return Err(StoreError::Decrypt {
                        what: "key check".into(),
                    });
                }
            }
            None => {
                let blob = self.seal(KEY_CHECK_PLAIN, KEY_CHECK_AAD)?;
                conn.execute(
                    "INSERT OR IGNORE INTO meta (k, v) VALUES ('key_check', ?1)",
                    params![blob],
                )?;
            }
        }
        Ok(())
    }

    /// The connection, once the operations of other threads are done (at
    /// most the busy timeout: then [`StoreError::Busy`]). Reentrant.
    fn conn(&self) -> Result<parking_lot::ReentrantMutexGuard<'_, Conn>, StoreError> {
        self.conn.try_lock_for(self.wait).ok_or(StoreError::Busy)
    }

    /// Run `f` with the connection (reentrant: safe inside [`Store::batch`]).
    fn with<R>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<R, StoreError>,
    ) -> Result<R, StoreError> {
        let g = self.conn()?;
        let mut conn = g.conn.borrow_mut();
        f(&mut conn)
    }

    /// Drop the cached state of `serial`.
    fn uncache(&self, serial: &str) {
        let g = self.conn.lock();
        g.cache.borrow_mut().remove(serial);
    }

    fn count_owned(conn: &Connection, owner: &str) -> Result<i64, StoreError> {
        Ok(conn
            .prepare_cached("SELECT COUNT(*) FROM tokens WHERE owner = ?1")?
            .query_row(params![owner], |r| r.get(0))?)
    }
}

fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if version > SCHEMA_VERSION {
        return Err(StoreError::SchemaTooNew {
            found: version,
            supported: SCHEMA_VERSION,
        });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate() {
        let target = i64::try_from(i).unwrap_or(i64::MAX).saturating_add(1);
        if version < target {
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            // Re-check inside the write lock: another process may have migrated.
            let now: i64 = tx.pragma_query_value(None, "user_version", |r| r.get(0))?;
            if now < target {
                tx.execute_batch(sql)?;
                tx.pragma_update(None, "user_version", target)?;
            }
            tx.commit()?;
        }
    }
    Ok(())
}

/// The columns of a [`VerifyState`], in the order [`verify_from_row`]
/// reads them.
const VERIFY_COLS: &str = "off_lo_ms, off_hi_ms, anchored_at, last_step, run_start, run_base, \
     quarantine_first, quarantine_last, failures, locked_until";

/// The columns of a [`TokenStateRow`]: serial, owner, enable date, then
/// (from index 3) its [`VerifyState`].
const STATE_COLS: &str = "serial, owner, enable_date, off_lo_ms, off_hi_ms, anchored_at, \
     last_step, run_start, run_base, quarantine_first, quarantine_last, failures, locked_until";

/// `col = ?n, ...` setting the [`SyncState`] columns from parameter
/// `first` on (8 parameters, in [`sync_values`]' order).
fn sync_set(first: usize) -> String {
    SYNC_COLS
        .iter()
        .enumerate()
        .map(|(i, c)| format!("{c} = ?{}", first + i))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `col IS ?n AND ...`: the row's [`SyncState`] is exactly the one in the
/// parameters from `first` on (the compare of a compare-and-swap).
fn sync_match(first: usize) -> String {
    SYNC_COLS
        .iter()
        .enumerate()
        .map(|(i, c)| format!("{c} IS ?{}", first + i))
        .collect::<Vec<_>>()
        .join(" AND ")
}

const SYNC_COLS: [&str; 8] = [
    "off_lo_ms",
    "off_hi_ms",
    "anchored_at",
    "last_step",
    "run_start",
    "run_base",
    "quarantine_first",
    "quarantine_last",
];

/// A [`SyncState`] as the SQL values of [`SYNC_COLS`].
fn sync_values(s: &SyncState) -> Result<[Value; 8], StoreError> {
    let opt = |v: Option<u64>, what: &str| -> Result<Value, StoreError> {
        Ok(match v {
            Some(v) => Value::Integer(i64_of(v, what)?),
            None => Value::Null,
        })
    };
    Ok([
        Value::Integer(s.offsets.lo_ms),
        Value::Integer(s.offsets.hi_ms),
        Value::Integer(i64_of(s.offsets.anchored_at.as_millis(), "anchored_at")?),
        opt(s.last_step, "last_step")?,
        opt(s.run_start, "run_start")?,
        opt(s.run_base, "run_base")?,
        opt(s.quarantine.map(|q| q.first), "quarantine")?,
        opt(s.quarantine.map(|q| q.last), "quarantine")?,
    ])
}

fn state_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<RawState> {
    Ok(RawState {
        serial: r.get(0)?,
        owner: r.get(1)?,
        enable_date: r.get(2)?,
        verify: verify_from_row(r, 3)?,
    })
}

/// The [`VerifyState`] columns ([`VERIFY_COLS`]) from index `at` on.
fn verify_from_row(r: &rusqlite::Row<'_>, at: usize) -> rusqlite::Result<RawVerify> {
    Ok(RawVerify {
        lo_ms: r.get(at)?,
        hi_ms: r.get(at + 1)?,
        anchored_at: r.get(at + 2)?,
        last_step: r.get(at + 3)?,
        run_start: r.get(at + 4)?,
        run_base: r.get(at + 5)?,
        quarantine: (r.get(at + 6)?, r.get(at + 7)?),
        failures: r.get(at + 8)?,
        locked_until: r.get(at + 9)?,
    })
}

struct RawState {
    serial: String,
    owner: Option<String>,
    enable_date: Option<i64>,
    verify: RawVerify,
}

struct RawVerify {
    lo_ms: i64,
    hi_ms: i64,
    anchored_at: i64,
    last_step: Option<i64>,
    run_start: Option<i64>,
    run_base: Option<i64>,
    quarantine: (Option<i64>, Option<i64>),
    failures: i64,
    locked_until: Option<i64>,
}

impl RawState {
    fn into_row(self) -> Result<TokenStateRow, StoreError> {
        Ok(TokenStateRow {
            owner: self.owner.as_deref().map(crate::types::principal_from_key),
            enable_date: ts_of(self.enable_date)?,
            verify: self.verify.into_state()?,
            serial: self.serial,
        })
    }
}

impl RawVerify {
    fn into_state(self) -> Result<VerifyState, StoreError> {
        let step = |v: Option<i64>, what: &str| v.map(|s| u64_of(s, what)).transpose();
        let quarantine = match self.quarantine {
            (None, None) => None,
            (Some(first), Some(last)) => Some(StepRange {
                first: u64_of(first, "quarantine")?,
                last: u64_of(last, "quarantine")?,
            }),
            (a, b) => {
                return Err(StoreError::Corrupt(format!(
                    "quarantine {a:?}..{b:?} has one end only"
                )));
            }
        };
        Ok(VerifyState {
            sync: SyncState {
                offsets: OffsetWindow {
                    lo_ms: self.lo_ms,
                    hi_ms: self.hi_ms,
                    anchored_at: Timestamp::from_millis(u64_of(self.anchored_at, "anchored_at")?),
                },
                last_step: step(self.last_step, "last_step")?,
                run_start: step(self.run_start, "run_start")?,
                run_base: step(self.run_base, "run_base")?,
                quarantine,
            },
            failures: u32::try_from(self.failures)
                .map_err(|_| StoreError::Corrupt(format!("failures {}", self.failures)))?,
            locked_until: ts_of(self.locked_until)?,
        })
    }
}

impl Store for SqliteStore {
    fn account(&self) -> Result<Option<AccountRow>, StoreError> {
        self.with(|c| {
            Ok(c.prepare_cached(
                "SELECT account_id, alias, root_email, root_phone, root_password_hash \
                 FROM account WHERE id = 1",
            )?
            .query_row([], |r| {
                Ok(AccountRow {
                    account_id: r.get(0)?,
                    alias: r.get(1)?,
                    root_email: r.get(2)?,
                    root_phone: r.get(3)?,
                    root_password_hash: r.get(4)?,
                })
            })
            .optional()?)
        })
    }

    fn insert_account(&self, row: &AccountRow) -> Result<bool, StoreError> {
        self.with(|c| {
            let n = c.execute(
                "INSERT OR IGNORE INTO account \
                 (id, account_id, alias, root_email, root_phone, root_password_hash) \
                 VALUES (1, ?1, ?2, ?3, ?4, ?5)",
                params![
                    row.account_id,
                    row.alias,
                    row.root_email,
                    row.root_phone,
                    row.root_password_hash
                ],
            )?;
            Ok(n == 1)
        })
    }

    fn user(&self, name: &str) -> Result<Option<UserRow>, StoreError> {
        self.with(|c| {
            Ok(
                c.prepare_cached("SELECT name, user_id, password_hash FROM users WHERE name = ?1")?
                    .query_row(params![name], |r| {
                        Ok(UserRow {
                            name: r.get(0)?,
                            user_id: r.get(1)?,
                            password_hash: r.get(2)?,
                        })
                    })
                    .optional()?,
            )
        })
    }

    fn insert_user(&self, row: &UserRow) -> Result<bool, StoreError> {
        self.with(|c| {
            let n = c.execute(
                "INSERT OR IGNORE INTO users (name, user_id, password_hash) VALUES (?1, ?2, ?3)",
                params![row.name, row.user_id, row.password_hash],
            )?;
            Ok(n == 1)
        })
    }

    fn insert_tokens(&self, rows: &[TokenRow]) -> Result<Option<String>, StoreError> {
        // Seal outside the transaction (CPU work only).
        let mut sealed = Vec::with_capacity(rows.len());
        for r in rows {
            sealed.push(self.seal(r.secret.expose(), &aad(&r.serial))?);
        }
        self.with(|c| {
            let sp = c.savepoint()?;
            for (r, blob) in rows.iter().zip(&sealed) {
                let n = sp.execute(
                    "INSERT OR IGNORE INTO tokens (serial, algorithm, digits, period, t0, secret) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    params![
                        r.serial,
                        r.algorithm.as_str(),
                        r.digits,
                        i64_of(r.period, "period")?,
                        i64_of(r.t0, "t0")?,
                        blob
                    ],
                )?;
                if n == 0 {
                    // Dropping the savepoint rolls everything back.
                    return Ok(Some(r.serial.clone()));
                }
            }
            sp.commit()?;
            Ok(None)
        })
    }

    fn token(&self, serial: &str) -> Result<Option<TokenRow>, StoreError> {
        let raw = self.with(|c| {
            Ok(c.prepare_cached(
                "SELECT algorithm, digits, period, t0, secret FROM tokens WHERE serial = ?1",
            )?
            .query_row(params![serial], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, i64>(3)?,
                    r.get::<_, Vec<u8>>(4)?,
                ))
            })
            .optional()?)
        })?;
        let Some((alg, digits, period, t0, blob)) = raw else {
            return Ok(None);
        };
        let algorithm: Algorithm = alg
            .parse()
            .map_err(|_| StoreError::Corrupt(format!("algorithm {alg:?} of {serial}")))?;
        let plain = self.open_sealed(&blob, &aad(serial), serial)?;
        let secret = Secret::new(plain.to_vec())
            .map_err(|_| StoreError::Corrupt(format!("empty secret of {serial}")))?;
        Ok(Some(TokenRow {
            serial: serial.to_string(),
            algorithm,
            digits: u8::try_from(digits)
                .map_err(|_| StoreError::Corrupt(format!("digits {digits} of {serial}")))?,
            period: u64_of(period, "period")?,
            t0: u64_of(t0, "t0")?,
            secret,
        }))
    }

    fn token_state(&self, serial: &str) -> Result<Option<TokenStateRow>, StoreError> {
        let raw = self.with(|c| {
            Ok(c.prepare_cached(&format!(
                "SELECT {STATE_COLS} FROM tokens WHERE serial = ?1"
            ))?
            .query_row(params![serial], state_from_row)
            .optional()?)
        })?;
        raw.map(RawState::into_row).transpose()
    }

    fn verify_state(&self, token: OwnedToken<'_>) -> Result<Option<VerifyState>, StoreError> {
        let OwnedToken { serial, owner } = token;
        let key = owner.storage_key();
        {
            let g = self.conn()?;
            let cache = g.cache.borrow();
            if let Some(c) = cache.get(serial) {
                return Ok((c.owner.as_deref() == Some(key)).then_some(c.state));
            }
        }
        let raw = self.with(|c| {
            Ok(c.prepare_cached(&format!(
                "SELECT owner, {VERIFY_COLS} FROM tokens WHERE serial = ?1"
            ))?
            .query_row(params![serial], |r| {
                Ok((r.get::<_, Option<String>>(0)?, verify_from_row(r, 1)?))
            })
            .optional()?)
        })?;
        let Some((row_owner, raw)) = raw else {
            return Ok(None);
        };
        let state = raw.into_state()?;
        let mine = row_owner.as_deref() == Some(key);
        let g = self.conn.lock();
        g.cache.borrow_mut().insert(
            serial.to_string(),
            CachedState {
                owner: row_owner,
                state,
            },
        );
        Ok(mine.then_some(state))
    }

    fn forget(&self, serial: &str) {
        self.uncache(serial);
    }

    fn assign(&self, req: Assign<'_>) -> Result<AssignOutcome, StoreError> {
        let Assign {
            serial,
            owner,
            enable_date,
            seen,
            sync,
            max_devices,
        } = req;
        let key = owner.storage_key();
        let date = i64_of(enable_date.as_millis(), "enable date")?;
        let mut values = vec![
            Value::Text(serial.to_string()),
            Value::Text(key.to_string()),
            Value::Integer(date),
            Value::Integer(i64::from(max_devices)),
        ];
        values.extend(sync_values(&seen)?);
        values.extend(sync_values(&sync)?);
        let sql = format!(
            "UPDATE tokens SET owner = ?2, enable_date = ?3, {}, failures = 0, \
             locked_until = NULL WHERE serial = ?1 AND owner IS NULL AND {} \
             AND (SELECT COUNT(*) FROM tokens WHERE owner = ?2) < ?4",
            sync_set(13),
            sync_match(5)
        );
        self.with(|c| {
            let n = c
                .prepare_cached(&sql)?
                .execute(rusqlite::params_from_iter(values))?;
            self.uncache(serial);
            if n == 1 {
                return Ok(AssignOutcome::Assigned);
            }
            // Diagnose (the lock is held, so this is consistent).
            let row: Option<Option<String>> = c
                .prepare_cached("SELECT owner FROM tokens WHERE serial = ?1")?
                .query_row(params![serial], |r| r.get(0))
                .optional()?;
            Ok(match row {
                None => AssignOutcome::NoSuchToken,
                Some(Some(_)) => AssignOutcome::InUse,
                Some(None) if Self::count_owned(c, key)? >= i64::from(max_devices) => {
                    AssignOutcome::LimitExceeded
                }
                Some(None) => AssignOutcome::Replayed,
            })
        })
    }

    fn unassign(&self, token: OwnedToken<'_>) -> Result<bool, StoreError> {
        let OwnedToken { serial, owner } = token;
        self.with(|c| {
            let n = c
                .prepare_cached(
                    "UPDATE tokens SET owner = NULL, enable_date = NULL, off_lo_ms = 0, \
                     off_hi_ms = 0, anchored_at = 0, failures = 0, locked_until = NULL \
                     WHERE serial = ?1 AND owner = ?2",
                )?
                .execute(params![serial, owner.storage_key()])?;
            self.uncache(serial);
            Ok(n == 1)
        })
    }

    fn commit_success(&self, req: CommitSuccess<'_>) -> Result<bool, StoreError> {
        let CommitSuccess {
            token: OwnedToken { serial, owner },
            seen,
            sync,
            now,
        } = req;
        let mut values = vec![
            Value::Text(serial.to_string()),
            Value::Text(owner.storage_key().to_string()),
            Value::Integer(i64_of(now.as_millis(), "now")?),
        ];
        values.extend(sync_values(&seen)?);
        values.extend(sync_values(&sync)?);
        let sql = format!(
            "UPDATE tokens SET {}, failures = 0 WHERE serial = ?1 AND owner = ?2 AND {} \
             AND (locked_until IS NULL OR locked_until <= ?3)",
            sync_set(12),
            sync_match(4)
        );
        self.with(|c| {
            let n = c
                .prepare_cached(&sql)?
                .execute(rusqlite::params_from_iter(values))?;
            let g = self.conn.lock();
            let mut cache = g.cache.borrow_mut();
            match cache.get_mut(serial) {
                Some(e) if n == 1 => {
                    e.state.sync = sync;
                    e.state.failures = 0;
                }
                _ => {
                    cache.remove(serial);
                }
            }
            Ok(n == 1)
        })
    }

    fn commit_resync(&self, req: CommitResync<'_>) -> Result<bool, StoreError> {
        let CommitResync {
            token: OwnedToken { serial, owner },
            seen,
            sync,
        } = req;
        let mut values = vec![
            Value::Text(serial.to_string()),
            Value::Text(owner.storage_key().to_string()),
        ];
        values.extend(sync_values(&seen)?);
        values.extend(sync_values(&sync)?);
        let sql = format!(
            "UPDATE tokens SET {}, failures = 0, locked_until = NULL \
             WHERE serial = ?1 AND owner = ?2 AND {}",
            sync_set(11),
            sync_match(3)
        );
        self.with(|c| {
            let n = c
                .prepare_cached(&sql)?
                .execute(rusqlite::params_from_iter(values))?;
            self.uncache(serial);
            Ok(n == 1)
        })
    }

    fn record_failure(&self, req: RecordFailure<'_>) -> Result<FailureOutcome, StoreError> {
        let RecordFailure {
            token: OwnedToken { serial, owner },
            now,
            threshold,
            lock_ms,
        } = req;
        let until = Timestamp::from_millis(now.as_millis().saturating_add(lock_ms));
        let until_i = i64_of(until.as_millis(), "lock expiry")?;
        self.with(|c| {
            let r: Option<(i64, Option<i64>)> = c
                .prepare_cached(
                    "UPDATE tokens SET \
                     failures = CASE WHEN ?3 > 0 AND failures + 1 >= ?3 THEN 0 ELSE failures + 1 END, \
                     locked_until = CASE WHEN ?3 > 0 AND failures + 1 >= ?3 THEN ?4 ELSE locked_until END \
                     WHERE serial = ?1 AND owner = ?2 \
                     RETURNING failures, locked_until",
                )?
                .query_row(
                    params![serial, owner.storage_key(), threshold, until_i],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()?;
            self.uncache(serial);
            Ok(match r {
                None => FailureOutcome::NotAssigned,
                Some((0, Some(u))) if threshold > 0 && u == until_i => FailureOutcome::Locked(until),
                Some((n, _)) => FailureOutcome::Counted(
                    u32::try_from(n).map_err(|_| StoreError::Corrupt(format!("failures {n}")))?,
                ),
            })
        })
    }

    fn tokens_of(&self, owner: &Principal) -> Result<Vec<TokenStateRow>, StoreError> {
        let raws = self.with(|c| {
            let mut st = c.prepare_cached(&format!(
                "SELECT {STATE_COLS} FROM tokens WHERE owner = ?1 ORDER BY serial"
            ))?;
            let rows = st.query_map(params![owner.storage_key()], state_from_row)?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })?;
        raws.into_iter().map(RawState::into_row).collect()
    }

    fn batch(&self, f: &mut dyn FnMut()) -> Result<(), StoreError> {
        let g = self.conn()?;
        if g.batch_depth.get() > 0 {
            f();
            return Ok(());
        }
        g.conn.borrow().execute_batch("BEGIN IMMEDIATE")?;
        struct Guard<'a> {
            conn: &'a Conn,
            done: bool,
        }
        impl Drop for Guard<'_> {
            fn drop(&mut self) {
                self.conn.batch_depth.set(0);
                if !self.done {
                    // The cache may hold writes that are rolled back now.
                    self.conn.cache.borrow_mut().clear();
                    // Panic inside the batch: nothing of it persists.
                    let _ = self.conn.conn.borrow().execute_batch("ROLLBACK");
                }
            }
        }
        let mut guard = Guard {
            conn: &g,
            done: false,
        };
        g.batch_depth.set(1);
        f();
        let committed = g.conn.borrow().execute_batch("COMMIT");
        if committed.is_err() {
            return committed.map_err(StoreError::from);
        }
        guard.done = true;
        Ok(())
    }
}
