//! TOTP generation throughput: our precomputed-state core vs totp-rs
//! `generate` on the same keys. Criterion reports time per code; codes/s per
//! core = 1 / time. `fobsim bench` prints the same comparison as numbers.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test stops loudly

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use fobsim_core::{Algorithm, Backend, Key, Totp};
use std::hint::black_box;

fn secret(alg: Algorithm) -> Vec<u8> {
    let n = match alg {
        Algorithm::Sha1 => 20,
        Algorithm::Sha256 => 32,
        Algorithm::Sha512 => 64,
    };
    (0..n).map(|i| i as u8 ^ 0x5a).collect()
}

fn generation(c: &mut Criterion) {
    for alg in Algorithm::ALL {
        let mut g = c.benchmark_group(format!("totp_generate/{alg}"));
        g.throughput(Throughput::Elements(1));
        let ours = Totp::new(alg, &secret(alg), 6, 30, 0).unwrap();
        let mut t = 1_700_000_000u64;
        g.bench_function("fobsim", |b| {
            b.iter(|| {
                t += 30;
                black_box(ours.code_for_step(black_box(t / 30)))
            })
        });
        let key = Key::new(alg, &secret(alg)).unwrap();
        let portable = key.with_backend(Backend::Portable).unwrap();
        g.bench_function(format!("fobsim-{:?}", key.backend()), |b| {
            b.iter(|| {
                t += 30;
                black_box(key.truncated(black_box(t / 30)) % 1_000_000)
            })
        });
        let mut buf = [fobsim_core::Code::default(); 64];
        g.bench_function("fobsim-batch64", |b| {
            b.iter_custom(|iters| {
                let start = std::time::Instant::now();
                for _ in 0..iters.div_ceil(64) {
                    t += 64 * 30;
                    ours.codes_for_steps(black_box(t / 30), &mut buf);
                    black_box(&buf);
                }
                start.elapsed()
            })
        });
        g.bench_function("fobsim-Portable", |b| {
            b.iter(|| {
                t += 30;
                black_box(portable.truncated(black_box(t / 30)) % 1_000_000)
            })
        });
        let their_alg = match alg {
            Algorithm::Sha1 => totp_rs::Algorithm::SHA1,
            Algorithm::Sha256 => totp_rs::Algorithm::SHA256,
            Algorithm::Sha512 => totp_rs::Algorithm::SHA512,
        };
        let theirs = totp_rs::Builder::new()
            .with_algorithm(their_alg)
            .with_secret(secret(alg))
            .build_noncompliant();
        g.bench_function("totp-rs", |b| {
            b.iter(|| {
                t += 30;
                black_box(theirs.generate(black_box(t)))
            })
        });
        g.finish();
    }
}

criterion_group!(benches, generation);
criterion_main!(benches);
