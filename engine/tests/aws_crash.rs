//! kill -9 the AWS server (a child process over SQLite) during a workload,
//! restart it on the same database: assignments, replay protection and
//! session credentials survive.
//!
//! The test re-executes its own binary: with `AWS_CRASH_DB` set, the
//! `aws_crash_child` test is the server (it prints its address, then
//! serves until killed).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test stops loudly

use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use fobsim_aws::Service;
use fobsim_aws::client::Client;
use fobsim_aws::sigv4::Credentials;
use fobsim_core::Principal;
use fobsim_core::{SimClock, Timestamp};
use fobsim_engine::api::credentials::KeyRing;
use fobsim_engine::api::policy::Policy;
use fobsim_engine::api::server::Loopback;
use fobsim_engine::api::service::{AwsService, ServiceConfig};
use fobsim_engine::{Engine, KeySource, Profile, testing};

const ENV_DB: &str = "AWS_CRASH_DB";
const ENV_NOW: &str = "AWS_CRASH_NOW";
const SEED_POLICY: &str = include_str!("../../fixtures/policies/manage-own-mfa.json");

fn alice() -> Credentials {
    Credentials {
        access_key_id: "AKIAALICE0000000001".into(),
        secret_access_key: "alice-secret-key-0001".into(),
        session_token: None,
    }
}

/// The child: a server over the database in `AWS_CRASH_DB`, its clock at
/// `AWS_CRASH_NOW` (ms). Not a test on its own: returns at once without
/// the variable.
#[test]
fn aws_crash_child() {
    let Ok(db) = std::env::var(ENV_DB) else {
        return;
    };
    let now: u64 = std::env::var(ENV_NOW).unwrap().parse().unwrap();
    let engine = Engine::sqlite(
        &db,
        &KeySource::Bytes(testing::TEST_KEY),
        Profile::for_tests(),
    )
    .unwrap();
    if engine.store().account().unwrap().is_none() {
        testing::create_account(&engine).unwrap();
        let fobs: Vec<_> = (0..2).map(|i| testing::gaht_fob(i, testing::T0)).collect();
        testing::import(&engine, &fobs).unwrap();
    }
    let mut ring = KeyRing::new(&[4; 32], None);
    let a = alice();
    ring.add_access_key(
        &a.access_key_id,
        &a.secret_access_key,
        Principal::user("alice"),
    )
    .unwrap();
    let policies = [(
        "alice".to_string(),
        vec![Arc::new(Policy::parse(SEED_POLICY).unwrap())],
    )]
    .into_iter()
    .collect();
    let clock = Arc::new(SimClock::new(Timestamp::from_millis(now)));
    let svc = AwsService::new(
        Arc::new(engine),
        ring,
        policies,
        Arc::clone(&clock) as Arc<dyn fobsim_core::Clock>,
        ServiceConfig::default(),
    )
    .unwrap();
    let server = Loopback::start(Arc::new(svc), 2).unwrap();
    println!("ADDR {}", server.endpoint());
    loop {
        std::thread::park();
    }
}

/// The child server; killed (SIGKILL) when dropped, also when a check fails.
struct Server(Child);

impl Server {
    fn kill9(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill9();
    }
}

fn spawn(db: &Path, now: Timestamp) -> (Server, String) {
    let mut server = Server(
        Command::new(std::env::current_exe().unwrap())
            .args([
                "aws_crash_child",
                "--exact",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(ENV_DB, db)
            .env(ENV_NOW, now.as_millis().to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let mut out = BufReader::new(server.0.stdout.take().unwrap());
    let mut line = String::new();
    loop {
        line.clear();
        assert!(
            out.read_line(&mut line).unwrap() > 0,
            "the child server did not start"
        );
        // libtest may print "test aws_crash_child ... " on the same line.
        if let Some(p) = line.find("ADDR ") {
            return (server, line[p + 5..].trim().to_string());
        }
    }
}

fn code(now: Timestamp) -> String {
    let mut fob = testing::gaht_fob(0, testing::T0);
    testing::press(&mut fob, now)
}

#[test]
fn kill_9_during_a_workload_then_restart() {
    if std::env::var(ENV_DB).is_ok() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("aws.db");
    let serial = testing::gaht_fob(0, testing::T0).serial().to_string();
    let t0 = testing::T0;
    let t1 = t0.add_millis(30_000);
    let (mut child, endpoint) = spawn(&db, t1);
    let a = alice();
    let c = Client::new(&endpoint).unwrap();
    let r = c
        .call(
            Service::Iam,
            &[
                ("Action", "EnableMFADevice"),
                ("UserName", "alice"),
                ("SerialNumber", &serial),
                ("AuthenticationCode1", &code(t0)),
                ("AuthenticationCode2", &code(t1)),
            ],
            &a,
            t1,
        )
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    // An MFA session; its code is the replay barrier from now on.
    let session_code = code(t1.add_millis(30_000));
    let get_session = [
        ("Action", "GetSessionToken"),
        ("SerialNumber", serial.as_str()),
        ("TokenCode", session_code.as_str()),
    ];
    let r = c.call(Service::Sts, &get_session, &a, t1).unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    let session = Credentials {
        access_key_id: r.text("AccessKeyId").unwrap(),
        secret_access_key: r.text("SecretAccessKey").unwrap(),
        session_token: r.text("SessionToken"),
    };
    // A workload on four connections, then SIGKILL in the middle of it.
    let stop = Arc::new(AtomicBool::new(false));
    let served = Arc::new(AtomicU64::new(0));
    let workers: Vec<_> = (0..4)
        .map(|_| {
            let (stop, served, endpoint, a) = (
                Arc::clone(&stop),
                Arc::clone(&served),
                endpoint.clone(),
                a.clone(),
            );
            std::thread::spawn(move || {
                let c = Client::new(&endpoint).unwrap();
                while !stop.load(Ordering::SeqCst) {
                    match c.call(Service::Iam, &[("Action", "ListMFADevices")], &a, t1) {
                        Ok(r) if r.status == 200 => {
                            served.fetch_add(1, Ordering::SeqCst);
                        }
                        _ => {}
                    }
                }
            })
        })
        .collect();
    // Requests in flight when the server dies (a bounded wait: the
    // workload always gets answers from a live server).
    for _ in 0..10_000 {
        if served.load(Ordering::SeqCst) >= 50 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    assert!(served.load(Ordering::SeqCst) > 0, "the workload ran");
    child.kill9();
    stop.store(true, Ordering::SeqCst);
    for w in workers {
        w.join().unwrap();
    }
    // Restart on the same database.
    let (_child, endpoint) = spawn(&db, t1);
    let c = Client::new(&endpoint).unwrap();
    let r = c
        .call(Service::Iam, &[("Action", "ListMFADevices")], &a, t1)
        .unwrap();
    assert_eq!(
        fobsim_aws::xml::texts_of(&r.body, "SerialNumber"),
        vec![serial.clone()]
    );
    let r = c.call(Service::Sts, &get_session, &a, t1).unwrap();
    assert_eq!(
        (r.status, r.code().as_deref()),
        (403, Some("AccessDenied")),
        "replay after restart: {}",
        r.body
    );
    // The session key is the same after the restart (as `fobsim serve`
    // keeps it in a file): a session issued before the crash still works.
    let r = c
        .call(Service::Iam, &[("Action", "GetUser")], &session, t1)
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    let next = code(t1.add_millis(60_000));
    let r = c
        .call(
            Service::Sts,
            &[
                ("Action", "GetSessionToken"),
                ("SerialNumber", &serial),
                ("TokenCode", &next),
            ],
            &a,
            t1,
        )
        .unwrap();
    assert_eq!(r.status, 200, "the next step still works: {}", r.body);
}
