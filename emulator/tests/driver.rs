//! The pty driver (for the harness) gives the same answers as an in-process
//! fob for the same spec and calls.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test stops loudly

use std::time::Duration;

use fobsim_core::Timestamp;
use fobsim_emulator::serial::driver::{PtyFobError, PtyHost};
use fobsim_firmware::{Drift, Fob, FobSpec, preset};

fn spec(model: &str, now: Timestamp) -> FobSpec {
    let m = preset(model).unwrap();
    let mut s = FobSpec::seeded(m, m.serial(77).unwrap(), 5, now).unwrap();
    s.drift = Drift {
        offset_ms: 12_345,
        ppm: 15.0,
        jitter_ms: 700,
    };
    s
}

#[test]
fn pty_fob_matches_in_process_fob_call_for_call() {
    let host = PtyHost::new(Duration::from_secs(10)).unwrap();
    for model in ["gaht", "c200", "d8", "c100"] {
        let t0 = Timestamp::from_secs(1_650_000_000);
        let mut local = Fob::new(spec(model, t0)).unwrap();
        let mut pty = host.attach(spec(model, t0)).unwrap();
        assert!(pty.path().starts_with("/dev/pts"));
        assert_eq!(pty.info(), local.info());
        let offset = |f: &Fob, now: Timestamp| {
            f.device_ms(now)
                .map(|d| d - i64::try_from(now.as_millis()).unwrap())
        };
        let mut now = t0;
        for step in 0..40i64 {
            now = now.add_millis(step * 3_917 + 86_400_000 * (step % 3));
            match step % 10 {
                0 | 4 | 7 => {
                    assert_eq!(pty.press(now).unwrap(), local.press(now), "{model} {step}")
                }
                1 | 5 | 8 => assert_eq!(
                    pty.display(now).unwrap(),
                    local.display(now),
                    "{model} {step}"
                ),
                2 => assert_eq!(pty.clock_offset_ms(now).unwrap(), offset(&local, now)),
                3 => {
                    let d = Drift {
                        offset_ms: -step * 1000,
                        ppm: -4.75,
                        jitter_ms: 0,
                    };
                    pty.set_drift(now, d).unwrap();
                    local.set_drift(now, d).unwrap();
                }
                6 => {
                    pty.drain_battery(now).unwrap();
                    local.drain_battery(now);
                    assert_eq!(pty.clock_offset_ms(now).unwrap(), None);
                    assert_eq!(pty.press(now).unwrap(), local.press(now));
                }
                _ => {
                    pty.swap_battery(now).unwrap();
                    local.swap_battery(now);
                }
            }
        }
        let bad = Drift {
            ppm: 1e9,
            ..Drift::NONE
        };
        assert_eq!(
            pty.set_drift(now, bad),
            Err(PtyFobError::Fob(local.set_drift(now, bad).unwrap_err()))
        );
        assert_eq!(pty.press(now).unwrap(), local.press(now));
    }
}
