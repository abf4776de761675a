//! Model-based test: random sequences of enable, sign-in, resync,
//! deactivate, re-enable, clock jumps and device drift, run against the
//! engine (both stores) and a small independent model of the rules. After
//! every operation the outcome and every device's observable state must
//! agree.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{StoreKind, fx_with};
use fobsim_core::Timestamp;
use fobsim_core::Totp;
use fobsim_core::{Channel, Principal};
use fobsim_engine::{ErrorKind, Profile};
use proptest::prelude::*;

/// alice, bob and the root user.
const USERS: usize = 3;
const FOBS: usize = 3;
const THRESHOLD: u32 = 3;
const LOCK_MS: u64 = 300_000;
const AUTH_W: u64 = 1;
const SYNC_W: u64 = 1000;

#[derive(Debug, Clone)]
enum CodeChoice {
    /// What the device shows now, plus `k` steps (a user reading late/early).
    Shown(i8),
    /// A code far from anything expected.
    Far,
    /// The last code submitted for this fob again.
    Replay,
}

#[derive(Debug, Clone)]
enum Op {
    Advance(u64),
    /// True time jumps back (a harness rewinding its clock).
    Rewind(u64),
    Drift(usize, i8),
    /// User enables fob with codes generated `delay` steps before submitting.
    Enable(usize, usize, u8),
    SignIn(usize, usize, CodeChoice),
    Resync(usize, usize, u8),
    Deactivate(usize, usize),
}

fn op() -> impl Strategy<Value = Op> {
    let user = 0..USERS;
    let fob = 0..FOBS;
    prop_oneof![
        2 => prop_oneof![0u64..120_000, 0u64..3_600_000, 0u64..(60 * 86_400_000)].prop_map(Op::Advance),
        1 => (0..FOBS, -3i8..=3).prop_map(|(f, d)| Op::Drift(f, d)),
        1 => prop_oneof![0u64..120_000, 0u64..3_600_000].prop_map(Op::Rewind),
        3 => (user.clone(), fob.clone(), prop_oneof![Just(0u8), 0u8..4, 0u8..40]).prop_map(|(u, f, d)| Op::Enable(u, f, d)),
        6 => (user.clone(), fob.clone(), prop_oneof![
            3 => (-2i8..=2).prop_map(CodeChoice::Shown),
            1 => Just(CodeChoice::Far),
            1 => Just(CodeChoice::Replay),
        ]).prop_map(|(u, f, c)| Op::SignIn(u, f, c)),
        2 => (user.clone(), fob.clone(), prop_oneof![0u8..3, 0u8..30]).prop_map(|(u, f, d)| Op::Resync(u, f, d)),
        1 => (user, fob).prop_map(|(u, f)| Op::Deactivate(u, f)),
    ]
}

#[derive(Debug, Clone, Default, PartialEq)]
struct Tok {
    owner: Option<usize>,
    learned_offset: i64,
    last: Option<u64>,
    failures: u32,
    locked_until: Option<Timestamp>,
}

struct Model {
    toks: Vec<Tok>,
    totps: Vec<Totp>,
}

fn dist(a: u64, b: u64) -> u64 {
    a.abs_diff(b)
}

impl Model {
    fn code(&self, f: usize, s: u64) -> String {
        self.totps[f].code_for_step(s).to_string()
    }

    /// All steps within `w` of `center` (clamped at 0), nearest first, ties low.
    fn window(center: u64, w: u64) -> Vec<u64> {
        let mut v: Vec<u64> = (center.saturating_sub(w)..=center.saturating_add(w)).collect();
        v.sort_by_key(|s| (dist(*s, center), *s));
        v
    }

    fn find_pair(&self, f: usize, c: u64, c1: &str, c2: &str) -> Option<u64> {
        let last = self.toks[f].last;
        Self::window(c, SYNC_W)
            .into_iter()
            .filter(|s| last.is_none_or(|l| *s > l))
            .find(|s| self.code(f, *s) == c1 && self.code(f, s + 1) == c2)
    }

    fn count(&self, u: usize) -> usize {
        self.toks.iter().filter(|t| t.owner == Some(u)).count()
    }

    fn enable(
        &mut self,
        now: Timestamp,
        u: usize,
        f: usize,
        c1: &str,
        c2: &str,
    ) -> Result<(), ErrorKind> {
        if self.toks[f].owner.is_some() {
            return Err(ErrorKind::EntityAlreadyExists);
        }
        if self.count(u) >= 1 {
            return Err(ErrorKind::LimitExceeded);
        }
        let c = now.as_secs() / 30;
        let s = self
            .find_pair(f, c, c1, c2)
            .ok_or(ErrorKind::InvalidAuthenticationCode)?;
        self.toks[f] = Tok {
            owner: Some(u),
            learned_offset: i64::try_from(s + 1).unwrap() - i64::try_from(c).unwrap(),
            last: Some(s + 1),
            failures: 0,
            locked_until: None,
        };
        Ok(())
    }

    fn resync(
        &mut self,
        now: Timestamp,
        u: usize,
        f: usize,
        c1: &str,
        c2: &str,
    ) -> Result<(), ErrorKind> {
        if self.toks[f].owner != Some(u) {
            return Err(ErrorKind::NoSuchEntity);
        }
        let c = now.as_secs() / 30;
        let s = self
            .find_pair(f, c, c1, c2)
            .ok_or(ErrorKind::InvalidAuthenticationCode)?;
        let t = &mut self.toks[f];
        t.learned_offset = i64::try_from(s + 1).unwrap() - i64::try_from(c).unwrap();
        t.last = Some(s + 1);
        t.failures = 0;
        t.locked_until = None;
        Ok(())
    }

    fn sign_in(&mut self, now: Timestamp, u: usize, f: usize, code: &str) -> Result<(), ErrorKind> {
        if self.toks[f].owner != Some(u) {
            return Err(ErrorKind::AccessDenied);
        }
        if self.toks[f].locked_until.is_some_and(|l| l > now) {
            return Err(ErrorKind::DeviceLocked);
        }
        let c = now.as_secs() / 30;
        let e = u64::try_from((i64::try_from(c).unwrap() + self.toks[f].learned_offset).max(0))
            .unwrap();
        let last = self.toks[f].last;
        // Sign-in: nearest step first, ties to the HIGHER step (a code seen
        // at both ends of the window is most likely the later one, and the
        // replay barrier must cover both).
        let mut order: Vec<u64> = (e.saturating_sub(AUTH_W)..=e.saturating_add(AUTH_W)).collect();
        order.sort_by_key(|s| (dist(*s, e), std::cmp::Reverse(*s)));
        let hit = order
            .into_iter()
            .filter(|s| last.is_none_or(|l| *s > l))
            .find(|s| self.code(f, *s) == code);
        let barrier = hit.map(|s| {
            (s..=e.saturating_add(AUTH_W))
                .filter(|x| self.code(f, *x) == code)
                .max()
                .unwrap_or(s)
        });
        let t = &mut self.toks[f];
        if let (Some(s), Some(b)) = (hit, barrier) {
            t.last = Some(b);
            t.learned_offset = i64::try_from(s).unwrap() - i64::try_from(c).unwrap();
            t.failures = 0;
            Ok(())
        } else {
            t.failures += 1;
            if t.failures >= THRESHOLD {
                t.failures = 0;
                t.locked_until = Some(Timestamp::from_millis(now.as_millis() + LOCK_MS));
            }
            Err(ErrorKind::AccessDenied)
        }
    }

    fn deactivate(&mut self, u: usize, f: usize) -> Result<(), ErrorKind> {
        if self.toks[f].owner != Some(u) {
            return Err(ErrorKind::NoSuchEntity);
        }
        let last = self.toks[f].last;
        self.toks[f] = Tok {
            last,
            ..Tok::default()
        };
        Ok(())
    }
}

fn run(store: StoreKind, ops: &[Op]) -> Result<(), TestCaseError> {
    let profile = Profile {
        lockout_threshold: THRESHOLD,
        lockout_period_ms: LOCK_MS,
        ..Profile::for_tests()
    };
    let fx = fx_with(store, FOBS as u64, profile);
    let users = [
        Principal::user("alice"),
        Principal::user("bob"),
        Principal::Root,
    ];
    let totps: Vec<Totp> = fx
        .fobs
        .iter()
        .map(|f| {
            let r = f.seed_record();
            Totp::new(r.algorithm, r.secret.expose(), 6, 30, 0).unwrap()
        })
        .collect();
    let mut model = Model {
        toks: vec![Tok::default(); FOBS],
        totps,
    };
    let mut now = common::at(0);
    let mut drift = [0i64; FOBS];
    let mut last_code: Vec<Option<String>> = vec![None; FOBS];
    let dev_step = |now: Timestamp, d: i64| -> u64 {
        u64::try_from((i64::try_from(now.as_secs() / 30).unwrap() + d).max(2)).unwrap()
    };
    for (i, op) in ops.iter().enumerate() {
        let (got, want) = match op {
            Op::Advance(ms) => {
                now = now.add_millis(i64::try_from(*ms).unwrap());
                continue;
            }
            Op::Rewind(ms) => {
                now = now.add_millis(-i64::try_from(*ms).unwrap());
                continue;
            }
            Op::Drift(f, d) => {
                drift[*f] += i64::from(*d);
                continue;
            }
            Op::Enable(u, f, delay) => {
                let d2 = dev_step(now, drift[*f])
                    .saturating_sub(u64::from(*delay))
                    .max(1);
                let (c1, c2) = (model.code(*f, d2 - 1), model.code(*f, d2));
                let got = fx.engine.enable_mfa_device(
                    now,
                    Channel::Console,
                    &users[*u],
                    &fx.serial(*f),
                    &c1,
                    &c2,
                );
                (got, model.enable(now, *u, *f, &c1, &c2))
            }
            Op::Resync(u, f, delay) => {
                let d2 = dev_step(now, drift[*f])
                    .saturating_sub(u64::from(*delay))
                    .max(1);
                let (c1, c2) = (model.code(*f, d2 - 1), model.code(*f, d2));
                let got = fx
                    .engine
                    .resync_mfa_device(now, &users[*u], &fx.serial(*f), &c1, &c2);
                (got, model.resync(now, *u, *f, &c1, &c2))
            }
            Op::SignIn(u, f, choice) => {
                let d = dev_step(now, drift[*f]);
                let code = match choice {
                    CodeChoice::Shown(k) => model.code(*f, d.saturating_add_signed(i64::from(*k))),
                    CodeChoice::Far => model.code(*f, d + 5000),
                    CodeChoice::Replay => {
                        last_code[*f].clone().unwrap_or_else(|| model.code(*f, d))
                    }
                };
                last_code[*f] = Some(code.clone());
                let got = fx
                    .engine
                    .verify_session_mfa(now, &users[*u], &fx.serial(*f), &code);
                (got, model.sign_in(now, *u, *f, &code))
            }
            Op::Deactivate(u, f) => {
                let got = fx
                    .engine
                    .deactivate_mfa_device(now, &users[*u], &fx.serial(*f));
                (got, model.deactivate(*u, *f))
            }
        };
        prop_assert_eq!(
            got.map_err(|e| e.kind),
            want,
            "op #{} {:?} at {}",
            i,
            op,
            now
        );
        for f in 0..FOBS {
            let st = fx.engine.token_state(&fx.serial(f)).unwrap();
            let m = &model.toks[f];
            let got = Tok {
                owner: st
                    .assigned_to
                    .map(|p| users.iter().position(|u| *u == p).unwrap()),
                learned_offset: st.learned_offset,
                last: st.last_step,
                failures: st.consecutive_failures,
                locked_until: st.locked_until,
            };
            prop_assert_eq!(&got, m, "fob {} after op #{} {:?}", f, i, op);
        }
    }
    // Every user's list agrees with the model's owners.
    for (u, p) in users.iter().enumerate() {
        let listed: Vec<String> = fx
            .engine
            .list_mfa_devices(p)
            .unwrap()
            .into_iter()
            .map(|d| d.serial)
            .collect();
        let want: Vec<String> = (0..FOBS)
            .filter(|f| model.toks[*f].owner == Some(u))
            .map(|f| fx.serial(f))
            .collect();
        prop_assert_eq!(listed, want);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, max_shrink_iters: 400, ..ProptestConfig::default() })]

    #[test]
    fn engine_matches_model_in_memory(ops in prop::collection::vec(op(), 1..80)) {
        run(StoreKind::Memory, &ops)?;
    }

    #[test]
    fn engine_matches_model_on_sqlite(ops in prop::collection::vec(op(), 1..80)) {
        run(StoreKind::Sqlite, &ops)?;
    }
}
