//! Model presets: what a vendor's token does, and how its serials look.

use fobsim_core::{Algorithm, Kind, Serial, SerialError};

/// A token model: algorithm, digits, step, display time and serial format.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Model {
    /// Short name used on the command line and in scenario files.
    pub name: &'static str,
    /// One line for `fobsim models`.
    pub description: &'static str,
    /// Time- or event-based.
    pub kind: Kind,
    /// HMAC hash.
    pub algorithm: Algorithm,
    /// Digits shown.
    pub digits: u8,
    /// How long the display stays lit after a press, in milliseconds.
    pub display_ms: u64,
    /// Serial numbers are this prefix followed by `serial_digits` digits.
    pub serial_prefix: &'static str,
    /// Number of digits after the prefix.
    pub serial_digits: u8,
    /// Length of the secret the vendor programs, in bytes.
    pub secret_len: usize,
}

/// The built-in presets, in the order `fobsim models` lists them.
pub const PRESETS: &[Model] = &[
    Model {
        name: "gaht",
        description: "Gemalto/Thales-style fob as sold for AWS: TOTP, 6 digits, 30 s, SHA1, serial GAHT + 8 digits",
        kind: Kind::Totp { period: 30 },
        algorithm: Algorithm::Sha1,
        digits: 6,
        display_ms: 15_000,
        serial_prefix: "GAHT",
        serial_digits: 8,
        secret_len: 20,
    },
    Model {
        name: "c200",
        description: "Feitian c200-like fob: TOTP, 6 digits, 60 s, SHA1 (known to drift 7-8 steps after years)",
        kind: Kind::Totp { period: 60 },
        algorithm: Algorithm::Sha1,
        digits: 6,
        display_ms: 30_000,
        serial_prefix: "C200",
        serial_digits: 9,
        secret_len: 20,
    },
    Model {
        name: "d8",
        description: "8-digit fob: TOTP, 8 digits, 30 s, SHA256",
        kind: Kind::Totp { period: 30 },
        algorithm: Algorithm::Sha256,
        digits: 8,
        display_ms: 15_000,
        serial_prefix: "OTPD8",
        serial_digits: 8,
        secret_len: 32,
    },
    Model {
        name: "c100",
        description: "Feitian c100-like event fob: HOTP, 6 digits, SHA1, counter advances per press",
        kind: Kind::Hotp,
        algorithm: Algorithm::Sha1,
        digits: 6,
        display_ms: 30_000,
        serial_prefix: "C100",
        serial_digits: 9,
        secret_len: 20,
    },
];

/// Look up a preset by name (case-insensitive).
#[must_use]
pub fn preset(name: &str) -> Option<&'static Model> {
    PRESETS.iter().find(|m| m.name.eq_ignore_ascii_case(name))
}

impl Model {
    /// The step length for a time-based model, `None` for an event model.
    #[must_use]
    pub fn period(&self) -> Option<u64> {
        match self.kind {
            Kind::Totp { period } => Some(period),
            Kind::Hotp => None,
        }
    }

    /// The `index`-th serial of this model: prefix + zero-padded index
    /// (`gaht` 7 → `GAHT00000007`). The index wraps at the digit count.
    ///
    /// # Errors
    /// [`SerialError`] if a hand-made model's prefix makes an invalid serial
    /// (never for the presets).
    pub fn serial(&self, index: u64) -> Result<Serial, SerialError> {
        let modulus = 10u64.saturating_pow(u32::from(self.serial_digits));
        let text = format!(
            "{}{:0width$}",
            self.serial_prefix,
            index % modulus,
            width = usize::from(self.serial_digits)
        );
        Serial::new(&text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_are_valid() {
        for m in PRESETS {
            assert!(fobsim_core::check_digits(u32::from(m.digits)).is_ok());
            assert_eq!(
                m.serial(7).unwrap().as_str().len(),
                m.serial_prefix.len() + usize::from(m.serial_digits)
            );
            assert_eq!(preset(&m.name.to_uppercase()), Some(m));
        }
        assert_eq!(
            preset("gaht").unwrap().serial(12_345_678).unwrap().as_str(),
            "GAHT12345678"
        );
        assert!(preset("nope").is_none());
    }
}
