//! One test per rule of the DESIGN.md table and per seed sentence the engine
//! owns, each on both stores.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test stops loudly

mod common;

use common::{Fx, StoreKind, at, fx, fx_with, step};
use fobsim_core::{Channel, Principal};
use fobsim_engine::{EngineError, ErrorKind, OutboxChannel, Profile, testing};

fn alice() -> Principal {
    Principal::user("alice")
}
fn bob() -> Principal {
    Principal::user("bob")
}

/// Enable fob `i` for `who` with the codes of steps `s`, `s+1` at time `now`.
fn enable_steps(
    fx: &Fx,
    who: &Principal,
    i: usize,
    s: u64,
    now: fobsim_core::Timestamp,
) -> Result<(), EngineError> {
    fx.engine.enable_mfa_device(
        now,
        Channel::Console,
        who,
        &fx.serial(i),
        &fx.code(i, s),
        &fx.code(i, s + 1),
    )
}

/// Enable fob `i` for `who` on time: codes of the previous and current step.
fn enable_now(fx: &Fx, who: &Principal, i: usize, now: fobsim_core::Timestamp) {
    let c = step(now);
    enable_steps(fx, who, i, c - 1, now).unwrap();
}

fn sign(
    fx: &Fx,
    who: &Principal,
    i: usize,
    s: u64,
    now: fobsim_core::Timestamp,
) -> Result<(), EngineError> {
    fx.engine
        .verify_session_mfa(now, who, &fx.serial(i), &fx.code(i, s))
}

fn kind(r: Result<(), EngineError>) -> Option<ErrorKind> {
    r.err().map(|e| e.kind)
}

// ---- seed: "The user must type a valid code from the device when prompted
// during the sign-in process." A code is accepted when a step above the
// barrier shows it and its evidence E(s, t) = [start(s) - t, start(s) + P -
// t + D) meets the learned offsets widened to t (docs/engine-rules.md).
both!(sign_in_accepts_what_the_evidence_allows, |b| {
    // Enabled 10 s into step c0 with the codes of c0 - 1 and c0: the
    // learned offsets are E(c0, at(0)) = [-10 s, 80 s). 300 s later they
    // have widened by 20 ppm x 300 s = 6 ms on each side, so a code of step
    // s is consistent iff start(s) - t lies in (-100.006 s, 80.006 s):
    // steps c - 3 ..= c + 3 (c = the current step, t 10 s into it).
    let t = at(10);
    let c = step(t);
    for k in -5i64..=5 {
        let fx = fx(b, 1);
        enable_now(&fx, &alice(), 0, at(0));
        let got = sign(&fx, &alice(), 0, c.saturating_add_signed(k), t);
        if k.abs() <= 3 {
            got.unwrap();
        } else {
            assert_eq!(kind(got), Some(ErrorKind::AccessDenied), "step c{k:+}");
        }
    }
});

// ---- The sequence (Keycloak #37762 / privacyIDEA #1408): an
// in-sync fob, a slow user. 59 s late, then 60 s late (both consistent with
// an in-sync fob and a delay within D = 60 s), then the fresh code: it
// must be accepted, because a slow user never walks the learned offsets.
both!(a_slow_user_never_walks_the_learned_offsets, |b| {
    let fx = fx(b, 1);
    let t0 = testing::T0; // a step boundary
    let c0 = step(t0);
    // Prompt enable: codes of c0 - 1 and c0 at the start of c0.
    enable_steps(&fx, &alice(), 0, c0 - 1, t0).unwrap();
    let ms = |s: i64| t0.add_millis(s);
    // The code of step c0 + 1 (shown from 30 s on) typed at 30 s + 59 s.
    sign(&fx, &alice(), 0, c0 + 1, ms(89_000)).unwrap();
    // The code of c0 + 3 (shown from 90 s on) typed at 90 s + 60 s.
    sign(&fx, &alice(), 0, c0 + 3, ms(150_000)).unwrap();
    // The fresh code at 150 s: step c0 + 5.
    sign(&fx, &alice(), 0, c0 + 5, ms(150_000)).unwrap();
    let st = fx.engine.token_state(&fx.serial(0)).unwrap();
    // The true offset (0) was never excluded.
    assert!(st.offsets.lo_ms <= 0 && 0 < st.offsets.hi_ms, "{st:?}");
});

// ---- a code older than D plus the window is refused, however the
// learned offsets came about: they only narrow on evidence and widen by at
// most the drift allowance, so a code whose step ended more than D + g
// before any consistent offset allows is never accepted.
both!(a_code_older_than_the_delay_and_the_window_is_refused, |b| {
    let t0 = testing::T0;
    let c0 = step(t0);
    let ms = |s: i64| t0.add_millis(s);
    // Three histories of an in-sync fob: a prompt enable; a prompt enable
    // and a month of prompt sign-ins; an enable 59 s late and a month of
    // sign-ins 59 s late.
    for history in 0..3 {
        let fx = fx(b, 1);
        let late = if history == 2 { 59_000 } else { 0 };
        enable_steps(&fx, &alice(), 0, c0 - 1, ms(late)).unwrap();
        let mut t = ms(late);
        if history > 0 {
            for _ in 0..30 {
                let shown = t.add_millis(86_400_000 - late);
                t = shown.add_millis(late);
                sign(&fx, &alice(), 0, step(shown), t).unwrap();
            }
        }
        let st = fx.engine.token_state(&fx.serial(0)).unwrap();
        // The lowest consistent offset now, and the code whose step ended
        // exactly D (60 s) + g before it: its evidence ends at lo - g.
        let later = t.add_millis(3_600_000);
        let g = i64::try_from(3_600_000u64 * 20 / 1_000_000).unwrap(); // 72 ms
        let lo = st.offsets.lo_ms - g;
        // A code of step s is refused once start(s) + 30 s + 60 s - t <= lo.
        let edge = |s: u64| -> i64 {
            i64::try_from(s * 30_000 + 90_000).unwrap() - i64::try_from(later.as_millis()).unwrap()
        };
        let s_old = (step(later) - 20..step(later))
            .rev()
            .find(|s| edge(*s) <= lo)
            .unwrap();
        assert_eq!(
            kind(sign(&fx, &alice(), 0, s_old, later)),
            Some(ErrorKind::AccessDenied),
            "history {history}: {st:?}"
        );
        // ...while the next step, which ends after it, is still accepted.
        sign(&fx, &alice(), 0, s_old + 1, later).unwrap();
        // For an in-sync fob the edge lies within 2 (P + D) + 2 g of the
        // step's start (here 180 s + 144 ms; P + D + g after a prompt enable).
        let age = later.as_millis() - (s_old + 1) * 30_000;
        assert!(age < 180_144, "history {history}: {age} ms");
        if history == 0 {
            assert!(age <= 90_072, "{age}");
        }
    }
});

// ---- enable needs two CONSECUTIVE codes within ±1000 steps.
both!(enable_needs_two_consecutive_codes, |b| {
    let fx = fx(b, 1);
    let now = at(0);
    let c = step(now);
    let serial = fx.serial(0);
    let e = |c1: String, c2: String| {
        fx.engine
            .enable_mfa_device(now, Channel::Console, &alice(), &serial, &c1, &c2)
    };
    let err = e(fx.code(0, c), fx.code(0, c + 2)).unwrap_err();
    assert_eq!(err.aws_code(), "InvalidAuthenticationCode");
    assert_eq!(err.http_status(), 403);
    assert_eq!(
        kind(e(fx.code(0, c + 1), fx.code(0, c))),
        Some(ErrorKind::InvalidAuthenticationCode)
    );
    assert_eq!(
        kind(e(fx.code(0, c), fx.code(0, c))),
        Some(ErrorKind::InvalidAuthenticationCode)
    );
    assert!(
        fx.engine
            .token_state(&serial)
            .unwrap()
            .assigned_to
            .is_none()
    );
    e(fx.code(0, c), fx.code(0, c + 1)).unwrap();
    assert_eq!(
        fx.engine.token_state(&serial).unwrap().assigned_to,
        Some(alice())
    );
});

both!(sync_window_is_plus_minus_1000_steps, |b| {
    let fx = fx(b, 4);
    let now = at(0);
    let c = step(now);
    // First code exactly 1000 steps behind or ahead: found. The learned
    // offsets are the second code's evidence (10 s into the step).
    enable_steps(&fx, &alice(), 0, c - 1000, now).unwrap();
    assert_eq!(
        fx.engine.token_state(&fx.serial(0)).unwrap().offsets.lo_ms,
        -999 * 30_000 - 10_000
    );
    enable_steps(&fx, &bob(), 1, c + 1000, now).unwrap();
    assert_eq!(
        fx.engine.token_state(&fx.serial(1)).unwrap().offsets.lo_ms,
        1001 * 30_000 - 10_000
    );
    // 1001 steps away: not found.
    fx.engine
        .deactivate_mfa_device(now, &alice(), &fx.serial(0))
        .unwrap();
    fx.engine
        .deactivate_mfa_device(now, &bob(), &fx.serial(1))
        .unwrap();
    assert_eq!(
        kind(enable_steps(&fx, &alice(), 2, c - 1001, now)),
        Some(ErrorKind::InvalidAuthenticationCode)
    );
    assert_eq!(
        kind(enable_steps(&fx, &alice(), 3, c + 1001, now)),
        Some(ErrorKind::InvalidAuthenticationCode)
    );
});

both!(sync_window_is_a_profile_setting, |b| {
    let p = Profile {
        sync_window_steps: 10,
        ..Profile::for_tests()
    };
    let fx = fx_with(b, 1, p);
    let now = at(0);
    let c = step(now);
    assert_eq!(
        kind(enable_steps(&fx, &alice(), 0, c + 11, now)),
        Some(ErrorKind::InvalidAuthenticationCode)
    );
    enable_steps(&fx, &alice(), 0, c + 10, now).unwrap();
});

// ---- the learned offsets follow a clock drifting at the drift bound (20
// ppm: a step every 17 days) with weekly sign-ins for three years, and
// always hold the fob's true offset; a clock that runs away faster than the
// evidence allows is out of sync. (Monthly is too rare at the bound: 20 ppm
// for 30 days is 52 s, the widening stops at one step, 30 s.)
both!(learned_offsets_follow_a_clock_drifting_at_the_bound, |b| {
    let fx = fx(b, 1);
    let t0 = at(0);
    let c0 = step(t0);
    enable_steps(&fx, &alice(), 0, c0 - 1, t0).unwrap();
    // The fob's offset after `ms` of drifting at +20 ppm, and its step.
    let dev_step = |t: fobsim_core::Timestamp| {
        let drift = i64::try_from(t.as_millis() - t0.as_millis()).unwrap() / 50_000;
        (t.as_millis() + u64::try_from(drift).unwrap()) / 30_000
    };
    let mut t = t0;
    for week in 1..=156 {
        t = t.add_millis(7 * 86_400_000);
        sign(&fx, &alice(), 0, dev_step(t), t).unwrap();
        let st = fx.engine.token_state(&fx.serial(0)).unwrap();
        let truth = i64::try_from(t.as_millis() - t0.as_millis()).unwrap() / 50_000;
        assert!(
            st.offsets.lo_ms <= truth && truth < st.offsets.hi_ms,
            "week {week}: {truth} not in {:?}",
            st.offsets
        );
        assert_eq!(st.last_step, Some(dev_step(t)));
    }
    // Three years: the fob is 63 steps ahead and still tracked.
    assert!(dev_step(t) - step(t) >= 63);
    // A jump of four more steps at once is beyond D + the widening.
    let t = t.add_millis(86_400_000);
    assert_eq!(
        kind(sign(&fx, &alice(), 0, dev_step(t) + 4, t)),
        Some(ErrorKind::AccessDenied)
    );
});

// ---- seed "Important": codes generated, request submitted too late → the
// device associates but is out of sync; resync fixes it.
both!(
    late_enable_associates_but_is_out_of_sync_until_resync,
    |b| {
        let mut fx = fx(b, 1);
        let serial = fx.serial(0);
        let t = at(0);
        let (c1, c2, _) = testing::two_codes_at(&mut fx.fobs[0], t);
        let late = t.add_millis(10 * 60_000); // ten minutes later
        fx.engine
            .enable_mfa_device(late, Channel::Console, &alice(), &serial, &c1, &c2)
            .unwrap();
        let st = fx.engine.token_state(&serial).unwrap();
        assert_eq!(st.assigned_to, Some(alice()));
        // Code 2 was shown 10 s into its step, 570 s + 10 s before the
        // enable: the fob's offset is learned as [-580 s, -490 s).
        assert_eq!((st.offsets.lo_ms, st.offsets.hi_ms), (-580_000, -490_000));
        // Sign-ins with what the device shows now fail...
        for k in 0..3 {
            let now = late.add_millis(k * 40_000);
            let code = testing::press(&mut fx.fobs[0], now);
            let err = fx
                .engine
                .verify_session_mfa(now, &alice(), &serial, &code)
                .unwrap_err();
            assert_eq!(err.kind, ErrorKind::AccessDenied);
            assert_eq!(err.aws_code(), "AccessDenied");
        }
        let pw = testing::USER_PASSWORD;
        let now = late.add_millis(200_000);
        let code = testing::press(&mut fx.fobs[0], now);
        assert!(
            fx.engine
                .console_sign_in(now, &alice(), pw, Some(&code))
                .is_err()
        );
        // ...until resync.
        let now = late.add_millis(300_000);
        let (r1, r2, t2) = testing::two_codes_at(&mut fx.fobs[0], now);
        fx.engine
            .resync_mfa_device(t2, &alice(), &serial, &r1, &r2)
            .unwrap();
        let st = fx.engine.token_state(&serial).unwrap();
        assert_eq!((st.offsets.lo_ms, st.offsets.hi_ms), (-10_000, 80_000));
        let now = t2.add_millis(30_000);
        let code = testing::press(&mut fx.fobs[0], now);
        fx.engine
            .console_sign_in(now, &alice(), pw, Some(&code))
            .unwrap();
    }
);

// ---- seed: submitted immediately → in sync at once.
both!(prompt_enable_is_in_sync, |b| {
    let mut fx = fx(b, 1);
    let serial = fx.serial(0);
    let (c1, c2, t2) = testing::two_codes_at(&mut fx.fobs[0], at(0));
    let now = t2.add_millis(5_000);
    fx.engine
        .enable_mfa_device(now, Channel::Console, &alice(), &serial, &c1, &c2)
        .unwrap();
    let now = t2.add_millis(30_000);
    let code = testing::press(&mut fx.fobs[0], now);
    fx.engine
        .console_sign_in(now, &alice(), testing::USER_PASSWORD, Some(&code))
        .unwrap();
});

// ---- replay (RFC 6238 §5.2), also after resync; the step right after
// resync's second code is accepted.
both!(replay_is_rejected, |b| {
    let fx = fx(b, 1);
    let now = at(0);
    enable_now(&fx, &alice(), 0, now);
    let t = at(3);
    let c = step(t);
    sign(&fx, &alice(), 0, c, t).unwrap();
    assert_eq!(
        kind(sign(&fx, &alice(), 0, c, t)),
        Some(ErrorKind::AccessDenied)
    );
    // An older step in the window, after a newer one was accepted.
    assert_eq!(
        kind(sign(&fx, &alice(), 0, c - 1, t)),
        Some(ErrorKind::AccessDenied)
    );
    sign(&fx, &alice(), 0, c + 1, t).unwrap();
    // The enable codes themselves cannot sign in.
    let fx2 = common::fx(b, 1);
    let t0 = at(0);
    enable_now(&fx2, &alice(), 0, t0);
    assert_eq!(
        kind(sign(&fx2, &alice(), 0, step(t0), t0)),
        Some(ErrorKind::AccessDenied)
    );
    sign(&fx2, &alice(), 0, step(t0) + 1, t0).unwrap();
});

both!(replay_after_resync_and_the_next_step_is_accepted, |b| {
    let fx = fx(b, 1);
    let serial = fx.serial(0);
    let now = at(0);
    enable_now(&fx, &alice(), 0, now);
    let t = at(100);
    let c = step(t);
    // Device 7 steps ahead: out of the ±1 window; resync with its codes.
    assert!(sign(&fx, &alice(), 0, c + 7, t).is_err());
    fx.engine
        .resync_mfa_device(t, &alice(), &serial, &fx.code(0, c + 6), &fx.code(0, c + 7))
        .unwrap();
    let st = fx.engine.token_state(&serial).unwrap();
    assert_eq!(
        (st.offsets.lo_ms, st.last_step),
        (7 * 30_000 - 10_000, Some(c + 7))
    );
    // Resync codes cannot be replayed, neither at sign-in nor in a resync.
    assert_eq!(
        kind(sign(&fx, &alice(), 0, c + 7, t)),
        Some(ErrorKind::AccessDenied)
    );
    assert_eq!(
        kind(sign(&fx, &alice(), 0, c + 6, t)),
        Some(ErrorKind::AccessDenied)
    );
    assert_eq!(
        fx.engine
            .resync_mfa_device(t, &alice(), &serial, &fx.code(0, c + 6), &fx.code(0, c + 7))
            .unwrap_err()
            .kind,
        ErrorKind::InvalidAuthenticationCode
    );
    // The very next step IS accepted (privacyIDEA rejects it; we must not).
    sign(&fx, &alice(), 0, c + 8, t).unwrap();
});

both!(replay_barrier_survives_deactivate_and_reenable, |b| {
    let fx = fx(b, 1);
    let now = at(0);
    let c = step(now);
    enable_now(&fx, &alice(), 0, now);
    sign(&fx, &alice(), 0, c + 1, now).unwrap();
    fx.engine
        .deactivate_mfa_device(now, &alice(), &fx.serial(0))
        .unwrap();
    // Re-enabling with already used codes fails; fresh ones work.
    assert_eq!(
        kind(enable_steps(&fx, &bob(), 0, c, now)),
        Some(ErrorKind::InvalidAuthenticationCode)
    );
    enable_steps(&fx, &bob(), 0, c + 2, now).unwrap();
});

// ---- lockout: N consecutive failures lock the device for a period.
both!(lockout_after_n_failures_for_a_period, |b| {
    let p = Profile {
        lockout_threshold: 3,
        lockout_period_ms: 300_000,
        ..Profile::for_tests()
    };
    let fx = fx_with(b, 1, p);
    let serial = fx.serial(0);
    let now = at(0);
    enable_now(&fx, &alice(), 0, now);
    let t = at(10);
    let c = step(t);
    let wrong = fx.code(0, c + 50);
    for n in 1..=2u32 {
        assert!(
            fx.engine
                .verify_session_mfa(t, &alice(), &serial, &wrong)
                .is_err()
        );
        assert_eq!(
            fx.engine.token_state(&serial).unwrap().consecutive_failures,
            n
        );
    }
    // A success resets the count.
    sign(&fx, &alice(), 0, c, t).unwrap();
    assert_eq!(
        fx.engine.token_state(&serial).unwrap().consecutive_failures,
        0
    );
    for _ in 0..3 {
        let e = fx
            .engine
            .verify_session_mfa(t, &alice(), &serial, &wrong)
            .unwrap_err();
        assert_eq!(e.kind, ErrorKind::AccessDenied);
    }
    let st = fx.engine.token_state(&serial).unwrap();
    let until = t.add_millis(300_000);
    assert_eq!(st.locked_until, Some(until));
    // Locked: even the right code is refused, and not counted.
    let t2 = t.add_millis(60_000);
    let e = sign(&fx, &alice(), 0, step(t2), t2).unwrap_err();
    assert_eq!(
        (e.kind, e.aws_code(), e.http_status()),
        (ErrorKind::DeviceLocked, "AccessDenied", 403)
    );
    assert_eq!(
        fx.engine.token_state(&serial).unwrap().consecutive_failures,
        0
    );
    let e = fx
        .engine
        .console_sign_in(
            t2,
            &alice(),
            testing::USER_PASSWORD,
            Some(&fx.code(0, step(t2))),
        )
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::DeviceLocked);
    // After the period, the right code works.
    sign(&fx, &alice(), 0, step(until), until).unwrap();
});

// ---- issue 17 item 7: a replay of the code most recently accepted for
// the device proves possession, not guessing: refused, not counted. A
// different wrong code (an older used one too) still counts; resync unlocks.
both!(replays_of_the_last_accepted_code_do_not_count, |b| {
    let p = Profile {
        lockout_threshold: 2,
        ..Profile::for_tests()
    };
    let fx = fx_with(b, 1, p);
    let serial = fx.serial(0);
    let now = at(0);
    enable_now(&fx, &alice(), 0, now);
    let c = step(now);
    let failures = || {
        let st = fx.engine.token_state(&serial).unwrap();
        (st.consecutive_failures, st.locked_until.is_some())
    };
    // The enable's second code, replayed: refused, not counted.
    for _ in 0..5 {
        assert_eq!(
            kind(sign(&fx, &alice(), 0, c, now)),
            Some(ErrorKind::AccessDenied)
        );
    }
    assert_eq!(failures(), (0, false));
    sign(&fx, &alice(), 0, c + 1, now).unwrap();
    for _ in 0..31 {
        assert!(sign(&fx, &alice(), 0, c + 1, now).is_err());
    }
    assert_eq!(failures(), (0, false));
    // An older accepted code is no longer the last one: it counts.
    assert!(sign(&fx, &alice(), 0, c, now).is_err());
    assert_eq!(failures(), (1, false));
    // A wrong code counts, and locks at the threshold.
    assert!(sign(&fx, &alice(), 0, c + 500, now).is_err());
    assert_eq!(failures(), (0, true));
    // Locked: the replay is refused as locked.
    assert_eq!(
        kind(sign(&fx, &alice(), 0, c + 1, now)),
        Some(ErrorKind::DeviceLocked)
    );
    fx.engine
        .resync_mfa_device(
            now,
            &alice(),
            &serial,
            &fx.code(0, c + 2),
            &fx.code(0, c + 3),
        )
        .unwrap();
    assert_eq!(failures(), (0, false));
    // The resync's second code is now the last accepted: not counted.
    assert!(sign(&fx, &alice(), 0, c + 3, now).is_err());
    assert_eq!(failures(), (0, false));
    sign(&fx, &alice(), 0, c + 4, now).unwrap();
});

// ---- seed: "Each MFA device assigned to a user must be unique; a user
// cannot type a code from another user's device to be authenticated."
both!(a_serial_belongs_to_one_user, |b| {
    let fx = fx(b, 2);
    let now = at(0);
    let c = step(now);
    enable_now(&fx, &alice(), 0, now);
    let e = enable_steps(&fx, &bob(), 0, c + 1, now).unwrap_err();
    assert_eq!(
        (e.kind, e.http_status(), e.message.as_str()),
        (
            ErrorKind::EntityAlreadyExists,
            409,
            "MFA Device is already in use."
        )
    );
    // The same user enabling the same serial again: also in use.
    assert_eq!(
        kind(enable_steps(&fx, &alice(), 0, c + 1, now)),
        Some(ErrorKind::EntityAlreadyExists)
    );
    // Bob cannot authenticate with Alice's device.
    enable_now(&fx, &bob(), 1, now);
    let e = sign(&fx, &bob(), 0, c + 1, now).unwrap_err();
    assert_eq!(e.kind, ErrorKind::AccessDenied);
    // Nor with codes of Alice's device against his own serial.
    let e = fx
        .engine
        .verify_session_mfa(now, &bob(), &fx.serial(1), &fx.code(0, c + 1))
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::AccessDenied);
    // Alice's state was not touched by Bob's attempts.
    assert_eq!(
        fx.engine
            .token_state(&fx.serial(0))
            .unwrap()
            .consecutive_failures,
        0
    );
    sign(&fx, &alice(), 0, c + 1, now).unwrap();
});

// ---- seed: "You can enable one MFA device (of any kind) per root user or
// IAM user." / "You can have only one MFA device assigned to a user at a time."
both!(one_device_per_user, |b| {
    let fx = fx(b, 3);
    let now = at(0);
    enable_now(&fx, &alice(), 0, now);
    let e = enable_steps(&fx, &alice(), 1, step(now) - 1, now).unwrap_err();
    assert_eq!(
        (e.kind, e.aws_code(), e.http_status()),
        (ErrorKind::LimitExceeded, "LimitExceeded", 409)
    );
    enable_now(&fx, &Principal::Root, 1, now);
    let e = enable_steps(&fx, &Principal::Root, 2, step(now) - 1, now).unwrap_err();
    assert_eq!(e.kind, ErrorKind::LimitExceeded);
    assert!(
        fx.engine
            .token_state(&fx.serial(2))
            .unwrap()
            .assigned_to
            .is_none()
    );
});

both!(devices_per_user_is_a_setting, |b| {
    let fx = fx_with(
        b,
        3,
        Profile {
            max_devices_per_user: 2,
            ..Profile::for_tests()
        },
    );
    let now = at(0);
    enable_now(&fx, &alice(), 0, now);
    enable_now(&fx, &alice(), 1, now);
    assert_eq!(
        kind(enable_steps(&fx, &alice(), 2, step(now) - 1, now)),
        Some(ErrorKind::LimitExceeded)
    );
    let list = fx.engine.list_mfa_devices(&alice()).unwrap();
    assert_eq!(list.len(), 2);
});

// ---- seed: "Replace or 'rotate' a physical MFA device": deactivate first,
// then add the new device.
both!(rotate_is_deactivate_then_enable, |b| {
    let fx = fx(b, 2);
    let now = at(0);
    enable_now(&fx, &alice(), 0, now);
    assert_eq!(
        kind(enable_steps(&fx, &alice(), 1, step(now) - 1, now)),
        Some(ErrorKind::LimitExceeded)
    );
    fx.engine
        .deactivate_mfa_device(now, &alice(), &fx.serial(0))
        .unwrap();
    assert!(fx.engine.list_mfa_devices(&alice()).unwrap().is_empty());
    let t = at(2);
    enable_now(&fx, &alice(), 1, t);
    let list = fx.engine.list_mfa_devices(&alice()).unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(
        (
            list[0].serial.clone(),
            list[0].user.clone(),
            list[0].enable_date
        ),
        (fx.serial(1), alice(), t)
    );
    // The old device no longer signs Alice in.
    assert!(sign(&fx, &alice(), 0, step(t) + 1, t).is_err());
    sign(&fx, &alice(), 1, step(t) + 1, t).unwrap();
    // Deactivating again, or someone else's device: NoSuchEntity.
    let e = fx
        .engine
        .deactivate_mfa_device(t, &alice(), &fx.serial(0))
        .unwrap_err();
    assert_eq!((e.kind, e.http_status()), (ErrorKind::NoSuchEntity, 404));
    assert_eq!(
        kind(fx.engine.deactivate_mfa_device(t, &bob(), &fx.serial(1))),
        Some(ErrorKind::NoSuchEntity)
    );
});

// ---- unknown serial / user → NoSuchEntity with the AWS messages.
both!(unknown_serial_and_user_are_no_such_entity, |b| {
    let fx = fx(b, 1);
    let now = at(0);
    let c = step(now);
    let (c1, c2) = (fx.code(0, c - 1), fx.code(0, c));
    let e = fx
        .engine
        .enable_mfa_device(now, Channel::Console, &alice(), "GAHT99999999", &c1, &c2)
        .unwrap_err();
    assert_eq!(
        (e.kind, e.aws_code(), e.http_status()),
        (ErrorKind::NoSuchEntity, "NoSuchEntity", 404)
    );
    assert_eq!(
        e.message,
        "MFA Device with serial number GAHT99999999 does not exist."
    );
    let carol = Principal::user("carol");
    let e = fx
        .engine
        .enable_mfa_device(now, Channel::Console, &carol, &fx.serial(0), &c1, &c2)
        .unwrap_err();
    assert_eq!(e.message, "The user with name carol cannot be found.");
    assert_eq!(e.kind, ErrorKind::NoSuchEntity);
    assert_eq!(
        kind(fx.engine.list_mfa_devices(&carol).map(|_| ())),
        Some(ErrorKind::NoSuchEntity)
    );
    assert_eq!(
        kind(fx.engine.get_user(&carol).map(|_| ())),
        Some(ErrorKind::NoSuchEntity)
    );
    assert_eq!(
        kind(
            fx.engine
                .resync_mfa_device(now, &alice(), &fx.serial(0), &c1, &c2)
        ),
        Some(ErrorKind::NoSuchEntity)
    );
    assert_eq!(
        kind(fx.engine.deactivate_mfa_device(now, &carol, &fx.serial(0))),
        Some(ErrorKind::NoSuchEntity)
    );
    // The session check answers AccessDenied (as STS does) for a serial not
    // associated with the caller.
    let e = fx
        .engine
        .verify_session_mfa(now, &alice(), "GAHT99999999", &c1)
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::AccessDenied);
});

// ---- codes that are not exactly `digits` ASCII digits: ValidationError,
// state unchanged.
both!(
    malformed_codes_are_validation_errors_and_change_nothing,
    |b| {
        let fx = fx(b, 2);
        let serial = fx.serial(0);
        let now = at(0);
        let c = step(now);
        let good = fx.code(0, c);
        for bad in [
            "1234567", "12345", "12a456", " 23456", "12345 ", "+23456", "", "１23456", "12345678",
        ] {
            let e = fx
                .engine
                .enable_mfa_device(now, Channel::Console, &alice(), &serial, bad, &good)
                .unwrap_err();
            assert_eq!(
                (e.kind, e.http_status()),
                (ErrorKind::ValidationError, 400),
                "{bad:?}"
            );
            let e = fx
                .engine
                .enable_mfa_device(now, Channel::Console, &alice(), &serial, &good, bad)
                .unwrap_err();
            assert_eq!(e.kind, ErrorKind::ValidationError, "{bad:?}");
        }
        let e = fx
            .engine
            .enable_mfa_device(now, Channel::Console, &alice(), &serial, "1234567", &good)
            .unwrap_err();
        assert!(e.message.contains("exactly 6"), "{}", e.message);
        assert!(
            fx.engine
                .token_state(&serial)
                .unwrap()
                .assigned_to
                .is_none()
        );
        enable_now(&fx, &alice(), 0, now);
        let before = fx.engine.token_state(&serial).unwrap();
        for bad in ["1234567", "abcdef", "12 456", "0x1234"] {
            let e = fx
                .engine
                .verify_session_mfa(now, &alice(), &serial, bad)
                .unwrap_err();
            assert_eq!(e.kind, ErrorKind::ValidationError);
            let e = fx
                .engine
                .console_sign_in(now, &alice(), testing::USER_PASSWORD, Some(bad))
                .unwrap_err();
            assert_eq!(e.kind, ErrorKind::ValidationError);
            let e = fx
                .engine
                .resync_mfa_device(now, &alice(), &serial, bad, &good)
                .unwrap_err();
            assert_eq!(e.kind, ErrorKind::ValidationError);
        }
        assert_eq!(fx.engine.token_state(&serial).unwrap(), before);
        // A malformed serial.
        let e = fx
            .engine
            .enable_mfa_device(now, Channel::Console, &bob(), "GAHT 1234", &good, &good)
            .unwrap_err();
        assert_eq!(e.kind, ErrorKind::ValidationError);
    }
);

// ---- bad codes → InvalidAuthenticationCode at enable and resync.
both!(wrong_codes_are_invalid_authentication_code, |b| {
    let fx = fx(b, 2);
    let now = at(0);
    let c = step(now);
    // Codes of another device.
    let e = fx
        .engine
        .enable_mfa_device(
            now,
            Channel::Console,
            &alice(),
            &fx.serial(0),
            &fx.code(1, c),
            &fx.code(1, c + 1),
        )
        .unwrap_err();
    assert_eq!(
        (e.aws_code(), e.http_status(), e.message.as_str()),
        (
            "InvalidAuthenticationCode",
            403,
            "Authentication code for device is not valid."
        )
    );
    enable_now(&fx, &alice(), 0, now);
    let e = fx
        .engine
        .resync_mfa_device(
            now,
            &alice(),
            &fx.serial(0),
            &fx.code(1, c + 5),
            &fx.code(1, c + 6),
        )
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::InvalidAuthenticationCode);
});

// ---- root: "from the AWS Management Console only, not from the AWS CLI or
// AWS API"; "The next time you use your root user credentials to sign in,
// you must type a code from the MFA device."
both!(root_enables_hardware_mfa_from_the_console_only, |b| {
    let fx = fx(b, 1);
    let root = Principal::Root;
    let now = at(0);
    let c = step(now);
    let e = fx
        .engine
        .enable_mfa_device(
            now,
            Channel::Api,
            &root,
            &fx.serial(0),
            &fx.code(0, c - 1),
            &fx.code(0, c),
        )
        .unwrap_err();
    assert_eq!(
        (e.kind, e.aws_code(), e.http_status()),
        (ErrorKind::RootConsoleOnly, "AccessDenied", 403)
    );
    assert!(
        fx.engine
            .token_state(&fx.serial(0))
            .unwrap()
            .assigned_to
            .is_none()
    );
    // Root signs in with a password only before MFA...
    fx.engine
        .console_sign_in(now, &root, testing::ROOT_PASSWORD, None)
        .unwrap();
    fx.engine
        .enable_mfa_device(
            now,
            Channel::Console,
            &root,
            &fx.serial(0),
            &fx.code(0, c - 1),
            &fx.code(0, c),
        )
        .unwrap();
    // ...and must type a code afterwards.
    let t = at(2);
    let e = fx
        .engine
        .console_sign_in(t, &root, testing::ROOT_PASSWORD, None)
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::AccessDenied);
    fx.engine
        .console_sign_in(t, &root, testing::ROOT_PASSWORD, Some(&fx.code(0, step(t))))
        .unwrap();
    let list = fx.engine.list_mfa_devices(&root).unwrap();
    assert_eq!(list[0].user, Principal::Root);
    // IAM users may use the API channel.
    enable_steps(&fx, &alice(), 0, c, now).unwrap_err(); // in use by root
    let fx2 = common::fx(b, 1);
    fx2.engine
        .enable_mfa_device(
            now,
            Channel::Api,
            &alice(),
            &fx2.serial(0),
            &fx2.code(0, c - 1),
            &fx2.code(0, c),
        )
        .unwrap();
});

both!(root_api_enable_is_a_setting, |b| {
    let fx = fx_with(
        b,
        1,
        Profile {
            root_api_enable: true,
            ..Profile::for_tests()
        },
    );
    let now = at(0);
    let c = step(now);
    fx.engine
        .enable_mfa_device(
            now,
            Channel::Api,
            &Principal::Root,
            &fx.serial(0),
            &fx.code(0, c - 1),
            &fx.code(0, c),
        )
        .unwrap();
});

// ---- seed: "If your MFA device is lost, stolen, or not working, you can
// still sign in using alternative factors ... the email and phone that are
// registered with your account." → one sign-in without MFA → replace.
both!(root_lost_device_recovery_by_email_and_phone, |b| {
    let fx = fx(b, 2);
    let root = Principal::Root;
    let pw = testing::ROOT_PASSWORD;
    let now = at(0);
    enable_now(&fx, &root, 0, now);
    assert!(fx.engine.console_sign_in(now, &root, pw, None).is_err());
    // Nothing pending yet.
    assert_eq!(
        kind(fx.engine.complete_root_recovery(now, "000000", "000000")),
        Some(ErrorKind::RecoveryFailed)
    );
    fx.engine.start_root_recovery(now).unwrap();
    let out = fx.engine.outbox();
    assert_eq!(out.len(), 2);
    assert_eq!(
        (out[0].channel, out[0].to.as_str()),
        (OutboxChannel::Email, testing::ROOT_EMAIL)
    );
    assert_eq!(
        (out[1].channel, out[1].to.as_str()),
        (OutboxChannel::Phone, testing::ROOT_PHONE)
    );
    assert!(out.iter().all(|m| m.at == now && m.code.len() == 6));
    // Wrong codes cancel the attempt.
    let e = fx
        .engine
        .complete_root_recovery(now, &out[0].code, "999999x")
        .unwrap_err();
    assert_eq!(
        (e.kind, e.aws_code()),
        (ErrorKind::RecoveryFailed, "AccessDenied")
    );
    assert!(
        fx.engine
            .complete_root_recovery(now, &out[0].code, &out[1].code)
            .is_err()
    );
    // Expired codes fail.
    fx.engine.start_root_recovery(now).unwrap();
    let out = fx.engine.outbox();
    let (ec, pc) = (out[2].code.clone(), out[3].code.clone());
    assert!(
        fx.engine
            .complete_root_recovery(now.add_millis(11 * 60_000), &ec, &pc)
            .is_err()
    );
    // A fresh attempt succeeds: one sign-in without MFA.
    fx.engine.start_root_recovery(now).unwrap();
    let out = fx.engine.outbox();
    let (ec, pc) = (out[4].code.clone(), out[5].code.clone());
    fx.engine.complete_root_recovery(now, &ec, &pc).unwrap();
    assert!(
        fx.engine
            .console_sign_in(now, &root, "wrong password", None)
            .is_err()
    );
    fx.engine.console_sign_in(now, &root, pw, None).unwrap();
    assert!(fx.engine.console_sign_in(now, &root, pw, None).is_err());
    // Then deactivate and replace the device.
    fx.engine
        .deactivate_mfa_device(now, &root, &fx.serial(0))
        .unwrap();
    let t = at(3);
    enable_now(&fx, &root, 1, t);
    assert_eq!(
        fx.engine.list_mfa_devices(&root).unwrap()[0].serial,
        fx.serial(1)
    );
    fx.engine
        .console_sign_in(t, &root, pw, Some(&fx.code(1, step(t) + 1)))
        .unwrap();
});

both!(recovery_grant_expires, |b| {
    let fx = fx(b, 1);
    let root = Principal::Root;
    let now = at(0);
    enable_now(&fx, &root, 0, now);
    fx.engine.start_root_recovery(now).unwrap();
    let out = fx.engine.outbox();
    fx.engine
        .complete_root_recovery(now, &out[0].code, &out[1].code)
        .unwrap();
    let late = now.add_millis(16 * 60_000);
    assert!(
        fx.engine
            .console_sign_in(late, &root, testing::ROOT_PASSWORD, None)
            .is_err()
    );
});

// ---- console sign-in: "Use your AWS account ID or account alias, your IAM
// user name, and your password to sign in" + MFA when a device is assigned.
both!(console_sign_in_password_then_code, |b| {
    let fx = fx(b, 1);
    let now = at(0);
    let pw = testing::USER_PASSWORD;
    fx.engine.console_sign_in(now, &alice(), pw, None).unwrap();
    let e = fx
        .engine
        .console_sign_in(now, &alice(), "nope", None)
        .unwrap_err();
    assert_eq!((e.kind, e.http_status()), (ErrorKind::AccessDenied, 403));
    assert!(
        fx.engine
            .console_sign_in(now, &Principal::user("carol"), pw, None)
            .is_err()
    );
    enable_now(&fx, &alice(), 0, now);
    assert!(fx.engine.console_sign_in(now, &alice(), pw, None).is_err());
    let code = fx.code(0, step(now) + 1);
    // A wrong password does not consume the code.
    assert!(
        fx.engine
            .console_sign_in(now, &alice(), "nope", Some(&code))
            .is_err()
    );
    fx.engine
        .console_sign_in(now, &alice(), pw, Some(&code))
        .unwrap();
    assert!(
        fx.engine
            .console_sign_in(now, &alice(), pw, Some(&code))
            .is_err()
    );
});

// ---- GetUser / ListMFADevices.
both!(get_user_and_list_devices, |b| {
    let fx = fx(b, 1);
    let now = at(0);
    let u = fx.engine.get_user(&alice()).unwrap();
    assert_eq!(u.arn, "arn:aws:iam::123456789012:user/alice");
    assert!(u.user_id.starts_with("AIDA"));
    assert!(u.mfa_serials.is_empty());
    let r = fx.engine.get_user(&Principal::Root).unwrap();
    assert_eq!(r.arn, "arn:aws:iam::123456789012:root");
    enable_now(&fx, &alice(), 0, now);
    assert_eq!(
        fx.engine.get_user(&alice()).unwrap().mfa_serials,
        vec![fx.serial(0)]
    );
    let l = fx.engine.list_mfa_devices(&alice()).unwrap();
    assert_eq!(l.len(), 1);
    assert_eq!(l[0].enable_date, now);
    assert!(fx.engine.list_mfa_devices(&bob()).unwrap().is_empty());
});

// ---- accounts and users.
both!(account_and_user_validation, |b| {
    let fx = fx(b, 0);
    let e = fx.engine.create_user("alice", "x").unwrap_err();
    assert_eq!(
        (e.kind, e.message.as_str()),
        (
            ErrorKind::EntityAlreadyExists,
            "User with name alice already exists."
        )
    );
    assert_eq!(
        kind(fx.engine.create_user("bad name", "x")),
        Some(ErrorKind::ValidationError)
    );
    assert_eq!(
        kind(fx.engine.create_user("#root", "x")),
        Some(ErrorKind::ValidationError)
    );
    assert_eq!(
        kind(fx.engine.create_user("carol", "")),
        Some(ErrorKind::ValidationError)
    );
    assert_eq!(
        kind(
            fx.engine
                .create_account("123456789012", "other", "a@b.co", "+1 555 0101", "pw")
        ),
        Some(ErrorKind::EntityAlreadyExists)
    );
    let fresh = fobsim_engine::Engine::in_memory(Profile::for_tests());
    assert_eq!(
        kind(fresh.create_user("carol", "pw")),
        Some(ErrorKind::NoSuchEntity)
    );
    for (id, alias, email, phone) in [
        ("12345678901", "ok-alias", "a@b.co", "+1 555 0100"),
        ("12345678901a", "ok-alias", "a@b.co", "+1 555 0100"),
        ("123456789012", "-bad", "a@b.co", "+1 555 0100"),
        ("123456789012", "Upper", "a@b.co", "+1 555 0100"),
        ("123456789012", "ok-alias", "no-at-sign", "+1 555 0100"),
        ("123456789012", "ok-alias", "a@b.co", "call me"),
    ] {
        assert_eq!(
            kind(fresh.create_account(id, alias, email, phone, "pw")),
            Some(ErrorKind::ValidationError),
            "{id} {alias} {email} {phone}"
        );
    }
    fresh
        .create_account("123456789012", "ok-alias", "a@b.co", "+1 555 0100", "pw")
        .unwrap();
});

// ---- seed files: malformed, duplicate serial, HOTP → clear errors, state
// unchanged; PSKC and CSV import.
both!(seed_import_errors_change_nothing, |b| {
    let fx = fx(b, 0);
    let now = at(0);
    let fobs: Vec<_> = (10..13).map(|i| testing::gaht_fob(i, now)).collect();
    let recs: Vec<_> = fobs.iter().map(testing::TestToken::seed_record).collect();
    // Duplicate serial within the input.
    let dup = vec![recs[0].clone(), recs[1].clone(), recs[0].clone()];
    let e = fx.engine.import_seeds(&dup).unwrap_err();
    assert_eq!(e.kind, ErrorKind::ValidationError);
    assert!(e.message.contains(recs[0].serial.as_str()), "{}", e.message);
    assert!(fx.engine.token_state(recs[1].serial.as_str()).is_none());
    // HOTP token.
    let hotp = fobsim_firmware::FobSpec::seeded(
        fobsim_firmware::preset("c100").unwrap(),
        fobsim_firmware::preset("c100").unwrap().serial(1).unwrap(),
        1,
        now,
    )
    .unwrap();
    let hrec = fobsim_firmware::Fob::new(hotp).unwrap().seed_record();
    let e = fx
        .engine
        .import_seeds(&[recs[2].clone(), hrec])
        .unwrap_err();
    assert!(e.message.contains("HOTP"), "{}", e.message);
    assert!(fx.engine.token_state(recs[2].serial.as_str()).is_none());
    // Duplicate against the registry: nothing of the batch lands.
    assert_eq!(fx.engine.import_seeds(&recs[..1]).unwrap(), 1);
    let e = fx
        .engine
        .import_seeds(&[recs[1].clone(), recs[0].clone()])
        .unwrap_err();
    assert_eq!(
        (e.kind, e.http_status()),
        (ErrorKind::EntityAlreadyExists, 409)
    );
    assert!(fx.engine.token_state(recs[1].serial.as_str()).is_none());
    // Malformed files.
    for bad in [
        "GAHT00000001,zz,TOTP,6,30\n",
        "GAHT00000001,3132,TOTP,9,30\n",
        "<?xml version=\"1.0\"?><KeyContainer",
        "GAHT00000020,3132333435363738393031323334353637383930,TOTP,6,30\nGAHT00000020,3132333435363738393031323334353637383930,TOTP,6,30\n",
    ] {
        let e = fx.engine.import_seed_file(bad).unwrap_err();
        assert_eq!(e.kind, ErrorKind::ValidationError, "{bad}");
        assert!(e.message.contains("seed file"), "{}", e.message);
    }
    assert!(fx.engine.token_state("GAHT00000020").is_none());
    // A good CSV and a good PSKC file.
    let csv = fobsim_core::seedfile::write_csv(&recs[1..2]);
    assert_eq!(fx.engine.import_seed_file(&csv).unwrap(), 1);
    let pskc = fobsim_core::seedfile::write_pskc(&recs[2..3]);
    assert_eq!(fx.engine.import_seed_file(&pskc).unwrap(), 1);
    // The imported seed verifies real fob codes.
    let mut fob = fobs[2].clone();
    let (c1, c2, t2) = testing::two_codes_at(&mut fob, now);
    fx.engine
        .enable_mfa_device(
            t2,
            Channel::Console,
            &alice(),
            recs[2].serial.as_str(),
            &c1,
            &c2,
        )
        .unwrap();
});

// ---- errors: AWS code and status table.
#[test]
fn error_kinds_map_to_aws_codes_and_statuses() {
    let table = [
        (
            ErrorKind::InvalidAuthenticationCode,
            "InvalidAuthenticationCode",
            403,
        ),
        (ErrorKind::EntityAlreadyExists, "EntityAlreadyExists", 409),
        (ErrorKind::LimitExceeded, "LimitExceeded", 409),
        (ErrorKind::NoSuchEntity, "NoSuchEntity", 404),
        (ErrorKind::AccessDenied, "AccessDenied", 403),
        (ErrorKind::DeviceLocked, "AccessDenied", 403),
        (ErrorKind::RootConsoleOnly, "AccessDenied", 403),
        (ErrorKind::RecoveryFailed, "AccessDenied", 403),
        (ErrorKind::ValidationError, "ValidationError", 400),
        (ErrorKind::ServiceFailure, "ServiceFailure", 500),
    ];
    for (k, code, status) in table {
        let e = EngineError::new(k, "m");
        assert_eq!((e.aws_code(), e.http_status()), (code, status));
        assert_eq!(e.to_string(), format!("{code}: m"));
    }
}

// ---- the fob's real display, with a drifting clock, end to end.
both!(real_fob_with_drift_enable_sign_in_resync, |b| {
    let mut fx = fx(b, 1);
    let serial = fx.serial(0);
    let t = at(0);
    let (c1, c2, t2) = testing::two_codes_at(&mut fx.fobs[0], t);
    fx.engine
        .enable_mfa_device(t2, Channel::Console, &alice(), &serial, &c1, &c2)
        .unwrap();
    // +20 ppm: ~10.5 minutes a year. Sign in daily for a year.
    let mut fob = common::real_fob(0);
    fob.set_ppm(t2, 20.0).unwrap();
    let mut now = t2;
    for _ in 0..365 {
        now = now.add_millis(86_400_000);
        let code = fob.press(now).code().unwrap().to_string();
        fx.engine
            .verify_session_mfa(now, &alice(), &serial, &code)
            .unwrap();
    }
    // The fob is about 630 s (21 steps) ahead: the learned offsets hold it.
    let st = fx.engine.token_state(&serial).unwrap();
    let truth = fob.device_ms(now).unwrap() - i64::try_from(now.as_millis()).unwrap();
    assert!(
        st.offsets.lo_ms <= truth && truth < st.offsets.hi_ms,
        "{truth} not in {:?}",
        st.offsets
    );
    assert!((600_000..660_000).contains(&truth), "{truth}");
    // A year without signing in: too far for the widened offsets (by at
    // most one step); resync brings it back.
    now = now.add_millis(365 * 86_400_000);
    let code = testing::press(&mut fx.fobs[0], now);
    assert!(
        fx.engine
            .verify_session_mfa(now, &alice(), &serial, &code)
            .is_err()
    );
    let (r1, r2, t2) = testing::two_codes_at(&mut fx.fobs[0], now.add_millis(60_000));
    fx.engine
        .resync_mfa_device(t2, &alice(), &serial, &r1, &r2)
        .unwrap();
    let code = testing::press(&mut fx.fobs[0], t2.add_millis(30_000));
    fx.engine
        .verify_session_mfa(t2.add_millis(30_000), &alice(), &serial, &code)
        .unwrap();
});

// ---- seed: "a six-digit numeric code" is the AWS fob; the digits and the
// step come from the token's seed record (8-digit SHA-256, 60 s fobs too).
both!(eight_digit_and_sixty_second_tokens, |b| {
    let fx = fx(b, 0);
    let now = at(0);
    let mk = |model: &str, i: u64| {
        let m = fobsim_firmware::preset(model).unwrap();
        let fob = fobsim_firmware::Fob::new(
            fobsim_firmware::FobSpec::seeded(m, m.serial(i).unwrap(), 7, now).unwrap(),
        )
        .unwrap();
        testing::TestToken::from_record(fob.seed_record()).unwrap()
    };
    let mut d8 = mk("d8", 1);
    let mut c200 = mk("c200", 2);
    testing::import(&fx.engine, &[d8.clone(), c200.clone()]).unwrap();
    let (a1, a2, t) = testing::two_codes_at(&mut d8, now);
    assert_eq!(a1.len(), 8);
    // Six digits for an 8-digit token: a validation error naming the count.
    let e = fx
        .engine
        .enable_mfa_device(
            t,
            Channel::Console,
            &alice(),
            d8.serial().as_str(),
            &a1[..6],
            &a2[..6],
        )
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::ValidationError);
    assert!(e.message.contains("exactly 8"), "{}", e.message);
    fx.engine
        .enable_mfa_device(
            t,
            Channel::Console,
            &alice(),
            d8.serial().as_str(),
            &a1,
            &a2,
        )
        .unwrap();
    let (b1, b2, t) = testing::two_codes_at(&mut c200, now);
    fx.engine
        .enable_mfa_device(
            t,
            Channel::Console,
            &bob(),
            c200.serial().as_str(),
            &b1,
            &b2,
        )
        .unwrap();
    let st = fx.engine.token_state(c200.serial().as_str()).unwrap();
    assert_eq!((st.period, st.digits), (60, 6));
    // In sync: 0 is a consistent offset; the interval is one 60 s step
    // plus the submit delay wide.
    assert!(st.offsets.lo_ms <= 0 && 0 < st.offsets.hi_ms, "{st:?}");
    assert_eq!(st.offsets.hi_ms - st.offsets.lo_ms, 120_000);
    let later = t.add_millis(3_600_000);
    let code = testing::press(&mut c200, later);
    fx.engine
        .verify_session_mfa(later, &bob(), c200.serial().as_str(), &code)
        .unwrap();
    let code = testing::press(&mut d8, later);
    fx.engine
        .console_sign_in(later, &alice(), testing::USER_PASSWORD, Some(&code))
        .unwrap();
});

#[test]
fn engine_is_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<fobsim_engine::Engine>();
    check::<fobsim_engine::SqliteStore>();
    check::<fobsim_engine::MemoryStore>();
}

#[test]
fn debug_output_never_shows_secrets() {
    let (engine, fobs) = testing::in_memory_with_fobs(1, testing::T0);
    let dbg = format!("{engine:?} {:?}", fobs[0].seed_record());
    let r = fobs[0].seed_record();
    assert!(!dbg.contains(&r.secret.to_hex()));
    assert!(!dbg.contains(testing::ROOT_PASSWORD));
}

// ---- a failing store: ServiceFailure (500), nothing half-applied.
#[test]
fn store_failures_are_service_failures_and_change_nothing() {
    use std::sync::Arc;
    let store = Arc::new(testing::FailingStore::new(fobsim_engine::MemoryStore::new()));
    let engine = fobsim_engine::Engine::new(Profile::for_tests(), Arc::clone(&store));
    testing::create_account(&engine).unwrap();
    let fob = testing::gaht_fob(0, testing::T0);
    testing::import(&engine, std::slice::from_ref(&fob)).unwrap();
    let r = fob.seed_record();
    let t = fobsim_core::Totp::new(r.algorithm, r.secret.expose(), 6, 30, 0).unwrap();
    let code = |s: u64| t.code_for_step(s).to_string();
    let now = at(0);
    let c = step(now);
    let serial = fob.serial().as_str();
    store.fail_writes(true);
    let e = engine
        .enable_mfa_device(
            now,
            Channel::Console,
            &alice(),
            serial,
            &code(c - 1),
            &code(c),
        )
        .unwrap_err();
    assert_eq!(
        (e.kind, e.aws_code(), e.http_status()),
        (ErrorKind::ServiceFailure, "ServiceFailure", 500)
    );
    assert!(engine.token_state(serial).unwrap().assigned_to.is_none());
    assert_eq!(
        engine.create_user("carol", "pw").unwrap_err().kind,
        ErrorKind::ServiceFailure
    );
    store.fail_writes(false);
    engine
        .enable_mfa_device(
            now,
            Channel::Console,
            &alice(),
            serial,
            &code(c - 1),
            &code(c),
        )
        .unwrap();
    store.fail_writes(true);
    let e = engine
        .verify_session_mfa(now, &alice(), serial, &code(c + 1))
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::ServiceFailure);
    let st = engine.token_state(serial).unwrap();
    assert_eq!((st.last_step, st.consecutive_failures), (Some(c), 0));
    store.fail_writes(false);
    engine
        .verify_session_mfa(now, &alice(), serial, &code(c + 1))
        .unwrap();
}

#[test]
fn test_tokens_show_the_codes_of_the_real_fobs_they_stand_for() {
    for i in [0u64, 1, 7, 99] {
        let token = testing::gaht_fob(i, testing::T0);
        let mut fob = common::real_fob(i);
        assert_eq!(token.seed_record(), fob.seed_record());
        for k in 0..200i64 {
            let now = testing::T0.add_millis(k * 7_499);
            assert_eq!(
                token.code_at(now),
                fob.press(now).code().unwrap().to_string()
            );
        }
        let (c1, c2, t2) = testing::two_codes_at(&mut token.clone(), at(0));
        assert_eq!(t2, at(1));
        assert_eq!((c1, c2), (token.code_at(at(0)), token.code_at(at(1))));
    }
}

// ---- the server's clock stepping back (a bad NTP source, issue 16 §1):
// the clock jumps 10 years ahead, the fob is set from the same source, a
// code is accepted there; then both are corrected. The replay barrier is
// left 10 years ahead. A resync (or a deactivate + re-enable) heals it —
// the used run of steps is quarantined, never accepted again — and the
// codes used before the jump stay refused too.
const TEN_YEARS: i64 = 3_652 * 86_400_000;

/// Enable, sign in once on time, then 10 years ahead twice (the fob set
/// from the same bad clock), then back: returns (step of the on-time
/// sign-in, first step used ahead, true time after the correction).
fn jump_ahead_and_back(fx: &Fx) -> (u64, u64, fobsim_core::Timestamp) {
    let t0 = at(0);
    enable_now(fx, &alice(), 0, t0);
    let t1 = at(10);
    sign(fx, &alice(), 0, step(t1), t1).unwrap();
    let bad = t1.add_millis(TEN_YEARS);
    sign(fx, &alice(), 0, step(bad), bad).unwrap();
    let bad2 = bad.add_millis(30_000);
    sign(fx, &alice(), 0, step(bad2), bad2).unwrap();
    let st = fx.engine.token_state(&fx.serial(0)).unwrap();
    assert_eq!(
        (st.last_step, st.run_start, st.run_base),
        (Some(step(bad) + 1), Some(step(bad)), Some(step(t1)))
    );
    // Corrected: an hour after t1 in true time.
    let t2 = t1.add_millis(3_600_000);
    // Every code of the fob is at or below the barrier now.
    assert_eq!(
        kind(sign(fx, &alice(), 0, step(t2), t2)),
        Some(ErrorKind::AccessDenied)
    );
    (step(t1), step(bad), t2)
}

both!(
    a_barrier_left_ahead_by_the_server_clock_is_healed_by_resync,
    |b| {
        let fx = fx(b, 1);
        let serial = fx.serial(0);
        let (used, ahead, t2) = jump_ahead_and_back(&fx);
        let c = step(t2);
        // A heal never takes codes used before the jump (the enable's, the
        // on-time sign-in's), though they lie within the sync window.
        assert_eq!(
            fx.engine
                .resync_mfa_device(
                    t2,
                    &alice(),
                    &serial,
                    &fx.code(0, used - 1),
                    &fx.code(0, used)
                )
                .unwrap_err()
                .kind,
            ErrorKind::InvalidAuthenticationCode
        );
        fx.engine
            .resync_mfa_device(t2, &alice(), &serial, &fx.code(0, c - 1), &fx.code(0, c))
            .unwrap();
        let st = fx.engine.token_state(&serial).unwrap();
        assert_eq!(
            (st.last_step, st.run_start, st.run_base),
            (Some(c), Some(c - 1), Some(used))
        );
        assert_eq!(
            st.quarantine,
            Some(fobsim_engine::store::StepRange {
                first: ahead,
                last: ahead + 1
            })
        );
        assert_eq!((st.consecutive_failures, st.locked_until), (0, None));
        // The resync codes are used now; the next step signs in.
        assert!(sign(&fx, &alice(), 0, c, t2).is_err());
        let t3 = t2.add_millis(30_000);
        sign(&fx, &alice(), 0, c + 1, t3).unwrap();
        // Ten years on (true time), a resync brings the drawer-aged token back
        // just before the quarantined steps; they are refused when the fob
        // shows them again, their neighbours are accepted.
        let q = fobsim_core::Timestamp::from_millis(ahead * 30_000);
        let before = q.add_millis(-60_000);
        fx.engine
            .resync_mfa_device(
                before,
                &alice(),
                &serial,
                &fx.code(0, ahead - 3),
                &fx.code(0, ahead - 2),
            )
            .unwrap();
        let at_q = |k: i64| q.add_millis(k * 30_000 + 1_000);
        sign(&fx, &alice(), 0, ahead - 1, at_q(-1)).unwrap();
        assert_eq!(
            kind(sign(&fx, &alice(), 0, ahead, at_q(0))),
            Some(ErrorKind::AccessDenied)
        );
        assert_eq!(
            kind(sign(&fx, &alice(), 0, ahead + 1, at_q(1))),
            Some(ErrorKind::AccessDenied)
        );
        sign(&fx, &alice(), 0, ahead + 2, at_q(2)).unwrap();
        let st = fx.engine.token_state(&serial).unwrap();
        assert_eq!((st.last_step, st.quarantine), (Some(ahead + 2), None));
    }
);

both!(deactivate_and_re_enable_heal_a_barrier_left_ahead, |b| {
    let fx = fx(b, 1);
    let serial = fx.serial(0);
    let (used, ahead, t2) = jump_ahead_and_back(&fx);
    let c = step(t2);
    fx.engine
        .deactivate_mfa_device(t2, &alice(), &serial)
        .unwrap();
    // Not with used codes...
    assert_eq!(
        kind(enable_steps(&fx, &bob(), 0, used - 1, t2)),
        Some(ErrorKind::InvalidAuthenticationCode)
    );
    // ...with fresh ones, for anyone.
    enable_steps(&fx, &bob(), 0, c - 1, t2).unwrap();
    let st = fx.engine.token_state(&serial).unwrap();
    assert_eq!(st.assigned_to, Some(bob()));
    assert_eq!(st.last_step, Some(c));
    assert_eq!(
        st.quarantine.map(|q| (q.first, q.last)),
        Some((ahead, ahead + 1))
    );
    sign(&fx, &bob(), 0, c + 1, t2.add_millis(30_000)).unwrap();
});

// A server clock that stepped back by less than the sync window (here 2 h)
// leaves the barrier ahead within reach: no heal (the run is not
// quarantined); resync works once the fob's codes pass the barrier again.
both!(a_barrier_ahead_within_the_sync_window_is_waited_out, |b| {
    let fx = fx(b, 1);
    let serial = fx.serial(0);
    let t0 = at(0);
    enable_now(&fx, &alice(), 0, t0);
    let ahead = at(10).add_millis(2 * 3_600_000);
    sign(&fx, &alice(), 0, step(ahead), ahead).unwrap();
    let t2 = at(20);
    let c = step(t2);
    assert_eq!(
        fx.engine
            .resync_mfa_device(t2, &alice(), &serial, &fx.code(0, c - 1), &fx.code(0, c))
            .unwrap_err()
            .kind,
        ErrorKind::InvalidAuthenticationCode
    );
    let t3 = ahead.add_millis(60_000);
    let c = step(t3);
    fx.engine
        .resync_mfa_device(t3, &alice(), &serial, &fx.code(0, c - 1), &fx.code(0, c))
        .unwrap();
    assert_eq!(fx.engine.token_state(&serial).unwrap().quarantine, None);
});
