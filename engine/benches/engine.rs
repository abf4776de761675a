//! Engine benchmarks: sign-in verification (±1 window + atomic replay
//! check) on both stores, batched SQLite verification, and the ±1000-step
//! enable/resync search.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)] // a bench stops loudly

use std::hint::black_box;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use fobsim_core::Totp;
use fobsim_core::{Channel, Principal};
use fobsim_engine::{Engine, Profile, testing};

fn totp_of(fob: &fobsim_engine::testing::TestToken) -> Totp {
    let r = fob.seed_record();
    Totp::new(r.algorithm, r.secret.expose(), 6, 30, 0).unwrap()
}

/// Enable fob 0 for alice at T0 and return its prepared TOTP.
fn enable(engine: &Engine, fob: &fobsim_engine::testing::TestToken) -> Totp {
    let t = totp_of(fob);
    let now = testing::T0.add_millis(10_000);
    let c = now.as_secs() / 30;
    engine
        .enable_mfa_device(
            now,
            Channel::Console,
            &Principal::user("alice"),
            fob.serial().as_str(),
            &t.code_for_step(c - 1).to_string(),
            &t.code_for_step(c).to_string(),
        )
        .unwrap();
    t
}

/// One successful verification per iteration, each at a new step (the
/// code is computed in the untimed setup).
fn bench_verify(
    c: &mut Criterion,
    name: &str,
    engine: &Engine,
    fob: &fobsim_engine::testing::TestToken,
) {
    let totp = enable(engine, fob);
    let alice = Principal::user("alice");
    let serial = fob.serial().as_str().to_string();
    let mut now = testing::T0.add_millis(10_000);
    let mut g = c.benchmark_group("verify");
    g.throughput(Throughput::Elements(1));
    g.bench_function(name, |b| {
        b.iter_batched(
            || {
                now = now.add_millis(30_000);
                (now, totp.code_for_step(now.as_secs() / 30).to_string())
            },
            |(t, code)| {
                engine
                    .verify_session_mfa(black_box(t), &alice, &serial, black_box(&code))
                    .unwrap();
            },
            BatchSize::SmallInput,
        );
    });
    g.finish();
}

fn verify_in_memory(c: &mut Criterion) {
    let (engine, fobs) = testing::in_memory_with_fobs(1, testing::T0);
    bench_verify(c, "in_memory", &engine, &fobs[0]);
}

fn verify_sqlite(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let (engine, fobs) = testing::sqlite_with_fobs(
        &dir.path().join("b.db"),
        1,
        testing::T0,
        Profile::for_tests(),
    )
    .unwrap();
    bench_verify(c, "sqlite", &engine, &fobs[0]);
}

/// `n` verifications (n devices, one sign-in each, as one simulated day of
/// the harness's fleet simulation) in one SQLite transaction.
fn sqlite_fleet_batch(c: &mut Criterion, n: usize, name: &str) {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::sqlite(
        dir.path().join("batch.db"),
        &fobsim_engine::KeySource::Bytes(testing::TEST_KEY),
        Profile::for_tests(),
    )
    .unwrap();
    testing::create_account(&engine).unwrap();
    let fobs: Vec<_> = (0..n as u64)
        .map(|i| testing::gaht_fob(i, testing::T0))
        .collect();
    testing::import(&engine, &fobs).unwrap();
    let start = testing::T0.add_millis(10_000);
    let c0 = start.as_secs() / 30;
    let mut users = Vec::new();
    let mut totps = Vec::new();
    engine
        .batch(|engine| {
            for (i, f) in fobs.iter().enumerate() {
                let name = format!("user{i}");
                engine.create_user(&name, "pw").unwrap();
                let p = Principal::User(name);
                let t = totp_of(f);
                engine
                    .enable_mfa_device(
                        start,
                        Channel::Console,
                        &p,
                        f.serial().as_str(),
                        &t.code_for_step(c0 - 1).to_string(),
                        &t.code_for_step(c0).to_string(),
                    )
                    .unwrap();
                users.push(p);
                totps.push(t);
            }
        })
        .unwrap();
    let serials: Vec<String> = fobs
        .iter()
        .map(|f| f.serial().as_str().to_string())
        .collect();
    let mut now = start;
    let mut g = c.benchmark_group("verify");
    g.throughput(Throughput::Elements(n as u64));
    if n > 1000 {
        g.sample_size(10);
    }
    g.bench_function(name, |b| {
        b.iter_batched(
            || {
                now = now.add_millis(86_400_000);
                let s = now.as_secs() / 30;
                let codes: Vec<String> = totps
                    .iter()
                    .map(|t| t.code_for_step(s).to_string())
                    .collect();
                (now, codes)
            },
            |(t, codes)| {
                engine
                    .batch(|e| {
                        for i in 0..n {
                            e.verify_session_mfa(t, &users[i], &serials[i], &codes[i])
                                .unwrap();
                        }
                    })
                    .unwrap();
            },
            BatchSize::LargeInput,
        );
    });
    g.finish();
}

fn verify_sqlite_batch(c: &mut Criterion) {
    sqlite_fleet_batch(c, 100, "sqlite_batch_100");
    sqlite_fleet_batch(c, 10_000, "sqlite_day_of_10k_fobs");
}

/// The enable/resync search: worst case (codes not in the ±1000 window:
/// 2001 steps searched, state unchanged) and a typical hit 7 steps off.
fn sync_search(c: &mut Criterion) {
    let (engine, fobs) = testing::in_memory_with_fobs(2, testing::T0);
    let totp = enable(&engine, &fobs[0]);
    let alice = Principal::user("alice");
    let serial = fobs[0].serial().as_str().to_string();
    let now = testing::T0.add_millis(10_000);
    let far = now.as_secs() / 30 + 5_000;
    let (w1, w2) = (
        totp.code_for_step(far).to_string(),
        totp.code_for_step(far + 1).to_string(),
    );
    let mut g = c.benchmark_group("sync_search");
    // A month after the enable: the replay barrier lies far below the
    // window, so all 2001 steps are searched.
    let month = now.add_millis(30 * 86_400_000);
    g.bench_function("resync_miss_2001_steps", |b| {
        b.iter(|| {
            let r = engine.resync_mfa_device(black_box(month), &alice, &serial, &w1, &w2);
            assert!(r.is_err());
        });
    });
    let mut t = now;
    g.bench_function("resync_hit_7_steps_ahead", |b| {
        b.iter_batched(
            || {
                t = t.add_millis(300_000);
                let s = t.as_secs() / 30 + 7;
                (
                    t,
                    totp.code_for_step(s - 1).to_string(),
                    totp.code_for_step(s).to_string(),
                )
            },
            |(t, c1, c2)| {
                engine
                    .resync_mfa_device(t, &alice, &serial, &c1, &c2)
                    .unwrap()
            },
            BatchSize::SmallInput,
        );
    });
    // The bare search cost through enable (a miss on an unassigned token).
    let serial1 = fobs[1].serial().as_str().to_string();
    let bob = Principal::user("bob");
    g.bench_function("enable_miss_2001_steps", |b| {
        b.iter(|| {
            let r = engine.enable_mfa_device(
                black_box(now),
                Channel::Console,
                &bob,
                &serial1,
                &w1,
                &w2,
            );
            assert!(r.is_err());
        });
    });
    g.finish();
}

criterion_group!(
    benches,
    verify_in_memory,
    verify_sqlite,
    verify_sqlite_batch,
    sync_search
);
criterion_main!(benches);
