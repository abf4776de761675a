//! The whole built-in suite against the built-in engine (target: < 1 s).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test stops loudly

use criterion::{Criterion, criterion_group, criterion_main};
use fobsim_engines::builtin::Builtin;
use fobsim_harness::driver::InProcess;
use fobsim_harness::runner::{DEFAULT_SEED, Runner};
use fobsim_harness::suite;

fn whole_suite(c: &mut Criterion) {
    let scenarios = suite::builtin().expect("the built-in suite parses");
    let mut g = c.benchmark_group("suite");
    g.sample_size(10);
    g.bench_function(
        format!("builtin-memory/{}-scenarios", scenarios.len()),
        |b| {
            b.iter(|| {
                let mut engine = Builtin::in_memory(DEFAULT_SEED);
                let mut fobs = InProcess;
                let mut runner = Runner::new(&mut engine, &mut fobs, DEFAULT_SEED);
                // Verdicts are the tests' business; here only the time counts.
                let passed = scenarios
                    .iter()
                    .filter(|s| runner.run(s).verdict == fobsim_harness::runner::Verdict::Pass)
                    .count();
                std::hint::black_box(passed)
            });
        },
    );
    g.bench_function("parse-builtin-suite", |b| {
        b.iter(|| suite::builtin().map(|v| v.len()))
    });
    g.finish();
}

criterion_group!(benches, whole_suite);
criterion_main!(benches);
