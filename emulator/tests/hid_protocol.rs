//! The HID framing carries the serial protocol's commands unchanged: for
//! every command, the answer over HID (status + text) is the serial reply
//! line (`OK text` / `ERR code text`), on the same fob at the same time.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test stops loudly

use fobsim_core::Timestamp;
use fobsim_emulator::command::{Command, execute};
use fobsim_emulator::hid::HidOptions;
use fobsim_emulator::hid::frame::{AnswerAssembler, encode_command};
use fobsim_emulator::hid::session::HidSession;
use fobsim_firmware::{Fob, FobSpec, preset};

fn fob(now: Timestamp) -> Fob {
    let m = preset("c200").unwrap();
    Fob::new(FobSpec::seeded(m, m.serial(3).unwrap(), 11, now).unwrap()).unwrap()
}

#[test]
fn every_command_answers_over_hid_as_over_serial() {
    let now = Timestamp::from_secs(1_234_567_890);
    let lines = [
        "INFO",
        "DISPLAY",
        "PRESS",
        "DISPLAY",
        "PING",
        "PING abc-9",
        "HELP",
        "CLOCK",
        "DRIFT",
        "DRIFT offset=+47s",
        "DRIFT ppm=-20.5",
        "DRIFT offset=-3s ppm=1 jitter=250ms",
        "DRIFT ppm=1e9",
        "BATTERY",
        "BATTERY DRAIN",
        "PRESS",
        "CLOCK",
        "BATTERY SWAP",
        "RTC RESET",
        "PRESS",
    ];
    for test_mode in [false, true] {
        let mut serial_fob = fob(now);
        let mut hid_fob = fob(now);
        let mut session = HidSession::new(HidOptions::default());
        for (i, line) in lines.iter().enumerate() {
            let cmd = Command::parse(line).unwrap();
            let mut serial = Vec::new();
            execute(&cmd, &mut serial_fob, now, test_mode).emit(&mut serial);
            let serial = String::from_utf8(serial).unwrap();
            let serial = serial.trim_end();

            let seq = u8::try_from(i).unwrap();
            session.output(&encode_command(seq, &cmd), &mut |c| {
                execute(c, &mut hid_fob, now, test_mode)
            });
            let mut asm = AnswerAssembler::new(seq);
            let mut answer = None;
            while let Some(r) = session.next_input() {
                answer = asm.feed(&r).unwrap();
            }
            let a = answer.unwrap();
            let as_line = if a.status == 0 {
                if a.text.is_empty() {
                    "OK".to_string()
                } else {
                    format!("OK {}", a.text)
                }
            } else {
                format!("ERR {} {}", a.status, a.text)
            };
            assert_eq!(as_line, serial, "{line} (test mode {test_mode})");
        }
    }
}
