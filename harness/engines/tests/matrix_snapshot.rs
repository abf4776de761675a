//! The conformance matrix of the built-in suite against every engine, as
//! JSON, pinned by an insta snapshot: a behaviour change in any engine (a
//! new privacyIDEA, a PAM module update) or in our suite shows up as a
//! diff of `snapshots/matrix_snapshot__matrix.snap`.
//!
//! privacyIDEA's column (≈1,500 REST calls) has its own file,
//! `matrix_privacyidea.rs`, to keep each test file short.
//!
//! A missing engine fails with its install hint (`bash tests/matrix/setup.sh`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test stops loudly

use fobsim_harness::matrix::{self, Options};
use fobsim_harness::suite;

#[test]
fn matrix() {
    let scenarios = suite::builtin().expect("built-in suite");
    let opts = Options {
        engines: ["builtin", "pam-google", "pam-oath", "oathtool", "moto"]
            .iter()
            .map(ToString::to_string)
            .collect(),
        seed: 1,
        // No drift maps here, to keep this file short: `fobsim matrix` draws
        // them, and privacyIDEA's snapshot pins one row of its map.
        sweep: None,
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
    assert!(
        m.builtin_conforms(),
        "the built-in engine must pass its own suite:\n{}",
        m.text()
    );
    assert!(m.complete(), "an adapter broke:\n{}", m.text());
    insta::assert_snapshot!("matrix", m.json());
}
