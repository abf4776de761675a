//! Codes, secrets, times and durations typed by users: errors, never panics.
#![no_main]

use fobsim_core::{Code, Secret, Timestamp, time};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    for digits in 5..=9 {
        if let Ok(c) = Code::parse(text, digits) {
            assert_eq!(c.to_string(), text);
        }
    }
    let _ = Secret::from_hex(text);
    let _ = Secret::from_base32(text);
    if let Ok(t) = text.parse::<Timestamp>() {
        let _ = t.to_string();
    }
    if let Ok(ms) = time::parse_duration_ms(text) {
        let _ = time::format_duration_ms(ms);
    }
});
