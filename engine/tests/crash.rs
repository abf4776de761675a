//! Crash safety on SQLite: a child process (this test binary, re-executed)
//! runs a workload and prints `TRY` before and `ACK` after every operation;
//! the parent kills it with SIGKILL mid-workload, reopens the database and
//! checks that every acknowledged operation is there and nothing is
//! half-applied (a batch is all or nothing; at most the one in-flight
//! operation may additionally have landed).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test stops loudly

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};

use common::{at, step};
use fobsim_core::Principal;
use fobsim_engine::{Engine, KeySource, Profile, testing};

const ENV_DB: &str = "FOBSIM_ENGINE_CRASH_CHILD_DB";
/// The batch in which the child slows down and announces `MID` after its
/// first operation, so the parent's kill lands inside it.
const ENV_SLOW: &str = "FOBSIM_ENGINE_CRASH_SLOW_BATCH";
const FOBS: u64 = 60;

fn code(fob: &fobsim_engine::testing::TestToken, s: u64) -> String {
    let r = fob.seed_record();
    fobsim_core::Totp::new(r.algorithm, r.secret.expose(), 6, 30, 0)
        .unwrap()
        .code_for_step(s)
        .to_string()
}

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}").unwrap();
    out.flush().unwrap();
}

/// The child's workload. Runs only when re-executed by the parent.
#[test]
fn crash_child() {
    let Ok(db) = std::env::var(ENV_DB) else {
        return;
    };
    let engine = Engine::sqlite(
        &db,
        &KeySource::Bytes(testing::TEST_KEY),
        Profile::for_tests(),
    )
    .unwrap();
    let fobs: Vec<_> = (0..FOBS)
        .map(|i| testing::gaht_fob(i, testing::T0))
        .collect();
    let mut now = at(0);
    let mut assigned: Vec<u64> = Vec::new();
    let mut batch_id = 0;
    let slow: Option<u64> = std::env::var(ENV_SLOW).ok().and_then(|v| v.parse().ok());
    for k in 0..FOBS {
        let user = Principal::User(format!("u{k}"));
        let serial = fobs[k as usize].serial().as_str().to_string();
        say(&format!("TRY U {k}"));
        engine.create_user(&format!("u{k}"), "pw").unwrap();
        say(&format!("ACK U {k}"));
        let s = step(now);
        say(&format!("TRY E {k} {s}"));
        engine
            .enable_mfa_device(
                now,
                fobsim_core::Channel::Console,
                &user,
                &serial,
                &code(&fobs[k as usize], s - 1),
                &code(&fobs[k as usize], s),
            )
            .unwrap();
        say(&format!("ACK E {k} {s}"));
        assigned.push(k);
        for _ in 0..3 {
            now = now.add_millis(30_000);
            let s = step(now);
            say(&format!("TRY S {k} {s}"));
            engine
                .verify_session_mfa(now, &user, &serial, &code(&fobs[k as usize], s))
                .unwrap();
            say(&format!("ACK S {k} {s}"));
        }
        if k % 5 == 4 {
            say(&format!("TRY D {k}"));
            engine.deactivate_mfa_device(now, &user, &serial).unwrap();
            say(&format!("ACK D {k}"));
            assigned.retain(|x| *x != k);
        }
        if k % 3 == 2 {
            now = now.add_millis(30_000);
            let s = step(now);
            let ids: Vec<u64> = assigned.iter().rev().take(8).copied().collect();
            let list: Vec<String> = ids.iter().map(u64::to_string).collect();
            say(&format!("TRY B {batch_id} {s} {}", list.join(" ")));
            engine
                .batch(|e| {
                    for id in &ids {
                        let f = &fobs[*id as usize];
                        e.verify_session_mfa(
                            now,
                            &Principal::User(format!("u{id}")),
                            f.serial().as_str(),
                            &code(f, s),
                        )
                        .unwrap();
                        if slow == Some(batch_id) {
                            say(&format!("MID B {batch_id}"));
                            std::thread::sleep(std::time::Duration::from_millis(25));
                        }
                    }
                })
                .unwrap();
            say(&format!("ACK B {batch_id} {s} {}", list.join(" ")));
            batch_id += 1;
        }
    }
    say("DONE");
}

#[derive(Debug, Clone, Default)]
struct Expect {
    assigned: bool,
    last: Option<u64>,
}

fn apply(exp: &mut HashMap<u64, Expect>, words: &[&str]) {
    let n = |i: usize| words[i].parse::<u64>().unwrap();
    match words[1] {
        "E" => {
            let e = exp.entry(n(2)).or_default();
            e.assigned = true;
            e.last = Some(n(3));
        }
        "S" => exp.entry(n(2)).or_default().last = Some(n(3)),
        "D" => exp.entry(n(2)).or_default().assigned = false,
        "B" => {
            let s = n(3);
            for i in 4..words.len() {
                exp.entry(n(i)).or_default().last = Some(s);
            }
        }
        _ => {}
    }
}

/// When the parent kills the child.
#[derive(Debug, Clone, Copy)]
enum KillAt {
    /// After reading this many `ACK` lines.
    Acks(usize),
    /// Inside batch n, after its first operation (`MID B n`).
    InBatch(u64),
}

fn run_round(dir: &Path, kill_at: KillAt) -> (usize, Option<bool>) {
    let db = dir.join("crash.db");
    {
        let engine = Engine::sqlite(
            &db,
            &KeySource::Bytes(testing::TEST_KEY),
            Profile::for_tests(),
        )
        .unwrap();
        let fobs: Vec<_> = (0..FOBS)
            .map(|i| testing::gaht_fob(i, testing::T0))
            .collect();
        engine
            .create_account(
                testing::ACCOUNT_ID,
                testing::ALIAS,
                testing::ROOT_EMAIL,
                testing::ROOT_PHONE,
                testing::ROOT_PASSWORD,
            )
            .unwrap();
        testing::import(&engine, &fobs).unwrap();
    }
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args(["crash_child", "--exact", "--nocapture", "--test-threads=1"])
        .env(ENV_DB, &db);
    if let KillAt::InBatch(n) = kill_at {
        cmd.env(ENV_SLOW, n.to_string());
    }
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines: Vec<String> = Vec::new();
    let mut acks = 0;
    let mut mid = false;
    let mut reader = BufReader::new(stdout);
    let mut line = String::new();
    while reader.read_line(&mut line).unwrap() > 0 {
        let l = line.trim().to_string();
        line.clear();
        if l.starts_with("ACK") {
            acks += 1;
        }
        if l.starts_with("MID B") {
            mid = true;
        }
        let done = l == "DONE";
        if l.starts_with("ACK") || l.starts_with("TRY") {
            lines.push(l);
        }
        let kill = match kill_at {
            KillAt::Acks(n) => acks >= n,
            KillAt::InBatch(_) => mid,
        };
        if done || kill {
            break;
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();
    // Everything the child wrote before it died is still in the pipe: those
    // acknowledgements count too, so exactly one operation (the last `TRY`
    // without `ACK`) may be in flight.
    while reader.read_line(&mut line).unwrap() > 0 {
        let l = line.trim().to_string();
        line.clear();
        if l.starts_with("ACK") {
            acks += 1;
        }
        if l.starts_with("ACK") || l.starts_with("TRY") {
            lines.push(l);
        }
    }

    let mut exp: HashMap<u64, Expect> = HashMap::new();
    let mut users = Vec::new();
    let mut in_flight: Option<Vec<String>> = None;
    for l in &lines {
        let words: Vec<&str> = l.split(' ').collect();
        if words[0] == "TRY" {
            in_flight = Some(words.iter().map(|w| (*w).to_string()).collect());
        } else {
            in_flight = None;
            if words[1] == "U" {
                users.push(words[2].to_string());
            }
            apply(&mut exp, &words);
        }
    }
    // What the state would be if the in-flight operation also committed.
    let mut exp_if = exp.clone();
    if let Some(w) = &in_flight {
        let w: Vec<&str> = w.iter().map(String::as_str).collect();
        apply(&mut exp_if, &w);
    }

    let engine = Engine::sqlite(
        &db,
        &KeySource::Bytes(testing::TEST_KEY),
        Profile::for_tests(),
    )
    .unwrap();
    for u in &users {
        assert!(
            engine.get_user(&Principal::User(format!("u{u}"))).is_ok(),
            "acked user u{u} lost"
        );
    }
    let fobs: Vec<_> = (0..FOBS)
        .map(|i| testing::gaht_fob(i, testing::T0))
        .collect();
    let mut in_flight_landed: Option<bool> = None;
    for k in 0..FOBS {
        let st = engine
            .token_state(fobs[k as usize].serial().as_str())
            .unwrap();
        let got = (st.assigned_to.is_some(), st.last_step);
        assert_eq!(
            st.assigned_to.is_some(),
            st.enable_date.is_some(),
            "half-applied assignment"
        );
        let a = exp.get(&k).cloned().unwrap_or_default();
        let b = exp_if.get(&k).cloned().unwrap_or_default();
        let (wa, wb) = ((a.assigned, a.last), (b.assigned, b.last));
        if wa == wb {
            assert_eq!(got, wa, "fob {k}: acknowledged state lost");
        } else {
            // Touched by the in-flight op: all of its fobs agree on whether it landed.
            let landed = if got == wa {
                false
            } else {
                assert_eq!(
                    got, wb,
                    "fob {k}: neither before nor after the in-flight op"
                );
                true
            };
            assert!(
                in_flight_landed.is_none_or(|x| x == landed),
                "in-flight batch half-applied at fob {k}"
            );
            in_flight_landed = Some(landed);
        }
    }
    drop(engine);
    let store = fobsim_engine::SqliteStore::open(
        &db,
        &KeySource::Bytes(testing::TEST_KEY),
        fobsim_engine::SqliteOptions::default(),
    )
    .unwrap();
    assert_eq!(store.integrity_check().unwrap(), "ok");
    (acks, in_flight_landed)
}

#[test]
fn killed_child_loses_no_acknowledged_operation() {
    if std::env::var(ENV_DB).is_ok() {
        return;
    }
    let mut total = 0;
    let mut rolled_back = 0;
    let rounds = [
        KillAt::Acks(25),
        KillAt::InBatch(2),
        KillAt::Acks(140),
        KillAt::InBatch(7),
        KillAt::InBatch(12),
        KillAt::Acks(333),
        KillAt::Acks(usize::MAX),
    ];
    for (i, kill_at) in rounds.into_iter().enumerate() {
        let dir = tempfile::tempdir().unwrap();
        let (acks, batch_landed) = run_round(dir.path(), kill_at);
        assert!(acks > 0, "round {i}: the child acknowledged nothing");
        // A kill inside an uncommitted batch must roll all of it back.
        if let (KillAt::InBatch(_), Some(false)) = (kill_at, batch_landed) {
            rolled_back += 1;
        }
        total += acks;
    }
    assert!(total > 400);
    // The slowed-down batches make a mid-batch kill near certain; demand at
    // least one so the all-or-nothing check really ran.
    assert!(rolled_back >= 1, "no kill landed inside a batch");
}
