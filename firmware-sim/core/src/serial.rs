//! Device serial numbers, validated as AWS validates `SerialNumber`.

use std::fmt;
use std::str::FromStr;

/// Shortest serial AWS accepts.
pub const MIN_SERIAL_LEN: usize = 9;
/// Longest serial AWS accepts.
pub const MAX_SERIAL_LEN: usize = 256;

/// Why a serial number was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SerialError {
    /// Fewer than 9 or more than 256 characters.
    #[error("serial number must be {MIN_SERIAL_LEN}-{MAX_SERIAL_LEN} characters, got {0}")]
    Length(usize),
    /// A character outside `[\w+=/:,.@-]`.
    #[error(
        "serial number may contain only letters, digits and _+=/:,.@- ; found {0:?} at position {1}"
    )]
    Character(char, usize),
}

/// A device serial number: 9–256 characters of `[\w+=/:,.@-]` (ASCII word
/// characters), as the IAM API's `SerialNumber` parameter requires.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Serial(String);

fn allowed(c: char) -> bool {
    c.is_ascii_alphanumeric() || "_+=/:,.@-".contains(c)
}

impl Serial {
    /// Validate and wrap a serial number.
    ///
    /// # Errors
    /// [`SerialError`] saying what is wrong.
    pub fn new(s: &str) -> Result<Self, SerialError> {
        let n = s.chars().count();
        if !(MIN_SERIAL_LEN..=MAX_SERIAL_LEN).contains(&n) {
            return Err(SerialError::Length(n));
        }
        if let Some((i, c)) = s.chars().enumerate().find(|(_, c)| !allowed(*c)) {
            return Err(SerialError::Character(c, i));
        }
        Ok(Serial(s.to_string()))
    }

    /// The serial as text.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Serial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for Serial {
    type Err = SerialError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Serial::new(s)
    }
}

impl AsRef<str> for Serial {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aws_serial_rules() {
        assert!(Serial::new("GAHT12345678").is_ok());
        assert!(Serial::new("arn:aws:iam::123456789012:mfa/alice").is_ok());
        assert_eq!(Serial::new("GAHT1234"), Err(SerialError::Length(8)));
        assert_eq!(Serial::new(&"A".repeat(257)), Err(SerialError::Length(257)));
        assert!(Serial::new(&"A".repeat(256)).is_ok());
        assert_eq!(
            Serial::new("GAHT 12345678"),
            Err(SerialError::Character(' ', 4))
        );
        assert!(matches!(
            Serial::new("GAHT1234567\u{e9}"),
            Err(SerialError::Character('\u{e9}', 11))
        ));
        assert!(matches!(
            Serial::new("GAHT\n12345678"),
            Err(SerialError::Character('\n', 4))
        ));
    }
}
