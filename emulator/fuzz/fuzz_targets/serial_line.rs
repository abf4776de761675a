//! The serial line codec on arbitrary bytes, cut into arbitrary chunks:
//! never panics, memory stays bounded, every reply is one well-formed line,
//! and the secret never shows.
#![no_main]

use fobsim_emulator::command::execute;
use fobsim_emulator::serial::session::Session;
use fobsim_emulator::serial::MAX_LINE;
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
    let chunk = usize::from(cut).max(1);
    let mut session = Session::new();
    let mut out = Vec::new();
    for piece in rest.chunks(chunk) {
        session.feed(piece, &mut out, &mut |cmd| execute(cmd, &mut fob, now, test_mode));
        assert!(session.pending() <= MAX_LINE);
    }
    let text = std::str::from_utf8(&out).expect("replies are ASCII");
    for line in text.split_terminator("\r\n") {
        assert!(line.starts_with("OK") || line.starts_with("ERR "), "{line:?}");
        assert!(!line.contains(['\r', '\n']));
        assert!(line.len() < 512);
    }
    assert!(out.is_empty() || out.ends_with(b"\r\n"));
    assert!(!text.to_ascii_lowercase().contains(&secret_hex));
});
