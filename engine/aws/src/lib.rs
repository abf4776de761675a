//! The AWS wire format fobsim speaks and reads, sans-IO, knowing nothing
//! of the engine behind it: the Query protocol of IAM and STS.
//!
//! - [`query`]: form parsing and encoding, and parameter validation into an
//!   [`query::Action`] (AWS's order of checks, AWS's messages);
//! - [`xml`]: responses in the IAM/STS namespaces and `<ErrorResponse>`, and
//!   a small reader for clients;
//! - [`sigv4`]: Signature Version 4 on the AWS SDK's signer (`aws-sigv4`):
//!   signing, and verification by re-signing, with AWS's refusals;
//! - [`client`]: a blocking HTTP client on `ureq` that signs Query requests
//!   (tests, benches, the harness's adapters);
//! - [`AwsError`]: an error as AWS returns it (status, code, message, fault).
//!
//! Used by the engine's API face (`fobsim_engine::api`) and by the
//! harness's adapters for IAM-compatible endpoints.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod client;
pub mod query;
pub mod sigv4;
pub mod xml;

use std::borrow::Cow;
use std::fmt;

use fobsim_core::Timestamp;

/// The AWS service a request is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Service {
    /// IAM, API version `2010-05-08`.
    Iam,
    /// STS, API version `2011-06-15`.
    Sts,
}

impl Service {
    /// The SigV4 service name (`iam`, `sts`).
    #[must_use]
    pub fn signing_name(self) -> &'static str {
        match self {
            Service::Iam => "iam",
            Service::Sts => "sts",
        }
    }

    /// The Query API version.
    #[must_use]
    pub fn version(self) -> &'static str {
        match self {
            Service::Iam => "2010-05-08",
            Service::Sts => "2011-06-15",
        }
    }

    /// The XML namespace of responses.
    #[must_use]
    pub fn namespace(self) -> &'static str {
        match self {
            Service::Iam => "https://iam.amazonaws.com/doc/2010-05-08/",
            Service::Sts => "https://sts.amazonaws.com/doc/2011-06-15/",
        }
    }

    /// From a SigV4 service name.
    #[must_use]
    pub fn from_signing_name(name: &str) -> Option<Service> {
        match name {
            "iam" => Some(Service::Iam),
            "sts" => Some(Service::Sts),
            _ => None,
        }
    }
}

impl fmt::Display for Service {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.signing_name())
    }
}

/// Who is at fault, as `<Type>` of an `<ErrorResponse>` says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The request (`Sender`).
    Sender,
    /// The service (`Receiver`).
    Receiver,
}

/// An error as AWS returns it: HTTP status, code, message, fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code} ({status}): {message}")]
pub struct AwsError {
    /// HTTP status.
    pub status: u16,
    /// AWS error code (`AccessDenied`, `ValidationError`, ...).
    pub code: &'static str,
    /// Human message (AWS wording). Never contains secrets.
    pub message: Cow<'static, str>,
    /// Sender or Receiver.
    pub fault: Fault,
}

impl AwsError {
    /// A sender-fault error.
    #[must_use]
    pub fn sender(status: u16, code: &'static str, message: impl Into<Cow<'static, str>>) -> Self {
        AwsError {
            status,
            code,
            message: message.into(),
            fault: Fault::Sender,
        }
    }

    /// `ValidationError` (400).
    #[must_use]
    pub fn validation(message: impl Into<Cow<'static, str>>) -> Self {
        AwsError::sender(400, "ValidationError", message)
    }

    /// `AccessDenied` (403).
    #[must_use]
    pub fn access_denied(message: impl Into<Cow<'static, str>>) -> Self {
        AwsError::sender(403, "AccessDenied", message)
    }

    /// `InternalFailure` / `ServiceFailure` (500, Receiver) with a generic
    /// message: details go to the server's log, not to the client.
    #[must_use]
    pub fn internal() -> Self {
        AwsError {
            status: 500,
            code: "ServiceFailure",
            message: Cow::Borrowed(
                "The request processing has failed because of an unknown error, exception or failure.",
            ),
            fault: Fault::Receiver,
        }
    }
}

/// `YYYY-MM-DDTHH:MM:SSZ` (AWS's ISO 8601 form in XML bodies).
#[must_use]
pub fn iso8601(t: Timestamp) -> String {
    // Display is `YYYY-MM-DDTHH:MM:SS.mmmZ`.
    let s = Timestamp::from_secs(t.as_secs()).to_string();
    match s.split_once('.') {
        Some((head, _)) => format!("{head}Z"),
        None => s,
    }
}

/// `YYYYMMDDTHHMMSSZ` (SigV4's `X-Amz-Date`).
#[must_use]
pub fn amz_date(t: Timestamp) -> String {
    iso8601(t)
        .chars()
        .filter(|c| *c != '-' && *c != ':')
        .collect()
}

/// Parse `YYYYMMDDTHHMMSSZ`.
#[must_use]
pub fn parse_amz_date(s: &str) -> Option<Timestamp> {
    let b = s.as_bytes();
    let digits =
        |r: std::ops::Range<usize>| b.get(r).is_some_and(|x| x.iter().all(u8::is_ascii_digit));
    if b.len() != 16 || !digits(0..8) || b[8] != b'T' || !digits(9..15) || b[15] != b'Z' {
        return None;
    }
    let text = format!(
        "{}-{}-{}T{}:{}:{}Z",
        &s[0..4],
        &s[4..6],
        &s[6..8],
        &s[9..11],
        &s[11..13],
        &s[13..15]
    );
    let t: Timestamp = text.parse().ok()?;
    // Reject out-of-range fields that a lenient parser might normalise.
    (amz_date(t) == s).then_some(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_round_trip() {
        let t = Timestamp::from_millis(1_440_938_160_123);
        assert_eq!(iso8601(t), "2015-08-30T12:36:00Z");
        assert_eq!(amz_date(t), "20150830T123600Z");
        assert_eq!(
            parse_amz_date("20150830T123600Z"),
            Some(Timestamp::from_secs(1_440_938_160))
        );
        for bad in [
            "",
            "20150830T123600",
            "2015083OT123600Z",
            "20151330T123600Z",
            "20150830T126000Z",
            "２0150830T123600Z",
        ] {
            assert_eq!(parse_amz_date(bad), None, "{bad}");
        }
    }
}
