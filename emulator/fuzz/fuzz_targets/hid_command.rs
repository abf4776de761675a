//! The HID command framing on arbitrary reports: never panics, every
//! report gets exactly one well-formed answer message echoing its seq, the
//! pending queue stays bounded, and the secret never shows.
#![no_main]

use fobsim_emulator::hid::HidOptions;
use fobsim_emulator::hid::REPORT_LEN;
use fobsim_emulator::hid::frame::{AnswerAssembler, parse_command};
use fobsim_emulator::hid::session::{HidSession, MAX_PENDING};
use fobsim_emulator::command::execute;
use fobsim_core::{Timestamp};
use fobsim_firmware::{Fob, FobSpec, preset};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&cut, rest)) = data.split_first() else {
        return;
    };
    let now = Timestamp::from_secs(1_111_111_109);
    let m = preset("gaht").unwrap();
    let mut fob = Fob::new(FobSpec::seeded(m, m.serial(1).unwrap(), 7, now).unwrap()).unwrap();
    let secret_hex = fob.seed_record().secret.to_hex();
    let test_mode = cut & 1 == 1;
    let mut session = HidSession::new(HidOptions {
        keyboard: cut & 2 == 2,
    });
    // Reports of 1..=65 bytes: short, exact and over-long ones.
    let len = usize::from(cut >> 2) % (REPORT_LEN + 1) + 1;
    for report in rest.chunks(len) {
        let (seq, _) = parse_command(report);
        session.output(report, &mut |cmd| execute(cmd, &mut fob, now, test_mode));
        assert!(session.pending() <= MAX_PENDING);
        let mut asm = AnswerAssembler::new(seq);
        let mut answer = None;
        while let Some(r) = session.next_input() {
            assert!(answer.is_none(), "one message per command");
            answer = asm.feed(&r).expect("well-formed answer");
        }
        let answer = answer.expect("every report is answered");
        assert!(answer.text.is_ascii());
        assert!(!answer.text.to_ascii_lowercase().contains(&secret_hex));
        while session.next_key().is_some() {}
    }
});
