//! The harness's fob driver over real serial ptys (the emulator's
//! `PtyHost`/`PtyFob`) gives the same verdicts and transcripts as
//! in-process fobs on the built-in suite (`fobsim run --transport serial`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test stops loudly

use std::time::Duration;

use fobsim_engines::builtin::Builtin;
use fobsim_harness::driver::InProcess;
use fobsim_harness::runner::Runner;
use fobsim_harness::serial::SerialBackend;

#[test]
fn the_builtin_suite_gives_the_same_results_over_serial_ptys_as_in_process() {
    let suite = fobsim_harness::suite::builtin().expect("the built-in suite");
    assert!(!suite.is_empty());
    let mut serial = SerialBackend::new(Duration::from_secs(10)).unwrap();
    for sc in &suite {
        let mut engine = Builtin::in_memory(1);
        let local = Runner::new(&mut engine, &mut InProcess, 7).run(sc);
        let mut engine = Builtin::in_memory(1);
        let over_serial = Runner::new(&mut engine, &mut serial, 7).run(sc);
        assert_eq!(over_serial.verdict, local.verdict, "{}", sc.id);
        assert_eq!(over_serial.transcript, local.transcript, "{}", sc.id);
    }
}
