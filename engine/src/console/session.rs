//! Console sessions: random 256-bit ids, kept in memory, bounded in
//! number, expiring when idle. Real (monotonic) time: sessions belong to
//! the web shell, not to the engine's simulated clock.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use fobsim_core::Principal;
use parking_lot::Mutex;
use zeroize::Zeroizing;

/// A fresh random token: 32 bytes from the operating system, hex.
/// `None` if the system has no randomness to give (then no session).
pub(crate) fn random_token() -> Option<String> {
    let mut b = [0u8; 32];
    getrandom::fill(&mut b).ok()?;
    Some(hex::encode(b))
}

/// Who is signed in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SignedIn {
    pub principal: Principal,
    /// The sign-in used an MFA code (`aws:MultiFactorAuthPresent`).
    pub mfa: bool,
}

/// A correct password waiting for its MFA code (or a root recovery).
pub(crate) struct Pending {
    pub principal: Principal,
    pub password: Zeroizing<String>,
    pub since: Instant,
    /// Root recovery: the code typed from the email, until the phone's.
    pub email_code: Option<Zeroizing<String>>,
}

/// One session.
pub(crate) struct Session {
    pub csrf: String,
    pub last_seen: Instant,
    pub signed_in: Option<SignedIn>,
    pub pending: Option<Pending>,
    /// A message for the next page (after a redirect).
    pub flash: Option<String>,
}

/// The settings of the store.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub max_sessions: usize,
    pub signed_in_idle: Duration,
    pub anonymous_idle: Duration,
    pub pending_ttl: Duration,
}

/// The sessions.
pub(crate) struct Store {
    map: Mutex<HashMap<String, Session>>,
    limits: Limits,
}

impl Store {
    pub fn new(limits: Limits) -> Self {
        Store {
            map: Mutex::new(HashMap::new()),
            limits,
        }
    }

    fn expired(&self, s: &Session, now: Instant) -> bool {
        let idle = if s.signed_in.is_some() {
            self.limits.signed_in_idle
        } else {
            self.limits.anonymous_idle
        };
        now.duration_since(s.last_seen) > idle
    }

    /// Run `f` on the live session `id` (touching it), `None` if there is
    /// no such live session. An expired pending password is dropped.
    pub fn with<R>(&self, id: &str, f: impl FnOnce(&mut Session) -> R) -> Option<R> {
        let now = Instant::now();
        let mut map = self.map.lock();
        let live = map.get(id).is_some_and(|s| !self.expired(s, now));
        if !live {
            map.remove(id);
            return None;
        }
        let s = map.get_mut(id)?;
        s.last_seen = now;
        if s.pending
            .as_ref()
            .is_some_and(|p| now.duration_since(p.since) > self.limits.pending_ttl)
        {
            s.pending = None;
        }
        Some(f(s))
    }

    /// A new anonymous session; its id. When the store is full, expired
    /// sessions go first, then the one idle longest.
    pub fn create(&self, flash: Option<String>) -> Option<String> {
        let id = random_token()?;
        let csrf = random_token()?;
        let now = Instant::now();
        let mut map = self.map.lock();
        if map.len() >= self.limits.max_sessions {
            map.retain(|_, s| !self.expired(s, now));
        }
        while map.len() >= self.limits.max_sessions.max(1) {
            let oldest = map
                .iter()
                .min_by_key(|(_, s)| s.last_seen)
                .map(|(k, _)| k.clone());
            match oldest {
                Some(k) => map.remove(&k),
                None => break,
            };
        }
        map.insert(
            id.clone(),
            Session {
                csrf,
                last_seen: now,
                signed_in: None,
                pending: None,
                flash,
            },
        );
        Some(id)
    }

    /// Replace session `old` by a new id carrying `signed_in` (a sign-in
    /// never keeps the id the visitor came with).
    pub fn sign_in(&self, old: &str, signed_in: SignedIn, flash: Option<String>) -> Option<String> {
        self.remove(old);
        let id = self.create(flash)?;
        self.with(&id, |s| s.signed_in = Some(signed_in))?;
        Some(id)
    }

    pub fn remove(&self, id: &str) {
        self.map.lock().remove(id);
    }

    /// How many sessions are held.
    pub fn len(&self) -> usize {
        self.map.lock().len()
    }
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("sessions", &self.len())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(max: usize) -> Limits {
        Limits {
            max_sessions: max,
            signed_in_idle: Duration::from_secs(60),
            anonymous_idle: Duration::from_secs(60),
            pending_ttl: Duration::from_secs(60),
        }
    }

    #[test]
    fn ids_are_random_and_the_store_is_bounded() {
        let st = Store::new(limits(3));
        let ids: Vec<String> = (0..5).map(|_| st.create(None).unwrap()).collect();
        assert_eq!(st.len(), 3);
        assert!(ids.iter().all(|i| i.len() == 64));
        assert!(st.with(&ids[0], |_| ()).is_none(), "the oldest went first");
        assert!(st.with(&ids[4], |_| ()).is_some());
    }

    #[test]
    fn idle_sessions_expire() {
        let mut l = limits(10);
        l.anonymous_idle = Duration::from_millis(20);
        let st = Store::new(l);
        let id = st.create(None).unwrap();
        std::thread::sleep(Duration::from_millis(40));
        assert!(st.with(&id, |_| ()).is_none());
        assert_eq!(st.len(), 0);
    }
}
