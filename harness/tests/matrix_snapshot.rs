//! The conformance matrix of the built-in suite against every engine, as
//! JSON, pinned by an insta snapshot: a behaviour change in any engine (a
//! new privacyIDEA, a PAM module update) or in our suite shows up as a
//! diff of `snapshots/matrix_snapshot__matrix.snap`.
//!
//! privacyIDEA's column (≈1,500 REST calls) has its own file,
//! `matrix_privacyidea.rs`, to keep each test file short.
//!
//! The PAM columns (pam-google, pam-oath) are not pinned here yet: about one
//! PAM enable in a few hundred is refused although both codes are inside the
//! window, and one pam_oath cell flips between runs (docs/conformance.md,
//! "Known issues"). A snapshot that fails at random would hide real diffs, so
//! until that is understood the PAM adapters are checked by the
//! deterministic accept/reject tests in `matrix_adapters.rs`.
//!
//! A missing engine fails with its install hint (`bash tests/matrix/setup.sh`).

use fobsim_harness::matrix::{self, Options};
use fobsim_harness::suite;

#[test]
fn matrix() {
    let scenarios = suite::builtin().expect("built-in suite");
    let opts = Options {
        engines: ["builtin", "oathtool", "moto"]
            .iter()
            .map(ToString::to_string)
            .collect(),
        seed: 1,
        // No drift maps here: 65 fresh PAM enables per map hit a rare,
        // unexplained PAM refusal under load (docs/conformance.md, "Known
        // issues"); `fobsim matrix` draws them, and privacyIDEA's snapshot
        // pins one row of its map.
        sweep: None,
    };
    let (m, _timings) = matrix::run(&opts, &scenarios, &mut |_, _, _| {}).expect("known engines");
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
