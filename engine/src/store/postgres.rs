//! PostgreSQL store: several engine processes (replicas) on one database.
//! Versioned schema migrations (`fobsim_schema`), secrets sealed with
//! XChaCha20-Poly1305 exactly as [`super::SqliteStore`] seals them (same
//! key check, same associated data), a connection pool, and every rule one
//! conditional write that is atomic across replicas.
//!
//! # Client and pool
//!
//! The synchronous `postgres` client with an `r2d2` pool, not
//! `tokio-postgres` with `deadpool`: the [`Store`] trait is synchronous
//! and its callers sit on threads that may block (the server runs the
//! engine on the blocking pool). The synchronous client drives its socket
//! on the calling thread, so a statement costs one round trip and no
//! hand-over to another runtime thread and back, which an async pool
//! called through a `block_on` bridge would add to every request. Every
//! statement is prepared once per connection and cached.
//!
//! # Atomicity across replicas
//!
//! Each write the rules depend on is **one conditional statement** in
//! PostgreSQL's default isolation (READ COMMITTED), not a serializable
//! transaction with retries:
//!
//! - The compare-and-swaps of the sync state (replay barrier, learned
//!   offsets, run, quarantine: [`Store::commit_success`],
//!   [`Store::commit_resync`], [`Store::assign`]) and device-in-use are an
//!   `UPDATE ... WHERE serial = $1 AND <every column the rule read> IS NOT
//!   DISTINCT FROM <what it read>`. An `UPDATE` locks the row it changes; a
//!   second writer of the same row waits for the first to commit and then
//!   re-evaluates its `WHERE` clause against the row version the first
//!   wrote (PostgreSQL's documented READ COMMITTED update rule), so of two
//!   replicas accepting the same code exactly one changes the row and the
//!   other sees 0 rows changed.
//! - The failure counter is `failures = failures + 1` under that same row
//!   lock (`RETURNING` the result): no increment is lost.
//! - The devices-per-user limit reads *other* rows (a count), which a row
//!   lock does not cover: [`Store::assign`] first takes a transaction-scoped
//!   advisory lock on the owner (`pg_advisory_xact_lock`), so assignments
//!   to one owner are serialised across replicas and the count in the
//!   following `UPDATE` (a new snapshot in READ COMMITTED) sees every
//!   committed one. Unassigning only lowers the count and needs no lock.
//!
//! A serializable transaction would give the same guarantees but turns
//! every conflict (32 replicas racing for one code) into an abort that the
//! store must retry, each retry a round trip more; the conditional
//! statements never abort, and the loser learns in the same round trip.
//!
//! # An unreachable database
//!
//! A connection that cannot be had within the connect timeout, a socket
//! that fails, or a server that is shutting down or starting up (SQLSTATE
//! classes 08 and 53, `57P01`–`57P03`) is [`StoreError::Busy`]: the API
//! answers 503 `ServiceUnavailable` and the client retries. Broken
//! connections are dropped from the pool and new ones are made when the
//! server is back. A read that fails that way is tried once more on a
//! fresh connection; a write is not (whether it committed is unknown: the
//! client's retry then meets the rules — a sign-in code that did commit is
//! refused as a replay, never accepted twice).

use std::collections::HashMap;
use std::str::FromStr as _;
use std::sync::LazyLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use fobsim_core::{Algorithm, Principal, Secret, Timestamp};
use parking_lot::Mutex;
use postgres::types::ToSql;
use postgres::{NoTls, Row, Statement};
use zeroize::Zeroizing;

mod group;

use super::sqlite::{KEY_CHECK_AAD, KEY_CHECK_PLAIN, aad, random_bytes};
use super::{
    AccountRow, Assign, AssignOutcome, CommitResync, CommitSuccess, FailureOutcome, KeySource,
    OffsetWindow, OwnedToken, RecordFailure, StepRange, Store, SyncState, TokenRow, TokenStateRow,
    UserRow, VerifyState,
};
use crate::error::StoreError;
use crate::types::StorageKey as _;

/// Pool and connection settings of a [`PgStore`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PgOptions {
    /// Most connections this store opens (each is a server process on the
    /// database host: replicas × this must stay below the server's
    /// `max_connections`).
    pub pool_size: u32,
    /// How long to wait for a connection (to connect, or for a pooled one
    /// to come free) before an operation fails with [`StoreError::Busy`].
    pub connect_timeout_ms: u64,
}

impl Default for PgOptions {
    fn default() -> Self {
        PgOptions {
            pool_size: 16,
            connect_timeout_ms: 3_000,
        }
    }
}

/// The schema version this build writes and reads.
pub const PG_SCHEMA_VERSION: i64 = 1;

/// Schema migrations, oldest first: migration `i` takes the database to
/// version `i + 1`. The columns are those of SQLite's current schema.
const PG_MIGRATIONS: &[&str] = &[
    // v1
    "CREATE TABLE fobsim_meta (k TEXT PRIMARY KEY, v BYTEA NOT NULL);
     CREATE TABLE fobsim_account (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        account_id TEXT NOT NULL,
        alias TEXT NOT NULL,
        root_email TEXT NOT NULL,
        root_phone TEXT NOT NULL,
        root_password_hash TEXT NOT NULL);
     CREATE TABLE fobsim_users (
        name TEXT PRIMARY KEY,
        user_id TEXT NOT NULL,
        password_hash TEXT NOT NULL);
     CREATE TABLE fobsim_tokens (
        serial TEXT PRIMARY KEY,
        algorithm TEXT NOT NULL,
        digits BIGINT NOT NULL,
        period BIGINT NOT NULL,
        t0 BIGINT NOT NULL,
        secret BYTEA NOT NULL,
        owner TEXT,
        enable_date BIGINT,
        off_lo_ms BIGINT NOT NULL DEFAULT 0,
        off_hi_ms BIGINT NOT NULL DEFAULT 0,
        anchored_at BIGINT NOT NULL DEFAULT 0,
        last_step BIGINT,
        run_start BIGINT,
        run_base BIGINT,
        quarantine_first BIGINT,
        quarantine_last BIGINT,
        failures BIGINT NOT NULL DEFAULT 0,
        locked_until BIGINT,
        CHECK ((owner IS NULL) = (enable_date IS NULL)),
        CHECK ((quarantine_first IS NULL) = (quarantine_last IS NULL)))
        -- room on each page for the new row version of an UPDATE, so the
        -- sign-in path's updates stay heap-only (no index writes)
        WITH (fillfactor = 70);
     CREATE INDEX fobsim_tokens_owner ON fobsim_tokens(owner) WHERE owner IS NOT NULL;",
];

/// Advisory lock classes (the first key of the two-key form): schema
/// migrations, and assignments to one owner.
const LOCK_MIGRATE: i32 = 0x0f0b_5101;
const LOCK_OWNER: i32 = 0x0f0b_5102;

/// The columns of a [`VerifyState`], in the order [`verify_from_row`]
/// reads them.
const VERIFY_COLS: &str = "off_lo_ms, off_hi_ms, anchored_at, last_step, run_start, run_base, \
     quarantine_first, quarantine_last, failures, locked_until";

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

/// `{table}.col IS NOT DISTINCT FROM {prefix}i AND ...` for the [`SyncState`]
/// columns `i` = 0..8: the compare of a compare-and-swap whose values come
/// from another relation (the unnested rows of a group commit).
fn sync_match_on(table: &str, prefix: &str) -> String {
    SYNC_COLS
        .iter()
        .enumerate()
        .map(|(i, c)| format!("{table}.{c} IS NOT DISTINCT FROM {prefix}{i}"))
        .collect::<Vec<_>>()
        .join(" AND ")
}

/// `col = $n, ...` setting the [`SyncState`] columns from parameter
/// `first` on (8 parameters, in [`sync_values`]' order).
fn sync_set(first: usize) -> String {
    SYNC_COLS
        .iter()
        .enumerate()
        .map(|(i, c)| format!("{c} = ${}", first + i))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `col IS NOT DISTINCT FROM $n AND ...`: the row's [`SyncState`] is
/// exactly the one in the parameters from `first` on (the compare of a
/// compare-and-swap; NULL equals NULL).
fn sync_match(first: usize) -> String {
    SYNC_COLS
        .iter()
        .enumerate()
        .map(|(i, c)| format!("{c} IS NOT DISTINCT FROM ${}::BIGINT", first + i))
        .collect::<Vec<_>>()
        .join(" AND ")
}

const SQL_ACCOUNT: &str = "SELECT account_id, alias, root_email, root_phone, root_password_hash \
     FROM fobsim_account WHERE id = 1";
const SQL_INSERT_ACCOUNT: &str = "INSERT INTO fobsim_account \
     (id, account_id, alias, root_email, root_phone, root_password_hash) \
     VALUES (1, $1, $2, $3, $4, $5) ON CONFLICT DO NOTHING";
const SQL_USER: &str = "SELECT name, user_id, password_hash FROM fobsim_users WHERE name = $1";
const SQL_INSERT_USER: &str = "INSERT INTO fobsim_users (name, user_id, password_hash) \
     VALUES ($1, $2, $3) ON CONFLICT DO NOTHING";
const SQL_INSERT_TOKENS: &str = "INSERT INTO fobsim_tokens \
     (serial, algorithm, digits, period, t0, secret) \
     SELECT * FROM unnest($1::TEXT[], $2::TEXT[], $3::BIGINT[], $4::BIGINT[], $5::BIGINT[], \
     $6::BYTEA[]) ON CONFLICT (serial) DO NOTHING RETURNING serial";
const SQL_TOKEN: &str =
    "SELECT algorithm, digits, period, t0, secret FROM fobsim_tokens WHERE serial = $1";
const SQL_OWNER_OF: &str = "SELECT owner FROM fobsim_tokens WHERE serial = $1";
const SQL_COUNT_OWNED: &str = "SELECT COUNT(*) FROM fobsim_tokens WHERE owner = $1";
const SQL_LOCK_OWNER: &str = "SELECT pg_advisory_xact_lock($1::INTEGER, hashtext($2))";
const SQL_UNASSIGN: &str = "UPDATE fobsim_tokens SET owner = NULL, enable_date = NULL, \
     off_lo_ms = 0, off_hi_ms = 0, anchored_at = 0, failures = 0, locked_until = NULL \
     WHERE serial = $1 AND owner = $2";
const SQL_RECORD_FAILURE: &str = "UPDATE fobsim_tokens SET \
     failures = CASE WHEN $3::BIGINT > 0 AND failures + 1 >= $3::BIGINT THEN 0 ELSE failures + 1 END, \
     locked_until = CASE WHEN $3::BIGINT > 0 AND failures + 1 >= $3::BIGINT THEN $4::BIGINT \
     ELSE locked_until END \
     WHERE serial = $1 AND owner = $2 RETURNING failures, locked_until";

static SQL_TOKEN_STATE: LazyLock<String> = LazyLock::new(|| {
    format!("SELECT serial, owner, enable_date, {VERIFY_COLS} FROM fobsim_tokens WHERE serial = $1")
});
static SQL_TOKENS_OF: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT serial, owner, enable_date, {VERIFY_COLS} FROM fobsim_tokens \
         WHERE owner = $1 ORDER BY serial"
    )
});
static SQL_VERIFY_STATE: LazyLock<String> =
    LazyLock::new(|| format!("SELECT owner, {VERIFY_COLS} FROM fobsim_tokens WHERE serial = $1"));
static SQL_ASSIGN: LazyLock<String> = LazyLock::new(|| {
    format!(
        "UPDATE fobsim_tokens SET owner = $2, enable_date = $3, {}, failures = 0, \
         locked_until = NULL WHERE serial = $1 AND owner IS NULL AND {} \
         AND (SELECT COUNT(*) FROM fobsim_tokens WHERE owner = $2) < $4::BIGINT",
        sync_set(13),
        sync_match(5)
    )
});
static SQL_COMMIT_SUCCESS: LazyLock<String> = LazyLock::new(|| {
    format!(
        "UPDATE fobsim_tokens SET {}, failures = 0 WHERE serial = $1 AND owner = $2 AND {} \
         AND (locked_until IS NULL OR locked_until <= $3::BIGINT)",
        sync_set(12),
        sync_match(4)
    )
});
static SQL_COMMIT_RESYNC: LazyLock<String> = LazyLock::new(|| {
    format!(
        "UPDATE fobsim_tokens SET {}, failures = 0, locked_until = NULL \
         WHERE serial = $1 AND owner = $2 AND {}",
        sync_set(11),
        sync_match(3)
    )
});

/// [`SQL_COMMIT_SUCCESS`] as a `&'static str` (for the statement cache).
fn sql_commit_success() -> &'static str {
    SQL_COMMIT_SUCCESS.as_str()
}

/// Whether `e` says the server cannot be reached or cannot serve now (as
/// opposed to refusing the statement): the socket failed or closed, or
/// SQLSTATE class 08 (connection exception), 53 (insufficient resources,
/// e.g. too many connections), 57P01–57P03 (shutting down, crashed,
/// starting up), 40001/40P01 (a serialisation failure or deadlock: retry).
fn unavailable(e: &postgres::Error) -> bool {
    if e.is_closed() {
        return true;
    }
    if let Some(state) = e.code() {
        let c = state.code();
        return c.starts_with("08")
            || c.starts_with("53")
            || matches!(c, "57P01" | "57P02" | "57P03" | "40001" | "40P01");
    }
    std::error::Error::source(e).is_some_and(|s| s.is::<std::io::Error>())
}

/// A statement's error as a [`StoreError`]: unavailability is
/// [`StoreError::Busy`] (503, retry), everything else
/// [`StoreError::Postgres`].
fn store_err(e: postgres::Error) -> StoreError {
    if unavailable(&e) {
        StoreError::Busy
    } else {
        StoreError::Postgres(e)
    }
}

fn i64_of(v: u64, what: &str) -> Result<i64, StoreError> {
    i64::try_from(v).map_err(|_| StoreError::Corrupt(format!("{what} {v} does not fit BIGINT")))
}

fn u64_of(v: i64, what: &str) -> Result<u64, StoreError> {
    u64::try_from(v).map_err(|_| StoreError::Corrupt(format!("{what} {v} is negative")))
}

fn ts_of(v: Option<i64>) -> Result<Option<Timestamp>, StoreError> {
    v.map(|ms| u64_of(ms, "timestamp").map(Timestamp::from_millis))
        .transpose()
}

/// A column of a row we selected ourselves: a type mismatch means the
/// schema is not the one this build wrote.
fn col<'a, T: postgres::types::FromSql<'a>>(row: &'a Row, i: usize) -> Result<T, StoreError> {
    row.try_get(i)
        .map_err(|e| StoreError::Corrupt(format!("column {i}: {e}")))
}

/// A [`SyncState`] as the values of [`SYNC_COLS`].
fn sync_values(s: &SyncState) -> Result<[Option<i64>; 8], StoreError> {
    let opt = |v: Option<u64>, what: &str| v.map(|v| i64_of(v, what)).transpose();
    Ok([
        Some(s.offsets.lo_ms),
        Some(s.offsets.hi_ms),
        Some(i64_of(s.offsets.anchored_at.as_millis(), "anchored_at")?),
        opt(s.last_step, "last_step")?,
        opt(s.run_start, "run_start")?,
        opt(s.run_base, "run_base")?,
        opt(s.quarantine.map(|q| q.first), "quarantine")?,
        opt(s.quarantine.map(|q| q.last), "quarantine")?,
    ])
}

/// The [`VerifyState`] columns ([`VERIFY_COLS`]) from index `at` on.
fn verify_from_row(r: &Row, at: usize) -> Result<VerifyState, StoreError> {
    let step = |i: usize, what: &str| -> Result<Option<u64>, StoreError> {
        col::<Option<i64>>(r, at + i)?
            .map(|s| u64_of(s, what))
            .transpose()
    };
    let quarantine = match (step(6, "quarantine")?, step(7, "quarantine")?) {
        (None, None) => None,
        (Some(first), Some(last)) => Some(StepRange { first, last }),
        (a, b) => {
            return Err(StoreError::Corrupt(format!(
                "quarantine {a:?}..{b:?} has one end only"
            )));
        }
    };
    let failures: i64 = col(r, at + 8)?;
    Ok(VerifyState {
        sync: SyncState {
            offsets: OffsetWindow {
                lo_ms: col(r, at)?,
                hi_ms: col(r, at + 1)?,
                anchored_at: Timestamp::from_millis(u64_of(col(r, at + 2)?, "anchored_at")?),
            },
            last_step: step(3, "last_step")?,
            run_start: step(4, "run_start")?,
            run_base: step(5, "run_base")?,
            quarantine,
        },
        failures: u32::try_from(failures)
            .map_err(|_| StoreError::Corrupt(format!("failures {failures}")))?,
        locked_until: ts_of(col(r, at + 9)?)?,
    })
}

/// A [`TokenStateRow`] from `serial, owner, enable_date, VERIFY_COLS`.
fn state_from_row(r: &Row) -> Result<TokenStateRow, StoreError> {
    let owner: Option<String> = col(r, 1)?;
    Ok(TokenStateRow {
        serial: col(r, 0)?,
        owner: owner.as_deref().map(crate::types::principal_from_key),
        enable_date: ts_of(col(r, 2)?)?,
        verify: verify_from_row(r, 3)?,
    })
}

/// One pooled connection and the statements prepared on it.
struct PgConn {
    client: postgres::Client,
    /// By the SQL text's address and length (hashing a pointer, not the
    /// text of a long statement, on every call).
    statements: HashMap<(usize, usize), Statement>,
    /// [`Shared::epoch`] when the connection was made.
    epoch: u64,
    /// Seen failing: the pool drops it when it comes back.
    broken: bool,
}

impl PgConn {
    /// The prepared statement for `sql` (prepared on first use).
    fn stmt(&mut self, sql: &'static str) -> Result<Statement, StoreError> {
        let key = (sql.as_ptr() as usize, sql.len());
        if let Some(s) = self.statements.get(&key) {
            return Ok(s.clone());
        }
        let s = self.client.prepare(sql).map_err(store_err)?;
        self.statements.insert(key, s.clone());
        Ok(s)
    }

    fn execute(
        &mut self,
        sql: &'static str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<u64, StoreError> {
        let s = self.stmt(sql)?;
        self.client.execute(&s, params).map_err(store_err)
    }

    fn query_opt(
        &mut self,
        sql: &'static str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Option<Row>, StoreError> {
        let s = self.stmt(sql)?;
        self.client.query_opt(&s, params).map_err(store_err)
    }

    fn query(
        &mut self,
        sql: &'static str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, StoreError> {
        let s = self.stmt(sql)?;
        self.client.query(&s, params).map_err(store_err)
    }

    fn simple(&mut self, sql: &str) -> Result<(), StoreError> {
        self.client.batch_execute(sql).map_err(store_err)
    }
}

/// What the pool and the store share: the connection settings and the
/// epoch of connections (raised when one is found broken, so that the
/// others made before it are dropped instead of failing one request each
/// after a server restart).
struct Shared {
    config: postgres::Config,
    epoch: AtomicU64,
}

struct Manager(std::sync::Arc<Shared>);

impl r2d2::ManageConnection for Manager {
    type Connection = PgConn;
    type Error = postgres::Error;

    fn connect(&self) -> Result<PgConn, postgres::Error> {
        let epoch = self.0.epoch.load(Ordering::Acquire);
        let mut client = self.0.config.connect(NoTls)?;
        // Plan each prepared statement once per connection (its generic
        // plan) instead of re-planning it with the parameters' values for
        // its first executions and whenever the planner guesses a custom
        // plan is cheaper: every statement here is a lookup by key (the
        // group commit's joins the unnested parameters to the primary key
        // by a nested loop either way), and planning the group statement
        // costs more than running it.
        client.batch_execute("SET plan_cache_mode = force_generic_plan")?;
        Ok(PgConn {
            client,
            statements: HashMap::new(),
            epoch,
            broken: false,
        })
    }

    fn is_valid(&self, conn: &mut PgConn) -> Result<(), postgres::Error> {
        conn.client.simple_query("").map(drop)
    }

    fn has_broken(&self, conn: &mut PgConn) -> bool {
        conn.broken || conn.client.is_closed() || conn.epoch < self.0.epoch.load(Ordering::Acquire)
    }
}

type Pooled = r2d2::PooledConnection<Manager>;

/// A token's verification state as last read or written by this store
/// (as [`super::SqliteStore`] keeps it): a hint that the conditional
/// writes validate, so a replica whose entry is stale (another replica
/// wrote the row) can never let a replay or a locked device through.
#[derive(Clone)]
struct CachedState {
    owner: Option<String>,
    state: VerifyState,
}

static STORE_IDS: AtomicU64 = AtomicU64::new(1);

thread_local! {
    /// The connections of the batches ([`Store::batch`]) this thread runs,
    /// by store id.
    static BATCHES: std::cell::RefCell<Vec<(u64, Batch)>> = const { std::cell::RefCell::new(Vec::new()) };
}

struct Batch {
    conn: Pooled,
    /// A statement of the batch failed: its transaction is aborted, so the
    /// batch ends in a rollback and reports the failure.
    failed: bool,
}

/// Run blocking database work from any thread: the synchronous client
/// runs its own small runtime, which cannot start on a thread that drives
/// a tokio runtime. On a multi-threaded runtime's worker the work runs in
/// `block_in_place` (the worker's other tasks move to another thread); on
/// a current-thread runtime, on a scoped thread; elsewhere (plain threads,
/// the blocking pool) directly.
fn off_runtime<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current().map(|h| h.runtime_flavor()) {
        Err(_) => f(),
        Ok(RuntimeFlavor::CurrentThread) => std::thread::scope(|s| {
            s.spawn(f)
                .join()
                .unwrap_or_else(|p| std::panic::resume_unwind(p))
        }),
        Ok(_) => tokio::task::block_in_place(f),
    }
}

/// How a unit of work that needs a transaction runs: its own transaction,
/// or a savepoint inside a [`Store::batch`].
#[derive(Clone, Copy, PartialEq, Eq)]
enum Tx {
    Own,
    Nested,
}

impl Tx {
    /// Run `f` in a transaction (or savepoint); it returns its result and
    /// whether to commit.
    fn run<R>(
        self,
        conn: &mut PgConn,
        f: impl FnOnce(&mut PgConn) -> Result<(R, bool), StoreError>,
    ) -> Result<R, StoreError> {
        let (begin, commit, rollback) = match self {
            Tx::Own => ("BEGIN", "COMMIT", "ROLLBACK"),
            Tx::Nested => (
                "SAVEPOINT fobsim_op",
                "RELEASE SAVEPOINT fobsim_op",
                "ROLLBACK TO SAVEPOINT fobsim_op; RELEASE SAVEPOINT fobsim_op",
            ),
        };
        conn.simple(begin)?;
        match f(conn) {
            Ok((r, true)) => {
                conn.simple(commit)?;
                Ok(r)
            }
            Ok((r, false)) => {
                conn.simple(rollback)?;
                Ok(r)
            }
            Err(e) => {
                if conn.simple(rollback).is_err() {
                    conn.broken = true;
                }
                Err(e)
            }
        }
    }
}

/// A store in a PostgreSQL database, shared by any number of engine
/// processes (replicas). See the [module documentation](self) for how each
/// rule stays atomic across them and how an unreachable server is handled.
pub struct PgStore {
    /// `None` only while dropped (see `Drop`).
    pool: Option<r2d2::Pool<Manager>>,
    shared: std::sync::Arc<Shared>,
    cipher: XChaCha20Poly1305,
    cache: Mutex<HashMap<String, CachedState>>,
    /// The sign-in path's writes, committed in groups.
    group: group::Group,
    id: u64,
    target: String,
}

impl Drop for PgStore {
    /// The pool's connections close on a plain thread: closing one blocks
    /// on the client's own runtime, which cannot run inside the server's
    /// (the last engine handle is often dropped by a server task).
    fn drop(&mut self) {
        if let Some(pool) = self.pool.take() {
            let _ = std::thread::spawn(move || drop(pool)).join();
        }
    }
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore")
            .field("target", &self.target)
            .finish_non_exhaustive()
    }
}

/// Whether `db` names a PostgreSQL database (`postgres://` or
/// `postgresql://`) rather than a SQLite file.
#[must_use]
pub fn is_postgres_url(db: &str) -> bool {
    db.starts_with("postgres://") || db.starts_with("postgresql://")
}

/// `url` with its password (if any) replaced by `***`, for messages.
#[must_use]
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***@{host}{tail}"),
            None => url.to_string(),
        },
        None => url.to_string(),
    }
}

impl PgStore {
    /// Connect to the database at `url` (a libpq-style URL,
    /// `postgres://user:password@host:port/dbname?options`), migrate it to
    /// the current schema (once, under an advisory lock, however many
    /// replicas start at once) and check that `key` is the key it was
    /// created with.
    ///
    /// # Errors
    /// [`StoreError::Postgres`] for a malformed URL, a server that cannot
    /// be reached or refuses the login or a statement;
    /// [`StoreError::SchemaTooNew`] for a database migrated by a newer
    /// build; [`StoreError::Key`] / [`StoreError::Decrypt`] for a key that
    /// cannot be resolved or is not the database's.
    pub fn open(url: &str, key: &KeySource, options: PgOptions) -> Result<Self, StoreError> {
        let k = key.resolve()?;
        let cipher = XChaCha20Poly1305::new(k.as_ref().into());
        let mut config = postgres::Config::from_str(url).map_err(StoreError::Postgres)?;
        let timeout = Duration::from_millis(options.connect_timeout_ms.max(1));
        config.connect_timeout(timeout);
        if config.get_application_name().is_none() {
            config.application_name("fobsim");
        }
        let shared = std::sync::Arc::new(Shared {
            config,
            epoch: AtomicU64::new(0),
        });
        // The first connection directly, so a wrong URL, password or
        // database name is reported as the server said it.
        let mut first =
            off_runtime(|| shared.config.connect(NoTls)).map_err(StoreError::Postgres)?;
        off_runtime(|| migrate(&mut first))?;
        drop(first);
        let pool = r2d2::Pool::builder()
            .max_size(options.pool_size.max(1))
            .min_idle(Some(0))
            .test_on_check_out(false)
            .connection_timeout(timeout)
            .error_handler(Box::new(r2d2::NopErrorHandler))
            .build_unchecked(Manager(std::sync::Arc::clone(&shared)));
        let store = PgStore {
            pool: Some(pool),
            shared,
            cipher,
            cache: Mutex::new(HashMap::new()),
            group: group::Group::new(),
            id: STORE_IDS.fetch_add(1, Ordering::Relaxed),
            target: redact_url(url),
        };
        store.check_key()?;
        Ok(store)
    }

    /// The database's URL, its password replaced by `***`.
    #[must_use]
    pub fn target(&self) -> &str {
        &self.target
    }

    /// The schema version of the database.
    ///
    /// # Errors
    /// [`StoreError`] when it cannot be read.
    pub fn schema_version(&self) -> Result<i64, StoreError> {
        self.read(|c| {
            let row = c.query_opt("SELECT version FROM fobsim_schema WHERE id = 1", &[])?;
            row.map_or(Ok(0), |r| col(&r, 0))
        })
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

    /// The key check: the first store to open the database seals a known
    /// text; every later one (any replica) must open it.
    fn check_key(&self) -> Result<(), StoreError> {
        let blob = self.seal(KEY_CHECK_PLAIN, KEY_CHECK_AAD)?;
        let stored: Vec<u8> = self.write(|c, _| {
            c.execute(
                "INSERT INTO fobsim_meta (k, v) VALUES ('key_check', $1) ON CONFLICT DO NOTHING",
                &[&blob],
            )?;
            let row = c
                .query_opt("SELECT v FROM fobsim_meta WHERE k = 'key_check'", &[])?
                .ok_or_else(|| StoreError::Corrupt("the key check is missing".into()))?;
            col(&row, 0)
        })?;
        let plain = self.open_sealed(&stored, KEY_CHECK_AAD, "key check")?;
        if plain.as_slice() != KEY_CHECK_PLAIN {
            return Err(StoreError::Decrypt {
                what: "key check".into(),
            });
        }
        Ok(())
    }

    /// This thread's batch connection of this store, taken out while used.
    fn take_batch(&self) -> Option<Batch> {
        BATCHES.with(|b| {
            let mut b = b.borrow_mut();
            let i = b.iter().position(|(id, _)| *id == self.id)?;
            Some(b.swap_remove(i).1)
        })
    }

    fn put_batch(&self, batch: Batch) {
        BATCHES.with(|b| b.borrow_mut().push((self.id, batch)));
    }

    fn in_batch(&self) -> bool {
        BATCHES.with(|b| b.borrow().iter().any(|(id, _)| *id == self.id))
    }

    /// A pooled connection made since the last failure seen.
    fn conn(&self) -> Result<Pooled, StoreError> {
        loop {
            let pool = self.pool.as_ref().ok_or(StoreError::Busy)?;
            let mut c = pool.get().map_err(|_| StoreError::Busy)?;
            if c.epoch >= self.shared.epoch.load(Ordering::Acquire) {
                return Ok(c);
            }
            // Made before a failure: dropped when it goes back.
            c.broken = true;
        }
    }

    /// After a failure on `conn`: drop it, and the connections made
    /// before it, if the server went away.
    fn note_failure(&self, conn: &mut PgConn, e: &StoreError) {
        if matches!(e, StoreError::Busy) {
            conn.broken = true;
            self.shared.epoch.fetch_add(1, Ordering::AcqRel);
        }
    }

    /// Run a write on this thread's batch connection, or a pooled one.
    fn write<R: Send>(
        &self,
        f: impl FnOnce(&mut PgConn, Tx) -> Result<R, StoreError> + Send,
    ) -> Result<R, StoreError> {
        if let Some(mut batch) = self.take_batch() {
            let r = off_runtime(|| f(&mut batch.conn, Tx::Nested));
            if r.is_err() {
                batch.failed = true;
            }
            self.put_batch(batch);
            return r;
        }
        off_runtime(|| {
            let mut conn = self.conn()?;
            let r = f(&mut conn, Tx::Own);
            if let Err(e) = &r {
                self.note_failure(&mut conn, e);
            }
            r
        })
    }

    /// Run a read; one more try on a fresh connection if the server could
    /// not be reached (a read changes nothing: trying again is safe).
    fn read<R: Send>(
        &self,
        f: impl Fn(&mut PgConn) -> Result<R, StoreError> + Send + Sync,
    ) -> Result<R, StoreError> {
        if self.in_batch() {
            return self.write(|c, _| f(c));
        }
        match self.write(|c, _| f(c)) {
            Err(StoreError::Busy) => self.write(|c, _| f(c)),
            r => r,
        }
    }

    /// Run a write of the sign-in path: in this thread's batch if one is
    /// open, else in a group commit ([`group`]) with concurrent ones.
    fn submit(&self, op: group::Op) -> Result<group::Done, StoreError> {
        if self.in_batch() {
            return self.write(|c, _| op.run_alone(c));
        }
        off_runtime(|| {
            self.group.submit(op, &|members| {
                let mut conn = match self.conn() {
                    Ok(c) => c,
                    Err(_) => return members.iter().map(|_| Err(StoreError::Busy)).collect(),
                };
                let r = group::run_group(&mut conn, members);
                if r.iter().any(|r| matches!(r, Err(StoreError::Busy))) {
                    self.note_failure(&mut conn, &StoreError::Busy);
                }
                r
            })
        })
    }

    fn uncache(&self, serial: &str) {
        self.cache.lock().remove(serial);
    }
}

/// Bring the schema to [`PG_SCHEMA_VERSION`] in one transaction under an
/// advisory lock (replicas starting together migrate once).
fn migrate(client: &mut postgres::Client) -> Result<(), StoreError> {
    let mut tx = client.transaction().map_err(StoreError::Postgres)?;
    tx.execute("SELECT pg_advisory_xact_lock($1, 0)", &[&LOCK_MIGRATE])
        .map_err(StoreError::Postgres)?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS fobsim_schema (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            version BIGINT NOT NULL)",
    )
    .map_err(StoreError::Postgres)?;
    let version: i64 = tx
        .query_opt("SELECT version FROM fobsim_schema WHERE id = 1", &[])
        .map_err(StoreError::Postgres)?
        .map_or(Ok(0), |r| col(&r, 0))?;
    if version > PG_SCHEMA_VERSION {
        return Err(StoreError::SchemaTooNew {
            found: version,
            supported: PG_SCHEMA_VERSION,
        });
    }
    let mut at = version;
    for (i, sql) in PG_MIGRATIONS.iter().enumerate() {
        let target = i64::try_from(i).unwrap_or(i64::MAX).saturating_add(1);
        if at < target {
            tx.batch_execute(sql).map_err(StoreError::Postgres)?;
            at = target;
        }
    }
    if at != version {
        tx.execute(
            "INSERT INTO fobsim_schema (id, version) VALUES (1, $1) \
             ON CONFLICT (id) DO UPDATE SET version = EXCLUDED.version",
            &[&at],
        )
        .map_err(StoreError::Postgres)?;
    }
    tx.commit().map_err(StoreError::Postgres)
}

impl Store for PgStore {
    fn account(&self) -> Result<Option<AccountRow>, StoreError> {
        self.read(|c| {
            c.query_opt(SQL_ACCOUNT, &[])?
                .map(|r| {
                    Ok(AccountRow {
                        account_id: col(&r, 0)?,
                        alias: col(&r, 1)?,
                        root_email: col(&r, 2)?,
                        root_phone: col(&r, 3)?,
                        root_password_hash: col(&r, 4)?,
                    })
                })
                .transpose()
        })
    }

    fn insert_account(&self, row: &AccountRow) -> Result<bool, StoreError> {
        self.write(|c, _| {
            let n = c.execute(
                SQL_INSERT_ACCOUNT,
                &[
                    &row.account_id,
                    &row.alias,
                    &row.root_email,
                    &row.root_phone,
                    &row.root_password_hash,
                ],
            )?;
            Ok(n == 1)
        })
    }

    fn user(&self, name: &str) -> Result<Option<UserRow>, StoreError> {
        self.read(|c| {
            c.query_opt(SQL_USER, &[&name])?
                .map(|r| {
                    Ok(UserRow {
                        name: col(&r, 0)?,
                        user_id: col(&r, 1)?,
                        password_hash: col(&r, 2)?,
                    })
                })
                .transpose()
        })
    }

    fn insert_user(&self, row: &UserRow) -> Result<bool, StoreError> {
        self.write(|c, _| {
            let n = c.execute(
                SQL_INSERT_USER,
                &[&row.name, &row.user_id, &row.password_hash],
            )?;
            Ok(n == 1)
        })
    }

    fn insert_tokens(&self, rows: &[TokenRow]) -> Result<Option<String>, StoreError> {
        if rows.is_empty() {
            return Ok(None);
        }
        // Seal outside the transaction (CPU work only); one statement for
        // all rows (arrays), so a 10,000-token import is one round trip.
        let mut serials = Vec::with_capacity(rows.len());
        let mut algorithms = Vec::with_capacity(rows.len());
        let mut digits = Vec::with_capacity(rows.len());
        let mut periods = Vec::with_capacity(rows.len());
        let mut t0s = Vec::with_capacity(rows.len());
        let mut secrets = Vec::with_capacity(rows.len());
        for r in rows {
            serials.push(r.serial.as_str());
            algorithms.push(r.algorithm.as_str());
            digits.push(i64::from(r.digits));
            periods.push(i64_of(r.period, "period")?);
            t0s.push(i64_of(r.t0, "t0")?);
            secrets.push(self.seal(r.secret.expose(), &aad(&r.serial))?);
        }
        self.write(|c, tx| {
            tx.run(c, |c| {
                let inserted = c.query(
                    SQL_INSERT_TOKENS,
                    &[&serials, &algorithms, &digits, &periods, &t0s, &secrets],
                )?;
                if inserted.len() == rows.len() {
                    return Ok((None, true));
                }
                // The first serial (in the caller's order) that was not
                // inserted: registered before, or twice in `rows`.
                let mut fresh: HashMap<String, usize> = HashMap::new();
                for r in &inserted {
                    *fresh.entry(col::<String>(r, 0)?).or_default() += 1;
                }
                let dup = rows.iter().find(|r| match fresh.get_mut(&r.serial) {
                    Some(n) if *n > 0 => {
                        *n -= 1;
                        false
                    }
                    _ => true,
                });
                Ok((dup.map(|r| r.serial.clone()), false))
            })
        })
    }

    fn token(&self, serial: &str) -> Result<Option<TokenRow>, StoreError> {
        let raw = self.read(|c| {
            c.query_opt(SQL_TOKEN, &[&serial])?
                .map(|r| {
                    Ok((
                        col::<String>(&r, 0)?,
                        col::<i64>(&r, 1)?,
                        col::<i64>(&r, 2)?,
                        col::<i64>(&r, 3)?,
                        col::<Vec<u8>>(&r, 4)?,
                    ))
                })
                .transpose()
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
        self.read(|c| {
            c.query_opt(SQL_TOKEN_STATE.as_str(), &[&serial])?
                .map(|r| state_from_row(&r))
                .transpose()
        })
    }

    fn verify_state(&self, token: OwnedToken<'_>) -> Result<Option<VerifyState>, StoreError> {
        let OwnedToken { serial, owner } = token;
        let key = owner.storage_key();
        if let Some(c) = self.cache.lock().get(serial) {
            return Ok((c.owner.as_deref() == Some(key)).then_some(c.state));
        }
        let raw = self.read(|c| {
            c.query_opt(SQL_VERIFY_STATE.as_str(), &[&serial])?
                .map(|r| Ok((col::<Option<String>>(&r, 0)?, verify_from_row(&r, 1)?)))
                .transpose()
        })?;
        let Some((row_owner, state)) = raw else {
            return Ok(None);
        };
        let mine = row_owner.as_deref() == Some(key);
        self.cache.lock().insert(
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
        let max = i64::from(max_devices);
        let seen = sync_values(&seen)?;
        let new = sync_values(&sync)?;
        let r = self.write(|c, tx| {
            tx.run(c, |c| {
                // Serialise assignments to this owner across replicas (see
                // the module documentation): the count below then sees
                // every committed one.
                c.execute(SQL_LOCK_OWNER, &[&LOCK_OWNER, &key])?;
                let mut params: Vec<&(dyn ToSql + Sync)> = vec![&serial, &key, &date, &max];
                params.extend(seen.iter().map(|v| v as &(dyn ToSql + Sync)));
                params.extend(new.iter().map(|v| v as &(dyn ToSql + Sync)));
                if c.execute(SQL_ASSIGN.as_str(), &params)? == 1 {
                    return Ok((AssignOutcome::Assigned, true));
                }
                // Diagnose (under the owner's lock; the token's row may
                // still change under us, which is a race either answer
                // describes).
                let row = c.query_opt(SQL_OWNER_OF, &[&serial])?;
                let outcome = match row {
                    None => AssignOutcome::NoSuchToken,
                    Some(r) if col::<Option<String>>(&r, 0)?.is_some() => AssignOutcome::InUse,
                    Some(_) => {
                        let n: i64 = c
                            .query_opt(SQL_COUNT_OWNED, &[&key])?
                            .map_or(Ok(0), |r| col(&r, 0))?;
                        if n >= max {
                            AssignOutcome::LimitExceeded
                        } else {
                            AssignOutcome::Replayed
                        }
                    }
                };
                Ok((outcome, true))
            })
        });
        self.uncache(serial);
        r
    }

    fn unassign(&self, token: OwnedToken<'_>) -> Result<bool, StoreError> {
        let OwnedToken { serial, owner } = token;
        let key = owner.storage_key();
        let r = self.write(|c, _| Ok(c.execute(SQL_UNASSIGN, &[&serial, &key])? == 1));
        self.uncache(serial);
        r
    }

    fn commit_success(&self, req: CommitSuccess<'_>) -> Result<bool, StoreError> {
        let CommitSuccess {
            token: OwnedToken { serial, owner },
            seen,
            sync,
            now,
        } = req;
        let key = owner.storage_key();
        let op = group::Op::Success {
            serial: serial.to_string(),
            owner: key.to_string(),
            now: i64_of(now.as_millis(), "now")?,
            seen: sync_values(&seen)?,
            new: sync_values(&sync)?,
        };
        let r = match self.submit(op) {
            Ok(group::Done::Success(applied)) => Ok(applied),
            Ok(group::Done::Failure(_)) => {
                Err(StoreError::Corrupt("a group answered out of kind".into()))
            }
            Err(e) => Err(e),
        };
        let mut cache = self.cache.lock();
        match (cache.get_mut(serial), &r) {
            (Some(e), Ok(true)) => {
                e.state.sync = sync;
                e.state.failures = 0;
            }
            _ => {
                cache.remove(serial);
            }
        }
        r
    }

    fn commit_resync(&self, req: CommitResync<'_>) -> Result<bool, StoreError> {
        let CommitResync {
            token: OwnedToken { serial, owner },
            seen,
            sync,
        } = req;
        let key = owner.storage_key();
        let seen_v = sync_values(&seen)?;
        let new_v = sync_values(&sync)?;
        let r = self.write(|c, _| {
            let mut params: Vec<&(dyn ToSql + Sync)> = vec![&serial, &key];
            params.extend(seen_v.iter().map(|v| v as &(dyn ToSql + Sync)));
            params.extend(new_v.iter().map(|v| v as &(dyn ToSql + Sync)));
            Ok(c.execute(SQL_COMMIT_RESYNC.as_str(), &params)? == 1)
        });
        self.uncache(serial);
        r
    }

    fn record_failure(&self, req: RecordFailure<'_>) -> Result<FailureOutcome, StoreError> {
        let RecordFailure {
            token: OwnedToken { serial, owner },
            now,
            threshold,
            lock_ms,
        } = req;
        let key = owner.storage_key();
        let until = Timestamp::from_millis(now.as_millis().saturating_add(lock_ms));
        let until_i = i64_of(until.as_millis(), "lock expiry")?;
        let threshold_i = i64::from(threshold);
        let op = group::Op::Failure {
            serial: serial.to_string(),
            owner: key.to_string(),
            threshold: threshold_i,
            until: until_i,
        };
        let r = match self.submit(op) {
            Ok(group::Done::Failure(r)) => Ok(r),
            Ok(group::Done::Success(_)) => {
                Err(StoreError::Corrupt("a group answered out of kind".into()))
            }
            Err(e) => Err(e),
        };
        self.uncache(serial);
        Ok(match r? {
            None => FailureOutcome::NotAssigned,
            Some((0, Some(u))) if threshold > 0 && u == until_i => FailureOutcome::Locked(until),
            Some((n, _)) => FailureOutcome::Counted(
                u32::try_from(n).map_err(|_| StoreError::Corrupt(format!("failures {n}")))?,
            ),
        })
    }

    fn tokens_of(&self, owner: &Principal) -> Result<Vec<TokenStateRow>, StoreError> {
        let key = owner.storage_key();
        self.read(|c| {
            c.query(SQL_TOKENS_OF.as_str(), &[&key])?
                .iter()
                .map(state_from_row)
                .collect()
        })
    }

    fn batch(&self, f: &mut dyn FnMut()) -> Result<(), StoreError> {
        if self.in_batch() {
            f();
            return Ok(());
        }
        let mut conn = off_runtime(|| self.conn())?;
        if let Err(e) = off_runtime(|| conn.simple("BEGIN")) {
            self.note_failure(&mut conn, &e);
            return Err(e);
        }
        self.put_batch(Batch {
            conn,
            failed: false,
        });
        /// Ends the batch if `f` panics: rolled back, the cache (which
        /// may hold its writes) cleared.
        struct Guard<'a> {
            store: &'a PgStore,
            armed: bool,
        }
        impl Drop for Guard<'_> {
            fn drop(&mut self) {
                if self.armed
                    && let Some(mut b) = self.store.take_batch()
                {
                    self.store.cache.lock().clear();
                    if off_runtime(|| b.conn.simple("ROLLBACK")).is_err() {
                        b.conn.broken = true;
                    }
                }
            }
        }
        let mut guard = Guard {
            store: self,
            armed: true,
        };
        f();
        guard.armed = false;
        let Some(mut batch) = self.take_batch() else {
            return Err(StoreError::Corrupt("the batch's connection is gone".into()));
        };
        let end = if batch.failed { "ROLLBACK" } else { "COMMIT" };
        let r = off_runtime(|| batch.conn.simple(end));
        if batch.failed || r.is_err() {
            // Its writes are not in the database: neither in the cache.
            self.cache.lock().clear();
        }
        if let Err(e) = r {
            self.note_failure(&mut batch.conn, &e);
            return Err(e);
        }
        if batch.failed {
            return Err(StoreError::Corrupt(
                "a statement of the batch failed: the batch was rolled back".into(),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_recognised_and_passwords_redacted() {
        assert!(is_postgres_url("postgres://u@h/db"));
        assert!(is_postgres_url("postgresql://h/db"));
        assert!(!is_postgres_url("/var/lib/fobsim/engine.db"));
        assert!(!is_postgres_url("postgres.db"));
        assert_eq!(
            redact_url("postgres://fob:s3cret@db.example:5432/iam?sslmode=disable"),
            "postgres://fob:***@db.example:5432/iam?sslmode=disable"
        );
        assert_eq!(redact_url("postgres://fob@db/iam"), "postgres://fob@db/iam");
        assert_eq!(
            redact_url("postgres:///iam?host=/run"),
            "postgres:///iam?host=/run"
        );
    }

    #[test]
    fn a_malformed_url_is_an_error_not_a_panic() {
        let e = PgStore::open(
            "postgres://u@h:notaport/db",
            &KeySource::Bytes([1; 32]),
            PgOptions::default(),
        )
        .unwrap_err();
        assert!(matches!(e, StoreError::Postgres(_)), "{e}");
    }

    #[test]
    fn the_conditional_writes_compare_every_sync_column() {
        assert_eq!(sync_match(4).matches("IS NOT DISTINCT FROM").count(), 8);
        assert!(SQL_COMMIT_SUCCESS.contains("$19"));
        assert!(!SQL_COMMIT_SUCCESS.contains("$20"));
        assert!(SQL_ASSIGN.contains("$20"));
        assert!(!SQL_ASSIGN.contains("$21"));
    }
}
