//! In-memory store: one lock around plain maps, so every method is atomic.

use std::collections::HashMap;

use fobsim_core::Timestamp;
use parking_lot::Mutex;

use super::{
    AccountRow, AssignOutcome, DeviceRow, FailureOutcome, Store, TokenRow, UserRow, VerifyState,
};
use crate::error::StoreError;
use fobsim_core::Principal;

struct Token {
    row: TokenRow,
    state: DeviceRow,
}

#[derive(Default)]
struct Inner {
    account: Option<AccountRow>,
    users: HashMap<String, UserRow>,
    tokens: HashMap<String, Token>,
}

/// A store that keeps everything in memory (nothing survives the process).
#[derive(Default)]
pub struct MemoryStore {
    inner: Mutex<Inner>,
}

impl std::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryStore").finish_non_exhaustive()
    }
}

impl MemoryStore {
    /// An empty store.
    #[must_use]
    pub fn new() -> Self {
        MemoryStore::default()
    }
}

fn owned_by(state: &DeviceRow, owner: &Principal) -> bool {
    state.owner.as_ref() == Some(owner)
}

fn below(last: Option<u64>, step: u64) -> bool {
    last.is_none_or(|l| l < step)
}

impl Store for MemoryStore {
    fn account(&self) -> Result<Option<AccountRow>, StoreError> {
        Ok(self.inner.lock().account.clone())
    }

    fn insert_account(&self, row: &AccountRow) -> Result<bool, StoreError> {
        let mut g = self.inner.lock();
        if g.account.is_some() {
            return Ok(false);
        }
        g.account = Some(row.clone());
        Ok(true)
    }

    fn user(&self, name: &str) -> Result<Option<UserRow>, StoreError> {
        Ok(self.inner.lock().users.get(name).cloned())
    }

    fn insert_user(&self, row: &UserRow) -> Result<bool, StoreError> {
        let mut g = self.inner.lock();
        if g.users.contains_key(&row.name) {
            return Ok(false);
        }
        g.users.insert(row.name.clone(), row.clone());
        Ok(true)
    }

    fn insert_tokens(&self, rows: &[TokenRow]) -> Result<Option<String>, StoreError> {
        let mut g = self.inner.lock();
        if let Some(dup) = rows.iter().find(|r| g.tokens.contains_key(&r.serial)) {
            return Ok(Some(dup.serial.clone()));
        }
        for r in rows {
            let state = DeviceRow {
                serial: r.serial.clone(),
                owner: None,
                enable_date: None,
                offset: 0,
                last_step: None,
                failures: 0,
                locked_until: None,
            };
            g.tokens.insert(
                r.serial.clone(),
                Token {
                    row: r.clone(),
                    state,
                },
            );
        }
        Ok(None)
    }

    fn token(&self, serial: &str) -> Result<Option<TokenRow>, StoreError> {
        Ok(self.inner.lock().tokens.get(serial).map(|t| t.row.clone()))
    }

    fn device(&self, serial: &str) -> Result<Option<DeviceRow>, StoreError> {
        Ok(self
            .inner
            .lock()
            .tokens
            .get(serial)
            .map(|t| t.state.clone()))
    }

    fn verify_state(
        &self,
        serial: &str,
        owner: &Principal,
    ) -> Result<Option<VerifyState>, StoreError> {
        let g = self.inner.lock();
        Ok(g.tokens
            .get(serial)
            .filter(|t| owned_by(&t.state, owner))
            .map(|t| VerifyState {
                offset: t.state.offset,
                last_step: t.state.last_step,
                failures: t.state.failures,
                locked_until: t.state.locked_until,
            }))
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
        let mut g = self.inner.lock();
        let count = g
            .tokens
            .values()
            .filter(|t| owned_by(&t.state, owner))
            .count();
        let Some(t) = g.tokens.get_mut(serial) else {
            return Ok(AssignOutcome::NoSuchToken);
        };
        if t.state.owner.is_some() {
            return Ok(AssignOutcome::InUse);
        }
        if count >= max_devices as usize {
            return Ok(AssignOutcome::LimitExceeded);
        }
        if !below(t.state.last_step, first_step) {
            return Ok(AssignOutcome::Replayed);
        }
        t.state.owner = Some(owner.clone());
        t.state.enable_date = Some(enable_date);
        t.state.offset = offset;
        t.state.last_step = Some(last_step);
        t.state.failures = 0;
        t.state.locked_until = None;
        Ok(AssignOutcome::Assigned)
    }

    fn unassign(&self, serial: &str, owner: &Principal) -> Result<bool, StoreError> {
        let mut g = self.inner.lock();
        match g.tokens.get_mut(serial) {
            Some(t) if owned_by(&t.state, owner) => {
                t.state.owner = None;
                t.state.enable_date = None;
                t.state.offset = 0;
                t.state.failures = 0;
                t.state.locked_until = None;
                Ok(true)
            }
            _ => Ok(false),
        }
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
        let mut g = self.inner.lock();
        match g.tokens.get_mut(serial) {
            Some(t)
                if owned_by(&t.state, owner)
                    && below(t.state.last_step, step)
                    && t.state.locked_until.is_none_or(|u| u <= now) =>
            {
                t.state.last_step = Some(barrier.max(step));
                t.state.offset = offset;
                t.state.failures = 0;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    fn commit_resync(
        &self,
        serial: &str,
        owner: &Principal,
        first_step: u64,
        last_step: u64,
        offset: i64,
    ) -> Result<bool, StoreError> {
        let mut g = self.inner.lock();
        match g.tokens.get_mut(serial) {
            Some(t) if owned_by(&t.state, owner) && below(t.state.last_step, first_step) => {
                t.state.last_step = Some(last_step);
                t.state.offset = offset;
                t.state.failures = 0;
                t.state.locked_until = None;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    fn record_failure(
        &self,
        serial: &str,
        owner: &Principal,
        now: Timestamp,
        threshold: u32,
        lock_ms: u64,
    ) -> Result<FailureOutcome, StoreError> {
        let mut g = self.inner.lock();
        match g.tokens.get_mut(serial) {
            Some(t) if owned_by(&t.state, owner) => {
                let n = t.state.failures.saturating_add(1);
                if threshold > 0 && n >= threshold {
                    let until = now.add_millis(i64::try_from(lock_ms).unwrap_or(i64::MAX));
                    t.state.failures = 0;
                    t.state.locked_until = Some(until);
                    Ok(FailureOutcome::Locked(until))
                } else {
                    t.state.failures = n;
                    Ok(FailureOutcome::Counted(n))
                }
            }
            _ => Ok(FailureOutcome::NotAssigned),
        }
    }

    fn devices_of(&self, owner: &Principal) -> Result<Vec<DeviceRow>, StoreError> {
        let g = self.inner.lock();
        let mut v: Vec<DeviceRow> = g
            .tokens
            .values()
            .filter(|t| owned_by(&t.state, owner))
            .map(|t| t.state.clone())
            .collect();
        v.sort_by(|a, b| a.serial.cmp(&b.serial));
        Ok(v)
    }
}
