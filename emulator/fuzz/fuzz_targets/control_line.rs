//! The control-plane JSON-lines codec on arbitrary bytes: never panics, and
//! every response is one JSON line that parses back.
#![no_main]

use fobsim_clock::control::{Response, Session};
use fobsim_clock::TrueClock;
use fobsim_emulator::{Fleet, FleetSpec};
use fobsim_core::Timestamp;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let spec = FleetSpec::uniform("gaht", 2, 1).unwrap();
    let fleet = Fleet::new(&spec, TrueClock::manual(Timestamp::from_secs(1_000_000_000)), true).unwrap();
    let mut session = Session::new();
    let mut out = Vec::new();
    for piece in data.chunks(97) {
        session.feed(fleet.clock(), &fleet, piece, &mut out);
    }
    for line in out.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        Response::parse(line).expect("responses parse back");
    }
});
