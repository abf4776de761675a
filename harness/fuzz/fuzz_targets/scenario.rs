//! The scenario parser on arbitrary text: never panics; a refusal names a
//! line and column inside the file (`file:line:col: ...`).
#![no_main]

use fobsim_harness::scenario::parse;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Err(e) = parse("fuzz.scenario", text) {
        let lines = text.lines().count().max(1);
        assert!(e.line >= 1 && e.line <= lines + 1, "line {} of {lines}: {e}", e.line);
        assert!(e.col >= 1, "{e}");
        assert!(e.to_string().starts_with("fuzz.scenario:"), "{e}");
    }
});
