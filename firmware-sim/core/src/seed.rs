//! What a token vendor ships for one token: its serial, how it counts, its
//! HMAC, digits and shared secret. Device, engine and harness all speak it.

use sha2::Digest as _;

use crate::{Algorithm, OtpError, Secret, Serial};

/// How the device counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// Time-based (RFC 6238) with a step of `period` seconds.
    Totp {
        /// Step length in seconds.
        period: u64,
    },
    /// Event-based (RFC 4226): the counter advances on every press.
    Hotp,
}

/// What a vendor's seed file holds for one token. The only way the secret
/// leaves a fob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeedRecord {
    /// Serial number.
    pub serial: Serial,
    /// Time- or event-based, with the step length.
    pub kind: Kind,
    /// HMAC hash.
    pub algorithm: Algorithm,
    /// Digits.
    pub digits: u8,
    /// The shared secret.
    pub secret: Secret,
    /// Current HOTP counter (0 for time-based tokens).
    pub counter: u64,
}

/// Derive a secret of `len` bytes from a seed and serial (SHA-512 in counter
/// mode). Deterministic test secrets; not a KDF for real keys.
///
/// # Errors
/// [`OtpError::EmptySecret`] for `len == 0`.
pub fn derive_secret(seed: u64, serial: &Serial, len: usize) -> Result<Secret, OtpError> {
    let mut out = Vec::with_capacity(len);
    let mut block = 0u32;
    while out.len() < len {
        let mut h = sha2::Sha512::new();
        h.update(b"fobsim-secret-v1");
        h.update(seed.to_be_bytes());
        h.update(block.to_be_bytes());
        h.update(serial.as_str().as_bytes());
        out.extend_from_slice(&h.finalize());
        block += 1;
    }
    out.truncate(len);
    Secret::new(out)
}
