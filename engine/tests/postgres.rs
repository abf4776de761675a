//! What only the PostgreSQL store has (the rules themselves run on it in
//! rules.rs, model.rs and concurrency.rs): versioned migrations that
//! replicas starting together apply once, a newer schema refused, the key
//! check, secrets sealed at rest, several stores (replicas) racing on one
//! database, batches, and an unreachable server answered with
//! `ServiceUnavailable` until it is back — then served again without a
//! restart of the engine.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test stops loudly

mod common;

use std::sync::Barrier;

use common::{at, pg_url, step};
use fobsim_core::{Channel, Principal, Totp};
use fobsim_engine::store::PG_SCHEMA_VERSION;
use fobsim_engine::testing::postgres::PgServer;
use fobsim_engine::testing::{self, TestToken};
use fobsim_engine::{
    Engine, ErrorKind, KeySource, PgOptions, PgStore, Profile, Store as _, StoreError,
};

fn key() -> KeySource {
    KeySource::Bytes(testing::TEST_KEY)
}

fn replica(url: &str, profile: Profile) -> Engine {
    Engine::postgres(url, &key(), PgOptions::default(), profile).unwrap()
}

/// An engine on `url` with the account and `n` fobs registered.
fn provisioned(url: &str, n: u64, profile: Profile) -> (Engine, Vec<TestToken>) {
    let engine = replica(url, profile);
    let fobs: Vec<TestToken> = (0..n).map(|i| testing::gaht_fob(i, testing::T0)).collect();
    testing::create_account(&engine).unwrap();
    testing::import(&engine, &fobs).unwrap();
    (engine, fobs)
}

fn code(fob: &TestToken, step: u64) -> String {
    let r = fob.seed_record();
    Totp::new(r.algorithm, r.secret.expose(), 6, 30, 0)
        .unwrap()
        .code_for_step(step)
        .to_string()
}

fn enable(engine: &Engine, fob: &TestToken, who: &Principal) {
    let now = at(0);
    let c = step(now);
    engine
        .enable_mfa_device(
            now,
            Channel::Console,
            who,
            fob.serial().as_str(),
            &code(fob, c - 1),
            &code(fob, c),
        )
        .unwrap();
}

#[test]
fn replicas_starting_together_migrate_once() {
    let url = pg_url();
    let barrier = Barrier::new(4);
    let versions: Vec<i64> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..4)
            .map(|_| {
                s.spawn(|| {
                    barrier.wait();
                    let store = PgStore::open(&url, &key(), PgOptions::default()).unwrap();
                    store.schema_version().unwrap()
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(versions, vec![PG_SCHEMA_VERSION; 4]);
    // Opening again changes nothing.
    let store = PgStore::open(&url, &key(), PgOptions::default()).unwrap();
    assert_eq!(store.schema_version().unwrap(), PG_SCHEMA_VERSION);
}

#[test]
fn a_newer_schema_is_refused() {
    let url = pg_url();
    drop(PgStore::open(&url, &key(), PgOptions::default()).unwrap());
    let mut c = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    c.execute(
        "UPDATE fobsim_schema SET version = $1",
        &[&(PG_SCHEMA_VERSION + 1)],
    )
    .unwrap();
    let e = PgStore::open(&url, &key(), PgOptions::default()).unwrap_err();
    assert!(
        matches!(e, StoreError::SchemaTooNew { found, supported }
            if found == PG_SCHEMA_VERSION + 1 && supported == PG_SCHEMA_VERSION),
        "{e}"
    );
    assert!(
        e.to_string().contains("newer than this build supports"),
        "{e}"
    );
}

#[test]
fn another_key_is_refused_and_secrets_are_sealed() {
    let url = pg_url();
    let (engine, fobs) = provisioned(&url, 1, Profile::for_tests());
    drop(engine);
    let e = PgStore::open(&url, &KeySource::Bytes([7; 32]), PgOptions::default()).unwrap_err();
    assert!(matches!(e, StoreError::Decrypt { .. }), "{e}");
    // At rest: nonce + ciphertext + tag, never the secret itself.
    let secret = fobs[0].seed_record().secret.expose().to_vec();
    let mut c = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    let blob: Vec<u8> = c
        .query_one(
            "SELECT secret FROM fobsim_tokens WHERE serial = $1",
            &[&fobs[0].serial().as_str()],
        )
        .unwrap()
        .get(0);
    assert_eq!(blob.len(), 24 + secret.len() + 16);
    assert!(!blob.windows(secret.len()).any(|w| w == secret.as_slice()));
    // And the right key reads it back.
    let store = PgStore::open(&url, &key(), PgOptions::default()).unwrap();
    let row = store.token(fobs[0].serial().as_str()).unwrap().unwrap();
    assert_eq!(row.secret.expose(), secret.as_slice());
}

#[test]
fn a_malformed_or_wrong_url_is_a_clear_error() {
    let e = PgStore::open(
        "postgres://x@127.0.0.1:notaport/db",
        &key(),
        PgOptions::default(),
    )
    .unwrap_err();
    assert!(e.to_string().starts_with("postgres: "), "{e}");
    let server = testing::postgres::shared().unwrap();
    let e = PgStore::open(
        &server.url("no_such_database"),
        &key(),
        PgOptions::default(),
    )
    .unwrap_err();
    assert!(
        e.to_string()
            .contains("\"no_such_database\" does not exist"),
        "{e}"
    );
}

/// Three stores on one database, as three replicas: 32 threads spread over
/// them send the same valid code → one success per round; wrong codes
/// from all of them → every one counted.
#[test]
fn three_stores_on_one_database_accept_a_code_once_and_count_every_failure() {
    let url = pg_url();
    let profile = Profile {
        lockout_threshold: 0,
        ..Profile::for_tests()
    };
    let (first, fobs) = provisioned(&url, 1, profile.clone());
    let replicas = [
        first,
        replica(&url, profile.clone()),
        replica(&url, profile),
    ];
    let alice = Principal::user("alice");
    let serial = fobs[0].serial().as_str();
    enable(&replicas[1], &fobs[0], &alice);
    for round in 1..=20 {
        let now = at(round);
        let good = code(&fobs[0], step(now));
        let barrier = Barrier::new(32);
        let ok = std::thread::scope(|s| {
            let hs: Vec<_> = (0..32)
                .map(|i| {
                    let (e, barrier, good, alice) = (&replicas[i % 3], &barrier, &good, &alice);
                    s.spawn(move || {
                        barrier.wait();
                        e.verify_session_mfa(now, alice, serial, good).is_ok()
                    })
                })
                .collect();
            hs.into_iter()
                .map(|h| h.join().unwrap())
                .filter(|ok| *ok)
                .count()
        });
        assert_eq!(ok, 1, "round {round}");
    }
    // Wrong codes: a code no step near now shows.
    let now = at(30);
    let near: Vec<String> = (step(now) - 3..=step(now) + 3)
        .map(|s| code(&fobs[0], s))
        .collect();
    let wrong = (0..1_000_000)
        .map(|n| format!("{n:06}"))
        .find(|c| !near.contains(c))
        .unwrap();
    let barrier = Barrier::new(48);
    std::thread::scope(|s| {
        for i in 0..48 {
            let (e, barrier, wrong, alice) = (&replicas[i % 3], &barrier, &wrong, &alice);
            s.spawn(move || {
                barrier.wait();
                let err = e.verify_session_mfa(now, alice, serial, wrong).unwrap_err();
                assert_eq!(err.kind, ErrorKind::AccessDenied);
            });
        }
    });
    for r in &replicas {
        assert_eq!(r.token_state(serial).unwrap().consecutive_failures, 48);
    }
}

/// Six tokens on three stores, so that a store's group commits hold
/// several tokens, accepted codes and failures together, and several
/// requests for the same token: per round, 8 threads per token send its
/// valid code to tokens 0–2 (exactly one accepted per token) while 8 per
/// token send wrong codes to tokens 3–5 (every one counted).
#[test]
fn groups_of_many_tokens_accept_each_code_once_and_count_every_failure() {
    let url = pg_url();
    let profile = Profile {
        lockout_threshold: 0,
        ..Profile::for_tests()
    };
    let (first, fobs) = provisioned(&url, 6, profile.clone());
    let replicas = [
        first,
        replica(&url, profile.clone()),
        replica(&url, profile),
    ];
    let users: Vec<Principal> = (0..6).map(|i| Principal::user(&format!("u{i}"))).collect();
    for (k, (fob, who)) in fobs.iter().zip(&users).enumerate() {
        replicas[0]
            .create_user(&format!("u{k}"), testing::USER_PASSWORD)
            .unwrap();
        enable(&replicas[0], fob, who);
    }
    for round in 1..=10 {
        let now = at(round);
        let codes: Vec<String> = fobs
            .iter()
            .enumerate()
            .map(|(k, f)| {
                if k < 3 {
                    code(f, step(now))
                } else {
                    let near: Vec<String> = (step(now) - 3..=step(now) + 3)
                        .map(|s| code(f, s))
                        .collect();
                    (0..1_000_000)
                        .map(|n| format!("{n:06}"))
                        .find(|c| !near.contains(c))
                        .unwrap()
                }
            })
            .collect();
        let barrier = Barrier::new(48);
        let accepted: Vec<usize> = std::thread::scope(|s| {
            let hs: Vec<_> = (0..48)
                .map(|i| {
                    let k = i % 6;
                    let (e, barrier) = (&replicas[i % 3], &barrier);
                    let (who, serial, c) = (&users[k], fobs[k].serial().as_str(), &codes[k]);
                    s.spawn(move || {
                        barrier.wait();
                        match e.verify_session_mfa(now, who, serial, c) {
                            Ok(_) => Some(k),
                            Err(err) => {
                                assert_eq!(err.kind, ErrorKind::AccessDenied, "{err:?}");
                                None
                            }
                        }
                    })
                })
                .collect();
            hs.into_iter().filter_map(|h| h.join().unwrap()).collect()
        });
        let mut accepted = accepted;
        accepted.sort_unstable();
        assert_eq!(accepted, vec![0, 1, 2], "round {round}");
    }
    for r in &replicas {
        for (k, f) in fobs.iter().enumerate().skip(3) {
            let st = r.token_state(f.serial().as_str()).unwrap();
            assert_eq!(st.consecutive_failures, 80, "token {k}");
        }
    }
}

/// Two replicas enable a different token each for the same user at once,
/// with one device allowed: exactly one succeeds.
#[test]
fn the_device_limit_holds_across_stores() {
    let url = pg_url();
    let (a, fobs) = provisioned(&url, 8, Profile::for_tests());
    let b = replica(&url, Profile::for_tests());
    let replicas = [a, b];
    let alice = Principal::user("alice");
    let now = at(0);
    let c = step(now);
    let barrier = Barrier::new(fobs.len());
    let ok = std::thread::scope(|s| {
        let hs: Vec<_> = fobs
            .iter()
            .enumerate()
            .map(|(i, fob)| {
                let (e, barrier, alice) = (&replicas[i % 2], &barrier, &alice);
                s.spawn(move || {
                    barrier.wait();
                    e.enable_mfa_device(
                        now,
                        Channel::Console,
                        alice,
                        fob.serial().as_str(),
                        &code(fob, c - 1),
                        &code(fob, c),
                    )
                    .is_ok()
                })
            })
            .collect();
        hs.into_iter()
            .map(|h| h.join().unwrap())
            .filter(|ok| *ok)
            .count()
    });
    assert_eq!(ok, 1);
    assert_eq!(replicas[0].list_mfa_devices(&alice).unwrap().len(), 1);
}

#[test]
fn a_batch_commits_once_and_a_panicking_batch_leaves_nothing() {
    let url = pg_url();
    let (engine, fobs) = provisioned(&url, 2, Profile::for_tests());
    let alice = Principal::user("alice");
    engine.batch(|e| enable(e, &fobs[0], &alice)).unwrap();
    assert_eq!(engine.list_mfa_devices(&alice).unwrap().len(), 1);
    let bob = Principal::user("bob");
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        engine.batch(|e| {
            enable(e, &fobs[1], &bob);
            panic!("inside the batch");
        })
    }));
    assert!(r.is_err());
    assert!(engine.list_mfa_devices(&bob).unwrap().is_empty());
    // The store is usable afterwards, from another replica too.
    let other = replica(&url, Profile::for_tests());
    enable(&other, &fobs[1], &bob);
    assert_eq!(engine.list_mfa_devices(&bob).unwrap().len(), 1);
}

/// The server stops (fast shutdown) under a running engine: sign-ins get
/// `ServiceUnavailable` (503), never a panic or a wrong verdict; when it is
/// back, the same engine serves again (the pool reconnects), and the code
/// accepted before the outage is still a replay.
#[test]
fn an_unreachable_server_is_service_unavailable_until_it_is_back() {
    let mut server = PgServer::start_with(&[("synchronous_commit", "off")]).unwrap();
    let url = server.database("fobsim").unwrap();
    let options = PgOptions {
        pool_size: 4,
        connect_timeout_ms: 500,
    };
    let engine = Engine::postgres(&url, &key(), options, Profile::for_tests()).unwrap();
    let fobs: Vec<TestToken> = (0..1).map(|i| testing::gaht_fob(i, testing::T0)).collect();
    testing::create_account(&engine).unwrap();
    testing::import(&engine, &fobs).unwrap();
    let alice = Principal::user("alice");
    let serial = fobs[0].serial().as_str();
    enable(&engine, &fobs[0], &alice);
    let t1 = at(1);
    let c1 = code(&fobs[0], step(t1));
    engine.verify_session_mfa(t1, &alice, serial, &c1).unwrap();

    server.stop();
    let t2 = at(2);
    let c2 = code(&fobs[0], step(t2));
    for _ in 0..3 {
        let e = engine
            .verify_session_mfa(t2, &alice, serial, &c2)
            .unwrap_err();
        assert_eq!(e.kind, ErrorKind::ServiceUnavailable, "{e}");
        assert_eq!(e.http_status(), 503);
        let e = engine.list_mfa_devices(&alice).unwrap_err();
        assert_eq!(e.kind, ErrorKind::ServiceUnavailable, "{e}");
    }

    server.start_again().unwrap();
    let e = engine
        .verify_session_mfa(t2, &alice, serial, &c1)
        .unwrap_err();
    assert_eq!(
        e.kind,
        ErrorKind::AccessDenied,
        "the old code is a replay: {e}"
    );
    engine.verify_session_mfa(t2, &alice, serial, &c2).unwrap();
    assert_eq!(
        engine.token_state(serial).unwrap().last_step,
        Some(step(t2))
    );
    // A store opened while the server is down says why.
    server.stop();
    let e = PgStore::open(&url, &key(), options).unwrap_err();
    assert!(matches!(e, StoreError::Postgres(_)), "{e}");
    assert!(e.to_string().contains("connect"), "{e}");
}
