//! A database locked by another connection (several processes may share
//! one file): requests that must write wait at most the busy timeout and
//! get the retryable AWS `503 ServiceUnavailable`, never a 500; requests
//! that do not reach the database are answered at once meanwhile, because
//! database work runs off the async workers.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test stops loudly

use std::sync::Arc;
use std::time::{Duration, Instant};

use fobsim_aws::Service;
use fobsim_aws::client::Client;
use fobsim_engine::api::server::Loopback;
use fobsim_engine::{Engine, KeySource, Profile, SqliteOptions, testing};

const POLICY: &str = include_str!("../../fixtures/policies/manage-own-mfa.json");
const BUSY_MS: u32 = 400;

#[test]
fn a_locked_database_gives_503_after_the_busy_timeout_and_stalls_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("e.db");
    let engine = Engine::sqlite_with_options(
        &db,
        &KeySource::Bytes(testing::TEST_KEY),
        SqliteOptions {
            busy_timeout_ms: BUSY_MS,
            ..SqliteOptions::default()
        },
        Profile::for_tests(),
    )
    .unwrap();
    let n = 6;
    let mut fx = testing::enrolled_service(engine, n, POLICY).unwrap();
    // Two steps on: every user has a fresh code to sign in with.
    let now = fx.after_enable.add_millis(60_000);
    fx.clock.set(now);
    let codes: Vec<String> = fx.fobs.iter_mut().map(|f| testing::press(f, now)).collect();
    // One worker thread: a blocked worker would stall everything.
    let server = Loopback::start(Arc::clone(&fx.service), 1).unwrap();
    let endpoint = server.endpoint();

    let locker = rusqlite::Connection::open(&db).unwrap();
    locker.execute_batch("BEGIN EXCLUSIVE").unwrap();

    let signed: Vec<_> = (0..n)
        .map(|i| {
            let endpoint = endpoint.clone();
            let serial = fx.fobs[i].serial().to_string();
            let code = codes[i].clone();
            std::thread::spawn(move || {
                let started = Instant::now();
                let r = Client::new(&endpoint)
                    .unwrap()
                    .call(
                        Service::Sts,
                        &[
                            ("Action", "GetSessionToken"),
                            ("SerialNumber", &serial),
                            ("TokenCode", &code),
                        ],
                        &testing::enrolled_credentials(i),
                        now,
                    )
                    .unwrap();
                (r, started.elapsed())
            })
        })
        .collect();

    // Meanwhile: unauthenticated requests, answered at once.
    std::thread::sleep(Duration::from_millis(50));
    let client = Client::new(&endpoint).unwrap();
    let mut worst = Duration::ZERO;
    for _ in 0..20 {
        let started = Instant::now();
        let r = client
            .send(
                "POST",
                "/",
                &[("Host", "x")],
                b"Action=GetUser&Version=2010-05-08",
            )
            .unwrap();
        worst = worst.max(started.elapsed());
        assert_eq!(r.code().as_deref(), Some("MissingAuthenticationToken"));
        std::thread::sleep(Duration::from_millis(10));
    }
    eprintln!("unauthenticated requests under the lock: worst {worst:?}");
    assert!(worst < Duration::from_millis(50), "worst {worst:?}");

    for t in signed {
        let (r, took) = t.join().unwrap();
        assert_eq!(
            (r.status, r.code().as_deref()),
            (503, Some("ServiceUnavailable")),
            "{}",
            r.body
        );
        assert!(r.body.contains("<Type>Receiver</Type>"), "{}", r.body);
        assert!(r.body.contains("<RequestId>"), "{}", r.body);
        // Each waits the busy timeout for the lock, and at most as long
        // for its turn on the connection.
        eprintln!("signed request under the lock: 503 after {took:?}");
        assert!(
            took < Duration::from_millis(u64::from(BUSY_MS) * 4),
            "{took:?}"
        );
    }

    // The lock goes: the same codes are accepted (nothing was counted).
    locker.execute_batch("ROLLBACK").unwrap();
    for (i, code) in codes.iter().enumerate() {
        let r = client
            .call(
                Service::Sts,
                &[
                    ("Action", "GetSessionToken"),
                    ("SerialNumber", fx.fobs[i].serial().as_str()),
                    ("TokenCode", code),
                ],
                &testing::enrolled_credentials(i),
                now,
            )
            .unwrap();
        assert_eq!(r.status, 200, "{}", r.body);
    }
}
