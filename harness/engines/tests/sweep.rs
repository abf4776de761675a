//! Drift acceptance maps.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test stops loudly

use fobsim_engines::builtin::Builtin;
use fobsim_harness::driver::InProcess;
use fobsim_harness::sweep::{self, Cell, SweepSpec, YAxis};
use fobsim_harness::testing::ModelEngine;

fn small(y: YAxis) -> SweepSpec {
    let mut s = match y {
        YAxis::SubmitDelay => SweepSpec::submit_delay_default(),
        YAxis::SinceLastSignIn => SweepSpec::since_last_sign_in_default(),
    };
    s.offsets_ms = vec![-120_000, -30_000, 0, 30_000, 120_000];
    s.delays_ms.truncate(3);
    s
}

#[test]
fn submit_delay_map_of_the_builtin_engine() {
    let spec = small(YAxis::SubmitDelay);
    let mut engine = Builtin::in_memory(1);
    let map = sweep::run(&mut engine, &mut InProcess, &spec, &mut |_, _| {}).unwrap();
    use Cell::{Accepted as A, Rejected as R};
    // Delays 0 s, 15 s, 30 s; the press is mid-step. The enable (code 2
    // typed 15 s into its step) learned the offsets [-15 s, 75 s); 240 s
    // later they have widened by 4 ms. A fob 2 minutes fast shows a code
    // whose evidence at a 30 s delay is [75 s, 165 s): it meets them by the
    // 4 ms of drift allowance (docs/engine-rules.md).
    assert_eq!(map.cells[0], vec![R, A, A, A, R]);
    assert_eq!(map.cells[1], vec![R, A, A, A, R]);
    assert_eq!(map.cells[2], vec![R, A, A, A, A]);
    let text = map.summary();
    assert!(
        text.contains("15 cells: 10 accepted, 5 rejected, 0 locked"),
        "{text}"
    );
    let svg = map.svg().unwrap();
    assert!(svg.starts_with("<svg") && svg.contains("device clock offset"));
    assert_eq!(svg.matches("<rect").count(), 16);
}

#[test]
fn repeated_attempts_show_the_lockout() {
    let mut spec = small(YAxis::SinceLastSignIn);
    spec.attempts = 6;
    let mut engine = Builtin::in_memory(1);
    let map = sweep::run(&mut engine, &mut InProcess, &spec, &mut |_, _| {}).unwrap();
    for row in &map.cells {
        assert_eq!(
            row,
            &vec![
                Cell::Locked,
                Cell::Accepted,
                Cell::Accepted,
                Cell::Accepted,
                Cell::Locked
            ]
        );
    }
}

#[test]
fn model_and_builtin_draw_the_same_map() {
    let spec = small(YAxis::SubmitDelay);
    let a = sweep::run(
        &mut Builtin::in_memory(1),
        &mut InProcess,
        &spec,
        &mut |_, _| {},
    )
    .unwrap();
    let b = sweep::run(
        &mut ModelEngine::new(),
        &mut InProcess,
        &spec,
        &mut |_, _| {},
    )
    .unwrap();
    assert_eq!(a.cells, b.cells);
}

#[test]
fn bad_specs_are_errors() {
    let mut spec = small(YAxis::SubmitDelay);
    spec.model = "c100".into();
    assert!(
        sweep::run(
            &mut ModelEngine::new(),
            &mut InProcess,
            &spec,
            &mut |_, _| {}
        )
        .is_err()
    );
    let mut spec = small(YAxis::SubmitDelay);
    spec.offsets_ms.clear();
    assert!(
        sweep::run(
            &mut ModelEngine::new(),
            &mut InProcess,
            &spec,
            &mut |_, _| {}
        )
        .is_err()
    );
}
