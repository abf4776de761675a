//! In-memory store: one lock around plain maps, so every method is atomic.

use std::collections::HashMap;

use parking_lot::Mutex;

use super::{
    AccountRow, Assign, AssignOutcome, CommitResync, CommitSuccess, FailureOutcome, OffsetWindow,
    OwnedToken, RecordFailure, Store, SyncState, TokenRow, TokenStateRow, UserRow, VerifyState,
};
use crate::error::StoreError;
use fobsim_core::Principal;

struct Token {
    row: TokenRow,
    state: TokenStateRow,
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

fn owned_by(state: &TokenStateRow, owner: &Principal) -> bool {
    state.owner.as_ref() == Some(owner)
}

/// The state of `token` if it is assigned to its owner.
fn held<'g>(g: &'g mut Inner, token: OwnedToken<'_>) -> Option<&'g mut TokenStateRow> {
    g.tokens
        .get_mut(token.serial)
        .map(|t| &mut t.state)
        .filter(|s| owned_by(s, token.owner))
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
            let state = TokenStateRow {
                serial: r.serial.clone(),
                owner: None,
                enable_date: None,
                verify: VerifyState::default(),
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

    fn token_state(&self, serial: &str) -> Result<Option<TokenStateRow>, StoreError> {
        Ok(self
            .inner
            .lock()
            .tokens
            .get(serial)
            .map(|t| t.state.clone()))
    }

    fn verify_state(&self, token: OwnedToken<'_>) -> Result<Option<VerifyState>, StoreError> {
        Ok(held(&mut self.inner.lock(), token).map(|s| s.verify))
    }

    fn assign(&self, req: Assign<'_>) -> Result<AssignOutcome, StoreError> {
        let mut g = self.inner.lock();
        let count = g
            .tokens
            .values()
            .filter(|t| owned_by(&t.state, req.owner))
            .count();
        let Some(t) = g.tokens.get_mut(req.serial) else {
            return Ok(AssignOutcome::NoSuchToken);
        };
        if t.state.owner.is_some() {
            return Ok(AssignOutcome::InUse);
        }
        if count >= req.max_devices as usize {
            return Ok(AssignOutcome::LimitExceeded);
        }
        if t.state.verify.sync != req.seen {
            return Ok(AssignOutcome::Replayed);
        }
        t.state.owner = Some(req.owner.clone());
        t.state.enable_date = Some(req.enable_date);
        t.state.verify = VerifyState {
            sync: req.sync,
            failures: 0,
            locked_until: None,
        };
        Ok(AssignOutcome::Assigned)
    }

    fn unassign(&self, token: OwnedToken<'_>) -> Result<bool, StoreError> {
        let mut g = self.inner.lock();
        let Some(s) = held(&mut g, token) else {
            return Ok(false);
        };
        s.owner = None;
        s.enable_date = None;
        s.verify = VerifyState {
            sync: SyncState {
                offsets: OffsetWindow::default(),
                ..s.verify.sync
            },
            ..VerifyState::default()
        };
        Ok(true)
    }

    fn commit_success(&self, req: CommitSuccess<'_>) -> Result<bool, StoreError> {
        let mut g = self.inner.lock();
        let Some(v) = held(&mut g, req.token)
            .map(|s| &mut s.verify)
            .filter(|v| v.sync == req.seen && v.locked_until.is_none_or(|u| u <= req.now))
        else {
            return Ok(false);
        };
        v.sync = req.sync;
        v.failures = 0;
        Ok(true)
    }

    fn commit_resync(&self, req: CommitResync<'_>) -> Result<bool, StoreError> {
        let mut g = self.inner.lock();
        let Some(v) = held(&mut g, req.token)
            .map(|s| &mut s.verify)
            .filter(|v| v.sync == req.seen)
        else {
            return Ok(false);
        };
        *v = VerifyState {
            sync: req.sync,
            failures: 0,
            locked_until: None,
        };
        Ok(true)
    }

    fn record_failure(&self, req: RecordFailure<'_>) -> Result<FailureOutcome, StoreError> {
        let mut g = self.inner.lock();
        let Some(v) = held(&mut g, req.token).map(|s| &mut s.verify) else {
            return Ok(FailureOutcome::NotAssigned);
        };
        let n = v.failures.saturating_add(1);
        if req.threshold > 0 && n >= req.threshold {
            let until = req
                .now
                .add_millis(i64::try_from(req.lock_ms).unwrap_or(i64::MAX));
            v.failures = 0;
            v.locked_until = Some(until);
            Ok(FailureOutcome::Locked(until))
        } else {
            v.failures = n;
            Ok(FailureOutcome::Counted(n))
        }
    }

    fn tokens_of(&self, owner: &Principal) -> Result<Vec<TokenStateRow>, StoreError> {
        let g = self.inner.lock();
        let mut v: Vec<TokenStateRow> = g
            .tokens
            .values()
            .filter(|t| owned_by(&t.state, owner))
            .map(|t| t.state.clone())
            .collect();
        v.sort_by(|a, b| a.serial.cmp(&b.serial));
        Ok(v)
    }
}
