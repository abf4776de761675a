//! privacyIDEA's column of the conformance matrix (the built-in suite and
//! its drift map), as JSON, pinned by an insta snapshot: a behaviour change
//! in privacyIDEA (a new release) or in our suite shows up as a diff of `snapshots/matrix_privacyidea__matrix_privacyidea.snap`.
//!
//! This file holds privacyIDEA's column (its server is slow: ~10 REST calls/s);
//! `matrix_snapshot.rs` the other engines.
//!
//! A missing engine fails with its install hint (`bash tests/matrix/setup.sh`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test stops loudly

use fobsim_harness::matrix::{self, Options};
use fobsim_harness::suite;
use fobsim_harness::sweep::SweepSpec;

#[test]
fn matrix_privacyidea() {
    let scenarios = suite::builtin().expect("built-in suite");
    let opts = Options {
        engines: ["privacyidea"].iter().map(ToString::to_string).collect(),
        seed: 1,
        // One row of the matrix's grid (delay 0): each cell is a fresh
        // token, and privacyIDEA spends ~0.3 s per /token/init (QR codes).
        sweep: Some(SweepSpec {
            delays_ms: vec![0],
            ..matrix::default_sweep()
        }),
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
    insta::assert_snapshot!("matrix_privacyidea", m.json());
}
