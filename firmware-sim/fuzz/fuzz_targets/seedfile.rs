//! Seed files come from vendors and users: any bytes must give records or a
//! line-numbered error, never a panic. Whatever parses must survive a
//! write/parse round trip unchanged.
#![no_main]

use fobsim_core::seedfile::{self, SeedFormat};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(records) = seedfile::parse(text) {
        for format in [SeedFormat::Pskc, SeedFormat::Csv] {
            let again = seedfile::parse(&seedfile::write(&records, format)).expect("round trip parses");
            assert_eq!(again, records, "{format:?} round trip changed the records");
        }
    }
});
