//! Storage behind a trait: [`MemoryStore`], [`SqliteStore`] and
//! [`PgStore`] (PostgreSQL, for several engine replicas on one database).
//!
//! Every state change the rules depend on is one atomic conditional update
//! in the store (`UPDATE ... WHERE <the state read> ...` in SQLite and
//! PostgreSQL, the same test under one lock in memory): replay protection, the learned
//! offsets, device assignment, the per-user device limit and the failure
//! counter never read-then-write in Rust.
//!
//! # Glossary
//!
//! - A **token** is one registered serial: the hardware token a seed file
//!   describes. The store keeps two records of it, named for what they
//!   hold:
//!   - [`TokenRow`]: the token's static data (algorithm, digits, step,
//!     secret), written once by [`Store::insert_tokens`], read by
//!     [`Store::token`].
//!   - [`TokenStateRow`]: the token's mutable state (assignment and
//!     [`VerifyState`]), read by [`Store::token_state`] and
//!     [`Store::tokens_of`], changed only by the conditional writes.
//! - [`VerifyState`]: the part of a token's state a verification reads
//!   (its [`SyncState`], failures, lock), served by [`Store::verify_state`]
//!   without allocating.
//! - [`SyncState`]: what the sync rule keeps (`docs/engine-rules.md`): the
//!   **learned offsets** ([`OffsetWindow`]: the interval of fob-clock
//!   offsets, in ms, consistent with every accepted code since the last
//!   enable or resync), the **replay barrier** (`last_step`, the last
//!   accepted step), the current **run** of acceptances (`run_start`,
//!   `run_base`) and the **quarantine** ([`StepRange`]: used steps left
//!   ahead by a server clock that stepped back). Every write of it is a
//!   compare-and-swap: it happens only if the token's sync state is still
//!   the one the rule read (`seen`).
//! - An **MFA device** is IAM's word for a token assigned to a principal,
//!   as `ListMFADevices` reports it ([`crate::MfaDevice`]); the engine's
//!   public view of any token is [`crate::TokenState`].
//! - [`OwnedToken`] names a token with the principal it must be assigned
//!   to: the key of every operation on an assigned token.

mod memory;
mod postgres;
mod sqlite;

pub use memory::MemoryStore;
pub use postgres::{PG_SCHEMA_VERSION, PgOptions, PgStore, is_postgres_url, redact_url};
pub use sqlite::{KeySource, SqliteOptions, SqliteStore};

use fobsim_core::{Algorithm, Secret, Timestamp};

use crate::error::StoreError;
use fobsim_core::Principal;

/// The account: one per engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountRow {
    /// 12-digit account id.
    pub account_id: String,
    /// Account alias.
    pub alias: String,
    /// Root user email (alternative factor).
    pub root_email: String,
    /// Root user phone (alternative factor).
    pub root_phone: String,
    /// PHC string of the root password hash.
    pub root_password_hash: String,
}

/// An IAM user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRow {
    /// User name.
    pub name: String,
    /// Stable user id.
    pub user_id: String,
    /// PHC string of the password hash.
    pub password_hash: String,
}

/// A hardware token of the account's registry (from a seed file).
#[derive(Debug, Clone)]
pub struct TokenRow {
    /// Serial number.
    pub serial: String,
    /// HMAC hash.
    pub algorithm: Algorithm,
    /// Digits.
    pub digits: u8,
    /// Step length in seconds.
    pub period: u64,
    /// TOTP epoch in Unix seconds.
    pub t0: u64,
    /// The shared secret (encrypted at rest by stores that persist).
    pub secret: Secret,
}

/// A token's mutable state: assignment, then what the rules keep
/// (learned offsets, replay barrier, lockout).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenStateRow {
    /// Serial number.
    pub serial: String,
    /// Assigned to.
    pub owner: Option<Principal>,
    /// Enable date while assigned.
    pub enable_date: Option<Timestamp>,
    /// What a verification reads.
    pub verify: VerifyState,
}

/// The part of a token's state a verification reads (no allocation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct VerifyState {
    /// What the sync rule keeps.
    pub sync: SyncState,
    /// Consecutive failures.
    pub failures: u32,
    /// Lock expiry.
    pub locked_until: Option<Timestamp>,
}

/// The fob-clock offsets (device time − engine time, in ms) consistent
/// with the evidence: the half-open interval `[lo_ms, hi_ms)` as it stood
/// at `anchored_at` (it widens with time at the drift bound, capped; see
/// `docs/engine-rules.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct OffsetWindow {
    /// Lowest consistent offset, ms (inclusive).
    pub lo_ms: i64,
    /// Highest consistent offset, ms (exclusive).
    pub hi_ms: i64,
    /// Engine time of the last evidence.
    pub anchored_at: Timestamp,
}

/// An inclusive range of steps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StepRange {
    /// First step of the range.
    pub first: u64,
    /// Last step of the range (inclusive).
    pub last: u64,
}

impl StepRange {
    /// Whether `step` lies in the range.
    #[must_use]
    pub fn contains(self, step: u64) -> bool {
        (self.first..=self.last).contains(&step)
    }

    /// The smallest range holding both.
    #[must_use]
    pub fn hull(self, other: StepRange) -> StepRange {
        StepRange {
            first: self.first.min(other.first),
            last: self.last.max(other.last),
        }
    }
}

/// What the sync rule keeps per token (`docs/engine-rules.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SyncState {
    /// The learned offsets.
    pub offsets: OffsetWindow,
    /// The replay barrier: the last accepted step (RFC 6238 §5.2: no step
    /// at or below it is accepted again). Kept across deactivation.
    pub last_step: Option<u64>,
    /// The lowest step of the current run of acceptances (a run restarts
    /// when an accepted step lies more than the sync window above the
    /// barrier). `None` before the first acceptance.
    pub run_start: Option<u64>,
    /// The barrier before the current run began: every step at or below it
    /// was used before the run. `None` if nothing was.
    pub run_base: Option<u64>,
    /// Used steps left ahead of the barrier by a server clock that stepped
    /// back (healed by a resync or a re-enable): never accepted again.
    pub quarantine: Option<StepRange>,
}

/// [`Store::assign`]: enable `serial` for `owner`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Assign<'a> {
    /// The token's serial.
    pub serial: &'a str,
    /// Who it is assigned to.
    pub owner: &'a Principal,
    /// The enable date.
    pub enable_date: Timestamp,
    /// The token's sync state the rule read: the write happens only if it
    /// is unchanged.
    pub seen: SyncState,
    /// The sync state the two codes teach.
    pub sync: SyncState,
    /// How many devices `owner` may have at most.
    pub max_devices: u32,
}

/// A token named together with the principal it must be assigned to: the
/// key of every operation on an assigned token, which does nothing (and
/// says so) unless the token is assigned to `owner`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OwnedToken<'a> {
    /// The token's serial.
    pub serial: &'a str,
    /// Who it must be assigned to.
    pub owner: &'a Principal,
}

/// [`Store::commit_success`]: an accepted sign-in code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommitSuccess<'a> {
    /// The token.
    pub token: OwnedToken<'a>,
    /// The sync state the code was accepted on: the write happens only if
    /// it is unchanged (so a concurrent acceptance of the same code loses).
    pub seen: SyncState,
    /// The sync state the code teaches (its barrier above `seen`'s).
    pub sync: SyncState,
    /// Engine time: the token must not be locked then.
    pub now: Timestamp,
}

/// [`Store::commit_resync`]: a resync.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommitResync<'a> {
    /// The token.
    pub token: OwnedToken<'a>,
    /// The sync state the codes were found on: the write happens only if
    /// it is unchanged.
    pub seen: SyncState,
    /// The sync state the two codes teach.
    pub sync: SyncState,
}

/// [`Store::record_failure`]: a failed sign-in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordFailure<'a> {
    /// The token.
    pub token: OwnedToken<'a>,
    /// True time: a lock lasts from now.
    pub now: Timestamp,
    /// Lock at this many consecutive failures (0 = never).
    pub threshold: u32,
    /// How long a lock lasts, in ms.
    pub lock_ms: u64,
}

/// Result of [`Store::assign`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AssignOutcome {
    /// The device is now assigned.
    Assigned,
    /// No token with that serial.
    NoSuchToken,
    /// Already assigned to someone (possibly the same principal).
    InUse,
    /// The principal already has the maximum number of devices.
    LimitExceeded,
    /// The token's sync state is no longer the one the rule read (a
    /// concurrent use of the token won).
    Replayed,
}

/// Result of [`Store::record_failure`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureOutcome {
    /// Counted; this many consecutive failures now.
    Counted(u32),
    /// This failure reached the threshold: locked until then (the counter
    /// restarts at 0).
    Locked(Timestamp),
    /// The device is not assigned to that principal (nothing recorded).
    NotAssigned,
}

/// Persistent state of one account. Implementations must make each method
/// atomic; conditional methods must test and write in one step.
///
/// Reads take their key (an [`OwnedToken`] for the state of an assigned
/// token); each write takes one request ([`Assign`], an [`OwnedToken`] to
/// unassign, [`CommitSuccess`], [`CommitResync`], [`RecordFailure`]) that
/// names its condition and its effect, so a backend is one file
/// implementing this trait. A store that wraps another implements
/// [`StoreLayer`] instead.
pub trait Store: Send + Sync {
    /// The account, if created.
    ///
    /// # Errors
    /// [`StoreError`] on backend failure.
    fn account(&self) -> Result<Option<AccountRow>, StoreError>;

    /// Create the account; `false` if one exists (nothing written).
    ///
    /// # Errors
    /// [`StoreError`] on backend failure.
    fn insert_account(&self, row: &AccountRow) -> Result<bool, StoreError>;

    /// A user by name.
    ///
    /// # Errors
    /// [`StoreError`] on backend failure.
    fn user(&self, name: &str) -> Result<Option<UserRow>, StoreError>;

    /// Create a user; `false` if the name exists (nothing written).
    ///
    /// # Errors
    /// [`StoreError`] on backend failure.
    fn insert_user(&self, row: &UserRow) -> Result<bool, StoreError>;

    /// Register tokens, all or nothing: `Ok(Some(serial))` names a serial
    /// that is already registered (nothing written).
    ///
    /// # Errors
    /// [`StoreError`] on backend failure (nothing written).
    fn insert_tokens(&self, rows: &[TokenRow]) -> Result<Option<String>, StoreError>;

    /// A token's static data (with its decrypted secret).
    ///
    /// # Errors
    /// [`StoreError`] on backend failure or a secret that cannot be decrypted.
    fn token(&self, serial: &str) -> Result<Option<TokenRow>, StoreError>;

    /// A token's mutable state.
    ///
    /// # Errors
    /// [`StoreError`] on backend failure.
    fn token_state(&self, serial: &str) -> Result<Option<TokenStateRow>, StoreError>;

    /// The verification state of the token if it is assigned to the owner.
    /// A store may serve it from a cache of its own writes: callers treat
    /// it as a hint that the conditional writes validate, and call
    /// [`Store::forget`] and read again before concluding a failure.
    ///
    /// # Errors
    /// [`StoreError`] on backend failure.
    fn verify_state(&self, token: OwnedToken<'_>) -> Result<Option<VerifyState>, StoreError>;

    /// Assign the token to the owner if the token exists, is unassigned,
    /// the owner has fewer than `max_devices` devices and the token's sync
    /// state is still `seen`. Sets the sync state, the enable date, and
    /// clears failures and lock.
    ///
    /// # Errors
    /// [`StoreError`] on backend failure.
    fn assign(&self, req: Assign<'_>) -> Result<AssignOutcome, StoreError>;

    /// Unassign the token from the owner: keeps its replay barrier, run
    /// and quarantine (used codes stay used), forgets the learned offsets,
    /// failures and lock; `false` if it was not assigned to the owner.
    ///
    /// # Errors
    /// [`StoreError`] on backend failure.
    fn unassign(&self, token: OwnedToken<'_>) -> Result<bool, StoreError>;

    /// Record an accepted sign-in code, if the token is assigned to the
    /// owner, its sync state is still `seen` and it is not locked at `now`;
    /// sets the sync state and clears failures. `false` when the condition
    /// does not hold (a concurrent write won: the caller reads again).
    ///
    /// # Errors
    /// [`StoreError`] on backend failure.
    fn commit_success(&self, req: CommitSuccess<'_>) -> Result<bool, StoreError>;

    /// Record a resync, if the token is assigned to the owner and its sync
    /// state is still `seen`; sets the sync state, clears failures and
    /// lock.
    ///
    /// # Errors
    /// [`StoreError`] on backend failure.
    fn commit_resync(&self, req: CommitResync<'_>) -> Result<bool, StoreError>;

    /// Count a failed sign-in; at the threshold (0 = never) lock until
    /// `now + lock_ms` and restart the count.
    ///
    /// # Errors
    /// [`StoreError`] on backend failure.
    fn record_failure(&self, req: RecordFailure<'_>) -> Result<FailureOutcome, StoreError>;

    /// The tokens assigned to `owner` (their MFA devices), by serial.
    ///
    /// # Errors
    /// [`StoreError`] on backend failure.
    fn tokens_of(&self, owner: &Principal) -> Result<Vec<TokenStateRow>, StoreError>;

    /// Drop any cached state of `serial`, so the next read comes from the
    /// backing storage (another connection may have written it). Stores
    /// without a cache do nothing.
    fn forget(&self, serial: &str) {
        let _ = serial;
    }

    /// Run `f` with all of its store operations in one transaction (one
    /// commit). Other threads' operations wait until it ends. Stores
    /// without transactions just call `f`.
    ///
    /// # Errors
    /// [`StoreError`] if the transaction cannot begin or commit; then none
    /// of `f`'s writes persist.
    fn batch(&self, f: &mut dyn FnMut()) -> Result<(), StoreError> {
        f();
        Ok(())
    }
}

/// A store that wraps another: it forwards every [`Store`] operation to
/// [`StoreLayer::inner`], and may refuse writes in
/// [`StoreLayer::before_write`]. A wrapper (a shared `Arc`,
/// [`crate::testing::FailingStore`], a tracing or metrics layer) implements
/// this and is a [`Store`] through one blanket impl, instead of spelling
/// out every operation again.
pub trait StoreLayer: Send + Sync {
    /// The wrapped store.
    type Inner: Store + ?Sized;

    /// The wrapped store.
    fn inner(&self) -> &Self::Inner;

    /// Runs before every write (each `insert_*`, [`Store::assign`],
    /// [`Store::unassign`], `commit_*` and [`Store::record_failure`]);
    /// reads, [`Store::forget`] and [`Store::batch`] pass straight through.
    ///
    /// # Errors
    /// The [`StoreError`] the write then fails with, before the inner store
    /// sees it.
    fn before_write(&self) -> Result<(), StoreError> {
        Ok(())
    }
}

impl<L: StoreLayer> Store for L {
    fn account(&self) -> Result<Option<AccountRow>, StoreError> {
        self.inner().account()
    }
    fn insert_account(&self, row: &AccountRow) -> Result<bool, StoreError> {
        self.before_write()?;
        self.inner().insert_account(row)
    }
    fn user(&self, name: &str) -> Result<Option<UserRow>, StoreError> {
        self.inner().user(name)
    }
    fn insert_user(&self, row: &UserRow) -> Result<bool, StoreError> {
        self.before_write()?;
        self.inner().insert_user(row)
    }
    fn insert_tokens(&self, rows: &[TokenRow]) -> Result<Option<String>, StoreError> {
        self.before_write()?;
        self.inner().insert_tokens(rows)
    }
    fn token(&self, serial: &str) -> Result<Option<TokenRow>, StoreError> {
        self.inner().token(serial)
    }
    fn token_state(&self, serial: &str) -> Result<Option<TokenStateRow>, StoreError> {
        self.inner().token_state(serial)
    }
    fn verify_state(&self, token: OwnedToken<'_>) -> Result<Option<VerifyState>, StoreError> {
        self.inner().verify_state(token)
    }
    fn assign(&self, req: Assign<'_>) -> Result<AssignOutcome, StoreError> {
        self.before_write()?;
        self.inner().assign(req)
    }
    fn unassign(&self, token: OwnedToken<'_>) -> Result<bool, StoreError> {
        self.before_write()?;
        self.inner().unassign(token)
    }
    fn commit_success(&self, req: CommitSuccess<'_>) -> Result<bool, StoreError> {
        self.before_write()?;
        self.inner().commit_success(req)
    }
    fn commit_resync(&self, req: CommitResync<'_>) -> Result<bool, StoreError> {
        self.before_write()?;
        self.inner().commit_resync(req)
    }
    fn record_failure(&self, req: RecordFailure<'_>) -> Result<FailureOutcome, StoreError> {
        self.before_write()?;
        self.inner().record_failure(req)
    }
    fn tokens_of(&self, owner: &Principal) -> Result<Vec<TokenStateRow>, StoreError> {
        self.inner().tokens_of(owner)
    }
    fn forget(&self, serial: &str) {
        self.inner().forget(serial);
    }
    fn batch(&self, f: &mut dyn FnMut()) -> Result<(), StoreError> {
        self.inner().batch(f)
    }
}

/// A shared store is a store (e.g. a test keeps an `Arc` to a
/// [`crate::testing::FailingStore`] that the engine also owns).
impl<S: Store + ?Sized> StoreLayer for std::sync::Arc<S> {
    type Inner = S;
    fn inner(&self) -> &S {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::FailingStore;
    use std::sync::Arc;

    fn token(serial: &str) -> TokenRow {
        TokenRow {
            serial: serial.to_string(),
            algorithm: Algorithm::Sha1,
            digits: 6,
            period: 30,
            t0: 0,
            secret: Secret::new(vec![7; 20]).unwrap(),
        }
    }

    /// Through a layer (behind an `Arc`, as the engine's tests hold one),
    /// every write meets `before_write` before the inner store sees it,
    /// and every read passes through.
    #[test]
    fn a_layer_guards_every_write_and_passes_every_read() {
        let inner = Arc::new(MemoryStore::new());
        let layer = Arc::new(FailingStore::new(Arc::clone(&inner)));
        let alice = Principal::user("alice");
        let serial = "GAHT00000001";
        let held = OwnedToken {
            serial,
            owner: &alice,
        };
        let sync = |last_step: u64| SyncState {
            offsets: OffsetWindow {
                lo_ms: 3,
                hi_ms: 90_003,
                anchored_at: Timestamp::from_secs(300),
            },
            last_step: Some(last_step),
            run_start: Some(last_step - 1),
            run_base: None,
            quarantine: None,
        };
        let account = AccountRow {
            account_id: "123456789012".into(),
            alias: "a".into(),
            root_email: "root@example.com".into(),
            root_phone: "+1 555 0100".into(),
            root_password_hash: "x".into(),
        };
        let user = |name: &str| UserRow {
            name: name.into(),
            user_id: name.into(),
            password_hash: "x".into(),
        };
        assert!(layer.insert_user(&user("alice")).unwrap());
        assert_eq!(layer.insert_tokens(&[token(serial)]).unwrap(), None);
        let assign = Assign {
            serial,
            owner: &alice,
            enable_date: Timestamp::from_secs(300),
            seen: SyncState::default(),
            sync: sync(11),
            max_devices: 8,
        };
        assert_eq!(layer.assign(assign).unwrap(), AssignOutcome::Assigned);
        let before = inner.token_state(serial).unwrap();

        layer.fail_writes(true);
        let writes: [(&str, Result<(), StoreError>); 8] = [
            ("insert_account", layer.insert_account(&account).map(drop)),
            ("insert_user", layer.insert_user(&user("bob")).map(drop)),
            (
                "insert_tokens",
                layer.insert_tokens(&[token("GAHT00000002")]).map(drop),
            ),
            (
                "assign",
                layer
                    .assign(Assign {
                        serial: "GAHT00000002",
                        ..assign
                    })
                    .map(drop),
            ),
            ("unassign", layer.unassign(held).map(drop)),
            (
                "commit_success",
                layer
                    .commit_success(CommitSuccess {
                        token: held,
                        seen: sync(11),
                        sync: sync(20),
                        now: Timestamp::from_secs(600),
                    })
                    .map(drop),
            ),
            (
                "commit_resync",
                layer
                    .commit_resync(CommitResync {
                        token: held,
                        seen: sync(11),
                        sync: sync(31),
                    })
                    .map(drop),
            ),
            (
                "record_failure",
                layer
                    .record_failure(RecordFailure {
                        token: held,
                        now: Timestamp::from_secs(600),
                        threshold: 1,
                        lock_ms: 1_000,
                    })
                    .map(drop),
            ),
        ];
        for (name, r) in writes {
            assert!(matches!(r, Err(StoreError::Corrupt(_))), "{name}: {r:?}");
        }
        assert_eq!(inner.account().unwrap(), None);
        assert_eq!(inner.user("bob").unwrap(), None);
        assert!(inner.token("GAHT00000002").unwrap().is_none());
        assert_eq!(inner.token_state(serial).unwrap(), before);

        assert_eq!(layer.user("alice").unwrap(), Some(user("alice")));
        assert_eq!(
            layer.token(serial).unwrap().map(|t| t.serial),
            Some(serial.into())
        );
        assert_eq!(layer.token_state(serial).unwrap(), before);
        assert_eq!(layer.tokens_of(&alice).unwrap().len(), 1);
        let st = layer.verify_state(held).unwrap().unwrap();
        assert_eq!(st.sync, sync(11));
        let mut ran = false;
        layer.batch(&mut || ran = true).unwrap();
        assert!(ran);
    }
}
