//! Shared-secret bytes: parsed from hex or base32, redacted in `Debug`,
//! wiped on drop.

use zeroize::Zeroize;

use crate::OtpError;

/// The raw shared secret of a token. `Debug` prints only the length; the
/// bytes are zeroed when dropped. Hex and base32 are the two encodings that
/// vendors and tools use.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Vec<u8>);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Secret({} bytes)", self.0.len())
    }
}

impl Drop for Secret {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl Secret {
    /// Wrap raw bytes.
    ///
    /// # Errors
    /// [`OtpError::EmptySecret`] for no bytes.
    pub fn new(bytes: Vec<u8>) -> Result<Self, OtpError> {
        if bytes.is_empty() {
            return Err(OtpError::EmptySecret);
        }
        Ok(Secret(bytes))
    }

    /// Decode hex (either case; spaces ignored).
    ///
    /// # Errors
    /// [`OtpError::Hex`] for odd length or non-hex characters,
    /// [`OtpError::EmptySecret`] for an empty string.
    pub fn from_hex(s: &str) -> Result<Self, OtpError> {
        let clean: String = s.chars().filter(|c| !c.is_whitespace()).collect();
        let bytes = hex::decode(&clean).map_err(|e| OtpError::Hex(e.to_string()))?;
        Secret::new(bytes)
    }

    /// Decode base32 (RFC 4648; either case; spaces and `=` padding ignored).
    ///
    /// # Errors
    /// [`OtpError::Base32`] for characters outside the alphabet or a length
    /// that cannot be base32, [`OtpError::EmptySecret`] for an empty string.
    pub fn from_base32(s: &str) -> Result<Self, OtpError> {
        let clean: String = s
            .chars()
            .filter(|c| !c.is_whitespace() && *c != '=' && *c != '-')
            .map(|c| c.to_ascii_uppercase())
            .collect();
        let bytes = data_encoding::BASE32_NOPAD
            .decode(clean.as_bytes())
            .map_err(|e| OtpError::Base32(e.to_string()))?;
        Secret::new(bytes)
    }

    /// The bytes. Handle with care: never log them.
    #[must_use]
    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    /// Lower-case hex, for seed files.
    #[must_use]
    pub fn to_hex(&self) -> String {
        hex::encode(&self.0)
    }

    /// Unpadded upper-case base32, for seed files and authenticator apps.
    #[must_use]
    pub fn to_base32(&self) -> String {
        data_encoding::BASE32_NOPAD.encode(&self.0)
    }

    /// Number of bytes.
    #[must_use]
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Never true for a constructed secret; present for API completeness.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_and_base32_round_trip() {
        let s = Secret::from_hex("3132333435363738393031323334353637383930").unwrap();
        assert_eq!(s.expose(), b"12345678901234567890");
        assert_eq!(s.to_base32(), "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ");
        assert_eq!(
            Secret::from_base32("gezd gnbv gy3t qojq gezd gnbv gy3t qojq").unwrap(),
            s
        );
        assert_eq!(format!("{s:?}"), "Secret(20 bytes)");
    }

    #[test]
    fn malformed_secrets_are_errors() {
        assert!(matches!(Secret::from_hex("abc"), Err(OtpError::Hex(_))));
        assert!(matches!(Secret::from_hex("zz"), Err(OtpError::Hex(_))));
        assert_eq!(Secret::from_hex(""), Err(OtpError::EmptySecret));
        assert!(matches!(
            Secret::from_base32("1!"),
            Err(OtpError::Base32(_))
        ));
        assert!(matches!(Secret::from_base32("A"), Err(OtpError::Base32(_))));
    }
}
