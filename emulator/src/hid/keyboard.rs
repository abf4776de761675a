//! The optional boot keyboard: on a press it types the code and Enter.
//! Each key is a key-down report followed by a key-up (all zero) report,
//! so repeated digits are seen as separate key strokes.

/// Length of a boot-keyboard input report.
pub const KEYBOARD_REPORT_LEN: usize = 8;

/// A boot-keyboard input report: modifiers, reserved, six key codes.
pub type KeyReport = [u8; KEYBOARD_REPORT_LEN];

/// HID usage (page 7) of Enter.
pub const KEY_ENTER: u8 = 0x28;

/// HID usage (page 7) of a digit: `1`..`9` are 0x1E..0x26, `0` is 0x27.
#[must_use]
pub fn digit_usage(d: u8) -> Option<u8> {
    match d {
        b'0' => Some(0x27),
        b'1'..=b'9' => Some(0x1E + (d - b'1')),
        _ => None,
    }
}

/// The reports that type `text` (its digits; other characters are skipped)
/// followed by Enter: key down, key up for each.
#[must_use]
pub fn type_code(text: &str) -> Vec<KeyReport> {
    let mut out = Vec::with_capacity(2 * (text.len() + 1));
    for usage in text.bytes().filter_map(digit_usage).chain([KEY_ENTER]) {
        out.push([0, 0, usage, 0, 0, 0, 0, 0]);
        out.push([0; KEYBOARD_REPORT_LEN]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_typing_a_code_with_repeated_digits() {
        let s: Vec<String> = type_code("100990")
            .iter()
            .map(|r| r.iter().map(|b| format!("{b:02x}")).collect::<String>())
            .collect();
        insta::assert_snapshot!(s.join("\n"));
    }
}
