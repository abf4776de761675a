//! Storage behind a trait: [`MemoryStore`] and [`SqliteStore`].
//!
//! Every state change the rules depend on is one atomic conditional update
//! in the store (`UPDATE ... WHERE last_step < ?` in SQLite, the same test
//! under one lock in memory): replay protection, device assignment, the
//! per-user device limit and the failure counter never read-then-write in
//! Rust.

mod memory;
mod sqlite;

pub use memory::MemoryStore;
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

/// The mutable state of a token: assignment, drift, replay, lockout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceRow {
    /// Serial number.
    pub serial: String,
    /// Assigned to.
    pub owner: Option<Principal>,
    /// Enable date while assigned.
    pub enable_date: Option<Timestamp>,
    /// Learned offset in steps.
    pub offset: i64,
    /// Last accepted step.
    pub last_step: Option<u64>,
    /// Consecutive failures.
    pub failures: u32,
    /// Lock expiry.
    pub locked_until: Option<Timestamp>,
}

/// The part of a device's state a verification needs (no allocation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VerifyState {
    /// Learned offset in steps.
    pub offset: i64,
    /// Last accepted step.
    pub last_step: Option<u64>,
    /// Consecutive failures.
    pub failures: u32,
    /// Lock expiry.
    pub locked_until: Option<Timestamp>,
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
    /// The first code's step is not above the token's last accepted step.
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
    fn device(&self, serial: &str) -> Result<Option<DeviceRow>, StoreError>;

    /// The verification state of `serial` if it is assigned to `owner`.
    /// A store may serve it from a cache of its own writes: callers treat
    /// it as a hint that the conditional writes validate, and call
    /// [`Store::forget`] and read again before concluding a failure.
    ///
    /// # Errors
    /// [`StoreError`] on backend failure.
    fn verify_state(
        &self,
        serial: &str,
        owner: &Principal,
    ) -> Result<Option<VerifyState>, StoreError>;

    /// Assign `serial` to `owner` if the token exists, is unassigned, the
    /// owner has fewer than `max_devices` devices and the token's last
    /// accepted step is below `first_step`. Sets offset, `last_step`
    /// (= the second code's step), the enable date, and clears failures and
    /// lock.
    ///
    /// # Errors
    /// [`StoreError`] on backend failure.
    #[allow(clippy::too_many_arguments)]
    fn assign(
        &self,
        serial: &str,
        owner: &Principal,
        enable_date: Timestamp,
        offset: i64,
        first_step: u64,
        last_step: u64,
        max_devices: u32,
    ) -> Result<AssignOutcome, StoreError>;

    /// Unassign `serial` from `owner` (keeps the token's `last_step`);
    /// `false` if it was not assigned to `owner`.
    ///
    /// # Errors
    /// [`StoreError`] on backend failure.
    fn unassign(&self, serial: &str, owner: &Principal) -> Result<bool, StoreError>;

    /// Record an accepted sign-in code at `step`, if the device is assigned
    /// to `owner`, `step` is above the last accepted step and the device is
    /// not locked at `now`; sets the last accepted step to `barrier`
    /// (`>= step`: the highest step in the window showing the same code, so
    /// the same code cannot be accepted twice), sets the offset and clears
    /// failures. `false` when the condition does not hold (a concurrent
    /// replay lost).
    ///
    /// # Errors
    /// [`StoreError`] on backend failure.
    fn commit_success(
        &self,
        serial: &str,
        owner: &Principal,
        step: u64,
        barrier: u64,
        offset: i64,
        now: Timestamp,
    ) -> Result<bool, StoreError>;

    /// Record a resync whose first code is at `first_step` and second at
    /// `last_step`, if the device is assigned to `owner` and `first_step`
    /// is above the last accepted step; sets the offset, clears failures
    /// and lock.
    ///
    /// # Errors
    /// [`StoreError`] on backend failure.
    fn commit_resync(
        &self,
        serial: &str,
        owner: &Principal,
        first_step: u64,
        last_step: u64,
        offset: i64,
    ) -> Result<bool, StoreError>;

    /// Count a failed sign-in; at `threshold` (0 = never) lock until
    /// `now + lock_ms` and restart the count.
    ///
    /// # Errors
    /// [`StoreError`] on backend failure.
    fn record_failure(
        &self,
        serial: &str,
        owner: &Principal,
        now: Timestamp,
        threshold: u32,
        lock_ms: u64,
    ) -> Result<FailureOutcome, StoreError>;

    /// The devices assigned to `owner`, by serial.
    ///
    /// # Errors
    /// [`StoreError`] on backend failure.
    fn devices_of(&self, owner: &Principal) -> Result<Vec<DeviceRow>, StoreError>;

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

/// A shared store is a store (e.g. a test keeps an `Arc` to a
/// [`crate::testing::FailingStore`] that the engine also owns).
impl<S: Store + ?Sized> Store for std::sync::Arc<S> {
    fn account(&self) -> Result<Option<AccountRow>, StoreError> {
        (**self).account()
    }
    fn insert_account(&self, row: &AccountRow) -> Result<bool, StoreError> {
        (**self).insert_account(row)
    }
    fn user(&self, name: &str) -> Result<Option<UserRow>, StoreError> {
        (**self).user(name)
    }
    fn insert_user(&self, row: &UserRow) -> Result<bool, StoreError> {
        (**self).insert_user(row)
    }
    fn insert_tokens(&self, rows: &[TokenRow]) -> Result<Option<String>, StoreError> {
        (**self).insert_tokens(rows)
    }
    fn token(&self, serial: &str) -> Result<Option<TokenRow>, StoreError> {
        (**self).token(serial)
    }
    fn device(&self, serial: &str) -> Result<Option<DeviceRow>, StoreError> {
        (**self).device(serial)
    }
    fn verify_state(
        &self,
        serial: &str,
        owner: &Principal,
    ) -> Result<Option<VerifyState>, StoreError> {
        (**self).verify_state(serial, owner)
    }
    fn assign(
        &self,
        serial: &str,
        owner: &Principal,
        enable_date: Timestamp,
        offset: i64,
        first_step: u64,
        last_step: u64,
        max_devices: u32,
    ) -> Result<AssignOutcome, StoreError> {
        (**self).assign(
            serial,
            owner,
            enable_date,
            offset,
            first_step,
            last_step,
            max_devices,
        )
    }
    fn unassign(&self, serial: &str, owner: &Principal) -> Result<bool, StoreError> {
        (**self).unassign(serial, owner)
    }
    fn commit_success(
        &self,
        serial: &str,
        owner: &Principal,
        step: u64,
        barrier: u64,
        offset: i64,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        (**self).commit_success(serial, owner, step, barrier, offset, now)
    }
    fn commit_resync(
        &self,
        serial: &str,
        owner: &Principal,
        first_step: u64,
        last_step: u64,
        offset: i64,
    ) -> Result<bool, StoreError> {
        (**self).commit_resync(serial, owner, first_step, last_step, offset)
    }
    fn record_failure(
        &self,
        serial: &str,
        owner: &Principal,
        now: Timestamp,
        threshold: u32,
        lock_ms: u64,
    ) -> Result<FailureOutcome, StoreError> {
        (**self).record_failure(serial, owner, now, threshold, lock_ms)
    }
    fn devices_of(&self, owner: &Principal) -> Result<Vec<DeviceRow>, StoreError> {
        (**self).devices_of(owner)
    }
    fn batch(&self, f: &mut dyn FnMut()) -> Result<(), StoreError> {
        (**self).batch(f)
    }
    fn forget(&self, serial: &str) {
        (**self).forget(serial);
    }
}
