//! fobsim's ground floor: the vocabulary that the device, the engine and
//! the harness all speak, and the OTP core they compute codes with.
//!
//! - time as a value: [`Timestamp`], durations ([`time`]), the one
//!   [`Clock`] trait and the harness's [`SimClock`];
//! - tokens as vendors ship them: [`Serial`], [`SeedRecord`] ([`Kind`],
//!   [`Algorithm`], digits, [`Secret`]) and vendor seed files
//!   ([`seedfile`]: PSKC RFC 6030, CSV), and the files that hold secrets
//!   ([`private_file`]: written new with mode 0600, read only if private);
//! - who acts and through which door: [`Principal`], [`Channel`];
//! - HOTP (RFC 4226) and TOTP (RFC 6238), allocation-free on the hot path.
//!
//! A [`Key`] precomputes the HMAC inner and outer hash states once (the
//! compression of `K ^ ipad` and `K ^ opad`), so every code afterwards costs
//! exactly two block compressions and no heap allocation.
//!
//! Time is always an argument: nothing here reads a clock. Times are Unix
//! seconds as `u64` (the RFC 6238 year-2603 row works); a *step* is the
//! TOTP counter `(t - t0) / period`; the *period* is the step length in
//! seconds.
//!
//! ```
//! use fobsim_core::{Algorithm, Totp};
//! let totp = Totp::new(Algorithm::Sha1, b"12345678901234567890", 8, 30, 0).unwrap();
//! assert_eq!(totp.code_at(59).unwrap().to_string(), "94287082");
//! ```

#![deny(unsafe_code)]
#![warn(missing_docs)]

mod key;
mod principal;
pub mod private_file;
mod secret;
mod seed;
pub mod seedfile;
mod serial;
#[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
mod shani;
pub mod time;

use std::fmt;
use std::str::FromStr;

pub use key::{Backend, Key};
pub use principal::{Channel, Principal};
pub use secret::Secret;
pub use seed::{Kind, SeedRecord, derive_secret};
pub use serial::{MAX_SERIAL_LEN, MIN_SERIAL_LEN, Serial, SerialError};
pub use time::{Clock, SimClock, Timestamp};

/// Smallest number of digits a code may have (RFC 4226 §5.3).
pub const MIN_DIGITS: u8 = 6;
/// Largest number of digits a code may have.
pub const MAX_DIGITS: u8 = 8;

/// Errors from building or using OTP generators.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OtpError {
    /// The number of digits is outside `6..=8`.
    #[error("digits must be between {MIN_DIGITS} and {MAX_DIGITS}, got {0}")]
    Digits(u32),
    /// The TOTP period (step length) is zero.
    #[error("the step length must be at least 1 second")]
    ZeroPeriod,
    /// The secret is empty.
    #[error("the secret is empty")]
    EmptySecret,
    /// A hex secret could not be decoded.
    #[error("malformed hex secret: {0}")]
    Hex(String),
    /// A base32 secret could not be decoded.
    #[error("malformed base32 secret: {0}")]
    Base32(String),
    /// An algorithm name was not recognised.
    #[error("unknown algorithm {0:?} (expected sha1, sha256 or sha512)")]
    Algorithm(String),
    /// A code is not exactly `digits` ASCII digits.
    #[error("a code must be exactly {digits} digits, got {got:?}")]
    CodeFormat {
        /// Expected number of digits.
        digits: u8,
        /// What was given (codes are not secrets; they are shown to users).
        got: String,
    },
    /// The time lies before the TOTP epoch `t0`.
    #[error("time {time} is before the TOTP epoch t0 = {t0}")]
    BeforeEpoch {
        /// The time asked for (Unix seconds).
        time: u64,
        /// The TOTP epoch (Unix seconds).
        t0: u64,
    },
}

/// The HMAC hash function.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Algorithm {
    /// HMAC-SHA-1 (the default of RFC 4226 and almost every hardware token).
    #[default]
    Sha1,
    /// HMAC-SHA-256.
    Sha256,
    /// HMAC-SHA-512.
    Sha512,
}

impl Algorithm {
    /// All algorithms, in a stable order.
    pub const ALL: [Algorithm; 3] = [Algorithm::Sha1, Algorithm::Sha256, Algorithm::Sha512];

    /// Lower-case name as used on the command line and in seed files.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Sha1 => "sha1",
            Algorithm::Sha256 => "sha256",
            Algorithm::Sha512 => "sha512",
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Algorithm {
    type Err = OtpError;

    /// Accepts `sha1`, `SHA1`, `sha-1`, `HMAC-SHA1` and the like.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let norm: String = s
            .trim()
            .to_ascii_lowercase()
            .trim_start_matches("hmac-")
            .chars()
            .filter(|c| *c != '-' && *c != '_')
            .collect();
        match norm.as_str() {
            "sha1" => Ok(Algorithm::Sha1),
            "sha256" => Ok(Algorithm::Sha256),
            "sha512" => Ok(Algorithm::Sha512),
            _ => Err(OtpError::Algorithm(s.to_string())),
        }
    }
}

/// Check a digit count.
///
/// # Errors
/// [`OtpError::Digits`] unless `6 <= digits <= 8`.
pub fn check_digits(digits: u32) -> Result<u8, OtpError> {
    if (u32::from(MIN_DIGITS)..=u32::from(MAX_DIGITS)).contains(&digits) {
        // In range, so it fits a u8.
        Ok(digits as u8)
    } else {
        Err(OtpError::Digits(digits))
    }
}

const POW10: [u32; 9] = [
    1,
    10,
    100,
    1_000,
    10_000,
    100_000,
    1_000_000,
    10_000_000,
    100_000_000,
];

/// A one-time code: a number shown with a fixed number of digits
/// (leading zeros are significant: `012345` is six digits).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Code {
    value: u32,
    digits: u8,
}

impl Default for Code {
    /// `000000`: a placeholder for buffers filled by [`Totp::codes_for_steps`].
    fn default() -> Self {
        Code {
            value: 0,
            digits: MIN_DIGITS,
        }
    }
}

impl Code {
    /// Build a code from its numeric value.
    ///
    /// # Errors
    /// [`OtpError::Digits`] for a bad digit count, [`OtpError::CodeFormat`]
    /// if `value` has more digits than `digits`.
    pub fn new(value: u32, digits: u8) -> Result<Self, OtpError> {
        let d = check_digits(u32::from(digits))?;
        if value >= POW10[usize::from(d)] {
            return Err(OtpError::CodeFormat {
                digits: d,
                got: value.to_string(),
            });
        }
        Ok(Code { value, digits: d })
    }

    /// Parse a code typed by a user: exactly `digits` ASCII digits.
    ///
    /// # Errors
    /// [`OtpError::CodeFormat`] for anything else (spaces, signs, letters,
    /// the wrong length), [`OtpError::Digits`] for a bad digit count.
    pub fn parse(s: &str, digits: u8) -> Result<Self, OtpError> {
        let d = check_digits(u32::from(digits))?;
        let bytes = s.as_bytes();
        if bytes.len() != usize::from(d) || !bytes.iter().all(u8::is_ascii_digit) {
            return Err(OtpError::CodeFormat {
                digits: d,
                got: s.chars().take(32).collect(),
            });
        }
        let value = bytes
            .iter()
            .fold(0u32, |acc, b| acc * 10 + u32::from(b - b'0'));
        Ok(Code { value, digits: d })
    }

    /// The numeric value.
    #[must_use]
    pub fn value(self) -> u32 {
        self.value
    }

    /// The number of digits shown.
    #[must_use]
    pub fn digits(self) -> u8 {
        self.digits
    }

    /// Write the zero-padded digits into `buf` without allocating and return
    /// them as a string slice.
    pub fn write_to(self, buf: &mut [u8; 8]) -> &str {
        let n = usize::from(self.digits);
        let mut v = self.value;
        for slot in buf[..n].iter_mut().rev() {
            *slot = b'0' + (v % 10) as u8;
            v /= 10;
        }
        // Only ASCII digits were written.
        std::str::from_utf8(&buf[..n]).unwrap_or("")
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut buf = [0u8; 8];
        f.write_str(self.write_to(&mut buf))
    }
}

/// Reduce a dynamically truncated HMAC value to a code (RFC 4226 §5.3).
#[inline]
fn reduce(bin: u32, digits: u8) -> Code {
    Code {
        value: bin % POW10[usize::from(digits)],
        digits,
    }
}

/// An HOTP generator (RFC 4226): a prepared key and a digit count.
#[derive(Clone)]
pub struct Hotp {
    key: Key,
    digits: u8,
}

impl fmt::Debug for Hotp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hotp")
            .field("algorithm", &self.key.algorithm())
            .field("digits", &self.digits)
            .finish_non_exhaustive()
    }
}

impl Hotp {
    /// Prepare an HOTP generator.
    ///
    /// # Errors
    /// [`OtpError::EmptySecret`] or [`OtpError::Digits`].
    pub fn new(algorithm: Algorithm, secret: &[u8], digits: u32) -> Result<Self, OtpError> {
        Ok(Hotp {
            key: Key::new(algorithm, secret)?,
            digits: check_digits(digits)?,
        })
    }

    /// The code for `counter`: two block compressions, no allocation.
    #[inline]
    #[must_use]
    pub fn code(&self, counter: u64) -> Code {
        reduce(self.key.truncated(counter), self.digits)
    }

    /// Codes of the consecutive counters `first, first+1, …` into `out`
    /// (fast: see [`Key::truncated_batch`]); allocation-free.
    pub fn codes(&self, first: u64, out: &mut [Code]) {
        let mut buf = [0u32; 64];
        let mut counter = first;
        for chunk in out.chunks_mut(buf.len()) {
            let vals = &mut buf[..chunk.len()];
            self.key.truncated_batch(counter, vals);
            for (slot, v) in chunk.iter_mut().zip(vals.iter()) {
                *slot = reduce(*v, self.digits);
            }
            counter = counter.wrapping_add(chunk.len() as u64);
        }
    }

    /// The digit count.
    #[must_use]
    pub fn digits(&self) -> u8 {
        self.digits
    }

    /// The hash algorithm.
    #[must_use]
    pub fn algorithm(&self) -> Algorithm {
        self.key.algorithm()
    }

    /// The prepared key.
    #[must_use]
    pub fn key(&self) -> &Key {
        &self.key
    }
}

/// A TOTP generator (RFC 6238): HOTP over the time step
/// `(t - t0) / period`.
#[derive(Clone)]
pub struct Totp {
    hotp: Hotp,
    period: u64,
    t0: u64,
}

impl fmt::Debug for Totp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Totp")
            .field("algorithm", &self.hotp.algorithm())
            .field("digits", &self.hotp.digits)
            .field("period", &self.period)
            .field("t0", &self.t0)
            .finish_non_exhaustive()
    }
}

impl Totp {
    /// Prepare a TOTP generator.
    ///
    /// # Errors
    /// [`OtpError::EmptySecret`], [`OtpError::Digits`] or
    /// [`OtpError::ZeroPeriod`].
    pub fn new(
        algorithm: Algorithm,
        secret: &[u8],
        digits: u32,
        period: u64,
        t0: u64,
    ) -> Result<Self, OtpError> {
        if period == 0 {
            return Err(OtpError::ZeroPeriod);
        }
        Ok(Totp {
            hotp: Hotp::new(algorithm, secret, digits)?,
            period,
            t0,
        })
    }

    /// The step that contains Unix time `time`.
    ///
    /// # Errors
    /// [`OtpError::BeforeEpoch`] if `time < t0`.
    pub fn step_at(&self, time: u64) -> Result<u64, OtpError> {
        time.checked_sub(self.t0)
            .map(|d| d / self.period)
            .ok_or(OtpError::BeforeEpoch { time, t0: self.t0 })
    }

    /// The Unix time at which `step` begins (saturating at `u64::MAX`).
    #[must_use]
    pub fn step_start(&self, step: u64) -> u64 {
        step.saturating_mul(self.period).saturating_add(self.t0)
    }

    /// The code at Unix time `time`.
    ///
    /// # Errors
    /// [`OtpError::BeforeEpoch`] if `time < t0`.
    pub fn code_at(&self, time: u64) -> Result<Code, OtpError> {
        Ok(self.code_for_step(self.step_at(time)?))
    }

    /// The code of a step: two block compressions, no allocation.
    #[inline]
    #[must_use]
    pub fn code_for_step(&self, step: u64) -> Code {
        self.hotp.code(step)
    }

    /// Codes of the consecutive steps `first, first+1, …` into `out` —
    /// what a verification window or a resync search needs; allocation-free.
    pub fn codes_for_steps(&self, first: u64, out: &mut [Code]) {
        self.hotp.codes(first, out);
    }

    /// The step length in seconds.
    #[must_use]
    pub fn period(&self) -> u64 {
        self.period
    }

    /// The epoch `t0` in Unix seconds.
    #[must_use]
    pub fn t0(&self) -> u64 {
        self.t0
    }

    /// The digit count.
    #[must_use]
    pub fn digits(&self) -> u8 {
        self.hotp.digits
    }

    /// The hash algorithm.
    #[must_use]
    pub fn algorithm(&self) -> Algorithm {
        self.hotp.algorithm()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_formatting_keeps_leading_zeros() {
        let c = Code::new(42, 6).unwrap();
        assert_eq!(c.to_string(), "000042");
        assert_eq!(Code::parse("000042", 6).unwrap(), c);
    }

    #[test]
    fn code_parse_rejects_bad_input() {
        for bad in [
            "", "12345", "1234567", "12a456", " 23456", "+23456", "１23456",
        ] {
            assert!(Code::parse(bad, 6).is_err(), "{bad:?} accepted");
        }
        assert_eq!(Code::parse("123456", 11), Err(OtpError::Digits(11)));
        assert!(Code::new(1_000_000, 6).is_err());
    }

    #[test]
    fn algorithm_names() {
        for a in Algorithm::ALL {
            assert_eq!(a.as_str().parse::<Algorithm>().unwrap(), a);
        }
        assert_eq!(
            "HMAC-SHA256".parse::<Algorithm>().unwrap(),
            Algorithm::Sha256
        );
        assert!("md5".parse::<Algorithm>().is_err());
    }

    #[test]
    fn totp_rejects_zero_period_and_time_before_t0() {
        assert_eq!(
            Totp::new(Algorithm::Sha1, b"k", 6, 0, 0).unwrap_err(),
            OtpError::ZeroPeriod
        );
        let t = Totp::new(Algorithm::Sha1, b"k", 6, 30, 100).unwrap();
        assert!(matches!(t.step_at(99), Err(OtpError::BeforeEpoch { .. })));
        assert_eq!(t.step_at(100).unwrap(), 0);
        assert_eq!(t.step_at(u64::MAX).unwrap(), (u64::MAX - 100) / 30);
    }

    #[test]
    fn debug_output_hides_key_material() {
        let t = Totp::new(Algorithm::Sha1, b"supersecretkey!!", 6, 30, 0).unwrap();
        let s = format!("{t:?}");
        assert!(!s.contains("supersecret"));
        assert!(s.contains("Sha1"));
    }
}
