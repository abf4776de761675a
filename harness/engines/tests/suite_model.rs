//! The built-in suite against the shipped model of the rules table.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test stops loudly

use fobsim_harness::driver::InProcess;
use fobsim_harness::report::Report;
use fobsim_harness::runner::{DEFAULT_SEED, Runner, Verdict};
use fobsim_harness::suite;
use fobsim_harness::testing::ModelEngine;

#[test]
fn builtin_suite_passes_against_the_model() {
    let scenarios = suite::builtin().unwrap();
    assert!(scenarios.len() >= 40, "{} scenarios", scenarios.len());
    let mut engine = ModelEngine::new();
    let mut fobs = InProcess;
    let mut runner = Runner::new(&mut engine, &mut fobs, DEFAULT_SEED);
    let results: Vec<_> = scenarios.iter().map(|s| runner.run(s)).collect();
    let report = Report::new("model", DEFAULT_SEED, &results);
    assert!(report.summary.all_passed(), "{}", report.text());
}

#[test]
fn builtin_suite_passes_against_the_builtin_engine() {
    let scenarios = suite::builtin().unwrap();
    let mut engine = fobsim_engines::builtin::Builtin::in_memory(DEFAULT_SEED);
    let mut fobs = InProcess;
    let mut runner = Runner::new(&mut engine, &mut fobs, DEFAULT_SEED);
    let results: Vec<_> = scenarios.iter().map(|s| runner.run(s)).collect();
    let report = Report::new("builtin", DEFAULT_SEED, &results);
    for r in &results {
        assert_eq!(r.verdict, Verdict::Pass, "{}", report.text());
    }
}
