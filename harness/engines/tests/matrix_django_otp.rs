//! django-otp's column of the conformance matrix (the built-in suite and
//! its drift map), as JSON, pinned by an insta snapshot: a behaviour change
//! in django-otp (a new release) or in our suite shows up as a diff of
//! `snapshots/matrix_django_otp__matrix_django_otp.snap`.
//!
//! A missing engine fails with its install hint (`bash tests/matrix/setup.sh`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test stops loudly

use fobsim_harness::matrix::{self, Options};
use fobsim_harness::suite;

#[test]
fn matrix_django_otp() {
    let scenarios = suite::builtin().expect("built-in suite");
    let opts = Options {
        engines: vec!["django-otp".to_string()],
        seed: 1,
        // The whole grid: each cell is a fresh user and device (~10 ms).
        sweep: Some(matrix::default_sweep()),
        throughput: 0,
    };
    let (m, _timings) = matrix::run(
        &opts,
        &fobsim_engines::Registry::new(opts.seed),
        &scenarios,
        &mut |_, _, _| {},
    )
    .expect("known engines");
    for c in &m.engines {
        if let Some(p) = &c.setup {
            panic!(
                "engine {} is not set up: {}\n  install: {}",
                c.name, p.missing, p.hint
            );
        }
    }
    assert!(m.complete(), "an adapter broke:\n{}", m.text());
    insta::assert_snapshot!("matrix_django_otp", m.json());
}

/// The driver is stopped by PID when the adapter is dropped, and its
/// project folder removed; the process answers django-otp's own versions.
#[test]
fn the_driver_stops_with_the_adapter() {
    let engine = fobsim_engines::django_otp::DjangoOtp::new().unwrap_or_else(|e| panic!("{e}"));
    let pid = engine.pid();
    assert!(
        engine.versions().starts_with("Django "),
        "{}",
        engine.versions()
    );
    assert!(fobsim_engines::cleanup::alive(pid));
    drop(engine);
    assert!(
        !fobsim_engines::cleanup::alive(pid),
        "driver {pid} still running"
    );
    assert!(!fobsim_engines::cleanup::registered().2.contains(&pid));
}
