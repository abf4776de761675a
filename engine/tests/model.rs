//! Model-based test: random sequences of enable, sign-in (prompt and
//! slow), resync, deactivate, re-enable, clock jumps (back by up to days:
//! the heal of a barrier left ahead) and device drift, run against the
//! engine (both stores) and a small independent model of the rules
//! (`docs/engine-rules.md`). After every operation the outcome and every
//! device's observable state (learned offsets, barrier, run, quarantine,
//! failures, lock) must agree.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test stops loudly

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
    /// The engine's clock jumps back (an NTP correction; up to days, so a
    /// replay barrier can end up far ahead and need a heal).
    Rewind(u64),
    Drift(usize, i8),
    /// User enables fob with codes generated `delay` steps before submitting.
    Enable(usize, usize, u8),
    /// A sign-in with a code chosen by `CodeChoice`, typed `late` ms after
    /// it was shown (a slow user).
    SignIn(usize, usize, CodeChoice, u32),
    Resync(usize, usize, u8),
    Deactivate(usize, usize),
}

fn op() -> impl Strategy<Value = Op> {
    let user = 0..USERS;
    let fob = 0..FOBS;
    prop_oneof![
        2 => prop_oneof![0u64..120_000, 0u64..3_600_000, 0u64..(60 * 86_400_000)].prop_map(Op::Advance),
        1 => (0..FOBS, -3i8..=3).prop_map(|(f, d)| Op::Drift(f, d)),
        1 => prop_oneof![4 => 0u64..3_600_000, 1 => 0u64..(3 * 86_400_000)].prop_map(Op::Rewind),
        3 => (user.clone(), fob.clone(), prop_oneof![Just(0u8), 0u8..4, 0u8..40]).prop_map(|(u, f, d)| Op::Enable(u, f, d)),
        6 => (user.clone(), fob.clone(), prop_oneof![
            3 => (-2i8..=2).prop_map(CodeChoice::Shown),
            1 => Just(CodeChoice::Far),
            1 => Just(CodeChoice::Replay),
        ], prop_oneof![Just(0u32), 0u32..70_000]).prop_map(|(u, f, c, l)| Op::SignIn(u, f, c, l)),
        2 => (user.clone(), fob.clone(), prop_oneof![0u8..3, 0u8..30]).prop_map(|(u, f, d)| Op::Resync(u, f, d)),
        1 => (user, fob).prop_map(|(u, f)| Op::Deactivate(u, f)),
    ]
}

/// What the model keeps per fob (the engine's observable state).
#[derive(Debug, Clone, Default, PartialEq)]
struct Tok {
    owner: Option<usize>,
    /// Learned offsets [lo, hi) in ms, anchored at `at` (ms).
    lo: i64,
    hi: i64,
    at: u64,
    last: Option<u64>,
    run_start: Option<u64>,
    run_base: Option<u64>,
    quarantine: Option<(u64, u64)>,
    failures: u32,
    locked_until: Option<Timestamp>,
}

/// A pair found: (first step, new run start, new run base, new quarantine).
type Found = (u64, Option<u64>, Option<u64>, Option<(u64, u64)>);

struct Model {
    toks: Vec<Tok>,
    totps: Vec<Totp>,
}

const P: i64 = 30_000;
const D: i64 = 60_000;
const PPM: i64 = 20;

fn dist(a: u64, b: u64) -> u64 {
    a.abs_diff(b)
}

fn ms(t: Timestamp) -> i64 {
    i64::try_from(t.as_millis()).unwrap()
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

    fn quarantined(&self, f: usize, s: u64) -> bool {
        self.toks[f]
            .quarantine
            .is_some_and(|(a, b)| (a..=b).contains(&s))
    }

    /// The pair rule, heal included (docs/engine-rules.md), as the state it
    /// teaches.
    fn find_pair(&self, f: usize, c: u64, c1: &str, c2: &str) -> Option<Found> {
        let t = &self.toks[f];
        let ok = |s: u64| {
            !self.quarantined(f, s)
                && !self.quarantined(f, s + 1)
                && self.code(f, s) == c1
                && self.code(f, s + 1) == c2
        };
        if let Some(last) = t.last.filter(|l| *l > c + SYNC_W) {
            let run = t.run_start?;
            let floor = t.run_base.map_or(0, |b| b + 1);
            let s = Self::window(c, SYNC_W)
                .into_iter()
                .find(|s| *s >= floor && s + 1 < run && ok(*s))?;
            let q = match t.quarantine {
                Some((a, b)) => (a.min(run), b.max(last)),
                None => (run, last),
            };
            return Some((s, Some(s), t.run_base, Some(q)));
        }
        let s = Self::window(c, SYNC_W)
            .into_iter()
            .filter(|s| t.last.is_none_or(|l| *s > l))
            .find(|s| ok(*s))?;
        let new_run = t.run_start.is_none() || t.last.is_none_or(|l| s > l + SYNC_W);
        Some(if new_run {
            (s, Some(s), t.last, t.quarantine)
        } else {
            (s, t.run_start, t.run_base, t.quarantine)
        })
    }

    fn count(&self, u: usize) -> usize {
        self.toks.iter().filter(|t| t.owner == Some(u)).count()
    }

    fn pin(&mut self, f: usize, now: Timestamp, found: Found) {
        let (s, run_start, run_base, q) = found;
        let t = &mut self.toks[f];
        let rel = i64::try_from((s + 1) * 30_000).unwrap() - ms(now);
        t.lo = rel;
        t.hi = rel + P + D;
        t.at = now.as_millis();
        t.last = Some(s + 1);
        t.run_start = run_start;
        t.run_base = run_base;
        t.quarantine = q.filter(|(_, b)| *b > s + 1);
        t.failures = 0;
        t.locked_until = None;
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
        let found = self
            .find_pair(f, now.as_secs() / 30, c1, c2)
            .ok_or(ErrorKind::InvalidAuthenticationCode)?;
        self.pin(f, now, found);
        self.toks[f].owner = Some(u);
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
        let found = self
            .find_pair(f, now.as_secs() / 30, c1, c2)
            .ok_or(ErrorKind::InvalidAuthenticationCode)?;
        self.pin(f, now, found);
        Ok(())
    }

    fn sign_in(&mut self, now: Timestamp, u: usize, f: usize, code: &str) -> Result<(), ErrorKind> {
        if self.toks[f].owner != Some(u) {
            return Err(ErrorKind::AccessDenied);
        }
        if self.toks[f].locked_until.is_some_and(|l| l > now) {
            return Err(ErrorKind::DeviceLocked);
        }
        let t = self.toks[f].clone();
        let elapsed = (ms(now) - i64::try_from(t.at).unwrap()).max(0);
        let g = (elapsed * PPM / 1_000_000).min(i64::try_from(AUTH_W).unwrap() * P);
        let (wlo, whi) = (t.lo - g, t.hi + g);
        // Every step whose evidence [start - t, start + P + D - t) meets
        // the widened offsets, by the definition (a generous scan).
        let centre = (ms(now) + t.lo) / P;
        let reach = (t.hi - t.lo + 2 * g + P + D) / P + 3;
        let mut matching = Vec::new();
        for s in (centre - reach).max(0)..=centre + reach {
            let s = u64::try_from(s).unwrap();
            let e_lo = i64::try_from(s * 30_000).unwrap() - ms(now);
            let e_hi = e_lo + P + D;
            let meets = e_lo < whi && wlo < e_hi;
            if meets && t.last.is_none_or(|l| s > l) && self.code(f, s) == code {
                matching.push(s);
            }
        }
        let usable: Vec<u64> = matching
            .iter()
            .copied()
            .filter(|s| !self.quarantined(f, *s))
            .collect();
        let tok = &mut self.toks[f];
        if let (Some(&first), Some(&barrier)) = (usable.first(), matching.last()) {
            let lo_e = i64::try_from(first * 30_000).unwrap() - ms(now);
            let hi_e = i64::try_from(usable.last().unwrap() * 30_000).unwrap() - ms(now) + P + D;
            tok.lo = lo_e.max(wlo);
            tok.hi = hi_e.min(whi);
            tok.at = now.as_millis();
            if tok.last.is_none_or(|l| first > l + SYNC_W) {
                tok.run_start = Some(first);
                tok.run_base = tok.last;
            }
            tok.last = Some(barrier);
            tok.quarantine = tok.quarantine.filter(|(_, b)| *b > barrier);
            tok.failures = 0;
            return Ok(());
        }
        // A replay of the last accepted code (the barrier shows it): not
        // counted.
        if tok
            .last
            .is_some_and(|l| self.totps[f].code_for_step(l).to_string() == code)
        {
            return Err(ErrorKind::AccessDenied);
        }
        tok.failures += 1;
        if tok.failures >= THRESHOLD {
            tok.failures = 0;
            tok.locked_until = Some(Timestamp::from_millis(now.as_millis() + LOCK_MS));
        }
        Err(ErrorKind::AccessDenied)
    }

    fn deactivate(&mut self, u: usize, f: usize) -> Result<(), ErrorKind> {
        if self.toks[f].owner != Some(u) {
            return Err(ErrorKind::NoSuchEntity);
        }
        let t = &self.toks[f];
        self.toks[f] = Tok {
            last: t.last,
            run_start: t.run_start,
            run_base: t.run_base,
            quarantine: t.quarantine,
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
            Op::SignIn(u, f, choice, late) => {
                // The code is read `late` ms before it is typed.
                let shown = now.add_millis(-i64::from(*late));
                let d = dev_step(shown, drift[*f]);
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
                lo: st.offsets.lo_ms,
                hi: st.offsets.hi_ms,
                at: st.offsets.anchored_at.as_millis(),
                last: st.last_step,
                run_start: st.run_start,
                run_base: st.run_base,
                quarantine: st.quarantine.map(|q| (q.first, q.last)),
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

    #[test]
    fn engine_matches_model_on_postgres(ops in prop::collection::vec(op(), 1..80)) {
        run(StoreKind::Postgres, &ops)?;
    }
}
