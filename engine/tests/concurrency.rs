//! Concurrency: 32 threads submit the same valid code at once → exactly one
//! success, and the 31 replays of the code just accepted are refused
//! without counting toward lockout (issue 17 item 7); 32 concurrent wrong
//! codes → every failure counted (no lost update); 32 concurrent enables of
//! different tokens for one user → exactly one device. Every store, many
//! rounds.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test stops loudly

mod common;

use std::sync::Barrier;

use common::{StoreKind, at, fx_with, step};
use fobsim_core::{Channel, Principal};
use fobsim_engine::{ErrorKind, Profile};

const THREADS: usize = 32;

both!(same_code_from_32_threads_succeeds_once, |b| {
    // The default lockout (5 failures): 31 replays must not reach it.
    let fx = fx_with(b, 1, Profile::for_tests());
    let alice = Principal::user("alice");
    let serial = fx.serial(0);
    let t0 = at(0);
    let c = step(t0);
    fx.engine
        .enable_mfa_device(
            t0,
            Channel::Console,
            &alice,
            &serial,
            &fx.code(0, c - 1),
            &fx.code(0, c),
        )
        .unwrap();
    let rounds = if b == StoreKind::Memory { 200 } else { 60 };
    for round in 1..=rounds {
        let now = at(round);
        let code = fx.code(0, step(now));
        let barrier = Barrier::new(THREADS);
        let results: Vec<_> = std::thread::scope(|s| {
            let hs: Vec<_> = (0..THREADS)
                .map(|_| {
                    s.spawn(|| {
                        barrier.wait();
                        fx.engine.verify_session_mfa(now, &alice, &serial, &code)
                    })
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let ok = results.iter().filter(|r| r.is_ok()).count();
        assert_eq!(ok, 1, "round {round}: {ok} successes");
        assert!(
            results
                .iter()
                .filter_map(|r| r.as_ref().err())
                .all(|e| e.kind == ErrorKind::AccessDenied)
        );
        let st = fx.engine.token_state(&serial).unwrap();
        assert_eq!(st.last_step, Some(step(now)));
        // The 31 losers replayed the code just accepted: not counted.
        assert_eq!(
            (st.consecutive_failures, st.locked_until),
            (0, None),
            "round {round}"
        );
    }
});

both!(concurrent_wrong_codes_are_all_counted, |b| {
    // Lockout off, so every round starts clean and counts are exact.
    let p = Profile {
        lockout_threshold: 0,
        ..Profile::for_tests()
    };
    let fx = fx_with(b, 1, p);
    let alice = Principal::user("alice");
    let serial = fx.serial(0);
    let t0 = at(0);
    let c = step(t0);
    fx.engine
        .enable_mfa_device(
            t0,
            Channel::Console,
            &alice,
            &serial,
            &fx.code(0, c - 1),
            &fx.code(0, c),
        )
        .unwrap();
    let rounds = if b == StoreKind::Memory { 50 } else { 15 };
    for round in 1..=rounds {
        let now = at(round);
        // Codes of steps far away: wrong (a collision with a candidate
        // step would be a 1-in-10^5 event; the assertion names the round).
        let codes: Vec<String> = (0..THREADS)
            .map(|i| fx.code(0, step(now) + 10_000 + 97 * i as u64))
            .collect();
        let barrier = Barrier::new(THREADS);
        let results: Vec<_> = std::thread::scope(|s| {
            let hs: Vec<_> = codes
                .iter()
                .map(|code| {
                    let (fx, alice, serial, barrier) = (&fx, &alice, &serial, &barrier);
                    s.spawn(move || {
                        barrier.wait();
                        fx.engine.verify_session_mfa(now, alice, serial, code)
                    })
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert!(results.iter().all(Result::is_err), "round {round}");
        let st = fx.engine.token_state(&serial).unwrap();
        assert_eq!(
            st.consecutive_failures,
            u32::try_from(THREADS).unwrap() * u32::try_from(round).unwrap(),
            "round {round}: no failure lost"
        );
    }
});

both!(concurrent_enables_respect_the_device_limit, |b| {
    let fx = fx_with(b, THREADS as u64, Profile::for_tests());
    let alice = Principal::user("alice");
    let now = at(0);
    let c = step(now);
    for round in 0..5u64 {
        let barrier = Barrier::new(THREADS);
        let results: Vec<_> = std::thread::scope(|s| {
            let hs: Vec<_> = (0..THREADS)
                .map(|i| {
                    let (fx, alice, barrier) = (&fx, &alice, &barrier);
                    s.spawn(move || {
                        // Fresh steps each round: the replay barrier outlives deactivation.
                        let s2 = c + 2 * round;
                        let (c1, c2) = (fx.code(i, s2 - 1), fx.code(i, s2));
                        barrier.wait();
                        fx.engine.enable_mfa_device(
                            now,
                            Channel::Console,
                            alice,
                            &fx.serial(i),
                            &c1,
                            &c2,
                        )
                    })
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert_eq!(
            results.iter().filter(|r| r.is_ok()).count(),
            1,
            "round {round}"
        );
        assert!(
            results
                .iter()
                .filter_map(|r| r.as_ref().err())
                .all(|e| e.kind == ErrorKind::LimitExceeded)
        );
        let list = fx.engine.list_mfa_devices(&alice).unwrap();
        assert_eq!(list.len(), 1);
        fx.engine
            .deactivate_mfa_device(now, &alice, &list[0].serial)
            .unwrap();
    }
});
